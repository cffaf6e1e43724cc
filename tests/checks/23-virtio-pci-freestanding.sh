#!/usr/bin/env bash
# driver/virtio_pci.c compiles as freestanding kernel code with both mingw-w64
# compilers (-Werror, no FP registers, <=1024-byte frames), imports nothing (no
# libc), and has no writable data (no mutable globals in driver/).
set -u
cd "$(dirname "$0")/../.."
out=out/host/vpci-freestanding; mkdir -p "$out"
fail=0
for cc in i686-w64-mingw32-gcc x86_64-w64-mingw32-gcc; do
  command -v "$cc" >/dev/null || { echo "skip: $cc not installed"; exit 77; }
  obj="$out/virtio_pci.${cc%%-*}.o"
  # Same constraints as the .sys build (mk/package.mk): no libc headers at all.
  if ! "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -Wvla -Wframe-larger-than=1024 \
       -ffreestanding -fno-builtin -fno-common -mgeneral-regs-only \
       -nostdinc -isystem "$("$cc" -print-file-name=include)" \
       -Iinclude -Iinclude/wdk -Idriver -c driver/virtio_pci.c -o "$obj"; then
    echo "FAIL: $cc could not compile driver/virtio_pci.c"; fail=1; continue
  fi
  nm=${cc%-gcc}-nm
  undef=$("$nm" -u "$obj")
  if [ -n "$undef" ]; then echo "FAIL: $cc: undefined symbols (libc/runtime calls):"; echo "$undef"; fail=1; fi
  writable=$("$nm" "$obj" | awk '$2 ~ /^[dDbBcC]$/ && $3 !~ /^\./')
  if [ -n "$writable" ]; then echo "FAIL: $cc: writable data:"; echo "$writable"; fail=1; fi
  echo "$cc: ok ($(${cc%-gcc}-size "$obj" | tail -1 | awk '{print $1" bytes text"}'))"
done
exit $fail
