#!/usr/bin/env bash
# Unit tests of driver/blk.c through the real virtqueue.c / virtio_pci.c against the
# user-space ring device (tests/unit/vq_device.c) plus a minimal virtio-blk device
# side: config snapshot (only negotiated fields, validation, generation loop, device
# gone), CONFIG_WCE write + read-back, memory carving, header/data/payload/status
# layout, status sentinel, slot and ring exhaustion -> VQ_FULL, GET_ID copy-back,
# discard payload, invalid shapes, detach after reset, statistics. ASan+UBSan.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_blk
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
log=$(timeout 120 "$bin" 2>&1); rc=$?
echo "$log"
[ $rc -eq 0 ] || { echo "test_blk failed (rc=$rc)"; exit 1; }
src=tests/unit/test_blk.c
. tests/unit/all-ran.sh
all_tests_ran "$src" "$log" || exit 1
if echo "$log" | grep -qE 'runtime error|AddressSanitizer|LeakSanitizer'; then
  echo "sanitizer report in the log"; exit 1
fi
echo "ok: $ntests virtio-blk request tests passed"
