#!/usr/bin/python3
"""Make one bad input per sub-condition of every tools/pecheck.py `check` rule from a
good driver image and its link map.

  mkbad.py ARCH GOOD.sys GOOD.map OUTDIR
      -> OUTDIR/<case>.sys (+ OUTDIR/<case>.map) and OUTDIR/manifest.tsv

Each case changes one thing (with the checksum recomputed, except in the checksum
cases) so that one sub-condition of one rule is violated. manifest.tsv lines are
"<case>\t<image>\t<map>"; what each case must make pecheck report (rule, message, and
whether other rules may fail too) is written down in tests/checks/13-pecheck-bad.sh,
which also fails when this list and its own differ. Rules that need a differently
*built* image (exports, a foreign import DLL) are built by that check from
tests/pe/fixture.
"""
import os
import re
import struct
import sys

import pefile

DIR = {name: pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_" + name]
       for name in ("IMPORT", "EXPORT", "BASERELOC", "TLS", "DELAY_IMPORT")}
DESCRIPTOR_SIZE = 20          # IMAGE_IMPORT_DESCRIPTOR


def section(pe, name):
    for s in pe.sections:
        if s.Name.rstrip(b"\0") == name:
            return s
    raise SystemExit("mkbad: no %s section" % name.decode())


def section_of_rva(pe, rva):
    for s in pe.sections:
        if s.VirtualAddress <= rva < s.VirtualAddress + max(s.Misc_VirtualSize, s.SizeOfRawData):
            return s
    raise SystemExit("mkbad: RVA 0x%x is in no section" % rva)


def reparse(data):
    return pefile.PE(data=bytes(data))


def patched(pe, patches):
    """A new PE from pe's bytes (header fields as set) with [(file offset, bytes)] applied."""
    data = bytearray(pe.write())
    for off, b in patches:
        data[off:off + len(b)] = b
    return reparse(data)


def rva_to_off(pe, rva):
    s = section_of_rva(pe, rva)
    return s.PointerToRawData + rva - s.VirtualAddress


def rename_in_file(pe, old, new):
    """Overwrite the NUL-terminated string `old` in the image with `new` (not longer)."""
    assert len(new) <= len(old)
    data = bytearray(pe.write())
    at = data.find(old + b"\0")
    if at < 0:
        raise SystemExit("mkbad: %r not found" % old)
    data[at:at + len(old)] = new.ljust(len(old), b"\0")
    return reparse(data)


def directory(pe, name, va, size):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR[name]]
    d.VirtualAddress, d.Size = va, size
    return pe


def storport_descriptor(pe):
    pe.parse_data_directories(directories=[DIR["IMPORT"]])
    for e in pe.DIRECTORY_ENTRY_IMPORT:
        if e.dll.lower() == b"storport.sys":
            return e
    raise SystemExit("mkbad: no storport.sys import descriptor")


# ---- header mutations: each gets the parsed good image, returns the bad one ----------

def m_not_pe(pe, arch):
    return None          # special: the file is not a PE at all (see main)


def m_machine(pe, arch):
    pe.FILE_HEADER.Machine = 0x8664 if arch == "x86" else 0x014C
    return pe


def m_magic(pe, arch):
    # PE32+ magic on the x86 image, PE32 on the amd64 one (the Machine field is right)
    pe.OPTIONAL_HEADER.Magic = 0x20B if arch == "x86" else 0x10B
    return pe


def m_subsystem(pe, arch):
    pe.OPTIONAL_HEADER.Subsystem = 2          # WINDOWS_GUI
    return pe


def version(field, major, minor):
    def m(pe, arch):
        setattr(pe.OPTIONAL_HEADER, "Major%sVersion" % field, major)
        setattr(pe.OPTIONAL_HEADER, "Minor%sVersion" % field, minor)
        return pe
    return m


def characteristics(set_bits=0, clear_bits=0):
    def m(pe, arch):
        pe.FILE_HEADER.Characteristics = (pe.FILE_HEADER.Characteristics | set_bits) & ~clear_bits
        return pe
    return m


def m_section_alignment(pe, arch):
    pe.OPTIONAL_HEADER.SectionAlignment = 0x2000
    return pe


def m_file_alignment(pe, arch):
    pe.OPTIONAL_HEADER.FileAlignment = 0x400
    return pe


def m_reloc_va_zero(pe, arch):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["BASERELOC"]]
    return directory(pe, "BASERELOC", 0, d.Size)


def m_reloc_size_zero(pe, arch):
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["BASERELOC"]]
    return directory(pe, "BASERELOC", d.VirtualAddress, 0)


def m_reloc_no_blocks(pe, arch):
    # the directory is there, but its first block's page RVA lies beyond the image: no
    # block a loader would accept (pefile stops there too)
    d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["BASERELOC"]]
    return patched(pe, [(rva_to_off(pe, d.VirtualAddress), struct.pack("<I", 0x7FFFF000))])


