#!/usr/bin/env bash
# Corrupted used-ring entries injected in the middle of a workload: `bad-used-id` (a
# used element names id queue_size + 7) and `dup-used-id` (a completion published twice
# under one used.idx update). The driver declares the ring broken, logs which rule the
# device broke (UniqueId 0xA0B10Bxx, low byte VQ_BROKEN_*: 1 idx jump, 2 id out of
# range, 3 id not in flight), tells StorPort (ResetDetected) exactly once per fault,
# resets and re-initialises the device, completes what was in flight with BUS_RESET
# (bad-used-id: at least the request whose id was replaced); the class layer retries and every read and every written chunk verifies. Memory
# safety: ASan/UBSan clean, no verifier finding (no SRB completed twice, no touch after
# completion, no uncached-extension overrun). MSI-X and INTx.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
# completions the class layer saw, by SRB status / by sense key (aerovblk-sim --json)
CC='(lambda s: j.get("class_completions", {}).get(s, 0))'
SK='(lambda k: j.get("class_sense_keys", {}).get(k, 0))'
need_sim
for fault in bad-used-id dup-used-id; do
    cat >"$SCRATCH/$fault.script" <<S
after 300 control $fault
run --rw randrw --bs 4K --qd 8 --seconds 1
expect errors=0 mismatches=0 findings=0
S
    for v in msix intx; do
        name=$fault-$v
        opts=""; [ $v = intx ] && opts="--device-opts msix=off"
        sim_json $name --backend contract --size 32M $opts script "$SCRATCH/$fault.script"
        lifecycle_clean $name
        if [ $fault = bad-used-id ]; then
            check $name "$NLOG('UniqueId 0xa0b10b02') == 1" "event log: 0xA0B10B02 (used id out of range) once"
            # the request whose id was replaced is still in flight at the reset
            check $name "$CC('BUS_RESET') >= 1 and j['class_retries'] >= $CC('BUS_RESET')" "the SRBs in flight came back with SRB_STATUS_BUS_RESET and were retried"
        else
            check $name "$NLOG('UniqueId 0xa0b10b01') + $NLOG('UniqueId 0xa0b10b03') == 1" "event log: 0xA0B10B01/03 (idx jump / id not in flight) once"
        fi
        check $name "$SK('MEDIUM_ERROR') == 0 and $CC('ERROR') == $SK('ILLEGAL_REQUEST')" "no MEDIUM ERROR or other error status at the class layer (in-flight SRBs: BUS_RESET only)"
        check $name "$NLOG('UniqueId 0xa0b1') == 1" "no other event-log entry (one fault, one reset)"
        check $name 'j["reset_detected"] == 1' "StorPortNotification(ResetDetected) exactly once"
        check $name 'j["srb_timeouts"] == 0' "no request waited for a StorPort timeout"
        check $name 'j["workload"]["image_chunks_checked"] > 0 and j["workload"]["image_mismatches"] == 0' "every written chunk verified in the image file"
    done
done
finish
