#!/usr/bin/env bash
# Hibernation round trip. A normal instance runs a workload; `hibernate` powers it down
# as S4 does (the LUN's SRB_FUNCTION_POWER D3, StorPort drains, ScsiStopAdapter) and
# freezes it — unlike a crash no request is in flight. The hiber instance is loaded the
# way the dump stack loads it (DriverEntry(NULL, NULL), "dump=1", HwFindAdapter at
# HIGH_LEVEL, no interrupts, HwInterrupt polled, one request at a time) and writes a
# 32 MiB image sequentially (seed 7: each 64 KiB chunk carries generation 1 of the
# pattern, checked in the image file after the write). Then a fresh normal instance
# (the next boot) reads the whole region back with interrupts and verifies every sector
# against the pattern itself (--verify-generation 1), not just against the file. The
# hiber instance's uncached extension must stay under Windows' 32 KiB dump budget.
# A control run then expects generation 2 and must find every sector wrong (the
# verification is real). QEMU (MSI-X) and the contract device.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
cat >"$SCRATCH/hib.script" <<'S'
run --rw randrw --bs 4K --qd 8 --ios 500 --span 32M
hibernate
dump-load
run --rw write --bs 64K --qd 1 --offset 64M --span 32M --ios 512 --seed 7
expect errors=0 mismatches=0 ios=512
reload
run --rw read --bs 64K --qd 4 --offset 64M --span 32M --ios 1024 --seed 7 --verify-generation 1
expect errors=0 mismatches=0 ios=1024 findings=0
S
hib_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" '[i["dump_mode"] for i in j["instances"]] == [False, True, False]' "three instances: normal, hiber (dump mode), normal after the reboot"
    check "$name" 'j["instances"][1]["uncached_extension_bytes"] < 32768' "hiber instance: uncached extension under 32 KiB"
    check "$name" 'j["instances"][1]["uncached_extension_bytes"] > 0 and j["instances"][0]["uncached_extension_bytes"] > j["instances"][1]["uncached_extension_bytes"]' "hiber instance: took a smaller (shrunk-queue) extension than the normal one"
    check "$name" 'j["workload"]["rw"] == "read" and j["workload"]["reads"] == 1024 and j["workload"]["mismatches"] == 0' "the next boot read all 32 MiB back twice, every sector matching the pattern"
    check "$name" "$LOG('hibernate: the adapter is ') and $LOG('instance crashed with 0 SRB(s) in flight')" "the normal instance was stopped with no request in flight"
}
expect_gen2_fails() {
    local name=$1 img=$2; shift 2
    sim_json $name-control "$@" --disk "$img" run --rw read --bs 64K --qd 4 --offset 64M --span 32M --ios 64 --seed 7 --verify-generation 2
    check $name-control 'rc == 1 and j["workload"]["mismatches"] == 64 * 128' "control: expecting generation 2 flags every sector (64 reads x 128 sectors)"
}
if command -v qemu-system-x86_64 >/dev/null; then
    sim_json qemu --disk "$SCRATCH/q.img" --size 128M script "$SCRATCH/hib.script"
    hib_ok qemu
    check qemu 'j["interrupt_mode"] == "MSI-X"' "the rebooted instance uses MSI-X"
    expect_gen2_fails qemu "$SCRATCH/q.img"
fi
sim_json contract --backend contract --disk "$SCRATCH/c.img" --size 128M script "$SCRATCH/hib.script"
hib_ok contract
expect_gen2_fails contract "$SCRATCH/c.img" --backend contract
finish
