#!/usr/bin/env bash
# The loader refuses, by name, a driver importing a function Windows 7 SP1's
# storport.sys does not export (Windows: Code 39), and one importing from a DLL other
# than storport.sys; on both architectures. Control: the good fixture loads with the
# same export table, so a loader refusing everything fails this check.
set -u
cd "$(dirname "$0")/../.."
. tests/sim/x86.sh
fail=0
for pair in x64:amd64 x86:x86; do
  build=${pair%%:*} arch=${pair#*:}
  bin=out/peloader/$build/test_peloader fx=out/pe-fixtures/$arch
  [ -x "$bin" ] || { echo "missing $bin (make peloader)"; exit 1; }
  run=(); [ "$build" = x86 ] && run=(bash tests/sim/x86.sh exec) && bin=$(x86_bin "$bin")   # natively or under qemu-i386
  out=$(timeout 60 "${run[@]}" "$bin" load $fx/fixture.sys 2>&1); rc=$?
  echo "$arch control: $out"
  [ $rc -eq 0 ] || { echo "FAIL: good fixture refused"; fail=1; }
  out=$(timeout 60 "${run[@]}" "$bin" load $fx/badimport.sys 2>&1); rc=$?
  echo "$arch: $out"
  [ $rc -eq 1 ] && [ "$out" = "refused: badimport.sys imports storport.sys!StorPortFoo, which Windows 7 SP1 does not export" ] \
    || { echo "FAIL: StorPortFoo not refused by name (rc=$rc)"; fail=1; }
  out=$(timeout 60 "${run[@]}" "$bin" load $fx/baddll.sys 2>&1); rc=$?
  echo "$arch: $out"
  [ $rc -eq 1 ] && [[ "$out" == *"imports hal.dll!KeStallExecutionProcessor: a StorPort miniport may import only storport.sys"* ]] \
    || { echo "FAIL: hal.dll import not refused (rc=$rc)"; fail=1; }
done
[ $fail -eq 0 ] && echo "ok: unknown imports refused on x86 and x64"
exit $fail
