#!/usr/bin/env bash
# aerovblk-vm, the QEMU launcher, on a synthetic image (no OS: SeaBIOS finds nothing to
# boot and waits, which is enough), controlled and stopped through QMP (tests/inject/qmp.py):
#   system disk on virtio-blk: QEMU's PCI list has 1af4:1042 revision 01, class 0x0100, at the
#   device aerovblk0 whose drive is the image; --print shows disable-legacy=on and, exactly
#   when this QEMU has the property, x-pci-revision=0x01; the dist ISO is the CD-ROM;
#   --data-disk: the image on the PIIX IDE controller (8086:7010), the (created) data disk
#   on virtio-blk 1af4:1042 rev 01; --controller ahci puts the system disk on an AHCI
#   controller; the aerovblk-query hint is printed; QMP `quit` ends QEMU with status 0.
#   Bad input: a missing image, the same file as system and data disk: one line, exit 1.
source "$(dirname "$0")/../inject/common.sh"
need qemu-system-x86_64 qemu-img xorriso
[ -x "$VM" ] || { echo "FAIL: $VM not built (make check builds it)"; exit 1; }
S=$SCRATCH
qemu-img create -q -f raw "$S/sys.img" 64M
mkdir -p "$S/isotree/amd64" && echo test >"$S/isotree/amd64/README.txt"
xorriso -as mkisofs -quiet -J -R -V AEROVBLK -o "$S/test.iso" "$S/isotree" 2>/dev/null || fail "xorriso"

# --print: the command line, nothing started
run_tool print "$VM" --print --iso "$S/test.iso" "$S/sys.img"
expect_ok print
line=$(head -n1 "$S/print.out")
[[ "$line" == *"virtio-blk-pci,id=aerovblk0,drive=sys0,disable-legacy=on,disable-modern=off"* ]] \
    && [[ "$line" == *"media=cdrom"*"test.iso"* ]] && grep -q 'aerovblk-query.exe' "$S/print.out" \
    && ok "--print: virtio-blk with disable-legacy=on, the ISO, the aerovblk-query hint" || fail "--print: $line"
if qemu-system-x86_64 -device virtio-blk-pci,help 2>&1 | grep -q '^ *x-pci-revision='; then
    [[ "$line" == *"x-pci-revision=0x01"* ]] && ok "x-pci-revision=0x01 (this QEMU has it)" || fail "x-pci-revision missing"
else
    [[ "$line" != *"x-pci-revision"* ]] && ok "no x-pci-revision (this QEMU lacks it; modern-only is rev 01)" \
        || fail "x-pci-revision given to a QEMU without it"
fi
if ls out/dist/aerovblk-*.iso >/dev/null 2>&1; then
    run_tool print-dist "$VM" --print "$S/sys.img"
    grep -q 'media=cdrom,readonly=on,file=[^ ]*out/dist/aerovblk-[^ ]*\.iso' "$S/print-dist.out" \
        && ok "the make dist ISO is the default CD-ROM" || fail "dist ISO not attached: $(head -n1 "$S/print-dist.out")"
fi
run_tool print-ahci "$VM" --print --no-iso --controller ahci --data-disk "$S/never.qcow2" "$S/sys.img"
grep -q -- '-device ahci,id=ahci0 -device ide-hd,drive=sys0,bus=ahci0.0' "$S/print-ahci.out" \
    && [ ! -e "$S/never.qcow2" ] && ok "--controller ahci; --print creates no data disk" || fail "ahci print: $(cat "$S/print-ahci.out")"

