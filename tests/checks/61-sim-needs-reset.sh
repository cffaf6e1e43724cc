#!/usr/bin/env bash
# DEVICE_NEEDS_RESET injected into the contract device in the middle of a workload
# (`after 300 control needs-reset`: whatever is in flight then; `after 800 control
# needs-reset-next`: with the next request the device takes, so at least that one is in
# flight): the device stops processing and raises a config interrupt; the driver resets it, completes every outstanding SRB with
# SRB_STATUS_BUS_RESET, the class layer retries them, and the data verifies. Its event
# log shows the reset as UniqueId 0xA0B10Cxx (docs/lifecycle.md) and StorPort hears
# ResetDetected once per injection. MSI-X (config vector), one shared MSI-X message
# (the ISR byte tells config from queue) and INTx (ISR bit 1). The SRB status is
# checked itself (the class layer's per-status completion counts): BUS_RESET seen and
# retried, no MEDIUM ERROR — the class layer follows classpnp, which does not retry a
# MEDIUM ERROR, so a reset that failed SRBs with 03/11/00 would also fail the workload.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
# completions the class layer saw, by SRB status / by sense key (aerovblk-sim --json)
CC='(lambda s: j.get("class_completions", {}).get(s, 0))'
SK='(lambda k: j.get("class_sense_keys", {}).get(k, 0))'
need_sim
cat >"$SCRATCH/nr.script" <<'S'
after 300 control needs-reset
after 800 control needs-reset-next
run --rw randrw --bs 4K --qd 8 --seconds 1
expect errors=0 mismatches=0
run --rw randrw --bs 16K --qd 4 --ios 300
expect errors=0 mismatches=0 ios=300 findings=0
S
# NAME  simulator option  interrupt mode  MSI-X messages
while read -r v opts mode msgs; do
    [ "$opts" = - ] && opts=""
    sim_json $v --backend contract --size 32M $opts script "$SCRATCH/nr.script"
    lifecycle_clean $v
    check $v "j['interrupt_mode'] == '$mode' and j['msix_messages'] == $msgs" "interrupts: $mode, $msgs message(s)"
    check $v "$NLOG('UniqueId 0xa0b10c00') == 2" "event log: UniqueId 0xA0B10C00 (DEVICE_NEEDS_RESET: reset) once per injection"
    check $v 'j["reset_detected"] == 2' "StorPortNotification(ResetDetected) once per injection"
    check $v "$CC('BUS_RESET') >= 1 and j['class_retries'] >= $CC('BUS_RESET')" "the SRBs in flight came back with SRB_STATUS_BUS_RESET (class layer saw it) and were retried"
    check $v "$SK('MEDIUM_ERROR') == 0 and $CC('ERROR') == $SK('ILLEGAL_REQUEST')" "no MEDIUM ERROR (classpnp does not retry 03/xx), no other error status"
    check $v 'j["srb_timeouts"] == 0 and j["lu_resets"] == 0 and j["bus_resets"] == 0' "the driver recovered by itself (no StorPort timeout, no reset SRB)"
    check $v 'j["device_status"] == 15' "the device runs again afterwards (status ACK|DRIVER|DRIVER_OK|FEATURES_OK, no NEEDS_RESET)"
done <<'T'
msix   -                        MSI-X 2
shared --msi-messages=1         MSI-X 1
intx   --device-opts=msix=off   INTx 0
T
finish
