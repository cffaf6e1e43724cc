#!/usr/bin/env bash
# Requests Windows sends (docs/simulator.md "Disk class"): with ConfigInfo->CachesData
# SYNCHRONIZE CACHE is followed by SRB_FUNCTION_FLUSH and teardown sends
# SRB_FUNCTION_SHUTDOWN twice; a power cycle is wrapped in SYNCHRONIZE CACHE + START STOP
# UNIT (stop) ... START STOP UNIT (start); with the write cache on (disk.sys'
# ADJUST_FUA_FLAG; the test miniport reports WCE and DPOFUA together) 10% of writes carry FUA. The test
# miniport traces what reaches it; then the driver runs the same requests clean.
. "$(dirname "$0")/../sim/common.sh"
need_sim
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 8M "$IMG"
printf 'run --qd 4 --ios 300\npower-cycle\nrun --qd 2 --ios 50\n' >"$SCRATCH/steps.txt"
trace() {   # trace NAME [env...]
    local name=$1 rc=0; shift
    env SIM_FAKE_TRACE=1 SIM_FAKE_DISK="$IMG" "$@" timeout 60 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" \
        --timeout 50 script "$SCRATCH/steps.txt" >"$SCRATCH/$name.out" 2>&1 || rc=$?
    grep '^fake: ' "$SCRATCH/$name.out" | grep -v 'FUA write' | sed 's/^fake: //' | tr '\n' ';' >"$SCRATCH/$name.seq"
    echo "$rc" >"$SCRATCH/$name.rc"
}
expect_seq() {   # expect_seq NAME SEQUENCE WHAT
    if [ "$(cat "$SCRATCH/$1.rc")" = 0 ] && [ "$(cat "$SCRATCH/$1.seq")" = "$2" ]; then echo "ok    [$1] $3"
    else echo "FAIL  [$1] $3: rc=$(cat "$SCRATCH/$1.rc") got '$(cat "$SCRATCH/$1.seq")'"; echo "      want '$2'"; FAILS=$((FAILS + 1)); fi
}
SYNC='CDB 35 00 00 00 00;'; FLUSH='SRB function 0x08;'; SHUT='SRB function 0x07;'; PWR='SRB function 0x24;'
# at arrival (issue 11 item 12): disk.sys' SMART probe (IO_CONTROL) and StorPort's WMI SRB
ARRIVE='SRB function 0x02;SRB function 0x17;'
trace caching SIM_FAKE_CACHES=1
expect_seq caching "$ARRIVE$SYNC$FLUSH$SYNC${FLUSH}CDB 1b 00 00 00 00;$PWR${PWR}CDB 1b 00 00 00 01;$SYNC$FLUSH$SHUT$SHUT" \
    "CachesData: SYNC CACHE+FLUSH, power cycle wrapped in SYNC/STOP..START, SHUTDOWN twice at teardown"
n=$(grep -c 'fake: FUA write' "$SCRATCH/caching.out")
if [ "$n" -ge 3 ] && [ "$n" -le 40 ]; then echo "ok    [caching] DPOFUA: $n FUA writes (about 10% of ~175 writes)"
else echo "FAIL  [caching] DPOFUA: $n FUA writes, expected about 10%"; FAILS=$((FAILS + 1)); fi
trace nocache
expect_seq nocache "$ARRIVE$SYNC${SYNC}CDB 1b 00 00 00 00;$PWR${PWR}CDB 1b 00 00 00 01;$SYNC" \
    "no CachesData: neither FLUSH nor SHUTDOWN reaches the miniport"
grep -q 'fake: FUA write' "$SCRATCH/nocache.out" && { echo "FAIL  [nocache] FUA write without DPOFUA"; FAILS=$((FAILS + 1)); } \
    || echo "ok    [nocache] no FUA without DPOFUA"

# the driver: FUA writes, FLUSH, power cycle with START STOP UNIT, SHUTDOWN at the end
printf 'run --qd 8 --ios 1500 --fua-pct 30\npower-cycle\nrun --qd 4 --ios 500\nexpect errors=0 mismatches=0\n' >"$SCRATCH/drv.txt"
sim_json drv --backend contract script "$SCRATCH/drv.txt"
check_clean drv
sim_json drvfua --backend contract run --rw randwrite --qd 8 --ios 1000 --fua-pct 50
check_clean drvfua
check drvfua 'j["workload"]["fua_writes"] > 300' "--fua-pct 50: about half the writes carry FUA"
finish
