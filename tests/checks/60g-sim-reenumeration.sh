#!/usr/bin/env bash
# Re-enumeration after BusChangeDetected (issue 11 item 11, facts §11.10). The class
# layer no longer only re-reads the capacity: StorPort re-enumerates and the disk is
# probed as a new one (INQUIRY, VPD 00 / 80 / 83, REPORT LUNS, READ CAPACITY); the
# identity (INQUIRY names, serial, page-83 designators) must equal the first
# enumeration's, else Windows sees another disk (IDENTITY finding). Scenarios: a resize
# mid-workload (the driver's BusChangeDetected triggers the rescan from the workload),
# QEMU and contract; a device reset (DEVICE_NEEDS_RESET) followed by a rescan.
# Control: the contract device's test-only serial_per_reset (GET_ID answered with a
# serial that changes at every reset) must be flagged.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
cat >"$SCRATCH/contract.script" <<'S'
after 150 control capacity=1048576
run --rw randrw --bs 4K --qd 4 --seconds 1 --span 64M
expect errors=0 mismatches=0 capacity=1048576
control needs-reset
run --rw randrw --bs 4K --qd 4 --ios 200 --span 64M
rescan
expect findings=0
S
sim_json contract --backend contract --size 256M script "$SCRATCH/contract.script"
lifecycle_clean contract
check contract 'j["bus_changes"] >= 1 and j["rescans"] >= 2' "BusChangeDetected after the resize re-enumerated the disk (and the explicit rescan after the reset)"
check contract 'j["identity"]["serial"].startswith("AEROVBLK-")' "identity kept (fallback serial of a device without GET_ID)"
sim_json serial --backend contract --size 256M --device-opts serial_per_reset=1 script "$SCRATCH/contract.script"
check serial 'rc == 1 and any(f.startswith("IDENTITY:") and "serial" in f for f in j["findings"]) and any("VPD 83" in f for f in j["findings"])' "control: a serial that changes across a reset is flagged (VPD 80 and 83)"
if command -v qemu-system-x86_64 >/dev/null; then
    cat >"$SCRATCH/qemu.script" <<'S'
after 300 qmp {"execute":"block_resize","arguments":{"device":"d0","size":536870912}}
run --rw randrw --bs 4K --qd 4 --seconds 1 --span 64M
expect errors=0 mismatches=0 capacity=1048576 findings=0
S
    sim_json qemu --size 256M --device-opts serial=W7-REENUM-1 script "$SCRATCH/qemu.script"
    lifecycle_clean qemu
    check qemu 'j["bus_changes"] >= 1 and j["rescans"] >= 1 and j["identity"]["serial"] == "W7-REENUM-1"' "QEMU resize: re-enumerated, serial from GET_ID unchanged"
fi
finish
