#!/usr/bin/python3
"""Security catalog (.cat) generator for the aerovblk driver package: makecat/Inf2Cat's
job on Linux, Python standard library only (own DER encoder).

  mkcat.py make --inf INF --os 7X64 --hwid 'PCI\\VEN_1AF4&DEV_1042' [--osattr 2:6.1]
                [--time UNIX] -o OUT.cat FILE...
      Write an unsigned version-1 catalog listing FILE... (the INF must be one of them).
      OUT's file name must be the one the INF's [Version] CatalogFile (or
      CatalogFile.NTx86 / .NTamd64 for the --os architecture) declares. --time (default
      $SOURCE_DATE_EPOCH) is the catalog's effective date: no clock is read, so equal
      inputs give byte-identical catalogs. `osslsigncode sign` signs the result.
  mkcat.py list CAT
      Decode a catalog (signed or not): catalog attributes, then per member the tag,
      digest, subject type and name/value attributes. For people; the checks read
      catalogs with independent tools (openssl, osslsigncode, Wine's wintrust).

What is written (the layout makecat produces for a version-1 catalog; Microsoft's
mscat.h / wintrust names):
  ContentInfo signedData { SignedData v1, no digest algorithms, no signers,
    content szOID_CTL 1.3.6.1.4.1.311.10.1 = CTL {
      SubjectUsage { szOID_CATALOG_LIST 1.3.6.1.4.1.311.12.1.1 },
      ListIdentifier: 16 bytes (derived from the members: deterministic),
      ThisUpdate: UTCTime of --time,
      SubjectAlgorithm { szOID_CATALOG_LIST_MEMBER 1.3.6.1.4.1.311.12.1.2, NULL }
                       (version-1 members: SHA-1),
      Entries: per file, sorted by name: {
        SubjectIdentifier: the upper-case hex of the digest, UTF-16LE, NUL-terminated
        Attributes SET {
          SPC_INDIRECT_DATA 1.3.6.1.4.1.311.2.1.4 { data, DigestInfo { sha1, digest } }
            PE image: data = SPC_PE_IMAGE_DATA 1.3.6.1.4.1.311.2.1.15
                      { flags '101'B, file "<<<Obsolete>>>" }, digest = Authenticode SHA-1
            other:    data = SPC_CAB_DATA 1.3.6.1.4.1.311.2.1.25 { file "<<<Obsolete>>>" },
                      digest = SHA-1 of the whole file
          CAT_MEMBERINFO 1.3.6.1.4.1.311.12.2.2 { SIP GUID (BMPString), 512 }
            PE {C689AAB8-8E78-11D0-8C47-00C04FC295EE}, flat {DE351A42-8E59-11D0-8C47-00C04FC295EE}
          CAT_NAMEVALUE 1.3.6.1.4.1.311.12.2.1 "File" = file name,
          CAT_NAMEVALUE "OSAttr" = --osattr (2:6.1 = Windows 7)
            (name: BMPString; flags 0x10010001 = authenticated, name and value ASCII;
             value: UTF-16LE, NUL-terminated) } },
      Extensions [0]: CAT_NAMEVALUE "HWID1" = --hwid, "OS" = --os } }
The Authenticode digest (tools/authenticode.py) is the one an embedded signature
signs, so the catalog also matches the test-signed .sys.
"""
import argparse
import datetime
import hashlib
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import authenticode  # noqa: E402  (tools/authenticode.py)

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CTL = "1.3.6.1.4.1.311.10.1"
OID_CATALOG_LIST = "1.3.6.1.4.1.311.12.1.1"
OID_CATALOG_LIST_MEMBER = "1.3.6.1.4.1.311.12.1.2"
OID_CAT_NAMEVALUE = "1.3.6.1.4.1.311.12.2.1"
OID_CAT_MEMBERINFO = "1.3.6.1.4.1.311.12.2.2"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_SPC_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"
OID_SHA1 = "1.3.14.3.2.26"
SIP_PE = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
SIP_FLAT = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"
NAMEVALUE_FLAGS = 0x10010001   # CRYPTCAT_ATTR_AUTHENTICATED | DATAASCII | NAMEASCII
OS_ARCH = {"X86": "NTx86", "X64": "NTamd64"}

# --- DER encoder -------------------------------------------------------------------


