#!/usr/bin/env bash
# Scatter/gather realism (docs/simulator.md "Memory"): data pages come partly in runs of
# up to 16 physically adjacent pages (merged S/G elements longer than a page), and with
# AlignmentMask 0 buffers start at any byte, odd addresses included. The test miniport
# (AlignmentMask 0, 17 breaks, 64 KiB) fails any request whose list breaks
# NumberOfPhysicalBreaks/MaximumTransferLength and reports what it saw; the driver must
# handle such lists with its data verified.
. "$(dirname "$0")/../sim/common.sh"
need_sim
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 16M "$IMG"
rc=0
SIM_FAKE_SGSTATS=1 SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" --timeout 50 \
    run --bs 128K --qd 4 --ios 400 >"$SCRATCH/fake.out" 2>&1 || rc=$?
if [ $rc -eq 0 ]; then echo "ok    [fake] every S/G list within NumberOfPhysicalBreaks + 1 elements and MaximumTransferLength"
else echo "FAIL  [fake] rc=$rc"; tail -5 "$SCRATCH/fake.out"; FAILS=$((FAILS + 1)); fi
for what in "S/G element of [0-9]+ bytes" "S/G element at odd address"; do
    if grep -Eq "fake: $what" "$SCRATCH/fake.out"; then echo "ok    [fake] seen: $(grep -Em1 "fake: $what" "$SCRATCH/fake.out")"
    else echo "FAIL  [fake] never seen: $what"; FAILS=$((FAILS + 1)); fi
done
sim_json drv64k --backend contract run --rw randrw --bs 64K --qd 8 --ios 1500
check_clean drv64k
sim_json drv4k --backend contract run --rw randrw --bs 4K --qd 16 --ios 3000 --seed 7
check_clean drv4k
finish
