#!/usr/bin/env bash
# The packaged INF (out/package/amd64/aerovblk.inf + aerovblk.sys) installed through
# Wine's setupapi in a throw-away WINEPREFIX, and the result read back from the
# prefix's registry file (system.reg, after wineserver has saved it and exited) by
# tests/wine/infreg.py, which parses the INF and the registry itself: no setupapi or
# advapi32 code is trusted for the verdict. The installer is out/wine/infinstall.exe
# (tests/wine/infinstall.c, built by mk/wine.mk). Wine is required: no skip.
#
# Phase 1, negative controls (each must FAIL with the expected error; they prove the
# install and the check can fail), in the fresh prefix:
#   - wrong Signature ("$Windows XP$"): SetupOpenInfFile 0xE0000100 ERROR_WRONG_INF_STYLE,
#     for the services-only install and the device install
#   - misspelled service-install section header: SetupInstallServicesFromInfSection
#     0xE0000217 ERROR_BAD_SERVICE_INSTALLSECT
#   - ServiceType line removed: 0xE0000217; ServiceType with an empty value: 0x57
#     ERROR_INVALID_PARAMETER (Wine passes type 0 to CreateService)
#   - the legacy virtio-blk ID PCI\VEN_1AF4&DEV_1001 matches no model
#   - a device install with the misspelled service section: Windows fails it with
#     0xE0000217; Wine 8's SetupDiInstallDevice ignores the .Services result and reports
#     success, so the registry check of that device must fail on exactly the missing
#     Services\aerovblk key (either outcome is accepted, a passing check is not)
#   then: no Services\aerovblk key exists (nothing leaked into the positive runs).
# Phase 2: SetupInstallServicesFromInfSection(<install>.Services) with the real INF;
#   Services\aerovblk: Type/Start/ErrorControl/Group/DisplayName as the INF writes them
#   (and the project's 1/0/1/"SCSI Miniport", exact case), ImagePath ...\drivers\aerovblk.sys,
#   every HKR line of the service AddReg (Parameters\PnpInterface\5 = 1, BusType = 1).
# Phase 3: `sc delete aerovblk` (the key is gone), then the device install of a phantom
#   device with the hardware IDs of QEMU's modern virtio-blk (PCI\VEN_1AF4&DEV_1042&
#   SUBSYS_11001AF4&REV_01 ... PCI\VEN_1AF4&DEV_1042): DIF_REGISTERDEVICE,
#   SetupDiBuildDriverInfoList(SPDIT_COMPATDRIVER) on this INF only,
#   SetupDiSelectBestCompatDrv, SetupDiInstallDevice. The NTamd64 model must be the one
#   selected (description, install section, matching ID), and the registry must show:
#   the device's Service = aerovblk, HardwareID, Class/ClassGUID, DeviceDesc, its class
#   key's InfSection, every .HW AddReg line under Device Parameters (Interrupt
#   Management\MessageSignaledInterruptProperties MSISupported = 1, MessageNumberLimit =
#   2), the service key again (recreated by the device install), aerovblk.sys copied to
#   system32\drivers and the catalog into catroot.
#
# What is checked where: tools/infcheck.py (checks 14/15) stays the check of what
# Wine ignores or does not implement: the EventLog AddService field and its AddReg
# section, DriverVer syntax and value (Wine leaves DriverDate/DriverVersion zero), the
# NTx86 model (no wine32 here), CatalogFile naming, ServiceBinary = %12%\<sys> (Wine
# writes C:\windows\... into ImagePath), the AddService flags value and the PCI ID spelling
# of both models. This check covers what only an installer shows: that setupapi parses
# the INF, finds the NTamd64 model for the device, and writes the service, its
# parameters and the MSI keys where StorPort reads them.
#
# Wine notes (wine64 8.0): without a file named as CatalogFile beside the INF,
# SetupDiInstallDevice crashes; SetupDiSetSelectedDriverW is not implemented (not called);
# Wine adds ObjectName/PreshutdownTimeout to the service key; it tries to load every
# boot-start driver at each later start (aerovblk.sys fails: no storport.sys), which is
# why the prefix is never reused. ~25 s here, most of it the prefix initialisation.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/wine/wine-env.sh
wine_find || exit 1
fail() { echo "FAIL: $*"; exit 1; }

# WINE_INF_PKG=DIR: check another directory's aerovblk.inf/.sys (trying the check on a
# broken INF); default the amd64 package.
pkg=${WINE_INF_PKG:-out/package/amd64}
tool=out/wine/infinstall.exe
# make check builds both first (CHECK_DEPS). Run alone, the tool is brought up to
# date; the package is built only when missing (check 10 is the up-to-date check).
make --no-print-directory -s "$tool" >/dev/null || fail "cannot build $tool (mk/wine.mk)"
for f in aerovblk.inf aerovblk.sys; do
  [ -f "$pkg/$f" ] || [ -n "${WINE_INF_PKG:-}" ] || make --no-print-directory -s "$pkg/$f" >/dev/null ||
    fail "cannot build $pkg/$f (make package)"
  [ -f "$pkg/$f" ] || fail "missing $pkg/$f"
