#!/usr/bin/env bash
# The shipped out/package/amd64/aerovblk.sys itself (not the host build) runs in the
# simulator (aerovblk-sim --driver, sim/pe loader: 24 KiB kernel stack, MMIO trapped):
# verified random read/write workloads against QEMU's virtio-blk with MSI-X and with
# INTx, against the contract device, in dump mode, and the diagnostics IOCTL; every run
# must end "Result: PASS" with 0 verifier findings and register writes seen by the
# device; then the driver's kernel-stack high-water mark (-v -v). 75-shipped-x86-sim.sh
# runs this script with "out/peloader/x86/aerovblk-sim x86".
set -u
cd "$(dirname "$0")/../.."
sim=${1:-out/host/aerovblk-sim} arch=${2:-amd64}
sys=out/package/$arch/aerovblk.sys
[ -x "$sim" ] || { echo "missing $sim (make; for x86: make peloader-sim32)"; exit 1; }
[ -e "$sys" ] || { echo "missing $sys (make package)"; exit 1; }
tmp=$(mktemp -d /tmp/aerovblk-shipped-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
disk=$tmp/disk.img        # created (sparse) by the first run, reused by the others
fail=0
run() {   # name, then aerovblk-sim arguments
  local name=$1; shift
  local out rc
  out=$(timeout 240 "$sim" --timeout 200 --disk "$disk" --size 64M --driver "$sys" "$@" 2>&1); rc=$?
  echo "=== $name: aerovblk-sim --driver $sys $* (rc=$rc)"
  echo "$out" | tail -n 12
  if [ $rc -ne 0 ] || ! grep -q '^Result: PASS' <<<"$out" || ! grep -q '^Verifier: 0 findings' <<<"$out"; then
    echo "FAIL: $name"; fail=1; return
  fi
  if ! grep -q "loaded aerovblk.sys at" <<<"$out"; then
    echo "FAIL: $name did not run the loaded image"; fail=1; return
  fi
  if [ "$name" != ioctl ] && ! grep -Eq 'VM exits +[0-9]+ MMIO reads, [1-9][0-9]* MMIO writes' <<<"$out"; then
    echo "FAIL: $name: no register writes reached the device"; fail=1
  fi
}
run qemu-msix   run --rw randrw --bs 4096 --qd 16 --ios 2000 --seed 7
run qemu-intx   --no-msi run --rw randrw --bs 65536 --qd 4 --ios 300 --seed 8
run contract    --backend contract run --rw randrw --bs 8192 --qd 32 --ios 2000 --seed 9
run dump-mode   --backend contract --dump-mode run --rw randrw --ios 200 --seed 10
run ioctl       --backend contract ioctl
# The driver's kernel-stack high-water mark (aerovblk-sim -v -v). StorPort's emulation
# runs behind export gates on the host stack (docs/pe-loader.md), so this is the driver's
# own frames plus the thin entry/gate frames: it must be reported and within the stack.
out=$(timeout 240 "$sim" -v -v --timeout 200 --disk "$disk" --size 64M --driver "$sys" --backend contract \
      run --rw randrw --bs 65536 --qd 8 --ios 300 --seed 11 2>&1); rc=$?
hw=$(sed -nE 's/.*sim: deepest kernel-stack use ([0-9]+) of ([0-9]+) bytes.*/\1 \2/p' <<<"$out" | tail -n1)
echo "=== kernel stack: ${hw:-not reported} (used, size in bytes; rc=$rc)"
if [ $rc -ne 0 ] || [ -z "$hw" ] || ! awk -v u="${hw% *}" -v s="${hw#* }" 'BEGIN { exit !(u > 0 && u < s) }'; then
  echo "FAIL: kernel-stack high-water mark missing or out of range"; fail=1
fi
[ $fail -eq 0 ] && echo "ok: shipped $arch aerovblk.sys passes in the simulator"
exit $fail
