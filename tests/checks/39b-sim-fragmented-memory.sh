#!/usr/bin/env bash
# --fragmented-memory (issue 11, facts §11.12): no physically contiguous run above
# 128 KiB, as at a late PnP start on a fragmented x86 machine. The driver's full
# uncached extension (rings + indirect tables, ~300-600 KiB) fails; it must start with
# the smaller configuration (no indirect tables: direct chains, ~90 KiB), log
# 0xA0B10A01 once, keep its transfer limits, and move verified data — 4 KiB random I/O
# at QD32 and maximum-size requests at QD8 — on the contract device and QEMU. Negative
# control: without the option the full extension is taken and nothing is logged.
. "$(dirname "$0")/../sim/common.sh"
need_sim
LOGGED='sum("0xa0b10a01" in l.lower() for l in j["log"])'
FAILED='any("no physically contiguous run" in l for l in j["log"])'
sim_json normal --backend contract --disk "$SCRATCH/c.img" --size 64M info
check normal 'rc == 0 and '"$LOGGED"' == 0 and not '"$FAILED" "control: without --fragmented-memory nothing fails and nothing is logged"
check normal 'j["instances"][0]["uncached_extension_bytes"] > 131072' "control: the full uncached extension is larger than 128 KiB"
MAXX=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_transfer"])' "$SCRATCH/normal.json" 2>/dev/null || echo 0)

sim_json frag --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory run --rw randrw --qd 32 --ios 3000
check_clean frag
check frag "$FAILED" "the full uncached extension failed (no contiguous run that large)"
check frag "$LOGGED == 1" "the smaller configuration is logged once (0xA0B10A01)"
check frag 'j["instances"][0]["uncached_extension_bytes"] <= 131072' "smaller uncached extension: at most 128 KiB"
check frag 'j["max_transfer"] == '"$MAXX" "same maximum transfer as with the full configuration ($MAXX bytes)"
check frag 'w["ios"] == 3000' "3000 verified 4 KiB I/Os at QD32"

sim_json fragmax --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory run --rw randrw --qd 8 --bs "$MAXX" --ios 300
check_clean fragmax
check fragmax 'w["ios"] == 300' "300 verified maximum-size ($MAXX bytes) requests at QD8 through direct chains"

sim_json fragdump --backend contract --disk "$SCRATCH/c.img" --size 64M --fragmented-memory --dump-mode run --rw write --qd 1 --ios 200
check_clean fragdump
check fragdump "$LOGGED == 0" "dump mode: its small extension is unaffected"

if command -v qemu-system-x86_64 >/dev/null; then
    sim_json qfrag --disk "$SCRATCH/q.img" --size 64M --fragmented-memory run --rw randrw --qd 32 --ios 2000
    check_clean qfrag
    check qfrag "$FAILED and $LOGGED == 1" "QEMU: full extension failed, smaller configuration logged once"
    check qfrag 'j["instances"][0]["uncached_extension_bytes"] <= 131072 and w["ios"] == 2000' "QEMU: at most 128 KiB, 2000 verified I/Os at QD32"
else
    echo "skip  QEMU rows: qemu-system-x86_64 not installed"
fi
finish