def m_reloc_only_padding(pe, arch):
    # every block keeps its header, every entry becomes IMAGE_REL_BASED_ABSOLUTE (type 0,
    # padding): the directory relocates nothing
    pe.parse_data_directories(directories=[DIR["BASERELOC"]])
    patches = []
    for b in pe.DIRECTORY_ENTRY_BASERELOC:
        start = b.struct.get_file_offset() + 8
        patches.append((start, b"\0" * (b.struct.SizeOfBlock - 8)))
    return patched(pe, patches)


def m_wx_text(pe, arch):
    section(pe, b".text").Characteristics |= 0x80000000      # + MEM_WRITE
    return pe


def m_wx_idata(pe, arch):
    section(pe, b".idata").Characteristics |= 0x20000000     # writable .idata + MEM_EXECUTE
    return pe


def m_entry_off(pe, arch):
    pe.OPTIONAL_HEADER.AddressOfEntryPoint += 0x10
    return pe


def m_entry_data(pe, arch):
    pe.OPTIONAL_HEADER.AddressOfEntryPoint = section(pe, b".rdata").VirtualAddress
    return pe


def tls_dir(va, size):
    def m(pe, arch):
        rdata = section(pe, b".rdata").VirtualAddress
        return directory(pe, "TLS", rdata if va else 0, (0x18 if arch == "x86" else 0x28) if size else 0)
    return m


def m_tls_section(pe, arch):
    section(pe, b".rdata").Name = b".tls\0\0\0\0"
    return pe


def delay_dir(va, size):
    def m(pe, arch):
        return directory(pe, "DELAY_IMPORT", section(pe, b".rdata").VirtualAddress if va else 0,
                         0x20 if size else 0)
    return m


def export_dir(va, size):
    def m(pe, arch):
        # the .rdata RVA: an export directory there parses as an empty one
        return directory(pe, "EXPORT", section(pe, b".rdata").VirtualAddress if va else 0,
                         0x28 if size else 0)
    return m


def m_no_import_table(pe, arch):
    return directory(pe, "IMPORT", 0, 0)


def duplicate_descriptor(second_name):
    """A new import directory in the slack after .idata's data: the storport.sys
    descriptor twice (the second naming `second_name`, or the same name string), then
    the terminating zero descriptor."""
    def m(pe, arch):
        e = storport_descriptor(pe)
        desc = bytearray(e.struct.__pack__())
        idata = section_of_rva(pe, pe.OPTIONAL_HEADER.DATA_DIRECTORY[DIR["IMPORT"]].VirtualAddress)
        at = (idata.Misc_VirtualSize + 0xF) & ~0xF             # offset in the section
        need = 3 * DESCRIPTOR_SIZE + 0x20
        if at + need > idata.SizeOfRawData:
            raise SystemExit("mkbad: no room after .idata for a second import descriptor")
        second = bytearray(desc)
        patches = []
        if second_name:
            name_rva = idata.VirtualAddress + at + 3 * DESCRIPTOR_SIZE
            struct.pack_into("<I", second, 12, name_rva)          # IMAGE_IMPORT_DESCRIPTOR.Name
            patches.append((idata.PointerToRawData + at + 3 * DESCRIPTOR_SIZE, second_name + b"\0"))
        table = bytes(desc) + bytes(second) + b"\0" * DESCRIPTOR_SIZE
        patches.append((idata.PointerToRawData + at, table))
        idata.Misc_VirtualSize = at + need                       # the new bytes are mapped
        directory(pe, "IMPORT", idata.VirtualAddress + at, 3 * DESCRIPTOR_SIZE)
        return patched(pe, patches)
    return m


def m_import_by_ordinal(pe, arch):
    # the first storport.sys import becomes "by ordinal 5", in the lookup table and the IAT
    e = storport_descriptor(pe)
    fmt, flag = ("<I", 0x80000000) if arch == "x86" else ("<Q", 1 << 63)
    patches = []
    for rva in (e.struct.OriginalFirstThunk, e.struct.FirstThunk):
        patches.append((rva_to_off(pe, rva), struct.pack(fmt, flag | 5)))
    return patched(pe, patches)


# ---- map mutations: the good image, a different link map -------------------------------

def map_without_driverentry(good_map, pe, arch):
    return "".join(l for l in open(good_map, encoding="utf-8", errors="replace").readlines(True)
                   if "DriverEntry" not in l)


def map_msvc_mismatch(good_map, pe, arch):
    """A link.exe / lld-link style map whose DriverEntry is 0x10 past the real entry."""
    oh = pe.OPTIONAL_HEADER
    sym = "_DriverEntry@8" if arch == "x86" else "DriverEntry"
    return (" aerovblk\n\n Preferred load address is %016x\n\n"
            "  Address         Publics by Value              Rva+Base               Lib:Object\n\n"
            " 0001:%08x       %s   %016x     aerovblk.obj\n"
            % (oh.ImageBase, oh.AddressOfEntryPoint + 0x10 - 0x1000, sym,
               oh.ImageBase + oh.AddressOfEntryPoint + 0x10))


