#!/usr/bin/env bash
# aerovblk-inject on synthetic Windows 7 disk images (no Windows image exists here): raw and
# qcow2, MBR and GPT, an NTFS partition (partition 2) holding Windows\System32\config\SYSTEM
# and SOFTWARE hives and a kernel stub (tests/inject/fixture.py, tests/inject/common.sh).
# Read back with readers the tool does not use: The Sleuth Kit (files, security IDs),
# reglookup + regfexport (every value in every control set Select names), qemu-img check.
#   A  raw/MBR x64, a stale aerovblk service (Start 3, Group Base) and a CDD entry naming
#      viostor: --dry-run lists every change and writes nothing; the run fixes them (and says
#      what they were), keeps the other values, leaves ControlSet003 (not in Select) alone,
#      backs up SYSTEM, copies disk.sys's security descriptor; a second run changes nothing.
#   B  qcow2/GPT x86, no SOFTWARE hive, no PROCESSOR_ARCHITECTURE, names in odd case:
#      version and architecture from the kernel's PE header; --no-backup.
#   Bad input, each one line on stderr and exit != 0, the image byte-identical afterwards:
#   not a disk image, a qcow2 without partitions, no Windows partition, a hive that does not
#   open, a dirty hive, Windows 10, Vista, a read-only image, an image locked by a running
#   QEMU (also with --dry-run: for raw only the lock-byte probe sees it), the leftover
#   overlays of an interrupted run (unverified, verified), and a bad write caught by the read-back
#   verification (AEROVBLK_INJECT_FAULT). A SYSTEM without the "SCSI miniport" group: a
#   warning (and the normal runs print none).
source "$(dirname "$0")/../inject/common.sh"
need sfdisk mkntfs ntfs-3g ntfscp ntfssecaudit qemu-img qemu-storage-daemon wimlib-imagex \
     reglookup regfexport fls icat istat hivexregedit x86_64-w64-mingw32-gcc qemu-system-x86_64
need_fuse
[ -x "$INJECT" ] || { echo "FAIL: $INJECT not built (make check builds it)"; exit 1; }
S=$SCRATCH
SYS64=out/package/amd64/aerovblk.sys; SYS32=out/package/x86/aerovblk.sys

# ---- A: raw, MBR, amd64, stale service
$FIXTURE "$S/tree-a" --preexisting || exit 1
mkdisk "$S/a.img" raw dos "$S/tree-a" || { echo "FAIL: building image A"; exit 1; }
before=$(sha "$S/a.img")
run_tool a-dry "$INJECT" --dry-run "$S/a.img"
expect_ok a-dry
[ "$(sha "$S/a.img")" = "$before" ] && ok "dry run wrote nothing" || fail "dry run changed the image"
grep -q 'Services\\aerovblk\\Start = dword:0 (was dword:3)' "$S/a-dry.out" \
    && grep -q 'pci#ven_1af4&dev_1042\\Service = "aerovblk" (was "viostor")' "$S/a-dry.out" \
    && [ "$(grep -c '^  set ' "$S/a-dry.out")" -eq 38 ] \
    && grep -q '^  copy Windows\\System32\\drivers\\aerovblk.sys' "$S/a-dry.out" \
    && ok "dry run lists the 38 value changes (old values shown) and the driver copy" \
    || { fail "dry run output"; cat "$S/a-dry.out"; }
run_tool a "$INJECT" "$S/a.img"
expect_ok a
grep -q 'Windows 6.1 (Windows 7 Professional), amd64, control sets ControlSet001, ControlSet002' "$S/a.out" \
    && ok "detected Windows 7 x64, control sets 001/002" || fail "detection line: $(head -n1 "$S/a.out")"
grep -qi warning "$S/a.out" "$S/a.err" && fail "unexpected warning: $(grep -hi warning "$S/a.out" "$S/a.err")"
ls "$S"/a.img.aerovblk-* >/dev/null 2>&1 && fail "overlay left behind"
PART_START=4096
tsk_cat "$S/a.img" Windows/System32/drivers/aerovblk.sys >"$S/a.sys" && cmp -s "$S/a.sys" "$SYS64" \
    && ok "TSK: aerovblk.sys is the amd64 package's" || fail "TSK: aerovblk.sys differs from $SYS64"
tsk_cat "$S/a.img" Windows/System32/config/SYSTEM >"$S/a.SYSTEM" || fail "TSK: no SYSTEM"
problems=$(check_hive "$S/a.SYSTEM" 001,002 absent=003 \
    keep=/ControlSet001/Services/aerovblk/Tag=0x00000021 \
    keep=/ControlSet001/Services/intelide/Start=0x00000000 \
    "keep=/ControlSet002/Control/CriticalDeviceDatabase/pci#ven_8086&dev_7010/Service=intelide")
