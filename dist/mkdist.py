#!/usr/bin/python3
"""Builds one release archive of the driver package: a .zip and an .iso with the same
files (mk/dist.mk runs it for the unsigned and the test-signed variant).

  mkdist.py --variant {unsigned,testsigned} --version 1.0.0.0 --driverver 11/25/2026,1.0.0.0
            --epoch SOURCE_DATE_EPOCH --x86 DIR --amd64 DIR [--cert aerovblk-test.cer]
            --templates dist --out out/dist

Writes OUT/<name>.zip and OUT/<name>.iso, name = aerovblk-<version>[-testsigned], from a
staging tree OUT/stage/<name>/:
  x86/ amd64/   aerovblk.sys aerovblk.inf aerovblk.cat aerovblk-query.exe (from --x86/--amd64)
  aerovblk-test.cer   (testsigned only)
  install.cmd, README.txt   the templates, @VERSION@ @DRIVERVER@ @TESTSIGNED@ filled in,
                            lines "[unsigned]..." / "[testsigned]..." kept for that variant
                            only; CRLF, ASCII
  bootdisk.reg              the template, @HEX2(text)@ as REG_EXPAND_SZ bytes; UTF-16LE with
                            BOM, CRLF (regedit's "Version 5.00" format)
  SHA256SUMS                sha256sum format (CRLF) of every other file
Reproducible: file order sorted, zip entries dated SOURCE_DATE_EPOCH (UTC) with fixed
attributes, no extra fields; the ISO (xorriso, Joliet + Rock Ridge) gets
SOURCE_DATE_EPOCH in its environment (volume dates, UUID, file dates = the staged
files' mtimes, which are set to it) and a fixed volume ID.
"""
import argparse
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

ARCH_FILES = ("aerovblk.sys", "aerovblk.inf", "aerovblk.cat", "aerovblk-query.exe")
VARIANTS = ("unsigned", "testsigned")


def render(text, variant, values):
    out = []
    for line in text.splitlines():
        m = re.match(r"^\[(%s)\]" % "|".join(VARIANTS), line)
        if m:
            if m.group(1) != variant:
                continue
            line = line[m.end():]
        for k, v in values.items():
            line = line.replace("@%s@" % k, v)
        line = re.sub(r"@HEX2\(([^)]*)\)@", lambda m: ",".join(
            "%02x" % b for b in (m.group(1) + "\0").encode("utf-16-le")), line)
        left = re.findall(r"@[A-Z0-9_]+@", line)
        if left:
            raise SystemExit("mkdist: unknown placeholder %s in a template" % left[0])
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def write(path, data, epoch):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    os.utime(path, (epoch, epoch))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=VARIANTS, required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--driverver", required=True)
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--x86", required=True)
    ap.add_argument("--amd64", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--templates", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if (a.variant == "testsigned") != bool(a.cert):
        raise SystemExit("mkdist: --cert is required for, and only for, the testsigned variant")
    if not re.match(r"^\d+\.\d+\.\d+\.\d+$", a.version):
        raise SystemExit("mkdist: --version %r" % a.version)
    name = "aerovblk-%s%s" % (a.version, "-testsigned" if a.variant == "testsigned" else "")
    stage = os.path.join(a.out, "stage", name)
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)

    for arch, src in (("x86", a.x86), ("amd64", a.amd64)):
        for f in ARCH_FILES:
            with open(os.path.join(src, f), "rb") as fh:
                write(os.path.join(stage, arch, f), fh.read(), a.epoch)
    if a.cert:
        with open(a.cert, "rb") as fh:
            write(os.path.join(stage, "aerovblk-test.cer"), fh.read(), a.epoch)
    values = {"VERSION": a.version, "DRIVERVER": a.driverver,
              "TESTSIGNED": "1" if a.variant == "testsigned" else "0"}
    for tmpl, enc in (("install.cmd", "ascii"), ("README.txt", "ascii"), ("bootdisk.reg", "utf-16")):
        with open(os.path.join(a.templates, tmpl), encoding="utf-8") as fh:
            text = render(fh.read(), a.variant, values)
        data = text.encode("ascii") if enc == "ascii" else b"\xff\xfe" + text.encode("utf-16-le")
        write(os.path.join(stage, tmpl), data, a.epoch)

    files = []
    for root, dirs, names in os.walk(stage):
        dirs.sort()
        for n in sorted(names):
            files.append(os.path.relpath(os.path.join(root, n), stage).replace(os.sep, "/"))
    files.sort()
    sums = "".join("%s  %s\r\n" % (hashlib.sha256(open(os.path.join(stage, f), "rb").read()).hexdigest(), f)
                   for f in files)
    write(os.path.join(stage, "SHA256SUMS"), sums.encode("ascii"), a.epoch)
    files = sorted(files + ["SHA256SUMS"])
    for root, dirs, _ in os.walk(stage):
        for d in dirs:
            os.utime(os.path.join(root, d), (a.epoch, a.epoch))
    os.utime(stage, (a.epoch, a.epoch))

    # zip: sorted entries, fixed date (UTC; DOS dates start in 1980), MS-DOS attributes.
    t = datetime.datetime.fromtimestamp(max(a.epoch, 315532800), datetime.timezone.utc)
    zpath = os.path.join(a.out, name + ".zip")
    with zipfile.ZipFile(zpath + ".tmp", "w") as z:
        for f in files:
            zi = zipfile.ZipInfo(f, date_time=(t.year, t.month, t.day, t.hour, t.minute, t.second))
            zi.create_system = 0
            zi.external_attr = 0x20          # FILE_ATTRIBUTE_ARCHIVE
            zi.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(stage, f), "rb") as fh:
                z.writestr(zi, fh.read(), compresslevel=9)
    os.replace(zpath + ".tmp", zpath)

    # ISO 9660 + Joliet (Windows' names) + Rock Ridge, ownership and modes normalised (-r).
    ipath = os.path.join(a.out, name + ".iso")
    volid = re.sub(r"[^A-Z0-9_]", "_", name.upper().replace("TESTSIGNED", "TEST"))[:32]
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(a.epoch), TZ="UTC")
    if os.path.exists(ipath + ".tmp"):
        os.unlink(ipath + ".tmp")
    r = subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", ipath + ".tmp", "-V", volid,
                        "-A", "aerovblk %s driver package" % a.version, "-p", "aerovblk mk/dist.mk",
                        "-J", "-joliet-long", "-r", "-iso-level", "3", stage],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout)
        raise SystemExit("mkdist: xorriso failed (%d)" % r.returncode)
    os.replace(ipath + ".tmp", ipath)
    print("mkdist: %s (%d files) and %s" % (zpath, len(files), ipath))
    return 0


if __name__ == "__main__":
    sys.exit(main())
