#!/usr/bin/python3
"""Expectations from an INF, and their verification in a Wine prefix's registry file.

Used by tests/checks/51a-wine-inf-install.sh. The registry is read from the prefix's
system.reg text file after wineserver has exited (and so saved it), without any Wine
code: what setupapi wrote is checked by something that does not share its code. The
INF is parsed here too, minimally and independently of tools/infcheck.py.

  infreg.py expect INF                       the expectations, one per line
  infreg.py mutate INF OUTDIR                the negative-control INF copies
  infreg.py absent SYSTEM_REG KEY            KEY (below HKLM) must not exist
  infreg.py service INF SYSTEM_REG           Services\\<svc> as the INF says
  infreg.py device INF PREFIX INSTANCE_ID PKGDIR
                                             the installed device (Enum key, class key,
                                             Device Parameters, service, copied files)
Exit 0 = all as expected; 1 = a problem (each printed as "FAIL ..."); 2 = usage/parse.
"""
import os
import re
import sys

ARCH = "NTamd64"
HWID = "PCI\\VEN_1AF4&DEV_1042"
# The project's required service settings (facts sheet section 9).
REQUIRED_SERVICE = {"ServiceType": 1, "StartType": 0, "ErrorControl": 1,
                    "LoadOrderGroup": "SCSI Miniport"}
MSI_KEY = "Interrupt Management\\MessageSignaledInterruptProperties"
SPSVCINST_ASSOCSERVICE = 0x2
FLG_ADDREG_KEYONLY = 0x10
FLG_ADDREG_TYPE_SZ = 0x0
FLG_ADDREG_TYPE_EXPAND_SZ = 0x20000
FLG_ADDREG_TYPE_DWORD = 0x10001

# ---------------------------------------------------------------- INF parsing


def strip_comment(line):
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            break
        out.append(ch)
    return "".join(out).strip()


def split_fields(text):
    fields, cur, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and text[i + 1:i + 2] == '"':
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


