#!/usr/bin/env bash
# Issue 6 "Tests" (b): the QUERY counters match the workload that ran. Each case is one
# simulator script: a verified workload, then `ioctl`; the driver's counters are compared
# with the simulator's own counts (it sees every SRB, every MMIO access per virtio
# region and every interrupt it delivers), exactly:
#   Submitted/Completed read & write == the workload's reads & writes; flush == 1 when
#   the run wrote (its final SYNCHRONIZE CACHE); BytesRead/BytesWritten == the workload's;
#   DoorbellsWritten == the notifications the device received (the contract device's
#   own count; for QEMU the qtest-level writes into QEMU's notify region, not the
#   simulator's region accounting); Written + Suppressed == requests submitted (the
#   contract device's request count; for QEMU from the simulator's SRBs);
#   interrupts by source == interrupts delivered (INTx: == ISR reads);
#   CompletionsInInterrupts == completions; ring at rest (AvailIdx == UsedIdx ==
#   submitted mod 2^16, NumFree == QueueSize, CurrentInFlight 0); MaxInFlight within
#   the queue depth; BusyCompletions == the port's BUSY requeues; no device errors;
#   interrupt mode, vectors, message count, capacity, block size, transfer size as
#   the port saw them.
. "$(dirname "$0")/../diag/common.sh"
need_sim; need_qemu

# counters NAME QD 'run options' [sim options...]
counters() {
    local name=$1 qd=$2 run=$3; shift 3
    local DEVSRC="qtest-level writes to QEMU's notify region" REQSRC="the simulator's SRBs"
    local SUBMITTED='w["reads"] + w["readback_reads"] + w["writes"] + ((2 + w["fua_writes"]) if w["writes"] else 0) + q["submitted_get_id"]'
    if [[ " $* " == *" contract "* ]]; then
        DEVSRC="the contract device's own count"; REQSRC="the contract device's count"
        SUBMITTED='j["device"]["requests"]'
    fi
    printf 'run %s --qd %s\nioctl\nexpect srb=1 return_code=0\n' "$run" "$qd" >"$SCRATCH/$name.script"
    sim_json "$name" --size 64M "$@" script "$SCRATCH/$name.script"
    check_clean "$name"
    check "$name" 'w["ios"] > 0 and q["submitted_read"] == q["completed_read"] == w["reads"] + w["readback_reads"] and q["submitted_write"] == q["completed_write"] == w["writes"]' "read/write submitted == completed == workload (+ its read-back pass) ($(printf %s "$run"))"
    check "$name" 'q["bytes_read"] == w["bytes_read"] + w["readback_reads"] * w["bs"] and q["bytes_written"] == w["bytes_written"]' "BytesRead/BytesWritten == workload bytes (+ read-back pass)"
    check "$name" 'q["submitted_flush"] == q["completed_flush"] == ((2 + w["fua_writes"]) if w["writes"] else 0)' "flush: SYNCHRONIZE CACHE + SRB_FUNCTION_FLUSH after writing, one more per FUA write"
    check "$name" 'sum(q["submitted_" + t] for t in ("read","write","flush","discard","write_zeroes","get_id")) == sum(q["completed_" + t] for t in ("read","write","flush","discard","write_zeroes","get_id")) == q["completions_in_interrupts"]' "every submitted request completed, all by interrupt/DPC passes"
    # independent of the simulator's own region accounting: the device's count of the
    # notifications it received (contract device), or the qtest-level writes that reached
    # QEMU's notify region (BAR 4 + 0x3000, QEMU's layout: sim/qemu_backend_ops.c)
    check "$name" 'q["doorbells_written"] == j["device"]["doorbells"] == j["doorbells"]' "DoorbellsWritten == notifications the device received ($DEVSRC)"
    # requests submitted, counted by the device (contract) or from the simulator's own
    # SRBs: reads (+ read-back pass) + writes + flushes (SYNCHRONIZE CACHE, SRB_FUNCTION_FLUSH,
    # one per FUA write) + the bring-up's GET_ID requests
    check "$name" "q['doorbells_written'] + q['doorbells_suppressed'] == ($SUBMITTED)" "DoorbellsWritten + DoorbellsSuppressed == requests submitted ($REQSRC)"
    check "$name" 'q["interrupts_queue"] + q["interrupts_config"] + q["interrupts_spurious"] == j["interrupts"] and q["interrupts_config"] == 0' "interrupts by source == interrupts delivered"
    check "$name" "q['completions_in_interrupts'] == ($SUBMITTED)" "CompletionsInInterrupts == requests submitted ($REQSRC): every one completed by an interrupt/DPC pass"
    check "$name" 'q["avail_idx"] == q["used_idx"] == j["ioctl"]["query"]["derived"]["submitted_total"] % 65536 and q["num_free"] == q["queue_size"] == j["queue_size"] and q["current_in_flight"] == 0' "ring at rest: AvailIdx == UsedIdx == submitted, all descriptors free"
    check "$name" '1 <= q["max_in_flight"] <= '"$qd"' and 1 <= q["max_completions_per_interrupt"] <= q["max_in_flight"]' "MaxInFlight within QD $qd"
    check "$name" 'q["busy_completions"] == j["busy_requeues"] and q["errors_ioerr"] == 0 and q["errors_out_of_range"] == 0' "BUSY == port requeues; no device errors"
    check "$name" 'q["capacity_sectors"] * 512 == j["capacity_bytes"] and q["logical_block_size"] == j["block_size"] and q["maximum_transfer_length"] == j["max_transfer"]' "capacity, block size, transfer size as the port saw them"
}
msix() {   # NAME MESSAGES QUEUE_VECTOR
    check "$1" 'q["interrupt_mode"] == 1 and j["interrupt_mode"] == "MSI-X" and q["message_count"] == j["msix_messages"] == '"$2"' and q["msix_config_vector"] == 0 and q["msix_queue0_vector"] == '"$3" "MSI-X: $2 message(s), config vector 0, queue vector $3"
}

counters msix 32 "--rw randrw --bs 4K --ios 3000 --seed 7 --span 16M"
msix msix 2 1
check msix 'j["mmio_by_region"]["isr"][0] == 0 and w["mmio_reads"] == 0' "MSI-X: no register read in the I/O path"
check msix 'q["doorbells_suppressed"] > 0' "EVENT_IDX at QD32: some doorbells suppressed"

counters intx 4 "--rw randrw --bs 4K --ios 1000 --seed 3 --span 16M" --no-msi
check intx 'q["interrupt_mode"] == 0 and q["message_count"] == 0 and q["msix_config_vector"] == q["msix_queue0_vector"] == 0xFFFF' "INTx: mode 0, no messages, vectors 0xFFFF"
check intx 'j["mmio_by_region"]["isr"][0] == j["interrupts"] and j["intx_unclaimed"] == 0' "INTx: one ISR read per interrupt, none unclaimed"

counters vec1 8 "--rw read --bs 64K --ios 200 --seed 5" --device-opts vectors=1
msix vec1 1 0
check vec1 'q["bytes_read"] == 200 * 65536 and q["submitted_read"] == 200' "64 KiB sequential reads: 200 requests, 12.5 MiB"

counters noevidx 16 "--rw randwrite --bs 8K --ios 1000 --seed 9 --span 16M" --device-opts event_idx=off
check noevidx 'q["bytes_written"] == 1000 * 8192 and (q["negotiated_features"] >> 29) & 1 == 0' "event_idx=off: 8 KiB writes counted, EVENT_IDX not negotiated"

counters contract 8 "--rw randrw --bs 4K --ios 2000 --seed 11" --backend contract
msix contract 2 1
finish
