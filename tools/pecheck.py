#!/usr/bin/python3
"""PE checker for aerovblk.sys, as strict as Windows 7's loader would be (and stricter).

  pecheck.py check --arch {x86,amd64} --def storport-<arch>.def [--map image.map]
                   [--inf aerovblk.inf] IMAGE
      Every rule below; prints "FAIL <rule>: <detail>" per violation, exit 1 if any.
      --map: a GNU ld map (-Map) or a link.exe / lld-link map (/map).
      --inf: also the rule `version` against that INF (the package build passes it).
  pecheck.py version --inf aerovblk.inf [--name ORIGINAL_FILENAME] IMAGE
      Only the rule `version`, for any PE image (aerovblk-query.exe); OriginalFilename
      must be --name (default: the image's file name).
  pecheck.py set-checksum IMAGE
      Compute the PE checksum and write it into the optional header (ld leaves 0).
  pecheck.py no-writable-data OBJECT...
      COFF objects: fail if any section that is writable at run time (.data, .bss,
      ...) has a nonzero size, naming the symbols in it. The driver keeps no mutable
      globals (docs/architecture.md); its state lives in the device extension.

Rules of `check` (rule name: what fails it):
  format        not a PE image pefile can parse
  machine       FileHeader.Machine is not i386 (x86) / AMD64 (amd64), or the optional
                header magic is not PE32 (x86) / PE32+ (amd64); nothing else is checked then
  subsystem     Subsystem is not NATIVE (1)
  subsysver     Subsystem or OS version above 6.1 (Windows 7)
  characteristics  IMAGE_FILE_DLL set, or EXECUTABLE_IMAGE clear
  alignment     SectionAlignment != 0x1000 or FileAlignment != 0x200
  imports       a DLL other than storport.sys, or no import table, or delay imports
  allowlist     an imported name not in the Windows 7 SP1 list (the .def), or by ordinal
  relocs        IMAGE_FILE_RELOCS_STRIPPED set, no base relocation directory, or no
                relocation in it (no block, or only IMAGE_REL_BASED_ABSOLUTE padding)
  checksum      CheckSum is 0 or differs from the computed one
  wx            a section both writable and executable
  entry         AddressOfEntryPoint is not DriverEntry (from --map), or outside code
  tls           a TLS directory or a .tls section
  exports       an export directory (a miniport exports nothing)
  version       (with --inf) no VS_VERSIONINFO resource; FILEVERSION/PRODUCTVERSION or
                the FileVersion/ProductVersion strings (every string table) differ from
                the INF's DriverVer version; CompanyName not the INF's Provider;
                FileDescription, ProductName or LegalCopyright empty; OriginalFilename
                not the file the INF installs (ServiceBinary) / --name; FILETYPE not
                VFT_DRV (native image) / VFT_APP; a driver's .rsrc section writable
"""
import argparse
import re
import struct
import sys

try:
    import pefile
except ImportError:  # pragma: no cover - environment problem, not a rule
    sys.stderr.write("pecheck: python3-pefile is missing (apt-get install python3-pefile)\n")
    sys.exit(2)

MACHINES = {"x86": 0x014C, "amd64": 0x8664}
IMAGE_SUBSYSTEM_NATIVE = 1
SCN_MEM_EXECUTE = 0x20000000
SCN_MEM_WRITE = 0x80000000
SCN_CNT_CODE = 0x00000020
SCN_LNK_INFO = 0x00000200
SCN_LNK_REMOVE = 0x00000800
FILE_RELOCS_STRIPPED = 0x0001
FILE_EXECUTABLE_IMAGE = 0x0002
FILE_DLL = 0x2000
WIN7_VERSION = (6, 1)


def read_def(path):
    """Export names from a .def file, undecorated (Name@N -> Name)."""
    names = set()
    in_exports = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split(";", 1)[0].strip()
            if not line:
                continue
            if line.upper().startswith("EXPORTS"):
                in_exports = True
                continue
            if line.upper().startswith("LIBRARY"):
                continue
            if in_exports:
                names.add(re.sub(r"@\d+$", "", line.split()[0]))
    if not names:
        raise SystemExit("pecheck: %s lists no exports" % path)
    return names


