#!/usr/bin/python3
"""Mutation harness: does `make check` notice a planted bug?

  mutants.py run [--mutants ID,ID...] [--list FILE] [--out DIR] [--jobs N] [--all-checks]
                 [--keep] [--workdir DIR]
      Snapshot the CURRENT working tree (uncommitted and untracked files included) and
      its prebuilt out/ into a scratch directory, build it there (the baseline), run every
      claimed check once on the unmutated baseline, then for each mutant in sequence:
      copy the baseline, apply the mutation, build, run the mutant's claimed checks
      (tests/run-checks.sh with CHECK_FILTER=<check>) until one fails. Writes
      DIR/report.md (default out/mutants) and prints it. Exit 0 only if every mutant was
      killed; 1 if any survived or could not be judged; 2 on a harness failure.
  mutants.py verify [--mutants ...] [--list FILE]
      Apply every mutation in memory to the current working tree: each substitution must
      match exactly its stated count and change the file, each diff must apply. No build.
  mutants.py list [--list FILE]
      One line per mutant: id, area, file, claimed checks.

The mutant list (default tests/mutants/mutants.txt) and how to add a mutant:
docs/testing.md. Nothing here touches the working tree: every build and check runs in
the scratch copy (under $TMPDIR, removed afterwards unless --keep).
"""
import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIST = os.path.join(ROOT, "tests", "mutants", "mutants.txt")
MUTANT_DIR = os.path.join(ROOT, "tests", "mutants")
KEYS = {"area", "file", "desc", "checks", "sub", "patch", "build", "compiles", "build-error",
        "timeout", "note"}
# out/ entries not copied into the scratch tree: check scratch areas and logs (rebuilt by
# the checks), the Wine prefix (695 MB, only checks 51* use it), archives, our own output.
OUT_SKIP = {"tools-wine", "check-logs", "check-sim", "check-diag", "check-work", "dist",
            "mutants", "mutants-subset"}
# CHECK_DEPS entries that are phony and redo their work on every make (signing, archives):
# not part of the per-mutant build. (19a-catalog runs `make testsign` itself when stale.)
PHONY_SKIP = {"dist", "testsign", "deps"}
# Make variables of an enclosing make (jobserver fds) must not leak into ours; neither may
# an outer run-checks.sh's filter or x86 log.
ENV_DROP = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CHECK_FILTER",
            "AEROVBLK_X86_LOG", "CHECK_TIMEOUT"}


class HarnessError(Exception):
    pass


# --------------------------------------------------------------------------- the list

class Mutant:
    def __init__(self, mid, lineno):
        self.id = mid
        self.lineno = lineno
        self.area = self.file = self.desc = self.note = ""
        self.checks = []
        self.subs = []          # (old, new, count, lineno)
        self.patch = None
        self.build = None       # None: every CHECK_DEPS target; []: no build; [targets]
        self.compiles = True
        self.build_error = None
        self.timeout = 1800


def unescape(s, delim):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "n":
                out.append("\n")
            elif n == "t":
                out.append("\t")
            elif n == "\\":
                out.append("\\")
            elif n == delim:
                out.append(delim)
            else:
                out.append(c + n)      # any other escape is literal text (C, regex, ...)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def split_sub(value, where):
    """`s<d>OLD<d>NEW<d>COUNT` -> (old, new, count). OLD/NEW are literal text."""
    if len(value) < 2 or value[0] != "s":
        raise HarnessError("%s: sub must look like s|old|new|COUNT" % where)
    d = value[1]
    parts, cur, i = [], [], 2
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur.append(value[i:i + 2])
            i += 2
            continue
        if c == d and len(parts) < 2:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    if len(parts) != 3 or not parts[2].strip().isdigit():
        raise HarnessError("%s: sub must end with the exact match count: s%sold%snew%sCOUNT"
                           % (where, d, d, d))
    old, new = unescape(parts[0], d), unescape(parts[1], d)
    if not old:
        raise HarnessError("%s: empty pattern" % where)
    return old, new, int(parts[2])


