#!/usr/bin/env bash
# The export gates of sim/pe (export_gate.h): a StorPort export the driver calls runs on
# the thread's host stack, not the driver's kernel stack, and the driver sees the Windows
# convention: nonvolatile registers kept (x64 rbx rbp rsi rdi r12-r15 xmm6-15; x86 ebx
# ebp esi edi), stdcall pops its argument bytes from driver/storport-x86.def, cdecl does
# not, EDX:EAX / RAX returned (x86 PHYSICAL_ADDRESS from GCC's hidden pointer), the
# argument window cut at the end of the kernel stack, export -> driver callback -> export
# nesting. Both architectures, ASan+UBSan (sim/pe/test_export_gate.c).
# Negative controls: the same test linked with a gate that forgets to restore rsi (x64)
# and one that pops 4 bytes too many (x86) must fail.
set -u
cd "$(dirname "$0")/../.."
. tests/sim/x86.sh
fail=0
for a in x64 x86; do
  bin=out/peloader/$a/test_export_gate
  [ -x "$bin" ] || { echo "missing $bin (make peloader)"; exit 1; }
  run=(); [ "$a" = x86 ] && run=(bash tests/sim/x86.sh exec) && bin=$(x86_bin "$bin")   # natively or under qemu-i386
  out=$(timeout 60 "${run[@]}" "$bin" 2>&1); rc=$?
  echo "$a: $out"
  [ $rc -eq 0 ] && grep -q '^ok: export gates' <<<"$out" || { echo "FAIL: $a export gates (rc=$rc)"; fail=1; }
done
tmp=$(mktemp -d /tmp/aerovblk-gates-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
broken() {  # arch, sed expression applied to export_switch.S, what it breaks
  local a=$1 expr=$2 what=$3 flags out rc
  if [ "$a" = x64 ]; then flags="-m64"; else flags="-m32 -mstackrealign"; fi
  sed -E "$expr" sim/pe/export_switch.S > "$tmp/gate-$a.S"
  if cmp -s "$tmp/gate-$a.S" sim/pe/export_switch.S; then echo "FAIL: control for $a did not apply"; fail=1; return; fi
  gcc $flags -c "$tmp/gate-$a.S" -o "$tmp/gate-$a.o" &&
  local objs=out/peloader/$a san=address,undefined
  if [ "$a" = x86 ] && [ "$(x86_mode)" = emulated ]; then objs=out/peloader/x86-noasan san=undefined; fi
  gcc $flags -std=gnu11 -O1 -Iinclude/wdk -Isim/pe -Iout/peloader/gen -fsanitize=$san \
      sim/pe/test_export_gate.c "$tmp/gate-$a.o" \
      $objs/obj/{peloader,kstack,mmio_trap,x86dec,export_gate,x86_tls,kstack_switch}.o -o "$tmp/t-$a" -pthread \
      $([ "$a" = x86 ] && echo -Wl,--wrap=pthread_create) \
    || { echo "FAIL: could not build the $a control"; fail=1; return; }
  run=(); [ "$a" = x86 ] && run=(bash tests/sim/x86.sh exec)
  out=$(timeout 60 "${run[@]}" "$tmp/t-$a" 2>&1); rc=$?
  echo "$a control ($what): rc=$rc $(grep -m1 -E 'FAIL|ERROR' <<<"$out")"
  [ $rc -ne 0 ] || { echo "FAIL: a gate that $what passed"; fail=1; }
}
broken x64 '/movq	SAVE_RSI\(%rsp\), %rsi/d' "does not restore rsi"
broken x86 's/addl	%ebp, %ecx/addl %ebp, %ecx; addl $4, %ecx/' "pops 4 bytes too many"
[ $fail -eq 0 ] && echo "ok: export gates keep StorPort's emulation off the kernel stack, Windows convention kept"
exit $fail