def split_key(line):
    """'key = value' -> (key, value); a line without '=' outside quotes -> (None, line)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "=" and not quoted:
            return line[:i].strip(), line[i + 1:].strip()
    return None, line


class Inf:
    def __init__(self, path):
        self.sections = {}   # lower name -> [(key or None, raw value text)]
        self.names = {}      # lower name -> name as written
        cur = None
        for raw in open(path, "rb").read().decode("latin-1").splitlines():
            line = strip_comment(raw)
            if not line:
                continue
            m = re.match(r"^\[([^\]]+)\]$", line)
            if m:
                cur = m.group(1).strip().lower()
                self.names.setdefault(cur, m.group(1).strip())
                self.sections.setdefault(cur, [])
                continue
            if cur is not None:
                self.sections[cur].append(split_key(line))
        self.strings = {}
        for k, v in self.sections.get("strings", []):
            if k is not None:
                self.strings[k.lower()] = split_fields(v)[0]

    def subst(self, text):
        def rep(m):
            if m.group(1) == "":
                return "%"
            return self.strings.get(m.group(1).lower(), m.group(0))
        return re.sub(r"%([^%]*)%", rep, text)

    def has(self, section):
        return section.lower() in self.sections

    def lines(self, section):
        return self.sections.get(section.lower(), [])

    def value(self, section, key):
        """Fields (strings substituted) of the first `key = ...` line, or None."""
        for k, v in self.lines(section):
            if k is not None and k.lower() == key.lower():
                return [self.subst(f) for f in split_fields(v)]
        return None

    def values(self, section, key):
        """All fields of all `key = ...` lines (AddReg = a, b and repeated AddReg lines)."""
        out = []
        for k, v in self.lines(section):
            if k is not None and k.lower() == key.lower():
                out += [self.subst(f) for f in split_fields(v) if f]
        return out


def intval(text):
    return int(text, 0)


class Expect:
    """What installing the INF's NTamd64 model for HWID must produce."""

    def __init__(self, path):
        self.problems = []
        inf = self.inf = Inf(path)
        ver = lambda key: (inf.value("Version", key) or [None])[0]
        self.cls = ver("Class")
        self.class_guid = ver("ClassGUID")
        self.catalog = ver("CatalogFile." + ARCH) or ver("CatalogFile")
        mfg = [(k, v) for k, v in inf.lines("Manufacturer") if k is not None]
        if not mfg:
            raise SystemExit("INF: no [Manufacturer] line")
        fields = split_fields(mfg[0][1])
        decos = [f for f in fields[1:] if f.lower().startswith(ARCH.lower())]
        if not decos:
            raise SystemExit("INF: [Manufacturer] has no %s decoration" % ARCH)
        self.models = "%s.%s" % (fields[0], decos[0])
        self.description = self.install = None
        for k, v in inf.lines(self.models):
            f = split_fields(v)
            if k is not None and any(h.lower() == HWID.lower() for h in f[1:]):
                self.description, self.install = inf.subst(k), f[0]
                break
        if self.install is None:
            raise SystemExit("INF: no %s line in [%s]" % (HWID, self.models))
        for deco in ("." + ARCH, ".NT", ""):
            if inf.has(self.install + deco):
                self.install = inf.names[(self.install + deco).lower()]
                break
        self.service = self.service_section = self.sys = None
        self.service_flags = 0
        for k, v in inf.lines(self.install + ".Services"):
            if k is not None and k.lower() == "addservice":
                f = [inf.subst(x) for x in split_fields(v)]
                flags = intval(f[1]) if len(f) > 1 and f[1] else 0
                if flags & SPSVCINST_ASSOCSERVICE:
                    self.service, self.service_flags = f[0], flags
                    self.service_section = f[2] if len(f) > 2 else None
        if self.service is None:
            raise SystemExit("INF: no AddService with SPSVCINST_ASSOCSERVICE in [%s.Services]"
                             % self.install)
        if not inf.has(self.service_section or ""):
            raise SystemExit("INF: service section [%s] missing" % self.service_section)
        s = self.service_section
        self.svc = {}
        for key in ("ServiceType", "StartType", "ErrorControl"):
            self.svc[key] = intval(inf.value(s, key)[0])
        for key in ("LoadOrderGroup", "DisplayName", "ServiceBinary"):
            v = inf.value(s, key)
            self.svc[key] = v[0] if v else None
        self.sys = re.split(r"[\\/]", self.svc["ServiceBinary"])[-1]
        self.service_addreg = self.addreg_lines(inf.values(s, "AddReg"))
        self.hw_addreg = self.addreg_lines(inf.values(self.install + ".HW", "AddReg"))

    def addreg_lines(self, sections):
        """HKR lines -> [(subkey, name or None for key-only, kind, value)]."""
        out = []
        for sec in sections:
            if not self.inf.has(sec):
                raise SystemExit("INF: AddReg section [%s] missing" % sec)
            for k, v in self.inf.lines(sec):
                text = v if k is None else k + "=" + v
                f = [self.inf.subst(x) for x in split_fields(text)] + [""] * 5
                root, sub, name, flags, val = f[0], f[1], f[2], f[3], f[4]
                if root.upper() != "HKR":
                    raise SystemExit("INF: [%s] %r: only HKR lines are checked" % (sec, text))
                flags = intval(flags) if flags else 0
                if flags & FLG_ADDREG_KEYONLY:
                    out.append((sub, None, "key", None))
                elif flags == FLG_ADDREG_TYPE_DWORD:
                    out.append((sub, name, "dword", intval(val)))
                elif flags == FLG_ADDREG_TYPE_SZ:
                    out.append((sub, name, "sz", val))
                elif flags == FLG_ADDREG_TYPE_EXPAND_SZ:
                    out.append((sub, name, "expand_sz", val))
                else:
                    raise SystemExit("INF: [%s] %r: AddReg flags 0x%x not handled by this check"
                                     % (sec, text, flags))
        return out