def parse_list(path):
    mutants, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            where = "%s:%d" % (os.path.relpath(path, ROOT), n)
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = re.match(r"^\[([a-z0-9][a-z0-9-]*)\]\s*$", line)
            if m:
                cur = Mutant(m.group(1), n)
                if any(x.id == cur.id for x in mutants):
                    raise HarnessError("%s: duplicate mutant id %s" % (where, cur.id))
                mutants.append(cur)
                continue
            m = re.match(r"^([a-z-]+):\s?(.*)$", line)
            if not m or cur is None:
                raise HarnessError("%s: expected [id] or 'key: value', got %r" % (where, line))
            key, value = m.group(1), m.group(2)
            if key not in KEYS:
                raise HarnessError("%s: unknown key %r" % (where, key))
            if key == "sub":
                cur.subs.append(split_sub(value, where) + (n,))
            elif key == "checks":
                cur.checks = value.split()
            elif key == "build":
                cur.build = [] if value.strip() == "none" else value.split()
            elif key == "compiles":
                if value.strip() not in ("yes", "no"):
                    raise HarnessError("%s: compiles: yes|no" % where)
                cur.compiles = value.strip() == "yes"
            elif key == "build-error":
                cur.build_error = value.strip()
            elif key == "timeout":
                cur.timeout = int(value)
            elif key == "patch":
                cur.patch = value.strip()
            else:
                setattr(cur, key, value.strip())
    for m in mutants:
        where = "%s: [%s]" % (os.path.relpath(path, ROOT), m.id)
        if not m.area or not m.file or not m.desc:
            raise HarnessError("%s: area, file and desc are required" % where)
        if bool(m.subs) == bool(m.patch):
            raise HarnessError("%s: exactly one of sub (one or more) or patch" % where)
        if not m.checks and m.compiles:
            raise HarnessError("%s: no checks claim it" % where)
        if not m.compiles and not m.build:
            raise HarnessError("%s: compiles: no needs build: TARGET... (what must fail)" % where)
    return mutants


def select(mutants, spec):
    if not spec:
        return mutants
    ids = [s for s in re.split(r"[,\s]+", spec) if s]
    known = {m.id: m for m in mutants}
    bad = [i for i in ids if i not in known]
    if bad:
        raise HarnessError("unknown mutant(s): %s (see tools/mutants.py list)" % ", ".join(bad))
    return [known[i] for i in ids]


# --------------------------------------------------------------------------- mutating

def mutate_text(m, text):
    """The mutated text of m.file (substitutions only), or HarnessError."""
    for old, new, count, n in m.subs:
        got = text.count(old)
        if got != count:
            raise HarnessError("[%s] (line %d): %s: pattern %r occurs %d time(s), the list says %d"
                               " -- the mutant no longer applies; update tests/mutants/mutants.txt"
                               % (m.id, n, m.file, old if len(old) < 90 else old[:87] + "...", got, count))
        text = text.replace(old, new)
    return text


def apply_mutant(m, tree):
    """Mutates m.file under tree; returns the modification time written."""
    path = os.path.join(tree, m.file)
    if not os.path.isfile(path):
        raise HarnessError("[%s]: %s does not exist" % (m.id, m.file))
    before = open(path, "rb").read()
    if m.subs:
        after = mutate_text(m, before.decode("utf-8")).encode("utf-8")
        with open(path, "wb") as f:
            f.write(after)
    else:
        diff = os.path.join(MUTANT_DIR, m.patch)
        if not os.path.isfile(diff):
            raise HarnessError("[%s]: patch %s missing" % (m.id, diff))
        touched = set(re.findall(r"^\+\+\+ b/(\S+)", open(diff, encoding="utf-8").read(), re.M))
        if touched != {m.file}:
            raise HarnessError("[%s]: %s must change exactly file: %s (it changes %s)"
                               % (m.id, m.patch, m.file, sorted(touched)))
        for dry in (True, False):
            r = subprocess.run(["patch", "-p1", "-F0", "--forward", "--batch", "--no-backup-if-mismatch",
                                "-r", "-", "-s"] + (["--dry-run"] if dry else []) + ["-i", diff],
                               cwd=tree, capture_output=True, text=True)
            if r.returncode:
                raise HarnessError("[%s]: %s does not apply to %s: %s"
                                   % (m.id, m.patch, m.file, (r.stdout + r.stderr).strip()[:300]))
        after = open(path, "rb").read()
    if after == before:
        raise HarnessError("[%s]: the mutation did not change %s" % (m.id, m.file))
    # Written now: newer than everything the baseline built from the unmutated file
    # (cp -a kept the baseline's mtimes), so make rebuilds exactly what depends on it.
    return os.stat(path).st_mtime


