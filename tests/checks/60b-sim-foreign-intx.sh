#!/usr/bin/env bash
# A shared INTx line (issue 11, --foreign-intx): HwInterrupt is also called 2000 times a
# second for another device's interrupts, from HwFindAdapter on (before HwInitialize
# returns), through sleep/resume cycles (stopped, D3) and the verified workload.
# Asserted: the driver never claims one (a finding), never touches its registers while
# stopped (D3 accesses: 0, no POWER finding), and the workload is unharmed.
# Control, run once when this check was written: with HwInterrupt reading the ISR byte
# while stopped (the driver before issue 11's fix), the contract run gave
# "d3_accesses 157, 44 findings" ("POWER: 4 register access(es) while the adapter was
# stopped").
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
RUN="--foreign-intx 2000 run --rw randrw --bs 4K --qd 8 --seconds 2 --power-cycle-every 60"
shared_ok() {
  local name=$1
  lifecycle_clean "$name"
  check "$name" 'j["interrupt_mode"] == "INTx"' "INTx"
  check "$name" 'j["foreign_interrupts"] >= 1000' "foreign interrupts delivered (at least 1000)"
  check "$name" 'j["d3_accesses"] == 0' "no register access met the function in D3"
  check "$name" 'j["workload"]["power_cycles"] >= 5 and j["srb_timeouts"] == 0' "sleep/resume cycles, nothing timed out"
}
sim_json contract --backend contract --size 32M --device-opts msix=off $RUN
shared_ok contract
if command -v qemu-system-x86_64 >/dev/null; then
  sim_json qemu --size 64M --device-opts vectors=0 $RUN
  shared_ok qemu
fi
finish
