#!/usr/bin/env bash
# Runs every tests/checks/*.sh (sorted), each one test: exit 0 = pass, 77 = skip.
# Output of each goes to out/check-logs/<name>.log; failures print their log tail.
# Ends with the plain summary line CI reads: "N passed, N failed, N skipped".
#
# Lanes on a 2-core machine (many checks mostly wait: timeouts, QEMU, qtest, Wine): the
# lanes named in CHECK_BACKGROUND start first, each in the background, one after another
# within a lane ('+' joins the checks of one lane) — by default the shipped-binary
# scenario reruns of check 77 (two workers over both arches' runs, about 10 minutes), the
# bounded soak, the mutation subset, the two image-injection checks, the PE/INF/catalog/
# Wine checks (they share out/pe-tests and Wine, so they stay in one lane) and the slow-
# flush and reproducible-build checks (mostly waiting); the rest run one after another
# meanwhile. Lanes are independent: they only read build products and keep their scratch
# files apart. CHECK_BACKGROUND= (empty) runs everything in one lane. Each check's line
# says its wall-clock and CPU seconds (the CPU is what the lanes compete for; the 3x and
# 6x checks in lanes of their own once made a timing-sensitive x86 scenario of check 77
# fail at load average 8, with 77 then the last to end).
set -u
cd "$(dirname "$0")/.."
logs=out/check-logs; mkdir -p "$logs"
pass=0; fail=0; skip=0; failed=()
filter=${CHECK_FILTER:-}
background=${CHECK_BACKGROUND-77-shipped-scenarios 85-soak-bounded 98-mutants-subset 80-inject-disk+80-inject-wim \
12-pecheck-good+13-pecheck-bad+14-infcheck-good+15-infcheck-bad+18-no-globals+19a-catalog-wine+19b-dist+51-query-tool-wine+51a-wine-inf-install \
60h-sim-slow-flush+19c-reproducible}
# Every run of the x86 driver or an x86 test program adds its mode here
# (sim/x86_launch.c, tests/sim/x86.sh): the summary says how many ran, and how.
export AEROVBLK_X86_LOG=$PWD/$logs/x86-runs.txt
: >"$AEROVBLK_X86_LOG"

selected() { [[ -z "$filter" || "$1" == *$filter* ]]; }
is_background() { [[ " ${background//+/ } " == *" $1 "* ]]; }
run_one() {   # name script: runs it, leaves "rc secs cpu-secs" in $logs/name.result
  local start rc user sys TIMEFORMAT='%U %S'
  start=$(date +%s)
  # CPU seconds (user + system of the check's processes), timed in a subshell of its own
  # so that a background lane ending meanwhile is not counted
  ( time timeout --kill-after=10 "${CHECK_TIMEOUT:-$2}" bash "tests/checks/$1.sh" >"$logs/$1.log" 2>&1 ) \
    2>"$logs/$1.cpu"
  rc=$?
  read -r user sys <"$logs/$1.cpu" || { user=0 sys=0; }
  echo "$rc $(( $(date +%s) - start )) $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')" >"$logs/$1.result"
}
run_lane() {  # the selected checks of one background lane, in order
  local name
  for name in ${1//+/ }; do
    [ -f "tests/checks/$name.sh" ] && selected "$name" && run_one "$name" 1500
  done
}
report() {   # name: prints its line from $logs/name.result and counts it
  local name=$1 rc secs cpu
  read -r rc secs cpu <"$logs/$name.result"
  if [ "$rc" -eq 0 ]; then pass=$((pass+1)); echo "PASS  $name (${secs}s, cpu ${cpu:-?}s)"
  elif [ "$rc" -eq 77 ]; then skip=$((skip+1)); echo "SKIP  $name: $(tail -n1 "$logs/$name.log")"
  else fail=$((fail+1)); failed+=("$name"); echo "FAIL  $name (rc=$rc, ${secs}s, cpu ${cpu:-?}s)"; tail -n 25 "$logs/$name.log" | sed 's/^/    /'
  fi
}

bg_names=(); bg_pids=()
for lane in $background; do
  names=()
  for name in ${lane//+/ }; do
    [ -f "tests/checks/$name.sh" ] && selected "$name" || continue
    rm -f "$logs/$name.result"; names+=("$name")
  done
  [ ${#names[@]} -gt 0 ] || continue
  run_lane "$lane" & bg_pids+=($!); bg_names+=("${names[*]}")
  echo "....  ${names[*]} started in a background lane"
done
for t in tests/checks/*.sh; do
  name=$(basename "$t" .sh)
  selected "$name" && ! is_background "$name" || continue
  run_one "$name" 600
  report "$name"
done
for i in "${!bg_pids[@]}"; do
  wait "${bg_pids[$i]}"
  for name in ${bg_names[$i]}; do
    [ -f "$logs/$name.result" ] || echo "125 0" >"$logs/$name.result"
    report "$name"
  done
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
x86_native=$(grep -c '^native$' "$AEROVBLK_X86_LOG"); x86_emulated=$(grep -c '^emulated$' "$AEROVBLK_X86_LOG")
echo "x86 (32-bit) runs: $x86_native native, $x86_emulated emulated under qemu-i386 (AEROVBLK_X86_MODE=${AEROVBLK_X86_MODE:-auto})"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
