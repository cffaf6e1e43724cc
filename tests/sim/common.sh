# Shared helpers of the simulator checks tests/checks/3[1-9]-*.sh (sourced, not a test).
# Each check runs out/host/aerovblk-sim with --json and asserts on the JSON it prints.
set -u
cd "$(dirname "$0")/../.."
SIM=${SIM:-out/host/aerovblk-sim}
SIM_FAKE=${SIM_FAKE:-out/host/aerovblk-sim-fake}
CHECK_NAME=$(basename "$0" .sh)
SCRATCH=out/check-sim/$CHECK_NAME
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
FAILS=0

need_sim() { [ -x "$SIM" ] || { echo "FAIL: $SIM not built (make check builds it)"; exit 1; }; }
need_qemu() { command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 not installed"; exit 77; }; }

# sim_json NAME [sim args...]: runs the simulator; JSON in $SCRATCH/NAME.json, stderr in
# $SCRATCH/NAME.err; the exit status in $SCRATCH/NAME.rc. Never fails by itself.
sim_json() {
    local name=$1; shift
    local rc=0
    "$SIM" --json --timeout 120 "$@" >"$SCRATCH/$name.json" 2>"$SCRATCH/$name.err" || rc=$?
    echo "$rc" >"$SCRATCH/$name.rc"
    return 0
}

# check NAME 'python expression over j (the JSON) and rc' 'what it means'
check() {
    local name=$1 expr=$2 what=$3
    if /usr/bin/python3 - "$SCRATCH/$name.json" "$SCRATCH/$name.rc" "$expr" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"    (no JSON: {e})"); sys.exit(1)
rc = int(open(sys.argv[2]).read())
sys.exit(0 if eval(sys.argv[3]) else 1)
PY
    then echo "ok    [$name] $what"
    else
        echo "FAIL  [$name] $what   ($expr)"
        tail -n 15 "$SCRATCH/$name.err" | sed 's/^/      /'
        FAILS=$((FAILS + 1))
    fi
}

# The assertions every clean driver run must satisfy.
check_clean() {
    local name=$1
    check "$name" 'rc == 0' "exit status 0"
    check "$name" 'j["verifier_findings"] == 0' "no verifier findings"
    check "$name" 'j.get("errors", 0) == 0 and j.get("mismatches", 0) == 0' "no I/O errors, no data mismatches"
}

# Has feature bit b been negotiated (device's driver_feature registers)?
FEAT='(lambda b: (int(j["features_negotiated"], 16) >> b) & 1)'

finish() {
    if [ "$FAILS" -ne 0 ]; then echo "$FAILS assertion(s) failed; logs in $SCRATCH"; exit 1; fi
    echo "all assertions passed"
    exit 0
}
