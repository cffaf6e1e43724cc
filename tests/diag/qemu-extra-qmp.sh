#!/bin/sh
# QEMU wrapper for the diagnostics checks (used as AEROVBLK_QEMU): runs the real QEMU
# ($AVDIAG_REAL_QEMU, default qemu-system-x86_64) with the simulator's arguments plus a
# second QMP monitor at $AVDIAG_QMP_SOCK, so a test can ask QEMU itself
# (x-query-virtio-status) while the simulator owns the first monitor.
real=${AVDIAG_REAL_QEMU:-qemu-system-x86_64}
if [ "$(readlink -f "$(command -v "$real")")" = "$(readlink -f "$0")" ]; then
    echo "qemu-extra-qmp.sh: AVDIAG_REAL_QEMU points at this wrapper" >&2
    exit 127
fi
exec "$real" "$@" -qmp "unix:${AVDIAG_QMP_SOCK:?},server=on,wait=off"
