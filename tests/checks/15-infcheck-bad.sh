#!/usr/bin/env bash
# Every tools/infcheck.py rule can fail, and every way it can: one mutation of
# driver/aerovblk.inf per sub-condition of every rule, each rejected with its rule AND
# the message of that sub-condition ("exact": and no other rule). A mutation whose text
# is no longer in the INF fails the test, so the cases follow the INF. Every fail(...)
# call in infcheck.py must be produced by at least one case, so a rule added without a
# bad input fails this check too.
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 - <<'PY'
import ast, os, re, subprocess, sys
src = open("driver/aerovblk.inf", "rb").read().decode("ascii")
out = "out/pe-tests/inf"
os.makedirs(out, exist_ok=True)
NL = "\r\n" if "\r\n" in src else "\n"
# The DriverVer line as it is (its value follows VERSION): cases replace the whole line.
m = re.search(r"^DriverVer\s*=[^\r\n]*", src, re.M)
DV = m.group(0) if m else "DriverVer (missing from driver/aerovblk.inf)"
def driverver(value):
    return "DriverVer   = " + value
PNP = '"Parameters\\PnpInterface", "5", 0x00010001, 0x00000001'
MSI = 'HKR, "Interrupt Management\\MessageSignaledInterruptProperties", '
ADDSVC = "AddService = aerovblk, 0x00000002, aerovblk_Service, aerovblk_EventLog"
CASES = [  # (name, rule, exact, old, new, message regex searched in the detail)
    # syntax
    ("non-ascii", "syntax", True, 'Provider    = "Aero"', 'Provider    = "A\u00e9ro"', r"^not ASCII"),
    ("unterminated-quote", "syntax", True, 'DiskName    = "aerovblk installation disk"',
     'DiskName    = "aerovblk installation disk', r"^line \d+: unterminated quote"),
    ("bad-section-header", "syntax", True, "[Strings]", "[Unused" + NL + "[Strings]", r"^line \d+: bad section header '\[Unused'"),
    ("line-outside-section", "syntax", True, "[Version]", "Stray = 1" + NL + "[Version]", r"^line \d+: outside any section"),
    # version
    ("no-version-section", "version", False, "[Version]", "[Versiom]", r"^no \[Version\] section"),
    ("signature-missing", "version", True, 'Signature   = "$Windows NT$"' + NL, "", r"^Signature None, want"),
    ("signature-wrong", "version", True, '"$Windows NT$"', '"$Windows 95$"', r"^Signature '\"\$Windows 95\$\"', want"),
    ("class", "version", True, "Class       = SCSIAdapter", "Class       = DiskDrive", r"^Class 'DiskDrive', want SCSIAdapter"),
    ("classguid", "version", True, "{4D36E97B-E325-11CE-BFC1-08002BE10318}", "{4D36E967-E325-11CE-BFC1-08002BE10318}", r"^ClassGUID '\{4D36E967"),
    ("provider-missing", "version", True, "Provider    = %Provider%" + NL, "", r"^Provider missing"),
    ("provider-empty", "version", True, "Provider    = %Provider%", "Provider    =", r"^Provider missing"),
    ("catalog", "version", True, "CatalogFile = aerovblk.cat", "CatalogFile = viostor.cat", r"^CatalogFile 'viostor\.cat', want"),
    # driverver
    ("driverver-missing", "driverver", True, DV + NL, "", r"^DriverVer None is not mm/dd/yyyy"),
    ("driverver-iso-date", "driverver", True, DV, driverver("2026-11-25,1.0.0.0"), r"^DriverVer '2026-11-25,1\.0\.0\.0' is not mm/dd/yyyy"),
    ("driverver-one-digit", "driverver", True, DV, driverver("1/5/2026,1.0.0.0"), r"^DriverVer '1/5/2026,1\.0\.0\.0' is not mm/dd/yyyy"),
    ("driverver-month-13", "driverver", True, DV, driverver("13/25/2026,1.0.0.0"), r"^DriverVer date 13/25/2026 is not a real date"),
    ("driverver-feb-30", "driverver", True, DV, driverver("02/30/2026,1.0.0.0"), r"^DriverVer date 02/30/2026 is not a real date"),
    ("driverver-zero", "driverver", True, DV, driverver("11/25/2026,0.0.0.0"), r"^DriverVer version 0\.0\.0\.0 is invalid"),
    ("driverver-part-65535", "driverver", True, DV, driverver("11/25/2026,1.0.65535.0"), r"^DriverVer version part above 65534"),
    # strings
    ("undefined-string", "strings", True, NL + "DeviceDesc  = ", NL + "DeviceDescX = ", r"^line \d+: %DeviceDesc% has no \[Strings\] entry"),
    # sections
    ("missing-manufacturer", "sections", False, "[Manufacturer]", "[Manufacturez]", r"^\[Manufacturer\] \(referenced by the INF format\) does not exist"),
    ("missing-models-amd64", "sections", True, "[Models.NTamd64]", "[Modelz.NTamd64]", r"^\[Models\.NTamd64\] \(referenced by \[Manufacturer\]\)"),
    ("missing-install-section", "sections", False, "[aerovblk_Inst]", "[aerovblk_Instz]", r"^\[aerovblk_Inst\] \(referenced by a models section\)"),
    ("missing-copyfiles-section", "sections", False, "[aerovblk_CopyFiles]", "[aerovblk_CopyFilez]", r"^\[aerovblk_CopyFiles\] \(referenced by CopyFiles in \[aerovblk_Inst\]\)"),
    ("missing-delreg-section", "sections", True, "CopyFiles = aerovblk_CopyFiles", "CopyFiles = aerovblk_CopyFiles" + NL + "DelReg = aerovblk_NoSuchDelReg",
     r"^\[aerovblk_NoSuchDelReg\] \(referenced by DelReg in \[aerovblk_Inst\]\)"),
    ("missing-renfiles-section", "sections", True, "CopyFiles = aerovblk_CopyFiles", "CopyFiles = aerovblk_CopyFiles" + NL + "RenFiles = aerovblk_NoSuchRen",
     r"^\[aerovblk_NoSuchRen\] \(referenced by RenFiles in \[aerovblk_Inst\]\)"),
    ("missing-delfiles-section", "sections", True, "CopyFiles = aerovblk_CopyFiles", "CopyFiles = aerovblk_CopyFiles" + NL + "DelFiles = aerovblk_NoSuchDel",
     r"^\[aerovblk_NoSuchDel\] \(referenced by DelFiles in \[aerovblk_Inst\]\)"),
    ("missing-hw-addreg", "sections", False, "[aerovblk_Msi_AddReg]", "[aerovblk_Msi_AddRegz]", r"^\[aerovblk_Msi_AddReg\] \(referenced by AddReg in \[aerovblk_Inst\.HW\]\)"),
    ("missing-services-section", "sections", False, "[aerovblk_Inst.Services]", "[aerovblk_Inst.Servicez]", r"^\[aerovblk_Inst\.Services\] \(referenced by install section aerovblk_Inst\)"),
    ("addservice-no-install-section", "sections", True, ADDSVC, "AddService = aerovblk, 0x00000002", r"^AddService aerovblk names no service-install section"),
    ("missing-service-section", "sections", False, "[aerovblk_Service]", "[aerovblk_Servicez]", r"^\[aerovblk_Service\] \(referenced by AddService\)"),
    ("missing-service-addreg", "sections", False, "[aerovblk_Service_AddReg]", "[aerovblk_Service_AddRegz]", r"^\[aerovblk_Service_AddReg\] \(referenced by AddReg in \[aerovblk_Service\]\)"),
    ("missing-eventlog-section", "sections", True, "[aerovblk_EventLog]", "[aerovblk_EventLogz]", r"^\[aerovblk_EventLog\] \(referenced by AddService event-log section\)"),
    ("missing-eventlog-addreg", "sections", True, "[aerovblk_EventLog_AddReg]", "[aerovblk_EventLog_AddRegz]", r"^\[aerovblk_EventLog_AddReg\] \(referenced by AddReg in \[aerovblk_EventLog\]\)"),
    ("missing-destinationdirs-section", "sections", True, "[DestinationDirs]", "[DestinationDirs]" + NL + "aerovblk_NoSuchFiles = 12",
     r"^\[aerovblk_NoSuchFiles\] \(referenced by \[DestinationDirs\]\)"),
    ("missing-sourcedisksnames", "sections", True, "[SourceDisksNames]" + NL + '1 = %DiskName%,,,""' + NL, "", r"^\[SourceDisksNames\] missing"),
    # hwid
    ("no-amd64-decoration", "hwid", True, "%Mfg% = Models, NTx86, NTamd64", "%Mfg% = Models, NTx86", r"^\[Manufacturer\] %Mfg% lacks decoration\(s\) NTamd64$"),
    ("no-x86-decoration", "hwid", True, "%Mfg% = Models, NTx86, NTamd64", "%Mfg% = Models, NTamd64", r"^\[Manufacturer\] %Mfg% lacks decoration\(s\) NTx86$"),
    ("amd64-wrong-hwid", "hwid", True, "[Models.NTamd64]" + NL + "%DeviceDesc% = aerovblk_Inst, PCI\\VEN_1AF4&DEV_1042",
     "[Models.NTamd64]" + NL + "%DeviceDesc% = aerovblk_Inst, PCI\\VEN_1AF4&DEV_1001", r"^\[Models\.NTamd64\] does not bind PCI"),
    ("no-model-binds", "hwid", False, "%Mfg% = Models, NTx86, NTamd64" + NL, "", r"^no model binds any install section"),
    # binary
    ("service-binary", "binary", True, "ServiceBinary  = %12%\\aerovblk.sys", "ServiceBinary  = %12%\\viostor.sys", r"^\[aerovblk_Service\] ServiceBinary = '%12%\\\\viostor\.sys'"),
    ("copyfiles-lacks-sys", "binary", True, "[aerovblk_CopyFiles]" + NL + "aerovblk.sys", "[aerovblk_CopyFiles]" + NL + "viostor.sys",
     r"^aerovblk\.sys is not copied by any CopyFiles section"),
    ("source-disks-file", "binary", True, "aerovblk.sys = 1,,", "aerovblk2.sys = 1,,", r"^aerovblk\.sys is not in \[SourceDisksFiles\]"),
    # service
    ("no-addservice", "service", True, ADDSVC, ADDSVC.replace("= aerovblk,", "= viostor,"), r"^no AddService = aerovblk"),
    ("assoc-flag", "service", True, "AddService = aerovblk, 0x00000002,", "AddService = aerovblk, 0x00000000,", r"lack SPSVCINST_ASSOCSERVICE"),
    ("flags-not-a-number", "service", True, "AddService = aerovblk, 0x00000002,", "AddService = aerovblk, two,", r"^AddService aerovblk flags 'two' are not a number"),
    ("service-type", "service", True, "ServiceType    = 1", "ServiceType    = 2", r"^\[aerovblk_Service\] ServiceType = '2', want 1"),
    ("start-type", "service", True, "StartType      = 0", "StartType      = 3", r"^\[aerovblk_Service\] StartType = '3', want 0"),
    ("error-control", "service", True, "ErrorControl   = 1", "ErrorControl   = 0", r"^\[aerovblk_Service\] ErrorControl = '0', want 1"),
    ("group", "service", True, "LoadOrderGroup = SCSI Miniport", "LoadOrderGroup = SCSI miniport", r"^\[aerovblk_Service\] LoadOrderGroup = 'SCSI miniport'"),
    ("group-missing", "service", True, "LoadOrderGroup = SCSI Miniport" + NL, "", r"^\[aerovblk_Service\] LoadOrderGroup = None"),
    # pnpinterface: each part of HKR, "Parameters\PnpInterface", "5", 0x00010001 (REG_DWORD), 1
    ("pnpinterface-name", "pnpinterface", True, PNP, PNP.replace('"5"', '"1"'), r"does not set Parameters\\PnpInterface \"5\" = 1"),
    ("pnpinterface-value-0", "pnpinterface", True, PNP, PNP.replace("0x00010001, 0x00000001", "0x00010001, 0x00000000"), r"does not set Parameters"),
    ("pnpinterface-value-nan", "pnpinterface", True, PNP, PNP.replace("0x00010001, 0x00000001", "0x00010001, one"), r"does not set Parameters"),
    ("pnpinterface-reg-sz", "pnpinterface", True, PNP, PNP.replace("0x00010001, 0x00000001", "0x00000000, 0x00000001"), r"does not set Parameters"),
    ("pnpinterface-key", "pnpinterface", True, PNP, PNP.replace("PnpInterface", "PnpInterfaces"), r"does not set Parameters"),
    ("pnpinterface-hklm", "pnpinterface", True, "HKR, " + PNP, "HKLM, " + PNP, r"does not set Parameters"),
    # msi
    ("hw-section-missing", "msi", True, "[aerovblk_Inst.HW]", "[aerovblk_Inst.HX]", r"^\[aerovblk_Inst\.HW\] missing"),
    ("msi-off", "msi", True, "MSISupported, 0x00010001, 1", "MSISupported, 0x00010001, 0", r"^MSISupported = 0 in the \.HW AddReg"),
    ("msi-not-a-number", "msi", True, "MSISupported, 0x00010001, 1", "MSISupported, 0x00010001, yes", r"^MSISupported = None in the \.HW AddReg"),
    ("msi-hklm", "msi", True, MSI + "MSISupported", MSI.replace("HKR,", "HKLM,") + "MSISupported", r"^MSISupported = None in the \.HW AddReg"),
    ("msi-one-message", "msi", True, "MessageNumberLimit, 0x00010001, 2", "MessageNumberLimit, 0x00010001, 1", r"^MessageNumberLimit = 1, want >= 2"),
    ("msi-limit-missing", "msi", True, MSI + "MessageNumberLimit, 0x00010001, 2" + NL, "", r"^MessageNumberLimit = None, want >= 2"),
    ("msi-limit-wrong-key", "msi", True, MSI + "MessageNumberLimit", MSI.replace("MessageSignaledInterruptProperties", "MessageSignaledInterrupts") + "MessageNumberLimit",
     r"^MessageNumberLimit = None, want >= 2"),
]
LINE = re.compile(r"^FAIL ([a-z]+): (.*)$")
bad, seen = 0, []
for name, rule, exact, old, new, regex in CASES:
    if src.count(old) != 1:
        print("FAIL: case %s: text %r occurs %d times in driver/aerovblk.inf" % (name, old, src.count(old)))
        bad += 1
        continue
    path = os.path.join(out, name + ".inf")
    open(path, "wb").write(src.replace(old, new).encode("utf-8"))
    r = subprocess.run(["/usr/bin/python3", "tools/infcheck.py", path], capture_output=True, text=True)
    fails = []
    for l in r.stdout.splitlines():
        m = LINE.match(l)
        if m:
            d = m.group(2)
            fails.append((m.group(1), d[len(path) + 2:] if d.startswith(path + ": ") else d))
    seen += fails
    got = sorted({f[0] for f in fails})
    hit = [d for f, d in fails if f == rule and re.search(regex, d)]
    ok = r.returncode == 1 and hit and (not exact or got == [rule])
    print("%s %-32s want %-12s got %-22s %s" % ("ok  " if ok else "FAIL", name, rule, " ".join(got),
                                                 hit[0][:60] if hit else "(no message matching /%s/)" % regex))
    if not ok:
        print(r.stdout + r.stderr)
        bad += 1
# Every fail("rule", "message" ...) call in infcheck.py is produced by some case above.
sites = []
for node in ast.walk(ast.parse(open("tools/infcheck.py").read())):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "fail"
            and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):
        msg = node.args[1]
        if isinstance(msg, ast.BinOp) and isinstance(msg.op, ast.Mod):
            msg = msg.left
        if isinstance(msg, ast.Constant) and isinstance(msg.value, str):
            parts = re.split(r"(%%|%[-0-9.]*[a-z])", msg.value)
            rx = "".join("%" if p == "%%" else ".*" if p.startswith("%") else re.escape(p) for p in parts)
        else:
            rx = ".*"
        sites.append((node.lineno, node.args[0].value, rx))
for ln, rule, rx in sites:
    if not any(r == rule and re.fullmatch(rx, d) for r, d in seen):
        print("FAIL: tools/infcheck.py:%d: no bad INF produces this '%s' failure (/%s/)" % (ln, rule, rx))
        bad += 1
print("%d cases, %d failure sites in infcheck.py, %d problems" % (len(CASES), len(sites), bad))
sys.exit(1 if bad else 0)
PY
