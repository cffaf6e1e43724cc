#!/usr/bin/env bash
# The bounded soak (issue 15 item 3, docs/reliability.md): tools/soak.py --every-fault with
# a fixed campaign seed: each fault class of its FAULTS table once (both backends in turn,
# the host build and both shipped binaries in turn, each pessimistic Windows variant of
# VARIANTS at least once), every I/O verified, every SRB accounted; then the bad-input
# segments (malformed IOCTLs at every length, random CDBs over every opcode, device-side
# garbage on the contract device). Fails on any lost or duplicated SRB, mismatch, finding,
# sanitizer report, wrong status or fault without evidence. The oracle of the random CDBs
# is checked against canned answers first (it must reject wrong ones).
. "$(dirname "$0")/../sim/common.sh"
need_sim
need_qemu
out=$PWD/$SCRATCH/soak
drivers=host,amd64,x86
for a in amd64 x86; do
    [ -f out/package/$a/aerovblk.sys ] || { echo "FAIL: out/package/$a/aerovblk.sys missing (make check builds it)"; exit 1; }
done
[ -x out/peloader/x86/aerovblk-sim ] || { echo "FAIL: 32-bit simulator missing (make peloader-sim32)"; exit 1; }

# the CDB oracle bites: wrong answers are flagged, right ones pass
"$PY" - <<'PY' && echo "ok    [oracle] the random-CDB oracle accepts right answers and flags wrong ones" || { echo "FAIL  [oracle]"; FAILS=$((FAILS+1)); }
import sys; sys.path.insert(0, "tools")
import soak_badinput as b
m = lambda s: b.CDB_RE.match(s)
ok = "cdb: srb_status 0x84 (ERROR, autosense valid)  scsi_status 0x02  sense key 5 asc 20 ascq 00  transferred 0"
succ = "cdb: srb_status 0x01 (SUCCESS)  scsi_status 0x00  transferred 4096"
med = "cdb: srb_status 0x84 (ERROR, autosense valid)  scsi_status 0x02  sense key 3 asc 11 ascq 00  transferred 0"
assert b.cdb_problem(0xFF, "none", m(ok)) is None
assert b.cdb_problem(0xFF, "in", m(succ))            # unsupported opcode that succeeded
assert b.cdb_problem(0x28, "out", m(succ))           # READ with data-out that moved data
assert b.cdb_problem(0x28, "in", m(succ)) is None
assert b.cdb_problem(0x12, "in", m(med))             # MEDIUM ERROR is never a right answer here
assert b.cdb_problem(0x12, "in", None)               # no result line
PY

"$PY" -c 'import sys, json; sys.path.insert(0, "tools"); import soak
json.dump([f.name for f in soak.FAULTS if not f.pending], open(sys.argv[1], "w"))
json.dump([v.name for v in soak.VARIANTS], open(sys.argv[2], "w"))' "$SCRATCH/classes.json" "$SCRATCH/variants.json"
rc=0
timeout --kill-after=10 400 python3 tools/soak.py --every-fault --seed 85 --seg-seconds 2 --bad-input \
    --drivers $drivers --out "$out" >"$SCRATCH/soak.log" 2>&1 || rc=$?
cut -c1-200 "$SCRATCH/soak.log" | grep -v '^    [a-z0-9]' | tail -n 40
echo "$rc" >"$SCRATCH/soak.rc"
cp "$out/summary.json" "$SCRATCH/soak.json" 2>/dev/null || echo '{}' >"$SCRATCH/soak.json"
: >"$SCRATCH/soak.err"
T='j["totals"]'
check soak 'rc == 0 and j["failures"] == []' "every segment passed (exit status 0)"
check soak "$T[\"lost_srbs\"] == 0 and $T[\"duplicate_srbs\"] == 0 and $T[\"srbs_issued\"] > 1000" "no SRB lost or completed twice (of all issued)"
check soak "$T[\"findings\"] == 0 and $T[\"verified_ios\"] > 1000" "no finding; verified I/Os in every segment"
check soak 'set(j["faults_injected"]) >= {f for f in __import__("json").loads(open("'"$SCRATCH"'/classes.json").read())}' "every live fault class injected at least once"
check soak 'set(j["variants"]) >= set(__import__("json").loads(open("'"$SCRATCH"'/variants.json").read()))' "every Windows variant at least once"
check soak '{k.split("/")[0] for k in j["verified_ios_by_backend_driver_irq"]} == {"qemu", "contract"} and {k.split("/")[1] for k in j["verified_ios_by_backend_driver_irq"]} == {"host", "amd64", "x86"}' "both backends, the host build and both shipped binaries"
check soak 'j["bad_input"]["ioctls"] == 2 * (28 + 0x120 + 64 + 1) and j["bad_input"]["cdbs"] >= 1536 and j["bad_input"]["device_garbage"] >= 10' "bad input: every IOCTL length 0..sizeof(SRB_IO_CONTROL)+sizeof(QUERY_INFO)+64 per backend, random CDBs over every opcode, device garbage"
check soak 'j["bad_input"]["wrong_status"] == 0 and j["bad_input"]["problems"] == []' "bad input: every request got its correct status, nothing lost, no finding"
finish