def verify_all(mutants):
    problems = []
    for m in mutants:
        for c in m.checks:
            if not os.path.isfile(os.path.join(ROOT, "tests", "checks", c + ".sh")):
                problems.append("[%s]: claimed check %s: no tests/checks/%s.sh" % (m.id, c, c))
        tmp = tempfile.mkdtemp(prefix="avmut-verify.")
        try:
            dst = os.path.join(tmp, m.file)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            src = os.path.join(ROOT, m.file)
            if not os.path.isfile(src):
                raise HarnessError("[%s]: %s does not exist" % (m.id, m.file))
            shutil.copy2(src, dst)
            apply_mutant(m, tmp)
        except HarnessError as e:
            problems.append(str(e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return problems


# --------------------------------------------------------------------------- processes

def clean_env(tree):
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    tmpdir = os.path.join(tree, ".tmp")
    os.makedirs(tmpdir, exist_ok=True)
    env["TMPDIR"] = tmpdir
    return env


def procs():
    for p in os.listdir("/proc"):
        if p.isdigit():
            yield int(p)


def kill_leftovers(tree, sid=None):
    """Kills (by pid) processes still in our session sid, or running in / naming the
    scratch tree: what a check started and did not stop. Returns their descriptions."""
    me, uid, found = os.getpid(), os.getuid(), []
    for pid in procs():
        if pid == me:
            continue
        try:
            if os.stat("/proc/%d" % pid).st_uid != uid:
                continue
            stat = open("/proc/%d/stat" % pid).read()
            fields = stat[stat.rindex(")") + 2:].split()
            state, psid = fields[0], int(fields[3])
            cmd = open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
            try:
                cwd = os.readlink("/proc/%d/cwd" % pid)
            except OSError:
                cwd = ""
        except (OSError, ValueError, IndexError):
            continue
        if state == "Z":
            continue
        ours = ((sid is not None and psid == sid) or (tree + "/") in cmd or (tree + " ") in (cmd + " ")
                or cwd == tree or cwd.startswith(tree + "/"))
        if ours:
            try:
                os.kill(pid, signal.SIGKILL)
                found.append("%d %s" % (pid, cmd[:100]))
            except OSError:
                pass
    return found


def run(cmd, tree, log, timeout, env=None):
    """Runs cmd in its own session under tree; output to log. (rc, seconds, leftovers).
    rc None = our timeout hit."""
    t0 = time.time()
    with open(log, "ab") as out:
        out.write(("$ %s\n" % " ".join(cmd)).encode())
        out.flush()
        p = subprocess.Popen(cmd, cwd=tree, stdout=out, stderr=subprocess.STDOUT,
                             env=env or clean_env(tree), start_new_session=True)
        try:
            rc = p.wait(timeout=max(1, timeout))
        except subprocess.TimeoutExpired:
            rc = None
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    left = kill_leftovers(tree, p.pid)
    return rc, time.time() - t0, left


def tail(path, n=15):
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- snapshot

def copy_tree(src, dst, skip=()):
    os.makedirs(dst, exist_ok=True)
    names = [n for n in os.listdir(src) if n not in skip]
    if names:
        r = subprocess.run(["cp", "-a", "--"] + [os.path.join(src, n) for n in names] + [dst + "/"],
                           capture_output=True, text=True)
        if r.returncode:
            raise HarnessError("copy %s -> %s failed: %s" % (src, dst, r.stderr.strip()[:300]))


def snapshot(base):
    """The working tree as it is now (tracked, modified and untracked files, .git for
    SOURCE_DATE_EPOCH), mtimes kept, plus the prebuilt out/ (minus OUT_SKIP)."""
    copy_tree(ROOT, base, skip={"out"})
    if os.path.isdir(os.path.join(ROOT, "out")):
        copy_tree(os.path.join(ROOT, "out"), os.path.join(base, "out"), skip=OUT_SKIP)


def check_deps(tree, log):
    env = clean_env(tree)
    r = subprocess.run(["make", "-s", "--no-print-directory", "mutants-print-deps"], cwd=tree,
                       capture_output=True, text=True, env=env)
    if r.returncode:
        raise HarnessError("make mutants-print-deps failed: %s" % (r.stdout + r.stderr)[-500:])
    deps = [d for d in r.stdout.split() if d not in PHONY_SKIP]
    with open(log, "a") as f:
        f.write("CHECK_DEPS built per mutant: %s\n" % " ".join(deps))
    return deps


def newest_under(path, after):
    """True if any file under path was modified after `after`."""
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                if os.lstat(os.path.join(dirpath, f)).st_mtime > after:
                    return True
            except OSError:
                pass
    return False


# --------------------------------------------------------------------------- checks

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


def run_check(tree, name, timeout, log):
    """One check through tests/run-checks.sh with CHECK_FILTER=name.
    Returns (status 'pass'|'fail'|'skip'|'timeout', seconds, detail, path of the check's log)."""
    env = clean_env(tree)
    env["CHECK_FILTER"] = name
    env["CHECK_TIMEOUT"] = str(int(timeout))
    start = os.path.getsize(log) if os.path.exists(log) else 0
    # CHECK_FILTER is a substring match: checks whose names contain this one (19a-catalog
    # in 19a-catalog-wine) are set aside in the scratch tree for this run.
    cdir = os.path.join(tree, "tests", "checks")
    if not os.path.isfile(os.path.join(cdir, name + ".sh")):
        raise HarnessError("no check tests/checks/%s.sh" % name)
    hidden = [n for n in os.listdir(cdir) if n.endswith(".sh") and name in n[:-3] and n != name + ".sh"]
    for n in hidden:
        os.rename(os.path.join(cdir, n), os.path.join(cdir, n + ".mutants-hidden"))
    try:
        rc, secs, left = run(["bash", "tests/run-checks.sh"], tree, log, timeout + 60, env)
    finally:
        for n in hidden:
            os.rename(os.path.join(cdir, n + ".mutants-hidden"), os.path.join(cdir, n))
    with open(log, errors="replace") as f:
        f.seek(start)
        text = f.read()
    clog = os.path.join(tree, "out", "check-logs", name + ".log")
    if rc is None:
        return "timeout", secs, "run-checks.sh did not return in %ds" % (timeout + 60), clog
    m = SUMMARY.search(text)
    if not m:
        raise HarnessError("check %s: run-checks.sh printed no summary (rc=%s): %s" % (name, rc, text[-400:]))
    p, f, s = (int(x) for x in m.groups())
    if p + f + s != 1:
        raise HarnessError("CHECK_FILTER=%s selected %d checks, want exactly 1" % (name, p + f + s))
    detail = []
    if f:
        fl = re.search(r"^FAIL  %s \(rc=(\d+)" % re.escape(name), text, re.M)
        code = fl.group(1) if fl else "?"
        detail.append("rc=%s" % code + (" (timeout %ds)" % timeout if code in ("124", "137") else ""))
        first = re.search(r"^    (.*FAIL.*)$", text, re.M)
        if first:
            detail.append(first.group(1).strip()[:160])
    if left:
        detail.append("%d leftover process(es) killed" % len(left))
    return ("pass" if p else "fail" if f else "skip"), secs, "; ".join(detail), clog


def fmt_secs(s):
    s = int(round(s))
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


# --------------------------------------------------------------------------- the run

def cmd_run(args):
    mutants = select(parse_list(args.list), args.mutants)
    problems = verify_all(mutants)
    if problems:
        for p in problems:
            print("HARNESS ERROR: " + p)
        return 2
    outdir = os.path.abspath(args.out)
    logdir = os.path.join(outdir, "logs")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir, exist_ok=True)
    started = time.time()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    work = tempfile.mkdtemp(prefix="avmut-", dir=args.workdir)
    base = os.path.join(work, "base")
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True,
                           text=True).stdout.count("\n")
    results, baseline = [], {}
    print("mutants: %d selected; scratch %s" % (len(mutants), work), flush=True)
    try:
        # ---- baseline: snapshot, build, claimed checks
        t0 = time.time()
        snapshot(base)
        blog = os.path.join(logdir, "baseline-build.log")
        make = ["make", "--no-print-directory", "-j%d" % args.jobs]
        full = any(m.build is None for m in mutants if m.compiles)
        if full:
            deps = check_deps(base, blog)
            targets = deps
        else:
            deps = None
            targets = sorted({t for m in mutants if m.compiles for t in m.build})
        if targets:
            rc, secs, _ = run(make + targets, base, blog, 3600)
            if rc != 0:
                print(tail(blog, 30))
                raise HarnessError("the baseline (unmutated working tree) does not build: %s" % blog)
        print("baseline: snapshot + build %s" % fmt_secs(time.time() - t0), flush=True)
        # The claimed checks run once on the unmutated baseline, each when a mutant
        # first needs it (a check already failing there cannot kill anything).
        def base_check(c):
            if c not in baseline:
                clog = os.path.join(logdir, "baseline-checks.log")
                status, secs, detail, chk_log = run_check(base, c, args.check_timeout, clog)
                baseline[c] = (status, secs)
                if status != "pass" and os.path.exists(chk_log):
                    shutil.copy(chk_log, os.path.join(logdir, "baseline-%s.log" % c))
                print("baseline: %-32s %-7s %s" % (c, status.upper(), fmt_secs(secs)), flush=True)
            return baseline[c]

        # ---- mutants, one at a time
        for i, m in enumerate(mutants, 1):
            res = run_mutant(m, i, work, base, deps, base_check, logdir, args)
            results.append(res)
            print("[%d/%d] %-34s %-10s %s (%s)" % (i, len(mutants), m.id, res["status"],
                                                   res["killer"], fmt_secs(res["secs"])), flush=True)
    except HarnessError as e:
        print("HARNESS ERROR: %s" % e)
        write_report(outdir, mutants, results, baseline, stamp, time.time() - started, args, head, dirty,
                     fatal=str(e))
        return 2
    finally:
        if args.keep:
            print("kept %s" % work)
        else:
            kill_leftovers(work)
            shutil.rmtree(work, ignore_errors=True)
    report = write_report(outdir, mutants, results, baseline, stamp, time.time() - started, args, head, dirty)
    print(report)
    bad = [r for r in results if r["status"] != "KILLED"]
    return 1 if bad else 0


