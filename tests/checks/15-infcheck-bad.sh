#!/usr/bin/env bash
# Every tools/infcheck.py rule can fail: one mutation of driver/aerovblk.inf per case,
# each rejected with the named rule ("exact": no other rule fails). A mutation whose
# text is no longer in the INF fails the test, so the cases follow the INF.
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 - <<'PY'
import os, subprocess, sys
src = open("driver/aerovblk.inf", "rb").read().decode("ascii")
out = "out/pe-tests/inf"
os.makedirs(out, exist_ok=True)
NL = "\r\n" if "\r\n" in src else "\n"
CASES = [  # (name, rule, exact, old, new)
    ("non-ascii", "syntax", True, "Provider    = \"Aero\"", "Provider    = \"A\u00e9ro\""),
    ("class", "version", True, "Class       = SCSIAdapter", "Class       = DiskDrive"),
    ("classguid", "version", True, "{4D36E97B-E325-11CE-BFC1-08002BE10318}", "{4D36E967-E325-11CE-BFC1-08002BE10318}"),
    ("catalog", "version", True, "CatalogFile = aerovblk.cat", "CatalogFile = viostor.cat"),
    ("driverver-iso-date", "driverver", True, "DriverVer   = 11/25/2026,", "DriverVer   = 2026-11-25,"),
    ("driverver-month-13", "driverver", True, "DriverVer   = 11/25/2026,", "DriverVer   = 13/25/2026,"),
    ("driverver-one-digit", "driverver", True, "DriverVer   = 11/25/2026,", "DriverVer   = 1/5/2026,"),
    ("driverver-zero", "driverver", True, "DriverVer   = 11/25/2026,1.0.0.0", "DriverVer   = 11/25/2026,0.0.0.0"),
    ("driverver-part-too-big", "driverver", True, "DriverVer   = 11/25/2026,1.0.0.0", "DriverVer   = 11/25/2026,1.0.70000.0"),
    ("missing-copyfiles-section", "sections", False, "[aerovblk_CopyFiles]", "[aerovblk_CopyFilez]"),
    ("missing-eventlog-addreg", "sections", True, "[aerovblk_EventLog_AddReg]", "[aerovblk_EventLog_AddRegz]"),
    ("missing-service-section", "sections", False, "[aerovblk_Service]", "[aerovblk_Servicez]"),
    ("missing-models-amd64", "sections", True, "[Models.NTamd64]", "[Modelz.NTamd64]"),
    ("undefined-string", "strings", True, NL + "DeviceDesc  = ", NL + "DeviceDescX = "),
    ("no-amd64-decoration", "hwid", False, "%Mfg% = Models, NTx86, NTamd64", "%Mfg% = Models, NTx86"),
    ("amd64-wrong-hwid", "hwid", True, "[Models.NTamd64]" + NL + "%DeviceDesc% = aerovblk_Inst, PCI\\VEN_1AF4&DEV_1042",
                                 "[Models.NTamd64]" + NL + "%DeviceDesc% = aerovblk_Inst, PCI\\VEN_1AF4&DEV_1001"),
    ("service-binary", "binary", True, "ServiceBinary  = %12%\\aerovblk.sys", "ServiceBinary  = %12%\\viostor.sys"),
    ("source-disks-file", "binary", True, "aerovblk.sys = 1,,", "aerovblk2.sys = 1,,"),
    ("start-type", "service", True, "StartType      = 0", "StartType      = 3"),
    ("error-control", "service", True, "ErrorControl   = 1", "ErrorControl   = 0"),
    ("service-type", "service", True, "ServiceType    = 1", "ServiceType    = 2"),
    ("group", "service", True, "LoadOrderGroup = SCSI Miniport", "LoadOrderGroup = SCSI miniport"),
    ("assoc-flag", "service", True, "AddService = aerovblk, 0x00000002,", "AddService = aerovblk, 0x00000000,"),
    ("pnpinterface", "pnpinterface", True, '"Parameters\\PnpInterface", "5", 0x00010001, 0x00000001',
                                          '"Parameters\\PnpInterface", "1", 0x00010001, 0x00000001'),
    ("msi-off", "msi", True, "MSISupported, 0x00010001, 1", "MSISupported, 0x00010001, 0"),
    ("msi-one-message", "msi", True, "MessageNumberLimit, 0x00010001, 2", "MessageNumberLimit, 0x00010001, 1"),
]
bad = 0
for name, rule, exact, old, new in CASES:
    if src.count(old) != 1:
        print("FAIL: case %s: text %r occurs %d times in driver/aerovblk.inf" % (name, old, src.count(old)))
        bad += 1
        continue
    path = os.path.join(out, name + ".inf")
    open(path, "wb").write(src.replace(old, new).encode("utf-8"))
    r = subprocess.run(["/usr/bin/python3", "tools/infcheck.py", path], capture_output=True, text=True)
    got = sorted({l.split(":")[0][5:] for l in r.stdout.splitlines() if l.startswith("FAIL ")})
    ok = r.returncode == 1 and rule in got and (not exact or got == [rule])
    print("%s %-28s want %-12s got %s" % ("ok  " if ok else "FAIL", name, rule, " ".join(got)))
    if not ok:
        print(r.stdout)
        bad += 1
print("%d cases, %d problems" % (len(CASES), bad))
sys.exit(1 if bad else 0)
PY
