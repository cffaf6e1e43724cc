#!/usr/bin/env bash
# High physical addresses (docs/simulator.md "Memory"): with 6 GiB of guest RAM the
# driver's data buffers land above 4 GiB, its 64-bit BARs are above 4 GiB, and — because
# it declares Dma64BitAddresses = SCSI_DMA64_MINIPORT_SUPPORTED — the uncached extension
# (its rings) and SRB extensions are allocated from the top of RAM. A miniport that
# leaves Dma64BitAddresses at 0x80 must see only addresses below 4 GiB (test miniport).
. "$(dirname "$0")/../sim/common.sh"
need_sim
sim_json high --backend contract --ram 6G run --rw randrw --qd 32 --ios 3000
check_clean high
check high 'j["workload"]["ios"] == 3000' "3000 I/Os at QD32 with 6 GiB RAM"
unc=$(grep -o 'uncached extension of [0-9]* bytes at physical 0x[0-9a-f]*' "$SCRATCH/high.err" | head -1 | awk '{print $NF}')
if [ -n "$unc" ] && [ $((unc)) -ge $((1 << 32)) ]; then echo "ok    [high] uncached extension (rings) above 4 GiB: $unc"
else echo "FAIL  [high] uncached extension not above 4 GiB: '${unc}'"; FAILS=$((FAILS + 1)); fi

[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 8M "$IMG"
rc=0
SIM_FAKE_DMA64=keep SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" --ram 6G \
    --timeout 50 run --qd 4 --ios 300 >"$SCRATCH/dma32.out" 2>&1 || rc=$?
unc=$(grep -o 'uncached extension of [0-9]* bytes at physical 0x[0-9a-f]*' "$SCRATCH/dma32.out" | head -1 | awk '{print $NF}')
if [ $rc -eq 0 ] && [ -n "$unc" ] && [ $((unc)) -lt $((1 << 32)) ]; then
    echo "ok    [dma32] Dma64BitAddresses left at 0x80: uncached extension ($unc), SRB extensions and every S/G element below 4 GiB"
else echo "FAIL  [dma32] 32-bit-only miniport saw memory above 4 GiB (rc=$rc, uncached '${unc}')"; tail -5 "$SCRATCH/dma32.out"; FAILS=$((FAILS + 1)); fi
finish
