#!/usr/bin/env bash
# The storport.sys prototypes in include/wdk/storport.h against driver/storport-*.def:
# each declared export, compiled for x86, must produce exactly the import symbol the x86
# .def lists (_Name@N: stdcall byte count; _Name: cdecl), and the amd64 .def must be the
# x86 one without decorations. Usage: [DEF_X86=..] [DEF_AMD64=..] tests/abi/defcheck.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/abi}
def_x86=${DEF_X86:-driver/storport-x86.def}
def_amd64=${DEF_AMD64:-driver/storport-amd64.def}
mkdir -p "$out"
names=$(grep -oE '^STORPORT_API [A-Z_]+ (NTAPI|AV_CDECL) [A-Za-z0-9_]+\(' include/wdk/storport.h \
        | sed -E 's/.* ([A-Za-z0-9_]+)\($/\1/' | sort -u)
n=$(echo "$names" | wc -l)
[ "$n" -ge 30 ] || { echo "only $n prototypes found in storport.h"; exit 1; }
{ echo '#include <storport.h>'
  echo 'void *const AbiRefs[] = {'
  for f in $names; do echo "    (void *)$f,"; done
  echo '};'; } > "$out/defrefs.c"
i686-w64-mingw32-gcc -c -O0 -Wall -Wextra -Werror -Wno-pedantic -Iinclude/wdk "$out/defrefs.c" -o "$out/defrefs.o"
i686-w64-mingw32-nm -u "$out/defrefs.o" | awk '{print $2}' | sed 's/^_//' | sort > "$out/declared-x86.txt"
sed -n '/^EXPORTS/,$p' "$def_x86" | tail -n +2 | sed 's/;.*//' | awk 'NF{print $1}' | sort > "$out/def-x86.txt"
missing=$(comm -23 "$out/declared-x86.txt" "$out/def-x86.txt")
if [ -n "$missing" ]; then
  echo "declared in storport.h but not (with this decoration) in $def_x86:"
  echo "$missing"
  for s in $missing; do grep -n "^${s%@*}\(@\|$\)" "$out/def-x86.txt" | sed 's/^/  .def has: /'; done
  exit 1
fi
echo "x86: $(wc -l < "$out/declared-x86.txt") declared exports match $def_x86"
sed 's/@[0-9]*$//' "$out/def-x86.txt" | sort > "$out/def-x86-undecorated.txt"
sed -n '/^EXPORTS/,$p' "$def_amd64" | tail -n +2 | sed 's/;.*//' | awk 'NF{print $1}' | sort > "$out/def-amd64.txt"
if ! diff -u "$out/def-x86-undecorated.txt" "$out/def-amd64.txt"; then
  echo "$def_amd64 differs from $def_x86 without decorations"; exit 1
fi
[ "$(wc -l < "$out/def-amd64.txt")" -eq 61 ] || { echo "expected the 61 Windows 7 SP1 exports"; exit 1; }
echo "amd64 .def = x86 .def undecorated (61 exports)"
