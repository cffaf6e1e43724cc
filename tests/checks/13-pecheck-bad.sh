#!/usr/bin/env bash
# Every tools/pecheck.py rule can fail: one bad image per rule (tests/pe/mkbad.py mutates
# the good fixture; exports and a foreign import are built), each rejected for exactly
# that rule, for x86 and x64. The build itself (mk/package.mk) refuses them too.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # run make standalone even under `make check`
fail() { echo "FAIL: $*"; exit 1; }
t=out/pe-tests
make --no-print-directory -s PKG_SRCDIR=tests/pe/fixture PE_OUT=$t/good PKG_DIR=$t/good/package \
    $t/good/x86/aerovblk.sys $t/good/amd64/aerovblk.sys >/dev/null || fail "good fixture build failed"
n=0
for a in x86 amd64; do
  rm -rf $t/bad-$a
  /usr/bin/python3 tests/pe/mkbad.py $a $t/good/$a/aerovblk.sys $t/bad-$a || fail "mkbad $a"
  while IFS=$'\t' read -r img rule mode; do
    out=$(/usr/bin/python3 tools/pecheck.py check --arch $a --def driver/storport-$a.def \
          --map $t/good/$a/aerovblk.map "$img"); rc=$?
    got=$(echo "$out" | sed -n 's/^FAIL \([a-z]*\):.*/\1/p' | sort -u | tr '\n' ' ')
    [ $rc -eq 1 ] || fail "$img: pecheck rc=$rc, want 1"
    [ "$mode" = exact ] && [ "$got" != "$rule " ] && fail "$img: failed rules [$got], want exactly [$rule]"
    echo "$got" | grep -qw "$rule" || fail "$img: rule $rule did not fire (got [$got])"
    echo "ok  $a $(basename "$img" .sys): $got"; n=$((n+1))
  done < $t/bad-$a/manifest.tsv
done
# Built bad images: the package rules must refuse them at pecheck time.
built_bad() {  # name rule make-args...
  local name=$1 rule=$2; shift 2
  local d=$t/built-$name
  rm -rf $d
  for a in x86 amd64; do
    out=$(make --no-print-directory PKG_SRCDIR=tests/pe/fixture PE_OUT=$d PKG_DIR=$d/package "$@" \
          $d/$a/aerovblk.sys 2>&1) && fail "$name $a: build accepted a bad image"
    echo "$out" | grep -q "^FAIL $rule:" || { echo "$out" | tail -5; fail "$name $a: no 'FAIL $rule'"; }
    echo "ok  $a built-$name: refused by the build, rule $rule"; n=$((n+1))
  done
}
built_bad exports exports PE_EXTRA_CFLAGS=-DFIXTURE_EXPORT
built_bad ntoskrnl-import imports PE_EXTRA_CFLAGS=-DFIXTURE_NTOSKRNL PE_EXTRA_LIBS=-lntoskrnl
echo "$n bad images rejected"
[ $n -ge 36 ] || fail "expected at least 36 bad images"