[ -z "$problems" ] && ok "reglookup/regfexport: service + 6 CDD entries in 001 and 002, Tag kept, 003 untouched" \
    || fail "hive: $problems"
tsk_cat "$S/a.img" Windows/System32/config/SYSTEM.aerovblk-bak >"$S/a.bak" \
    && cmp -s "$S/a.bak" "$S/tree-a/Windows/System32/config/SYSTEM" \
    && ok "SYSTEM.aerovblk-bak is the original hive" || fail "backup hive missing or different"
secid() { istat -o "$PART_START" "$1" "$(fls -r -p -o "$PART_START" "$1" | awk -v p="$2" '$NF==p {sub(":","",$2); split($2,a,"-"); print a[1]}')" | sed -n 's/^Security ID: \([0-9]*\).*/\1/p'; }
id_sys=$(secid "$S/a.img" Windows/System32/drivers/aerovblk.sys); id_disk=$(secid "$S/a.img" Windows/System32/drivers/disk.sys)
id_k=$(secid "$S/a.img" Windows/System32/ntoskrnl.exe)
[ -n "$id_sys" ] && [ "$id_sys" = "$id_disk" ] && [ "$id_disk" != "$id_k" ] \
    && ok "TSK: aerovblk.sys has disk.sys's security descriptor (id $id_sys; ntoskrnl.exe's differs: $id_k)" \
    || fail "security IDs: aerovblk.sys '$id_sys', disk.sys '$id_disk', ntoskrnl.exe '$id_k'"
after=$(sha "$S/a.img")
run_tool a-again "$INJECT" "$S/a.img"
expect_ok a-again
grep -qx 'nothing to change' "$S/a-again.out" && [ "$(sha "$S/a.img")" = "$after" ] \
    && ok "second run: nothing to change, image byte-identical" || fail "second run changed something"

# ---- B: qcow2, GPT, x86, kernel-only detection, odd case, --no-backup
$FIXTURE "$S/tree-b" --arch x86 --no-software --no-env --case-mangle || exit 1
mkdisk "$S/b.qcow2" qcow2 gpt "$S/tree-b" || { echo "FAIL: building image B"; exit 1; }
run_tool b "$INJECT" --no-backup "$S/b.qcow2"
expect_ok b
grep -q 'Windows 6.1, x86, control sets' "$S/b.out" && ok "B: Windows 6.1 x86 from the kernel's PE header" \
    || fail "B detection: $(head -n1 "$S/b.out")"
qemu-img check -q "$S/b.qcow2" && ok "B: qemu-img check clean" || fail "B: qemu-img check"
braw=$(as_raw "$S/b.qcow2")
tsk_cat "$braw" windows/SYSTEM32/DRIVERS/aerovblk.sys >"$S/b.sys" && cmp -s "$S/b.sys" "$SYS32" \
    && ok "B: aerovblk.sys is the x86 package's" || fail "B: aerovblk.sys differs from $SYS32"
tsk_cat "$braw" windows/SYSTEM32/Config/SYSTEM >"$S/b.SYSTEM"
problems=$(check_hive "$S/b.SYSTEM" 001,002 absent=003)
[ -z "$problems" ] && ok "B: hive values in 001 and 002" || fail "B hive: $problems"
fls -r -p -o "$PART_START" "$braw" | grep -qi 'aerovblk-bak' && fail "B: backup written despite --no-backup"

