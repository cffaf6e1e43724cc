#!/usr/bin/env bash
# The same driver against the in-process Aero-contract device (BAR0 layout, 128-entry
# queue, no EVENT_IDX): bring-up, verified workloads, and the device's own bug counter.
. "$(dirname "$0")/../sim/common.sh"
need_sim
IMG=$SCRATCH/disk.img
sim_json c1 --backend contract --disk "$IMG" --size 64M run --rw randrw --bs 4K --qd 32 --ios 5000
check_clean c1
check c1 'j["queue_size"] == 128 and not (int(j["features_negotiated"], 16) >> 29) & 1' "contract: queue 128, EVENT_IDX not negotiated"
check c1 '"DRIVER BUG" not in open("'"$SCRATCH"'/c1.err").read()' "contract device saw no driver bug"
sim_json c2 --backend contract --disk "$IMG" run --rw randrw --bs 128K --qd 8 --ios 400
check_clean c2
sim_json c3 --backend contract --disk "$IMG" --no-msi run --rw randrw --bs 4K --qd 8 --ios 1000
check_clean c3
check c3 'j["interrupt_mode"] == "INTx"' "contract device over INTx"
finish
