#!/usr/bin/env bash
# Issue 11 item 13 (the strictness items the simulator lacked; the contiguous-memory
# functions are elsewhere): each rule is shown to bite with the test miniport
# (tests/unit/sim_fake_miniport.c, SIM_FAKE_BUG) and to hold for the driver.
#  1. The supported-control-type list: StorPort passes MaxControlType BOOLEANs
#     (ScsiAdapterControlMax = 5 on Windows 7, [MS-CTLTYPE]); a canary follows them and
#     any write beyond is an ADAPTERCONTROL finding (every start checks it).
#  2. An error completion that still claims the whole DataTransferLength (facts §11.14).
#     Allowed to keep it: SUCCESS, DATA_OVERRUN, BUSY (StorPort re-issues the same SRB),
#     CHECK CONDITION with autosense RECOVERED ERROR (classpnp: success, no retry).
#  3. A re-acquired spin lock: Windows spins for ever, so the run stops at once with a
#     DEADLOCK finding and exit status 1 (not the timeout's 3, and no carrying on).
# Control for 3: the same lock-taking Stop is legal when StorPort holds no lock
# (--adapter-control-locks none), and passes.
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/disk.img
truncate -s 8M "$IMG"
fake() {   # fake NAME BUG REGEX [sim args]: REGEX empty = must pass
    local name=$1 bug=$2 re=$3 rc=0
    shift 3
    SIM_FAKE_BUG=$bug SIM_FAKE_DISK=$IMG timeout 120 "$SIM_FAKE" --backend contract --disk "$IMG" --timeout 60 \
        "$@" >"$SCRATCH/$name.out" 2>&1 || rc=$?
    echo "$rc" >"$SCRATCH/$name.rc"
    if [ -z "$re" ]; then
        if [ $rc -eq 0 ] && ! grep -q VERIFIER "$SCRATCH/$name.out"; then echo "ok    [$name] passes"
        else echo "FAIL  [$name] did not pass (rc=$rc)"; tail -5 "$SCRATCH/$name.out"; FAILS=$((FAILS+1)); fi
    elif [ $rc -eq 1 ] && grep -Eq "$re" "$SCRATCH/$name.out"; then
        echo "ok    [$name] caught (exit 1): $(grep -Em1 "$re" "$SCRATCH/$name.out" | cut -c1-160)"
    else
        echo "FAIL  [$name] $bug not caught as /$re/ with exit 1 (rc=$rc)"; tail -5 "$SCRATCH/$name.out"; FAILS=$((FAILS+1))
    fi
}
fake ctl-canary ctl-list-overflow "ADAPTERCONTROL: ScsiQuerySupportedControlTypes wrote beyond" info
fake error-length error-full-length "completed with SRB status 0x0e but DataTransferLength still" run --qd 4 --ios 100
fake deadlock stop-takes-interrupt-lock "DEADLOCK: .*InterruptLock is already held.*\[in HwAdapterControl at DIRQL\]" \
    --adapter-control-locks interrupt run --qd 4 --seconds 1 --power-cycle-every 100
grep -q "TIMEOUT" "$SCRATCH/deadlock.out" && { echo "FAIL  [deadlock] ended by the watchdog, not at the deadlock"; FAILS=$((FAILS+1)); }
fake lockfree-stop stop-takes-interrupt-lock "" --adapter-control-locks none run --qd 4 --seconds 1 --power-cycle-every 100
# --json after a deadlock: a result object saying so
SIM_FAKE_BUG=stop-takes-interrupt-lock SIM_FAKE_DISK=$IMG SIM=$SIM_FAKE sim_json deadlock-json --backend contract \
    --disk "$IMG" --adapter-control-locks interrupt run --qd 4 --seconds 1 --power-cycle-every 100
check deadlock-json 'rc == 1 and j["deadlock"] is True and j["exit_status"] == 1 and any("DEADLOCK" in f for f in j["findings"])' "--json: deadlock, exit status 1"

# The driver: error completions report what was transferred (0) - device I/O errors
# (MEDIUM ERROR), a ring fault (reset: BUS_RESET), a read past the end (ILLEGAL REQUEST).
head -c 4096 /dev/urandom >"$SCRATCH/data.bin"
cat >"$SCRATCH/errors.script" <<S
control fail-next-read
cdb "28 00 00 00 00 08 00 00 08 00" --in 4096
expect srb=4 scsi=2 sense=3/11/00 len=0
control fail-next-write
cdb "2a 00 00 00 00 08 00 00 08 00" --out $SCRATCH/data.bin
expect srb=4 scsi=2 sense=3/0c/00 len=0
control bad-used-id
run --rw randrw --bs 4K --qd 4 --ios 200
expect errors=0 mismatches=0
S
sim_json errors --backend contract --size 16M script "$SCRATCH/errors.script"
lifecycle_clean errors
check errors 'j["class_completions"].get("ERROR", 0) >= 1 and j["class_completions"].get("BUS_RESET", 0) >= 1' "error completions happened (ERROR, BUS_RESET), each checked by the verifier"
sim_json past-end --backend contract --size 8M cdb "28 00 00 01 00 00 00 00 08 00" --in 4096
check past-end 'rc == 0 and j["verifier_findings"] == 0 and j["cdb"]["sense_key"] == 5 and j["cdb"]["transferred"] == 0' "READ past the end: ILLEGAL REQUEST, nothing transferred"
finish
