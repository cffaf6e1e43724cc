#!/usr/bin/env bash
# The shipped out/package/x86/aerovblk.sys through the one command users type,
# `aerovblk-sim --driver out/package/x86/aerovblk.sys ...`: the 64-bit simulator hands it
# to the 32-bit simulator (gcc -m32: stdcall/cdecl boundaries for real, 12 KiB kernel
# stack), natively or under qemu-i386 (AEROVBLK_X86_MODE, sim/x86_launch.c); the same
# scenarios as 74-shipped-x64-sim.sh. Where the kernel executes 32-bit code both paths
# run; where it cannot, AEROVBLK_X86_MODE=native must fail saying why, and the
# emulated path runs. The 32-bit simulators are build products: missing is a failure.
set -u
cd "$(dirname "$0")/../.."
. tests/sim/x86.sh
for b in out/peloader/x86/aerovblk-sim out/peloader/x86-noasan/aerovblk-sim; do
  [ -x "$b" ] || { echo "FAIL: 32-bit simulator $b not built (make peloader-sim32)"; exit 1; }
done
sim=out/host/aerovblk-sim sys=out/package/x86/aerovblk.sys
says() {  # mode: the run must say it ran that way
  local out
  out=$(AEROVBLK_X86_MODE=$1 timeout 120 "$sim" --backend contract --driver "$sys" info 2>&1)
  echo "$out" | head -n 2
  grep -q "x86 driver, $1" <<<"$out" || { echo "FAIL: AEROVBLK_X86_MODE=$1: the run does not say '$1'"; exit 1; }
}
if x86_can_run_native; then
  modes="native emulated"
else
  out=$(AEROVBLK_X86_MODE=native timeout 60 "$sim" --backend contract --driver "$sys" info 2>&1); rc=$?
  echo "native where the kernel cannot (rc=$rc): $out"
  [ $rc -eq 2 ] && grep -q "cannot execute 32-bit programs" <<<"$out" \
    || { echo "FAIL: AEROVBLK_X86_MODE=native on a kernel without 32-bit support must fail and say why"; exit 1; }
  modes="emulated"
fi
out=$(AEROVBLK_X86_MODE=bogus "$sim" --driver "$sys" info 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "must be native, emulated or auto" <<<"$out" || { echo "FAIL: bad AEROVBLK_X86_MODE accepted"; exit 1; }
for m in $modes; do
  says "$m"
  AEROVBLK_X86_MODE=$m bash tests/checks/74-shipped-x64-sim.sh "$sim" x86 || { echo "FAIL: $m"; exit 1; }
done
echo "ok: shipped x86 aerovblk.sys passes, modes run: $modes"
