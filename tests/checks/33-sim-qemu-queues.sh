#!/usr/bin/env bash
# Queue configurations: queue-size=64, 128, 1024 and num-queues=4 (the driver uses
# queue 0 only), each with a queue-depth-heavy verified workload.
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
W=(run --rw randrw --bs 4K --qd 48 --ios 3000)
for qs in 64 128 1024; do
    sim_json qs$qs --disk "$IMG" --size 32M --device-opts queue-size=$qs "${W[@]}"
    check_clean qs$qs
    check qs$qs "0 < j['queue_size'] <= $qs" "queue-size=$qs: ring in use no larger than the device's"
done
check qs64 'j["queue_size"] == 64' "queue-size=64 used as is"
sim_json nq4 --disk "$IMG" --device-opts num-queues=4 "${W[@]}"
check_clean nq4
check nq4 'j["num_queues"] == 4' "num-queues=4 device works with a single-queue driver"
finish
