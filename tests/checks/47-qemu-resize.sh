#!/usr/bin/env bash
# Capacity change (issue 5 section 5) through the simulator against QEMU: after a
# verified workload, QMP block_resize 256 MiB -> 512 MiB raises the config interrupt;
# the next command gets UNIT ATTENTION 06/2A/09 (once), READ CAPACITY reports the new
# size, StorPort saw BusChangeDetected, and I/O to the new area verifies. For each
# interrupt mode: MSI-X with a config vector, one shared MSI-X vector, INTx (ISR bit 1).
# Then the same resize lands in the middle of a running QD8 workload (`after MS qmp`):
# no I/O lost or failed (the class driver retries the one that gets the unit
# attention, which is then consumed: a TUR afterwards is GOOD), new size reported.
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-$PWD/out/host/aerovblk-sim}
[ -x "$sim" ] || { echo "missing $sim (make $sim)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing"; exit 1; }
scratch=$(mktemp -d /tmp/check-47.XXXXXX); trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
cat > steps.txt <<'STEPS'
run --rw randrw --ios 200 --qd 8
expect errors=0 mismatches=0
cdb "25 00 00 00 00 00 00 00 00 00" --in 8
expect srb=1 "data=00 07 ff ff 00 00 02 00"
qmp {"execute":"block_resize","arguments":{"device":"d0","size":536870912}}
sleep 300
cdb "00 00 00 00 00 00"
expect srb=4 sense=6/2a/09
cdb "00 00 00 00 00 00"
expect srb=1
cdb "25 00 00 00 00 00 00 00 00 00" --in 8
expect srb=1 "data=00 0f ff ff 00 00 02 00"
cdb "9e 10 00 00 00 00 00 00 00 00 00 00 00 0c 00 00" --in 12
expect srb=1 "data=00 00 00 00 00 0f ff ff 00 00 02 00"
expect bus_changes=1
rescan
expect capacity=1048576
run --rw randrw --ios 200 --qd 8 --offset 268435456
expect errors=0 mismatches=0
STEPS
cat > during.txt <<'STEPS'
run --rw randrw --ios 100 --qd 8
expect errors=0 mismatches=0
after 300 qmp {"execute":"block_resize","arguments":{"device":"d0","size":536870912}}
run --rw randrw --seconds 2 --qd 8
expect errors=0 mismatches=0 bus_changes=1
cdb "00 00 00 00 00 00"
expect srb=1
cdb "25 00 00 00 00 00 00 00 00 00" --in 8
expect srb=1 "data=00 0f ff ff 00 00 02 00"
rescan
run --rw randrw --ios 300 --qd 8 --offset 268435456
expect errors=0 mismatches=0
STEPS
fail=0
for mode in "" "--msi-messages 1" "--no-msi"; do
  rm -f disk.img
  # shellcheck disable=SC2086
  log=$(timeout --kill-after=5 120 "$sim" -q --disk disk.img --size 256M $mode script during.txt 2>&1); rc=$?
  echo "== resize during a workload, mode: ${mode:-MSI-X 2 vectors}"
  echo "$log" | grep -E 'interrupts  |cdb:|EXPECT|Result|I/Os|verification'
  [ $rc -eq 0 ] || { echo "FAIL: resize during workload (${mode:-msix}) rc=$rc"; echo "$log" | tail -5; fail=1; }
done
for mode in "" "--msi-messages 1" "--no-msi"; do
  rm -f disk.img
  # shellcheck disable=SC2086
  log=$(timeout --kill-after=5 120 "$sim" -q --disk disk.img --size 256M $mode script steps.txt 2>&1); rc=$?
  echo "== mode: ${mode:-MSI-X 2 vectors}"
  echo "$log" | grep -E 'interrupts  |cdb:|EXPECT|Result|I/Os'
  [ $rc -eq 0 ] || { echo "FAIL: resize scenario (${mode:-msix}) rc=$rc"; echo "$log" | tail -5; fail=1; }
  [ "$(stat -c %s disk.img)" = 536870912 ] || { echo "FAIL: image was not resized"; fail=1; }
done
[ $fail -eq 0 ] && echo "ok: capacity change seen as 06/2A/09 + new READ CAPACITY in every interrupt mode"
exit $fail
