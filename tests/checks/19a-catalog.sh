#!/usr/bin/env bash
# The security catalogs (tools/mkcat.py; out/package/<arch>/aerovblk.cat unsigned,
# out/testsign/<arch>/aerovblk.cat signed by `make testsign`), read by tools that are not
# ours: osslsigncode (Authenticode digests, catalog signature), openssl (PKCS#7/DER
# parsing), sha1sum. Per architecture:
#   - the INF's CatalogFile names the catalog file beside it;
#   - `osslsigncode verify -catalog` passes for the signed .sys (embedded signature and
#     all: the Authenticode digest excludes it), the unsigned .sys and the query tool,
#     and osslsigncode's own digest of each equals tools/authenticode.py's;
#   - the INF's plain SHA-1 (sha1sum) is a member digest, and so is every PE's
#     Authenticode digest (openssl asn1parse of the catalog, not our decoder);
#   - `openssl pkcs7 -inform DER -print` parses both catalogs; the content type is the
#     CTL (1.3.6.1.4.1.311.10.1), the member type 1.3.6.1.4.1.311.12.1.2 (version 1);
#   - the catalog attributes OS (7X86 / 7X64) and HWID1, the members' File and OSAttr 2:6.1.
# The checks can fail (each must make verify fail):
#   - the x86 .sys against the amd64 catalog, and the other way round;
#   - a catalog with one flipped byte in the .sys digest, re-signed (so only the digest
#     is wrong), and the signed catalog with that byte flipped (signature broken);
#   - a .sys modified after cataloguing (one byte in .text);
#   - a catalog signed with another certificate (not the one given as CA);
# and controls that must still verify: a .sys whose PE CheckSum field alone changed
# (Authenticode skips it). mkcat refuses an output name the INF does not declare.
# Wine's view of the same catalogs: 19a-catalog-wine.sh. About 5 s.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL
fails=0
ok()   { echo "ok    $*"; }
bad()  { echo "FAIL  $*"; fails=$((fails+1)); }
need() { command -v "$1" >/dev/null || { echo "FAIL: $1 missing (apt-get install -y $2)"; exit 1; }; }
need osslsigncode osslsigncode; need openssl openssl
# make check builds the package and `make testsign` first (CHECK_DEPS); run alone, or
# after the package was rebuilt, testsign is brought up to date here.
if [ ! -f out/testsign/amd64/aerovblk.cat ] || [ ! -f out/testsign/x86/aerovblk.cat ] ||
   [ -n "$(find out/package/x86 out/package/amd64 -type f -newer out/testsign/x86/aerovblk.cat 2>/dev/null)" ]; then
  make --no-print-directory -s testsign >/dev/null || { echo "FAIL: make testsign"; exit 1; }
