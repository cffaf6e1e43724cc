#!/usr/bin/env bash
# MMIO accesses, doorbells and interrupts per request of 4 KiB random reads, counted by
# the simulator (it sees every register access the driver makes, per virtio region, and
# every interrupt it delivers), for the interrupt/notification configurations of issue 3's
# targets; prints a Markdown table (each row with its exact command) and checks the targets:
#   MSI-X (default vectors), QD1: 1 MMIO write (the doorbell) and 0 reads per request
#   INTx, QD1: at most 2 MMIO accesses per request (doorbell + ISR read)
#   EVENT_IDX, QD >= 16: fewer than 1 doorbell and fewer than 1 interrupt per request
#
# usage: scripts/measure.sh [--quick] [--ios-qd1 N] [--ios-qd32 N] [--json FILE] [--check]
#   --quick     500 I/Os at QD1, 5000 at QD32 (what tests/checks/55-targets.sh runs)
#   --json FILE also write every row (commands, raw counters) as JSON
#   --check     exit 1 if a target is missed (otherwise the exit status is 0 unless a
#               run failed)
# Default: 5000 I/Os at QD1, 20000 at QD32. Needs out/host/aerovblk-sim and, for the
# QEMU rows, qemu-system-x86_64. IOPS are printed for orientation only: every register
# access and every DMA is a qtest round trip between two processes, which dominates the
# time; they are not a performance claim for the driver.
set -u
cd "$(dirname "$0")/.."
SIM=${SIM:-out/host/aerovblk-sim}
PY=/usr/bin/python3
IOS1=5000 IOS32=20000 JSON_OUT="" CHECK=0
while [ $# -gt 0 ]; do
    case $1 in
    --quick) IOS1=500 IOS32=5000 ;;
    --ios-qd1) IOS1=$2; shift ;;
    --ios-qd32) IOS32=$2; shift ;;
    --json) JSON_OUT=$2; shift ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "measure.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$SIM" ] || { echo "measure.sh: $SIM not built (make $SIM)" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "measure.sh: qemu-system-x86_64 not installed" >&2; exit 2; }

