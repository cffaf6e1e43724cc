#!/usr/bin/env bash
# The shipped binaries under the same integration scenarios as the host build: the
# simulator, disk-semantics, diagnostics and lifecycle checks are rerun with
# AEROVBLK_SIM_DRIVER (the simulator's default --driver) set to
# out/package/amd64/aerovblk.sys (64-bit simulator, UBSan only) and out/package/x86/aerovblk.sys
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
# The simulator that runs ARCH's .sys (printed), or a FAIL line and status 1.
arch_sim() {
  case $1 in
    # UBSan without ASan (mk/shipped-sim.mk): the .sys is not instrumented, and the host
    # runs of these scenarios already run the simulator's sources under ASan
    amd64) sim=$root/out/peloader/x64-noasan/aerovblk-sim ;;
    x86)   sim=$root/out/host/aerovblk-sim
           [ -x "$root/out/peloader/x86/aerovblk-sim" ] || { echo "FAIL  x86: 32-bit simulator not built"; return 1; } ;;
  esac
  if [ ! -x "$sim" ] || [ ! -f "$root/out/package/$1/aerovblk.sys" ]; then
    echo "FAIL  $1: $sim or $root/out/package/$1/aerovblk.sys missing (make check builds them)"; return 1
  fi
  echo "$sim"
}
# One scenario run: ARCH NAME; its line goes to out/check-logs/77-ARCH-NAME.line.
run_one() {
  local arch=$1 name=$2 sim log rc start secs
  sim=$(arch_sim "$arch") || return
  log=out/check-logs/77-$arch-$name.log
  start=$(date +%s)
  # CHECK_AREA: scratch files apart from the checks' own runs and from the other
  # arch's (run-checks.sh runs this check in a lane of its own, next to them)
  if CHECK_AREA=check-77-$arch SIM=$sim AEROVBLK_SIM_DRIVER=$root/out/package/$arch/aerovblk.sys \
     timeout --kill-after=10 600 bash "tests/checks/$name.sh" >"$log" 2>&1; then
    echo "ok    $arch $name ($(( $(date +%s) - start ))s)"
  else
    rc=$?; secs=$(( $(date +%s) - start ))
    if [ $rc -eq 77 ]; then echo "skip  $arch $name"; return; fi
    echo "FAIL  $arch $name (rc=$rc, ${secs}s, log $log)"; tail -n 8 "$log" | sed 's/^/        /'
  fi
}
# A worker per arch takes that arch's runs from its queue, then helps with the other
# arch's queue: the emulated x86 runs take about 1.5 times as long as the amd64 ones (an
# idle amd64 worker waited minutes for them), and at most one of each arch runs at a time
# until the amd64 queue is empty (two emulated x86 runs at once slow each other down).
# Reports are per arch, in scenario order.
arches=(${SHIPPED_ARCHES:-amd64 x86}); fails=0; ran=0; ok_arches=()
mkdir -p out/check-logs
rm -f out/check-logs/77-*.line out/check-logs/77-*.queue
for arch in "${arches[@]}"; do
  [[ $arch == amd64 || $arch == x86 ]] || { echo "FAIL  $arch: not an arch (SHIPPED_ARCHES: amd64 x86)"; fails=$((fails+1)); continue; }
  arch_sim "$arch" >/dev/null || { arch_sim "$arch"; fails=$((fails+1)); continue; }
  ok_arches+=("$arch")
  for n in "${scenarios[@]}"; do
    for t in tests/checks/$n.sh; do
      [ -f "$t" ] && basename "$t" .sh
    done
  done >"out/check-logs/77-$arch.queue"
  echo 0 >"out/check-logs/77-$arch.next"
done
take() {   # ARCH: prints the next scenario of ARCH's queue; status 1 when it is empty
  local q=out/check-logs/77-$1 i
  exec 9>"$q.lock"; flock 9
  i=$(<"$q.next"); echo $((i + 1)) >"$q.next"
  exec 9>&-
  sed -n "$((i + 1))p" "$q.queue" | grep .
}
worker() {   # ARCH, then the other arches
  local arch name
  for arch in "$@"; do
    while name=$(take "$arch"); do
      run_one "$arch" "$name" >"out/check-logs/77-$arch-$name.line" 2>&1
    done
  done
}
pids=()
for arch in "${ok_arches[@]}"; do
  worker "$arch" $(printf '%s\n' "${ok_arches[@]}" | grep -vx "$arch") & pids+=($!)
done
wait "${pids[@]}"
for arch in "${ok_arches[@]}"; do
  while read -r name; do
    ran=$((ran+1))
    line=out/check-logs/77-$arch-$name.line
    [ -s "$line" ] || echo "FAIL  $arch $name (did not run)" >"$line"
    cat "$line"
    grep -q '^FAIL' "$line" && fails=$((fails+1))
  done <"out/check-logs/77-$arch.queue"
done
rm -f out/check-logs/77-*.line out/check-logs/77-*.queue out/check-logs/77-*.next out/check-logs/77-*.lock
echo "$ran scenario runs against shipped binaries, $fails failed"
[ $ran -gt 0 ] && [ $fails -eq 0 ]
