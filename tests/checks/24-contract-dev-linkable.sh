#!/usr/bin/env bash
# sim/contract_dev.c is linked into the simulator through a sim/*.c wildcard: it must
# compile with the simulator's HOST_CFLAGS and export only the simdev.h/contract_dev.h
# API (no main, no AvHostMmio* hooks, no stray global symbols).
set -u
cd "$(dirname "$0")/../.."
flags=$(make -s --no-print-directory print-host-cflags-vpci | tail -n1) && [ -n "$flags" ] || { echo "cannot get HOST_CFLAGS"; exit 1; }
out=out/host/vpci-linkable; mkdir -p "$out"
# shellcheck disable=SC2086
gcc $flags -c sim/contract_dev.c -o "$out/contract_dev.o" || { echo "FAIL: does not compile with HOST_CFLAGS"; exit 1; }
exported=$(nm -g --defined-only "$out/contract_dev.o" | awk '{print $3}' | sort)
echo "exported: $(echo $exported)"
expected=$(printf '%s\n' sim_contract_create sim_contract_get_stats sim_contract_irq_counts sim_contract_wait_idle | sort)
if [ "$exported" != "$expected" ]; then
  echo "FAIL: exported symbols differ from the documented API"; diff <(echo "$expected") <(echo "$exported"); exit 1
fi
echo ok