def der(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + head + content


def seq(*items):
    return der(0x30, b"".join(items))


def set_of(*items):
    """DER SET OF: elements in ascending order of their encodings (X.690 11.6)."""
    return der(0x31, b"".join(sorted(items)))


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return der(0x06, bytes(out))


def integer(v):
    n = max(1, (v.bit_length() + 8) // 8)   # room for the sign bit
    return der(0x02, v.to_bytes(n, "big", signed=True))


def octets(b):
    return der(0x04, b)


def null():
    return der(0x05, b"")


def bmp(s):
    return der(0x1E, s.encode("utf-16-be"))


def utctime(epoch):
    t = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    if not 1950 <= t.year <= 2049:
        raise SystemExit("mkcat: --time %d outside UTCTime's range" % epoch)
    return der(0x17, t.strftime("%y%m%d%H%M%SZ").encode("ascii"))


def ctx(n, content, constructed=True):
    return der((0xA0 if constructed else 0x80) | n, content)


def wide_z(s):
    """UTF-16LE with a NUL terminator: catalog member tags and name/value values."""
    return (s + "\0").encode("utf-16-le")


# --- catalog structure -------------------------------------------------------------


def name_value(name, value):
    return seq(bmp(name), integer(NAMEVALUE_FLAGS), octets(wide_z(value)))


def attribute(type_oid, value):
    return seq(oid(type_oid), set_of(value))


def obsolete_link():
    # SpcLink file [2] EXPLICIT SpcString unicode [0] IMPLICIT BMPString
    return ctx(2, der(0x80, "<<<Obsolete>>>".encode("utf-16-be")))


def indirect_data(digest, is_pe):
    if is_pe:
        # SpcPeImageData { flags BIT STRING '101'B (makecat's), file [0] EXPLICIT SpcLink }
        data = seq(oid(OID_SPC_PE_IMAGE_DATA), seq(der(0x03, b"\x05\xa0"), ctx(0, obsolete_link())))
    else:
        data = seq(oid(OID_SPC_CAB_DATA), obsolete_link())
    return seq(data, seq(seq(oid(OID_SHA1), null()), octets(digest)))


def member(name, digest, is_pe, osattr):
    attrs = [
        attribute(OID_SPC_INDIRECT_DATA, indirect_data(digest, is_pe)),
        attribute(OID_CAT_MEMBERINFO, seq(bmp(SIP_PE if is_pe else SIP_FLAT), integer(512))),
        attribute(OID_CAT_NAMEVALUE, name_value("File", name)),
        attribute(OID_CAT_NAMEVALUE, name_value("OSAttr", osattr)),
    ]
    return seq(octets(wide_z(digest.hex().upper())), set_of(*attrs))


def build_catalog(members, cat_attrs, epoch, osattr):
    """members: [(file name, digest, is_pe)]; cat_attrs: [(name, value)]; osattr: the
    members' OSAttr value."""
    ident = hashlib.sha1()
    for name, digest, is_pe in members:
        ident.update(name.encode("utf-8") + b"\0" + digest)
    for name, value in cat_attrs:
        ident.update(name.encode("utf-8") + b"=" + value.encode("utf-8") + b"\0")
    ctl = seq(
        seq(oid(OID_CATALOG_LIST)),
        octets(ident.digest()[:16]),
        utctime(epoch),
        seq(oid(OID_CATALOG_LIST_MEMBER), null()),
        seq(*[member(n, d, pe, osattr) for n, d, pe in members]),
        ctx(0, seq(*[seq(oid(OID_CAT_NAMEVALUE), octets(name_value(n, v))) for n, v in cat_attrs])),
    )
    signed = seq(integer(1), set_of(), seq(oid(OID_CTL), ctx(0, ctl)), set_of())
    return seq(oid(OID_SIGNED_DATA), ctx(0, signed))


# --- INF [Version] -----------------------------------------------------------------


def inf_version_value(path, key):
    """Value of `key` in the INF's [Version] section (quotes and comments removed)."""
    raw = open(path, "rb").read()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("latin-1")
    section = None
    for line in text.splitlines():
        line = re.sub(r'^((?:[^;"]|"[^"]*")*);.*$', r"\1", line).strip()   # ; outside quotes
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            continue
        if section == "version" and "=" in line:
            k, v = line.split("=", 1)
            if k.strip().lower() == key.lower():
                return v.strip().strip('"')
    return None


def cmd_make(args):
    osname = args.os.upper()
    arch = OS_ARCH.get(osname[-3:])
    if not re.match(r"^\d+(X86|X64)$", osname) or not arch:
        raise SystemExit("mkcat: --os %r: want e.g. 7X86 or 7X64" % args.os)
    if args.time is None:
        sde = os.environ.get("SOURCE_DATE_EPOCH")
        if not sde:
            raise SystemExit("mkcat: no --time and no SOURCE_DATE_EPOCH (the catalog date)")
        args.time = int(sde)
    files = [os.path.normpath(f) for f in args.files]
    if os.path.normpath(args.inf) not in files:
        raise SystemExit("mkcat: the INF %s must be a member of its own catalog" % args.inf)
    declared = inf_version_value(args.inf, "CatalogFile." + arch) or inf_version_value(args.inf, "CatalogFile")
    if not declared:
        raise SystemExit("mkcat: %s declares no CatalogFile" % args.inf)
    if declared.lower() != os.path.basename(args.output).lower():
        raise SystemExit("mkcat: %s declares CatalogFile %s, output is named %s"
                         % (args.inf, declared, os.path.basename(args.output)))
    inf_text = open(args.inf, "rb").read().decode("latin-1").upper()
    if args.hwid.upper() not in inf_text:
        raise SystemExit("mkcat: hardware ID %s does not occur in %s" % (args.hwid, args.inf))
    members, seen = [], set()
    for path in files:
        name = os.path.basename(path)
        if name.lower() in seen:
            raise SystemExit("mkcat: two members named %s" % name)
        seen.add(name.lower())
        try:
            digest, is_pe = authenticode.file_digest(path, "sha1")
        except ValueError as e:
            raise SystemExit("mkcat: %s: %s" % (path, e))
        members.append((name, digest, is_pe))
    members.sort(key=lambda m: m[0].lower())
    cat = build_catalog(members, [("HWID1", args.hwid), ("OS", osname)], args.time, args.osattr)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(cat)
    os.replace(tmp, args.output)
    for name, digest, is_pe in members:
        print("mkcat: %s %s %s (%s)" % (os.path.basename(args.output), digest.hex().upper(), name,
                                         "Authenticode" if is_pe else "flat"))
    return 0


# --- DER decoder (for `list`) ------------------------------------------------------


def parse(data, pos=0):
    """One TLV at pos: (tag, content bytes, next pos)."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, data[pos:pos + n], pos + n


def children(content):
    out, pos = [], 0
    while pos < len(content):
        tag, c, pos = parse(content, pos)
        out.append((tag, c))
    return out


def oid_str(c):
    first = c[0]
    parts, v = [first // 40, first % 40], 0
    for b in c[1:]:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))


def decode_name_value(c):
    name, flags, value = children(c)
    return (name[1].decode("utf-16-be"), int.from_bytes(flags[1], "big"),
            value[1].decode("utf-16-le").rstrip("\0"))


def cmd_list(args):
    data = open(args.catalog, "rb").read()
    _, ci, _ = parse(data)
    ci = children(ci)
    if oid_str(ci[0][1]) != OID_SIGNED_DATA:
        raise SystemExit("mkcat: %s is not PKCS#7 SignedData" % args.catalog)
    sd = children(children(ci[1][1])[0][1])
    content = children(sd[2][1])
    if oid_str(content[0][1]) != OID_CTL:
        raise SystemExit("mkcat: %s does not hold a CTL" % args.catalog)
    ctl = children(children(content[1][1])[0][1])
    signers = [c for t, c in sd[3:] if t == 0x31]
    print("catalog %s: %s, member type %s, effective %s, %s" % (
        args.catalog, oid_str(children(ctl[0][1])[0][1]), oid_str(children(ctl[3][1])[0][1]),
        ctl[2][1].decode("ascii"), "signed" if signers and signers[-1] else "unsigned"))
    for t, c in ctl[5:]:
        if t == 0xA0:
            for _, ext in children(children(c)[0][1]):
                e = children(ext)
                n, f, v = decode_name_value(children(e[-1][1])[0][1])
                print("  attr %s = %s (0x%08x)" % (n, v, f))
    for _, entry in children(ctl[4][1]):
        tag, attrs = children(entry)
        print("  member %s" % tag[1].decode("utf-16-le").rstrip("\0"))
        for _, a in children(attrs[1]):
            a_oid, vals = children(a)
            kind = oid_str(a_oid[1])
            v = children(vals[1])[0][1]
            if kind == OID_SPC_INDIRECT_DATA:
                spc, dig = children(v)
                subject = oid_str(children(spc[1])[0][1])
                algo = oid_str(children(children(dig[1])[0][1])[0][1])
                digest = children(dig[1])[1][1]
                print("    digest %s %s (%s)" % (
                    {OID_SHA1: "sha1"}.get(algo, algo), digest.hex().upper(),
                    {OID_SPC_PE_IMAGE_DATA: "PE image", OID_SPC_CAB_DATA: "flat file"}.get(subject, subject)))
            elif kind == OID_CAT_MEMBERINFO:
                guid, ver = children(v)
                print("    subject %s version %d" % (guid[1].decode("utf-16-be"), int.from_bytes(ver[1], "big")))
            elif kind == OID_CAT_NAMEVALUE:
                n, f, val = decode_name_value(v)
                print("    %s = %s (0x%08x)" % (n, val, f))
            else:
                print("    attribute %s" % kind)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--inf", required=True)
    m.add_argument("--os", required=True, help="catalog OS attribute, e.g. 7X64")
    m.add_argument("--hwid", required=True, help="catalog HWID1 attribute")
    m.add_argument("--osattr", default="2:6.1", help="member OSAttr (2:6.1 = Windows 7)")
    m.add_argument("--time", type=int, help="effective date, Unix time (default SOURCE_DATE_EPOCH)")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("files", nargs="+")
    m.set_defaults(fn=cmd_make)
    ls = sub.add_parser("list")
    ls.add_argument("catalog")
    ls.set_defaults(fn=cmd_list)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
