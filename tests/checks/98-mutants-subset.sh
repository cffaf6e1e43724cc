#!/usr/bin/env bash
# The mutation harness (tools/mutants.py, `make mutants`, docs/testing.md) cannot rot:
#  1. every mutant in tests/mutants/mutants.txt still applies to the working tree as
#     written (each substitution matches exactly its stated count, each diff applies);
#  2. three quick mutants go through the same runner as `make mutants` (snapshot of the
#     working tree, baseline, mutate, build, CHECK_FILTER check) and each must be KILLED;
#     chosen for cheap killing checks (the runner runs each killer twice: baseline and
#     mutant), one per kind of target (a tool, the catalog writer, the driver's unit test):
#       vm-legacy-device        tools/aerovblk-vm    killed by 81-vm-launch
#       catalog-no-osattr       tools/mkcat.py       killed by 19a-catalog
#       vq-free-list-tail       driver/virtqueue.c   killed by 20-unit-virtqueue (unit test)
# Report: out/mutants-subset/report.md (the full run's out/mutants/ is left alone).
# About 45 s on an idle 2-core machine (two to three times that while other builds run).
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # the runner's make is standalone even under `make check`
SUBSET=vm-legacy-device,catalog-no-osattr,vq-free-list-tail
/usr/bin/python3 tools/mutants.py verify || { echo "FAIL: tests/mutants/mutants.txt no longer applies (above)"; exit 1; }
/usr/bin/python3 tools/mutants.py run --mutants "$SUBSET" --out out/mutants-subset >out/mutants-subset.log 2>&1
rc=$?
sed -n '/^| # |/,/^$/p' out/mutants-subset/report.md 2>/dev/null
if [ $rc -ne 0 ]; then
  echo "FAIL: tools/mutants.py run --mutants $SUBSET exited $rc:"
  tail -n 30 out/mutants-subset.log
  exit 1
fi
killed=$(grep -c '| KILLED |' out/mutants-subset/report.md)
[ "$killed" -eq 3 ] || { echo "FAIL: $killed of 3 mutants killed"; exit 1; }
echo "ok: the harness applies all mutants and kills the 3-mutant subset"
