#!/usr/bin/python3
"""Write an empty Windows registry hive (regf): the base block, one 4 KiB hive bin
holding the root key (nk) and its security descriptor (sk), the rest one free cell.

No Debian tool creates an empty hive (hivex and Samba's regshell only edit existing
ones), so the inject tests write one here and fill it with hivexregedit --merge. The
layout follows the public format description of the REGF file (libregf's
"Windows NT Registry File (REGF) format" document, sections 2-4); tests/inject/common.sh
has reglookup and regfexport (two independent readers) accept every hive before use.

usage: mkhive.py OUT [--reg FILE.reg] [--dirty]
  --reg     then merge FILE.reg with hivexregedit (prefix HKEY_LOCAL_MACHINE\\SYSTEM or
            \\SOFTWARE, the first key's); the parent keys it lacks are added first
  --dirty   finally make the primary and secondary sequence numbers differ (a hive
            whose last write was not completed: Windows would replay its .LOG first)
"""
import os
import re
import struct
import subprocess
import sys
import tempfile

HBIN = 4096


def sid(authority, *subs):
    return struct.pack("<BB", 1, len(subs)) + authority.to_bytes(6, "big") + \
        b"".join(struct.pack("<I", s) for s in subs)


def security_descriptor():
    admins, everyone = sid(5, 32, 544), sid(1, 0)
    # ACCESS_ALLOWED_ACE: type 0, flags CONTAINER_INHERIT (2), size, mask, SID.
    def ace(mask, who):
        return struct.pack("<BBHI", 0, 2, 8 + len(who), mask) + who
    aces = ace(0xF003F, admins) + ace(0x20019, everyone)  # KEY_ALL_ACCESS, KEY_READ
    dacl = struct.pack("<BBHHH", 2, 0, 8 + len(aces), 2, 0) + aces
    hdr = 20
    owner_off = hdr
    group_off = owner_off + len(admins)
    dacl_off = group_off + len(admins)
    # Revision 1, control SE_SELF_RELATIVE | SE_DACL_PRESENT.
    return struct.pack("<BBHIIII", 1, 0, 0x8004, owner_off, group_off, 0, dacl_off) + \
        admins + admins + dacl


def cell(payload):
    size = (4 + len(payload) + 7) & ~7
    return struct.pack("<i", -size) + payload + b"\0" * (size - 4 - len(payload))


def checksum(base):
    csum = 0
    for (dword,) in struct.iter_unpack("<I", bytes(base[:0x1FC])):
        csum ^= dword
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(csum, csum)


def merge(out, regfile):
    """hivexregedit --merge, with every missing parent key section added before its child."""
    text = open(regfile, encoding="utf-8").read()
    keys = re.findall(r"^\[([^\]]+)\]", text, re.M)
    prefix = "\\".join(keys[0].split("\\")[:2])
    have, lines = set(), []
    for line in text.splitlines():
        m = re.match(r"^\[([^\]]+)\]", line)
        if m:
            parts = m.group(1).split("\\")
            for i in range(3, len(parts)):
                parent = "\\".join(parts[:i])
                if parent.lower() not in have:
                    have.add(parent.lower())
                    lines += ["[%s]" % parent, ""]
            have.add(m.group(1).lower())
        lines.append(line)
    with tempfile.NamedTemporaryFile("w", suffix=".reg", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        subprocess.run(["hivexregedit", "--merge", out, "--prefix", prefix, f.name], check=True)
    finally:
        os.unlink(f.name)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit("usage: mkhive.py OUT [--reg FILE.reg] [--dirty]")
    out, dirty = args[0], "--dirty" in args
    regfile = args[args.index("--reg") + 1] if "--reg" in args else None
    nk_off = 0x20                       # first cell after the 32-byte bin header
    name = b"ROOT"
    nk_len = (4 + 0x4C + len(name) + 7) & ~7
    sk_off = nk_off + nk_len
    # nk: flags KEY_HIVE_ENTRY|KEY_NO_DELETE|KEY_COMP_NAME, no subkeys, no values.
    nk = b"nk" + struct.pack("<HQIIIIIIIIIIIIIIIHH", 0x2C, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF,
                             0, 0xFFFFFFFF, sk_off, 0xFFFFFFFF, 0, 0, 0, 0, 0, len(name), 0) + name
    sd = security_descriptor()
    # sk: flink = blink = itself (the only one in the list), one reference (the root key).
    sk = b"sk" + struct.pack("<HIIII", 0, sk_off, sk_off, 1, len(sd)) + sd
    cells = cell(nk) + cell(sk)
    assert len(cell(nk)) == nk_len
    free = HBIN - 0x20 - len(cells)
    hbin = b"hbin" + struct.pack("<IIQQI", 0, HBIN, 0, 0, 0) + cells + \
        struct.pack("<i", free) + b"\0" * (free - 4)
    assert len(hbin) == HBIN
    base = bytearray(4096)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, 0, 1, 3, 0, 1, nk_off, HBIN, 1)
    base[0x30:0x30 + 8] = "ROOT".encode("utf-16-le")
    struct.pack_into("<I", base, 0x1FC, checksum(base))
    with open(out, "wb") as f:
        f.write(bytes(base) + hbin)
    if regfile:
        merge(out, regfile)
    if dirty:
        with open(out, "r+b") as f:
            base = bytearray(f.read(4096))
            seq1 = struct.unpack_from("<I", base, 4)[0]
            struct.pack_into("<I", base, 4, seq1 + 1)
            struct.pack_into("<I", base, 0x1FC, checksum(base))
            f.seek(0)
            f.write(base)


if __name__ == "__main__":
    main()
