#!/usr/bin/env bash
# The QUERY after adapter events: the Aero-layout event counters (0x20-0x3F) and Flags
# follow what happened, and the counters stay counters — docs/diagnostics.md §4:
# "a monotonically increasing count since the adapter started (HwFindAdapter)" — across
# a device reset and a power cycle, consistent with each other (DoorbellsWritten +
# DoorbellsSuppressed == requests submitted; CompletionsInInterrupts == completed), each
# against a count outside the driver (the device's notifications, the simulator's requests).
#   resize      QEMU block_resize during idle: CapacityChangeEvents 1, InterruptsConfig 1,
#               CapacitySectors the new size
#   reset       HwResetBus (script `reset`): HwResetBusCount 1
#   power-cycle ScsiStopAdapter + ScsiRestartAdapter: Flags 0 again
#   needs-reset contract device sets DEVICE_NEEDS_RESET: the driver resets it itself,
#               ResetDetectedCount 1, InterruptsConfig 1
# Each case runs a workload before the event and one after it, then QUERY.
. "$(dirname "$0")/../diag/common.sh"
need_sim; need_qemu

# --no-readback: the totals below are exact sums of both runs' fixed sizes (the first
# run's read-back count is not in the JSON)
RUN='run --rw randrw --bs 4K --qd 4 --ios 150 --span 8M --fua-pct 0 --no-readback --seed'
# state NAME 'event lines' 'expect keys' 'what' [sim options]
state() {
    local name=$1 event=$2 expect=$3 what=$4; shift 4
    printf '%s 1\n%s\n%s 2\nioctl\nexpect srb=1 return_code=0 field.flags=0 %s\n' "$RUN" "$event" "$RUN" "$expect" >"$SCRATCH/$name.script"
    # the first run's counts are not in the JSON (only the last run's): a twin script
    # with the same seeds and no event is not comparable either (thread timing), so the
    # totals are checked against the sum of both runs' fixed sizes (150 + 150 I/Os).
    rm -f "$SCRATCH/$name.img"
    sim_json "$name" --disk "$SCRATCH/$name.img" --size 16M "$@" script "$SCRATCH/$name.script"
    rm -f "$SCRATCH/$name.img"
    check_clean "$name"
    check "$name" 'rc == 0' "$what (expectations: flags 0 $expect)"
    check "$name" 'q["submitted_read"] + q["submitted_write"] == q["completed_read"] + q["completed_write"] == 300' "counters survive: 300 reads + writes submitted and completed over both runs"
    FLUSHES=4; [[ "$event" == *power-cycle* ]] && FLUSHES=7
    check "$name" "q['submitted_flush'] == q['completed_flush'] == $FLUSHES" "counters survive: $FLUSHES flushes (SYNCHRONIZE CACHE + SRB_FUNCTION_FLUSH per run; power cycle: those + STOP UNIT)"
    check "$name" 'q["bytes_read"] + q["bytes_written"] == 300 * 4096' "counters survive: bytes of both runs"
    # against sources outside the driver: the device's own notification count (contract
    # device; for QEMU the qtest-level writes into QEMU's notify region), and the requests
    # the simulator sent: 300 reads + writes, the flushes above, the bring-up's GET_IDs
    # (and for the contract device its own request count)
    check "$name" 'q["doorbells_written"] == j["device"]["doorbells"]' "DoorbellsWritten == notifications the device received (across the $name)"
    check "$name" "q['doorbells_written'] + q['doorbells_suppressed'] == 300 + $FLUSHES + q['submitted_get_id'] and (j['device']['requests'] in (-1, 300 + $FLUSHES + q['submitted_get_id']))" "DoorbellsWritten + DoorbellsSuppressed == requests submitted (300 + $FLUSHES flushes + GET_ID)"
    check "$name" "q['completions_in_interrupts'] == 300 + $FLUSHES + q['completed_get_id'] and q['completed_get_id'] == q['submitted_get_id']" "CompletionsInInterrupts == requests completed (300 + $FLUSHES flushes + GET_ID)"
    check "$name" 'q["max_in_flight"] >= 1 and q["current_in_flight"] == 0 and q["num_free"] == q["queue_size"]' "MaxInFlight kept, ring at rest"
}

state resize 'qmp {"execute":"block_resize","arguments":{"device":"d0","size":33554432}}
sleep 300
rescan' 'field.capacity_change_events=1 field.interrupts_config=1 field.capacity_sectors=65536 field.hw_reset_bus_count=0' \
    "block_resize: one capacity change, one config interrupt, new capacity"
state reset 'reset' 'field.hw_reset_bus_count=1 field.capacity_change_events=0' "HwResetBus counted once"
state power-cycle 'power-cycle' 'field.hw_reset_bus_count=0 field.reset_detected_count=0' "power cycle: adapter running again, no reset counted"
state needs-reset 'control needs-reset
sleep 300' 'field.reset_detected_count=1 field.interrupts_config=1 field.hw_reset_bus_count=0' \
    "DEVICE_NEEDS_RESET: the driver reset the device and told StorPort once" --backend contract
finish
