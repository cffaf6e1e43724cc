#!/usr/bin/python3
"""PE checker for aerovblk.sys, as strict as Windows 7's loader would be (and stricter).

  pecheck.py check --arch {x86,amd64} --def storport-<arch>.def [--map image.map] IMAGE
      Every rule below; prints "FAIL <rule>: <detail>" per violation, exit 1 if any.
      --map: a GNU ld map (-Map) or a link.exe / lld-link map (/map).
  pecheck.py set-checksum IMAGE
      Compute the PE checksum and write it into the optional header (ld leaves 0).
  pecheck.py no-writable-data OBJECT...
      COFF objects: fail if any section that is writable at run time (.data, .bss,
      ...) has a nonzero size, naming the symbols in it. The driver keeps no mutable
      globals (docs/architecture.md); its state lives in the device extension.

Rules of `check` (rule name: what fails it):
  machine       FileHeader.Machine is not i386 (x86) / AMD64 (amd64)
  subsystem     Subsystem is not NATIVE (1)
  subsysver     Subsystem or OS version above 6.1 (Windows 7)
  characteristics  IMAGE_FILE_DLL set, EXECUTABLE_IMAGE clear, or RELOCS_STRIPPED set
  alignment     SectionAlignment != 0x1000 or FileAlignment != 0x200
  imports       a DLL other than storport.sys, or no import table, or delay imports
  allowlist     an imported name not in the Windows 7 SP1 list (the .def), or by ordinal
  relocs        no base relocation directory / no relocation blocks
  checksum      CheckSum is 0 or differs from the computed one
  wx            a section both writable and executable
  entry         AddressOfEntryPoint is not DriverEntry (from --map), or outside code
  tls           a TLS directory or a .tls section
  exports       an export directory (a miniport exports nothing)
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
    def __init__(self, path, arch, allow, map_path):
        self.path = path
        self.arch = arch
        self.allow = allow
        self.map_path = map_path
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
        if not dd_reloc.VirtualAddress or not dd_reloc.Size or not relocs:
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


def cmd_check(args):
    allow = read_def(args.deffile)
    failures = Checker(args.image, args.arch, allow, args.map).run()
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
    c.add_argument("image")
    c.set_defaults(fn=cmd_check)
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
