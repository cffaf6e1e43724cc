#!/usr/bin/env bash
# libFuzzer (ASan+UBSan) on the SCSI translation for a bounded 30 s: random CDBs,
# CdbLength, DataTransferLength, sense buffer sizes, SG shapes, disk geometry and
# completion statuses, against the invariants in tests/fuzz/fuzz_scsi.c. First every
# seed of tests/fuzz/corpus must run clean and the seeds must still reach the paths
# they were written for (a layout change that silently turns them into noise fails).
set -u
cd "$(dirname "$0")/../.."
bin=out/host/fuzz/fuzz_scsi
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
work=out/check-work/fuzz_scsi; rm -rf "$work"; mkdir -p "$work/corpus" "$work/artifacts"
n=$(ls tests/fuzz/corpus | wc -l)
[ "$n" -ge 20 ] || { echo "seed corpus too small ($n)"; exit 1; }
trace=$(FUZZ_SCSI_TRACE=1 timeout 60 "$bin" tests/fuzz/corpus/* 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "$trace" | tail -30; echo "a seed fails"; exit 1; }
expect() {   # seed, pattern in its trace line
  line=$(FUZZ_SCSI_TRACE=1 "$bin" "tests/fuzz/corpus/$1" 2>&1 | grep '^fn')
  echo "$1: $line"
  echo "$line" | grep -q -- "$2" || { echo "seed $1 no longer reaches: $2"; exit 1; }
}
expect read10       'stages 1 types 0 srb 01'
expect write10_fua  'stages 2 types 4 srb 01'
expect vpd80        'stages 1 types 8 srb 01 .* dtl 255->24'
expect unmap        'stages 1 types 11 srb 01'
expect writesame16  'stages 1 types 13 srb 01'
expect tur_ua       'sense 6/2a/09'
expect readonly_write 'sense 7/27/00'
expect unknown      'sense 5/20/00'
timeout --kill-after=10 120 "$bin" -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus" tests/fuzz/corpus \
    > "$work/fuzz.log" 2>&1
rc=$?
tail -n 25 "$work/fuzz.log"
[ $rc -eq 0 ] || { echo "fuzzer found a problem (rc=$rc); artifacts in $work/artifacts"; exit 1; }
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
[ -n "$runs" ] && [ "$runs" -ge 10000 ] || { echo "too few executions: ${runs:-0}"; exit 1; }
echo "ok: $runs fuzz executions, no invariant or sanitizer failure"