fi
cert=out/testsign/cert/cert.pem
tmp=$(mktemp -d /tmp/aerovblk-19a.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
AC() { /usr/bin/python3 tools/authenticode.py digest "$1" | cut -d' ' -f1; }
verify() {  # catalog file [CA] -> osslsigncode's exit status; output in $tmp/v.log
  osslsigncode verify -CAfile "${3:-$cert}" -catalog "$1" -in "$2" >"$tmp/v.log" 2>&1
}
hexof() { od -An -v -tx1 "$1" | tr -d ' \n' | tr a-f A-F; }
utf16z() { printf '%s' "$1" | iconv -f ASCII -t UTF-16LE | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F; printf '0000'; }
flip_at() {  # file hex-digest: flip the first byte of that byte sequence (its raw occurrence)
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
p, h = sys.argv[1], bytes.fromhex(sys.argv[2])
d = bytearray(open(p, "rb").read())
i = d.find(h)
assert i >= 0 and d.find(h, i + 1) < 0, "digest not found exactly once"
d[i] ^= 0x01
open(p, "wb").write(d)
PY
}

for arch in x86 amd64; do
  other=$([ $arch = x86 ] && echo amd64 || echo x86)
  os=$([ $arch = x86 ] && echo 7X86 || echo 7X64); other_os=$([ $arch = x86 ] && echo 7X64 || echo 7X86)
  pkg=out/package/$arch ts=out/testsign/$arch
  declared=$(sed -n 's/^CatalogFile[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p' $pkg/aerovblk.inf | tr -d '\r')
  [ "$declared" = aerovblk.cat ] && [ -f "$pkg/$declared" ] && [ -f "$ts/$declared" ] \
    && ok "$arch: the INF declares CatalogFile=$declared, present in package and testsign" \
    || bad "$arch: CatalogFile '$declared' not beside the INF"

  for f in $ts/aerovblk.sys $pkg/aerovblk.sys $ts/aerovblk-query.exe; do
    if verify $ts/aerovblk.cat $f; then
      calc=$(sed -n 's/^Calculated message digest *: *\([0-9A-F]*\).*/\1/p' "$tmp/v.log")
      [ -n "$calc" ] && [ "$calc" = "$(AC $f)" ] \
        && ok "$arch: $f verifies against the signed catalog (digest $calc = authenticode.py)" \
        || bad "$arch: $f verifies, but osslsigncode's digest '$calc' != authenticode.py $(AC $f)"
    else bad "$arch: $f does not verify against $ts/aerovblk.cat: $(grep -m1 -i fail "$tmp/v.log")"; fi
  done

  for cat in $pkg/aerovblk.cat $ts/aerovblk.cat; do
    if openssl pkcs7 -inform DER -in $cat -print -noout >"$tmp/p7.txt" 2>&1 \
       && grep -q '1.3.6.1.4.1.311.10.1' "$tmp/p7.txt"; then
      ok "$arch: openssl pkcs7 -print parses $cat (content type CTL 1.3.6.1.4.1.311.10.1)"
    else bad "$arch: openssl pkcs7 -print cannot parse $cat"; fi
    openssl asn1parse -inform DER -in $cat -i >"$tmp/asn1.txt" 2>&1 || bad "$arch: asn1parse $cat"
    grep -q 'OBJECT *:1.3.6.1.4.1.311.12.1.2' "$tmp/asn1.txt" \
      && ok "$arch: $cat: member type 1.3.6.1.4.1.311.12.1.2 (version-1 catalog)" \
      || bad "$arch: $cat: not a version-1 member list"
    inf_sha1=$(sha1sum $pkg/aerovblk.inf | cut -d' ' -f1 | tr a-f A-F)
    for want in "$inf_sha1 aerovblk.inf (sha1sum)" "$(AC $pkg/aerovblk.sys) aerovblk.sys (Authenticode)" \
                "$(AC $pkg/aerovblk-query.exe) aerovblk-query.exe (Authenticode)"; do
      set -- $want
      [ "$(grep -c "OCTET STRING *\[HEX DUMP\]:$1\$" "$tmp/asn1.txt")" = 1 ] \
        && ok "$arch: $cat lists $2 $3 $1" || bad "$arch: $cat does not list $2 $3 $1"
    done
    raw=$(hexof $cat)
    for nv in "OS $os" "HWID1 PCI\\VEN_1AF4&DEV_1042" "OSAttr 2:6.1" "File aerovblk.sys" "File aerovblk.inf" \
              "File aerovblk-query.exe"; do
      v=${nv#* }
      case "$raw" in *"$(utf16z "$v")"*) ok "$arch: $cat carries ${nv%% *} = $v";;
                      *) bad "$arch: $cat lacks ${nv%% *} = $v";; esac
    done
    case "$raw" in *"$(utf16z "$other_os")"*) bad "$arch: $cat names the other OS $other_os";; esac
  done

  # Negatives.
  if verify $ts/aerovblk.cat out/testsign/$other/aerovblk.sys; then
    bad "$arch: the $other .sys verifies against the $arch catalog"
  else ok "$arch: the $other .sys is refused by the $arch catalog"; fi

  # (osslsigncode does not overwrite an output file: every scratch name is per arch)
  cp $pkg/aerovblk.cat "$tmp/$arch-flip.cat"; flip_at "$tmp/$arch-flip.cat" "$(AC $pkg/aerovblk.sys)"
  if ! osslsigncode sign -certs $cert -key out/testsign/cert/key.pem -h sha1 -in "$tmp/$arch-flip.cat" \
         -out "$tmp/$arch-flip-signed.cat" >/dev/null 2>&1; then
    bad "$arch: cannot sign the flipped catalog"
  elif verify "$tmp/$arch-flip-signed.cat" $ts/aerovblk.sys; then
    bad "$arch: a catalog with one flipped digest byte (re-signed) still verifies"
  elif grep -q "Catalog verification: failed" "$tmp/v.log"; then
    ok "$arch: one flipped digest byte (re-signed catalog): refused, 'Catalog verification: failed'"
  else bad "$arch: flipped digest refused, but not by the catalog lookup: $(tail -n2 "$tmp/v.log" | head -1)"; fi
  cp $ts/aerovblk.cat "$tmp/$arch-flip2.cat"; flip_at "$tmp/$arch-flip2.cat" "$(AC $pkg/aerovblk.sys)"
  if verify "$tmp/$arch-flip2.cat" $ts/aerovblk.sys; then
    bad "$arch: the signed catalog with a flipped digest byte still verifies"
  else ok "$arch: the signed catalog with a flipped digest byte is refused"; fi

  cp $ts/aerovblk.sys "$tmp/$arch-mod.sys"
  printf '\x90' | dd of="$tmp/$arch-mod.sys" bs=1 seek=4096 conv=notrunc 2>/dev/null   # inside .text
  cmp -s $ts/aerovblk.sys "$tmp/$arch-mod.sys" && bad "$arch: the .text byte was already 0x90"
  if verify $ts/aerovblk.cat "$tmp/$arch-mod.sys"; then
    bad "$arch: a .sys modified after cataloguing still verifies"
  else ok "$arch: a .sys modified after cataloguing (.text byte) is refused"; fi

  cp $ts/aerovblk.sys "$tmp/$arch-cks.sys"
  off=$(/usr/bin/python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(); print(struct.unpack_from('<I',d,0x3c)[0]+24+64)" "$tmp/$arch-cks.sys")
  printf '\x5a\x5a' | dd of="$tmp/$arch-cks.sys" bs=1 seek=$off conv=notrunc 2>/dev/null
  if verify $ts/aerovblk.cat "$tmp/$arch-cks.sys"; then
    ok "$arch: control: a .sys with only its CheckSum field changed still verifies (Authenticode skips it)"
  else bad "$arch: changing the CheckSum field alone broke catalog verification"; fi

  if [ ! -f "$tmp/other/key.pem" ]; then
    mkdir -p "$tmp/other"
    openssl req -x509 -newkey rsa:2048 -sha256 -days 30 -nodes -subj "/CN=not the aerovblk test key" \
      -keyout "$tmp/other/key.pem" -out "$tmp/other/cert.pem" 2>/dev/null
  fi
  if ! osslsigncode sign -certs "$tmp/other/cert.pem" -key "$tmp/other/key.pem" -h sha1 -in $pkg/aerovblk.cat \
         -out "$tmp/$arch-othersig.cat" >/dev/null 2>&1; then
    bad "$arch: cannot sign with the other key"
  elif verify "$tmp/$arch-othersig.cat" $ts/aerovblk.sys; then
    bad "$arch: a catalog signed by another certificate verifies against the test certificate"
  else ok "$arch: a catalog signed by another certificate is refused"; fi
  verify "$tmp/$arch-othersig.cat" $ts/aerovblk.sys "$tmp/other/cert.pem" \
    && ok "$arch: control: that catalog verifies against its own certificate" \
    || bad "$arch: the other-certificate catalog does not verify even against its own CA"
done

# mkcat refuses an output the INF does not declare as its CatalogFile.
if /usr/bin/python3 tools/mkcat.py make --inf out/package/amd64/aerovblk.inf --os 7X64 \
     --hwid 'PCI\VEN_1AF4&DEV_1042' --time 0 -o "$tmp/other.cat" out/package/amd64/aerovblk.inf \
     >"$tmp/mk.log" 2>&1; then bad "mkcat wrote other.cat although the INF declares aerovblk.cat"
else ok "mkcat refuses a catalog name the INF does not declare: $(tail -n1 "$tmp/mk.log")"; fi

[ $fails -eq 0 ] && echo "catalog checks passed" || echo "$fails catalog check(s) failed"
[ $fails -eq 0 ]
