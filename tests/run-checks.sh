#!/usr/bin/env bash
# Runs every tests/checks/*.sh (sorted), each one test: exit 0 = pass, 77 = skip.
# Output of each goes to out/check-logs/<name>.log; failures print their log tail.
# Ends with the plain summary line CI reads: "N passed, N failed, N skipped".
#
# Lanes on a 2-core machine (many checks mostly wait: timeouts, QEMU, qtest): the checks
# named in CHECK_BACKGROUND start first, each in a background lane of its own — by
# default the shipped-binary scenario reruns of check 77 (which runs its two arches side
# by side, about 10 minutes), the bounded soak, the mutation subset and the image-
# injection checks, all independent of the others: they only read build products and
# keep their scratch files apart; the rest run one after another meanwhile.
# CHECK_BACKGROUND= (empty) runs everything in one lane.
set -u
cd "$(dirname "$0")/.."
logs=out/check-logs; mkdir -p "$logs"
pass=0; fail=0; skip=0; failed=()
filter=${CHECK_FILTER:-}
background=${CHECK_BACKGROUND-77-shipped-scenarios 85-soak-bounded 98-mutants-subset 80-inject-disk 80-inject-wim}
# Every run of the x86 driver or an x86 test program adds its mode here
# (sim/x86_launch.c, tests/sim/x86.sh): the summary says how many ran, and how.
export AEROVBLK_X86_LOG=$PWD/$logs/x86-runs.txt
: >"$AEROVBLK_X86_LOG"

selected() { [[ -z "$filter" || "$1" == *$filter* ]]; }
is_background() { [[ " $background " == *" $1 "* ]]; }
run_one() {   # name script: runs it, leaves "rc secs" in $logs/name.result
  local start rc
  start=$(date +%s)
  timeout --kill-after=10 "${CHECK_TIMEOUT:-$2}" bash "tests/checks/$1.sh" >"$logs/$1.log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" >"$logs/$1.result"
}
report() {   # name: prints its line from $logs/name.result and counts it
  local name=$1 rc secs
  read -r rc secs <"$logs/$name.result"
  if [ "$rc" -eq 0 ]; then pass=$((pass+1)); echo "PASS  $name (${secs}s)"
  elif [ "$rc" -eq 77 ]; then skip=$((skip+1)); echo "SKIP  $name: $(tail -n1 "$logs/$name.log")"
  else fail=$((fail+1)); failed+=("$name"); echo "FAIL  $name (rc=$rc, ${secs}s)"; tail -n 25 "$logs/$name.log" | sed 's/^/    /'
  fi
}

bg_names=(); bg_pids=()
for t in tests/checks/*.sh; do
  name=$(basename "$t" .sh)
  selected "$name" && is_background "$name" || continue
  rm -f "$logs/$name.result"
  run_one "$name" 1500 & bg_pids+=($!); bg_names+=("$name")
  echo "....  $name started in the background lane"
done
for t in tests/checks/*.sh; do
  name=$(basename "$t" .sh)
  selected "$name" && ! is_background "$name" || continue
  run_one "$name" 600
  report "$name"
done
for i in "${!bg_pids[@]}"; do
  wait "${bg_pids[$i]}"
  [ -f "$logs/${bg_names[$i]}.result" ] || echo "125 0" >"$logs/${bg_names[$i]}.result"
  report "${bg_names[$i]}"
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
x86_native=$(grep -c '^native$' "$AEROVBLK_X86_LOG"); x86_emulated=$(grep -c '^emulated$' "$AEROVBLK_X86_LOG")
echo "x86 (32-bit) runs: $x86_native native, $x86_emulated emulated under qemu-i386 (AEROVBLK_X86_MODE=${AEROVBLK_X86_MODE:-auto})"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
