#!/usr/bin/env bash
# Version resources and the one version source (VERSION, mk/package.mk):
#   - the packaged INFs' DriverVer is VERSION's date and w.x.y.z, and so is
#     driver/aerovblk.inf's (the Microsoft builds read that file as is: no drift);
#   - aerovblk.sys and aerovblk-query.exe (x86, amd64), read back with windres (binutils,
#     not pefile): FILEVERSION, PRODUCTVERSION and the FileVersion/ProductVersion strings
#     are VERSION's; CompanyName (= the INF's Provider), ProductName, FileDescription,
#     OriginalFilename (aerovblk.sys / aerovblk-query.exe), LegalCopyright present;
#     FILETYPE VFT_DRV / VFT_APP; CompanyName, ProductName and LegalCopyright the same in
#     both binaries;
#   - the driver's .rsrc section is read-only (0x40000040), it still imports storport.sys
#     only, and `pecheck check --inf` (every rule + `version`) accepts the package and
#     test-signed .sys, `pecheck version` the query tools.
# The `version` rule can fail (13-pecheck-bad.sh is another area's file, so its negative
# cases are here): mutants of the amd64 .sys (checksum re-set, so only `version` may fire)
# with FILEVERSION, the FileVersion string, CompanyName or OriginalFilename changed, no
# resource directory, a writable .rsrc; the good image against an INF whose DriverVer
# says another version; a query tool with its FileVersion string changed; and the
# package build itself refuses a driver whose resource was compiled with another
# version (fixture build with AEROVBLK_RC_DEFS overridden). About 10 s.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL
fails=0
ok()  { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fails=$((fails+1)); }
. ./VERSION
V=$AEROVBLK_VER_MAJOR.$AEROVBLK_VER_MINOR.$AEROVBLK_VER_PATCH.$AEROVBLK_VER_BUILD
DV="$AEROVBLK_VER_DATE,$V"
PECHECK="/usr/bin/python3 tools/pecheck.py"
tmp=$(mktemp -d /tmp/aerovblk-19c.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for a in x86 amd64; do
  for f in aerovblk.sys aerovblk.inf aerovblk-query.exe; do
    [ -f out/package/$a/$f ] || make --no-print-directory -s out/package/$a/$f >/dev/null || { echo "FAIL: build out/package/$a/$f"; exit 1; }
  done
done
driverver() { tr -d '\r' <"$1" | sed -n 's/^DriverVer[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p'; }

[ "$(driverver driver/aerovblk.inf)" = "$DV" ] && ok "driver/aerovblk.inf DriverVer = VERSION ($DV)" \
  || bad "driver/aerovblk.inf DriverVer '$(driverver driver/aerovblk.inf)' differs from VERSION ($DV): update one of them"
provider=$(tr -d '\r' <out/package/amd64/aerovblk.inf | sed -n 's/^Provider[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p')
declare -A common
for a in x86 amd64; do
  triple=$([ $a = x86 ] && echo i686-w64-mingw32 || echo x86_64-w64-mingw32)
  [ "$(driverver out/package/$a/aerovblk.inf)" = "$DV" ] && ok "$a: packaged INF DriverVer = $DV" \
    || bad "$a: packaged INF DriverVer '$(driverver out/package/$a/aerovblk.inf)', want $DV"
  for f in aerovblk.sys aerovblk-query.exe; do
    img=out/package/$a/$f
    rc=$($triple-windres -i $img -O rc 2>&1) || { bad "$a: windres cannot read $img: $rc"; continue; }
    val() { echo "$rc" | sed -n "s/^ *VALUE \"$1\", \"\(.*\)\"\$/\1/p"; }
    want_fv="${V//./, }"
    for k in FILEVERSION PRODUCTVERSION; do
      [ "$(echo "$rc" | sed -n "s/^ *$k //p")" = "$want_fv" ] && ok "$a: $f $k $want_fv" || bad "$a: $f $k '$(echo "$rc" | sed -n "s/^ *$k //p")'"
    done
    for k in FileVersion ProductVersion; do
      [ "$(val $k)" = "$V" ] && ok "$a: $f $k \"$V\"" || bad "$a: $f $k '$(val $k)', want $V"
    done
    [ "$(val OriginalFilename)" = "$f" ] && ok "$a: $f OriginalFilename \"$f\"" || bad "$a: $f OriginalFilename '$(val OriginalFilename)'"
    [ "$(val CompanyName)" = "$provider" ] && ok "$a: $f CompanyName \"$provider\" (the INF's Provider)" \
      || bad "$a: $f CompanyName '$(val CompanyName)', INF Provider '$provider'"
    for k in FileDescription ProductName LegalCopyright; do
      [ -n "$(val $k)" ] && ok "$a: $f $k \"$(val $k)\"" || bad "$a: $f has no $k"
    done
    for k in CompanyName ProductName LegalCopyright; do
      if [ -z "${common[$k]:-}" ]; then common[$k]=$(val $k)
      elif [ "${common[$k]}" != "$(val $k)" ]; then bad "$a: $f $k '$(val $k)' differs from '${common[$k]}'"; fi
    done
    want_type=$([ $f = aerovblk.sys ] && echo 0x3 || echo 0x1)
    [ "$(echo "$rc" | sed -n 's/^ *FILETYPE //p')" = "$want_type" ] && ok "$a: $f FILETYPE $want_type" \
      || bad "$a: $f FILETYPE '$(echo "$rc" | sed -n 's/^ *FILETYPE //p')', want $want_type"
  done
  sys=out/package/$a/aerovblk.sys
  chars=$(/usr/bin/python3 - $sys <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
pe = struct.unpack_from("<I", d, 0x3C)[0]
n, opt = struct.unpack_from("<H", d, pe + 6)[0], struct.unpack_from("<H", d, pe + 20)[0]
for i in range(n):
    o = pe + 24 + opt + 40 * i
    if d[o:o + 8].rstrip(b"\0") == b".rsrc":
        print("0x%08x" % struct.unpack_from("<I", d, o + 36)[0])
PY
)
  [ "$chars" = 0x40000040 ] && ok "$a: .rsrc section read-only initialized data ($chars)" || bad "$a: .rsrc characteristics '$chars'"
  dlls=$(${triple}-objdump -p $sys | sed -n 's/^[[:space:]]*DLL Name: //p' | tr '\n' ' ')
  [ "$dlls" = "storport.sys " ] && ok "$a: imports storport.sys only" || bad "$a: imports $dlls"
  for s in $sys out/testsign/$a/aerovblk.sys; do
    [ -f "$s" ] || continue
    $PECHECK check --arch $a --def driver/storport-$a.def --inf out/package/$a/aerovblk.inf $s >"$tmp/p.log" \
      && ok "$a: pecheck check --inf accepts $s" || { bad "$a: pecheck refuses $s"; cat "$tmp/p.log"; }
  done
  $PECHECK version --inf out/package/$a/aerovblk.inf out/package/$a/aerovblk-query.exe >"$tmp/p.log" \
    && ok "$a: pecheck version accepts aerovblk-query.exe" || { bad "$a: pecheck version refuses the query tool"; cat "$tmp/p.log"; }
done

# --- the `version` rule can fail ----------------------------------------------------
mutate() {  # in out kind: a mutant of a PE image, checksum re-set
  /usr/bin/python3 - "$@" <<'PY'
import struct, sys
src, dst, kind = sys.argv[1:4]
d = bytearray(open(src, "rb").read())
u16 = lambda s: s.encode("utf-16-le")
def value_after(key, old, new):
    k = d.find(u16(key) + b"\0\0")
    i = d.find(u16(old), k)
    assert k >= 0 and i > k and len(old) == len(new), (key, old)
    d[i:i + len(u16(new))] = u16(new)
pe = struct.unpack_from("<I", d, 0x3C)[0]
magic = struct.unpack_from("<H", d, pe + 24)[0]
dd = pe + 24 + (96 if magic == 0x10B else 112)
if kind == "fixed":
    i = d.find(struct.pack("<I", 0xFEEF04BD)); assert i >= 0
    struct.pack_into("<I", d, i + 8, struct.unpack_from("<I", d, i + 8)[0] + 1)   # FileVersionMS
elif kind == "string":
    v = sys.argv[4]; value_after("FileVersion", v, v[:-1] + chr(ord(v[-1]) + 1))
elif kind == "company":
    value_after("CompanyName", "Aero", "Aerx")
elif kind == "origname":
    value_after("OriginalFilename", "aerovblk.sys", "aerovblk.exe")
elif kind == "nores":
    d[dd + 16:dd + 24] = bytes(8)                                  # resource directory entry
elif kind == "writable":
    n, opt = struct.unpack_from("<H", d, pe + 6)[0], struct.unpack_from("<H", d, pe + 20)[0]
    for j in range(n):
        o = pe + 24 + opt + 40 * j
        if d[o:o + 8].rstrip(b"\0") == b".rsrc":
            struct.pack_into("<I", d, o + 36, struct.unpack_from("<I", d, o + 36)[0] | 0x80000000)
open(dst, "wb").write(d)
PY
  /usr/bin/python3 tools/pecheck.py set-checksum "$2"
}
good=out/package/amd64/aerovblk.sys inf=out/package/amd64/aerovblk.inf
for kind in fixed string company origname nores writable; do
  mutate $good "$tmp/$kind.sys" $kind "$V" || { bad "cannot make the $kind mutant"; continue; }
  cmp -s $good "$tmp/$kind.sys" && { bad "the $kind mutant equals the good image"; continue; }
  out=$($PECHECK check --arch amd64 --def driver/storport-amd64.def --inf $inf "$tmp/$kind.sys"); rc=$?
  rules=$(echo "$out" | sed -n 's/^FAIL \([a-z]*\):.*/\1/p' | sort -u | tr '\n' ' ')
  if [ $rc -eq 1 ] && [ "$rules" = "version " ]; then ok "negative: $kind mutant refused by rule version: $(echo "$out" | head -1 | sed 's/.*aerovblk\.sys: //; s/.*\.sys: //')"
  else bad "$kind mutant: pecheck rc=$rc, rules [$rules], want exactly [version]"; echo "$out"; fi
done
sed -E "s/^(DriverVer[[:space:]]*=[[:space:]]*[^,]*,).*/\\1$AEROVBLK_VER_MAJOR.$AEROVBLK_VER_MINOR.$AEROVBLK_VER_PATCH.$((AEROVBLK_VER_BUILD+1))/" $inf >"$tmp/aerovblk.inf"
out=$($PECHECK check --arch amd64 --def driver/storport-amd64.def --inf "$tmp/aerovblk.inf" $good); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^FAIL version:.*FILEVERSION" && ok "negative: the good image against an INF with DriverVer build+1 is refused" \
  || { bad "an INF with another DriverVer is accepted (rc=$rc)"; echo "$out"; }
mutate out/package/amd64/aerovblk-query.exe "$tmp/aerovblk-query.exe" string "$V"
out=$($PECHECK version --inf $inf "$tmp/aerovblk-query.exe"); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^FAIL version:.*FileVersion" && ok "negative: a query tool with another FileVersion string is refused" \
  || { bad "a query tool with another FileVersion is accepted (rc=$rc)"; echo "$out"; }
# The build refuses: the fixture driver (tests/pe/fixture) linked with a resource compiled
# for build+1, against the packaged INF of VERSION.
d=$tmp/built
out=$(make --no-print-directory PKG_SRCDIR=tests/pe/fixture PE_OUT=$d PKG_DIR=$d/package \
      AEROVBLK_RC_DEFS="-DAEROVBLK_VER_MAJOR=$AEROVBLK_VER_MAJOR -DAEROVBLK_VER_MINOR=$AEROVBLK_VER_MINOR -DAEROVBLK_VER_PATCH=$AEROVBLK_VER_PATCH -DAEROVBLK_VER_BUILD=$((AEROVBLK_VER_BUILD+1))" \
      $d/amd64/aerovblk.sys 2>&1) && bad "the build accepted a driver whose version resource disagrees with DriverVer" \
  || { echo "$out" | grep -q "^FAIL version:" && ok "negative: the package build refuses a resource compiled for build+1 ($(echo "$out" | grep -m1 '^FAIL version:' | sed 's/.*: //'))" \
       || { bad "the mismatching build failed, but not by rule version"; echo "$out" | tail -5; }; }

[ $fails -eq 0 ] && echo "version checks passed" || echo "$fails version check(s) failed"
[ $fails -eq 0 ]
