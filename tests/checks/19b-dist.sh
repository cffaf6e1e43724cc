#!/usr/bin/env bash
# `make dist` (mk/dist.mk, dist/): the release archives out/dist/aerovblk-<version>.zip/.iso
# (unsigned) and aerovblk-<version>-testsigned.zip/.iso.
# Contents: each .zip and the Joliet tree of each .iso hold exactly
#   x86/ amd64/: aerovblk.sys aerovblk.inf aerovblk.cat aerovblk-query.exe,
#   install.cmd bootdisk.reg README.txt SHA256SUMS (+ aerovblk-test.cer when test-signed);
# extracted (Python's zipfile; xorriso -osirrox), zip and ISO are identical, the driver files are
# byte-identical to out/package (unsigned) / out/testsign (test-signed), the certificate
# to out/testsign/cert's, `sha256sum -c SHA256SUMS` passes and lists every other file,
# and out/dist/SHA256SUMS verifies the archives.
# Text files: install.cmd, README.txt, SHA256SUMS ASCII with CRLF only; no template
# placeholder left; README.txt carries only its variant's lines. install.cmd: every
# `goto`/`call :` target is a label, no label twice (the checker refuses a mutant with a
# dangling goto and an LF-only copy: it can fail).
# bootdisk.reg: UTF-16LE with BOM, CRLF, "Windows Registry Editor Version 5.00"; imported
# with Wine's `regedit /s` into a throw-away WINEPREFIX and read back with `reg query`:
#   CriticalDeviceDatabase\pci#ven_1af4&dev_1042: Service aerovblk, ClassGUID SCSIAdapter;
#   services\aerovblk: Type 1, Start 0, ErrorControl 1 (= the INF's ServiceType/StartType/
#   ErrorControl), Group "SCSI miniport", ImagePath REG_EXPAND_SZ system32\drivers\aerovblk.sys,
#   Parameters\PnpInterface 5 = 1; a copy with a wrong header imports nothing.
# install.cmd run by Wine's cmd.exe from the extracted archives, with stub net.exe,
# certutil.exe and pnputil.exe in the prefix (they log their command line and exit with
# a chosen code): test-signed /bootdisk (certificate into Root and TrustedPublisher,
# pnputil -i -a amd64\aerovblk.inf, aerovblk.sys in system32\drivers, bootdisk.reg
# imported by reg.exe, the bcdedit reminder, exit 0); unsigned (no certutil, no reminder);
# a 32-bit prompt on x86 (x86\aerovblk.inf) and on x64 (PROCESSOR_ARCHITEW6432: amd64 via
# Sysnative); and the failures with their exit codes: not elevated 2, unsupported
# architecture 3, missing file 4, certutil failure 5, pnputil failure 1, bad argument 7
# (pnputil 3010 = restart needed: success). Wine's cmd turns an exit code of 259 into 0,
# so the "staged, no device" branch is not exercised. About 40 s, most of it Wine
# (longer on a loaded machine).
set -uo pipefail
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/wine/wine-env.sh
wine_find || exit 1
command -v xorriso >/dev/null || { echo "FAIL: xorriso missing (apt-get install -y xorriso)"; exit 1; }
. ./VERSION
V=$AEROVBLK_VER_MAJOR.$AEROVBLK_VER_MINOR.$AEROVBLK_VER_PATCH.$AEROVBLK_VER_BUILD
# make check runs `make dist` first (CHECK_DEPS); run alone, or after the package was
# rebuilt, the archives are brought up to date here.
if [ ! -f out/dist/aerovblk-$V.zip ] || [ ! -f out/dist/aerovblk-$V-testsigned.iso ] ||
   [ -n "$(find out/package/x86 out/package/amd64 out/testsign/x86 out/testsign/amd64 -type f \
           -newer out/dist/aerovblk-$V.zip 2>/dev/null)" ]; then
  make --no-print-directory -s dist >/dev/null || { echo "FAIL: make dist"; exit 1; }
fi

