#!/usr/bin/env bash
# The SCSI disk Windows sees, through the simulator against QEMU's virtio-blk:
# standard INQUIRY, VPD 80/83 from VIRTIO_BLK_T_GET_ID (QEMU serial=), READ CAPACITY
# 10/16, REPORT LUNS, MODE SENSE caching page, MODE SELECT WCE=0 -> CONFIG_WCE
# writeback off (then MODE SENSE shows it), SYNCHRONIZE CACHE, unknown opcode 05/20/00,
# LBA out of range 05/21/00, a verified workload. QEMU's own write-cache state is read
# independently over QMP (query-block): on before the MODE SELECT, off after it. Then the Aero contract device (no
# GET_ID, no CONFIG_WCE, no DISCARD): fallback serial, WCE change refused 05/26/00,
# UNMAP 05/20/00, B2 not listed. A wrong expectation must fail the
# run (negative control), so the expectations are really evaluated.
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-$PWD/out/host/aerovblk-sim}
[ -x "$sim" ] || { echo "missing $sim (make $sim)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing"; exit 1; }
py=/usr/bin/python3
root=$PWD
scratch=$(mktemp -d /tmp/check-44.XXXXXX); trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
# MODE SELECT(6) parameter list: 4-byte header, caching page with WCE = 0.
printf '\x00\x00\x00\x00\x08\x12' > wce0.bin; head -c 18 /dev/zero >> wce0.bin
cat > steps.txt <<'STEPS'
# standard INQUIRY (96 bytes: SPC-3, CmdQue, vendor "AERO")
cdb "12 00 00 00 60 00" --in 96
expect srb=1 len=96 "data=00 00 05 02 5b 00 00 02 41 45 52 4f"
# VPD 80: the QEMU serial, via GET_ID
cdb "12 01 80 00 ff 00" --in 255
expect srb=1 len=14 "data=00 80 00 0a 41 45 52 4f 54 45 53 54 34 32"
# VPD 83: T10 vendor id "AERO    " + serial, then the NAA designator
cdb "12 01 83 00 ff 00" --in 255
expect srb=1 len=38 "data=00 83 00 22 02 01 00 12 41 45 52 4f 20 20 20 20 41 45 52 4f 54 45 53 54 34 32 01 03 00 08"
# READ CAPACITY (10) and (16): 256 MiB of 512-byte blocks
cdb "25 00 00 00 00 00 00 00 00 00" --in 8
expect srb=1 len=8 "data=00 07 ff ff 00 00 02 00"
cdb "9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00" --in 32
expect srb=1 len=32 "data=00 00 00 00 00 07 ff ff 00 00 02 00"
cdb "a0 00 00 00 00 00 00 00 00 10 00 00" --in 16
expect srb=1 len=16 "data=00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00"
# MODE SENSE(6) caching page: DPOFUA, no WP, WCE (QEMU starts writeback)
cdb "1a 00 08 00 c0 00" --in 192
expect srb=1 len=32 data[2]=0x10 data[12]=0x08 data[14]=0x04
# MODE SELECT WCE = 0 -> writeback off through CONFIG_WCE (and a FLUSH); the pauses
# let the QMP poller see QEMU's write cache on before and off after
sleep 400
cdb "15 10 00 00 18 00" --out wce0.bin
expect srb=1 scsi=0
sleep 400
cdb "1a 08 08 00 c0 00" --in 192
expect srb=1 len=24 data[6]=0x00
# errors: unknown opcode, LBA out of range; SYNCHRONIZE CACHE
cdb "4d 00 00 00 00 00 00 00 00 00"
expect srb=4 sense=5/20/00
cdb "28 00 00 08 00 00 00 00 01 00" --in 512
expect srb=4 sense=5/21/00
cdb "35 00 00 00 00 00 00 00 00 00"
expect srb=1
run --rw randrw --ios 300 --qd 8 --bs 8192
expect mismatches=0 errors=0
STEPS
# QEMU's own write-cache state, independent of the driver's MODE SENSE answer: QMP
# query-block (inserted.cache.writeback = blk_enable_write_cache(), which a CONFIG_WCE
# write to the device's writeback field changes), asked over a second QMP monitor
# (tests/diag/qemu-extra-qmp.sh) every 20 ms while the script runs.
rm -f qmp.sock
timeout 90 "$py" - "$PWD/qmp.sock" wce.json <<'PY' 2>wce.err &
import json, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 80
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path); break
    except OSError:
        s.close()
        if time.monotonic() > deadline: sys.exit("QMP socket never appeared")
        time.sleep(0.02)