NO_CHECKSUM_FIX = ("checksum-wrong", "checksum-zero")

CASES = [
    # (case, image mutation or None, (old, new) string rename or None, map mutation or None)
    ("not-a-pe", m_not_pe, None, None),
    ("machine", m_machine, None, None),
    ("optional-header-magic", m_magic, None, None),
    ("subsystem-gui", m_subsystem, None, None),
    ("subsystem-version-10.0", version("Subsystem", 10, 0), None, None),
    ("subsystem-version-6.2", version("Subsystem", 6, 2), None, None),
    ("os-version-10.0", version("OperatingSystem", 10, 0), None, None),
    ("os-version-6.2", version("OperatingSystem", 6, 2), None, None),
    ("dll-flag", characteristics(set_bits=0x2000), None, None),
    ("executable-image-clear", characteristics(clear_bits=0x0002), None, None),
    ("relocs-stripped-flag", characteristics(set_bits=0x0001), None, None),
    ("reloc-directory-va-zero", m_reloc_va_zero, None, None),
    ("reloc-directory-size-zero", m_reloc_size_zero, None, None),
    ("reloc-no-blocks", m_reloc_no_blocks, None, None),
    ("reloc-only-padding", m_reloc_only_padding, None, None),
    ("section-alignment", m_section_alignment, None, None),
    ("file-alignment", m_file_alignment, None, None),
    ("no-import-table", m_no_import_table, None, None),
    ("import-dll-ntoskrnl", None, (b"storport.sys", b"ntoskrnl.exe"), None),
    ("duplicate-import-descriptor", duplicate_descriptor(None), None, None),
    ("duplicate-import-descriptor-case", duplicate_descriptor(b"STORPORT.SYS"), None, None),
    ("delay-imports", delay_dir(True, True), None, None),
    ("delay-imports-va-only", delay_dir(True, False), None, None),
    ("delay-imports-size-only", delay_dir(False, True), None, None),
    # a Windows 8+ storport export, not in the Windows 7 SP1 list
    ("import-win8-export", None, (b"StorPortGetUncachedExtension", b"StorPortGetRequestInfo"), None),
    ("import-by-ordinal", m_import_by_ordinal, None, None),
    ("checksum-wrong", None, None, None),
    ("checksum-zero", None, None, None),
    ("text-writable", m_wx_text, None, None),
    ("idata-executable", m_wx_idata, None, None),
    ("entry-not-driverentry", m_entry_off, None, None),
    ("entry-in-data", m_entry_data, None, None),
    ("map-without-driverentry", None, None, map_without_driverentry),
    ("msvc-map-entry-mismatch", None, None, map_msvc_mismatch),
    ("tls-directory", tls_dir(True, True), None, None),
    ("tls-directory-va-only", tls_dir(True, False), None, None),
    ("tls-directory-size-only", tls_dir(False, True), None, None),
    ("tls-section", m_tls_section, None, None),
    ("export-directory-va-only", export_dir(True, False), None, None),
    ("export-directory-size-only", export_dir(False, True), None, None),
]


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    arch, good, good_map, outdir = argv[1:]
    os.makedirs(outdir, exist_ok=True)
    manifest = []
    for case, mutation, rename, map_mutation in CASES:
        path = os.path.join(outdir, case + ".sys")
        map_path = good_map
        pe = pefile.PE(good)
        if mutation is m_not_pe:
            # an MS-DOS-style stub without a PE header: the loader's first check
            with open(path, "wb") as f:
                f.write(b"This is not a PE image.\r\n" + b"\0" * 512)
            manifest.append("%s\t%s\t%s" % (case, path, map_path))
            continue
        if rename:
            pe = rename_in_file(pe, *rename)
        if mutation:
            pe = mutation(pe, arch)
        if map_mutation:
            map_path = os.path.join(outdir, case + ".map")
            with open(map_path, "w") as f:
                f.write(map_mutation(good_map, pe, arch))
        checksum = pe.generate_checksum()
        if case == "checksum-wrong":
            checksum ^= 0x10
        elif case == "checksum-zero":
            checksum = 0
        pe.OPTIONAL_HEADER.CheckSum = checksum
        with open(path, "wb") as f:
            f.write(pe.write())
        if case not in NO_CHECKSUM_FIX:
            # the checksum must be right for the bytes actually written
            check = pefile.PE(path, fast_load=True)
            assert check.OPTIONAL_HEADER.CheckSum == check.generate_checksum(), case
        manifest.append("%s\t%s\t%s" % (case, path, map_path))
    with open(os.path.join(outdir, "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print("mkbad: %d bad inputs in %s" % (len(manifest), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
