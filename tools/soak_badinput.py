"""Bad input for the soak (issue 15 item 4, docs/reliability.md), counted in its report:

* malformed AEROVBLK IOCTLs at every buffer length 0 .. sizeof(SRB_IO_CONTROL) +
  sizeof(AEROVBLK_QUERY_INFO) + 64, each with random header fields and random bytes under
  the header (`ioctl --fill-seed`); the expected SRB status,
  ReturnCode and reply Length come from tests/diag/malformed.py's oracle (the validation
  order of docs/diagnostics.md §3), checked by `expect` lines;
* random CDBs: every opcode 0x00..0xFF, random fields and allocation lengths, data
  directions that agree or disagree with the CDB; the oracle below is checked against the
  simulator's per-step output;
* device-side garbage on the contract device: config-space values (capacity, blk_size,
  seg_max) and used-ring ids.
Every process must end with no verifier finding (every SRB completed once) and no sanitizer
report.
"""
import os, random, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/diag"))
import malformed  # noqa: E402  (the IOCTL oracle)

SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")
IOCTL_MAX = malformed.HDR + malformed.INFO_SIZE + 64
# opcodes the driver implements (driver/scsi.c); every other one must get
# CHECK CONDITION, ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (5/20/00)
SUPPORTED = {0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x1A, 0x1B, 0x1E, 0x25, 0x28, 0x2A, 0x2E, 0x2F, 0x35,
             0x41, 0x42, 0x55, 0x5A, 0x88, 0x8A, 0x8E, 0x8F, 0x91, 0x93, 0x9E, 0xA0, 0xA8, 0xAA, 0xAE, 0xAF}
READS = {0x08, 0x28, 0xA8, 0x88}
WRITES = {0x0A, 0x2A, 0xAA, 0x8A}
CDB_RE = re.compile(r"^cdb: srb_status 0x([0-9a-f]{2}) \(([^)]*)\)\s+scsi_status 0x([0-9a-f]{2})"
                    r"(?:\s+sense key ([0-9A-F]) asc ([0-9A-F]{2}) ascq ([0-9A-F]{2}))?\s+transferred (\d+)")


