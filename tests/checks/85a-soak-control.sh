#!/usr/bin/env bash
# Negative control of the soak's accounting (issue 15 item 3, docs/reliability.md): one
# contract-device segment in which the simulator deliberately swallows one READ/WRITE
# completion (--test-drop-completion, test only). The soak must fail, report the SRB as
# lost in its own accounting (srb_accounting, not only the verifier), keep the segment's
# files and print a replay command; that command must regenerate the same segment
# (checked with --dry-run: identical script and simulator command).
. "$(dirname "$0")/../sim/common.sh"
need_sim
out=$PWD/$SCRATCH/soak
rc=0
timeout --kill-after=5 120 python3 tools/soak.py --replay 42 --backend contract --driver host --variant default \
    --seg-seconds 2 --sim-opt=--test-drop-completion=300 --sim-opt=--srb-timeout=1 --out "$out" \
    >"$SCRATCH/soak.log" 2>&1 || rc=$?
cat "$SCRATCH/soak.log" | cut -c1-240
echo "$rc" >"$SCRATCH/soak.rc"
cp "$out/summary.json" "$SCRATCH/soak.json" 2>/dev/null || echo '{}' >"$SCRATCH/soak.json"
: >"$SCRATCH/soak.err"
check soak 'rc == 1' "the soak failed (exit status 1)"
check soak 'j["totals"]["lost_srbs"] == 1 and j["totals"]["duplicate_srbs"] == 0' "its accounting counts exactly one lost SRB"
check soak 'any("SRB accounting: 1 lost" in p for f in j["failures"] for p in f["problems"])' "the failure names the lost SRB"
check soak 'j["failures"][0]["replay"].startswith("scripts/soak.sh --replay 42 ")' "a replay command is printed"
check soak '__import__("os").path.isfile(j["failures"][0]["kept"] + "/disk.img") and __import__("os").path.isfile(j["failures"][0]["kept"] + "/stderr.txt")' "image and logs kept"
grep -q "replay: scripts/soak.sh --replay 42" "$SCRATCH/soak.log" && echo "ok    [soak] replay command on the console" \
    || { echo "FAIL  [soak] no replay command on the console"; FAILS=$((FAILS+1)); }
# the printed replay command regenerates the same segment
replay=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failures"][0]["replay"])' "$SCRATCH/soak.json" 2>/dev/null)
seg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failures"][0]["kept"])' "$SCRATCH/soak.json" 2>/dev/null)
if [ -n "$replay" ] && eval "SOAK_NICE=0 ${replay/scripts\/soak.sh/scripts/soak.sh --dry-run --out $PWD/$SCRATCH/replay}" >"$SCRATCH/replay.log" 2>&1; then
    rseg=$(ls -d "$SCRATCH"/replay/seg-* | head -1)
    if cmp -s "$seg/steps.txt" "$rseg/steps.txt" && \
       [ "$(sed "s|$seg|X|g" "$seg/command.txt")" = "$(sed "s|$PWD/$rseg|X|g" "$rseg/command.txt")" ]; then
        echo "ok    [replay] the replay command regenerates the same script and simulator command"
    else
        echo "FAIL  [replay] replayed segment differs"; diff "$seg/steps.txt" "$rseg/steps.txt"; FAILS=$((FAILS+1))
    fi
else
    echo "FAIL  [replay] replay command did not run: $replay"; cat "$SCRATCH/replay.log"; FAILS=$((FAILS+1))
fi
finish
