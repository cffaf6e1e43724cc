#!/usr/bin/env bash
# Unit tests of the split virtqueue (driver/virtqueue.c) against a user-space device
# (tests/unit/vq_device.c), ASan+UBSan: 65536 wraparound, ring full, indirect vs
# chained, EVENT_IDX / flag suppression counts, out-of-order completion, hostile used
# entries (bad id, duplicate, absurd len, idx jump), detach after reset, the
# enable/re-check race.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_virtqueue
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
log=$(timeout 300 "$bin" 2>&1); rc=$?
echo "$log"
[ $rc -eq 0 ] || { echo "test_virtqueue failed (rc=$rc)"; exit 1; }
src=tests/unit/test_virtqueue.c
. tests/unit/all-ran.sh
all_tests_ran "$src" "$log" || exit 1
# Sanitizer reports must not hide in a passing run.
if echo "$log" | grep -qE 'runtime error|AddressSanitizer|LeakSanitizer'; then
  echo "sanitizer report in the log"; exit 1
fi
echo "ok: $ntests virtqueue tests passed"
