#!/usr/bin/env bash
# Issue 11 item 3: the same STOR_DPC may run on two CPUs at once (facts §11.6: ReactOS
# hands the miniport's routine to KeInitializeDpc with no wrapper lock; the
# StorPortIssueDpc page claims serialisation). With --dpc-reentrant the simulator drops
# the per-DPC serialisation and re-queues a running DPC (one run in two) so that its
# second DPC thread really runs it concurrently; --dpc-delay-us widens the overlap.
# The driver's DPC must take every lock it needs: drain under the queue lock, complete
# only what it detached, recover and handle config changes under the StartIo lock.
# (INTx adds nothing here: its ISR, not the DPC, reads the ISR byte.)
# Asserted: clean (no double completion, no ring corruption: the verifier, ASan and the
# verified data would show them), DPC runs really overlapped, and without the option none did.
#
# Negative control: the test miniport with SIM_FAKE_BUG=dpc-scratch-in-extension keeps the
# DPC's list of completed SRBs in its device extension (a common stack saving, right
# only while StorPort serialises the DPC): it passes without --dpc-reentrant and fails
# with it (two runs overwrite each other's list: an SRB handled after completion).
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
RUN="run --rw randrw --bs 4K --qd 16 --seconds 1 --power-cycle-every 200"

reentrant_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" 'j["dpc_concurrent"] > 5' "the same DPC ran on two threads at once (dpc_concurrent > 5)"
    check "$name" 'j["srb_timeouts"] == 0 and j["class_retries"] == 0' "no request lost"
}
sim_json contract --backend contract --size 32M --dpc-reentrant --dpc-delay-us 200 $RUN
reentrant_ok contract
# control: without the option StorPort's serialisation holds
sim_json serialized --backend contract --size 32M --dpc-delay-us 200 $RUN
lifecycle_clean serialized
check serialized 'j["dpc_concurrent"] == 0 and j["dpcs"] > 20' "without --dpc-reentrant no DPC run overlapped another of the same DPC"
if [ -x "$SIM_FAKE" ] && [ -z "${AEROVBLK_SIM_DRIVER:-}" ]; then
    IMG=$SCRATCH/fake.img
    truncate -s 8M "$IMG"
    for mode in serialized reentrant; do
        rc=0
        SIM_FAKE_BUG=dpc-scratch-in-extension SIM_FAKE_DISK=$IMG timeout 120 "$SIM_FAKE" --backend contract --disk "$IMG" \
            --timeout 60 $([ $mode = reentrant ] && echo --dpc-reentrant) --dpc-delay-us 200 run --qd 16 --seconds 1 \
            >"$SCRATCH/fake-$mode.out" 2>&1 || rc=$?
        if [ $mode = serialized ]; then
            if [ $rc -eq 0 ]; then echo "ok    [fake-$mode] DPC scratch in the extension passes while the DPC is serialised"
            else echo "FAIL  [fake-$mode] rc=$rc"; tail -5 "$SCRATCH/fake-$mode.out"; FAILS=$((FAILS+1)); fi
        elif [ $rc -ne 0 ] && [ $rc -ne 3 ] && grep -Eq "use-after-poison|completed twice|not owned by the miniport|never completed" "$SCRATCH/fake-$mode.out"; then
            echo "ok    [fake-$mode] caught with --dpc-reentrant: $(grep -Em1 "use-after-poison|completed twice|not owned by the miniport|never completed" "$SCRATCH/fake-$mode.out" | cut -c1-120)"
        else echo "FAIL  [fake-$mode] not caught (rc=$rc)"; tail -5 "$SCRATCH/fake-$mode.out"; FAILS=$((FAILS+1)); fi
    done
fi
if command -v qemu-system-x86_64 >/dev/null; then
    # one shared message: the DPC also reads the ISR byte and handles config changes
    sim_json qemu-shared --size 64M --msi-messages 1 --dpc-reentrant --dpc-delay-us 200 $RUN
    reentrant_ok qemu-shared
fi
finish
