#!/usr/bin/python3
"""Authenticode digest of PE images, and the one PE header fix-up of the package build.

  authenticode.py digest [--hash sha1|sha256] FILE...
      Print "<HEX>  <file>" per file: the Authenticode digest for a PE image (what an
      embedded signature or a catalog member signs), a plain digest for anything else.
  authenticode.py rsrc-readonly IMAGE
      Clear IMAGE_SCN_MEM_WRITE on the .rsrc section header (see below). Run before
      `pecheck.py set-checksum`.

Authenticode PE hashing (Microsoft, "Windows Authenticode Portable Executable Signature
Format", section "Calculating the PE Image Hash"): hash the headers up to SizeOfHeaders
except the CheckSum field (4 bytes) and the Certificate Table entry of the data
directory (8 bytes, IMAGE_DIRECTORY_ENTRY_SECURITY); then the sections' raw data in
ascending PointerToRawData order; then any data after the last section up to the
attribute certificate table (which is not hashed). Embedding a signature therefore
leaves the digest unchanged (the signature goes in the certificate table, its location
in the excluded directory entry, and the re-computed checksum in the excluded field).
Images whose sections do not tile the file from SizeOfHeaders on (gaps, overlaps) are
refused rather than guessed at: signtool/Windows hash such files linearly, the
specification section-wise, and the two differ exactly there.

Why rsrc-readonly: GNU ld (BFD, peXXigen.c known_sections) writes fixed characteristics
for a section named .rsrc, READ|WRITE|INITIALIZED_DATA, whatever the input object says;
Microsoft's linker makes .rsrc read-only (0x40000040), and nothing writes to resources at
run time. tools/pecheck.py (rule "version") refuses a writable .rsrc in the driver.

Standard library only (no pefile), so tools/mkcat.py can use it anywhere.
"""
import argparse
import hashlib
import struct
import sys

IMAGE_SCN_MEM_WRITE = 0x80000000
HASHES = ("sha1", "sha256")


class NotPE(Exception):
    pass


def pe_layout(data):
    """Offsets Authenticode needs: (checksum_off, certdir_off or None, size_of_headers,
    [(PointerToRawData, SizeOfRawData, name)], (cert_off, cert_size) or None,
    section_table_off, nsections). Raises NotPE for a non-PE file, ValueError for a
    malformed one."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise NotPE("no MZ header")
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if pe + 24 > len(data) or data[pe:pe + 4] != b"PE\0\0":
        raise NotPE("no PE signature")
    nsec = struct.unpack_from("<H", data, pe + 6)[0]
    opt_size = struct.unpack_from("<H", data, pe + 20)[0]
    opt = pe + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    if magic == 0x10B:
        rva_count_off, dd_off = opt + 92, opt + 96
    elif magic == 0x20B:
        rva_count_off, dd_off = opt + 108, opt + 112
    else:
        raise ValueError("optional header magic 0x%x" % magic)
    checksum_off = opt + 64
    size_of_headers = struct.unpack_from("<I", data, opt + 60)[0]
    nrva = struct.unpack_from("<I", data, rva_count_off)[0]
    certdir_off, cert = None, None
    if nrva > 4:
        certdir_off = dd_off + 4 * 8
        c_off, c_size = struct.unpack_from("<II", data, certdir_off)
        if c_off and c_size:
            if c_off + c_size > len(data):
                raise ValueError("certificate table beyond the end of the file")
            cert = (c_off, c_size)
    sec_off = opt + opt_size
    sections = []
    for i in range(nsec):
        off = sec_off + 40 * i
        name = data[off:off + 8].rstrip(b"\0").decode("ascii", "replace")
        raw_size, raw_ptr = struct.unpack_from("<II", data, off + 16)
        if raw_size:
            sections.append((raw_ptr, raw_size, name))
    sections.sort()
    if not size_of_headers or size_of_headers > len(data):
        raise ValueError("SizeOfHeaders 0x%x" % size_of_headers)
    if certdir_off is not None and certdir_off + 8 > size_of_headers:
        raise ValueError("data directory outside the headers")
    return checksum_off, certdir_off, size_of_headers, sections, cert, sec_off, nsec


def pe_digest(data, name="sha1"):
    """Authenticode digest of a PE image (bytes). Raises NotPE / ValueError."""
    checksum_off, certdir_off, soh, sections, cert, _, _ = pe_layout(data)
    h = hashlib.new(name)
    h.update(data[:checksum_off])
    if certdir_off is None:
        h.update(data[checksum_off + 4:soh])
    else:
        h.update(data[checksum_off + 4:certdir_off])
        h.update(data[certdir_off + 8:soh])
    end = cert[0] if cert else len(data)
    pos = soh
    for ptr, size, sname in sections:
        if ptr != pos:
            raise ValueError("section %s at file offset 0x%x, expected 0x%x: sections do not "
                             "tile the image" % (sname, ptr, pos))
        if ptr + size > end:
            raise ValueError("section %s runs past the end of the image data" % sname)
        h.update(data[ptr:ptr + size])
        pos += size
    h.update(data[pos:end])   # data after the last section, up to the certificate table
    return h.digest()


def file_digest(path, name="sha1"):
    """(digest bytes, is_pe) of a file: Authenticode for PE images, flat otherwise."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return pe_digest(data, name), True
    except NotPE:
        return hashlib.new(name, data).digest(), False


def cmd_digest(args):
    rc = 0
    for path in args.files:
        try:
            d, _ = file_digest(path, args.hash)
        except (OSError, ValueError) as e:
            sys.stderr.write("authenticode: %s: %s\n" % (path, e))
            rc = 1
            continue
        print("%s  %s" % (d.hex().upper(), path))
    return rc


def cmd_rsrc_readonly(args):
    with open(args.image, "rb") as f:
        data = bytearray(f.read())
    _, _, _, _, _, sec_off, nsec = pe_layout(bytes(data))
    found = False
    for i in range(nsec):
        off = sec_off + 40 * i
        if data[off:off + 8].rstrip(b"\0") == b".rsrc":
            chars = struct.unpack_from("<I", data, off + 36)[0]
            struct.pack_into("<I", data, off + 36, chars & ~IMAGE_SCN_MEM_WRITE & 0xFFFFFFFF)
            found = True
    if not found:
        sys.stderr.write("authenticode: %s has no .rsrc section\n" % args.image)
        return 1
    with open(args.image, "wb") as f:
        f.write(data)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("digest")
    d.add_argument("--hash", choices=HASHES, default="sha1")
    d.add_argument("files", nargs="+")
    d.set_defaults(fn=cmd_digest)
    r = sub.add_parser("rsrc-readonly")
    r.add_argument("image")
    r.set_defaults(fn=cmd_rsrc_readonly)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
