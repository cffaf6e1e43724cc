#!/usr/bin/env bash
# Test-signs the package for Windows 7 test mode: out/testsign/{x86,amd64}/ get an
# aerovblk.sys with an embedded Authenticode signature (x64 Windows requires one on a
# boot-start driver, beside the catalog), aerovblk.inf, the query tool, and the test
# certificate aerovblk-test.cer to import in the guest. The key is generated here, in
# out/testsign/cert/, never committed: this is a test signature, trusted by nobody.
# SHA-1 digests: Windows 7 without KB3033929 cannot verify SHA-256 kernel signatures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/testsign
cert=$out/cert
mkdir -p "$cert"
if [ ! -f "$cert/key.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes \
    -subj "/CN=aerovblk test signing (not trusted)" \
    -addext "extendedKeyUsage=codeSigning" -addext "keyUsage=digitalSignature" \
    -keyout "$cert/key.pem" -out "$cert/cert.pem" 2>/dev/null
  openssl x509 -in "$cert/cert.pem" -outform der -out "$cert/aerovblk-test.cer"
fi
for arch in x86 amd64; do
  src=out/package/$arch
  dst=$out/$arch
  mkdir -p "$dst"
  rm -f "$dst/aerovblk.sys"
  osslsigncode sign -certs "$cert/cert.pem" -key "$cert/key.pem" -h sha1 \
    -n "aerovblk virtio-blk StorPort miniport" -in "$src/aerovblk.sys" -out "$dst/aerovblk.sys" >/dev/null
  cp -f "$src/aerovblk.inf" "$dst/"
  cp -f "$src"/aerovblk-query.exe "$dst/" 2>/dev/null || true
  cp -f "$cert/aerovblk-test.cer" "$dst/"
  /usr/bin/python3 tools/pecheck.py check --arch "$arch" --def "driver/storport-$arch.def" "$dst/aerovblk.sys" >/dev/null
done
echo "testsign: out/testsign/{x86,amd64}/aerovblk.sys signed with $cert/aerovblk-test.cer"