# ---------------------------------------------------------------- registry file


def unescape(s):
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x":
                m = re.match(r"[0-9a-fA-F]{1,4}", s[i + 2:])
                out.append(chr(int(m.group(0), 16)))
                i += 2 + len(m.group(0))
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(n, n))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_data(data):
    """Wine registry value text -> (type, value)."""
    if data.startswith('"'):
        return "sz", unescape(data[1:-1])
    m = re.match(r'^str\(([0-9a-f]+)\):"(.*)"$', data)
    if m:   # Wine's text form of REG_EXPAND_SZ (2) and REG_MULTI_SZ (7)
        text = unescape(m.group(2))
        if int(m.group(1), 16) == 7:
            return "multi_sz", [x for x in text.split("\0") if x]
        return ("expand_sz" if m.group(1) == "2" else "str(%s)" % m.group(1)), text
    if data.startswith("dword:"):
        return "dword", int(data[6:], 16)
    m = re.match(r"^hex(?:\(([0-9a-f]+)\))?:(.*)$", data)
    if m:
        raw = bytes(int(b, 16) for b in m.group(2).split(",") if b)
        kind = int(m.group(1), 16) if m.group(1) else 3
        if kind == 7:
            return "multi_sz", [x for x in raw.decode("utf-16-le").split("\0") if x]
        return "hex(%d)" % kind, raw
    return "?", data


class Registry:
    """system.reg (HKLM): lower-case key path -> {lower value name: (name, type, value)}."""

    def __init__(self, path):
        self.keys = {}
        cur = None
        pending = ""
        for line in open(path, encoding="utf-8", errors="replace").read().splitlines():
            if pending:
                line = pending + line.strip()
                pending = ""
            if line.endswith("\\") and not line.startswith("["):
                pending = line[:-1]
                continue
            if line.startswith("["):
                m = re.match(r'^\[(.*)\](?: \d+)?$', line)
                name = unescape(m.group(1)) if m else line
                cur = self.keys.setdefault(self.norm(name), {})
            elif cur is not None and (line.startswith('"') or line.startswith("@=")):
                if line.startswith("@="):
                    vname, data = "", line[2:]
                else:
                    m = re.match(r'^"((?:[^"\\]|\\.)*)"=(.*)$', line)
                    if not m:
                        continue
                    vname, data = unescape(m.group(1)), m.group(2)
                cur[vname.lower()] = (vname,) + parse_data(data)

    @staticmethod
    def norm(key):
        k = key.lower().strip("\\")
        return re.sub(r"^system\\controlset001\\", "system\\\\currentcontrolset\\\\", k)

    def key(self, path):
        return self.keys.get(self.norm(path))

    def exists(self, path):
        """Wine does not save a key with neither values nor subkeys' values: a key
        exists if it is saved or any key below it is."""
        k = self.norm(path)
        return k in self.keys or any(x.startswith(k + "\\") for x in self.keys)

    def get(self, path, name):
        k = self.key(path)
        if k is None:
            return None
        return k.get(name.lower())


# ---------------------------------------------------------------- checks


class Report:
    def __init__(self):
        self.bad = 0

    def ok(self, cond, what):
        print("%s %s" % ("ok  " if cond else "FAIL", what))
        if not cond:
            self.bad += 1
        return cond


def check_value(rep, reg, key, name, kind, want, label):
    got = reg.get(key, name)
    if got is None:
        rep.ok(False, "%s: %s\\%s missing (want %s %r)" % (label, key, name, kind, want))
        return
    _, gkind, gval = got
    if kind == "dword":
        rep.ok(gkind == "dword" and gval == want,
               "%s: %s\\%s = %s %r (INF: dword %d)" % (label, key, name, gkind, gval, want))
    else:
        rep.ok(gkind in (kind, "sz", "expand_sz") and gval == want,
               "%s: %s\\%s = %s %r (INF: %s %r)" % (label, key, name, gkind, gval, kind, want))