def run_mutant(m, i, work, base, deps, base_check, logdir, args):
    t0 = time.time()
    res = {"id": m.id, "status": "ERROR", "killer": "", "secs": 0.0, "detail": "", "skipped": []}
    tree = os.path.join(work, "m%02d" % i)
    mlog = os.path.join(logdir, m.id)
    os.makedirs(mlog, exist_ok=True)
    blog = os.path.join(mlog, "build.log")
    deadline = t0 + m.timeout
    base_spent = 0.0
    try:
        copy_tree(base, tree)
        stamp = apply_mutant(m, tree)
        make = ["make", "--no-print-directory", "-j%d" % args.jobs]
        if not m.compiles:
            # What must fail: the mutant's build targets (e.g. the 32-bit simulator).
            rc, secs, _ = run(make + m.build, tree, blog, deadline - time.time())
            text = open(blog, errors="replace").read()
            if rc != 0:
                if m.build_error and not re.search(m.build_error, text):
                    raise HarnessError("build of %s failed, but not with /%s/ (see %s)"
                                       % (" ".join(m.build), m.build_error, blog))
                res.update(status="KILLED", killer="build (%s)" % " ".join(m.build))
                return res
            res["detail"] = "%s built although the mutant should not compile" % " ".join(m.build)
        targets = deps if m.build is None else (m.build if m.compiles else [])
        if targets:
            rc, secs, _ = run(make + targets, tree, blog, deadline - time.time())
            if rc != 0:
                raise HarnessError("the mutant does not build (compiles: yes): %s\n%s" % (blog, tail(blog, 12)))
            if m.build is None:
                if not newest_under(os.path.join(tree, "out"), stamp):
                    raise HarnessError("nothing was rebuilt: %s is no input of CHECK_DEPS (use build: none)"
                                       % m.file)
            else:
                stale = [t for t in targets if not os.path.exists(os.path.join(tree, t))
                         or os.path.getmtime(os.path.join(tree, t)) < stamp]
                if stale:
                    raise HarnessError("build: %s not rebuilt after the mutation (does not depend on %s)"
                                       % (" ".join(stale), m.file))
        res["build_secs"] = time.time() - t0
        checks = m.checks
        if not checks and m.compiles:
            raise HarnessError("no checks claim it")
        clog = os.path.join(mlog, "checks.log")
        for c in checks:
            tb = time.time()
            bstatus, bsecs = base_check(c)
            spent = time.time() - tb           # baseline time is not the mutant's
            base_spent += spent
            deadline += spent
            if bstatus != "pass":
                res["skipped"].append(c)
                continue
            left = deadline - time.time()
            if left < 30:
                raise HarnessError("per-mutant timeout (%ds) reached before %s" % (m.timeout, c))
            limit = min(args.check_timeout, max(60, 4 * bsecs + 60), left - 10)
            status, secs, detail, chk_log = run_check(tree, c, limit, clog)
            if status in ("fail", "timeout"):
                if os.path.exists(chk_log):
                    shutil.copy(chk_log, os.path.join(mlog, c + ".log"))
                killer = c if not res["killer"] else res["killer"] + ", " + c
                res.update(status="KILLED", killer=killer)
                res["detail"] = (res["detail"] + "; " if res["detail"] else "") + "%s: %s" % (c, detail or status)
                if not args.all_checks:
                    break
            elif detail:
                res["detail"] = (res["detail"] + "; " if res["detail"] else "") + "%s: %s" % (c, detail)
        if res["status"] != "KILLED":
            if checks and len(res["skipped"]) == len(checks):
                res.update(status="NO-BASELINE",
                           detail="no claimed check passes on the unmutated tree: %s" % ", ".join(res["skipped"]))
            else:
                res.update(status="SURVIVED", killer="")
        return res
    except HarnessError as e:
        res.update(status="ERROR", detail=str(e))
        return res
    finally:
        res["secs"] = time.time() - t0 - base_spent
        kill_leftovers(tree)
        if not args.keep:
            shutil.rmtree(tree, ignore_errors=True)