tmp=$(mktemp -d /tmp/aerovblk-dist.XXXXXX)
export WINEPREFIX="$tmp/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=;certutil.exe,net.exe,pnputil.exe=n"
cleanup() {
  # The server of this prefix only (persistent, started below); nothing is kept from it.
  [ -d "$WINEPREFIX" ] && "$wineserver" -k >/dev/null 2>&1
  chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
ok()  { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fails=$((fails+1)); }

# --- archive contents ---------------------------------------------------------------
arch_files="aerovblk-query.exe aerovblk.cat aerovblk.inf aerovblk.sys"
(cd out/dist && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 && ok "out/dist/SHA256SUMS verifies the archives" \
  || bad "out/dist/SHA256SUMS does not verify"
for variant in unsigned testsigned; do
  name=aerovblk-$V$([ $variant = testsigned ] && echo -testsigned)
  src=$([ $variant = testsigned ] && echo out/testsign || echo out/package)
  want=$( { for a in x86 amd64; do for f in $arch_files; do echo $a/$f; done; done
            echo install.cmd; echo bootdisk.reg; echo README.txt; echo SHA256SUMS
            [ $variant = testsigned ] && echo aerovblk-test.cer; } | sort)
  zl=$(/usr/bin/python3 -c "import sys,zipfile; print('\n'.join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))" out/dist/$name.zip)
  [ "$zl" = "$want" ] && ok "$name.zip holds exactly: $(echo $want)" || { bad "$name.zip contents differ"; diff <(echo "$want") <(echo "$zl"); }
  il=$(xorriso -rockridge off -joliet on -indev out/dist/$name.iso -find / -type f 2>/dev/null | tr -d "'" | sed 's|^/||' | sort)
  [ "$il" = "$want" ] && ok "$name.iso (Joliet) holds the same files" || { bad "$name.iso contents differ"; diff <(echo "$want") <(echo "$il"); }
  vol=$(xorriso -indev out/dist/$name.iso -pvd_info 2>/dev/null | sed -n 's/^Volume Id *: *//p')
  [ -n "$vol" ] && ok "$name.iso volume ID $vol" || bad "$name.iso has no volume ID"
  mkdir -p "$tmp/$variant/zip" "$tmp/$variant/iso"
  /usr/bin/python3 -c "import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    out/dist/$name.zip "$tmp/$variant/zip" || bad "cannot extract $name.zip"
  xorriso -osirrox on -indev out/dist/$name.iso -extract / "$tmp/$variant/iso" >/dev/null 2>&1 || bad "extract $name.iso"
  diff -r "$tmp/$variant/zip" "$tmp/$variant/iso" >/dev/null && ok "$name: .zip and .iso extract to identical trees" \
    || bad "$name: .zip and .iso differ"
  d=$tmp/$variant/zip
  same=1
  for a in x86 amd64; do for f in $arch_files; do cmp -s "$d/$a/$f" "$src/$a/$f" || { same=0; bad "$name: $a/$f differs from $src/$a/$f"; }; done; done
  [ $same = 1 ] && ok "$name: x86/ and amd64/ are byte-identical to $src"
  if [ $variant = testsigned ]; then
    cmp -s "$d/aerovblk-test.cer" out/testsign/cert/aerovblk-test.cer && ok "$name: aerovblk-test.cer is the test certificate" \
      || bad "$name: aerovblk-test.cer is not out/testsign/cert's"
  fi
  (cd "$d" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 && ok "$name: sha256sum -c SHA256SUMS passes" || bad "$name: SHA256SUMS does not verify"
  listed=$(sed 's/^[0-9a-f]*  //' "$d/SHA256SUMS" | tr -d '\r' | sort)
  [ "$listed" = "$(echo "$want" | grep -vx SHA256SUMS)" ] && ok "$name: SHA256SUMS lists every other file" || bad "$name: SHA256SUMS list incomplete"
done

# --- text files and install.cmd's structure ----------------------------------------
textcheck() {  # file: ASCII, CRLF only, ends with CRLF, no @PLACEHOLDER@ / [variant] marker
  /usr/bin/python3 - "$1" <<'PY'
import re, sys
d = open(sys.argv[1], "rb").read()
errs = []
try: t = d.decode("ascii")
except UnicodeDecodeError: errs.append("not ASCII")
if d.replace(b"\r\n", b"").count(b"\n") or d.replace(b"\r\n", b"").count(b"\r"): errs.append("line ending other than CRLF")
if not d.endswith(b"\r\n"): errs.append("no final CRLF")
t = d.decode("latin-1")
if re.search(r"@[A-Z0-9_]+@|@HEX2", t): errs.append("placeholder left: %s" % re.search(r"@[A-Z0-9_(]+", t).group(0))
if re.search(r"^\[(unsigned|testsigned)\]", t, re.M): errs.append("variant marker left")
print("; ".join(errs)); sys.exit(1 if errs else 0)
PY
}
labelcheck() {  # install.cmd: every goto/call target is a label, no duplicate label
  /usr/bin/python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1], "rb").read().decode("latin-1")
labels, errs = {}, []
for n, line in enumerate(t.splitlines(), 1):
    m = re.match(r"^\s*:([^\s:][^\s]*)", line)
    if m:
        k = m.group(1).lower()
        if k in labels: errs.append("label %s twice (lines %d, %d)" % (k, labels[k], n))
        labels[k] = n
refs = [(m.group(1).lower(), t[:m.start()].count("\n") + 1)
        for m in re.finditer(r"(?i)\b(?:goto\s+:?|call\s+:)([^\s&|)]+)", t)]
for k, n in refs:
    if k != "eof" and k not in labels: errs.append("line %d: goto/call %s: no such label" % (n, k))
print("%d labels, %d references%s" % (len(labels), len(refs), "; " + "; ".join(errs) if errs else ""))
sys.exit(1 if errs or not refs else 0)
PY
}
for variant in unsigned testsigned; do
  d=$tmp/$variant/zip
  for f in install.cmd README.txt SHA256SUMS; do
    r=$(textcheck "$d/$f") && ok "$variant: $f is ASCII with CRLF line endings, no placeholders" || bad "$variant: $f: $r"
  done
  r=$(labelcheck "$d/install.cmd") && ok "$variant: install.cmd: $r" || bad "$variant: install.cmd: $r"
  ts=$(tr -d '\r' <"$d/install.cmd" | sed -n 's/^set "TESTSIGNED=\(.*\)"$/\1/p')
  [ "$ts" = "$([ $variant = testsigned ] && echo 1 || echo 0)" ] && ok "$variant: install.cmd TESTSIGNED=$ts" \
    || bad "$variant: install.cmd TESTSIGNED='$ts'"
  grep -q "aerovblk $V" "$d/README.txt" && ok "$variant: README.txt names version $V" || bad "$variant: README.txt lacks $V"
  if [ $variant = testsigned ]; then grep -q 'bcdedit /set testsigning on' "$d/README.txt" \
      && ok "$variant: README.txt explains test mode" || bad "$variant: README.txt lacks the bcdedit step"
  else grep -q 'aerovblk-test.cer' "$d/README.txt" && bad "$variant: README.txt mentions a certificate the archive lacks" \
      || ok "$variant: README.txt does not mention the test certificate"; fi
done
# The structure checks can fail.
sed 's/goto missing/goto nowhere_at_all/' "$tmp/testsigned/zip/install.cmd" >"$tmp/bad-goto.cmd"
labelcheck "$tmp/bad-goto.cmd" >/dev/null && bad "labelcheck accepts a goto to a missing label" \
  || ok "negative: a goto to a missing label is refused"
tr -d '\r' <"$tmp/testsigned/zip/install.cmd" >"$tmp/lf.cmd"
textcheck "$tmp/lf.cmd" >/dev/null && bad "textcheck accepts LF line endings" || ok "negative: LF line endings are refused"

# --- bootdisk.reg -------------------------------------------------------------------
reg=$tmp/testsigned/zip/bootdisk.reg
r=$(/usr/bin/python3 - "$reg" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
errs = []
if d[:2] != b"\xff\xfe": errs.append("no UTF-16LE BOM")
t = d[2:].decode("utf-16-le")
if t.replace("\r\n", "").count("\n") or t.replace("\r\n", "").count("\r"): errs.append("not CRLF")
if not t.startswith("Windows Registry Editor Version 5.00\r\n"): errs.append("header %r" % t.splitlines()[0])
print("; ".join(errs)); sys.exit(1 if errs else 0)
PY
) && ok "bootdisk.reg: UTF-16LE with BOM, CRLF, 'Windows Registry Editor Version 5.00'" || bad "bootdisk.reg: $r"
cmp -s "$reg" "$tmp/unsigned/zip/bootdisk.reg" && ok "bootdisk.reg is the same in both variants" || bad "bootdisk.reg differs between variants"

t0=$(date +%s)
"$wine" wineboot -i >/dev/null 2>&1
"$wineserver" -p   # one server for every wine call below (each would otherwise start one)
CDD='HKLM\SYSTEM\CurrentControlSet\Control\CriticalDeviceDatabase\pci#ven_1af4&dev_1042'
SVC='HKLM\SYSTEM\CurrentControlSet\services\aerovblk'
regdump() {  # both keys, recursively, as "KEY|VALUE|TYPE DATA" lines, into $tmp/regdump
  { "$wine" reg query "$CDD" /s; "$wine" reg query "$SVC" /s; } 2>>"$tmp/reg.err" | tr -d '\r' | awk '
    /^HKEY_/ { key = $0; sub(/^HKEY_LOCAL_MACHINE/, "HKLM", key); next }
    NF >= 3 { v = $1; t = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); print key "|" v "|" t " " $0 }' >"$tmp/regdump"
}
q() {  # key value -> "TYPE DATA" of that value in the last regdump, or nothing
  K=$1 V=$2 awk -F'|' 'tolower($1) == tolower(ENVIRON["K"]) && $2 == ENVIRON["V"] { print $3 }' "$tmp/regdump"
}
inf=out/package/amd64/aerovblk.inf
infval() { tr -d '\r' <$inf | sed -n "s/^$1[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p" | head -1; }
check_reg_once() {  # the registry holds what bootdisk.reg says; prints ok/FAIL, returns failures
  local n=0 line
  regdump
  while IFS='|' read -r key val want; do
    got=$(q "$key" "$val")
    if [ "$got" = "$want" ]; then echo "ok    registry: $key\\$val = $got"
    else echo "FAIL  registry: $key\\$val = '$got', want '$want'"; n=$((n+1)); fi
  done <<EOF
$CDD|Service|REG_SZ aerovblk
$CDD|ClassGUID|REG_SZ {4D36E97B-E325-11CE-BFC1-08002BE10318}
$SVC|Type|REG_DWORD 0x$(infval ServiceType)
$SVC|Start|REG_DWORD 0x$(infval StartType)
$SVC|ErrorControl|REG_DWORD 0x$(infval ErrorControl)
$SVC|Type|REG_DWORD 0x1
$SVC|Start|REG_DWORD 0x0
$SVC|ErrorControl|REG_DWORD 0x1
$SVC|Group|REG_SZ SCSI miniport
$SVC|ImagePath|REG_EXPAND_SZ system32\\drivers\\aerovblk.sys
$SVC\\Parameters\\PnpInterface|5|REG_DWORD 0x1
EOF
  return $n
}
# Once (CI, load average ~20) every value of one key read back empty right after a
# complete import while the other key's were there: a `wine reg query` that printed
# nothing. A value really missing stays missing on a second and third reading.
check_reg() {
  local try
  for try in 1 2 3; do
    check_reg_once >"$tmp/reg.try" && { cat "$tmp/reg.try"; [ $try = 1 ] || echo "(read back on reading $try; reg query stderr: $(tr '\n' ' ' <"$tmp/reg.err" | cut -c1-200))"; return 0; }
    sleep 1
  done
  cat "$tmp/reg.try"; return 1
}
regdump
[ -z "$(q "$SVC" Start)$(q "$CDD" Service)" ] && ok "fresh prefix: no aerovblk keys before the import" \
  || bad "the fresh prefix already has aerovblk keys"
