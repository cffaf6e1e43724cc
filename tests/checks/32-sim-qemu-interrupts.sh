#!/usr/bin/env bash
# Interrupt configurations: vectors=0 (no MSI-X: INTx), vectors=1 (one shared message),
# vectors=2, the INF without MSI (--no-msi: INTx although MSI-X exists), and Windows
# granting fewer messages than the table has (--msi-messages 1). Then a throttled QEMU at
# QD32 dropping to QD2: interrupt moderation strands no completion.
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

# Interrupt moderation (issue 16, driver/virtqueue.c VqUsedEventDelay): with 16+ requests
# in the ring the driver lets the device complete a quarter of them before it interrupts.
# QEMU's I/O throttle (500 IOPS) makes the device slower than the driver, as a real disk
# is, so the ring fills at QD32; then the load drops to QD2, eight times, and stops. No
# completion may be stranded: every SRB back without a StorPort timeout, reset or retry
# (--srb-timeout 5 makes a stranded one a timeout within the run). Negative control:
# mutant vq-used-event-too-far (used_event one past the last outstanding request, make
# mutants MUTANTS=vq-used-event-too-far): check 20 kills it deterministically; here a
# burst end strands completions when the ring still holds 16+ at the last interrupt,
# measured in 3 of 4 runs of five rounds (hence eight). That the delay is applied, and
# only from 16 requests on, is unit test moderation_never_strands (check 20); interrupt
# counts here depend on timing.
{ for i in 1 2 3 4 5 6 7 8; do
      printf 'run --rw randread --bs 4K --qd 32 --ios 120\nrun --rw randread --bs 4K --qd 2 --ios 6\n'
  done
  printf 'ioctl\nexpect srb=1 return_code=0\n'; } >"$SCRATCH/moderation.script"
sim_json moderation --disk "$IMG" --srb-timeout 5 --drive-opts throttling.iops-total=500 \
    script "$SCRATCH/moderation.script"
check_clean moderation
check moderation 'j["srb_timeouts"] == 0 and j["class_retries"] == 0 and j["lu_resets"] + j["device_resets"] + j["bus_resets"] == 0' \
    "QD32 -> QD2 -> idle with moderation: no SRB timed out, reset or retried"
finish