def write_report(outdir, mutants, results, baseline, stamp, secs, args, head, dirty, fatal=None):
    by = {r["id"]: r for r in results}
    n = {s: sum(1 for r in results if r["status"] == s) for s in ("KILLED", "SURVIVED", "ERROR", "NO-BASELINE")}
    cmd = "make mutants" + (" MUTANTS=%s" % args.mutants if args.mutants else "")
    L = ["# Mutation testing report", "",
         "- date: %s" % stamp,
         "- command: `%s` (tools/mutants.py run%s)" % (cmd, " --mutants " + args.mutants if args.mutants else ""),
         "- tree: %s at HEAD %s plus %d uncommitted/untracked path(s) (the working tree, snapshotted)"
         % (ROOT, head, dirty),
         "- mutants: %d run of %d selected: %d killed, %d survived, %d errors, %d not judgeable (no claimed check"
         " passes on the baseline)" % (len(results), len(mutants), n["KILLED"], n["SURVIVED"], n["ERROR"],
                                       n["NO-BASELINE"]),
         "- total time: %s" % fmt_secs(secs), ""]
    if fatal:
        L += ["**Harness failure:** %s" % fatal, ""]
    L += ["| # | mutant | area | file | claimed checks | result | killed by | time |",
          "|---|---|---|---|---|---|---|---|"]
    for i, m in enumerate(mutants, 1):
        r = by.get(m.id)
        claimed = " ".join(m.checks) if m.checks else "(build)"
        if r is None:
            L.append("| %d | %s | %s | %s | %s | not run | | |" % (i, m.id, m.area, m.file, claimed))
            continue
        if r["skipped"]:
            claimed += " (baseline fails: %s)" % " ".join(r["skipped"])
        L.append("| %d | %s | %s | `%s` | %s | %s | %s | %s |" % (
            i, m.id, m.area, m.file, claimed, r["status"], r["killer"] or "—", fmt_secs(r["secs"])))
    L += ["", "## Mutants", ""]
    for i, m in enumerate(mutants, 1):
        r = by.get(m.id)
        L.append("- **%s** (%s): %s%s" % (m.id, m.area, m.desc,
                                           (" — %s" % r["detail"].replace("\n", " ")) if r and r["detail"] else ""))
    L += ["", "## Baseline (unmutated working tree)", "", "| check | result | time |", "|---|---|---|"]
    for c, (status, s) in baseline.items():
        L.append("| %s | %s | %s |" % (c, status.upper(), fmt_secs(s)))
    surv = [m for m in mutants if by.get(m.id, {}).get("status") == "SURVIVED"]
    if surv:
        L += ["", "## Survivors", ""]
        for m in surv:
            L.append("- **%s**: %s. Claimed by %s.%s" % (m.id, m.desc, ", ".join(m.checks),
                                                        (" Note: " + m.note) if m.note else ""))
    errs = [r for r in results if r["status"] in ("ERROR", "NO-BASELINE")]
    if errs:
        L += ["", "## Errors", ""]
        for r in errs:
            L.append("- **%s**: %s" % (r["id"], r["detail"].replace("\n", "\n  ")))
    L += ["", "Logs: %s/logs/<mutant>/ (build.log, checks.log, the killing check's log)." % os.path.relpath(outdir, ROOT)]
    text = "\n".join(L) + "\n"
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text)
    return text


