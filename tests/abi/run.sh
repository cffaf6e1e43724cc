#!/usr/bin/env bash
# ABI cross-check of include/wdk against mingw-w64's own ddk headers, x86 and x64, plus
# the host compilers the simulator uses (gcc, gcc -m32). Usage: tests/abi/run.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/abi}
mkdir -p "$out"
mingw_inc=$(dirname "$(echo '#include <windows.h>' | x86_64-w64-mingw32-gcc -E -M - | tr ' ' '\n' | grep -m1 '/windows\.h$')")
[ -f "$mingw_inc/ddk/srb.h" ] || { echo "mingw-w64 ddk headers not found under $mingw_inc"; exit 1; }
rc=0
for arch in x86 amd64; do
  case $arch in
    x86)   cc=i686-w64-mingw32-gcc;   host="gcc -m32" ;;
    amd64) cc=x86_64-w64-mingw32-gcc; host="gcc" ;;
  esac
  $cc -S -O0 -Wall -Wextra -Werror -DABI_OURS -Iinclude/wdk tests/abi/abi_dump.c -o "$out/ours-$arch.s"
  $cc -S -O0 -DABI_MINGW_KERNEL -I"$mingw_inc/ddk" tests/abi/abi_dump.c -o "$out/mingw-kernel-$arch.s"
  $cc -S -O0 -DABI_MINGW_USER tests/abi/abi_dump.c -o "$out/mingw-user-$arch.s"
  $host -S -O0 -Wall -Wextra -Werror -DABI_OURS -Iinclude/wdk tests/abi/abi_dump.c -o "$out/host-$arch.s"
  /usr/bin/python3 tests/abi/compare.py $arch "$out/ours-$arch.s" "$out/mingw-kernel-$arch.s" \
      "$out/mingw-user-$arch.s" "$out/host-$arch.s" || rc=1
done
exit $rc
