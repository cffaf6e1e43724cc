#!/usr/bin/python3
"""INF checker for aerovblk.inf (Windows 7 SP1 boot-start SCSIAdapter miniport).

  infcheck.py [--sys aerovblk.sys] [--service aerovblk] INF

Prints "FAIL <rule>: <detail>" per violation and exits 1 if there is any.
Rules (rule name: what fails it), from issue 2 section 5 and facts sheet section 9:
  syntax      not ASCII, a line outside any section, an unterminated quote
  version     [Version]: Signature, Class=SCSIAdapter, its ClassGUID, Provider,
              CatalogFile=aerovblk.cat
  driverver   DriverVer not "mm/dd/yyyy,w.x.y.z" (two-digit month/day, real date,
              four-digit year, each part 0..65534, not 0.0.0.0)
  sections    a referenced section (models, install, .HW/.Services, CopyFiles, AddReg,
              DelReg, AddService service/event-log sections, DestinationDirs) is missing
  strings     a %token% used without a [Strings] entry
  hwid        NTx86 or NTamd64 decoration missing, or a models section without
              PCI\\VEN_1AF4&DEV_1042
  binary      ServiceBinary is not %12%\\<sys>, or <sys> not in CopyFiles / SourceDisksFiles
  service     AddService name/flags, ServiceType 1, StartType 0, ErrorControl 1,
              LoadOrderGroup "SCSI Miniport" (exact)
  pnpinterface  Parameters\\PnpInterface "5" not set to 1 by the service's AddReg
  msi         MSISupported != 1 or MessageNumberLimit < 2 in the .HW AddReg
"""
import argparse
import datetime
import re
import sys

HWID = "PCI\\VEN_1AF4&DEV_1042"
SCSI_ADAPTER_GUID = "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
ARCHES = ("NTx86", "NTamd64")
MSI_KEY = "Interrupt Management\\MessageSignaledInterruptProperties"


def strip_comment(line):
    """Drop a ';' comment that is not inside double quotes."""
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            break
        out.append(ch)
    return "".join(out).strip(), quoted


def split_fields(text):
    """Comma-separated INF fields; quotes removed, "" inside quotes kept as one quote."""
    fields, cur, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                cur.append('"')
                i += 2
                continue
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    fields.append("".join(cur).strip())
    return fields


class Inf:
    def __init__(self, path, fail):
        self.sections = {}      # lower name -> (display name, [(key or None, value, lineno)])
        self.raw_lines = []     # (lineno, text) without comments, for %token% checks
        raw = open(path, "rb").read()
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            fail("syntax", "not ASCII (byte %d); Windows 7 setup wants ASCII or UTF-16" % e.start)
            text = raw.decode("latin-1")
        current = None
        pending = ""
        for n, line in enumerate(text.splitlines(), 1):
            body, open_quote = strip_comment(line)
            if open_quote:
                fail("syntax", "line %d: unterminated quote" % n)
            if body.endswith("\\") and not body.endswith("\\\\"):
                pending += body[:-1]
                continue
            body, pending = pending + body, ""
            if not body:
                continue
            if body.startswith("["):
                if not body.endswith("]"):
                    fail("syntax", "line %d: bad section header %r" % (n, body))
                    continue
                name = body[1:-1].strip()
                current = self.sections.setdefault(name.lower(), (name, []))[1]
                continue
            if current is None:
                fail("syntax", "line %d: outside any section" % n)
                continue
            self.raw_lines.append((n, body))
            key, value = None, body
            m = re.match(r'^([^=",]+?)\s*=\s*(.*)$', body)
            if m:
                key, value = m.group(1).strip(), m.group(2).strip()
            current.append((key, value, n))

    def has(self, name):
        return name.lower() in self.sections

    def entries(self, name):
        return self.sections.get(name.lower(), (name, []))[1]

    def values(self, section, key):
        return [v for k, v, _ in self.entries(section) if k is not None and k.lower() == key.lower()]

    def value(self, section, key):
        vals = self.values(section, key)
        return vals[-1] if vals else None


