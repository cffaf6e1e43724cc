#!/usr/bin/env bash
# Issue 16: the benchmark's regression gate. scripts/bench.py --gate measures the
# deterministic subset of `make bench` (driver instructions per 4 KiB read and write at
# QD1 with callgrind on out/bench/aerovblk-sim, -O2 without sanitizers; uncached- and
# SRB-extension bytes and maximum transfer, normal and dump mode; MMIO reads, doorbells,
# interrupts and DPCs per I/O at QD1 with MSI-X on the contract device) and fails on a
# regression against tests/bench/baseline.json: instructions +5 %, sizes and transfer
# exact, per-I/O exits +0.01. Negative control: the same measurement against a baseline
# 10 % below it (instructions), with one byte less uncached extension and one byte more
# maximum transfer, must fail and name each of the three.
set -u
cd "$(dirname "$0")/../.."
SIM=out/bench/aerovblk-sim
[ -x "$SIM" ] || { echo "FAIL: $SIM not built (make check builds it)"; exit 1; }
command -v valgrind >/dev/null || { echo "FAIL: valgrind not installed (scripts/ensure-deps.sh)"; exit 1; }
[ -f tests/bench/baseline.json ] || { echo "FAIL: tests/bench/baseline.json missing"; exit 1; }
S=out/checks/90-bench-gate
rm -rf "$S"; mkdir -p "$S"
rc=0
python3 scripts/bench.py --gate --out "$S/bench.json" >"$S/gate.out" 2>&1 || rc=$?
sed 's/^/      /' "$S/gate.out"
fail=0
if [ $rc -ne 0 ]; then echo "FAIL: bench gate (exit $rc)"; fail=1; else echo "ok: no regression against tests/bench/baseline.json"; fi
grep -q "^| read 4K QD1 | " "$S/gate.out" || { echo "FAIL: no 4 KiB read row"; fail=1; }

# Negative control: a stricter baseline made from this very measurement.
python3 - "$S/bench.json" "$S/strict.json" <<'PY'
import json, sys
cur = json.load(open(sys.argv[1]))
b = {"instructions": {k: {"driver_instructions_per_io": v["driver_instructions_per_io"] * 0.9}
                      for k, v in cur["instructions"].items()},
     "sizes": [dict(s) for s in cur["sizes"]], "exits_gated": []}
b["sizes"][0]["uncached_extension_bytes"] -= 1
b["sizes"][0]["max_transfer"] += 1
json.dump(b, open(sys.argv[2], "w"))
PY
python3 - "$S/bench.json" "$S/strict.json" >"$S/neg.out" <<'PY'
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench", "scripts/bench.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
for line in m.gate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))):
    print(line)
PY
for pat in "read 4K QD1: .* driver instructions per I/O > baseline" "uncached_extension_bytes: .* > baseline" "max_transfer: .* < baseline"; do
    if grep -q "$pat" "$S/neg.out"; then echo "ok: negative control flags '$pat'"; else echo "FAIL: negative control did not flag '$pat'"; fail=1; fi
done
exit $fail