# vm NAME ARGS...: start aerovblk-vm headless with QMP, return after QEMU answers
vm() {
    local name=$1; shift
    rm -f "$S/$name.qmp"
    "$VM" --headless --accel tcg --memory 256 --smp 1 --no-net --qmp "$S/$name.qmp" "$@" \
        >"$S/$name.out" 2>"$S/$name.err" &
    echo $! >"$S/$name.pid"
}
stop() {   # stop NAME: QMP quit, QEMU's exit status must be 0
    local pid rc
    pid=$(cat "$S/$1.pid")
    $PY tests/inject/qmp.py "$S/$1.qmp" quit >/dev/null || fail "$1: QMP quit"
    rc=0; wait "$pid" || rc=$?
    [ "$rc" = 0 ] && ok "$1: stopped through QMP, exit 0" || { fail "$1: exit $rc"; cat "$S/$1.err"; }
}
pci() {   # pci NAME: QEMU's PCI devices as "vendor:device class qdev_id slot" (query-pci)
    $PY tests/inject/qmp.py "$S/$1.qmp" query-pci | $PY -c '
import json, sys
for bus in json.load(sys.stdin):
    for d in bus["devices"]:
        print("%04x:%04x class%04x %s %d" % (d["id"]["vendor"], d["id"]["device"],
              d["class_info"]["class"], d.get("qdev_id", "") or "-", d["slot"]))'
}
hmp() { $PY tests/inject/qmp.py "$S/$1.qmp" human-monitor-command "{\"command-line\": \"$2\"}"; }
cfg() {   # cfg NAME SLOT REG: a config-space dword of 0:SLOT.0 as the guest reads it (ports CF8/CFC;
          # the VM is paused, so no guest access interleaves)
    hmp "$1" "o/w 0xcf8 $(printf '0x%08x' $(( 0x80000000 | ($2 << 11) | $3 )))" >/dev/null
    hmp "$1" "i/w 0xcfc" | sed -n 's/.*= 0x\([0-9a-f]*\).*/\1/p'
}
# virtio_seen NAME: aerovblk0 is 1af4:1042, class 0100 and revision 01 in config space
virtio_seen() {
    local slot id rc
    pci "$1" >"$S/$1.pci" || { fail "$1: query-pci"; return; }
    slot=$(awk '$3 == "aerovblk0" {print $4}' "$S/$1.pci")
    [ -n "$slot" ] && grep -q '^1af4:1042 class0100 aerovblk0 ' "$S/$1.pci" || { fail "$1: no 1af4:1042 aerovblk0:"; cat "$S/$1.pci"; return; }
    id=$(cfg "$1" "$slot" 0); rc=$(cfg "$1" "$slot" 8)
    [ "$id" = 10421af4 ] && [ "$rc" = 01000001 ] \
        && ok "$1: QEMU shows 1af4:1042 rev 01 class 0100 at slot $slot (config space 0x$id, 0x$rc)" \
        || fail "$1: config space of slot $slot: id 0x$id, class/rev 0x$rc"
    hmp "$1" cont >/dev/null
    $PY tests/inject/qmp.py "$S/$1.qmp" query-status | grep -q '"running": true' && ok "$1: VM running" || fail "$1: VM not running"
}
blk() {   # blk NAME: "qdev-path file" per drive
    $PY tests/inject/qmp.py "$S/$1.qmp" query-block | $PY -c '
import json, sys
for b in json.load(sys.stdin):
    print(b.get("qdev", "-"), b.get("inserted", {}).get("file", "-"))'
}

vm virtio --iso "$S/test.iso" "$S/sys.img" -- -S
virtio_seen virtio
blk virtio >"$S/virtio.blk"
grep -q "aerovblk0.*/sys.img$" "$S/virtio.blk" && grep -q "test.iso$" "$S/virtio.blk" \
    && ok "aerovblk0's drive is the image; the ISO is in the CD-ROM" || { fail "drives:"; cat "$S/virtio.blk"; }
grep -q 'aerovblk-query.exe' "$S/virtio.err" && ok "prints the aerovblk-query command" || fail "no aerovblk-query hint"
stop virtio

vm data --no-iso --data-disk "$S/data.qcow2" "$S/sys.img" -- -S
virtio_seen data
blk data >"$S/data.blk"
sysdev=$(awk '$2 ~ /\/sys.img$/ {print $1}' "$S/data.blk")
systype=$($PY tests/inject/qmp.py "$S/data.qmp" qom-get "{\"path\": \"$sysdev\", \"property\": \"type\"}")
grep -q '^8086:7010 ' "$S/data.pci" && grep -q "aerovblk0.*/data.qcow2$" "$S/data.blk" \
    && [ "$systype" = '"ide-hd"' ] && ! grep -q "aerovblk0.*sys.img" "$S/data.blk" \
    && ok "--data-disk: image on the PIIX IDE controller (8086:7010), data disk (created) on virtio-blk" \
    || { fail "--data-disk layout:"; cat "$S/data.pci" "$S/data.blk"; }
[ "$(qemu-img info --output=json -U "$S/data.qcow2" | $PY -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = qcow2 ] \
    || fail "data disk not created as qcow2"
stop data

run_tool missing "$VM" "$S/nothere.img"
expect_error missing 'nothere.img: no such file'
run_tool same "$VM" --data-disk "$S/sys.img" "$S/sys.img"
expect_error same 'the data disk and the system disk are the same file'
finish