# Negative control first: a wrong header imports nothing.
/usr/bin/python3 -c "
import sys; d=open(sys.argv[1],'rb').read().decode('utf-16')
open(sys.argv[2],'wb').write(b'\xff\xfe'+d.replace('Version 5.00','Version 9.99').encode('utf-16-le'))" "$reg" "$tmp/badhdr.reg"
"$wine" regedit /s "$(winpath "$tmp/badhdr.reg")" >/dev/null 2>&1
if check_reg >"$tmp/reg.log"; then bad "a .reg with a wrong header was imported"
else ok "negative: a .reg with header 'Version 9.99' imports nothing ($(grep -c '^FAIL' "$tmp/reg.log") values absent)"; fi
"$wine" regedit /s "$(winpath "$reg")" >/dev/null 2>&1
if check_reg >"$tmp/reg.log"; then ok "regedit /s bootdisk.reg: every value read back with reg query"
else bad "bootdisk.reg import incomplete"; fi
sed 's/^/      /' "$tmp/reg.log"
"$wine" reg delete "$SVC" /f >/dev/null 2>&1; "$wine" reg delete "$CDD" /f >/dev/null 2>&1
regdump
[ -z "$(q "$SVC" Start)$(q "$CDD" Service)" ] || bad "could not remove the imported keys"