def cdb_len(op):
    g = op >> 5
    return {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(g, 10)


def random_cdb(rng, op, blocks):
    n = cdb_len(op)
    b = [op] + [rng.randrange(256) for _ in range(n - 1)]
    if op in READS | WRITES and rng.random() < 0.7:
        # mostly plausible LBAs and lengths, so the deep paths run too
        lba, cnt = rng.randrange(blocks), rng.choice([0, 1, 8, 9])
        if n == 6:
            b[1], b[2], b[3], b[4] = (lba >> 16) & 0x1F, (lba >> 8) & 255, lba & 255, cnt
        elif n == 10:
            b[2:6] = lba.to_bytes(4, "big"); b[7:9] = cnt.to_bytes(2, "big")
        elif n == 12:
            b[2:6] = lba.to_bytes(4, "big"); b[6:10] = cnt.to_bytes(4, "big")
        else:
            b[2:10] = lba.to_bytes(8, "big"); b[10:14] = cnt.to_bytes(4, "big")
        b[n - 1] = 0
    return b


def cdb_problem(op, direction, m):
    """The oracle: None if the completion is right for this request."""
    if not m:
        return "no result line"
    srb, scsi = int(m.group(1), 16), int(m.group(3), 16)
    key = int(m.group(4), 16) if m.group(4) else None
    asc = int(m.group(5), 16) if m.group(5) else None
    st = srb & 0x3F
    if op not in SUPPORTED:
        if (st, scsi, key, asc) != (0x04, 2, 5, 0x20):
            return f"unsupported opcode {op:02x}: srb {srb:#x} scsi {scsi:#x} sense {key}/{asc}, expected CHECK CONDITION 5/20/00"
        return None
    rw_dir = "in" if op in READS else "out" if op in WRITES else None
    if rw_dir and direction != rw_dir and st == 0x01 and int(m.group(7)) != 0:
        return f"{op:02x} with data direction '{direction}' transferred data"
    if st in (0x01, 0x12):   # SUCCESS, DATA_OVERRUN (an underrun: less returned)
        return None if scsi == 0 else f"success with SCSI status {scsi:#x}"
    if st == 0x06:           # INVALID_REQUEST (no buffer where one is needed)
        return None
    if st == 0x04 and scsi == 2 and key in (5, 2, 6):   # ILLEGAL REQUEST, NOT READY, UNIT ATTENTION
        return None
    return f"{op:02x} ({direction}): srb {srb:#x} ({m.group(2)}) scsi {scsi:#x} sense {key}/{asc}: not an allowed answer"


def run_script(sim, backend, lines, workdir, name, extra):
    path = os.path.join(workdir, f"{name}.steps")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    cmd = [sim, "--backend", backend, "--size", "16M", "--disk", os.path.join(workdir, f"{name}.img"),
           "--timeout", "240"] + extra + ["script", path]
    p = subprocess.run(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return p, " ".join(cmd)


def ioctl_and_cdb(sim, backend, seed, ncdb, workdir, extra):
    rng = random.Random(seed)
    lines, exp_cdbs = [], []
    for L in range(IOCTL_MAX + 1):
        r = rng.random()
        c = malformed.Case(f"len {L}", L,
                           sig=None if r < 0.6 else rng.choice(["AEROVBL", "aerovblk", "".join(chr(rng.randrange(33, 127)) for _ in range(8))]),
                           hlen=None if rng.random() < 0.6 else rng.choice([rng.randrange(0, 64), rng.randrange(1 << 32)]),
                           length=None if rng.random() < 0.5 else rng.choice([rng.randrange(0, L + 8), rng.randrange(1 << 32)]),
                           code=None if rng.random() < 0.7 else rng.randrange(1 << 32),
                           fill=rng.randrange(1 << 31))   # random bytes under the header
        srb, rcode, _ = c.expected()
        lines.append(" ".join(c.args()))
        exp = [f"srb={srb}"] + ([f"return_code={rcode}"] if rcode is not None else [])
        lines.append("expect " + " ".join(exp))
    data = {}
    for n in (8, 24, 512, 4096, 4608):
        p = os.path.join(workdir, f"out{n}.bin")
        with open(p, "wb") as f:
            f.write(rng.randbytes(n))
        data[n] = p
    blocks = 16 * 2048
    for k in range(ncdb):
        op = k % 256 if k < 256 else rng.randrange(256)
        b = random_cdb(rng, op, blocks)
        d = rng.choice(["in", "in", "out", "none"])
        step = 'cdb "%s"' % " ".join("%02x" % x for x in b)
        if d == "in":
            step += " --in %d" % rng.choice([1, 8, 36, 96, 255, 512, 4096, 4608])
        elif d == "out":
            step += " --out " + data[rng.choice(list(data))]
        lines.append(step)
        exp_cdbs.append((op, d, step))
    p, cmd = run_script(sim, backend, lines, workdir, f"bad-{backend}", extra)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    problems = []
    res = [CDB_RE.match(l) for l in out.splitlines() if l.startswith("cdb:")]
    if len(res) != len(exp_cdbs):
        problems.append(f"{backend}: {len(res)} CDB results for {len(exp_cdbs)} CDBs")
    wrong = 0
    for (op, d, step), m in zip(exp_cdbs, res):
        pr = cdb_problem(op, d, m)
        if pr:
            wrong += 1
            if wrong <= 5:
                problems.append(f"{backend}: {step}: {pr}")
    if p.returncode != 0 or "Verifier: 0 findings" not in out:
        problems.append(f"{backend}: exit status {p.returncode} (an IOCTL expectation failed, or a finding): "
                        + "; ".join(l for l in err.splitlines() if "EXPECT" in l or "VERIFIER" in l)[:600])
    if SANITIZER_RE.search(err):
        problems.append(f"{backend}: sanitizer report")
    if problems:
        problems.append(f"{backend}: replay: cd {workdir} && {cmd}")
    return IOCTL_MAX + 1, len(exp_cdbs), wrong, problems


# device-side garbage (contract device): (device options, steps, what must hold)
def garbage_cases():
    rc = lambda lba: 'cdb "25 00 00 00 00 00 00 00 00 00" --in 8'
    return [
        ("blk_size=1048576", ["run --ios 300 --qd 4"], "blk_size beyond limits: logged, 512 used, I/O fine"),
        ("blk_size=1024", ["run --ios 300 --qd 4 --bs 4K"], "blk_size 1024: I/O fine"),
        ("seg_max=2", ["run --ios 300 --qd 4 --bs 512K"], "seg_max 2"),
        ("", ["run --ios 100 --qd 4", "control capacity=7", "sleep 100", rc(0), "expect sense=6/2a/09",
              rc(0), "expect srb=1 data=00000006"],
         "capacity 7 sectors: UNIT ATTENTION 6/2A/09 (capacity data changed), then READ CAPACITY last LBA 6"),
        ("", ["run --ios 100 --qd 4", "control capacity=4294967301", "sleep 100", rc(0), "expect sense=6/2a/09",
              rc(0), "expect srb=1 data=ffffffff"],
         "capacity > 2^32 sectors: UNIT ATTENTION, then READ CAPACITY(10) says FFFFFFFF"),
        ("seg_max=1", ["run --ios 200 --qd 4 --bs 4K"],
         "seg_max 1 (one data element per request): the disk starts, 512-byte requests"),
        ("", ["run --ios 100 --qd 4", "control config-interrupt", "control config-interrupt", "sleep 50",
              "run --ios 100 --qd 4"], "config interrupts without change"),
        ("", ["after 200 control bad-used-id", "run --seconds 1 --qd 8"], "used id out of range: reset, retried"),
        ("", ["after 200 control dup-used-id", "run --seconds 1 --qd 8"], "duplicate used id: reset, retried"),
        ("msix=off", ["after 200 control bad-used-id", "run --seconds 1 --qd 8"], "used id out of range, INTx"),
        ("", ["after 100 control garbage-used-len=1000000", "run --seconds 1 --qd 8"], "random used.len: ignored, data verified"),
        ("msix=off", ["after 100 control garbage-used-len=1000000", "run --seconds 1 --qd 8 --bs 64K"],
         "random used.len, INTx, 64 KiB"),
    ]


def device_garbage(sim, workdir, extra):
    problems, n = [], 0
    for i, (opts, steps, what) in enumerate(garbage_cases()):
        ex = (["--device-opts", opts] if opts else []) + extra
        p, cmd = run_script(sim, "contract", steps, workdir, f"garbage-{i}", ex)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        n += 1
        bad = []
        if p.returncode != 0 or "Verifier: 0 findings" not in out:
            bad.append(f"exit status {p.returncode}")
        if SANITIZER_RE.search(err):
            bad.append("sanitizer report")
        if bad:
            problems.append(f"device garbage '{opts} {'; '.join(steps)}' ({what}): {', '.join(bad)}; replay: cd {workdir} && {cmd}")
    return n, problems


def run_all(args, sim, drivers_map, drivers, backends):
    workdir = os.path.join(args.out, "bad-input")
    os.makedirs(workdir, exist_ok=True)
    tot = dict(ioctls=0, cdbs=0, wrong_status=0, device_garbage=0, problems=[])
    for i, backend in enumerate(backends):
        d = drivers[i % len(drivers)]
        extra = ["--driver", drivers_map[d]] if drivers_map.get(d) else []
        n_io, n_cdb, wrong, pr = ioctl_and_cdb(sim, backend, args.seed * 7 + i, 768, workdir, extra)
        tot["ioctls"] += n_io
        tot["cdbs"] += n_cdb
        tot["wrong_status"] += wrong
        tot["problems"] += pr
        print(f"{'FAIL' if pr else 'ok  '} bad input {backend}/{d}: {n_io} IOCTLs, {n_cdb} CDBs, {wrong} wrong", flush=True)
    if "contract" in backends:
        n, pr = device_garbage(sim, workdir, [])
        tot["device_garbage"] += n
        tot["problems"] += pr
        print(f"{'FAIL' if pr else 'ok  '} device garbage: {n} cases", flush=True)
    for p in tot["problems"]:
        print("     " + p, flush=True)
    return tot