f = s.makefile("rwb")
def cmd(name):
    f.write(json.dumps({"execute": name}).encode() + b"\n"); f.flush()
    while True:
        line = f.readline()
        if not line: raise EOFError
        r = json.loads(line)
        if "return" in r or "error" in r: return r.get("return")
f.readline()                                   # greeting
cmd("qmp_capabilities")
seen, stamps, t0 = [], [], time.monotonic()
try:
    while time.monotonic() < deadline:
        for b in cmd("query-block"):
            if b.get("device") == "d0" and "inserted" in b:
                wb = b["inserted"]["cache"]["writeback"]
                if not seen or seen[-1] != wb: seen.append(wb); stamps.append(round(time.monotonic() - t0, 2))
        time.sleep(0.02)
except (EOFError, OSError, ValueError):
    pass                                       # QEMU exited with the simulator
json.dump({"writeback": seen, "at_s": stamps, "end_s": round(time.monotonic() - t0, 2)}, open(out, "w"))
PY
qpid=$!
log=$(AEROVBLK_QEMU=$root/tests/diag/qemu-extra-qmp.sh AVDIAG_QMP_SOCK=$PWD/qmp.sock \
      AVDIAG_REAL_QEMU=$(command -v qemu-system-x86_64) \
      timeout --kill-after=5 120 "$sim" -q --device-opts serial=AEROTEST42 script steps.txt 2>&1); rc=$?
wait $qpid
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "simulator script failed (rc=$rc)"; exit 1; }
echo "QEMU query-block writeback states seen (s after connecting): $(cat wce.json 2>/dev/null || cat wce.err)"
# on, then off (MODE SELECT) for at least the 400 ms pause and the rest of the script;
# QEMU's virtio_blk_reset restores the drive's original setting, so the device reset at
# teardown turns it on again at the very end
"$py" -c 'import json, sys
w = json.load(open("wce.json"))
s, at, end = w["writeback"], w["at_s"], w["end_s"]
sys.exit(0 if s[:2] == [True, False] and (len(s) == 2 and end - at[1] > 0.35 or len(s) == 3 and at[2] - at[1] > 0.35) else 1)' ||
    { echo "QEMU's write cache did not go from on to off and stay off (MODE SELECT WCE=0 must write CONFIG_WCE)"; exit 1; }
# the Aero contract device
printf '\x00\x16\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x00' > unmap.bin
cat > contract.txt <<'STEPS'
cdb "12 01 80 00 ff 00" --in 255
expect srb=1 len=21 "data=00 80 00 11 41 45 52 4f 56 42 4c 4b 2d"
cdb "12 01 00 00 ff 00" --in 255
expect srb=1 len=9 "data=00 00 00 05 00 80 83 b0 b1"
cdb "1a 08 08 00 c0 00" --in 192
expect srb=1 data[2]=0x10 data[6]=0x04
cdb "15 10 00 00 18 00" --out wce0.bin
expect srb=4 sense=5/26/00
cdb "42 00 00 00 00 00 00 00 18 00" --out unmap.bin
expect srb=4 sense=5/20/00
cdb "35 00 00 00 00 00 00 00 00 00"
expect srb=1
run --rw randrw --ios 200 --qd 8
expect errors=0 mismatches=0
STEPS
log=$(timeout --kill-after=5 120 "$sim" -q --backend contract script contract.txt 2>&1); rc=$?
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "contract-device script failed (rc=$rc)"; exit 1; }
# negative control
printf -- 'cdb "25 00 00 00 00 00 00 00 00 00" --in 8\nexpect "data=00 07 ff fe"\n' > wrong.txt
timeout --kill-after=5 60 "$sim" -q script wrong.txt > neg.log 2>&1 && { cat neg.log; echo "a wrong expectation passed"; exit 1; }
grep -q 'EXPECT FAILED' neg.log || { cat neg.log; echo "negative control failed for another reason"; exit 1; }
echo "ok: disk identity, capacity, caching and errors as expected against QEMU"