def check(path, sys_name, service):
    failures = []

    def fail(rule, detail):
        failures.append((rule, detail))

    inf = Inf(path, fail)
    strings = {k.lower(): v for k, v, _ in inf.entries("Strings") if k}

    def expand(v):
        return re.sub(r"%([^%]+)%", lambda m: split_fields(strings.get(m.group(1).lower(), m.group(0)))[0], v)

    def need_section(name, why):
        if not inf.has(name):
            fail("sections", "[%s] (referenced by %s) does not exist" % (name, why))
            return False
        return True

    # [Version]
    if not inf.has("Version"):
        fail("version", "no [Version] section")
    sig = inf.value("Version", "Signature")
    if sig is None or split_fields(sig)[0].lower() not in ("$windows nt$", "$chicago$"):
        fail("version", "Signature %r, want \"$Windows NT$\"" % sig)
    if (inf.value("Version", "Class") or "").lower() != "scsiadapter":
        fail("version", "Class %r, want SCSIAdapter" % inf.value("Version", "Class"))
    if (inf.value("Version", "ClassGUID") or "").upper() != SCSI_ADAPTER_GUID:
        fail("version", "ClassGUID %r, want %s" % (inf.value("Version", "ClassGUID"), SCSI_ADAPTER_GUID))
    if not inf.value("Version", "Provider"):
        fail("version", "Provider missing")
    if (inf.value("Version", "CatalogFile") or "").lower() != "aerovblk.cat":
        fail("version", "CatalogFile %r, want aerovblk.cat" % inf.value("Version", "CatalogFile"))

    # DriverVer
    dv = inf.value("Version", "DriverVer")
    m = re.match(r"^(\d{2})/(\d{2})/(\d{4})\s*,\s*(\d+)\.(\d+)\.(\d+)\.(\d+)$", dv or "")
    if not m:
        fail("driverver", "DriverVer %r is not mm/dd/yyyy,w.x.y.z" % dv)
    else:
        mo, d, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        try:
            datetime.date(y, mo, d)
        except ValueError:
            fail("driverver", "DriverVer date %s is not a real date" % dv.split(",")[0])
        parts = [int(m.group(i)) for i in range(4, 8)]
        if any(p > 65534 for p in parts):
            fail("driverver", "DriverVer version part above 65534 in %r" % dv)
        if not any(parts):
            fail("driverver", "DriverVer version 0.0.0.0 is invalid")

    # %tokens%
    for n, body in inf.raw_lines:
        for tok in re.findall(r"%([^%\s]*)%", body.replace("%%", "")):
            if tok and not tok.isdigit() and tok.lower() not in strings:
                fail("strings", "line %d: %%%s%% has no [Strings] entry" % (n, tok))

    # [Manufacturer] -> models sections, per architecture
    install_sections = set()
    if not need_section("Manufacturer", "the INF format"):
        pass
    for key, value, _ in inf.entries("Manufacturer"):
        fields = split_fields(value)
        base, decorations = fields[0], [f for f in fields[1:] if f]
        missing = [a for a in ARCHES if a.lower() not in [d.lower() for d in decorations]]
        if missing:
            fail("hwid", "[Manufacturer] %s lacks decoration(s) %s" % (key, ", ".join(missing)))
        for deco in decorations:
            models = "%s.%s" % (base, deco)
            if not need_section(models, "[Manufacturer]"):
                continue
            ids = []
            for mkey, mval, _ in inf.entries(models):
                mf = split_fields(mval)
                install_sections.add(mf[0])
                ids += [i.upper() for i in mf[1:]]
            if HWID.upper() not in ids:
                fail("hwid", "[%s] does not bind %s" % (models, HWID))
    if not install_sections:
        fail("hwid", "no model binds any install section")

    # install sections and what they reference
    add_services = []
    hw_addregs = []
    copyfile_names = set()

    def directive_sections(section, why):
        for directive in ("CopyFiles", "AddReg", "DelReg", "Include", "Needs", "RenFiles", "DelFiles"):
            for v in inf.values(section, directive):
                for name in split_fields(v):
                    if not name or (directive == "CopyFiles" and name.startswith("@")):
                        if name.startswith("@"):
                            copyfile_names.add(name[1:].lower())
                        continue
                    if directive in ("Include", "Needs"):
                        continue
                    if need_section(name, "%s in [%s]" % (directive, section)) and directive == "CopyFiles":
                        for k, v2, _ in inf.entries(name):
                            copyfile_names.add(split_fields(k if k else v2)[0].lower())

    for inst in sorted(install_sections):
        if not need_section(inst, "a models section"):
            continue
        directive_sections(inst, "install")
        if inf.has(inst + ".HW"):
            directive_sections(inst + ".HW", "install .HW")
            for v in inf.values(inst + ".HW", "AddReg"):
                hw_addregs += [s for s in split_fields(v) if s]
        else:
            fail("msi", "[%s.HW] missing (MSI registry keys live there)" % inst)
        if need_section(inst + ".Services", "install section %s" % inst):
            for v in inf.values(inst + ".Services", "AddService"):
                add_services.append(split_fields(v))

    for name in [k for k, _, _ in inf.entries("DestinationDirs") if k and k.lower() != "defaultdestdir"]:
        need_section(name, "[DestinationDirs]")

    # services
    ours = [f for f in add_services if f and f[0].lower() == service.lower()]
    if not ours:
        fail("service", "no AddService = %s" % service)
    for f in ours:
        flags = f[1] if len(f) > 1 else ""
        try:
            if not int(flags, 0) & 0x2:
                fail("service", "AddService %s flags %s lack SPSVCINST_ASSOCSERVICE (0x2)" % (service, flags))
        except ValueError:
            fail("service", "AddService %s flags %r are not a number" % (service, flags))
        if len(f) < 3 or not f[2]:
            fail("sections", "AddService %s names no service-install section" % service)
            continue
        svc = f[2]
        if len(f) > 3 and f[3]:
            if need_section(f[3], "AddService event-log section"):
                directive_sections(f[3], "event log")
        if not need_section(svc, "AddService"):
            continue
        directive_sections(svc, "service")

        def num(key):
            v = inf.value(svc, key)
            try:
                return int(v, 0)
            except (TypeError, ValueError):
                return None
        for key, want in (("ServiceType", 1), ("StartType", 0), ("ErrorControl", 1)):
            if num(key) != want:
                fail("service", "[%s] %s = %r, want %d" % (svc, key, inf.value(svc, key), want))
        group = inf.value(svc, "LoadOrderGroup")
        if group is None or split_fields(group)[0] != "SCSI Miniport":
            fail("service", "[%s] LoadOrderGroup = %r, want \"SCSI Miniport\"" % (svc, group))
        binary = expand(inf.value(svc, "ServiceBinary") or "")
        if binary.lower() != ("%%12%%\\%s" % sys_name).replace("%%", "%").lower():
            fail("binary", "[%s] ServiceBinary = %r, want %%12%%\\%s" % (svc, binary, sys_name))

        # PnpInterface "5" = 1 in the service's AddReg
        found = False
        for v in inf.values(svc, "AddReg"):
            for reg in [s for s in split_fields(v) if s]:
                for k, line, _ in inf.entries(reg):
                    rf = split_fields(line if k is None else "%s=%s" % (k, line))
                    if (len(rf) >= 5 and rf[0].upper() == "HKR"
                            and rf[1].lower() == "parameters\\pnpinterface" and rf[2] == "5"):
                        try:
                            found = int(rf[4], 0) == 1 and int(rf[3], 0) == 0x00010001
                        except ValueError:
                            found = False
        if not found:
            fail("pnpinterface", "[%s] AddReg does not set Parameters\\PnpInterface \"5\" = 1 (REG_DWORD)" % svc)

    # the binary ships: CopyFiles and SourceDisksFiles carry it
    if sys_name.lower() not in copyfile_names:
        fail("binary", "%s is not copied by any CopyFiles section" % sys_name)
    sdf = [split_fields(k)[0].lower() for k, _, _ in inf.entries("SourceDisksFiles") if k]
    if sys_name.lower() not in sdf:
        fail("binary", "%s is not in [SourceDisksFiles]" % sys_name)
    if inf.has("SourceDisksFiles") and not inf.has("SourceDisksNames"):
        fail("sections", "[SourceDisksNames] missing")

    # MSI keys in the .HW AddReg sections
    msi = {}
    for reg in hw_addregs:
        for k, line, _ in inf.entries(reg):
            rf = split_fields(line if k is None else "%s=%s" % (k, line))
            if len(rf) >= 5 and rf[0].upper() == "HKR" and rf[1].lower() == MSI_KEY.lower():
                try:
                    msi[rf[2].lower()] = int(rf[4], 0)
                except ValueError:
                    msi[rf[2].lower()] = None
    if msi.get("msisupported") != 1:
        fail("msi", "MSISupported = %r in the .HW AddReg, want 1" % msi.get("msisupported"))
    if msi.get("messagenumberlimit") is None or msi["messagenumberlimit"] < 2:
        fail("msi", "MessageNumberLimit = %r, want >= 2 (config + request queue)" % msi.get("messagenumberlimit"))

    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sys", default="aerovblk.sys", help="the built driver file name")
    ap.add_argument("--service", default="aerovblk")
    ap.add_argument("inf")
    args = ap.parse_args()
    failures = check(args.inf, args.sys, args.service)
    for rule, detail in failures:
        print("FAIL %s: %s: %s" % (rule, args.inf, detail))
    if not failures:
        print("infcheck: %s OK" % args.inf)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