def map_symbol_rva(map_path, symbol, image_base):
    """Address of `symbol` from a link map, as an RVA. Two formats:
    GNU ld (-Map):   "                0x0000000140001000                DriverEntry"
    link.exe / lld-link (/map), "Publics by Value" table (the clang-cl check build,
    mk/clangcl.mk):  " 0001:00000060       _DriverEntry@8   0000000000011060     aerovblk.obj"
    (section:offset, name, Rva+Base, object)."""
    gnu = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+" + re.escape(symbol) + r"\s*$")
    msvc = re.compile(r"^\s*[0-9a-fA-F]{4}:[0-9a-fA-F]{8}\s+" + re.escape(symbol)
                      + r"\s+([0-9a-fA-F]+)(\s|$)")
    with open(map_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = gnu.match(line) or msvc.match(line)
            if m:
                return int(m.group(1), 16) - image_base
    return None


class Checker:
    def __init__(self, path, arch, allow, map_path, inf=None):
        self.path = path
        self.arch = arch
        self.allow = allow
        self.map_path = map_path
        self.inf = inf
        self.failures = []

    def fail(self, rule, detail):
        self.failures.append((rule, detail))

    def run(self):
        try:
            pe = pefile.PE(self.path, fast_load=True)
            pe.parse_data_directories(directories=[
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_BASERELOC"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_TLS"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
            ])
        except pefile.PEFormatError as e:
            self.fail("format", str(e))
            return self.failures
        fh, oh = pe.FILE_HEADER, pe.OPTIONAL_HEADER

        if fh.Machine != MACHINES[self.arch]:
            self.fail("machine", "Machine 0x%04x, want 0x%04x for %s"
                      % (fh.Machine, MACHINES[self.arch], self.arch))
        want_magic = 0x20B if self.arch == "amd64" else 0x10B
        if oh.Magic != want_magic:
            self.fail("machine", "optional header magic 0x%x, want 0x%x" % (oh.Magic, want_magic))
            # The rest of the optional header was read in the other layout (PE32 vs PE32+):
            # none of its fields mean anything, and the data directories may be cut short.
            return self.failures

        if oh.Subsystem != IMAGE_SUBSYSTEM_NATIVE:
            self.fail("subsystem", "Subsystem %d, want NATIVE (1)" % oh.Subsystem)
        for what, ver in (("subsystem", (oh.MajorSubsystemVersion, oh.MinorSubsystemVersion)),
                          ("OS", (oh.MajorOperatingSystemVersion, oh.MinorOperatingSystemVersion))):
            if ver > WIN7_VERSION:
                self.fail("subsysver", "%s version %d.%d is newer than Windows 7 (6.1)"
                          % (what, ver[0], ver[1]))

        if fh.Characteristics & FILE_DLL:
            self.fail("characteristics", "IMAGE_FILE_DLL set: a driver is not a DLL")
        if not fh.Characteristics & FILE_EXECUTABLE_IMAGE:
            self.fail("characteristics", "IMAGE_FILE_EXECUTABLE_IMAGE clear")
        if fh.Characteristics & FILE_RELOCS_STRIPPED:
            self.fail("relocs", "IMAGE_FILE_RELOCS_STRIPPED set")

        if oh.SectionAlignment != 0x1000 or oh.FileAlignment != 0x200:
            self.fail("alignment", "SectionAlignment 0x%x / FileAlignment 0x%x, want 0x1000 / 0x200"
                      % (oh.SectionAlignment, oh.FileAlignment))

        self.check_imports(pe)

        relocs = getattr(pe, "DIRECTORY_ENTRY_BASERELOC", None)
        dd_reloc = oh.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_BASERELOC"]]
        # Blocks whose entries are all IMAGE_REL_BASED_ABSOLUTE (type 0, padding) relocate
        # nothing: the image is as unrelocatable as without the directory.
        fixups = [e for b in relocs or [] for e in b.entries if e.type != 0]
        if not dd_reloc.VirtualAddress or not dd_reloc.Size or not fixups:
            self.fail("relocs", "no base relocations: the kernel must be able to relocate the image")

        computed = pe.generate_checksum()
        if oh.CheckSum == 0 or oh.CheckSum != computed:
            self.fail("checksum", "CheckSum 0x%08x, computed 0x%08x" % (oh.CheckSum, computed))

        code_ranges = []
        for s in pe.sections:
            name = s.Name.rstrip(b"\0").decode("ascii", "replace")
            if (s.Characteristics & SCN_MEM_WRITE) and (s.Characteristics & SCN_MEM_EXECUTE):
                self.fail("wx", "section %s is writable and executable" % name)
            if s.Characteristics & (SCN_MEM_EXECUTE | SCN_CNT_CODE):
                code_ranges.append((s.VirtualAddress, s.VirtualAddress + max(s.Misc_VirtualSize, 1)))
            if name == ".tls":
                self.fail("tls", "section .tls present")

        entry = oh.AddressOfEntryPoint
        if not any(lo <= entry < hi for lo, hi in code_ranges):
            self.fail("entry", "entry point RVA 0x%x is not in an executable section" % entry)
        if self.map_path:
            # ld's i386-pe map prints the stdcall symbol without its leading underscore.
            syms = ("_DriverEntry@8", "DriverEntry@8") if self.arch == "x86" else ("DriverEntry",)
            sym = syms[0]
            rva = None
            for candidate in syms:
                rva = map_symbol_rva(self.map_path, candidate, oh.ImageBase)
                if rva is not None:
                    break
            if rva is None:
                self.fail("entry", "%s not found in %s" % (sym, self.map_path))
            elif rva != entry:
                self.fail("entry", "entry point RVA 0x%x, %s is at 0x%x" % (entry, sym, rva))

        dd_tls = oh.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_TLS"]]
        if dd_tls.VirtualAddress or dd_tls.Size:
            self.fail("tls", "TLS directory present (RVA 0x%x): kernel images cannot use TLS"
                      % dd_tls.VirtualAddress)

        dd_exp = oh.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]]
        if dd_exp.VirtualAddress or dd_exp.Size:
            names = []
            exp = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
            if exp:
                names = [(s.name or b"#%d" % s.ordinal).decode("ascii", "replace")
                         for s in exp.symbols][:5]
            self.fail("exports", "export directory present %s" % (names or ""))
        if self.inf:
            self.failures += check_version(self.path, self.inf, None)
        return self.failures

    def check_imports(self, pe):
        imports = getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
        if not imports:
            self.fail("imports", "no import table (a miniport must import storport.sys)")
        dlls = [e.dll.decode("ascii", "replace") for e in imports]
        for e, dll in zip(imports, dlls):
            if dll.lower() != "storport.sys":
                self.fail("imports", "imports from %s (only storport.sys is allowed)" % dll)
                continue
            for imp in e.imports:
                if imp.name is None:
                    self.fail("allowlist", "import by ordinal %d from %s" % (imp.ordinal, dll))
                    continue
                name = imp.name.decode("ascii", "replace")
                if name not in self.allow:
                    self.fail("allowlist", "%s!%s is not a Windows 7 SP1 storport.sys export"
                              % (dll, name))
        if len(set(d.lower() for d in dlls)) != len(dlls):
            self.fail("imports", "duplicate import descriptors %s" % dlls)
        dd_delay = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]]
        if dd_delay.VirtualAddress or dd_delay.Size:
            self.fail("imports", "delay-load imports present")


