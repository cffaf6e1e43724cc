# Shared helpers of the simulator, diagnostics and lifecycle checks (tests/checks/3x, 5x,
# 6x; sourced, not a test). CHECK_AREA (default check-sim) names the scratch area.
# Each check runs out/host/aerovblk-sim with --json and asserts on the JSON it prints.
# Scratch files live in out/$CHECK_AREA/<check>/ and are removed when the check passes
# (kept on failure, for the logs).
set -u
cd "$(dirname "$0")/../.."
SIM=${SIM:-out/host/aerovblk-sim}
SIM_FAKE=${SIM_FAKE:-out/host/aerovblk-sim-fake}
PY=/usr/bin/python3
CHECK_NAME=$(basename "$0" .sh)
CHECK_AREA=${CHECK_AREA:-check-sim}
SCRATCH=out/$CHECK_AREA/$CHECK_NAME
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
FAILS=0

need_sim() { [ -x "$SIM" ] || { echo "FAIL: $SIM not built (make check builds it)"; exit 1; }; }
need_qemu() { command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 not installed"; exit 77; }; }

# sim_json NAME [sim args...]: runs the simulator (bounded by --timeout); JSON in
# $SCRATCH/NAME.json, stderr in $SCRATCH/NAME.err, exit status in $SCRATCH/NAME.rc.
sim_json() {
    local name=$1; shift
    local rc=0
    timeout --kill-after=5 150 "$SIM" --json --timeout 120 "$@" >"$SCRATCH/$name.json" 2>"$SCRATCH/$name.err" || rc=$?
    echo "$rc" >"$SCRATCH/$name.rc"
    return 0
}

# check NAME 'python expression over j (the JSON), rc and err (stderr text)' 'what it means'
check() {
    local name=$1 expr=$2 what=$3
    if "$PY" - "$SCRATCH/$name.json" "$SCRATCH/$name.rc" "$SCRATCH/$name.err" "$expr" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"    (no JSON: {e})"); sys.exit(1)
rc = int(open(sys.argv[2]).read())
err = open(sys.argv[3], errors="replace").read()
q = j.get("ioctl", {}).get("query", {}).get("fields", {})
w = j.get("workload", {})
try:
    ok = eval(sys.argv[4])
except Exception as e:
    print(f"    (expression failed: {e!r})"); ok = False
sys.exit(0 if ok else 1)
PY
    then echo "ok    [$name] $what"
    else
        echo "FAIL  [$name] $what   ($expr)"
        tail -n 15 "$SCRATCH/$name.err" | sed 's/^/      /'
        FAILS=$((FAILS + 1))
    fi
}

# What every clean run satisfies: exit 0, no verifier finding, no sanitizer report,
# no I/O error or data mismatch.
SANITIZER_RE='AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:'
check_clean() {
    local name=$1
    check "$name" 'rc == 0 and j["exit_status"] == 0' "exit status 0"
    check "$name" 'j["verifier_findings"] == 0 and j["findings"] == []' "no verifier findings"
    check "$name" 'not __import__("re").search(r"'"$SANITIZER_RE"'", err)' "no sanitizer report"
    check "$name" 'j.get("errors", 0) == 0 and j.get("mismatches", 0) == 0' "no I/O errors, no data mismatches"
}

# Has feature bit b been negotiated (device's driver_feature registers)?
FEAT='(lambda b: (int(j["features_negotiated"], 16) >> b) & 1)'

finish() {
    if [ "$FAILS" -ne 0 ]; then echo "$FAILS assertion(s) failed; logs in $SCRATCH"; exit 1; fi
    rm -rf "$SCRATCH"
    rmdir "out/$CHECK_AREA" 2>/dev/null
    echo "all assertions passed"
    exit 0
}
