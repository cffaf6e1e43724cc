#!/usr/bin/env bash
# driver/virtqueue.c compiles unmodified as freestanding kernel code with both
# mingw-w64 compilers (-Werror, no FP/SSE registers, <=1024-byte frames, -O0, -O2 and -Os),
# calls nothing (no libc/runtime helpers such as memset or __udivdi3) and has no
# writable data; it also builds for the 32-bit Linux simulator (gcc -m32) if present.
set -u
cd "$(dirname "$0")/../.."
out=out/host/vq-freestanding; mkdir -p "$out"
flags="-std=gnu99 -ffreestanding -fno-builtin -Wall -Wextra -Werror -mgeneral-regs-only
       -Wframe-larger-than=1024 -Iinclude -Iinclude/wdk -Idriver"
fail=0
for cc in i686-w64-mingw32-gcc x86_64-w64-mingw32-gcc; do
  command -v "$cc" >/dev/null || { echo "skip: $cc not installed"; exit 77; }
  for opt in -O0 -O2 -Os; do
    obj="$out/virtqueue.${cc%%-*}$opt.o"
    # shellcheck disable=SC2086
    if ! "$cc" $flags $opt -c driver/virtqueue.c -o "$obj"; then
      echo "FAIL: $cc $opt could not compile driver/virtqueue.c"; fail=1; continue
    fi
    nm=${cc%-gcc}-nm
    bad=0
    undef=$("$nm" -u "$obj")
    if [ -n "$undef" ]; then echo "FAIL: $cc $opt: undefined symbols:"; echo "$undef"; bad=1; fi
    writable=$("$nm" "$obj" | awk '$2 ~ /^[dDbBcC]$/ && $3 !~ /^\./')
    if [ -n "$writable" ]; then echo "FAIL: $cc $opt: writable data:"; echo "$writable"; bad=1; fi
    if [ $bad -eq 0 ]; then
      echo "$cc $opt: ok ($(${cc%-gcc}-size "$obj" | tail -1 | awk '{print $1" bytes text"}'))"
    fi
    fail=$((fail | bad))
  done
done
# The 32-bit simulator (i386 Linux, stdcall ABI) compiles driver/*.c too.
if echo 'int main(void){return 0;}' | gcc -m32 -x c - -o "$out/m32probe" 2>/dev/null; then
  # shellcheck disable=SC2086
  if gcc -m32 $flags -O2 -c driver/virtqueue.c -o "$out/virtqueue.m32.o"; then
    echo "gcc -m32: ok"
  else
    echo "FAIL: gcc -m32 could not compile driver/virtqueue.c"; fail=1
  fi
else
  echo "note: gcc -m32 unavailable, 32-bit simulator build not checked"
fi
exit $fail