WORK=$(mktemp -d /tmp/aerovblk-measure.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
IMG=$WORK/perf.img
ROWS=$WORK/rows.txt
: >"$ROWS"
n=0
# row LABEL QD IOS [sim options...]: one run; the JSON goes to $WORK/N.json
row() {
    local label=$1 qd=$2 ios=$3; shift 3
    n=$((n + 1))
    local cmd=("$SIM" --json --timeout 120 --disk "$IMG" --size 256M "$@"
               run --rw randread --bs 4K --qd "$qd" --ios "$ios" --seed 1)
    local rc=0
    "${cmd[@]}" >"$WORK/$n.json" 2>"$WORK/$n.err" || rc=$?
    # the command as a reader types it: without --json/--timeout and with a stable image path
    local shown="${cmd[*]}"
    shown=${shown/ --json --timeout 120/}
    shown=${shown/$IMG//tmp/perf.img}
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$label" "$qd" "$rc" "$shown" >>"$ROWS"
}

row "MSI-X (default: 2 vectors)"        1  "$IOS1"
row "MSI-X (default: 2 vectors)"        32 "$IOS32"
row "INTx (device vectors=0)"           1  "$IOS1"  --device-opts vectors=0
row "INTx (device vectors=0)"           32 "$IOS32" --device-opts vectors=0
row "INTx (--no-msi: INF without MSISupported)" 1 "$IOS1" --no-msi
row "MSI-X, event_idx=off"              1  "$IOS1"  --device-opts event_idx=off
row "MSI-X, event_idx=off"              32 "$IOS32" --device-opts event_idx=off
row "MSI-X, 1 shared vector (vectors=1)" 1 "$IOS1"  --device-opts vectors=1
row "MSI-X, 1 shared vector (vectors=1)" 32 "$IOS32" --device-opts vectors=1
row "contract device (MSI-X)"           1  "$IOS1"  --backend contract
row "contract device (MSI-X)"           32 "$IOS32" --backend contract

"$PY" - "$WORK" "$ROWS" "$CHECK" "$JSON_OUT" <<'PY'
import json, sys
work, rows_file, check, json_out = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
rows, failed_runs = [], 0
for line in open(rows_file):
    n, label, qd, rc, cmd = line.rstrip("\n").split("\t")
    try:
        j = json.load(open(f"{work}/{n}.json"))
    except ValueError:
        j = {}
    w = j.get("workload")
    ok = rc == "0" and w and j.get("verifier_findings") == 0 and not w["errors"] and not w["mismatches"]
    if not ok:
        failed_runs += 1
        err = open(f"{work}/{n}.err", errors="replace").read().strip().splitlines()[-5:]
        print(f"RUN FAILED (exit {rc}): {cmd}\n    " + "\n    ".join(err), file=sys.stderr)
        continue
    ios = w["ios"]
    rows.append(dict(label=label, qd=int(qd), command=cmd, backend=j["backend"],
                     interrupt_mode=j["interrupt_mode"], features=j["features"], ios=ios,
                     mmio_reads=w["mmio_reads"], mmio_writes=w["mmio_writes"],
                     doorbells=w["doorbells"], interrupts=w["interrupts"], dpcs=w["dpcs"],
                     iops=w["iops"],
                     per_io={k: w[k] / ios for k in ("mmio_reads", "mmio_writes", "doorbells", "interrupts", "dpcs")}))

print("| configuration | QD | I/Os | interrupt mode | MMIO reads / I/O | MMIO writes / I/O | doorbells / I/O | interrupts / I/O | DPCs / I/O | IOPS (not a claim) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    p = r["per_io"]
    print(f"| {r['label']} | {r['qd']} | {r['ios']} | {r['interrupt_mode']} | {p['mmio_reads']:.3f} | "
          f"{p['mmio_writes']:.3f} | {p['doorbells']:.3f} | {p['interrupts']:.3f} | {p['dpcs']:.3f} | {r['iops']} |")
print()
for i, r in enumerate(rows, 1):
    print(f"{i}. `{r['command']}`")
print()

# targets (issue 3), judged on the raw counts of the workload alone (bring-up excluded)
def find(label_start, qd):
    return next((r for r in rows if r["label"].startswith(label_start) and r["qd"] == qd), None)
targets = []
def target(what, r, cond, shown):
    if r is None:
        targets.append((what, False, "row missing (its run failed)"))
    else:
        targets.append((what, cond(r), shown(r)))
per = lambda r, k: r[k] / r["ios"]
target("MSI-X QD1: 1 MMIO write (the doorbell) and 0 MMIO reads per request",
       find("MSI-X (default", 1),
       lambda r: r["mmio_writes"] == r["ios"] == r["doorbells"] and r["mmio_reads"] == 0,
       lambda r: f"{r['mmio_writes']} writes ({r['doorbells']} doorbells), {r['mmio_reads']} reads for {r['ios']} requests")
for lbl, name in (("INTx (device", "INTx (vectors=0)"), ("INTx (--no-msi", "INTx (--no-msi)")):
    target(f"{name} QD1: at most 2 MMIO accesses per request (doorbell + ISR read)",
           find(lbl, 1),
           lambda r: r["mmio_reads"] + r["mmio_writes"] <= 2 * r["ios"],
           lambda r: f"{(r['mmio_reads'] + r['mmio_writes']) / r['ios']:.3f} per request "
                     f"({r['mmio_writes']} writes + {r['mmio_reads']} reads for {r['ios']})")
target("contract device QD1: 1 MMIO write and 0 reads per request",
       find("contract", 1),
       lambda r: r["mmio_writes"] == r["ios"] and r["mmio_reads"] == 0,
       lambda r: f"{r['mmio_writes']} writes, {r['mmio_reads']} reads for {r['ios']} requests")
target("EVENT_IDX (MSI-X default) QD32: < 1 doorbell and < 1 interrupt per request",
       find("MSI-X (default", 32),
       lambda r: r["doorbells"] < r["ios"] and r["interrupts"] < r["ios"] and "EVENT_IDX" in r["features"].split(),
       lambda r: f"{per(r, 'doorbells'):.3f} doorbells, {per(r, 'interrupts'):.3f} interrupts per request")
target("EVENT_IDX with INTx (vectors=0) QD32: < 1 doorbell and < 1 interrupt per request",
       find("INTx (device", 32),
       lambda r: r["doorbells"] < r["ios"] and r["interrupts"] < r["ios"],
       lambda r: f"{per(r, 'doorbells'):.3f} doorbells, {per(r, 'interrupts'):.3f} interrupts per request")
print("Targets:")
for what, ok, shown in targets:
    print(f"  {'PASS' if ok else 'MISS'}  {what}: {shown}")
if json_out:
    json.dump({"rows": rows, "targets": [dict(target=t, met=ok, measured=s) for t, ok, s in targets]},
              open(json_out, "w"), indent=1)
if failed_runs:
    sys.exit(1)
if check and not all(ok for _, ok, _ in targets):
    sys.exit(1)
PY
