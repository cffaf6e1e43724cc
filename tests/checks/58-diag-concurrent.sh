#!/usr/bin/env bash
# Issue 6 "Tests" (c): the QUERY issued concurrently with a workload. `aerovblk-sim`'s
# CLI cannot interleave an IOCTL with a `run` (script steps run one after another), so
# tests/diag/concurrent_ioctl.c drives the simulator's core directly: a verified randrw
# workload on its own submitter threads while the main thread sends QUERY after QUERY
# (every 0.5 ms) through the same port path. Each mid-workload reply must be
# self-consistent (in-flight = submitted - completed = AvailIdx - UsedIdx, doorbells
# written + suppressed = submitted, bytes = 4 KiB x requests, counters monotonic, ...;
# the list is in the harness), the last one must match the workload exactly, and some
# replies must have caught requests in flight (proof the IOCTL really overlapped I/O).
# Runs: QEMU MSI-X QD32, QEMU INTx QD8, contract MSI-X QD32. No verifier finding, no
# sanitizer report (the harness is built with ASan+UBSan like the simulator).
. "$(dirname "$0")/../diag/common.sh"
need_sim; need_qemu
CI=out/diag/concurrent_ioctl
if ! make --no-print-directory -s "$CI" >"$SCRATCH/build.log" 2>&1; then
    sed 's/^/      /' "$SCRATCH/build.log" | tail -n 20
    echo "FAIL: could not build $CI (the simulator core's interface changed?)"
    exit 1
fi

# concurrent NAME BACKEND QD IOS [msi|intx]
concurrent() {
    local name=$1; shift
    local rc=0
    timeout --kill-after=5 90 "$CI" "$1" "$SCRATCH/$name.img" "${@:2}" >"$SCRATCH/$name.json" 2>"$SCRATCH/$name.err" || rc=$?
    echo "$rc" >"$SCRATCH/$name.rc"
    rm -f "$SCRATCH/$name.img"
    check "$name" 'rc == 0' "exit status 0"
    check "$name" 'j["violations"] == 0' "every mid-workload reply consistent, the last one equal to the workload"
    check "$name" 'j["findings"] == 0' "no verifier findings"
    check "$name" 'not __import__("re").search(r"'"$SANITIZER_RE"'", err)' "no sanitizer report"
    check "$name" 'j["workload_rc"] == 0 and j["workload_errors"] == 0 and j["mismatches"] == 0 and j["ios"] == '"$3" "workload of $3 I/Os verified"
    check "$name" 'j["replies"] >= 20 and j["replies_with_requests_in_flight"] >= 5 and j["max_current_in_flight"] >= 2' "QUERY overlapped I/O: $(sed -n 's/.*"replies":\([0-9]*\).*"replies_with_requests_in_flight":\([0-9]*\).*/\2 of \1 replies/p' "$SCRATCH/$name.json") saw requests in flight"
}
concurrent qemu-msix qemu 32 4000 msi
concurrent qemu-intx qemu 8 2000 intx
concurrent contract contract 32 4000 msi
finish
