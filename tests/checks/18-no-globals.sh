#!/usr/bin/env bash
# No mutable globals in the driver: every driver object has empty writable sections, and
# the build refuses a source that defines one (fixture with FIXTURE_GLOBAL).
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # run make standalone even under `make check`
fail() { echo "FAIL: $*"; exit 1; }
for a in x86 amd64; do
  objs=$(ls out/pe/$a/obj/*.o 2>/dev/null) || fail "no out/pe/$a/obj/*.o (make package)"
  /usr/bin/python3 tools/pecheck.py no-writable-data $objs || fail "driver $a has writable data"
  echo "$a: $(echo $objs | wc -w) driver objects without writable data"
done
d=out/pe-tests/built-global
rm -rf $d
for a in x86 amd64; do
  out=$(make --no-print-directory PKG_SRCDIR=tests/pe/fixture PE_OUT=$d PKG_DIR=$d/package \
        PE_EXTRA_CFLAGS=-DFIXTURE_GLOBAL $d/$a/aerovblk.sys 2>&1) && fail "$a: build accepted a mutable global"
  echo "$out" | grep -q "^FAIL writable-data: .*FixtureMutable" || { echo "$out" | tail -5; fail "$a: global not named"; }
  echo "$a: build refused the fixture's mutable global"
done
