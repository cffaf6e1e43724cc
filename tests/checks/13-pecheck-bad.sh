#!/usr/bin/env bash
# Every tools/pecheck.py `check` rule can fail, and every way it can: one bad input per
# sub-condition of every rule (tests/pe/mkbad.py mutates the good fixture image or its
# link map; an export and a foreign import DLL are built), for x86 and x64. Each must be
# rejected with its rule AND the message of that sub-condition, and ("exact") no other
# rule. The case list below is the specification: mkbad.py must make exactly these
# cases, and every self.fail(...) call in pecheck.py's Checker must be produced by at
# least one case, so a rule added without a bad input fails this check too.
# The build itself (mk/package.mk) refuses the built ones.
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL   # run make standalone even under `make check`
fail() { echo "FAIL: $*"; exit 1; }
t=out/pe-tests
make --no-print-directory -s PKG_SRCDIR=tests/pe/fixture PE_OUT=$t/good PKG_DIR=$t/good/package \
    $t/good/x86/aerovblk.sys $t/good/amd64/aerovblk.sys >/dev/null || fail "good fixture build failed"
exec /usr/bin/python3 - "$t" <<'PY'
import ast, os, re, shutil, subprocess, sys

t = sys.argv[1]
# (case, rule, exact, message regex searched in the failure's detail)
CASES = [
    ("not-a-pe",                        "format",          True,  r"DOS Header magic not found"),
    ("machine",                         "machine",         True,  r"^Machine 0x[0-9a-f]{4}, want"),
    ("optional-header-magic",           "machine",         True,  r"^optional header magic 0x(10b|20b), want"),
    ("subsystem-gui",                   "subsystem",       True,  r"^Subsystem 2, want NATIVE"),
    ("subsystem-version-10.0",          "subsysver",       True,  r"^subsystem version 10\.0 is newer"),
    ("subsystem-version-6.2",           "subsysver",       True,  r"^subsystem version 6\.2 is newer"),
    ("os-version-10.0",                 "subsysver",       True,  r"^OS version 10\.0 is newer"),
    ("os-version-6.2",                  "subsysver",       True,  r"^OS version 6\.2 is newer"),
    ("dll-flag",                        "characteristics", True,  r"^IMAGE_FILE_DLL set"),
    ("executable-image-clear",          "characteristics", True,  r"^IMAGE_FILE_EXECUTABLE_IMAGE clear"),
    ("relocs-stripped-flag",            "relocs",          True,  r"^IMAGE_FILE_RELOCS_STRIPPED set"),
    ("reloc-directory-va-zero",         "relocs",          True,  r"^no base relocations"),
    ("reloc-directory-size-zero",       "relocs",          True,  r"^no base relocations"),
    ("reloc-no-blocks",                 "relocs",          True,  r"^no base relocations"),
    ("reloc-only-padding",              "relocs",          True,  r"^no base relocations"),
    # a changed SectionAlignment moves every RVA: other rules may fail too
    ("section-alignment",               "alignment",       False, r"^SectionAlignment 0x2000 / FileAlignment 0x200,"),
    ("file-alignment",                  "alignment",       True,  r"^SectionAlignment 0x1000 / FileAlignment 0x400,"),
    ("no-import-table",                 "imports",         True,  r"^no import table"),
    ("import-dll-ntoskrnl",             "imports",         True,  r"^imports from ntoskrnl\.exe \(only storport\.sys"),
    ("duplicate-import-descriptor",     "imports",         True,  r"^duplicate import descriptors \['storport\.sys', 'storport\.sys'\]"),
    ("duplicate-import-descriptor-case", "imports",        True,  r"^duplicate import descriptors \['storport\.sys', 'STORPORT\.SYS'\]"),
    ("delay-imports",                   "imports",         True,  r"^delay-load imports present"),
    ("delay-imports-va-only",           "imports",         True,  r"^delay-load imports present"),
    ("delay-imports-size-only",         "imports",         True,  r"^delay-load imports present"),
    ("import-win8-export",              "allowlist",       True,  r"^storport\.sys!StorPortGetRequestInfo is not a Windows 7 SP1"),
    ("import-by-ordinal",               "allowlist",       True,  r"^import by ordinal 5 from storport\.sys"),
    ("checksum-wrong",                  "checksum",        True,  r"^CheckSum 0x[0-9a-f]{8}, computed"),
    ("checksum-zero",                   "checksum",        True,  r"^CheckSum 0x00000000, computed 0x0*[1-9a-f]"),
    ("text-writable",                   "wx",              True,  r"^section \.text is writable and executable"),
    ("idata-executable",                "wx",              True,  r"^section \.idata is writable and executable"),
    ("entry-not-driverentry",           "entry",           True,  r"^entry point RVA 0x[0-9a-f]+, _?DriverEntry(@8)? is at 0x"),
    ("entry-in-data",                   "entry",           True,  r"^entry point RVA 0x[0-9a-f]+ is not in an executable section"),
    ("map-without-driverentry",         "entry",           True,  r"^_?DriverEntry(@8)? not found in "),
    ("msvc-map-entry-mismatch",         "entry",           True,  r"^entry point RVA 0x[0-9a-f]+, _?DriverEntry(@8)? is at 0x"),
    ("tls-directory",                   "tls",             True,  r"^TLS directory present"),
    ("tls-directory-va-only",           "tls",             True,  r"^TLS directory present"),
    ("tls-directory-size-only",         "tls",             True,  r"^TLS directory present"),
    ("tls-section",                     "tls",             True,  r"^section \.tls present"),
    ("export-directory-va-only",        "exports",         True,  r"^export directory present"),
    ("export-directory-size-only",      "exports",         True,  r"^export directory present"),
]
# Built by the package rules from tests/pe/fixture: (name, rule, message regex, make args)
BUILT = [
    ("exports", "exports", r"export directory present \['FixtureExported", ["PE_EXTRA_CFLAGS=-DFIXTURE_EXPORT"]),
    ("ntoskrnl-import", "imports", r"imports from ntoskrnl\.exe",
     ["PE_EXTRA_CFLAGS=-DFIXTURE_NTOSKRNL", "PE_EXTRA_LIBS=-lntoskrnl"]),
]
LINE = re.compile(r"^FAIL ([a-z]+): (.*)$")
problems, n, seen = [], 0, []   # seen: (rule, detail) of every failure reported