# --- install.cmd under Wine's cmd.exe, with stub tools ------------------------------
cat >"$tmp/stub.c" <<'EOF'
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
/* Stub of a Windows tool: appends "<name> <command line>" to %STUB_LOG%, exits with
   %STUB_<NAME>_RC% (default 0). */
int wmain(void)
{
    wchar_t path[MAX_PATH], var[64], buf[32], log[MAX_PATH], *base, *dot;
    FILE *f;
    int rc = 0;
    GetModuleFileNameW(NULL, path, MAX_PATH);
    base = wcsrchr(path, L'\\'); base = base ? base + 1 : path;
    dot = wcsrchr(base, L'.'); if (dot) *dot = 0;
    _snwprintf(var, 64, L"STUB_%ls_RC", base); _wcsupr(var);
    if (GetEnvironmentVariableW(var, buf, 32)) rc = _wtoi(buf);
    if (GetEnvironmentVariableW(L"STUB_LOG", log, MAX_PATH) && (f = _wfopen(log, L"a")) != NULL) {
        fwprintf(f, L"%ls %ls\n", base, GetCommandLineW());
        fclose(f);
    }
    return rc;
}
EOF
x86_64-w64-mingw32-gcc -municode -O2 -s "$tmp/stub.c" -o "$tmp/stub.exe" || bad "cannot build the stub tool"
sys32=$WINEPREFIX/drive_c/windows/system32
mkdir -p "$WINEPREFIX/drive_c/windows/Sysnative"
for t in net certutil pnputil; do
  cp "$tmp/stub.exe" "$sys32/$t.exe"; cp "$tmp/stub.exe" "$WINEPREFIX/drive_c/windows/Sysnative/$t.exe"