VFT_APP, VFT_DRV = 1, 3
VERSION_STRINGS = ("CompanyName", "FileDescription", "FileVersion", "LegalCopyright",
                   "OriginalFilename", "ProductName", "ProductVersion")


def inf_version_info(path):
    """(DriverVer version "w.x.y.z" or None, Provider with %strings% resolved, the file
    name of ServiceBinary or None) from an INF, read independently of tools/infcheck.py."""
    raw = open(path, "rb").read()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("latin-1")
    sections, cur = {}, None
    for line in text.splitlines():
        line = re.sub(r'^((?:[^;"]|"[^"]*")*);.*$', r"\1", line).strip()
        if line.startswith("[") and line.endswith("]"):
            cur = sections.setdefault(line[1:-1].strip().lower(), {})
        elif cur is not None and "=" in line:
            k, v = line.split("=", 1)
            cur.setdefault(k.strip().lower(), v.strip())
    strings = {k: v.strip('"') for k, v in sections.get("strings", {}).items()}

    def expand(v):
        return re.sub(r"%([^%]+)%", lambda m: strings.get(m.group(1).lower(), m.group(0)), v or "").strip('"')

    ver = sections.get("version", {})
    dv = ver.get("driverver", "")
    version = dv.split(",", 1)[1].strip() if "," in dv else None
    binary = None
    for sec in sections.values():
        if "servicebinary" in sec:
            binary = re.split(r"[\\/]", expand(sec["servicebinary"]))[-1]
    return version, expand(ver.get("provider")), binary


