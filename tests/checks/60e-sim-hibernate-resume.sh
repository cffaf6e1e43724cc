#!/usr/bin/env bash
# Hibernation resume of the same instance (issue 11 item 6, facts §11.3). A normal
# instance runs; `hibernate` freezes it (default --s4-adapter-control off: no
# ScsiStopAdapter, only StorPort's drain); the hibernation instance (dump-load) resets the
# device and writes 8 MiB through its own ring; `hibernate-resume`: a firmware stand-in
# (default --s4-firmware on) resets the device again, reads sector 0 through a ring at
# yet another address and leaves it running; then the frozen instance continues, 30 s
# of wall-clock time later (--s4-gap-ms), without any call. It must read the hiber
# instance's data back verified and run a workload with no failed, retried or timed-out
# request, and must not let the device use the rings left behind (the simulator checks
# the device's queue registers at the resumed instance's doorbells and the rings' memory
# for device writes). Variants: Stop/Restart around it (on), no firmware, QEMU.
# Controls: --s4-gap-ms 0 (a resume the driver cannot see: it rings its doorbell on the
# firmware's / hiber instance's queue: S4 finding); a hiber instance frozen with two
# writes whose completions the contract device holds back (test-only hold-completions)
# and publishes after the resume: device writes into the old ring (S4 finding).
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
CC='(lambda s: j.get("class_completions", {}).get(s, 0))'
SK='(lambda k: j.get("class_sense_keys", {}).get(k, 0))'
need_sim
cat >"$SCRATCH/s4.script" <<'S'
run --rw randrw --bs 4K --qd 8 --ios 300 --span 16M
hibernate
dump-load
run --rw write --bs 64K --qd 1 --offset 64M --span 4M --ios 64 --seed 7
expect errors=0 mismatches=0 ios=64
hibernate-resume
run --rw read --bs 64K --qd 4 --offset 64M --span 4M --ios 128 --seed 7 --verify-generation 1
expect errors=0 mismatches=0 ios=128 findings=0
run --rw randrw --bs 4K --qd 8 --ios 300 --span 16M
expect errors=0 mismatches=0 findings=0
S
# the control stops at the first request after the resume
sed '/^run --rw read/,$d' "$SCRATCH/s4.script" >"$SCRATCH/gap.script"
echo 'cdb "28 00 00 00 00 00 00 00 01 00" --in 512' >>"$SCRATCH/gap.script"
resume_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" '[i["dump_mode"] for i in j["instances"]] == [False, True]' "two instances: the normal one (resumed) and the hibernation instance"
    check "$name" "$LOG('the hibernated instance continues')" "the frozen instance continued"
    check "$name" "j['srb_timeouts'] == 0 and j['class_retries'] == 0 and set(j['class_completions']) <= {'SUCCESS', 'ERROR', 'INVALID_REQUEST'} and $CC('ERROR') == $SK('ILLEGAL_REQUEST') and $CC('INVALID_REQUEST') == $NLOG('SRB status 0x06')" "no request timed out, failed or was retried (ERROR only for bring-up's ILLEGAL REQUEST probes, INVALID_REQUEST only for its SMART probe and WMI SRB, 60i)"
    check "$name" 'j["workload"]["reads"] + j["workload"]["writes"] >= 300 and j["workload"]["image_mismatches"] == 0' "I/O after the resume, verified"
}
sim_json off --backend contract --size 128M script "$SCRATCH/s4.script"
resume_ok off
check off "$LOG('firmware stand-in reset the device') and $NLOG('UniqueId 0xa0b115') == 1" "default (off, firmware): the driver found the device reprogrammed and re-initialised it once (0xA0B115xx)"
sim_json on --backend contract --size 128M --s4-adapter-control on script "$SCRATCH/s4.script"
resume_ok on
check on "$LOG('with ScsiRestartAdapter') and $NLOG('UniqueId 0xa0b115') == 0" "on: ScsiRestartAdapter re-initialised the device (no foreign-device event)"
sim_json nofw --backend contract --size 128M --s4-firmware off --no-msi script "$SCRATCH/s4.script"
resume_ok nofw
check nofw "$NLOG('UniqueId 0xa0b115') == 1 and j['interrupt_mode'] == 'INTx'" "no firmware, INTx: the hiber instance's queue found and replaced"
sim_json ctl-gap --backend contract --size 128M --s4-gap-ms 0 --srb-timeout 1 --timeout 60 script "$SCRATCH/gap.script"
check ctl-gap 'rc == 1 and any(f.startswith("S4:") and "the firmware" in f for f in j["findings"])' "control: a resume the driver cannot see (--s4-gap-ms 0): doorbell on the firmware's queue is an S4 finding"
if command -v qemu-system-x86_64 >/dev/null; then
    sim_json qemu --size 128M script "$SCRATCH/s4.script"
    resume_ok qemu
    check qemu "$NLOG('UniqueId 0xa0b115') == 1 and j['interrupt_mode'] == 'MSI-X'" "QEMU, MSI-X: re-initialised once"
fi
cat >"$SCRATCH/held.script" <<'S'
run --rw randrw --bs 4K --qd 8 --ios 100 --span 16M
hibernate
dump-load
run --rw write --bs 64K --qd 1 --offset 64M --span 8M --ios 16 --seed 7
control hold-completions
crash 2
hibernate-resume
control release-completions
S
sim_json ctl-held --backend contract --device-opts mode=sync --size 128M --s4-firmware off --timeout 60 script "$SCRATCH/held.script"
check ctl-held 'rc == 1 and len(j["findings"]) == 1 and j["findings"][0].startswith("S4: the device wrote") and "hibernation instance" in j["findings"][0]' "control: completions held in the device across the resume land in the hiber instance's old ring: S4 finding (and nothing else)"
finish
