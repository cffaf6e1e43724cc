# Sourced by checks that start 32-bit (i386) test programs directly. Runs them the way
# the simulator's launcher does (sim/x86_launch.c): natively where the kernel executes
# 32-bit code, else under QEMU user mode. AEROVBLK_X86_MODE=native|emulated|auto
# (default auto) chooses, so both paths are tested on a machine that has both.
#   x86_exec PROGRAM ARGS...   runs it; its exit status
#   x86_mode                   prints "native" or "emulated" (what x86_exec will use)
# Every program x86_exec starts adds a line to $AEROVBLK_X86_LOG (tests/run-checks.sh
# counts them for its summary).
x86_can_run_native() {
  if [ -z "${X86_NATIVE_OK:-}" ]; then
    local probe=${X86_PROBE:-out/peloader/x86/probe32}
    if [ -x "$probe" ] && "$probe" >/dev/null 2>&1; then X86_NATIVE_OK=1; else X86_NATIVE_OK=0; fi
    export X86_NATIVE_OK
  fi
  [ "$X86_NATIVE_OK" = 1 ]
}
x86_mode() {
  case ${AEROVBLK_X86_MODE:-auto} in
    native) echo native ;;
    emulated) echo emulated ;;
    auto) if x86_can_run_native; then echo native; else echo emulated; fi ;;
    *) echo "AEROVBLK_X86_MODE must be native, emulated or auto" >&2; return 2 ;;
  esac
}
# x86_bin out/peloader/x86/PROG: the build to run in the current mode (under emulation
# the UBSan-only one in out/peloader/x86-noasan: ASan under qemu-i386 is too slow).
x86_bin() {
  if [ "$(x86_mode)" = emulated ]; then echo "${1/\/x86\//\/x86-noasan\/}"; else echo "$1"; fi
}
x86_exec() {
  local mode; mode=$(x86_mode) || return 2
  [ -n "${AEROVBLK_X86_LOG:-}" ] && echo "$mode" >>"$AEROVBLK_X86_LOG"
  if [ "$mode" = native ]; then
    AEROVBLK_X86_RAN=native "$@"
  else
    command -v "${AEROVBLK_QEMU_I386:-qemu-i386}" >/dev/null || { echo "qemu-i386 missing: apt-get install -y qemu-user" >&2; return 127; }
    AEROVBLK_X86_RAN=emulated AEROVBLK_X86_EMULATED=1 "${AEROVBLK_QEMU_I386:-qemu-i386}" -L / "$@"
  fi
}
# Executed (not sourced), for `timeout` and other programs that cannot call a function:
#   bash tests/sim/x86.sh exec PROGRAM ARGS...
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = exec ]; then
  shift
  x86_exec "$@"
  exit $?
fi