def check_version(path, inf, name):
    """The `version` rule: [(rule, detail)] failures of IMAGE against the INF."""
    out = []

    def fail(detail):
        out.append(("version", detail))

    want, provider, binary = inf_version_info(inf)
    if not want or not re.match(r"^\d+\.\d+\.\d+\.\d+$", want):
        fail("%s: no usable DriverVer version (%r)" % (inf, want))
        return out
    parts = [int(x) for x in want.split(".")]
    ms, ls = (parts[0] << 16) | parts[1], (parts[2] << 16) | parts[3]
    pe = pefile.PE(path, fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]])
    fixed = getattr(pe, "VS_FIXEDFILEINFO", None)
    if not fixed:
        fail("no VS_VERSIONINFO resource (want version %s, DriverVer of %s)" % (want, inf))
        return out
    fixed = fixed[0]
    for what, got in (("FILEVERSION", (fixed.FileVersionMS, fixed.FileVersionLS)),
                      ("PRODUCTVERSION", (fixed.ProductVersionMS, fixed.ProductVersionLS))):
        if got != (ms, ls):
            fail("%s %d.%d.%d.%d, DriverVer of %s says %s" % (
                what, got[0] >> 16, got[0] & 0xFFFF, got[1] >> 16, got[1] & 0xFFFF, inf, want))
    native = pe.OPTIONAL_HEADER.Subsystem == IMAGE_SUBSYSTEM_NATIVE
    want_type = VFT_DRV if native else VFT_APP
    if fixed.FileType != want_type:
        fail("FILETYPE %d, want %d (%s)" % (fixed.FileType, want_type, "VFT_DRV" if native else "VFT_APP"))
    tables = []
    for fi in getattr(pe, "FileInfo", None) or []:
        for entry in fi:
            for st in getattr(entry, "StringTable", []):
                tables.append({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                               for k, v in st.entries.items()})
    if not tables:
        fail("no StringFileInfo string table")
    want_name = name or (binary if native else None) or re.sub(r"\.tmp$", "", path.rsplit("/", 1)[-1])
    for t in tables:
        for key in VERSION_STRINGS:
            if not t.get(key, "").strip():
                fail("string %s missing or empty" % key)
        for key in ("FileVersion", "ProductVersion"):
            if key in t and t[key].strip() != want:
                fail("%s %r, DriverVer of %s says %s" % (key, t[key], inf, want))
        if "CompanyName" in t and provider and t["CompanyName"] != provider:
            fail("CompanyName %r, the INF's Provider is %r" % (t["CompanyName"], provider))
        if "OriginalFilename" in t and t["OriginalFilename"].lower() != (want_name or "").lower():
            fail("OriginalFilename %r, want %r" % (t["OriginalFilename"], want_name))
    if native:
        for s in pe.sections:
            if s.Name.rstrip(b"\0") == b".rsrc" and s.Characteristics & SCN_MEM_WRITE:
                fail(".rsrc section is writable (0x%08x): resources are read-only data" % s.Characteristics)
    return out


def cmd_version(args):
    failures = check_version(args.image, args.inf, args.name)
    for rule, detail in failures:
        print("FAIL %s: %s: %s" % (rule, args.image, detail))
    if not failures:
        print("pecheck: %s version resource OK (%s)" % (args.image, inf_version_info(args.inf)[0]))
    return 1 if failures else 0


