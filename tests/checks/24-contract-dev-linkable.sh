#!/usr/bin/env bash
# The contract device (sim/contract_dev.c and its parts sim/contract_dev_*.c) is linked
# into the simulator through a sim/*.c wildcard: it must compile with the simulator's
# HOST_CFLAGS and export only the simdev.h/contract_dev.h API plus the functions its
# parts call in each other, exactly those declared in sim/contract_dev_int.h (no main,
# no AvHostMmio* hooks, no stray global symbols).
set -u
cd "$(dirname "$0")/../.."
flags=$(make -s --no-print-directory print-host-cflags-vpci | tail -n1) && [ -n "$flags" ] || { echo "cannot get HOST_CFLAGS"; exit 1; }
out=out/host/vpci-linkable; mkdir -p "$out"
objs=()
for src in sim/contract_dev.c sim/contract_dev_*.c; do
  o="$out/$(basename "$src" .c).o"
  # shellcheck disable=SC2086
  gcc $flags -Isim -c "$src" -o "$o" || { echo "FAIL: $src does not compile with HOST_CFLAGS"; exit 1; }
  objs+=("$o")
done
exported=$(nm -g --defined-only "${objs[@]}" | awk 'NF == 3 {print $3}' | sort)
echo "exported: $(echo $exported)"
# internal: the non-static functions sim/contract_dev_int.h declares (one a line)
internal=$(grep -v '^static' sim/contract_dev_int.h | sed -n 's/^[a-z][a-z0-9_ ]*[ *]\([a-z_][a-z0-9_]*\)(.*);$/\1/p')
[ -n "$internal" ] || { echo "FAIL: no internal declarations found in sim/contract_dev_int.h"; exit 1; }
expected=$( { printf '%s\n' sim_contract_create sim_contract_get_stats sim_contract_irq_counts sim_contract_wait_idle; echo "$internal"; } | sort)
if [ "$exported" != "$expected" ]; then
  echo "FAIL: exported symbols differ from the documented API + sim/contract_dev_int.h"; diff <(echo "$expected") <(echo "$exported"); exit 1
fi
echo ok
