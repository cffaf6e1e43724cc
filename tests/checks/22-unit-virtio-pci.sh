#!/usr/bin/env bash
# Unit tests of the modern PCI transport (driver/virtio_pci.c) against the in-process
# contract device: both layouts, malformed capability lists, FEATURES_OK refused,
# revisions 00/02, queue size 0, vector read-back 0xFFFF, request round trips.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_virtio_pci
[ -x "$bin" ] || { echo "missing $bin (make unit-virtio-pci)"; exit 1; }
log=$(timeout 300 "$bin" 2>&1); rc=$?
echo "$log"
[ $rc -eq 0 ] || { echo "test_virtio_pci failed (rc=$rc)"; exit 1; }
src=tests/unit/test_virtio_pci.c
. tests/unit/all-ran.sh
all_tests_ran "$src" "$log" || exit 1
echo "ok: $ntests transport/device tests passed"
