#!/usr/bin/python3
"""Make one bad image per tools/pecheck.py rule from a good driver image.

  mkbad.py ARCH GOOD.sys OUTDIR     -> OUTDIR/<case>.sys and OUTDIR/manifest.tsv

Each case changes one thing (with the checksum recomputed, except in the checksum
case) so that exactly the named rule, and no other, must fail. manifest.tsv lines:
"<file>\t<rule>\t<exact|extra>": "extra" where the mutation also (legitimately) upsets
other parsing (a changed SectionAlignment moves every RVA), so other rules may fail too. Rules that need a differently *built* image (exports, a foreign
import DLL) are built by tests/checks/13-pecheck-bad.sh from tests/pe/fixture.
"""
import os
import sys

import pefile

DIR = {name: pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_" + name]
       for name in ("IMPORT", "BASERELOC", "TLS", "DELAY_IMPORT")}


def section(pe, name):
    for s in pe.sections:
        if s.Name.rstrip(b"\0") == name:
            return s
    raise SystemExit("mkbad: no %s section" % name.decode())


def rename_in_file(pe, old, new):
    """Overwrite the NUL-terminated string `old` in the image with `new` (not longer)."""
    assert len(new) <= len(old)
    data = bytearray(pe.__data__)
    at = data.find(old + b"\0")
    if at < 0:
        raise SystemExit("mkbad: %r not found" % old)
    data[at:at + len(old)] = new.ljust(len(old), b"\0")
    return pefile.PE(data=bytes(data))


def mutate_machine(pe, arch):
    pe.FILE_HEADER.Machine = 0x8664 if arch == "x86" else 0x014C


def mutate_subsystem(pe, arch):
    pe.OPTIONAL_HEADER.Subsystem = 2          # WINDOWS_GUI


def mutate_subsysver(pe, arch):
    pe.OPTIONAL_HEADER.MajorSubsystemVersion = 10


def mutate_dll(pe, arch):
    pe.FILE_HEADER.Characteristics |= 0x2000  # IMAGE_FILE_DLL


def mutate_alignment(pe, arch):
    pe.OPTIONAL_HEADER.SectionAlignment = 0x2000


def mutate_no_reloc_dir(pe, arch):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["BASERELOC"]]
    d.VirtualAddress, d.Size = 0, 0


def mutate_relocs_stripped(pe, arch):
    pe.FILE_HEADER.Characteristics |= 0x0001


def mutate_wx(pe, arch):
    section(pe, b".text").Characteristics |= 0x80000000


def mutate_entry_off(pe, arch):
    pe.OPTIONAL_HEADER.AddressOfEntryPoint += 0x10


def mutate_entry_data(pe, arch):
    pe.OPTIONAL_HEADER.AddressOfEntryPoint = section(pe, b".rdata").VirtualAddress


def mutate_tls(pe, arch):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["TLS"]]
    d.VirtualAddress, d.Size = section(pe, b".rdata").VirtualAddress, 0x18 if arch == "x86" else 0x28


def mutate_delay_import(pe, arch):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["DELAY_IMPORT"]]
    d.VirtualAddress, d.Size = section(pe, b".rdata").VirtualAddress, 0x20


CASES = [
    # (case, rule, header mutation or None, (old, new) string rename or None)
    ("machine", "machine", mutate_machine, None),
    ("subsystem-gui", "subsystem", mutate_subsystem, None),
    ("subsystem-version-10", "subsysver", mutate_subsysver, None),
    ("dll-flag", "characteristics", mutate_dll, None),
    ("section-alignment", "alignment", mutate_alignment, None),
    ("no-reloc-directory", "relocs", mutate_no_reloc_dir, None),
    ("relocs-stripped-flag", "relocs", mutate_relocs_stripped, None),
    ("text-writable", "wx", mutate_wx, None),
    ("entry-not-driverentry", "entry", mutate_entry_off, None),
    ("entry-in-data", "entry", mutate_entry_data, None),
    ("tls-directory", "tls", mutate_tls, None),
    ("delay-imports", "imports", mutate_delay_import, None),
    ("import-dll-ntoskrnl", "imports", None, (b"storport.sys", b"ntoskrnl.exe")),
    # a Windows 8+ storport export, not in the Windows 7 SP1 list
    ("import-win8-export", "allowlist", None, (b"StorPortGetUncachedExtension", b"StorPortGetRequestInfo")),
    ("checksum-wrong", "checksum", None, None),
    ("checksum-zero", "checksum", None, None),
]


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    arch, good, outdir = argv[1:]
    os.makedirs(outdir, exist_ok=True)
    manifest = []
    for case, rule, mutation, rename in CASES:
        pe = pefile.PE(good)
        if rename:
            pe = rename_in_file(pe, *rename)
        if mutation:
            mutation(pe, arch)
        checksum = pe.generate_checksum()
        if case == "checksum-wrong":
            checksum ^= 0x10
        elif case == "checksum-zero":
            checksum = 0
        pe.OPTIONAL_HEADER.CheckSum = checksum
        path = os.path.join(outdir, case + ".sys")
        with open(path, "wb") as f:
            f.write(pe.write())
        if case not in ("checksum-wrong", "checksum-zero"):
            # the checksum must be right for the bytes actually written
            check = pefile.PE(path, fast_load=True)
            assert check.OPTIONAL_HEADER.CheckSum == check.generate_checksum(), case
        manifest.append("%s\t%s\t%s" % (path, rule, "extra" if case == "section-alignment" else "exact"))
    with open(os.path.join(outdir, "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print("mkbad: %d bad images in %s" % (len(manifest), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
