#!/usr/bin/env bash
# Device I/O errors through the status mapping (issue 5 section 3), against QEMU with
# blkdebug error injection (EIO on reads touching sector 4096, on writes touching
# sector 8192; rerror/werror=report so virtio-blk answers VIRTIO_BLK_S_IOERR):
# reads -> MEDIUM ERROR 03/11/00, writes -> 03/0C/00, neighbouring I/O succeeds, and
# the disk keeps working afterwards (no reset, no hang). The same on the Aero contract
# device (control fail-next-read / fail-next-write: VIRTIO_BLK_S_IOERR).
# The drive is named "blkdebug:CONFIG:IMAGE" (QEMU's protocol syntax) through --disk;
# a placeholder file of that literal name satisfies the simulator's own size check.
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-$PWD/out/host/aerovblk-sim}
[ -x "$sim" ] || { echo "missing $sim (make $sim)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing"; exit 1; }
scratch=$(mktemp -d /tmp/check-48.XXXXXX); trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
cat > bd.cfg <<'CFG'
[inject-error]
event = "read_aio"
errno = "5"
sector = "4096"
once = "off"

[inject-error]
event = "write_aio"
errno = "5"
sector = "8192"
once = "off"
CFG
truncate -s 64M img.raw
truncate -s 64M "blkdebug:bd.cfg:img.raw"
head -c 4096 /dev/urandom > data.bin
cat > steps.txt <<'STEPS'
# read covering sector 4096 (LBA 0x0FFC..0x1003) -> unrecovered read error
cdb "28 00 00 00 0f fc 00 00 08 00" --in 4096
expect srb=4 scsi=2 sense=3/11/00 len=0
cdb "88 00 00 00 00 00 00 00 10 00 00 00 00 01 00 00" --in 512
expect srb=4 sense=3/11/00
cdb "28 00 00 00 0f f0 00 00 08 00" --in 4096
expect srb=1 len=4096
# write covering sector 8192 -> write error; a neighbour succeeds
cdb "2a 00 00 00 1f fc 00 00 08 00" --out data.bin
expect srb=4 scsi=2 sense=3/0c/00
cdb "2a 08 00 00 20 00 00 00 08 00" --out data.bin
expect srb=4 sense=3/0c/00
cdb "2a 00 00 00 1f f0 00 00 08 00" --out data.bin
expect srb=1
# still healthy
cdb "00 00 00 00 00 00"
expect srb=1
cdb "28 00 00 00 00 00 00 00 08 00" --in 4096
expect srb=1
STEPS
log=$(timeout --kill-after=5 120 "$sim" -q --disk "blkdebug:bd.cfg:img.raw" script steps.txt 2>&1); rc=$?
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "simulator script failed (rc=$rc)"; exit 1; }
n=$(echo "$log" | grep -c 'sense key 3 asc 11')
m=$(echo "$log" | grep -c 'sense key 3 asc 0C')
[ "$n" -eq 2 ] && [ "$m" -eq 2 ] || { echo "expected 2 read and 2 write medium errors, got $n/$m"; exit 1; }
cat > contract.txt <<'STEPS'
control fail-next-read
cdb "28 00 00 00 00 08 00 00 08 00" --in 4096
expect srb=4 scsi=2 sense=3/11/00 len=0
cdb "28 00 00 00 00 08 00 00 08 00" --in 4096
expect srb=1 len=4096
control fail-next-write
cdb "2a 00 00 00 00 08 00 00 08 00" --out data.bin
expect srb=4 scsi=2 sense=3/0c/00
cdb "2a 00 00 00 00 08 00 00 08 00" --out data.bin
expect srb=1
run --rw randrw --ios 200 --qd 4
expect errors=0 mismatches=0
STEPS
log=$(timeout --kill-after=5 120 "$sim" -q --backend contract script contract.txt 2>&1); rc=$?
echo "$log" | grep -E 'cdb:|EXPECT|Result'
[ $rc -eq 0 ] || { echo "contract-device error script failed (rc=$rc)"; exit 1; }
echo "ok: injected read errors -> 03/11/00, write errors -> 03/0C/00 (QEMU and contract device)"
