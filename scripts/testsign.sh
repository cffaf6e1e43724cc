#!/usr/bin/env bash
# Test-signs the package for Windows 7 test mode: out/testsign/{x86,amd64}/ get an
# aerovblk.sys with an embedded Authenticode signature (x64 Windows requires one on a
# boot-start driver, beside the catalog), aerovblk.cat signed with the same certificate
# (the catalog of out/package: it lists the Authenticode digests, which an embedded
# signature does not change), aerovblk.inf, the query tool, and the test certificate
# aerovblk-test.cer to import in the guest. The key is generated here, in
# out/testsign/cert/, never committed: this is a test signature, trusted by nobody.
# TESTSIGN_CERT_DIR=DIR uses (or creates) the key and certificate there instead.
# SHA-1 digests: Windows 7 without KB3033929 cannot verify SHA-256 kernel signatures.
# Signing time: SOURCE_DATE_EPOCH (set by make: the commit time), so equal inputs and the
# same key give byte-identical signed files (RSA PKCS#1 v1.5 signatures are deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/testsign
cert=${TESTSIGN_CERT_DIR:-$out/cert}
sde=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
mkdir -p "$cert"
if [ ! -f "$cert/key.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes \
    -subj "/CN=aerovblk test signing (not trusted)" \
    -addext "extendedKeyUsage=codeSigning" -addext "keyUsage=digitalSignature" \
    -keyout "$cert/key.pem" -out "$cert/cert.pem" 2>/dev/null
fi
[ -f "$cert/aerovblk-test.cer" ] || openssl x509 -in "$cert/cert.pem" -outform der -out "$cert/aerovblk-test.cer"
sign() {  # in out
  rm -f "$2"
  osslsigncode sign -certs "$cert/cert.pem" -key "$cert/key.pem" -h sha1 -time "$sde" \
    -n "aerovblk virtio-blk StorPort miniport" -in "$1" -out "$2" >/dev/null
}
for arch in x86 amd64; do
  src=out/package/$arch
  dst=$out/$arch
  mkdir -p "$dst"
  sign "$src/aerovblk.sys" "$dst/aerovblk.sys"
  sign "$src/aerovblk.cat" "$dst/aerovblk.cat"
  cp -f "$src/aerovblk.inf" "$src/aerovblk-query.exe" "$dst/"
  cp -f "$cert/aerovblk-test.cer" "$dst/"
  /usr/bin/python3 tools/pecheck.py check --arch "$arch" --def "driver/storport-$arch.def" \
    --inf "$dst/aerovblk.inf" "$dst/aerovblk.sys" >/dev/null
  # The signed catalog covers the signed .sys and the query tool (the check is
  # tests/checks/19a-catalog.sh; this only refuses to leave a broken package behind).
  for f in aerovblk.sys aerovblk-query.exe; do
    osslsigncode verify -CAfile "$cert/cert.pem" -catalog "$dst/aerovblk.cat" -in "$dst/$f" >/dev/null 2>&1 \
      || { echo "testsign: $dst/$f does not verify against $dst/aerovblk.cat" >&2; exit 1; }
  done
done
echo "testsign: out/testsign/{x86,amd64}/aerovblk.sys and aerovblk.cat signed with $cert/aerovblk-test.cer"
