#!/usr/bin/env bash
# Class traffic the simulator did not send before issue 11 (item 12; facts §11.11), as
# script steps `class NAME` (docs/simulator.md), some of them mid-workload:
#  - disk.sys' SMART probe: SRB_FUNCTION_IO_CONTROL "SCSIDISK" IOCTL_SCSI_MINIPORT_IDENTIFY
#    -> SRB_STATUS_INVALID_REQUEST, buffer untouched, nothing transferred (also at arrival);
#  - StorPort's WMI SRB (IRP_MN_REGINFO; WmiDataProvider is left TRUE as preset) ->
#    SRB_STATUS_INVALID_REQUEST, nothing transferred;
#  - classpnp's SRB_FUNCTION_RESET_BUS during I/O -> SUCCESS, no I/O lost (viostor b54b88d5);
#  - START STOP UNIT with IMMED and SRB_FLAGS_DISABLE_AUTOSENSE, also a refused one: the
#    sense buffer is left alone (port rule: a pattern must survive; AUTOSENSE_VALID is a
#    finding);
#  - a FUA-heavy workload: the driver never answers FUA with 05/24, so disk.sys never
#    drops FUA (class_fua_disabled 0);
#  - disk.sys' DisableWriteCache (what it does after a FUA write failed with 05/24):
#    QEMU (CONFIG_WCE) turns the cache off (WCE reads back 0, the device's writeback field
#    read back by the driver), writes go on and verify; the Aero contract device has no
#    CONFIG_WCE: the MODE SELECT is refused and WCE stays on.
# Negative controls with the test miniport: sense written despite DISABLE_AUTOSENSE is an
# SRB finding; a miniport failing FUA writes with 05/24 makes the class layer drop FUA,
# try to turn the cache off and retry without FUA (class_fua_disabled 1, no error).
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
CC='(lambda s: j.get("class_completions", {}).get(s, 0))'
gen_script() {   # gen_script WCE_AFTER
cat <<S
class smart
expect srb=6 len=0
class wmi
expect srb=6 len=0
after 150 class reset-bus
after 250 class stop-immed
after 350 class start-immed
run --rw randrw --bs 4K --qd 8 --seconds 1 --fua-pct 30
expect errors=0 mismatches=0 fua_disabled=0
class stop-immed
expect srb=1 autosense=0 scsi=0
class start-immed
expect srb=1 autosense=0
class immed-invalid
expect srb=4 autosense=0 scsi=2
class reset-bus
expect srb=1
class disable-write-cache
expect wce=$1
run --rw randrw --bs 4K --qd 8 --ios 400
expect errors=0 mismatches=0 findings=0
S
}
traffic_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" "$LOG('SMART probe (SCSIDISK, IOCTL_SCSI_MINIPORT_IDENTIFY): SRB status 0x06, buffer untouched') and $LOG('WMI SRB (IRP_MN_REGINFO, WmiDataProvider TRUE): SRB status 0x06, 0 bytes')" "SMART probe and WMI SRB refused with INVALID_REQUEST, buffers untouched (at arrival and as steps)"
    check "$name" "$LOG('class reset-bus: SRB_FUNCTION_RESET_BUS: SRB status 0x01') and $LOG('class stop-immed: START STOP UNIT (IMMED, autosense disabled): SRB status 0x01')" "RESET_BUS and START STOP UNIT (IMMED, no autosense) during the workload: SUCCESS"
    check "$name" 'j["class_fua_disabled"] == 0 and j["class_wce_disable_attempts"] == 1' "FUA never refused (disk.sys kept FUA); one DisableWriteCache (the step)"
}
if command -v qemu-system-x86_64 >/dev/null; then
    gen_script 0 >"$SCRATCH/qemu.script"
    sim_json qemu --size 64M script "$SCRATCH/qemu.script"
    traffic_ok qemu
    check qemu 'j["write_cache"] == False' "QEMU (CONFIG_WCE): the write cache reads back off after DisableWriteCache"
fi
gen_script 1 >"$SCRATCH/contract.script"
sim_json contract --backend contract --size 32M script "$SCRATCH/contract.script"
traffic_ok contract
check contract "j['write_cache'] == True and $LOG('DisableWriteCache: MODE SELECT failed')" "contract (no CONFIG_WCE): MODE SELECT refused, the write cache stays on"
# negative controls (test miniport; a host build: not under check 77's shipped binaries)
[ -n "${AEROVBLK_SIM_DRIVER:-}" ] && finish
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img
truncate -s 32M "$IMG"
printf 'class stop-immed\n' >"$SCRATCH/si.script"
SIM_FAKE_BUG=sense-despite-disable SIM_FAKE_DISK=$IMG SIM="$SIM_FAKE" sim_json sense --backend contract --disk "$IMG" script "$SCRATCH/si.script"
check sense 'rc == 1 and any("sent with SRB_FLAGS_DISABLE_AUTOSENSE came back with" in f for f in j["findings"])' "control: sense data despite SRB_FLAGS_DISABLE_AUTOSENSE is an SRB finding"
SIM_FAKE_BUG=fua-invalid SIM_FAKE_CACHES=1 SIM_FAKE_DISK=$IMG SIM="$SIM_FAKE" sim_json fua --backend contract --disk "$IMG" run --rw randwrite --bs 4K --qd 4 --ios 100 --fua-pct 20
check fua 'rc == 0 and j["class_fua_disabled"] == 1 and j["class_wce_disable_attempts"] == 1 and w["errors"] == 0' "control: a FUA write refused with 05/24 makes disk.sys drop FUA, try DisableWriteCache and retry (no error)"
check fua "$LOG('FUA WRITE failed with 05/24')" "control: logged by the class layer"
finish
