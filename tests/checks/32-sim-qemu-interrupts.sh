#!/usr/bin/env bash
# Interrupt configurations: vectors=0 (no MSI-X: INTx), vectors=1 (one shared message),
# vectors=2, the INF without MSI (--no-msi: INTx although MSI-X exists), and Windows
# granting fewer messages than the table has (--msi-messages 1).
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
W=(run --rw randrw --bs 8K --qd 8 --ios 1500)
sim_json v0 --disk "$IMG" --size 32M --device-opts vectors=0 "${W[@]}"
check_clean v0
check v0 'j["interrupt_mode"] == "INTx" and j["workload"]["interrupts"] > 0' "vectors=0: INTx delivers completions"
check v0 'j["workload"]["per_io"]["mmio_reads"] > 0' "INTx: the ISR status register is read"
sim_json v1 --disk "$IMG" --device-opts vectors=1 "${W[@]}"
check_clean v1
check v1 'j["interrupt_mode"] == "MSI-X" and j["msix_messages"] == 1' "vectors=1: one MSI-X message shared by config and queue"
sim_json v2 --disk "$IMG" --device-opts vectors=2 "${W[@]}"
check_clean v2
check v2 'j["interrupt_mode"] == "MSI-X" and j["msix_messages"] == 2' "vectors=2: two messages"
sim_json nomsi --disk "$IMG" --no-msi "${W[@]}"
check_clean nomsi
check nomsi 'j["interrupt_mode"] == "INTx"' "--no-msi: INTx although the device has MSI-X"
sim_json msi1 --disk "$IMG" --msi-messages 1 "${W[@]}"
check_clean msi1
check msi1 'j["msix_messages"] == 1' "Windows grants 1 of 2 messages: the driver copes"
finish
