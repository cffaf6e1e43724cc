#!/usr/bin/env bash
# 64-bit PE loader, kernel stacks and MMIO trap (sim/pe), ASan+UBSan: the x86-64
# decoder, every MMIO instruction form checked against the CPU itself, the mingw-built
# amd64 fixture driver loaded (relocated, imports bound by name, section protections)
# and run (ms_abi calls both ways, cdecl variadic imports, MMIO, callbacks from two
# threads), refusals, malformed images, and the fatal paths. Then the shipped
# out/package/amd64/aerovblk.sys must bind against the Windows 7 SP1 export set.
# 71-peloader-x86.sh runs this same script with arguments "x86 x86".
set -u
cd "$(dirname "$0")/../.."
. tests/sim/x86.sh
build=${1:-x64} arch=${2:-amd64}
bin=out/peloader/$build/test_peloader
run=()   # x86: natively or under qemu-i386 (tests/sim/x86.sh)
[ "$build" = x86 ] && run=(bash tests/sim/x86.sh exec) && bin=$(x86_bin "$bin") && echo "x86 programs run $(x86_mode): $bin"
for f in "$bin" out/pe-fixtures/$arch/fixture.sys out/pe-fixtures/$arch/badimport.sys out/pe-fixtures/$arch/baddll.sys; do
  [ -e "$f" ] || { echo "missing $f (make peloader)"; exit 1; }
done
log=$(PE_FIXTURES=out/pe-fixtures/$arch timeout 300 "${run[@]}" "$bin" 2>&1); rc=$?
echo "$log"
[ $rc -eq 0 ] || { echo "test_peloader ($build) failed (rc=$rc)"; exit 1; }
. tests/unit/all-ran.sh      # every test of the source's tests[] array, exactly
all_tests_ran tests/unit/test_peloader.c "$log" || exit 1
n=$ntests
if echo "$log" | grep -qE 'runtime error|AddressSanitizer|LeakSanitizer'; then
  echo "sanitizer report in the log"; exit 1
fi
sys=out/package/$arch/aerovblk.sys
if [ -e "$sys" ]; then
  out=$(timeout 60 "${run[@]}" "$bin" load-win7 "$sys" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "shipped $sys does not load against the Windows 7 exports"; exit 1; }
else
  echo "note: $sys not built; only the fixtures were loaded"
fi
echo "ok: $n sim/pe tests passed ($build)"
