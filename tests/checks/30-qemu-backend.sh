#!/usr/bin/env bash
# QEMU backend of the simulator against QEMU's real virtio-blk-pci (cmocka, ASan+UBSan):
# identity, BARs, one raw virtio-blk READ, MSI-X into shared RAM, INTx, concurrency,
# teardown on destroy/signals, clean errors. Then: no QEMU process or temp file of ours
# may survive the run.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_qemu_backend
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 1; }
scratch=$(mktemp -d /tmp/check-qemu-backend.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# The test process runs in its own session, so QEMU children it leaks are findable.
TMPDIR=$scratch timeout --kill-after=5 120 setsid "$bin" & pid=$!
wait $pid; rc=$?
[ $rc -eq 0 ] || { echo "test_qemu_backend failed (rc=$rc)"; exit 1; }
sleep 0.2
left=$(pgrep -s "$pid" -f qemu-system-x86_64 || true)
[ -z "$left" ] || { echo "QEMU processes survived the test: $left"; kill -9 $left; exit 1; }
stray=$(find "$scratch" -mindepth 1 | head)
[ -z "$stray" ] || { echo "files left behind: $stray"; exit 1; }
echo "qemu backend: all unit tests passed, nothing left behind"
