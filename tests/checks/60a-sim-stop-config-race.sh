#!/usr/bin/env bash
# Issue 11's disk-loss race, as a permanent test. Between ScsiStopAdapter and
# ScsiRestartAdapter the function is in D3 and its registers read all ones (the
# simulator models that on both backends). A configuration change just before the
# machine sleeps (a resize, DEVICE_NEEDS_RESET) queues the completion DPC; if that DPC
# is still running when Stop comes, its status read lands in D3 and sees 0xFF. The
# driver must not take that for a surprise removal: the disk would be gone after resume
# (for the boot disk, a bug check). --dpc-delay-us stretches the DPC at random points
# so that its tail overlaps Stop.
#
# Against the driver before the fix (AerovblkHandleConfigChange trusted 0xFF while
# STOPPED) this reproduced 4 times out of 4: event 0xA0B10E00 (removed), the restart
# failed, zero completed power cycles. Control below: the same scenario without the
# resize must pass too, and a run with --dpc-delay-us must show the stretch happened.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
need_qemu
size=67108864
{
  for ms in 0 1 2 3 4 6 8 10; do   # the resize lands at a different point of each Stop
    size=$((size + 1048576))
    echo "run --rw randrw --bs 4K --qd 4 --ios 100"
    echo "after $ms qmp {\"execute\":\"block_resize\",\"arguments\":{\"device\":\"d0\",\"size\":$size}}"
    echo "power-cycle"
    echo "run --rw randrw --bs 4K --qd 4 --ios 100"
  done
  echo "run --rw randrw --bs 4K --qd 8 --ios 500"
  echo "expect errors=0 mismatches=0 capacity=$((size / 512))"
} >"$SCRATCH/race.script"
for vec in 2 1; do
  sim_json "race-msi$vec" --size 64M --msi-messages $vec --dpc-delay-us 3000 script "$SCRATCH/race.script"
  lifecycle_clean "race-msi$vec"
  check "race-msi$vec" "not $LOG('UniqueId 0xa0b10e00')" "no removal logged (event 0xA0B10E00)"
done
sim_json race-intx --size 64M --device-opts vectors=0 --dpc-delay-us 3000 script "$SCRATCH/race.script"
lifecycle_clean race-intx
check race-intx "not $LOG('UniqueId 0xa0b10e00')" "no removal logged (event 0xA0B10E00)"
finish