def cmd_check(args):
    allow = read_def(args.deffile)
    failures = Checker(args.image, args.arch, allow, args.map, args.inf).run()
    for rule, detail in failures:
        print("FAIL %s: %s: %s" % (rule, args.image, detail))
    if not failures:
        print("pecheck: %s OK (%s)" % (args.image, args.arch))
    return 1 if failures else 0


def cmd_set_checksum(args):
    pe = pefile.PE(args.image)
    pe.OPTIONAL_HEADER.CheckSum = pe.generate_checksum()
    data = pe.write()
    pe.close()
    with open(args.image, "wb") as f:
        f.write(data)
    return 0


def coff_writable_sections(path):
    """[(section name, size, [symbols])] of writable, nonempty sections of a COFF object."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20:
        raise SystemExit("pecheck: %s: not a COFF object" % path)
    machine, nsec, _, symptr, nsym, opt, _ = struct.unpack_from("<HHIIIHH", data, 0)
    if machine not in (0x014C, 0x8664):
        raise SystemExit("pecheck: %s: not an i386/AMD64 COFF object (machine 0x%x)" % (path, machine))
    strtab = symptr + nsym * 18

    def name_of(raw):
        raw = raw.rstrip(b"\0")
        if raw.startswith(b"/") and raw[1:].isdigit():
            off = strtab + int(raw[1:])
            raw = data[off:data.index(b"\0", off)]
        return raw.decode("ascii", "replace")

    sections = []
    for i in range(nsec):
        off = 20 + opt + 40 * i
        raw = data[off:off + 8]
        size = struct.unpack_from("<I", data, off + 16)[0]
        chars = struct.unpack_from("<I", data, off + 36)[0]
        sections.append((name_of(raw), size, chars))

    syms = {}
    i = 0
    while i < nsym:
        off = symptr + 18 * i
        raw = data[off:off + 8]
        if raw[:4] == b"\0\0\0\0":
            soff = strtab + struct.unpack_from("<I", raw, 4)[0]
            name = data[soff:data.index(b"\0", soff)].decode("ascii", "replace")
        else:
            name = raw.rstrip(b"\0").decode("ascii", "replace")
        value, secnum, _, sclass, naux = struct.unpack_from("<IhHBB", data, off + 8)
        # External with section 0 and nonzero value: a common symbol (-fno-common avoids).
        if secnum == 0 and sclass == 2 and value:
            syms.setdefault(-1, []).append(name)
        elif secnum > 0 and not name.startswith("."):
            syms.setdefault(secnum, []).append(name)
        i += 1 + naux
    out = []
    for idx, (name, size, chars) in enumerate(sections, 1):
        if name in (".drectve",) or name.startswith(".debug") or chars & (SCN_LNK_INFO | SCN_LNK_REMOVE):
            continue  # linker directives and debug info never reach the loaded image
        if chars & SCN_MEM_WRITE and size:
            out.append((name, size, syms.get(idx, [])))
    if -1 in syms:
        out.append(("COMMON", 0, syms[-1]))
    return out


def cmd_no_writable_data(args):
    bad = 0
    for obj in args.objects:
        for name, size, syms in coff_writable_sections(obj):
            bad += 1
            print("FAIL writable-data: %s: section %s (%d bytes) holds %s"
                  % (obj, name, size, ", ".join(syms) or "data"))
    if bad:
        print("pecheck: the driver must not keep mutable globals; put state in the device "
              "extension and tables in const (.rdata)")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--arch", choices=sorted(MACHINES), required=True)
    c.add_argument("--def", dest="deffile", required=True)
    c.add_argument("--map")
    c.add_argument("--inf", help="also check the version resource against this INF")
    c.add_argument("image")
    c.set_defaults(fn=cmd_check)
    v = sub.add_parser("version")
    v.add_argument("--inf", required=True)
    v.add_argument("--name", help="expected OriginalFilename (default: the image's name)")
    v.add_argument("image")
    v.set_defaults(fn=cmd_version)
    s = sub.add_parser("set-checksum")
    s.add_argument("image")
    s.set_defaults(fn=cmd_set_checksum)
    w = sub.add_parser("no-writable-data")
    w.add_argument("objects", nargs="+")
    w.set_defaults(fn=cmd_no_writable_data)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
