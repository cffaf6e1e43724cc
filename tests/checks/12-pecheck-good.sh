#!/usr/bin/env bash
# tools/pecheck.py accepts the shipped images and a known-good fixture built by the same
# rules (mk/package.mk with PKG_SRCDIR=tests/pe/fixture), for x86 and x64.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # run make standalone even under `make check`
fail() { echo "FAIL: $*"; exit 1; }
for a in x86 amd64; do
  /usr/bin/python3 tools/pecheck.py check --arch $a --def driver/storport-$a.def \
      --map out/pe/$a/aerovblk.map out/package/$a/aerovblk.sys || fail "package $a rejected"
done
t=out/pe-tests/good
make --no-print-directory -s PKG_SRCDIR=tests/pe/fixture PE_OUT=$t PKG_DIR=$t/package \
    $t/x86/aerovblk.sys $t/amd64/aerovblk.sys >/dev/null || fail "fixture build failed"
for a in x86 amd64; do
  /usr/bin/python3 tools/pecheck.py check --arch $a --def driver/storport-$a.def \
      --map $t/$a/aerovblk.map $t/$a/aerovblk.sys || fail "fixture $a rejected"
done