done
export STUB_LOG; STUB_LOG=$(winpath "$tmp/stub.log")
# run_install VARIANT-DIR "cmd prefix" ARGS... -> exit code in $rc, output in $tmp/out.txt, log in $tmp/stub.log
run_install() {
  local dir=$1 pre=$2; shift 2
  rm -f "$tmp/stub.log"; : >"$tmp/stub.log"
  "$wine" cmd /c "${pre}cd /d $(winpath "$dir") && install.cmd $*" </dev/null 2>/dev/null | tr -d '\r' >"$tmp/out.txt"
  rc=${PIPESTATUS[0]}
}
expect() {  # description want-rc [grep-pattern-in-output]...
  local what=$1 want=$2 p; shift 2
  if [ "$rc" != "$want" ]; then bad "install.cmd $what: exit $rc, want $want"; sed 's/^/      /' "$tmp/out.txt"; return; fi
  for p in "$@"; do grep -q -- "$p" "$tmp/out.txt" || { bad "install.cmd $what: output lacks '$p'"; sed 's/^/      /' "$tmp/out.txt"; return; }; done
  ok "install.cmd $what: exit $rc${*:+, says '$1'}"
}
logged() { tr -d '\r' <"$tmp/stub.log" | grep -iF -- "$1" >/dev/null; }   # no -q: pipefail + early exit = SIGPIPE
TS=$tmp/testsigned/zip US=$tmp/unsigned/zip

