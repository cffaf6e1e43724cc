#!/usr/bin/env bash
# The verifier itself: a test miniport (tests/unit/sim_fake_miniport.c) breaks one
# Windows rule at a time; each run must fail with its specific message. The same
# miniport without a bug must pass, so the failures are the bugs, not the harness.
. "$(dirname "$0")/../sim/common.sh"
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/disk.img
truncate -s 8M "$IMG"
fake() {   # fake NAME BUG REGEX
    local name=$1 bug=$2 re=$3 rc=0
    SIM_FAKE_BUG=$bug SIM_FAKE_DISK=$IMG "$SIM_FAKE" --backend contract --disk "$IMG" --timeout 60 \
        --srb-timeout 1 run --qd 4 --ios 200 >"$SCRATCH/$name.out" 2>&1 || rc=$?
    if [ -z "$bug" ]; then
        if [ $rc -eq 0 ] && ! grep -q VERIFIER "$SCRATCH/$name.out"; then echo "ok    [$name] correct miniport passes (${SIM_FAKE_SYNC:-full}-duplex, ${SIM_FAKE_ISM:-synchronize-all})"
        else echo "FAIL  [$name] correct miniport did not pass (rc=$rc)"; tail -5 "$SCRATCH/$name.out"; FAILS=$((FAILS+1)); fi
        return
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 3 ] && grep -Eq "$re" "$SCRATCH/$name.out"; then
        echo "ok    [$name] caught: $(grep -Em1 "$re" "$SCRATCH/$name.out" | cut -c1-150)"
    else
        echo "FAIL  [$name] $bug not caught as /$re/ (rc=$rc)"; tail -5 "$SCRATCH/$name.out"; FAILS=$((FAILS+1))
    fi
}
fake clean "" ""
SIM_FAKE_SYNC=half fake clean-halfduplex "" ""
SIM_FAKE_ISM=permessage fake clean-permessage "" ""
fake double double-complete "completed twice"
fake never never-complete "never completed|still not completed .*StorPort.s resets"
fake notowned complete-not-owned "is not owned by the miniport"
fake touch touch-after-complete "use-after-poison|modified after completion"
fake ilock ilock-in-isr "InterruptLock is already held.*HwMSInterruptRoutine"
fake slock startio-lock-in-startio "StartIoLock is already held.*HwStartIo"
fake order lock-order "acquired while holding the interrupt lock"
fake pool pool-at-dirql "StorPortAllocatePool called at DIRQL"
fake registry registry-in-startio "StorPortRegistryRead called at DISPATCH_LEVEL"
fake unclate uncached-late "StorPortGetUncachedExtension outside HwFindAdapter"
fake overrun uncached-overrun "uncached extension overrun"
fake leak pool-leak "not freed at unload"
fake mmio mmio-outside-bar "outside a mapped BAR"
fake databuf databuffer-deref "dereferenced the DataBuffer of a READ/WRITE SRB"
finish