done
infreg() { /usr/bin/python3 tests/wine/infreg.py "$@"; }

t0=$(date +%s)
tmp=$(mktemp -d /tmp/aerovblk-wineinf.XXXXXX)
export WINEPREFIX="$tmp/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Only this run's prefix is waited for (bounded); if its wineserver does not exit,
# `wineserver -k` with this WINEPREFIX ends that one server only, no other Wine.
server_exit() {
  [ -d "$WINEPREFIX" ] || return 0
  timeout 60 "$wineserver" -w >/dev/null 2>&1 && return 0
  echo "wineserver of $WINEPREFIX did not exit within 60 s: wineserver -k (this prefix only)"
  timeout 30 "$wineserver" -k >/dev/null 2>&1
  return 1
}
cleanup() { server_exit; rm -rf "$tmp"; }
trap cleanup EXIT

# Staging: the packaged INF and .sys, and the catalog the INF names. Another area will
# produce the real aerovblk.cat; until out/package/amd64 has it, a placeholder file of
# that name stands in, because Wine's SetupDiInstallDevice crashes when the catalog is
# missing (Wine does not verify catalogs, so the content does not matter to it).
infreg expect "$pkg/aerovblk.inf" || fail "the INF does not carry the required service settings"
cat=$(infreg expect "$pkg/aerovblk.inf" | sed -n 's/.*; catalog: //p')
[ -n "$cat" ] || fail "no CatalogFile in the INF"
mkdir -p "$tmp/pkg"
cp "$pkg/aerovblk.inf" "$pkg/aerovblk.sys" "$tmp/pkg/"
if [ -f "$pkg/$cat" ]; then cp "$pkg/$cat" "$tmp/pkg/"; echo "catalog: $pkg/$cat"
else echo "placeholder for $cat (not in $pkg yet)" >"$tmp/pkg/$cat"; echo "catalog: placeholder $cat"; fi
echo "== negative-control INF copies"
infreg mutate "$tmp/pkg/aerovblk.inf" "$tmp/neg" || fail "a negative control no longer applies to the INF"
for d in "$tmp"/neg/*/; do cp "$tmp/pkg/aerovblk.sys" "$tmp/pkg/$cat" "$d"; done

run() {  # run NAME MODE INF [HWID...] -> $rc, $tmp/NAME.out
  local name=$1 mode=$2 inf=$3; shift 3
  timeout 120 "$wine" "$tool" "$mode" "$(winpath "$inf")" "$@" >"$tmp/$name.raw" 2>"$tmp/$name.err"
  rc=$?
  tr -d '\r' <"$tmp/$name.raw" >"$tmp/$name.out"   # msvcrt text mode: CRLF
  echo "== $name: infinstall $mode ${inf#"$tmp"/} $* -> rc=$rc"
  sed 's/^/   /' "$tmp/$name.out"
  grep -v '^$' "$tmp/$name.err" | sed 's/^/   stderr: /'
}
expect_error() {  # NAME CODE: the run failed (exit 1) with GetLastError CODE
  [ "$rc" -eq 1 ] && grep -q "^FAIL .*: error $2 " "$tmp/$1.out" ||
    fail "$1: expected failure with error $2, got rc=$rc"
}
field() { sed -n "s/^$2: //p" "$tmp/$1.out" | head -n1; }

echo "== prefix $WINEPREFIX"
timeout 180 "$wine" wineboot -i >"$tmp/wineboot.log" 2>&1 || { cat "$tmp/wineboot.log"; fail "wineboot -i"; }
server_exit || fail "wineserver after wineboot"
t1=$(date +%s); echo "prefix ready in $((t1 - t0)) s"

# ---- phase 1: negative controls
run sig-services services "$tmp/neg/signature/aerovblk.inf"
expect_error sig-services 0xE0000100
run sig-device device "$tmp/neg/signature/aerovblk.inf" 'PCI\VEN_1AF4&DEV_1042'
expect_error sig-device 0xE0000100
run section-services services "$tmp/neg/service-section/aerovblk.inf"
expect_error section-services 0xE0000217
run stype-line services "$tmp/neg/servicetype-line/aerovblk.inf"
expect_error stype-line 0xE0000217
run stype-value services "$tmp/neg/servicetype-value/aerovblk.inf"
expect_error stype-value 0x00000057
run legacy-id match "$tmp/pkg/aerovblk.inf" 'PCI\VEN_1AF4&DEV_1001'
[ "$rc" -eq 3 ] && [ "$(field legacy-id compatible-drivers)" = 0 ] ||
  fail "legacy-id: PCI\\VEN_1AF4&DEV_1001 must match no model (rc=$rc)"
run section-device device "$tmp/neg/service-section/aerovblk.inf" 'PCI\VEN_1AF4&DEV_1042'
neg_dev=""
if [ "$rc" -eq 1 ]; then expect_error section-device 0xE0000217
elif [ "$rc" -eq 0 ]; then
  neg_dev=$(field section-device device-instance-id)
  echo "   (SetupDiInstallDevice reported success: Wine ignores the failed .Services install)"
else fail "section-device: rc=$rc"; fi
server_exit || fail "wineserver after phase 1"
echo "== registry after the negative controls"
infreg absent "$WINEPREFIX/system.reg" 'System\CurrentControlSet\Services\aerovblk' ||
  fail "a failed install left a service key"
if [ -n "$neg_dev" ]; then
  echo "== registry check of $neg_dev (installed without its service): must fail"
  infreg device "$tmp/pkg/aerovblk.inf" "$WINEPREFIX" "$neg_dev" "$tmp/pkg" >"$tmp/negdev.txt"; nrc=$?
  sed 's/^/   /' "$tmp/negdev.txt"
  [ $nrc -eq 1 ] && grep -q '^FAIL service key .*Services\\aerovblk exists' "$tmp/negdev.txt" ||
    fail "the registry check did not notice the device's missing service key"
  [ "$(grep -c '^FAIL' "$tmp/negdev.txt")" -eq 1 ] ||
    fail "that device install is wrong in more than its service (see the FAIL lines above)"
fi
t2=$(date +%s); echo "negative controls: $((t2 - t1)) s"

# ---- phase 2: services-only install
run services services "$tmp/pkg/aerovblk.inf"
[ "$rc" -eq 0 ] && grep -q '^result: services installed' "$tmp/services.out" ||
  fail "SetupInstallServicesFromInfSection with the packaged INF (rc=$rc)"
[ "$(field services version-CatalogFile)" = "$cat" ] || fail "setupapi reads CatalogFile differently"
server_exit || fail "wineserver after phase 2"
echo "== registry after the services-only install"
infreg service "$tmp/pkg/aerovblk.inf" "$WINEPREFIX/system.reg" | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "service key after SetupInstallServicesFromInfSection"
t3=$(date +%s); echo "services-only install: $((t3 - t2)) s"

# ---- phase 3: device install against a phantom PCI device
timeout 60 "$wine" sc delete aerovblk >"$tmp/scdelete.out" 2>&1 || { cat "$tmp/scdelete.out"; fail "sc delete aerovblk"; }
timeout 60 "$wine" reg query 'HKLM\System\CurrentControlSet\Services\aerovblk' >/dev/null 2>&1 &&
  fail "sc delete left Services\\aerovblk"
echo "== sc delete aerovblk: service key gone"
run device device "$tmp/pkg/aerovblk.inf" \
  'PCI\VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01' 'PCI\VEN_1AF4&DEV_1042&SUBSYS_11001AF4' \
  'PCI\VEN_1AF4&DEV_1042&REV_01' 'PCI\VEN_1AF4&DEV_1042'
[ "$rc" -eq 0 ] && grep -q '^result: device installed' "$tmp/device.out" || fail "device install (rc=$rc)"
[ "$(field device compatible-drivers)" = 1 ] || fail "expected exactly one compatible driver"
want_desc=$(infreg expect "$tmp/pkg/aerovblk.inf" | sed -n "s/.* -> '\(.*\)', install section .*/\1/p")
want_sect=$(infreg expect "$tmp/pkg/aerovblk.inf" | sed -n 's/.*, install section //p')
[ "$(field device selected-description)" = "$want_desc" ] || fail "selected driver description"
[ "$(field device selected-section)" = "$want_sect" ] || fail "selected install section"
[ "$(field device selected-hardware-id)" = 'PCI\VEN_1AF4&DEV_1042' ] || fail "selected matching ID"
dev=$(field device device-instance-id)
[ -n "$dev" ] || fail "no device instance ID"
echo "selected: '$want_desc' ([$want_sect], models section of NTamd64) for $dev"
server_exit || fail "wineserver after phase 3"
echo "== registry and files after the device install"
infreg device "$tmp/pkg/aerovblk.inf" "$WINEPREFIX" "$dev" "$tmp/pkg" | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "device install result"
t4=$(date +%s); echo "device install: $((t4 - t3)) s; total $((t4 - t0)) s"
echo "aerovblk.inf under Wine's setupapi: services-only and device install as the INF says; 7 negative controls fail as expected"
