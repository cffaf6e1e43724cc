#!/usr/bin/env python3
"""Reliability soak (issue 15, docs/reliability.md): verified workloads over a matrix of
backends, drivers and device configurations under a random fault schedule drawn from a
seed, every SRB accounted.

A campaign is a sequence of *segments*. A segment is one aerovblk-sim process (`script`
command, --json) on a fresh image: a verified `run` with faults landing in its middle
(`after MS ...` steps), then the faults that need their own steps (I/O errors checked by
CDB, crash + dump + reload, hibernate + resume). Everything a segment does follows from
its seed and its forced parameters (backend, driver, fault, variant), so the replay
command printed on a failure regenerates the same script (thread timing aside).

New fault classes go in FAULTS, new pessimistic Windows variants in VARIANTS: one line.
"""
import argparse, hashlib, json, os, random, re, shlex, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the build tree (SOAK_BIN: a copy of out/ with host/, peloader/, package/, so a long
# campaign is not disturbed by rebuilds)
BIN = os.environ.get("SOAK_BIN", os.path.join(ROOT, "out"))
SIM = os.environ.get("SIM", os.path.join(BIN, "host/aerovblk-sim"))
DRIVERS = {  # name -> --driver argument (None: the host build linked into the simulator)
    "host": None,
    "amd64": os.path.join(BIN, "package/amd64/aerovblk.sys"),
    "x86": os.path.join(BIN, "package/x86/aerovblk.sys"),
}
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")
MiB = 1 << 20
DISK = 64 * MiB            # image size at the start of a segment
MAIN_SPAN = 32 * MiB       # the main workload: [0, 32M)
DUMP_OFF = 32 * MiB        # crash/hibernate instance writes [32M, 48M)
DUMP_SPAN = 16 * MiB
ERR_SECTOR = 56 * MiB // 512   # I/O-error sector (outside both regions)
FLUSH_OFF = 48 * MiB       # slow-flush FUA writes [48M, 52M) (below ERR_SECTOR)
FLUSH_SPAN = 4 * MiB


# ---- fault classes -------------------------------------------------------------------
# Each: name, backends, steps(ctx, t_ms) -> (timed "after" steps, steps after the run),
# extra simulator options, the evidence in the JSON that it happened and was survived
# (ctx counts how often it was drawn), and what "survived" means (docs/reliability.md).
def _qmp(cmd, **args):
    return "qmp " + json.dumps({"execute": cmd, "arguments": args}, separators=(",", ":"))


THROTTLE = dict(device="d0", bps=0, bps_rd=0, bps_wr=0, iops_rd=0, iops_wr=0)


def f_reset(c, t):
    return [f"after {t} reset"], []


def f_stall(c, t):
    if c.backend == "contract":
        return [f"after {t} control stall", f"after {t + 3000} control unstall"], []
    # QEMU's throttle (virtual clock under qtest) holds requests only with several in
    # flight; with one it merely slows down (measured: qd 1 never timed out)
    c.qd = max(c.qd, 4)
    return [f"after {t} " + _qmp("block_set_io_throttle", **THROTTLE, iops=1),
            f"after {t + 3000} " + _qmp("block_set_io_throttle", **THROTTLE, iops=0)], []


def f_grow(c, t):
    c.capacity += c.rng.choice([1, 4, 16]) * MiB
    if c.backend == "contract":
        return [f"after {t} control capacity={c.capacity // 512}"], []
    return [f"after {t} " + _qmp("block_resize", device="d0", size=c.capacity)], []


def f_power(c, t):
    return [f"after {t} power-cycle"], []


def f_needs_reset(c, t):
    return [f"after {t} control " + c.rng.choice(["needs-reset", "needs-reset-next"])], []


def f_ring(c, t):
    return [f"after {t} control " + c.rng.choice(["bad-used-id", "dup-used-id"])], []


def f_ioerr(c, t):
    lba = ERR_SECTOR - c.rng.randrange(8)   # the 8-block transfer covers ERR_SECTOR
    cdb_r = "28 00 %08x 00 00 08 00" % lba
    cdb_w = "2a 00 %08x 00 00 08 00" % lba
    fmt = lambda s: " ".join(s.replace(" ", "")[i:i + 2] for i in range(0, 20, 2))
    steps = []
    if c.backend == "contract":
        steps += ["control fail-next-read"]
    steps += [f'cdb "{fmt(cdb_r)}" --in 4096', "expect srb=4 scsi=2 sense=3/11/00 len=0"]
    if c.backend == "contract":
        steps += [f'cdb "{fmt(cdb_r)}" --in 4096', "expect srb=1 len=4096", "control fail-next-write"]
    steps += [f'cdb "{fmt(cdb_w)}" --out {c.datafile}', "expect srb=4 scsi=2 sense=3/0c/00"]
    if c.backend == "contract":
        steps += [f'cdb "{fmt(cdb_w)}" --out {c.datafile}', "expect srb=1"]
    c.blkdebug = c.backend == "qemu"
    return [], steps


def f_crash(c, t):
    n = c.rng.choice([256, 512])
    seg = dict(off=DUMP_OFF, span=DUMP_SPAN)
    return [], [f"crash {c.rng.randrange(1, 9)}", "dump-load",
                f"run --rw write --bs 64K --qd 1 --offset {seg['off']} --span {seg['span']} --ios {n} --seed {c.seed & 0xffff}",
                "expect errors=0 mismatches=0", "reload",
                f"run --rw read --bs 64K --qd 4 --offset {seg['off']} --span {seg['span']} --ios {n} --seed {c.seed & 0xffff}",
                "expect errors=0 mismatches=0"]


def hibernate_steps(n, seed, resume_step):
    """S4 with the hiber instance writing n 64 KiB chunks once (a chunk written twice would
    hold generation 2, not 1), then resume_step (`reload`: a fresh boot reads them back;
    `hibernate-resume`: the frozen instance continues and reads them back)."""
    return ["hibernate", "dump-load",
            f"run --rw write --bs 64K --qd 1 --offset {DUMP_OFF} --span {DUMP_SPAN} --ios {n} --seed {seed}",
            "expect errors=0 mismatches=0", resume_step,
            f"run --rw read --bs 64K --qd 4 --offset {DUMP_OFF} --span {DUMP_SPAN} --ios {n} --seed {seed} --verify-generation 1",
            "expect errors=0 mismatches=0"]


def f_hibernate(c, t):
    return [], hibernate_steps(c.rng.choice([128, DUMP_SPAN // 65536]), (c.seed >> 16) & 0xffff, "reload")


def f_slow_flush(c, t):
    # every FLUSH of the segment is held flush-delay-ms (dev_opts below); FUA writes
    # (WRITE + FLUSH in one SRB) must still complete SUCCESS, without reset or retry
    return [], [f"run --rw write --bs 4K --qd 4 --ios 64 --fua-pct 100 --offset {FLUSH_OFF} --span {FLUSH_SPAN} "
                f"--seed {(c.seed >> 8) & 0xffff}", "expect errors=0 mismatches=0"]


def f_rebalance(c, t):
    # PnP rebalance (facts §11.9): stop, resources moved, HwFindAdapter + HwInitialize
    # again on the same extension; I/O over the main span resumes, verified
    return [], ["pnp rebalance",
                f"run --rw randrw --bs 4K --qd 8 --ios 400 --span {MAIN_SPAN} --seed {(c.seed >> 24) & 0xffff}",
                "expect errors=0 mismatches=0"]


def f_hibernate_resume(c, t):
    # S4 of the same instance (facts §11.3): the hiber instance writes, a firmware
    # stand-in touches the device, the frozen instance continues and reads it back
    return [], hibernate_steps(c.rng.choice([64, 128]), (c.seed >> 32) & 0xffff, "hibernate-resume")


class Fault:
    def __init__(self, name, backends, steps, evidence, survived, opts=(), pending=None, dev_opts=()):
        self.name, self.backends, self.steps, self.evidence = name, backends, steps, evidence
        self.survived, self.opts, self.pending = survived, list(opts), pending
        self.dev_opts = list(dev_opts)   # appended to the contract device's --device-opts


BOTH = ("qemu", "contract")
A = lambda j: j["all_instances"]   # counters summed over every driver instance of the segment
FAULTS = [
    Fault("bus-reset", BOTH, f_reset, lambda j, n: A(j)["bus_resets"] >= n,
          "HwResetBus completes every SRB it owned with BUS_RESET; classpnp retries them"),
    Fault("srb-timeout", BOTH, f_stall, lambda j, n: A(j)["srb_timeouts"] >= 1 and A(j)["lu_resets"] >= 1,
          "device stall -> TimeOutValue -> LU reset SRB (then device/bus tiers) -> BUS_RESET, retried",
          opts=["--srb-timeout", "1"]),
    Fault("capacity-growth", BOTH, f_grow, lambda j, n: A(j)["bus_changes"] >= 1,
          "config interrupt -> BusChangeDetected -> READ CAPACITY sees the new size; I/O continues"),
    Fault("power-cycle", BOTH, f_power, lambda j, n: A(j)["power_cycles"] >= n,
          "Stop (D3: reads all ones) / Restart with requests drained; nothing lost or retried"),
    Fault("needs-reset", ("contract",), f_needs_reset, lambda j, n: A(j)["reset_detected"] >= 1,
          "0xA0B10C00 logged, ResetDetected, in-flight SRBs BUS_RESET and retried"),
    Fault("ring-corruption", ("contract",), f_ring, lambda j, n: A(j)["reset_detected"] >= 1,
          "bad/duplicate used id: logged (0xA0B10B0x), device reset, in-flight SRBs BUS_RESET and retried"),
    Fault("io-error", BOTH, f_ioerr,
          # the script's expect lines check each status; a failed one fails the run
          lambda j, n: j["exit_status"] == 0,
          "read -> CHECK CONDITION 03/11/00, write -> 03/0C/00 (not retried by classpnp); neighbours and later I/O fine"),
    Fault("crash-dump-reload", BOTH, f_crash,
          lambda j, n: any(i["dump_mode"] for i in j["instances"]) and len(j["instances"]) >= 3,
          "crash with writes in flight; dump instance (polled, HIGH_LEVEL) writes; next boot reads it back verified"),
    Fault("hibernate", BOTH, f_hibernate,
          lambda j, n: any(i["dump_mode"] for i in j["instances"]) and len(j["instances"]) >= 3,
          "S4: hiber instance writes; the resumed system reads generation 1 back verified"),
    # QEMU's throttling does not delay flushes: contract device only
    Fault("slow-flush", ("contract",), f_slow_flush, lambda j, n: j.get("device_flushes_delayed", 0) >= 1,
          "every FLUSH held 250 ms: FUA writes and SYNCHRONIZE CACHE complete SUCCESS, no reset, no retry",
          dev_opts=["flush-delay-ms=250"]),
    Fault("pnp-rebalance", BOTH, f_rebalance, lambda j, n: j.get("pnp_rebalances", 0) >= n,
          "flush, StorStopDevice, ScsiStopAdapter, BARs moved, HwFindAdapter + HwInitialize on the same extension; I/O resumes verified"),
    Fault("hibernate-resume", BOTH, f_hibernate_resume, lambda j, n: j.get("s4_resumes", 0) >= n,
          "S4 of the running instance: hiber instance writes, firmware resets the device, the frozen instance re-initialises and reads generation 1 back"),
]
FAULT_BY_NAME = {f.name: f for f in FAULTS}


# ---- pessimistic Windows 7 variants (issue 11) ---------------------------------------
# name, simulator options, interrupt modes it applies to (None: all). Add new ones here,
# e.g. Variant("adapter-control-locks-none", ["--adapter-control-locks", "none"]).
class Variant:
    def __init__(self, name, opts, irq=None, force_fault=None):
        self.name, self.opts, self.irq, self.force_fault = name, list(opts), irq, force_fault


VARIANTS = [
    Variant("default", []),
    Variant("dpc-delay", ["--dpc-delay-us", "300"]),
    Variant("isr-delay", ["--isr-delay-us", "300"]),
    Variant("foreign-intx", ["--foreign-intx", "2000"], irq=("intx",)),
    # lock-free Stop/Restart is the default; the other reading, with the power cycles
    Variant("acl-interrupt", ["--adapter-control-locks", "interrupt"], force_fault="power-cycle"),
    Variant("dpc-reentrant", ["--dpc-reentrant"]),
    # every adverse variant at once (docs/simulator.md); on the contract device this adds
    # reset-blocks=1 and flush-delay-ms=20
    Variant("win7-pessimistic", ["--win7-model", "pessimistic"]),
    # the D3 model (reads all ones while stopped) is always on: this variant makes sure
    # the segment power-cycles the adapter while the workload runs
    Variant("d3-model", [], force_fault="power-cycle"),
]
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}

IRQ_MODES = {  # mode -> device options per backend
    "msix2": {"qemu": "vectors=2", "contract": "msix_vectors=2"},
    "msix-shared": {"qemu": "vectors=1", "contract": "msix_vectors=1"},
    "intx": {"qemu": "vectors=0", "contract": "msix=off"},
}
QUEUE_SIZES = [16, 32, 64, 128, 256]
BLOCK_SIZES = [512, 4096, 4096, 8192, 16384, 65536, 131072, "max"]


class Ctx:
    pass


def seg_seed(campaign_seed, i):
    return int.from_bytes(hashlib.sha256(f"{campaign_seed}:{i}".encode()).digest()[:6], "big")


def make_segment(seed, backend=None, driver=None, fault=None, variant=None, seconds=None,
                 backends=BOTH, drivers=("host", "amd64", "x86"), workdir="."):
    """Everything from the seed: the cell of the matrix, the faults and their times."""
    rng = random.Random(seed)
    # the cell's backend, driver and variant come from a generator of their own, so a
    # replay that names them draws everything else exactly as the campaign did
    pick = random.Random(seed ^ 0x5A5A5A5A)
    c = Ctx()
    c.rng, c.seed = rng, seed
    c.backend = backend or pick.choice(list(backends))
    c.driver = driver or pick.choice(list(drivers))
    v = VARIANT_BY_NAME[variant] if variant else pick.choice(VARIANTS)
    irqs = list(v.irq) if v.irq else list(IRQ_MODES)
    c.irq = rng.choice(irqs)
    c.variant = v.name
    c.disk512e = c.backend == "qemu" and rng.random() < 0.4   # the contract device has no topology
    c.qsize = rng.choice(QUEUE_SIZES)
    bs = rng.choice(BLOCK_SIZES)
    c.bs = (512000 if c.backend == "contract" else 524288) if bs == "max" else bs
    c.qd = rng.choice([1, 4, 8, 16, 32]) if c.bs <= 131072 else rng.choice([1, 2, 4])
    c.seconds = seconds or 3    # main run length (s); faults land inside it
    c.capacity = DISK
    c.blkdebug = False
    c.datafile = os.path.join(workdir, "data.bin")
    # faults: the forced one, the variant's, and 0-2 more drawn from what this backend has
    pool = [f for f in FAULTS if c.backend in f.backends and not f.pending]
    chosen = []
    for name in (fault, v.force_fault):
        if name and FAULT_BY_NAME[name] not in chosen:
            chosen.append(FAULT_BY_NAME[name])
    for _ in range(rng.randrange(0, 3)):
        f = rng.choice(pool)
        if f not in chosen:
            chosen.append(f)
    if any(c.backend not in f.backends for f in chosen):
        raise SystemExit(f"soak: fault {fault} has no {c.backend} injection")
    timed, post, opts, counts = [], [], [], {}
    # A device stall (srb-timeout) goes first and alone: another reset during it would
    # complete the stalled requests before they time out; the others land after it.
    t_min = 100
    if any(f.name == "srb-timeout" for f in chosen):
        chosen.sort(key=lambda f: f.name != "srb-timeout")
        c.seconds = max(c.seconds, 5)
    for f in chosen:
        if f.name == "srb-timeout":
            t = rng.randrange(100, 600)
            t_min = t + 3300
        else:
            t = rng.randrange(t_min, max(t_min + 100, c.seconds * 1000 - 800))
        a, b = f.steps(c, t)
        timed += a
        post += b
        for o in f.opts:
            if o not in opts:
                opts.append(o)
        dev_extra = getattr(c, "dev_extra", [])
        c.dev_extra = dev_extra + [o for o in f.dev_opts if o not in dev_extra]
        counts[f.name] = counts.get(f.name, 0) + 1
    c.faults = counts
    run = (f"run --rw randrw --bs {c.bs} --qd {c.qd} --seconds {c.seconds} --seed {seed & 0xffffffff} "
           f"--span {MAIN_SPAN}")
    c.script = ["# aerovblk soak segment, seed %d" % seed] + timed + [run, "expect errors=0 mismatches=0"] + post
    c.runs = sum(1 for x in c.script if x.startswith("run "))
    dev = [IRQ_MODES[c.irq][c.backend]]
    if c.backend == "qemu":
        dev.append(f"queue-size={c.qsize}")
        if c.disk512e:
            dev.append("logical_block_size=512,physical_block_size=4096")
    else:
        dev.append(f"queue_size={c.qsize}")
        dev += getattr(c, "dev_extra", [])
    c.sim_opts = ["--size", str(DISK), "--device-opts", ",".join(dev)] + opts + v.opts
    if c.driver != "host":
        c.sim_opts += ["--driver", DRIVERS[c.driver]]
    return c


BLKDEBUG_CFG = """[inject-error]
event = "read_aio"
errno = "5"
sector = "%d"
once = "off"

[inject-error]
event = "write_aio"
errno = "5"
sector = "%d"
once = "off"
"""


def replay_cmd(c, extra):
    cmd = ["scripts/soak.sh", "--replay", str(c.seed), "--backend", c.backend, "--driver", c.driver,
           "--variant", c.variant, "--seg-seconds", str(c.seconds)]
    if c.forced_fault:
        cmd += ["--fault", c.forced_fault]
    return " ".join(shlex.quote(x) for x in cmd + extra)


def run_segment(c, outdir, timeout, extra_sim, dry_run=False):
    """Runs one segment; returns (result dict, list of problems)."""
    os.makedirs(outdir, exist_ok=True)
    with open(c.datafile, "wb") as f:
        f.write(random.Random(c.seed).randbytes(4096))
    img = os.path.join(outdir, "disk.img")
    disk = img
    if c.blkdebug:
        with open(os.path.join(outdir, "bd.cfg"), "w") as f:
            f.write(BLKDEBUG_CFG % (ERR_SECTOR, ERR_SECTOR))
        with open(img, "wb") as f:
            f.truncate(DISK)
        # QEMU's protocol syntax through --disk; the literal name is a symlink to the image,
        # so the simulator's own image checks read the real file
        disk = "blkdebug:bd.cfg:disk.img"
        link = os.path.join(outdir, disk)
        if not os.path.lexists(link):
            os.symlink("disk.img", link)
    with open(os.path.join(outdir, "steps.txt"), "w") as f:
        f.write("\n".join(c.script) + "\n")
    cmd = [SIM, "--json", "--timeout", str(timeout), "--backend", c.backend, "--disk", disk] + c.sim_opts + \
          extra_sim + ["script", "steps.txt"]
    with open(os.path.join(outdir, "command.txt"), "w") as f:
        f.write("cd %s && %s\n" % (shlex.quote(outdir), " ".join(shlex.quote(x) for x in cmd)))
    if dry_run:
        return None, []
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=outdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 60)
    except subprocess.TimeoutExpired as e:
        # the simulator's own watchdog (--timeout) did not end it: keep what it printed
        for name, data in (("stderr.txt", e.stderr), ("result.json", e.stdout)):
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(data or b"")
        raise
    dt = time.time() - t0
    err = p.stderr.decode(errors="replace")
    with open(os.path.join(outdir, "stderr.txt"), "w") as f:
        f.write(err)
    with open(os.path.join(outdir, "result.json"), "wb") as f:
        f.write(p.stdout)
    problems = []
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = None
        problems.append(f"no JSON (exit status {p.returncode})")
    res = dict(seed=c.seed, backend=c.backend, driver=c.driver, irq=c.irq, variant=c.variant,
               disk="512e" if c.disk512e else "512", queue_size=c.qsize, bs=c.bs, qd=c.qd,
               faults=c.faults, seconds=round(dt, 2), rc=p.returncode, ios=0, readback=0)
    if j is not None:
        rt, acct = j.get("runs_total", {}), j.get("srb_accounting", {})
        res.update(ios=rt.get("ios", 0), readback=rt.get("readback_reads", 0), errors=rt.get("errors", 0),
                   mismatches=rt.get("mismatches", 0),
                   image_chunks=rt.get("image_chunks_checked", 0), srb=acct,
                   recoveries=j.get("all_instances", {}),
                   class_retries=j.get("class_retries", 0), findings=j.get("findings", []),
                   log_ids=sorted({m for e in j.get("log", []) for m in re.findall(r"0x[0-9A-Fa-f]{8}", json.dumps(e))}))
        if p.returncode != 0 or j.get("exit_status") != 0:
            problems.append(f"exit status {p.returncode}")
        if j.get("findings"):
            problems.append("verifier findings: " + "; ".join(j["findings"][:3]))
        if rt.get("errors", 0) or rt.get("mismatches", 0):
            problems.append(f"{rt.get('errors', 0)} I/O errors, {rt.get('mismatches', 0)} mismatches")
        if acct.get("lost", 0) or acct.get("duplicates", 0):
            problems.append(f"SRB accounting: {acct.get('lost', 0)} lost, {acct.get('duplicates', 0)} completed twice or unowned")
        if acct.get("issued", 0) != acct.get("completed", 0) + acct.get("lost", 0) + acct.get("abandoned", 0):
            problems.append("SRB accounting does not balance: %s" % acct)
        if acct.get("test_dropped", 0):
            problems.append(f"{acct['test_dropped']} completion(s) dropped by --test-drop-completion")
        for name, n in c.faults.items():
            f = FAULT_BY_NAME[name]
            try:
                ok = f.evidence(j, n)
            except (KeyError, TypeError):
                ok = False
            if not ok:
                problems.append(f"fault {name}: no evidence it was injected and survived ({f.survived})")
        # injected I/O errors go through `cdb` steps (their statuses checked by `expect`):
        # the class layer's own traffic must never see a MEDIUM ERROR (a lost request)
        me = j.get("class_sense_keys", {}).get("MEDIUM_ERROR", 0)
        if me:
            problems.append(f"{me} MEDIUM ERROR completion(s) in the workload")
        if rt.get("runs", 0) != c.runs:
            problems.append(f"{rt.get('runs', 0)} verified runs, the segment has {c.runs}")
        if not rt.get("ios", 0):
            problems.append("no verified I/O")
    if SANITIZER_RE.search(err):
        problems.append("sanitizer report on stderr")
    if p.returncode == 3:
        problems.append("watchdog (--timeout) fired: hang")
    res["problems"] = problems
    return res


def summarize(results, args, started, commit, badinput=None):
    tot = dict(segments=len(results), verified_ios=0, readback_reads=0, failed_segments=0, lost_srbs=0,
               duplicate_srbs=0, mismatches=0, findings=0, srbs_issued=0, class_retries=0)
    per_cell, faults, variants, rec, rate = {}, {}, {}, {}, {}
    for r in results:
        tot["verified_ios"] += r["ios"]
        tot["readback_reads"] += r["readback"]
        tot["failed_segments"] += bool(r["problems"])
        acct = r.get("srb", {})
        tot["lost_srbs"] += acct.get("lost", 0)
        tot["duplicate_srbs"] += acct.get("duplicates", 0)
        tot["srbs_issued"] += acct.get("issued", 0)
        tot["findings"] += len(r.get("findings", []))
        tot["class_retries"] += r.get("class_retries", 0)
        tot["mismatches"] += r.get("mismatches", 0)
        tot["io_errors"] = tot.get("io_errors", 0) + r.get("errors", 0)
        key = f"{r['backend']}/{r['driver']}/{r['irq']}"
        per_cell[key] = per_cell.get(key, 0) + r["ios"]
        rk = f"{r['backend']}/{r['driver']}"
        x = rate.setdefault(rk, dict(ios=0, seconds=0.0))
        x["ios"] += r["ios"]
        x["seconds"] = round(x["seconds"] + r.get("seconds", 0), 2)
        for k, n in r["faults"].items():
            faults[k] = faults.get(k, 0) + n
        variants[r["variant"]] = variants.get(r["variant"], 0) + 1
        for k, n in r.get("recoveries", {}).items():
            rec[k] = rec.get(k, 0) + n
    return dict(commit=commit, started=started, campaign_seed=args.seed, totals=tot, verified_ios_by_backend_driver_irq=per_cell,
                # wall-clock rate of whole segments (start-up, faults, read-back and image checks included)
                rate_by_backend_driver={k: dict(v, ios_per_s=round(v["ios"] / v["seconds"], 1) if v["seconds"] else 0)
                                        for k, v in sorted(rate.items())},
                faults_injected=faults, pending_fault_classes={f.name: f.pending for f in FAULTS if f.pending},
                variants=variants, recoveries=rec, bad_input=badinput,
                failures=[dict(seed=r["seed"], problems=r["problems"], replay=r["replay"], kept=r["dir"])
                          for r in results if r["problems"]])


def human(s, secs):
    t = s["totals"]
    out = [f"aerovblk soak: commit {s['commit']}, seed {s['campaign_seed']}, {secs:.0f} s",
           f"  segments {t['segments']} ({t['failed_segments']} failed), verified I/Os {t['verified_ios']} "
           f"(+{t['readback_reads']} read-back reads), SRBs issued {t['srbs_issued']}",
           f"  lost SRBs {t['lost_srbs']}, completed twice {t['duplicate_srbs']}, mismatches {t['mismatches']}, "
           f"I/O errors {t.get('io_errors', 0)}, findings {t['findings']}, "
           f"class retries {t['class_retries']}",
           "  verified I/Os by backend/driver/interrupts:"]
    out += [f"    {k:34s} {v}" for k, v in sorted(s["verified_ios_by_backend_driver_irq"].items())]
    out.append("  verified I/Os per second of segment time: " +
               ", ".join(f"{k} {v['ios_per_s']}" for k, v in s["rate_by_backend_driver"].items()))
    out.append("  faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(s["faults_injected"].items())))
    for k, v in s["pending_fault_classes"].items():
        out.append(f"  pending: {k} ({v})")
    out.append("  variants: " + ", ".join(f"{k} {v}" for k, v in sorted(s["variants"].items())))
    out.append("  recoveries: " + ", ".join(f"{k} {v}" for k, v in sorted(s["recoveries"].items())))
    if s.get("bad_input"):
        b = s["bad_input"]
        out.append(f"  bad input: {b['ioctls']} malformed IOCTLs, {b['cdbs']} random CDBs, {b['device_garbage']} device-garbage "
                   f"segments; {b['wrong_status']} wrong statuses, {len(b['problems'])} problems")
    for f in s["failures"]:
        out.append(f"  FAILED seed {f['seed']}: {'; '.join(f['problems'])}")
        out.append(f"    replay: {f['replay']}")
        out.append(f"    kept:   {f['kept']}")
    out.append("  RESULT: " + ("PASS" if not s["failures"] and not (s.get("bad_input") or {}).get("problems") else "FAIL"))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="campaign seed (segment seeds derive from it)")
    ap.add_argument("--seg-seconds", type=int, default=3, help="length of each segment's main run (s)")
    ap.add_argument("--total-ios", type=int, default=0, help="stop after this many verified I/Os")
    ap.add_argument("--seconds", type=int, default=0, help="stop starting segments after this long")
    ap.add_argument("--segments", type=int, default=None, help="stop after this many segments (0: only --bad-input)")
    ap.add_argument("--backends", default="qemu,contract")
    ap.add_argument("--drivers", default="host,amd64,x86")
    ap.add_argument("--every-fault", action="store_true",
                    help="force each fault class and each variant in turn (the bounded soak)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out/soak"), help="work and report directory")
    ap.add_argument("--timeout", type=int, default=240, help="per-segment watchdog (simulator --timeout)")
    ap.add_argument("--keep", action="store_true", help="keep passing segments' files too")
    ap.add_argument("--bad-input", action="store_true", help="also run the bad-input segments (item 4)")
    ap.add_argument("--stop-on-failure", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="write each segment's script and command, run nothing")
    # replay of one segment
    ap.add_argument("--replay", type=int, metavar="SEGMENT_SEED")
    ap.add_argument("--backend"); ap.add_argument("--driver"); ap.add_argument("--fault"); ap.add_argument("--variant")
    ap.add_argument("--sim-opt", action="append", default=[], help="extra simulator option (repeatable; e.g. "
                    "--sim-opt=--test-drop-completion=50, the negative control)")
    ap.add_argument("--json-report", action="store_true", help="--report as JSON")
    ap.add_argument("--report", nargs="+", metavar="DIR", help="summarize the segments.jsonl of earlier runs, run nothing")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    if args.report:
        results = [json.loads(l) for d in args.report for l in open(os.path.join(d, "segments.jsonl"))]
        secs = sum(r.get("seconds", 0) for r in results)
        s = summarize(results, args, "-", "see each run", None)
        s["seconds"] = round(secs, 1)
        print(json.dumps(s, indent=1) if args.json_report else human(s, secs))
        return 1 if s["failures"] else 0
    if args.fault and (args.fault not in FAULT_BY_NAME or FAULT_BY_NAME[args.fault].pending):
        ap.error(f"--fault: one of {', '.join(f.name for f in FAULTS if not f.pending)}")
    if args.variant and args.variant not in VARIANT_BY_NAME:
        ap.error(f"--variant: one of {', '.join(VARIANT_BY_NAME)}")
    if args.replay is None and not args.every_fault and args.segments is None and not args.seconds \
            and not args.total_ios:
        ap.error("give --seconds, --total-ios, --segments, --every-fault or --replay")
    backends = tuple(args.backends.split(","))
    drivers = tuple(args.drivers.split(","))
    for d in drivers:
        if d not in DRIVERS:
            ap.error(f"--drivers: {d}? (host, amd64, x86)")
        if DRIVERS[d] and not os.path.exists(DRIVERS[d]):
            ap.error(f"{DRIVERS[d]} missing (make package)")
    if not os.access(SIM, os.X_OK):
        ap.error(f"{SIM} missing (make {os.path.relpath(SIM, ROOT)})")
    extra = []
    for o in args.sim_opt:
        extra += o.split("=", 1) if o.startswith("--") and "=" in o else [o]
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL).stdout.decode().strip() or "unknown"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    plan = []   # (seed, backend, driver, fault, variant)
    if args.replay is not None:
        plan = [(args.replay, args.backend, args.driver, args.fault, args.variant)]
    elif args.every_fault:
        # each fault class once (backends alternating where both have it), each variant
        # at least once, the drivers in turn; random extra faults come on top
        live = [f for f in FAULTS if not f.pending]
        for i, f in enumerate(live):
            bs = [b for b in backends if b in f.backends]
            if not bs:
                continue
            plan.append((seg_seed(args.seed, i), bs[i % len(bs)], drivers[i % len(drivers)], f.name,
                         VARIANTS[i % len(VARIANTS)].name))
        for k, v in enumerate(VARIANTS[len(live):]):
            i = len(live) + k
            plan.append((seg_seed(args.seed, i), backends[i % len(backends)], drivers[i % len(drivers)], None, v.name))
    results = []
    i = 0
    fault_rr = [f.name for f in FAULTS if not f.pending]
    while True:
        if plan:
            if i >= len(plan):
                break
            seed, b, d, fault, variant = plan[i]
        else:
            if args.segments is not None and i >= args.segments:
                break
            if args.total_ios and sum(r["ios"] for r in results) >= args.total_ios:
                break
            if args.seconds and time.time() - t0 >= args.seconds:
                break
            seed = seg_seed(args.seed, i)
            b, d, variant = None, None, None
            fault = fault_rr[i % len(fault_rr)]   # every class in turn, others drawn at random
            rb = random.Random(seed)
            b = rb.choice([x for x in backends if x in FAULT_BY_NAME[fault].backends] or [None])
            if b is None:
                i += 1
                continue
        segdir = os.path.join(args.out, f"seg-{i:05d}-{seed}")
        c = make_segment(seed, b, d, fault, variant, seconds=args.seg_seconds, backends=backends, drivers=drivers,
                         workdir=segdir)
        c.forced_fault = fault
        rep = replay_cmd(c, [f"--sim-opt={o}" for o in args.sim_opt])
        try:
            r = run_segment(c, segdir, args.timeout, extra, args.dry_run)
            if args.dry_run:
                print(f"{segdir}: {' '.join(c.faults) or '-'}\n     replay: {rep}")
                i += 1
                continue
        except subprocess.TimeoutExpired:
            r = dict(seed=seed, backend=c.backend, driver=c.driver, irq=c.irq, variant=c.variant, faults=c.faults,
                     ios=0, readback=0, problems=["segment did not end (killed)"])
        r["replay"], r["dir"] = rep, segdir
        results.append(r)
        tag = "FAIL" if r["problems"] else "ok  "
        print(f"{tag} seg {i} seed {seed} {c.backend}/{c.driver}/{c.irq} {c.variant} q{c.qsize} bs{c.bs} qd{c.qd}"
              f"{' 512e' if c.disk512e else ''} faults {','.join(c.faults) or '-'}: {r['ios']} I/Os, "
              f"{r.get('seconds', 0)} s", flush=True)
        for p in r["problems"]:
            print(f"     {p}", flush=True)
        if r["problems"]:
            print(f"     replay: {rep}\n     kept: {segdir}", flush=True)
        elif not args.keep:
            shutil.rmtree(segdir, ignore_errors=True)
        with open(os.path.join(args.out, "segments.jsonl"), "a") as f:
            f.write(json.dumps(r) + "\n")
        i += 1
        if r["problems"] and args.stop_on_failure:
            break
    badinput = None
    if args.bad_input:
        import soak_badinput
        badinput = soak_badinput.run_all(args, SIM, DRIVERS, drivers, backends)
    s = summarize(results, args, started, commit, badinput)
    secs = time.time() - t0
    s["seconds"] = round(secs, 1)
    s["command"] = " ".join(shlex.quote(x) for x in sys.argv)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(s, f, indent=1)
    txt = human(s, secs)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(txt + "\n")
    print(txt)
    bad = s["failures"] or (badinput and badinput["problems"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
