#!/usr/bin/env bash
# The verifier rules added by the simulator hardening (docs/simulator.md "The verifier"):
# the test miniport (tests/unit/sim_fake_miniport.c) breaks one rule at a time and each
# run must fail with the rule's message; the same miniport without a bug passes.
. "$(dirname "$0")/../sim/common.sh"
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/disk.img
truncate -s 8M "$IMG"
fake() {   # fake NAME BUG REGEX [extra sim args...]; REGEX "" = must pass
    local name=$1 bug=$2 re=$3 rc=0; shift 3
    SIM_FAKE_BUG=$bug SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" --timeout 50 \
        --srb-timeout 1 "$@" >"$SCRATCH/$name.out" 2>&1 || rc=$?
    if [ -z "$re" ]; then
        if [ $rc -eq 0 ] && ! grep -q VERIFIER "$SCRATCH/$name.out"; then echo "ok    [$name] correct miniport passes${bug:+ ($bug)}"
        else echo "FAIL  [$name] correct miniport did not pass (rc=$rc)"; grep VERIFIER "$SCRATCH/$name.out" | head -5; FAILS=$((FAILS+1)); fi
        return
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 3 ] && grep -Eq "$re" "$SCRATCH/$name.out"; then
        echo "ok    [$name] caught: $(grep -Em1 "$re" "$SCRATCH/$name.out" | cut -c1-150)"
    else
        echo "FAIL  [$name] $bug not caught as /$re/ (rc=$rc)"; tail -5 "$SCRATCH/$name.out"; FAILS=$((FAILS+1))
    fi
}
RUN=(run --qd 4 --ios 200)
fake clean "" "" "${RUN[@]}"
fake bufover buffer-overrun "wrote 1 bytes past DataTransferLength" "${RUN[@]}"
fake extover srbext-overrun "wrote 1 bytes past SrbExtensionSize" "${RUN[@]}"
# StorPortGetPhysicalAddress: every request of the clean runs resolves its SRB extension
# (Srb NULL, contiguous to the page end) and its sense buffer (with the SRB); the sense
# buffer without its SRB is refused.
fake gpasense gpa-sense-null "StorPortGetPhysicalAddress\(0x[0-9a-f]+\): not in" "${RUN[@]}"
# Where calls are allowed, SRB result consistency, the S/G list is read-only.
fake devbase devicebase-late "StorPortGetDeviceBase outside HwFindAdapter" "${RUN[@]}"
fake dpcinit dpc-in-initialize "StorPortInitializeDpc outside HwPassiveInitializeRoutine" "${RUN[@]}"
fake ccnosense checkcond-no-sense "CHECK CONDITION but without SRB_STATUS_AUTOSENSE_VALID" "${RUN[@]}"
fake successbad success-bad-status "SRB_STATUS_SUCCESS but SCSI status 0x08" "${RUN[@]}"
fake asgood autosense-good "AUTOSENSE_VALID but SCSI status GOOD" "${RUN[@]}"
fake sgmod sg-modify "scatter/gather list of SRB \(CDB 28\) was modified" "${RUN[@]}"
# HwResetBus contract: the LU queue stays paused from the LU reset SRB to the end of
# HwResetBus (held-write fails any request started in between), and an SRB never
# completed after StorPort's repeated resets is a finding.
fake heldwrite held-write "" run --qd 4 --seconds 3
if grep -q "started during the reset escalation" "$SCRATCH/heldwrite.out"; then
    echo "FAIL  [heldwrite] a request reached the miniport during the reset escalation"; FAILS=$((FAILS+1)); fi
grep -q "calling HwResetBus" "$SCRATCH/heldwrite.out" && echo "ok    [heldwrite] escalation reached HwResetBus, queue paused throughout" \
    || { echo "FAIL  [heldwrite] no HwResetBus"; FAILS=$((FAILS+1)); }
# Since issue 11 item 7: StorPort keeps SRBs HwResetBus left (viostor's HwResetBus
# completed nothing for years, virtio-win #135) and resets again; one still not back
# after the second round is the finding.
fake resetkeeps never-complete "still not completed after two rounds of StorPort.s resets" --reset-tiers bus run --qd 4 --ios 200
finish
