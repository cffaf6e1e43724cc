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
# The ideal driver, make bench's baseline (sim/ideal.c): no miniport, the simulator's own
# ring. It must move verified data (reads checked, written chunks checked in the image)
# without breaking the device's rules; negative control: two corrupted reads and two
# altered image chunks (--corrupt-image 2) must be reported.
sim_json i1 --backend contract --disk "$IMG" --ideal-driver run --rw randrw --bs 4K --qd 8 --ios 4000
check i1 'rc == 0 and j["ideal_driver"] and j["exit_status"] == 0 and j["verifier_findings"] == 0' "ideal driver: exit 0, no finding"
check i1 'w["ios"] == 4000 and w["reads"] > 1000 and w["writes"] > 1000 and w["errors"] == 0 and w["mismatches"] == 0' "ideal driver: 4000 I/Os, every read verified"
check i1 'w["image_chunks_checked"] > 1000 and w["image_mismatches"] == 0' "ideal driver: written chunks found in the image file"
check i1 '"DRIVER BUG" not in err and not __import__("re").search(r"'"$SANITIZER_RE"'", err)' "ideal driver: no device-rule break, no sanitizer report"
sim_json i2 --backend contract --disk "$IMG" --ideal-driver run --rw randrw --bs 4K --qd 8 --ios 2000 --corrupt-image 2
check i2 'rc == 1 and j["exit_status"] == 1 and w["mismatches"] == 2 and w["image_mismatches"] == 2' "negative control: corrupted reads and image chunks are caught"
finish