def failures(out, image):
    got = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            detail = m.group(2)
            if detail.startswith(image + ": "):
                detail = detail[len(image) + 2:]
            got.append((m.group(1), detail))
    return got


def judge(label, rc, out, image, rule, exact, regex):
    global n
    got = failures(out, image)
    seen.extend(got)
    rules = sorted({r for r, _ in got})
    why = None
    if rc != 1:
        why = "pecheck rc=%d, want 1" % rc
    elif not any(r == rule and re.search(regex, d) for r, d in got):
        why = "no 'FAIL %s' matching /%s/" % (rule, regex)
    elif exact and rules != [rule]:
        why = "failed rules %s, want exactly [%s]" % (rules, rule)
    if why:
        problems.append("%s: %s" % (label, why))
        print("FAIL  %s: %s" % (label, why))
        print("\n".join("      " + l for l in out.splitlines()[-8:]))
    else:
        n += 1
        print("ok    %-40s %s: %s" % (label, rule, next(d for r, d in got if r == rule and re.search(regex, d))[:70]))


for a in ("x86", "amd64"):
    good, good_map, bad = "%s/good/%s/aerovblk.sys" % (t, a), "%s/good/%s/aerovblk.map" % (t, a), "%s/bad-%s" % (t, a)
    shutil.rmtree(bad, ignore_errors=True)
    r = subprocess.run(["/usr/bin/python3", "tests/pe/mkbad.py", a, good, good_map, bad])
    if r.returncode:
        print("FAIL: mkbad %s" % a); sys.exit(1)
    made = {}
    for line in open(os.path.join(bad, "manifest.tsv")):
        case, img, mp = line.rstrip("\n").split("\t")
        made[case] = (img, mp)
    want = [c[0] for c in CASES]
    if sorted(made) != sorted(want):
        problems.append("%s: mkbad.py made %s, this check expects %s" % (
            a, sorted(set(made) - set(want)) or "[]", sorted(set(want) - set(made)) or "[]"))
        print("FAIL  " + problems[-1])
    for case, rule, exact, regex in CASES:
        if case not in made:
            continue
        img, mp = made[case]
        r = subprocess.run(["/usr/bin/python3", "tools/pecheck.py", "check", "--arch", a,
                            "--def", "driver/storport-%s.def" % a, "--map", mp, img],
                           capture_output=True, text=True)
        judge("%s %s" % (a, case), r.returncode, r.stdout + r.stderr, img, rule, exact, regex)

# Built bad images: the package rules must refuse them at pecheck time.
for name, rule, regex, make_args in BUILT:
    d = "%s/built-%s" % (t, name)
    shutil.rmtree(d, ignore_errors=True)
    for a in ("x86", "amd64"):
        img = "%s/%s/aerovblk.sys" % (d, a)
        r = subprocess.run(["make", "--no-print-directory", "PKG_SRCDIR=tests/pe/fixture", "PE_OUT=" + d,
                            "PKG_DIR=%s/package" % d] + make_args + [img], capture_output=True, text=True)
        out = r.stdout + r.stderr
        if r.returncode == 0:
            problems.append("built-%s %s: the build accepted a bad image" % (name, a))
            print("FAIL  " + problems[-1])
            continue
        # the build runs pecheck on $@.tmp; it fails, so make's rc is 2: judge pecheck's lines
        judge("%s built-%s" % (a, name), 1, out, img + ".tmp", rule, False, regex)

# Every failure pecheck's Checker can report was produced by some case above.
src = open("tools/pecheck.py").read()
tree = ast.parse(src)
checker = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "Checker")
sites = []
for node in ast.walk(checker):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fail"
            and node.args and isinstance(node.args[0], ast.Constant)):
        msg = node.args[1] if len(node.args) > 1 else None
        if isinstance(msg, ast.BinOp) and isinstance(msg.op, ast.Mod):
            msg = msg.left
        if isinstance(msg, ast.Constant) and isinstance(msg.value, str):
            parts = re.split(r"(%%|%[-0-9.]*[a-z])", msg.value)
            regex = "".join("%" if p == "%%" else ".*" if p.startswith("%") else re.escape(p) for p in parts)
        else:
            regex = ".*"     # e.g. str(e): any message of that rule
        sites.append((node.lineno, node.args[0].value, regex))
uncovered = [(ln, rule, rx) for ln, rule, rx in sites
             if not any(r == rule and re.fullmatch(rx, d) for r, d in seen)]
for ln, rule, rx in uncovered:
    problems.append("tools/pecheck.py:%d: no bad input produces this '%s' failure (/%s/)" % (ln, rule, rx))
    print("FAIL  " + problems[-1])
print("%d bad inputs rejected as specified (%d cases x 2 arches + %d built x 2); "
      "%d failure sites of pecheck.py's Checker, %d without a bad input"
      % (n, len(CASES), len(BUILT), len(sites), len(uncovered)))
if n != 2 * (len(CASES) + len(BUILT)) or problems:
    print("FAIL: %d problem(s)" % len(problems))
    sys.exit(1)
PY
