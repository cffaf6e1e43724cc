#!/usr/bin/env bash
# aerovblk-inject --wim on a synthetic two-image WIM made with wimlib-imagex (image 1 an x86
# tree like boot.wim's WinPE, image 2 an x64 tree with a stale aerovblk service), read back
# with wimlib-imagex extract/dir/verify and reglookup/regfexport (tests/inject/common.sh):
#   --index 2: driver (x64), service and CDD entries in every control set Select names,
#   backup hive; image 1 untouched; a second run changes nothing (file byte-identical);
#   no --index: image 1 too (x86 driver).
#   Bad input, one line on stderr, exit != 0, the WIM byte-identical and no temporary copy
#   left: an index that does not exist (3, 0), not a WIM, a dirty hive, a hive that does
#   not open, Windows 10, a read-only WIM, and a bad write caught by the read-back
#   verification (AEROVBLK_INJECT_FAULT).
source "$(dirname "$0")/../inject/common.sh"
need wimlib-imagex reglookup regfexport hivexregedit x86_64-w64-mingw32-gcc i686-w64-mingw32-gcc
[ -x "$INJECT" ] || { echo "FAIL: $INJECT not built (make check builds it)"; exit 1; }
S=$SCRATCH
SYS64=out/package/amd64/aerovblk.sys; SYS32=out/package/x86/aerovblk.sys
mkwim() {   # mkwim OUT TREE1 [TREE2]
    wimlib-imagex capture "$2" "$1" "image 1" >/dev/null || return 1
    [ -z "${3:-}" ] || wimlib-imagex append "$3" "$1" "image 2" >/dev/null
}
wim_cat() {   # wim_cat WIM INDEX PATH: the file's bytes (wimlib), or status 1
    local d; d=$(mktemp -d "$S/x.XXXX")
    wimlib-imagex extract "$1" "$2" "/$3" --dest-dir "$d" --no-acls --no-globs >/dev/null 2>&1 || return 1
    cat "$d/$(basename "$3")"
}
$FIXTURE "$S/pe" --arch x86 && $FIXTURE "$S/setup" --preexisting || exit 1
mkwim "$S/boot.wim" "$S/pe" "$S/setup" || { echo "FAIL: wimlib-imagex capture"; exit 1; }
img1_before=$(wimlib-imagex dir "$S/boot.wim" 1 | sort | sha256sum)

bad() {   # bad NAME FILE REGEX [tool args...]
    local name=$1 file=$2 re=$3 h; shift 3
    h=$(sha "$file")
    run_tool "$name" "$INJECT" "$@" --wim "$file"
    expect_error "$name" "$re"
    [ "$(sha "$file")" = "$h" ] || fail "$name: the WIM changed"
    [ -e "$file.aerovblk-new" ] && fail "$name: temporary copy left behind"
    return 0
}
bad index-3 "$S/boot.wim" 'no image 3 \(the WIM has 2 images\)' --index 3
bad index-0 "$S/boot.wim" 'no image 0' --index 0
echo "not a wim" >"$S/text.wim"
bad not-wim "$S/text.wim" 'not a WIM file wimlib can open'
$FIXTURE "$S/dirty" --dirty && mkwim "$S/dirty.wim" "$S/dirty" || exit 1
bad dirty "$S/dirty.wim" 'image 1: SYSTEM: the hive is dirty'
$FIXTURE "$S/corrupt" --corrupt-system && mkwim "$S/corrupt.wim" "$S/corrupt" || exit 1
bad corrupt "$S/corrupt.wim" 'image 1: SYSTEM: hivex cannot open the hive'
$FIXTURE "$S/w10" --software-version 6.3 --major 10 --version 10.0.19041.1 && mkwim "$S/w10.wim" "$S/w10" || exit 1
bad win10 "$S/w10.wim" 'image 1: this is Windows 10 or later'
cp "$S/boot.wim" "$S/ro.wim" && chmod 0444 "$S/ro.wim"
bad read-only "$S/ro.wim" 'read-only \(no write permission\)'
cp "$S/boot.wim" "$S/fault.wim"
AEROVBLK_INJECT_FAULT=corrupt-driver bad fault "$S/fault.wim" \
    'image 2 \(new WIM\): verification failed: Windows/System32/drivers/aerovblk.sys reads back different' --index 2

run_tool idx2 "$INJECT" --wim "$S/boot.wim" --index 2
expect_ok idx2
grep -q 'boot.wim image 2: Windows 6.1 (Windows 7 Professional), amd64' "$S/idx2.out" \
    && ! grep -q 'image 1' "$S/idx2.out" && ok "--index 2: only image 2, detected Windows 7 x64" \
    || fail "--index 2 output: $(head -n2 "$S/idx2.out")"
wimlib-imagex verify "$S/boot.wim" >/dev/null 2>&1 && ok "wimlib-imagex verify passes" || fail "wimlib-imagex verify"
wim_cat "$S/boot.wim" 2 Windows/System32/drivers/aerovblk.sys | cmp -s - "$SYS64" \
    && ok "wimlib: image 2 aerovblk.sys is the amd64 package's" || fail "image 2 driver"
wim_cat "$S/boot.wim" 2 Windows/System32/config/SYSTEM >"$S/idx2.SYSTEM"
problems=$(check_hive "$S/idx2.SYSTEM" 001,002 absent=003 keep=/ControlSet001/Services/aerovblk/Tag=0x00000021)
[ -z "$problems" ] && ok "reglookup/regfexport: image 2 hive has the service and CDD entries" || fail "image 2 hive: $problems"
wim_cat "$S/boot.wim" 2 Windows/System32/config/SYSTEM.aerovblk-bak | cmp -s - "$S/setup/Windows/System32/config/SYSTEM" \
    && ok "image 2 SYSTEM.aerovblk-bak is the original" || fail "image 2 backup"
[ "$(wimlib-imagex dir "$S/boot.wim" 1 | sort | sha256sum)" = "$img1_before" ] \
    && wim_cat "$S/boot.wim" 1 Windows/System32/config/SYSTEM | cmp -s - "$S/pe/Windows/System32/config/SYSTEM" \
    && ok "image 1 untouched (file list and SYSTEM hive)" || fail "image 1 changed"
h=$(sha "$S/boot.wim")
run_tool again "$INJECT" --wim "$S/boot.wim" --index 2
expect_ok again
grep -qx 'nothing to change' "$S/again.out" && [ "$(sha "$S/boot.wim")" = "$h" ] \
    && ok "second run: nothing to change, WIM byte-identical" || fail "second run changed the WIM"
run_tool all "$INJECT" --wim "$S/boot.wim"
expect_ok all
grep -q 'boot.wim image 1: Windows 6.1 (Windows 7 Professional), x86' "$S/all.out" \
    && wim_cat "$S/boot.wim" 1 Windows/System32/drivers/aerovblk.sys | cmp -s - "$SYS32" \
    && ok "no --index: image 1 gets the x86 driver" || fail "image 1 (x86) injection"
wim_cat "$S/boot.wim" 1 Windows/System32/config/SYSTEM >"$S/idx1.SYSTEM"
problems=$(check_hive "$S/idx1.SYSTEM" 001,002 absent=003)
[ -z "$problems" ] && ok "image 1 hive has the service and CDD entries" || fail "image 1 hive: $problems"
ls "$S"/*.aerovblk-new >/dev/null 2>&1 && fail "temporary WIM copy left behind"
finish
