# Shared helpers of the aerovblk-inject / aerovblk-vm checks (tests/checks/80-*, 81-*;
# sourced, not a test). Synthetic images are built with the real tools: sfdisk (MBR/GPT),
# mkntfs + ntfs-3g (the NTFS partition), qemu-img (qcow2), wimlib-imagex (WIM); the
# Windows tree comes from tests/inject/fixture.py. Results are read back with readers
# the tool does not use: The Sleuth Kit (fls/icat: its own NTFS code) for files,
# reglookup (libregfi) and regfexport (libregf) for hives, wimlib for WIMs.
# Scratch: out/check-inject/<check>/, removed when the check passes.
set -u
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
INJECT=${INJECT:-out/bin/aerovblk-inject}   # overridable: a mutated copy (tests/mutants)
VM=${VM:-out/bin/aerovblk-vm}
FIXTURE="$PY tests/inject/fixture.py"
CHECK_NAME=$(basename "$0" .sh)
SCRATCH=out/check-inject/$CHECK_NAME
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
FAILS=0

fail() { echo "FAIL: $*"; FAILS=$((FAILS+1)); }
ok() { echo "ok: $*"; }
finish() {
    if [ "$FAILS" -eq 0 ]; then rm -rf "$SCRATCH"; echo "PASS"; exit 0; fi
    echo "$FAILS failure(s); scratch kept in $SCRATCH"; exit 1
}
need() {   # need CMD...: skip when a tool is missing
    local c
    for c in "$@"; do command -v "$c" >/dev/null || { echo "$c not installed (scripts/ensure-deps.sh)"; exit 77; }; done
}
need_fuse() {   # the tool exports partitions through FUSE; the fixtures mount NTFS with ntfs-3g
    [ -w /dev/fuse ] && [ "$(id -u)" = 0 ] || { echo "needs root and /dev/fuse (FUSE mounts)"; exit 77; }
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# run_tool NAME CMD...: exit status in $SCRATCH/NAME.rc, stdout .out, stderr .err
run_tool() {
    local name=$1; shift
    local rc=0
    timeout --kill-after=5 120 "$@" >"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err" || rc=$?
    echo "$rc" >"$SCRATCH/$name.rc"
}
rc_of() { cat "$SCRATCH/$1.rc"; }
# expect_error NAME REGEX: non-zero exit, exactly one line on stderr matching REGEX
expect_error() {
    local name=$1 re=$2 rc lines
    rc=$(rc_of "$name"); lines=$(wc -l <"$SCRATCH/$name.err")
    if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && grep -qE "$re" "$SCRATCH/$name.err"; then
        ok "$name: exit $rc, $(cat "$SCRATCH/$name.err")"
    else
        fail "$name: want exit != 0 and one line matching '$re'; got exit $rc, $lines line(s):"
        sed 's/^/    /' "$SCRATCH/$name.err" "$SCRATCH/$name.out"
    fi
}
expect_ok() {
    local rc; rc=$(rc_of "$1")
    if [ "$rc" -eq 0 ]; then ok "$1: exit 0"; else
        fail "$1: exit $rc"; sed 's/^/    /' "$SCRATCH/$1.err" "$SCRATCH/$1.out"; fi
}

# mkdisk OUT FORMAT(raw|qcow2) LABEL(dos|gpt) TREE|-: a 24 MiB disk, partition 1 a 1 MiB
# Linux partition (so the Windows one is not simply the first), partition 2 NTFS with
# TREE's contents (- = an empty NTFS). Prints nothing; sets PART_START (sectors).
mkdisk() {
    local out=$1 fmt=$2 label=$3 tree=$4 raw=$1.raw-tmp part=$1.part-tmp mnt=$1.mnt
    local t1=83 t2=7 size
    [ "$label" = gpt ] && { t1=0FC63DAF-8483-4772-8E79-3D69D8477DE4; t2=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7; }
    rm -f "$raw" && truncate -s 24M "$raw"
    printf 'label: %s\nstart=2048, size=2048, type=%s\nstart=4096, size=40960, type=%s\n' \
        "$label" "$t1" "$t2" | sfdisk -q "$raw" || return 1
    PART_START=4096; size=$((40960 * 512))
    rm -f "$part" && truncate -s "$size" "$part"
    mkntfs -q -F -Q -s 512 -p "$PART_START" -L Windows "$part" >/dev/null 2>&1 || return 1
    if [ "$tree" != - ]; then
        mkdir -p "$mnt"
        ntfs-3g "$part" "$mnt" || return 1
        cp -r "$tree"/. "$mnt"/ && sync
        umount "$mnt" || return 1
        rmdir "$mnt"
        # disk.sys gets a descriptor of its own (mode 0640), so that a new aerovblk.sys
        # which copies it can be told from one with ntfs-3g's default.
        local ds; ds=$(cd "$tree" && find . -iname disk.sys | head -n1)
        [ -z "$ds" ] || ntfssecaudit "$part" 640 "/${ds#./}" >/dev/null 2>&1 || return 1
    fi
    dd if="$part" of="$raw" bs=512 seek="$PART_START" conv=notrunc status=none || return 1
    rm -f "$part"
    if [ "$fmt" = qcow2 ]; then qemu-img convert -q -f raw -O qcow2 "$raw" "$out" && rm -f "$raw"
    else mv "$raw" "$out"; fi
}

# as_raw IMAGE: prints a raw copy's path (qcow2 converted by qemu-img; raw as is)
as_raw() {
    if [ "$(qemu-img info --output=json "$1" | $PY -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = qcow2 ]; then
        qemu-img convert -q -U -f qcow2 -O raw "$1" "$1.tsk-raw" && echo "$1.tsk-raw"
    else echo "$1"; fi
}
# tsk_cat RAWDISK PATH: the file's bytes via The Sleuth Kit (path case-insensitive)
tsk_cat() {
    local inode
    inode=$(fls -r -p -o "$PART_START" "$1" 2>/dev/null | $PY -c '
import sys
want = sys.argv[1].lower()
for line in sys.stdin:
    meta, _, name = line.rstrip("\n").partition("\t")
    if name.lower() == want and meta.split()[0].startswith("r/"):
        print(meta.split()[-1].rstrip(":").split("-")[0]); break' "$2")
    [ -n "$inode" ] || return 1
    icat -o "$PART_START" "$1" "$inode"
}
# reg_get HIVE KEYPATH: reglookup's CSV line(s) for one key/value (path with /)
reg_get() { reglookup -H -p "$2" "$1" 2>/dev/null; }
# check_hive HIVE SETS ARGS...: the injected values, read by reglookup (libregfi) and
# regfexport (libregf), in every control set of SETS (comma-separated, e.g. 001,002);
# prints one line per problem. ARGS: absent=SET (no aerovblk there), keep=PATH=VALUE
# (a value the tool must leave as it was).
check_hive() {
    local hive=$1 sets=$2; shift 2
    regfexport "$hive" >"$hive.regfexport" 2>&1 && grep -q 'Key: aerovblk' "$hive.regfexport" \
        || echo "regfexport does not read the written hive (or has no aerovblk key)"
    reglookup -H "$hive" | $PY -c '
import sys
sets, extra = sys.argv[1].split(","), sys.argv[2:]
vals = {}
for line in sys.stdin:
    f = line.rstrip("\n").split(",")
    if len(f) >= 3 and f[1] != "KEY":
        vals[f[0].lower()] = (f[1], f[2])
want = {"Services/aerovblk/Type": ("DWORD", "0x00000001"), "Services/aerovblk/Start": ("DWORD", "0x00000000"),
        "Services/aerovblk/ErrorControl": ("DWORD", "0x00000001"), "Services/aerovblk/Group": ("SZ", "SCSI miniport"),
        "Services/aerovblk/ImagePath": ("EXPAND_SZ", "system32\\drivers\\aerovblk.sys"),
        "Services/aerovblk/Parameters/PnpInterface/5": ("DWORD", "0x00000001")}
for sub in ("", "&subsys_11001af4", "&subsys_00021af4"):
    for rev in ("", "&rev_01"):
        k = "Control/CriticalDeviceDatabase/pci#ven_1af4&dev_1042" + sub + rev
        want[k + "/Service"] = ("SZ", "aerovblk")
        want[k + "/ClassGUID"] = ("SZ", "{4D36E97B-E325-11CE-BFC1-08002BE10318}")
for cs in sets:
    for k, v in want.items():
        got = vals.get(("/ControlSet%s/%s" % (cs, k)).lower())
        if got != v:
            print("ControlSet%s/%s: want %s %s, reglookup reads %s" % (cs, k, v[0], v[1], got))
for e in extra:
    kind, _, arg = e.partition("=")
    if kind == "absent":
        if any(p.startswith(("/controlset%s/services/aerovblk" % arg, "/controlset%s/control/criticaldevicedatabase/pci#ven_1af4" % arg)) for p in vals):
            print("ControlSet%s (not named by Select) was changed" % arg)
    elif kind == "keep":
        path, _, value = arg.rpartition("=")
        if vals.get(path.lower(), (None, None))[1] != value:
            print("%s: want %s kept, reglookup reads %s" % (path, value, vals.get(path.lower())))
' "$sets" "$@"
}
