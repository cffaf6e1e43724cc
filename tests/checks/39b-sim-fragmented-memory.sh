#!/usr/bin/env bash
# --fragmented-memory[=N] (issue 11, facts §11.12): no physically contiguous run above
# N bytes (default 128 KiB), as at a late PnP start on a fragmented x86 machine.
#  - default (128 KiB): the driver's normal uncached extension fits (its indirect tables
#    are sized for that budget): it starts with its full configuration, logs nothing and
#    moves verified data, 4 KiB random at QD32 and maximum-size requests at QD8;
#  - 64 KiB: the full extension fails; the driver must start with the smaller
#    configuration (no indirect tables: direct chains only), log 0xA0B10A01 once, keep
#    its transfer limits and move verified data (contract device and QEMU);
#  - dump mode is unaffected (its buffer is the dump stack's own).
# Controls: without the option nothing fails and nothing is logged; the 64 KiB runs
# must show the refused allocation.
. "$(dirname "$0")/../sim/common.sh"
need_sim
LOGGED='sum("0xa0b10a01" in l.lower() for l in j["log"])'
FAILED='any("no physically contiguous run" in l for l in j["log"])'
UNC='j["instances"][0]["uncached_extension_bytes"]'
sim_json normal --backend contract --disk "$SCRATCH/c.img" --size 64M info
check normal 'rc == 0 and '"$LOGGED"' == 0 and not '"$FAILED" "control: without --fragmented-memory nothing fails and nothing is logged"
MAXX=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_transfer"])' "$SCRATCH/normal.json" 2>/dev/null || echo 0)

sim_json frag --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory run --rw randrw --qd 32 --ios 1500
check_clean frag
check frag "$LOGGED == 0 and not $FAILED and $UNC <= 131072" "128 KiB limit: full configuration (uncached extension <= 128 KiB), nothing logged"
check frag 'w["ios"] == 1500' "1500 verified 4 KiB I/Os at QD32"

sim_json frag64 --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory=64K run --rw randrw --qd 32 --ios 1500
check_clean frag64
check frag64 "$FAILED" "64 KiB limit: the full uncached extension is refused"
check frag64 "$LOGGED == 1" "the smaller configuration is logged once (0xA0B10A01)"
check frag64 "$UNC <= 65536" "smaller uncached extension: at most 64 KiB"
check frag64 'j["max_transfer"] == '"$MAXX" "same maximum transfer as the full configuration ($MAXX bytes)"
check frag64 'w["ios"] == 1500' "1500 verified 4 KiB I/Os at QD32"

sim_json fragmax --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory=64K run --rw randrw --qd 8 --bs "$MAXX" --ios 300
check_clean fragmax
check fragmax 'w["ios"] == 300' "300 verified maximum-size ($MAXX bytes) requests at QD8 through direct chains"

sim_json fragdump --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory=16K --dump-mode run --rw write --qd 1 --ios 200
check_clean fragdump
check fragdump "$LOGGED == 0" "dump mode: its small extension is unaffected"

if command -v qemu-system-x86_64 >/dev/null; then
    sim_json qfrag --disk "$SCRATCH/q.img" --size 64M --fragmented-memory run --rw randrw --qd 32 --ios 1000
    check_clean qfrag
    check qfrag "$LOGGED == 0 and $UNC <= 131072"' and w["ios"] == 1000' "QEMU, 128 KiB limit: full configuration, 1000 verified I/Os at QD32"
    sim_json qfrag64 --disk "$SCRATCH/q.img" --size 64M --fragmented-memory=64K run --rw randrw --qd 32 --ios 1000
    check_clean qfrag64
    check qfrag64 "$FAILED and $LOGGED == 1 and $UNC <= 65536" "QEMU, 64 KiB limit: full extension refused, smaller configuration logged once"
    check qfrag64 'w["ios"] == 1000' "QEMU, 64 KiB limit: 1000 verified I/Os at QD32"
else
    echo "skip  QEMU rows: qemu-system-x86_64 not installed"
fi
finish
