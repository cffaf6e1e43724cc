#!/usr/bin/env bash
# The host-built driver (ASan+UBSan) in the simulator against QEMU's virtio-blk-pci with
# default options: Windows 7 bring-up, then sequential and random verified workloads.
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
sim_json seqwrite --disk "$IMG" --size 64M run --rw write --bs 64K --qd 4 --span 16M --ios 256
check_clean seqwrite
check seqwrite 'j["capacity_bytes"] == 64 << 20 and j["block_size"] == 512' "capacity 64 MiB of 512-byte blocks (READ CAPACITY)"
check seqwrite 'j["interrupt_mode"] == "MSI-X" and j["msix_messages"] == 2' "MSI-X with 2 messages (QEMU default vectors=2)"
check seqwrite 'j["workload"]["image_chunks_checked"] == 256 and j["workload"]["image_mismatches"] == 0' "all 256 written chunks found in the image file"
check seqwrite "$FEAT(32) and not $FEAT(34)" "VERSION_1 negotiated, RING_PACKED not"
check seqwrite 'j["device_status"] & 0x0F == 0x0F and not j["device_status"] & 0xC0' "device status ACK|DRIVER|FEATURES_OK|DRIVER_OK, no FAILED/NEEDS_RESET"
check seqwrite 'j["identity"]["vendor"] != "" and "80" in j["vpd_pages"] and "83" in j["vpd_pages"]' "INQUIRY identity and VPD 80/83 listed"
check seqwrite 'j["synchronization"] == "full-duplex"' "full-duplex StorPort"
sim_json seqread --disk "$IMG" run --rw read --bs 64K --qd 4 --span 16M --ios 256
check_clean seqread
sim_json randrw --disk "$IMG" run --rw randrw --bs 4K --qd 32 --ios 4000 --seed 7
check_clean randrw
check randrw 'j["workload"]["ios"] == 4000 and j["max_outstanding"] > 8' "4000 I/Os with real queue depth (> 8 in flight at once)"
check randrw 'j["workload"]["per_io"]["mmio_reads"] < 0.05' "MSI-X: (almost) no MMIO reads per I/O"
sim_json bigio --disk "$IMG" run --rw randrw --bs 1M --qd 4 --ios 64 --seed 3
check_clean bigio
finish
