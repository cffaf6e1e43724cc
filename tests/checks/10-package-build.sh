#!/usr/bin/env bash
# The package exists for both architectures, is up to date, was linked from exactly the
# driver/*.c files, and carries driver/aerovblk.inf beside each .sys.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # run make standalone even under `make check`
fail() { echo "FAIL: $*"; exit 1; }
srcs=$(ls driver/*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//' | sort)
[ -n "$srcs" ] || fail "no driver/*.c"
for a in x86 amd64; do
  for f in aerovblk.sys aerovblk.inf; do
    [ -s "out/package/$a/$f" ] || fail "out/package/$a/$f missing (run make package)"
  done
  cmp -s "out/package/$a/aerovblk.inf" driver/aerovblk.inf || fail "$a INF differs from driver/aerovblk.inf"
  cmp -s "out/package/$a/aerovblk.sys" "out/pe/$a/aerovblk.sys" || fail "$a package .sys is not the checked link output"
  map="out/pe/$a/aerovblk.map"
  [ -s "$map" ] || fail "$map missing"
  linked=$(grep -oE "out/pe/$a/obj/[A-Za-z0-9_.-]+\.o" "$map" | xargs -n1 basename | sed 's/\.o$//' | sort -u)
  [ "$linked" = "$srcs" ] || { echo "driver/*.c: $srcs"; echo "linked ($a): $linked"; fail "$a image not linked from exactly driver/*.c"; }
  echo "$a: linked from $(echo $srcs | wc -w) driver sources: $(echo $srcs)"
done
make -q --no-print-directory package-driver || fail "package is out of date (make -q package-driver)"
echo "package up to date"
