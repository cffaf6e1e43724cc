#!/usr/bin/env bash
# Dump mode (docs/simulator.md "dump-load"): no timer thread — a RequestTimerCall routine
# runs from the dump port's poll loop, but it is outside the dump-safe StorPort set
# (issue 11 item 9, facts §11.8): a DUMP finding, and only that; more than 32 KiB of uncached extension is a DUMP
# finding; after `crash` the dump instance finds PCI as the crashed instance left it
# (MSI-X still enabled) and must still work by polling.
. "$(dirname "$0")/../sim/common.sh"
need_sim
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 8M "$IMG"
rc=0
SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --json --backend contract --disk "$IMG" --dump-mode --srb-timeout 2 --timeout 50 \
    run --qd 1 --ios 100 >"$SCRATCH/timer.json" 2>"$SCRATCH/timer.err" || rc=$?
echo $rc >"$SCRATCH/timer.rc"
check timer 'rc == 1 and len(j["findings"]) == 1 and j["findings"][0].startswith("DUMP: StorPortNotification(type 6) in dump mode: outside the dump-safe set")' "dump-mode test miniport completes its READs from RequestTimerCall: flagged as outside the dump-safe set, nothing else"
check timer 'j["timers"] >= 40 and j["srb_timeouts"] == 0' "the timer ran from the poll loop for every READ, nothing timed out"
rc=0
SIM_FAKE_BUG=dump-big-uncached SIM_FAKE_DISK=$IMG timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" --dump-mode \
    --timeout 50 run --qd 1 --ios 20 >"$SCRATCH/big.out" 2>&1 || rc=$?
if [ $rc -eq 1 ] && grep -q "DUMP: StorPortGetUncachedExtension(40000 bytes) in dump mode" "$SCRATCH/big.out"; then
    echo "ok    [big] caught: $(grep -m1 'DUMP: StorPortGetUncached' "$SCRATCH/big.out" | cut -c1-120)"
else echo "FAIL  [big] 40000-byte uncached extension in dump mode not reported (rc=$rc)"; FAILS=$((FAILS + 1)); fi

cat >"$SCRATCH/crash.txt" <<S
run --qd 8 --ios 500
crash 4
dump-load
run --rw randrw --bs 64K --qd 1 --ios 300 --seed 5
expect errors=0 mismatches=0
S
sim_json crash --backend contract --srb-timeout 5 script "$SCRATCH/crash.txt"
check_clean crash
if grep -q "dump stack: PCI configuration left as the crashed instance had it (MSI-X still enabled)" "$SCRATCH/crash.err"; then
    echo "ok    [crash] dump instance ran with the crashed instance's MSI-X still enabled"
else echo "FAIL  [crash] PCI was reconfigured for the dump instance"; FAILS=$((FAILS + 1)); fi
finish
