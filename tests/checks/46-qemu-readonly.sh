#!/usr/bin/env bash
# A readonly=on drive (QEMU offers VIRTIO_BLK_F_RO): every medium-modifying command is
# refused with DATA PROTECT 07/27/00 before any I/O, MODE SENSE reports write
# protection (WP bit), reads work, and the image file is unchanged afterwards.
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-$PWD/out/host/aerovblk-sim}
[ -x "$sim" ] || { echo "missing $sim (make $sim)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing"; exit 1; }
scratch=$(mktemp -d /tmp/check-46.XXXXXX); trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
head -c $((16 << 20)) /dev/urandom > disk.img
sum0=$(sha256sum < disk.img)
head -c 4096 /dev/zero > block.bin
printf '\x00\x16\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x00' > unmap.bin
cat > steps.txt <<'STEPS'
cdb "1a 00 3f 00 c0 00" --in 192
expect srb=1 data[2]=0x90
cdb "5a 00 08 00 00 00 00 00 ff 00" --in 255
expect srb=1 data[3]=0x90
cdb "2a 00 00 00 00 00 00 00 08 00" --out block.bin
expect srb=4 sense=7/27/00
cdb "0a 00 00 00 08 00" --out block.bin
expect srb=4 sense=7/27/00
cdb "8a 08 00 00 00 00 00 00 00 00 00 00 00 08 00 00" --out block.bin
expect srb=4 sense=7/27/00
cdb "2e 00 00 00 00 00 00 00 08 00" --out block.bin
expect srb=4 sense=7/27/00
cdb "42 00 00 00 00 00 00 00 18 00" --out unmap.bin
expect srb=4 sense=7/27/00
cdb "28 00 00 00 00 10 00 00 08 00" --in 4096
expect srb=1 len=4096
run --rw randread --ios 200 --qd 4
expect errors=0 mismatches=0
STEPS
log=$(timeout --kill-after=5 120 "$sim" -q --disk disk.img --drive-opts readonly=on script steps.txt 2>&1); rc=$?
echo "$log" | grep -v '^  [0-9a-f]\{4\}:'
[ $rc -eq 0 ] || { echo "simulator script failed (rc=$rc)"; exit 1; }
echo "$log" | grep -q 'features.* RO ' || { echo "RO was not negotiated"; exit 1; }
[ "$(sha256sum < disk.img)" = "$sum0" ] || { echo "the read-only image changed"; exit 1; }
echo "ok: read-only disk refuses writes with 07/27/00, shows WP, image unchanged"
