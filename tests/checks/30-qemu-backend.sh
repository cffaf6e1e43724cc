#!/usr/bin/env bash
# QEMU backend of the simulator against QEMU's real virtio-blk-pci (cmocka, ASan+UBSan):
# identity, BARs, one raw virtio-blk READ, MSI-X into shared RAM, INTx, concurrency,
# teardown on destroy/signals, clean errors. Every test of the source's tests[] array
# must have run and passed. Then: no process of the test (QEMU or anything else) and no
# temp file of ours may survive the run.
#
# The test binary runs in a session of its own, and its session ID is recorded by the
# session leader itself ($$ of the shell that setsid started, which then execs timeout):
# QEMU puts itself in its own process group (sim/qemu_backend_proc.c) but stays in that
# session, so whatever the test leaves behind is found by session ID. A negative control
# first leaks a `sleep 300` (in its own process group, like QEMU) the same way and the
# detector must find it.
set -u
cd "$(dirname "$0")/../.."
bin=out/host/unit/test_qemu_backend
src=tests/unit/test_qemu_backend.c
[ -x "$bin" ] || { echo "missing $bin (make $bin)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 1; }
scratch=$(mktemp -d /tmp/check-qemu-backend.XXXXXX)
work=$(mktemp -d /tmp/check-qemu-backend-log.XXXXXX)   # logs and session IDs: not in $scratch
trap 'rm -rf "$scratch" "$work"' EXIT

# in_session NAME CMD...: CMD in a new session, bounded by timeout; its session ID in
# $work/NAME.sid, its output in $work/NAME.log; returns CMD's exit status.
in_session() {
  local name=$1; shift
  TMPDIR=$scratch setsid -w bash -c 'echo $$ >"$0"; exec timeout --kill-after=5 120 "$@"' \
      "$work/$name.sid" "$@" >"$work/$name.log" 2>&1
}
# leftovers SID: the live processes still in session SID ("pid args" lines). A process
# that is just exiting gets 2 s to go; zombies waiting for a reaper do not count.
leftovers() {
  local sid=$1 left i
  [[ "$sid" =~ ^[0-9]+$ ]] || { echo "bad session id '$sid'"; return; }
  for i in $(seq 20); do
    left=$(ps -s "$sid" -o pid=,stat=,args= | awk '$2 !~ /^Z/ { $2 = ""; print }')
    [ -z "$left" ] && return
    sleep 0.1
  done
  echo "$left"
}
kill_leftovers() { local p; for p in $(echo "$1" | awk '{print $1}'); do kill -9 "$p" 2>/dev/null; done; }

# Negative control: the detector finds a process a program left in its session.
in_session control bash -c 'set -m; sleep 300 & exit 0'
left=$(leftovers "$(cat "$work/control.sid")")
echo "$left" | grep -q 'sleep 300' || { kill_leftovers "$left"; echo "FAIL: the leak detector missed the control's 'sleep 300' (found: '${left}')"; exit 1; }
kill_leftovers "$left"
[ -z "$(leftovers "$(cat "$work/control.sid")")" ] || { echo "FAIL: could not clean up the control's process"; exit 1; }
echo "ok: negative control: a process leaked into the session was found ($(echo $left)) and killed"

in_session test "$bin"; rc=$?
cat "$work/test.log"
left=$(leftovers "$(cat "$work/test.sid")")
[ -z "$left" ] || { kill_leftovers "$left"; echo "FAIL: processes of the test survived it:"; echo "$left"; exit 1; }
[ $rc -eq 0 ] || { echo "FAIL: test_qemu_backend failed (rc=$rc)"; exit 1; }
stray=$(find "$scratch" -mindepth 1 | head)
[ -z "$stray" ] || { echo "FAIL: files left behind: $stray"; exit 1; }

. tests/unit/all-ran.sh
all_tests_ran "$src" "$(cat "$work/test.log")" || exit 1
echo "qemu backend: all $ntests unit tests passed, nothing left behind"
