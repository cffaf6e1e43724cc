#!/usr/bin/env bash
# StorPort's recovery paths against the contract device: a stalled device makes SRBs
# time out (TimeOutValue, here --srb-timeout 2), StorPort calls HwResetBus, classpnp
# retries, no I/O is lost; a script `reset` and a Stop/Restart power cycle between
# workloads; every write verified in the image file. Then, against QEMU, the crash-dump
# sequence: the running instance "bug-checks" with writes in flight, the dump stack's
# copy is loaded (NULL DriverEntry arguments, "dump=1", no interrupts, HwInterrupt
# polled) and writes 64 MiB, and a fresh instance (next boot) reads it back.
. "$(dirname "$0")/../sim/common.sh"
need_sim
IMG=$SCRATCH/disk.img
cat >"$SCRATCH/stall.script" <<'S'
run --rw write --bs 4K --qd 4 --ios 200
control stall
after 3000 control unstall
run --rw randrw --bs 4K --qd 8 --ios 300
expect mismatches=0 errors=0
reset
run --rw randrw --bs 16K --qd 8 --ios 300
expect mismatches=0 errors=0
power-cycle
run --rw randrw --bs 16K --qd 8 --ios 300
expect mismatches=0 errors=0 findings=0
S
sim_json stall --backend contract --disk "$IMG" --size 32M --srb-timeout 2 script "$SCRATCH/stall.script"
check_clean stall
check stall 'j["srb_timeouts"] >= 1 and j["lu_resets"] >= 1' "stalled SRBs timed out; StorPort's LU reset SRB went to the driver"
check stall 'j["bus_resets"] >= 1' "the script's reset step ran HwResetBus"
sim_json bustier --backend contract --disk "$IMG" --srb-timeout 2 --reset-tiers bus script "$SCRATCH/stall.script"
check_clean bustier
check bustier 'j["srb_timeouts"] >= 1 and j["lu_resets"] == 0 and j["bus_resets"] >= 2' "--reset-tiers bus: the timeout goes straight to HwResetBus"
check stall 'j["workload"]["image_mismatches"] == 0' "data intact in the image after the resets"
if command -v qemu-system-x86_64 >/dev/null; then
cat >"$SCRATCH/dump.script" <<'S'
run --rw randrw --bs 4K --qd 8 --ios 500
crash 6
dump-load
run --rw write --bs 64K --qd 1 --span 64M --offset 64M --ios 1024
expect mismatches=0 errors=0 ios=1024
reload
run --rw read --bs 64K --qd 4 --span 64M --offset 64M --ios 1024
expect mismatches=0 errors=0 findings=0
S
sim_json dump --disk "$SCRATCH/q.img" --size 256M script "$SCRATCH/dump.script"
check_clean dump
check dump 'j["interrupt_mode"] == "MSI-X" and j["workload"]["rw"] == "read"' "after the dump a fresh normal instance (MSI-X) read the dump back"
grep -q "instance crashed with" "$SCRATCH/dump.err" && echo "ok    [dump] the first instance crashed with requests in flight" \
    || { echo "FAIL  [dump] no crash logged"; FAILS=$((FAILS+1)); }
fi
finish
