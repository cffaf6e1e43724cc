#!/usr/bin/env bash
# Unit tests of the SCSI translation (driver/scsi.c over the real blk.c / virtqueue.c /
# virtio_pci.c), ASan+UBSan: every command and error path of issue 5 with exact data,
# SRB status and sense; SUBMIT cases check the virtio-blk request and feed completions
# back (FUA two-stage, GET_ID -> VPD 80/83, 4096-byte blocks, > 2 TiB, RO, UA, UNMAP,
# WRITE SAME, MODE SELECT -> CONFIG_WCE). Buffers have exact sizes: ASan catches over-runs.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_scsi
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
log=$(timeout 120 "$bin" 2>&1); rc=$?
echo "$log"
[ $rc -eq 0 ] || { echo "test_scsi failed (rc=$rc)"; exit 1; }
src=tests/unit/test_scsi.c
. tests/unit/all-ran.sh
all_tests_ran "$src" "$log" || exit 1
if echo "$log" | grep -qE 'runtime error|AddressSanitizer|LeakSanitizer'; then
  echo "sanitizer report in the log"; exit 1
fi
echo "ok: $ntests SCSI translation tests passed"