def cmd_verify(args):
    mutants = select(parse_list(args.list), args.mutants)
    problems = verify_all(mutants)
    for p in problems:
        print("FAIL " + p)
    print("%d mutants, %d apply as written, %d do not" % (len(mutants), len(mutants) - len(problems),
                                                          len(problems)))
    return 1 if problems else 0


def cmd_list(args):
    for m in select(parse_list(args.list), args.mutants):
        print("%-34s %-22s %-28s %s" % (m.id, m.area, m.file, " ".join(m.checks) or "(build)"))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("run", cmd_run), ("verify", cmd_verify), ("list", cmd_list)):
        p = sub.add_parser(name)
        p.add_argument("--list", default=DEFAULT_LIST, help="the mutant list")
        p.add_argument("--mutants", default=os.environ.get("MUTANTS", ""),
                       help="comma-separated ids (default: all)")
        p.set_defaults(fn=fn)
        if name == "run":
            p.add_argument("--out", default=os.path.join(ROOT, "out", "mutants"))
            p.add_argument("--jobs", type=int, default=2, help="make -j for each build")
            p.add_argument("--check-timeout", type=int, default=600,
                           help="upper bound per check run (each also gets at most 4x its baseline time + 60 s)")
            p.add_argument("--all-checks", action="store_true",
                           help="run every claimed check, not only up to the first that fails")
            p.add_argument("--keep", action="store_true", help="keep the scratch trees")
            p.add_argument("--workdir", default=None, help="where the scratch trees go (default $TMPDIR)")
    args = ap.parse_args()
    try:
        return args.fn(args)
    except HarnessError as e:
        print("HARNESS ERROR: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
