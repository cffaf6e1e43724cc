#!/usr/bin/env bash
# A driver that overflows its Windows-sized kernel stack (12 KiB x86, 24 KiB x64) hits
# the guard page and the run fails with "driver stack overflow" (exit 86), instead of
# silently using Linux's 8 MiB stack. Control: the same fixture's normal mode succeeds
# and reports its stack use, so a loader failing everything fails this check.
set -u
cd "$(dirname "$0")/../.."
. tests/sim/x86.sh
fail=0
for pair in x64:amd64:24 x86:x86:12; do
  IFS=: read -r build arch kib <<<"$pair"
  bin=out/peloader/$build/test_peloader sys=out/pe-fixtures/$arch/fixture.sys
  [ -x "$bin" ] && [ -e "$sys" ] || { echo "missing $bin or $sys (make peloader)"; exit 1; }
  run=(); [ "$build" = x86 ] && run=(bash tests/sim/x86.sh exec) && bin=$(x86_bin "$bin")   # natively or under qemu-i386
  out=$(timeout 60 "${run[@]}" "$bin" run "$sys" 1 2>&1); rc=$?          # FX_MODE_CALLS
  echo "$arch control: $out"
  [ $rc -eq 0 ] || { echo "FAIL: control run failed (rc=$rc)"; fail=1; }
  out=$(timeout 60 "${run[@]}" "$bin" run "$sys" 3 2>&1); rc=$?          # FX_MODE_RECURSE
  echo "$arch recursion: $out"
  [ $rc -eq 86 ] && [[ "$out" == *"driver stack overflow: the $kib KiB kernel stack is exhausted"* ]] \
    || { echo "FAIL: overflow not caught as such (rc=$rc)"; fail=1; }
done
[ $fail -eq 0 ] && echo "ok: kernel-stack guard catches overflows on x86 and x64"
exit $fail
