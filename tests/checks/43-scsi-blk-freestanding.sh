#!/usr/bin/env bash
# driver/scsi*.c and driver/blk.c compile unmodified as freestanding kernel code with
# both mingw-w64 compilers (-Werror, no FP/SSE registers, <=1024-byte stack frames,
# -O0/-O2/-Os), have no writable data, and call nothing but the layers below them
# (scsi*.c -> Vblk* and each other's Scsi*, blk.c -> Vq* / Vpci*): no libc or runtime
# helpers (memset, memcpy, __udivdi3, ...), which a kernel driver importing only
# storport.sys cannot have.
set -u
cd "$(dirname "$0")/../.."
out=out/host/scsi-freestanding; mkdir -p "$out"
fail=0
for cc in i686-w64-mingw32-gcc x86_64-w64-mingw32-gcc; do
  command -v "$cc" >/dev/null || { echo "skip: $cc not installed"; exit 77; }
  flags="-std=gnu11 -ffreestanding -fno-builtin -nostdinc -isystem $($cc -print-file-name=include)
         -Wall -Wextra -Werror -Wvla -mgeneral-regs-only -Wframe-larger-than=1024
         -fno-stack-protector -mno-stack-arg-probe -Iinclude -Iinclude/wdk -Idriver"
  nm=${cc%-gcc}-nm
  for src in scsi scsi_info scsi_medium blk; do
    case $src in
      scsi*) allowed='^_?(Vblk|Scsi)[A-Za-z0-9]+$' ;;
      blk) allowed='^_?(Vq|Vpci)[A-Za-z0-9]+$' ;;
    esac
    for opt in -O0 -O2 -Os; do
      obj="$out/$src.${cc%%-*}$opt.o"
      # shellcheck disable=SC2086
      if ! "$cc" $flags $opt -c "driver/$src.c" -o "$obj"; then
        echo "FAIL: $cc $opt could not compile driver/$src.c"; fail=1; continue
      fi
      bad=0
      other=$("$nm" -u "$obj" | awk '{print $2}' | grep -Ev "$allowed")
      if [ -n "$other" ]; then echo "FAIL: $cc $opt $src.c calls:"; echo "$other"; bad=1; fi
      writable=$("$nm" "$obj" | awk '$2 ~ /^[dDbBcC]$/ && $3 !~ /^\./')
      if [ -n "$writable" ]; then echo "FAIL: $cc $opt $src.c writable data:"; echo "$writable"; bad=1; fi
      [ $bad -eq 0 ] && echo "$cc $opt $src.c: ok ($(${cc%-gcc}-size "$obj" | tail -1 | awk '{print $1" bytes text"}'))"
      fail=$((fail | bad))
    done
  done
done
exit $fail
