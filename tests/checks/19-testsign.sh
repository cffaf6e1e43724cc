#!/usr/bin/env bash
# The test-signed package: each .sys carries an embedded signature that verifies
# against the test certificate, still passes the PE checker (checksum recomputed),
# and the check can fail: one flipped byte in the signed image breaks verification.
set -u
cd "$(dirname "$0")/../.."
fails=0
cert=out/testsign/cert/cert.pem
for arch in x86 amd64; do
  sys=out/testsign/$arch/aerovblk.sys
  if osslsigncode verify -CAfile "$cert" -in "$sys" >/dev/null 2>&1; then
    echo "ok    $arch: signature verifies"
  else echo "FAIL  $arch: signature does not verify"; fails=$((fails+1)); fi
  if /usr/bin/python3 tools/pecheck.py check --arch "$arch" --def "driver/storport-$arch.def" "$sys" >/dev/null; then
    echo "ok    $arch: signed image passes pecheck"
  else echo "FAIL  $arch: signed image fails pecheck"; fails=$((fails+1)); fi
  [ -f "out/testsign/$arch/aerovblk-test.cer" ] && [ -f "out/testsign/$arch/aerovblk.inf" ] \
    && echo "ok    $arch: certificate and INF beside it" || { echo "FAIL  $arch: package incomplete"; fails=$((fails+1)); }
  tmp=$(mktemp); cp "$sys" "$tmp"
  printf '\x90' | dd of="$tmp" bs=1 seek=4096 conv=notrunc 2>/dev/null   # inside .text
  if osslsigncode verify -CAfile "$cert" -in "$tmp" >/dev/null 2>&1; then
    echo "FAIL  $arch: a tampered image still verifies"; fails=$((fails+1))
  else echo "ok    $arch: a tampered image is rejected"; fi
  rm -f "$tmp"
done
[ $fails -eq 0 ]
