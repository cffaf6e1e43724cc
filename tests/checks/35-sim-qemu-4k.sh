#!/usr/bin/env bash
# A 4 KiB-sector disk (logical_block_size=4096,physical_block_size=4096) end to end:
# READ CAPACITY reports 4096-byte blocks, and 4 KiB and 64 KiB I/O verify.
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
D=logical_block_size=4096,physical_block_size=4096
sim_json bs4k --disk "$IMG" --size 32M --device-opts $D run --rw randrw --bs 4K --qd 16 --ios 2000
check_clean bs4k
check bs4k 'j["block_size"] == 4096 and j["capacity_blocks"] == (32 << 20) // 4096' "4096-byte logical blocks, capacity in 4 KiB blocks"
sim_json bs64k --disk "$IMG" --device-opts $D run --rw randrw --bs 64K --qd 8 --ios 500
check_clean bs64k
finish
