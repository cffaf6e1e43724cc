#!/usr/bin/env bash
# Runs every tests/checks/*.sh (sorted), each one test: exit 0 = pass, 77 = skip.
# Output of each goes to out/check-logs/<name>.log; failures print their log tail.
# Ends with the plain summary line CI reads: "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
logs=out/check-logs; mkdir -p "$logs"
pass=0; fail=0; skip=0; failed=()
filter=${CHECK_FILTER:-}
# Every run of the x86 driver or an x86 test program adds its mode here
# (sim/x86_launch.c, tests/sim/x86.sh): the summary says how many ran, and how.
export AEROVBLK_X86_LOG=$PWD/$logs/x86-runs.txt
: >"$AEROVBLK_X86_LOG"
for t in tests/checks/*.sh; do
  name=$(basename "$t" .sh)
  [[ -n "$filter" && "$name" != *$filter* ]] && continue
  start=$(date +%s)
  timeout --kill-after=10 "${CHECK_TIMEOUT:-600}" bash "$t" >"$logs/$name.log" 2>&1
  rc=$?; secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "PASS  $name (${secs}s)"
  elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "SKIP  $name: $(tail -n1 "$logs/$name.log")"
  else fail=$((fail+1)); failed+=("$name"); echo "FAIL  $name (rc=$rc, ${secs}s)"; tail -n 25 "$logs/$name.log" | sed 's/^/    /'
  fi
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
x86_native=$(grep -c '^native$' "$AEROVBLK_X86_LOG"); x86_emulated=$(grep -c '^emulated$' "$AEROVBLK_X86_LOG")
echo "x86 (32-bit) runs: $x86_native native, $x86_emulated emulated under qemu-i386 (AEROVBLK_X86_MODE=${AEROVBLK_X86_MODE:-auto})"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
