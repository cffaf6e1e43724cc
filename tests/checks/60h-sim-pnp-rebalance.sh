#!/usr/bin/env bash
# PnP rebalance (issue 11 item 10, facts §11.9). `pnp rebalance`: StorPort's
# SRB_FUNCTION_FLUSH (the adapter caches data), SRB_FUNCTION_PNP StorStopDevice for the
# adapter, ScsiStopAdapter ([MS-ACT]: stopped for resource reconfiguration), resources
# released (BAR mappings invalid, interrupt disconnected), then HwFindAdapter +
# HwInitialize again on the same device extension with the BARs 16 MiB higher; the DPC
# queued before the stop is still pending and runs once the interrupt is reconnected,
# after HwFindAdapter re-ran on the extension (StorPort's flushing undocumented). A second
# StorPortGetUncachedExtension returns NULL (--second-uncached null, ReactOS; the
# default) or the first address (same); StorPortEnablePassiveInitialization returns
# FALSE. I/O must resume, verified, twice in a row; contract (MSI-X, INTx) and QEMU.
# Controls: the test miniport, which asks for its uncached extension and passive
# initialisation on every start, fails the rebalance under both variants (NULL ->
# HwFindAdapter fails; same address -> passive initialisation refused).
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
cat >"$SCRATCH/rb.script" <<'S'
run --rw randrw --bs 4K --qd 8 --ios 300 --span 16M
pnp rebalance
run --rw randrw --bs 4K --qd 8 --ios 300 --span 16M
expect errors=0 mismatches=0 findings=0
pnp rebalance
run --rw randrw --bs 64K --qd 4 --ios 200 --span 16M
expect errors=0 mismatches=0 findings=0
S
rb_ok() {
    local name=$1
    lifecycle_clean "$name"
    check "$name" "$NLOG('rebalance done') == 2 and $LOG('moved from 0x')" "two rebalances, the BARs moved"
    check "$name" "$NLOG('still pending: they run once the interrupt is reconnected') == 2" "the DPC queued before each stop was still pending, to run after HwFindAdapter re-ran (the gate must stay closed: zeroed open, the DPC hit a NULL ring)"
    check "$name" 'j["srb_timeouts"] == 0 and j["class_retries"] == 0' "no timeout, no retry"
    check "$name" 'j["workload"]["ios"] == 200 and j["workload"]["image_mismatches"] == 0' "I/O resumed after the second rebalance, verified"
}
sim_json null --backend contract script "$SCRATCH/rb.script"
rb_ok null
check null "not $LOG('StorPortEnablePassiveInitialization after a rebalance') and not $LOG('second call on this device extension') and j['interrupt_mode'] == 'MSI-X'" "the driver asked for neither the uncached extension nor passive initialisation again; MSI-X reconnected"
sim_json same-intx --backend contract --second-uncached same --no-msi script "$SCRATCH/rb.script"
rb_ok same-intx
check same-intx 'j["interrupt_mode"] == "INTx"' "INTx instance"
if command -v qemu-system-x86_64 >/dev/null; then
    sim_json qemu script "$SCRATCH/rb.script"
    rb_ok qemu
fi
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 8M "$IMG"
printf 'run --qd 1 --ios 20\npnp rebalance\nrun --qd 1 --ios 20\n' >"$SCRATCH/fake.script"
for m in null same; do
    rc=0
    SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --json --backend contract --disk "$IMG" --second-uncached $m \
        --timeout 50 script "$SCRATCH/fake.script" >"$SCRATCH/fake-$m.json" 2>"$SCRATCH/fake-$m.err" || rc=$?
    echo $rc >"$SCRATCH/fake-$m.rc"
done
check fake-null 'rc == 1 and "HwFindAdapter returned 2" in err' "control: a miniport asking again for its uncached extension gets NULL and fails to start"
check fake-same 'rc == 1 and "HwInitialize returned FALSE" in err' "control: a miniport asking again for passive initialisation is refused and fails to start"
finish
