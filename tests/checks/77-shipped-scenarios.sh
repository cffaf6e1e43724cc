#!/usr/bin/env bash
# The shipped binaries under the same integration scenarios as the host build: the
# simulator, disk-semantics, diagnostics and lifecycle checks are rerun with
# AEROVBLK_SIM_DRIVER (the simulator's default --driver) set to
# out/package/amd64/aerovblk.sys (64-bit simulator) and out/package/x86/aerovblk.sys
# (the same command: the 64-bit simulator re-executes the 32-bit one, natively or
# under qemu-i386 as AEROVBLK_X86_MODE says; stdcall/cdecl boundaries for real). Checks that link the host
# build itself (verifier fake miniports, the IOCTL harnesses) are not rerun, nor the
# 6 GiB high-address check (a 32-bit simulator cannot map that much guest RAM).
# SHIPPED_ARCHES=amd64 (or x86) limits the run.
set -u
cd "$(dirname "$0")/../.."
root=$PWD
scenarios=(31-* 32-* 33-* 34-* 35-* 36-* 38-* 39-* 39a-sim-hardening-sg 39a-sim-hardening-requests
           39a-sim-hardening-dump 44-* 45-* 46-* 47-* 48-* 49-* 54-* 55-* 56-* 59-* 60-* 61-* 62-* 63-*
           60a-* 60b-* 60c-* 60e-sim-hibernate* 60f-* 60g-* 60h-sim-pnp* 60i-* 60j-* 64-* 65-* 66-*)
# One arch's reruns; prints its lines and ends with "RESULT ran fails".
run_arch() {
  local arch=$1 sim sys fails=0 ran=0 n t name log rc
  case $arch in
    amd64) sim=$root/out/host/aerovblk-sim ;;
    x86)   sim=$root/out/host/aerovblk-sim
           [ -x "$root/out/peloader/x86/aerovblk-sim" ] || { echo "FAIL  x86: 32-bit simulator not built"; echo "RESULT 0 1"; return; } ;;
  esac
  sys=$root/out/package/$arch/aerovblk.sys
  if [ ! -x "$sim" ] || [ ! -f "$sys" ]; then
    echo "FAIL  $arch: $sim or $sys missing (make check builds them)"; echo "RESULT 0 1"; return
  fi
  for n in "${scenarios[@]}"; do
    for t in tests/checks/$n.sh; do
      [ -f "$t" ] || continue
      name=$(basename "$t" .sh)
      log=out/check-logs/77-$arch-$name.log
      ran=$((ran+1))
      # CHECK_AREA: scratch files apart from the checks' own runs and from the other
      # arch's (run-checks.sh runs this check in a lane of its own, next to them)
      if CHECK_AREA=check-77-$arch SIM=$sim AEROVBLK_SIM_DRIVER=$sys timeout --kill-after=10 600 bash "$t" >"$log" 2>&1; then
        echo "ok    $arch $name"
      else
        rc=$?
        if [ $rc -eq 77 ]; then echo "skip  $arch $name"; continue; fi
        echo "FAIL  $arch $name (rc=$rc, log $log)"; tail -n 8 "$log" | sed 's/^/        /'
        fails=$((fails+1))
      fi
    done
  done
  echo "RESULT $ran $fails"
}
# The arches run side by side (the x86 one is mostly qemu-i386 time; a 2-core machine
# has room for both next to make check's other lane); their reports follow one another.
fails=0; ran=0; pids=(); arches=(${SHIPPED_ARCHES:-amd64 x86})
mkdir -p out/check-logs
for arch in "${arches[@]}"; do
  run_arch "$arch" >"out/check-logs/77-$arch.out" 2>&1 & pids+=($!)
done
for i in "${!arches[@]}"; do
  wait "${pids[$i]}"
  out=out/check-logs/77-${arches[$i]}.out
  grep -v '^RESULT ' "$out"
  read -r _ r f < <(grep '^RESULT ' "$out" || echo "RESULT 0 1")
  ran=$((ran+r)); fails=$((fails+f))
done
echo "$ran scenario runs against shipped binaries, $fails failed"
[ $ran -gt 0 ] && [ $fails -eq 0 ]
