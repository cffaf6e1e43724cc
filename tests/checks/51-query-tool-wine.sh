#!/usr/bin/env bash
# aerovblk-query.exe (x64) under Wine, where no aerovblk disk exists: the
# "no aerovblk disk" path and its exit code 3, the --json document, --help, --device on
# a missing path, and the usage error. Wine is required (scripts/ensure-deps.sh installs
# wine64): this check never skips; without Wine it fails and names the package.
set -uo pipefail
cd "$(dirname "$0")/../.."
exe=out/package/amd64/aerovblk-query.exe
[ -f "$exe" ] || { echo "missing $exe (make $exe)"; exit 1; }

# Wine lookup shared with 51a (Debian's wine64 has no /usr/bin links): fails, never
# skips, naming `apt-get install -y wine64` when Wine is missing.
. tests/wine/wine-env.sh
wine_find || exit 1

export WINEPREFIX="$PWD/out/tools-wine/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p "$(dirname "$WINEPREFIX")"
tmp=$(mktemp -d /tmp/query-wine.XXXXXX)
# Wait (bounded) for this prefix's wineserver to go idle and exit; never kill it, a
# concurrent run may share the prefix. The prefix (out/tools-wine, ~700 MB) is kept.
cleanup() { [ -n "$wineserver" ] && timeout 60 "$wineserver" -w >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT

run() {  # run ARGS... -> $rc, $tmp/out, $tmp/err
  timeout 240 "$wine" "$exe" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
  echo "== aerovblk-query $* -> rc=$rc"; cat "$tmp/out" "$tmp/err"
}
fail() { echo "FAIL: $*"; exit 1; }

run
[ $rc -eq 3 ] || fail "expected exit 3 (no aerovblk disk), got $rc"
grep -q "no aerovblk disk found" "$tmp/err" || fail "missing 'no aerovblk disk found' message"
[ -s "$tmp/out" ] && fail "stdout should be empty without a disk"

run --json
[ $rc -eq 3 ] || fail "--json: expected exit 3, got $rc"
/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["tool"] == "aerovblk-query" and d["devices"] == [], d
assert d["exit_code"] == 3 and d["status"] == "no_aerovblk_disk", d
' "$tmp/out" || fail "--json document"

run --device '\\.\Scsi63:'
[ $rc -eq 3 ] || fail "--device missing path: expected exit 3, got $rc"
grep -q 'no aerovblk disk at \\\\.\\Scsi63:' "$tmp/err" || fail "--device message"

run --help
[ $rc -eq 0 ] || fail "--help: expected exit 0, got $rc"
grep -q "Exit codes" "$tmp/out" || fail "--help text"

run --bogus
[ $rc -eq 2 ] || fail "unknown option: expected exit 2, got $rc"
echo "aerovblk-query.exe under Wine: no-disk exit 3, JSON, --device, --help, usage all as documented"