def check_addreg(rep, reg, base, lines, label):
    for sub, name, kind, val in lines:
        key = base + ("\\" + sub if sub else "")
        if kind == "key":
            rep.ok(reg.exists(key), "%s: key %s exists" % (label, key))
        else:
            check_value(rep, reg, key, name, kind, val, label)


SERVICES = "System\\CurrentControlSet\\Services"


def check_service(rep, exp, reg):
    key = SERVICES + "\\" + exp.service
    if not rep.ok(reg.exists(key), "service key %s exists" % key):
        return
    want = exp.svc
    for inf_key, reg_name in (("ServiceType", "Type"), ("StartType", "Start"),
                              ("ErrorControl", "ErrorControl")):
        check_value(rep, reg, key, reg_name, "dword", want[inf_key], "service " + inf_key)
    check_value(rep, reg, key, "Group", "sz", want["LoadOrderGroup"], "service LoadOrderGroup")
    if want["DisplayName"] is not None:
        check_value(rep, reg, key, "DisplayName", "sz", want["DisplayName"], "service DisplayName")
    img = reg.get(key, "ImagePath")
    # Wine writes C:\windows\system32\drivers\<sys>; Windows system32\drivers\<sys>.
    rep.ok(img is not None and str(img[2]).lower().endswith("\\drivers\\" + exp.sys.lower()),
           "service ImagePath %r ends in \\drivers\\%s (ServiceBinary %s)"
           % (img and img[2], exp.sys, want["ServiceBinary"]))
    check_addreg(rep, reg, key, exp.service_addreg, "service AddReg")
    # Required whatever the INF says (a line dropped from the INF must fail here too).
    pnp = reg.get(key + "\\Parameters\\PnpInterface", "5")
    rep.ok(pnp is not None and pnp[1:] == ("dword", 1),
           "service Parameters\\PnpInterface\\5 = dword 1 (PCIBus)")


def check_device(rep, exp, reg, prefix, instance, pkgdir):
    key = "System\\CurrentControlSet\\Enum\\" + instance
    if not rep.ok(reg.exists(key), "device key %s exists" % key):
        return
    svc = reg.get(key, "Service")
    rep.ok(svc is not None and svc[2] == exp.service,
           "device Service = %r (INF AddService %s, flags 0x%x)"
           % (svc and svc[2], exp.service, exp.service_flags))
    hw = reg.get(key, "HardwareID")
    rep.ok(hw is not None and any(h.lower() == HWID.lower() for h in hw[2]),
           "device HardwareID %r contains %s" % (hw and hw[2], HWID))
    check_value(rep, reg, key, "ClassGUID", "sz", exp.class_guid, "device ClassGUID")
    check_value(rep, reg, key, "Class", "sz", exp.cls, "device Class")
    check_value(rep, reg, key, "DeviceDesc", "sz", exp.description, "device DeviceDesc (model)")
    drv = reg.get(key, "Driver")
    if rep.ok(drv is not None, "device Driver = %r" % (drv and drv[2])):
        ckey = "System\\CurrentControlSet\\Control\\Class\\" + drv[2]
        sec = reg.get(ckey, "InfSection")
        rep.ok(sec is not None and sec[2].lower() == exp.install.lower(),
               "class key %s InfSection = %r (INF install section %s)"
               % (ckey, sec and sec[2], exp.install))
    check_addreg(rep, reg, key + "\\Device Parameters", exp.hw_addreg, ".HW AddReg")
    msi = reg.get(key + "\\Device Parameters\\" + MSI_KEY, "MSISupported")
    rep.ok(msi is not None and msi[1:] == ("dword", 1),
           "device Device Parameters\\%s\\MSISupported = dword 1" % MSI_KEY)
    check_service(rep, exp, reg)
    win = os.path.join(prefix, "drive_c", "windows")
    for src, dst in ((exp.sys, os.path.join(win, "system32", "drivers", exp.sys)),):
        same = os.path.exists(dst) and open(dst, "rb").read() == \
            open(os.path.join(pkgdir, src), "rb").read()
        rep.ok(same, "CopyFiles: %s is the packaged %s" % (dst[len(prefix):], src))
    cats = []
    for root, _, files in os.walk(os.path.join(win, "system32", "catroot")):
        cats += [os.path.join(root, f) for f in files if f.lower() == exp.catalog.lower()]
    same = any(open(c, "rb").read() == open(os.path.join(pkgdir, exp.catalog), "rb").read()
               for c in cats)
    rep.ok(same, "catalog %s copied into catroot" % exp.catalog)


