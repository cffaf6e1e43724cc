#!/usr/bin/env bash
# driver/aerovblk.vcxproj (<ClCompile>) and driver/sources (SOURCES=) list exactly the
# driver/*.c files, so the Microsoft builds never drift from the Linux one.
#   tests/checks/16-project-files.sh          check (and prove the check can fail)
#   tests/checks/16-project-files.sh --fix    rewrite both lists from driver/*.c
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 - "$@" <<'PY'
import glob, os, re, sys
import xml.etree.ElementTree as ET

VCX, SOURCES = "driver/aerovblk.vcxproj", "driver/sources"
NS = "{http://schemas.microsoft.com/developer/msbuild/2003}"

def vcx_list(text):
    root = ET.fromstring(text.encode("utf-8"))
    return sorted(e.get("Include").replace("\\", "/") for e in root.iter(NS + "ClCompile")
                  if e.get("Include"))

def sources_list(text):
    m = re.search(r"^SOURCES\s*=((?:[^\n]*\\\r?\n)*[^\n]*)", text, re.M)
    if not m:
        return None
    return sorted(t for t in re.split(r"[\s\\]+", m.group(1)) if t)

def drift(name, listed, actual):
    if listed is None:
        return ["%s: no list found" % name]
    out = []
    for f in sorted(set(actual) - set(listed)):
        out.append("%s: missing %s" % (name, f))
    for f in sorted(set(listed) - set(actual)):
        out.append("%s: lists %s, which is not a driver/*.c file" % (name, f))
    if len(listed) != len(set(listed)):
        out.append("%s: lists a file twice" % name)
    return out

actual = sorted(os.path.basename(p) for p in glob.glob("driver/*.c"))
vcx = open(VCX, newline="").read()
src = open(SOURCES, newline="").read()

if sys.argv[1:] == ["--fix"]:
    nl = "\r\n" if "\r\n" in vcx else "\n"
    items = "".join('    <ClCompile Include="%s" />%s' % (f, nl) for f in actual)
    vcx = re.sub(r'(?:    <ClCompile Include="[^"]*" />\r?\n)+', lambda m: items, vcx, count=1)
    snl = "\r\n" if "\r\n" in src else "\n"
    body = "SOURCES=" + (" \\" + snl + "        ").join(actual)
    src = re.sub(r"^SOURCES\s*=(?:[^\n]*\\\r?\n)*[^\r\n]*", lambda m: body, src, count=1, flags=re.M)
    open(VCX, "w", newline="").write(vcx)
    open(SOURCES, "w", newline="").write(src)
    print("rewrote %s and %s: %s" % (VCX, SOURCES, " ".join(actual)))
    sys.exit(0)

problems = drift(VCX, vcx_list(vcx), actual) + drift(SOURCES, sources_list(src), actual)
for p in problems:
    print("FAIL:", p)
# The check can fail: a file added to driver/ but not to the projects is reported.
probe = actual + ["zz_new_file.c"]
if not (drift(VCX, vcx_list(vcx), probe) and drift(SOURCES, sources_list(src), probe)):
    print("FAIL: drift detection did not notice an extra driver source")
    problems.append("self-test")
if not problems:
    print("project files list exactly driver/*.c: %s" % " ".join(actual))
    print("(fix drift with: tests/checks/16-project-files.sh --fix)")
sys.exit(1 if problems else 0)
PY
