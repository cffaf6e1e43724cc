#!/usr/bin/env bash
# The crash-dump port, pessimistic (issue 11 item 9, facts §7, §11.8). `hibernate` +
# `dump-load`: the hibernation instance gets the normal instance's saved ConfigInfo
# (--dump-config saved, the default: Dma64BitAddresses and HwMSInterruptRoutine arrive
# set), receives INQUIRY first, writes through transfers split at MaximumTransferLength
# alone (1 MiB requests from the class layer, NumberOfPhysicalBreaks ignored), and gets
# SYNCHRONIZE CACHE then SRB_FUNCTION_SHUTDOWN last; its uncached extension + one SRB
# extension + a 255-byte sense buffer must fit 32 KiB; any StorPort call outside the
# dump-safe set (locks, DPC, timer, pool, LogError, notifications other than
# RequestComplete/NextRequest) is a DUMP finding. The next boot verifies the data.
# Variants: contract (saved), QEMU (fresh). Controls (the test miniport,
# tests/unit/sim_fake_miniport.c): 32600 bytes of uncached extension (under 32 KiB alone,
# over with SRB extension + sense), a spin lock in dump mode, HwMSInterruptRoutine left
# set — each flagged. (The driver before this change left HwMSInterruptRoutine set when
# handed the saved ConfigInfo: "VERIFIER: DUMP: dump instance left
# ConfigInfo->HwMSInterruptRoutine set".) The timer control is in 39a-sim-hardening-dump.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
cat >"$SCRATCH/dump.script" <<'S'
run --rw randrw --bs 4K --qd 4 --ios 200 --span 16M
hibernate
dump-load
run --rw write --bs 1M --qd 1 --offset 64M --span 16M --ios 16 --seed 9
expect errors=0 mismatches=0 ios=16
reload
run --rw read --bs 64K --qd 4 --offset 64M --span 16M --ios 256 --seed 9 --verify-generation 1
expect errors=0 mismatches=0 findings=0
S
BUDGET='(lambda: [int(l.split("= ")[1].split(" of")[0]) for l in j["log"] if "dump budget:" in l])'
dump_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" "$LOG('dump port: INQUIRY first') and $LOG('dump port: SYNCHRONIZE CACHE, then SRB_FUNCTION_SHUTDOWN last')" "the dump port's INQUIRY first, SYNCHRONIZE CACHE + SHUTDOWN last, all successful"
    check "$name" "len($BUDGET()) == 1 and 0 < $BUDGET()[0] <= 32768" "uncached extension + SRB extension + sense within 32 KiB"
    check "$name" 'j["instances"][1]["dump_mode"] and j["instances"][1]["max_transfer"] >= 65536' "dump instance: MaximumTransferLength of at least 64 KiB, followed alone"
}
sim_json saved --backend contract --size 128M script "$SCRATCH/dump.script"
dump_ok saved
check saved "$LOG('saved ConfigInfo (Dma64BitAddresses 0x01, HwMSInterruptRoutine set)')" "saved: the dump instance started from the normal instance's ConfigInfo"
if command -v qemu-system-x86_64 >/dev/null; then
    sim_json fresh --size 128M --dump-config fresh script "$SCRATCH/dump.script"
    dump_ok fresh
    check fresh "not $LOG('saved ConfigInfo')" "fresh: default ConfigInfo"
fi
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 8M "$IMG"
fake() {
    local name=$1 bug=$2 rc=0
    SIM_FAKE_BUG=$bug SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --json --backend contract --disk "$IMG" \
        --dump-mode --srb-timeout 2 --timeout 50 run --qd 1 --ios 20 >"$SCRATCH/$name.json" 2>"$SCRATCH/$name.err" || rc=$?
    echo $rc >"$SCRATCH/$name.rc"
}
fake budget dump-budget
check budget 'rc == 1 and any(f.startswith("DUMP: dump instance needs 32919 bytes") for f in j["findings"]) and not any("uncached extension of" in f for f in j["findings"])' "control: 32600 + 64 + 255 bytes > 32 KiB flagged (the uncached extension alone is not)"
fake lock dump-lock
check lock 'rc == 1 and any(f.startswith("DUMP: StorPortAcquireSpinLock in dump mode") for f in j["findings"])' "control: a spin lock in dump mode is flagged"
fake msi dump-msi-routine
check msi 'rc == 1 and any("HwMSInterruptRoutine set" in f for f in j["findings"])' "control: HwMSInterruptRoutine left set in dump mode is flagged"
finish
