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
# One Python process per check script evaluates every assertion (a coprocess, started on
# first use): an interpreter per assertion cost ~60 ms of CPU, ~3000 times in make check.
# Each request is four NUL-terminated fields (JSON path, rc path, stderr path, expression);
# the answer is any message lines, then "=RC=0" (holds) or "=RC=1". A check called in a
# subshell (no access to the coprocess) runs its own interpreter, the same code.
CHECK_PY_SRC='
import json, sys
def evaluate(jpath, rcpath, errpath, expr):
    try:
        j = json.load(open(jpath))
    except Exception as e:
        print(f"    (no JSON: {e})"); return 1
    try:
        rc = int(open(rcpath).read())
        err = open(errpath, errors="replace").read()
        q = j.get("ioctl", {}).get("query", {}).get("fields", {})
        w = j.get("workload", {})
    except Exception as e:
        print(f"    (cannot read the run: {e!r})"); return 1
    # one namespace, as globals: lambdas in the expression see j, rc, err, q, w
    env = {"json": json, "sys": sys, "j": j, "rc": rc, "err": err, "q": q, "w": w}
    try:
        ok = eval(expr, env)
    except Exception as e:
        print(f"    (expression failed: {e!r})"); ok = False
    return 0 if ok else 1
if len(sys.argv) == 5:
    sys.exit(evaluate(*sys.argv[1:]))
fields, rest = [], b""
for raw in iter(lambda: sys.stdin.buffer.read1(65536), b""):
    *done, rest = (rest + raw).split(b"\0")
    fields += done
    while len(fields) >= 4:
        args = [f.decode("utf-8", "surrogateescape") for f in fields[:4]]
        del fields[:4]
        print(f"=RC={evaluate(*args)}", flush=True)
'
check() {
    local name=$1 expr=$2 what=$3 line rc=
    if [ "$BASHPID" = "$$" ]; then
        if [ -z "${CHECK_PY_PID:-}" ] || ! kill -0 "$CHECK_PY_PID" 2>/dev/null; then
            coproc CHECK_PY { exec "$PY" -c "$CHECK_PY_SRC"; }
        fi
        printf '%s\0' "$SCRATCH/$name.json" "$SCRATCH/$name.rc" "$SCRATCH/$name.err" "$expr" >&"${CHECK_PY[1]}"
        while IFS= read -r line <&"${CHECK_PY[0]}"; do
            case $line in =RC=*) rc=${line#=RC=}; break ;; *) echo "$line" ;; esac
        done
        [ -n "$rc" ] || { echo "    (assertion evaluator exited)"; rc=1; }
    else
        "$PY" -c "$CHECK_PY_SRC" "$SCRATCH/$name.json" "$SCRATCH/$name.rc" "$SCRATCH/$name.err" "$expr"; rc=$?
    fi
    if [ "$rc" = 0 ]
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
