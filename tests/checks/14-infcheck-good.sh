#!/usr/bin/env bash
# tools/infcheck.py accepts driver/aerovblk.inf and the copies in the package.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*"; exit 1; }
/usr/bin/python3 tools/infcheck.py --sys aerovblk.sys driver/aerovblk.inf || fail "driver/aerovblk.inf rejected"
for a in x86 amd64; do
  /usr/bin/python3 tools/infcheck.py --sys aerovblk.sys out/package/$a/aerovblk.inf || fail "$a INF rejected"
done
# The checker reads what it claims to: the good INF has both arches and the hardware ID.
grep -q '^\[Models.NTx86\]' driver/aerovblk.inf && grep -q '^\[Models.NTamd64\]' driver/aerovblk.inf \
  || fail "INF lacks NTx86/NTamd64 models"
[ "$(grep -c 'PCI\\VEN_1AF4&DEV_1042' driver/aerovblk.inf)" -ge 2 ] || fail "hardware ID not in both models"
