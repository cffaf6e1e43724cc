#!/bin/sh
# QEMU wrapper for the diagnostics checks (used as AEROVBLK_QEMU): runs the real QEMU
# with the simulator's arguments plus a second QMP monitor at $AVDIAG_QMP_SOCK, so a
# test can ask QEMU itself (x-query-virtio-status) while the simulator owns the first.
exec "${AVDIAG_REAL_QEMU:-qemu-system-x86_64}" "$@" -qmp "unix:${AVDIAG_QMP_SOCK:?},server=on,wait=off"