# ---- bad input: each must leave its file byte-identical
bad() {   # bad NAME FILE REGEX [tool args...]
    local name=$1 file=$2 re=$3 h; shift 3
    h=$(sha "$file")
    run_tool "$name" "$INJECT" "$@" "$file"
    expect_error "$name" "$re"
    [ "$(sha "$file")" = "$h" ] || fail "$name: the image changed"
    ls "$file".aerovblk-* >/dev/null 2>&1 && fail "$name: overlay left behind"
    return 0
}
echo "just text, not a disk" >"$S/text.img"
bad not-image "$S/text.img" 'not a disk image'
qemu-img create -q -f qcow2 "$S/blank.qcow2" 16M
bad blank-qcow2 "$S/blank.qcow2" 'not a disk image \(no MBR or GPT'
mkdisk "$S/nowin.img" raw gpt - || exit 1
bad no-windows "$S/nowin.img" 'no Windows partition \(gpt, NTFS partitions: 2\)'
$FIXTURE "$S/tree-corrupt" --corrupt-system && mkdisk "$S/corrupt.img" raw gpt "$S/tree-corrupt" || exit 1
bad corrupt-hive "$S/corrupt.img" 'SYSTEM: hivex cannot open the hive'
$FIXTURE "$S/tree-dirty" --dirty && mkdisk "$S/dirty.qcow2" qcow2 dos "$S/tree-dirty" || exit 1
bad dirty-hive "$S/dirty.qcow2" 'SYSTEM: the hive is dirty \(sequence numbers'
$FIXTURE "$S/tree-10" --software-version 6.3 --major 10 --version 10.0.19041.1 && mkdisk "$S/win10.img" raw dos "$S/tree-10" || exit 1
bad win10 "$S/win10.img" 'this is Windows 10 or later \(version 10.0, Windows 10 Pro\); .* Windows 7 / Server 2008 R2 \(6.1\) only'
$FIXTURE "$S/tree-vista" --no-software --version 6.0.6002.18005 && mkdisk "$S/vista.img" raw dos "$S/tree-vista" || exit 1
bad vista "$S/vista.img" 'this is Windows Vista / Server 2008 \(version 6.0\)'
cp "$S/a.img" "$S/ro.img" && chmod 0444 "$S/ro.img"
bad read-only "$S/ro.img" 'image is read-only'
# Leftovers of an interrupted run: an unverified overlay (never committed) and a verified
# one (the commit may be half done): both refused, each with what to do.
cp "$S/a.img" "$S/stale.img" && : >"$S/stale.img.aerovblk-new.qcow2"
h=$(sha "$S/stale.img"); run_tool stale "$INJECT" "$S/stale.img"
expect_error stale 'aerovblk-new.qcow2 exists: an earlier run stopped before its commit \(the image was not changed\); delete it'
rm "$S/stale.img.aerovblk-new.qcow2"; : >"$S/stale.img.aerovblk-verified.qcow2"
run_tool stale-verified "$INJECT" "$S/stale.img"
expect_error stale-verified 'aerovblk-verified.qcow2 exists: an earlier run stopped during its commit; finish it with `qemu-img commit'
[ "$(sha "$S/stale.img")" = "$h" ] || fail "stale: the image changed"
# A bad write (one flipped byte in the driver on its way into the image): the read-back
# verification fails before the commit; the image stays as it was.
$FIXTURE "$S/tree-f" && mkdisk "$S/fault.img" raw dos "$S/tree-f" || exit 1
h=$(sha "$S/fault.img")
AEROVBLK_INJECT_FAULT=corrupt-driver run_tool fault "$INJECT" "$S/fault.img"
expect_error fault 'verification failed: Windows/System32/drivers/aerovblk.sys reads back different'
[ "$(sha "$S/fault.img")" = "$h" ] && ! ls "$S"/fault.img.aerovblk-* >/dev/null 2>&1 \
    && ok "fault: image byte-identical, overlay removed" || fail "fault: image changed or overlay left"
# Locked: a QEMU (paused, no OS needed) holds the image open.
# -daemonize: returns once the drive is open (and locked).
qemu-system-x86_64 -S -display none -nodefaults -machine pc,accel=tcg -daemonize -pidfile "$S/qemu.pid" \
    -drive "if=none,id=d0,file=$S/fault.img,format=raw" -device virtio-blk-pci,drive=d0 \
    || fail "QEMU did not start"
bad locked "$S/fault.img" 'image is locked \(in use by a running QEMU\?\)'
# --dry-run too (a disk a running VM writes is no consistent source); for a raw image only
# the lock-byte probe sees QEMU: qemu-img info opens it anyway, and a dry run never commits.
bad locked-dry "$S/fault.img" 'image is locked \(in use by a running QEMU\?\)' --dry-run
qpid=$(cat "$S/qemu.pid"); kill "$qpid"
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
# Negative control of the lock test: the same image, QEMU gone, is accepted.
run_tool unlocked "$INJECT" --dry-run "$S/fault.img"
expect_ok unlocked
# No "SCSI miniport" in ServiceGroupOrder: a warning, the group list left alone.
$FIXTURE "$S/tree-nogroup" --no-scsi-group && mkdisk "$S/nogroup.img" raw dos "$S/tree-nogroup" || exit 1
run_tool nogroup "$INJECT" "$S/nogroup.img"
expect_ok nogroup
[ "$(grep -c 'warning: ControlSet00[12]\\Control\\ServiceGroupOrder\\List has no "SCSI miniport" group' "$S/nogroup.out")" -eq 2 ] \
    && ok "missing SCSI miniport group: one warning per control set" || fail "no group warning: $(cat "$S/nogroup.out")"
tsk_cat "$S/nogroup.img" Windows/System32/config/SYSTEM >"$S/nogroup.SYSTEM"
reglookup -H -p /ControlSet001/Control/ServiceGroupOrder/List "$S/nogroup.SYSTEM" | grep -qi 'SCSI miniport' \
    && fail "the group list was modified"
# Usage errors: one line, exit 2.
run_tool usage "$INJECT"
[ "$(rc_of usage)" = 2 ] && [ "$(wc -l <"$S/usage.err")" = 1 ] && ok "no argument: exit 2, one line" || fail "usage error"
finish
