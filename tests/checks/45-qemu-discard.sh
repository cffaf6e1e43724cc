#!/usr/bin/env bash
# UNMAP -> VIRTIO_BLK_T_DISCARD and WRITE SAME -> VIRTIO_BLK_T_WRITE_ZEROES, end to end
# through the simulator against QEMU's virtio-blk (discard=unmap on a raw sparse image):
# after writing 8 MiB of pattern data, UNMAP of 4 MiB must leave a hole in the image
# file (SEEK_DATA), WRITE SAME(16) without UNMAP must leave zeroes (checked by content),
# WRITE SAME(16) with UNMAP must read back zero; every byte outside the three ranges is
# exactly what was there before (compared with a copy of the image taken after the write).
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-$PWD/out/host/aerovblk-sim}
[ -x "$sim" ] || { echo "missing $sim (make $sim)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing"; exit 1; }
py=/usr/bin/python3
scratch=$(mktemp -d /tmp/check-45.XXXXXX); trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
# Holes must be observable on this filesystem, else the test cannot judge.
truncate -s 4M probe.img
$py -c 'import os,sys; fd=os.open("probe.img",os.O_RDONLY)
try: os.lseek(fd,0,os.SEEK_DATA); sys.exit(1)
except OSError: sys.exit(0)' || { echo "skip: $scratch does not report holes"; exit 77; }

MiB=1048576
# UNMAP parameter list: header {data len 22, descriptor len 16}, one descriptor:
# LBA 2048 (1 MiB), 8192 blocks (4 MiB).
printf '\x00\x16\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x20\x00\x00\x00\x00\x00' > unmap.bin
head -c 512 /dev/zero > zero.bin
# 1. 8 MiB of pattern data at [1 MiB, 9 MiB); a copy of the image is the reference for
#    "everything else is untouched" (byte for byte)
printf 'run --rw write --offset 1048576 --span 8388608 --bs 65536 --ios 128\nexpect errors=0 mismatches=0\n' > write.txt
log=$(timeout --kill-after=5 120 "$sim" -q --disk disk.img --size 16M --drive-opts discard=unmap script write.txt 2>&1); rc=$?
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "simulator write run failed (rc=$rc)"; exit 1; }
cp --sparse=always disk.img before.img
# 2. UNMAP, WRITE SAME, reads; then the image is compared with the copy
cat > steps.txt <<'STEPS'
# UNMAP LBA 2048 + 8192 blocks
cdb "42 00 00 00 00 00 00 00 18 00" --out unmap.bin
expect srb=1 scsi=0 autosense=0
# WRITE SAME(16), no UNMAP: LBA 0x3000 (6 MiB), 0x800 blocks (1 MiB) -> write-zeroes
cdb "93 00 00 00 00 00 00 00 30 00 00 00 08 00 00 00" --out zero.bin
expect srb=1 scsi=0
# WRITE SAME(16) with UNMAP: LBA 0x3800 (7 MiB), 0x400 blocks (512 KiB)
cdb "93 08 00 00 00 00 00 00 38 00 00 00 04 00 00 00" --out zero.bin
expect srb=1 scsi=0
# reads of the unmapped range succeed
cdb "28 00 00 00 08 00 00 00 08 00" --in 4096
expect srb=1 len=4096
# a discard beyond the end is refused without I/O
cdb "93 08 00 00 00 00 00 01 ff ff 00 00 00 10 00 00" --out zero.bin
expect srb=4 sense=5/21/00
STEPS
log=$(timeout --kill-after=5 120 "$sim" -q --disk disk.img --size 16M --drive-opts discard=unmap script steps.txt 2>&1); rc=$?
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "simulator run failed (rc=$rc)"; exit 1; }
$py - disk.img before.img <<'PY'
import os, struct, sys
MiB = 1 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
ref = open(sys.argv[2], "rb").read()
img = open(sys.argv[1], "rb").read()
def data_at(off):
    try: return os.lseek(fd, off, os.SEEK_DATA)
    except OSError: return None
bad = []
if len(img) != 16 * MiB or len(ref) != 16 * MiB: bad.append(f"image sizes {len(img)} / {len(ref)}, expected 16 MiB")
# the reference really holds the workload's pattern where it wrote: every sector of
# [1 MiB, 9 MiB) starts with "AVBK", generation 1, its own sector number
for sec in range(MiB // 512, 9 * MiB // 512):
    magic, gen, num = struct.unpack_from("<IIQ", ref, sec * 512)
    if (magic, gen, num) != (0x4B425641, 1, sec):
        bad.append(f"reference sector {sec} is not the written pattern"); break
d = data_at(1 * MiB)
if d is None or d < 5 * MiB: bad.append(f"UNMAP left data at {d} inside [1 MiB, 5 MiB)")
zero = {"UNMAP [1, 5) MiB": (1 * MiB, 5 * MiB), "WRITE SAME (write-zeroes) [6, 7) MiB": (6 * MiB, 7 * MiB),
        "WRITE SAME with UNMAP [7, 7.5) MiB": (7 * MiB, 7 * MiB + 512 * 1024)}
for what, (a, b) in zero.items():
    if any(img[a:b]): bad.append(f"{what} is not zero")
# everything outside the three ranges: exactly the bytes written before
keep = [(0, 1 * MiB), (5 * MiB, 6 * MiB), (7 * MiB + 512 * 1024, 16 * MiB)]
for a, b in keep:
    if img[a:b] != ref[a:b]:
        first = next(i for i in range(a, b) if img[i] != ref[i])
        bad.append(f"[{a / MiB:g}, {b / MiB:g}) MiB changed: first differing byte at {first} "
                   f"(sector {first // 512}): {img[first]:#04x}, was {ref[first]:#04x}")
for b in bad: print("FAIL:", b)
print("image: hole from 1 MiB to", data_at(1 * MiB), "; zero ranges checked; the rest",
      sum(b - a for a, b in keep) // 1024, "KiB identical to the copy taken after the write")
sys.exit(1 if bad else 0)
PY
[ $? -eq 0 ] || exit 1
echo "ok: UNMAP punched a hole, WRITE SAME zeroed, neighbours intact"