run_install "$TS" "" /bootdisk
expect "(test-signed, /bootdisk)" 0 "bcdedit /set testsigning on" "move the system disk"
logged 'certutil "C:\windows\System32\certutil.exe" -f -addstore Root "'"$(winpath "$TS")"'\aerovblk-test.cer"' \
  && logged "-addstore TrustedPublisher" && ok "  certificate imported into Root and TrustedPublisher" || bad "  certutil not called as expected: $(cat "$tmp/stub.log")"
logged 'pnputil "C:\windows\System32\pnputil.exe" -i -a "'"$(winpath "$TS")"'\amd64\aerovblk.inf"' \
  && ok "  pnputil -i -a amd64\\aerovblk.inf" || bad "  pnputil not called with the amd64 INF: $(cat "$tmp/stub.log")"
cmp -s "$sys32/drivers/aerovblk.sys" "$TS/amd64/aerovblk.sys" && ok "  amd64 aerovblk.sys copied to system32\\drivers" \
  || bad "  system32\\drivers\\aerovblk.sys missing or not the amd64 driver"
check_reg >"$tmp/reg.log" && ok "  bootdisk.reg imported (reg.exe): every value read back" || { bad "  bootdisk.reg not imported by install.cmd"; cat "$tmp/reg.log"; }

run_install "$US" ""
expect "(unsigned)" 0 "The driver is installed"
logged certutil && bad "  unsigned: certutil was called" || ok "  unsigned: no certificate import"
grep -q bcdedit "$tmp/out.txt" && bad "  unsigned: test-mode reminder printed" || ok "  unsigned: no test-mode reminder"
logged 'amd64\aerovblk.inf' && ok "  unsigned: pnputil on amd64\\aerovblk.inf" || bad "  unsigned: pnputil not called"

run_install "$TS" "set PROCESSOR_ARCHITECTURE=x86&& "
expect "(32-bit Windows)" 0 "installing from x86"
logged 'pnputil.exe" -i -a "'"$(winpath "$TS")"'\x86\aerovblk.inf"' && ok "  x86: pnputil on x86\\aerovblk.inf" || bad "  x86 INF not used"
run_install "$TS" "set PROCESSOR_ARCHITECTURE=x86&& set PROCESSOR_ARCHITEW6432=AMD64&& "
expect "(32-bit prompt on 64-bit Windows)" 0 "installing from amd64"
logged 'Sysnative\pnputil.exe" -i -a "'"$(winpath "$TS")"'\amd64\aerovblk.inf"' \
  && ok "  WOW64: Sysnative\\pnputil.exe on amd64\\aerovblk.inf" || bad "  WOW64: not Sysnative/amd64: $(cat "$tmp/stub.log")"

run_install "$TS" "set STUB_PNPUTIL_RC=3010&& "
expect "(pnputil asks for a restart, 3010)" 0 "restart"
run_install "$TS" "set STUB_NET_RC=2&& "
expect "(not elevated)" 2 "administrator rights are needed"
logged pnputil && bad "  not elevated: pnputil was still called" || ok "  not elevated: nothing installed"
run_install "$TS" "set PROCESSOR_ARCHITECTURE=IA64&& "
expect "(IA64)" 3 "is not supported"
run_install "$TS" "set STUB_CERTUTIL_RC=1&& "
expect "(certutil fails)" 5 "certutil could not import"
run_install "$TS" "set STUB_PNPUTIL_RC=5&& "
expect "(pnputil fails)" 1 "pnputil failed with exit code 5"
run_install "$TS" "" /x
expect "(unknown argument)" 7 "unknown argument"
run_install "$TS" "" "/?"
expect "(/?)" 0 "usage: install.cmd"
cp -r "$US" "$tmp/partial"; rm -f "$tmp/partial/amd64/aerovblk.cat"
run_install "$tmp/partial" ""
expect "(catalog missing)" 4 "amd64.aerovblk.cat is missing"
echo "Wine: $(( $(date +%s) - t0 ))s"

[ $fails -eq 0 ] && echo "dist checks passed" || echo "$fails dist check(s) failed"
[ $fails -eq 0 ]