# ---------------------------------------------------------------- negatives


def mutations(exp, text):
    """(name, old, new, expected error): one INF copy each; old must occur exactly once."""
    nl = "\r\n" if "\r\n" in text else "\n"
    sig = re.search(r"(?im)^Signature\s*=\s*\"\$Windows NT\$\"", text)
    svc = exp.service_section
    stype = re.search(r"(?im)^ServiceType\s*=\s*\S+", text)
    return [
        ("signature", sig and sig.group(0), sig and sig.group(0).replace("NT$", "XP$"),
         "0xE0000100"),
        ("service-section", "[%s]" % svc, "[%s]" % (svc[:-2] + svc[-1] + svc[-2]), "0xE0000217"),
        ("servicetype-line", stype and stype.group(0) + text[stype.end():].split(nl)[0] + nl,
         "", "0xE0000217"),
        ("servicetype-value", stype and stype.group(0),
         stype and stype.group(0).rsplit("=", 1)[0] + "=", "0x00000057"),
    ]


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "expect" and len(args) == 1:
        e = Expect(args[0])
        print("models section: %s; %s -> %r, install section %s"
              % (e.models, HWID, e.description, e.install))
        print("class: %s %s; catalog: %s" % (e.cls, e.class_guid, e.catalog))
        print("service: %s (flags 0x%x) from [%s]: %s; binary %s"
              % (e.service, e.service_flags, e.service_section, e.svc, e.sys))
        print("service AddReg: %s" % e.service_addreg)
        print(".HW AddReg: %s" % e.hw_addreg)
        bad = 0
        for k, v in REQUIRED_SERVICE.items():
            if e.svc[k] != v:
                print("FAIL INF %s = %r, the project requires %r" % (k, e.svc[k], v))
                bad += 1
        return 1 if bad else 0
    if cmd == "mutate" and len(args) == 2:
        e = Expect(args[0])
        text = open(args[0], "rb").read().decode("latin-1")
        bad = 0
        for name, old, new, err in mutations(e, text):
            if not old or text.count(old) != 1:
                print("FAIL mutation %s: its text %r is not in the INF exactly once" % (name, old))
                bad += 1
                continue
            d = os.path.join(args[1], name)
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, os.path.basename(args[0])), "wb").write(
                text.replace(old, new).encode("latin-1"))
            print("%s %s %r -> %r" % (name, err, old.strip(), new.strip()))
        return 1 if bad else 0
    if cmd == "absent" and len(args) == 2:
        reg = Registry(args[0])
        present = [k for k in reg.keys if k == Registry.norm(args[1])
                   or k.startswith(Registry.norm(args[1]) + "\\")]
        for k in present:
            print("FAIL present: %s" % k)
        if not present:
            print("ok   absent: %s" % args[1])
        return 1 if present else 0
    if cmd == "service" and len(args) == 2:
        rep = Report()
        check_service(rep, Expect(args[0]), Registry(args[1]))
        return 1 if rep.bad else 0
    if cmd == "device" and len(args) == 4:
        rep = Report()
        prefix = args[1]
        check_device(rep, Expect(args[0]), Registry(os.path.join(prefix, "system.reg")),
                     prefix, args[2], args[3])
        return 1 if rep.bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
