/*
 * aerovblk-sim: runs the aerovblk miniport in a user-space StorPort with Windows 7
 * semantics against QEMU's virtio-blk device or the in-process Aero-contract device.
 * Commands: info, run, cdb, ioctl, script. `aerovblk-sim --help`; docs/simulator.md.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "contract_dev.h"
#include "workload.h"
#include "aerovblk_diagfmt.h"

/* The host-built driver's entry point; weak so the simulator core can also be linked
 * with a test miniport (tests/unit/sim_fake_miniport.c) or run a loaded .sys. */
extern NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath) __attribute__((weak));
/* Provided by the PE loader glue (sim/pe/, issue 8) when linked in. */
extern int sim_load_sys_driver(const char *path, void **entry, char *err, size_t errlen) __attribute__((weak));

/* ------------------------------------------------------------------------------ */
struct opts {
    const char *disk;
    uint64_t size;
    const char *device_opts, *drive_opts;
    const char *backend;
    const char *driver;
    bool json, msi, dump;
    bool ideal;   /* --ideal-driver: run without a miniport (sim/ideal.c) */
    int msi_messages;
    unsigned srb_timeout;
    unsigned reset_tiers;
    uint64_t ram;
    unsigned timeout;
    /* run */
    struct sim_workload_opts wl;
    unsigned power_cycle_ms;   /* run: a sleep/resume cycle every N ms while the workload runs */
    /* cdb */
    const char *cdb_hex;
    unsigned in_len;
    const char *out_file;
    /* ioctl */
    const char *signature;
    long long code, header_len, length, buffer_size, return_code;
    bool raw;   /* ioctl --raw: the buffer as sent and as the driver left it, in hex */
};

static void usage(FILE *f)
{
    fputs(
"usage: aerovblk-sim [options] COMMAND [command options]\n"
"\n"
"Runs the aerovblk StorPort miniport in a simulated Windows 7 StorPort against a\n"
"virtio-blk device: QEMU's real device model (default) or the Aero contract device.\n"
"Windows' rules (IRQL, locks, SRB ownership) are verified; any violation, I/O error\n"
"or data mismatch makes the exit status non-zero.\n"
"\n"
"Commands:\n"
"  info                      bring the disk up as Windows 7 does and describe it\n"
"  run                       verified workload (default command)\n"
"  cdb HEX                   send one CDB (e.g. \"12 00 00 00 24 00\"); print SRB status,\n"
"                            SCSI status, sense and data\n"
"  ioctl                     send SRB_IO_CONTROL AEROVBLK QUERY and decode the reply\n"
"  script FILE               run the steps in FILE (see docs/simulator.md)\n"
"\n"
"Common options:\n"
"  --disk PATH               raw image (created sparse if missing; default: a temporary file)\n"
"  --size BYTES              size when creating (suffix K/M/G/T; default 256M)\n"
"  --backend qemu|contract   device model (default qemu)\n"
"  --device-opts 'k=v,...'   QEMU: appended to -device virtio-blk-pci; contract: its options\n"
"  --drive-opts 'k=v,...'    QEMU: appended to -drive\n"
"  --no-msi                  no message interrupts (INF without MSISupported): INTx\n"
"  --msi-messages N          grant at most N messages (MessageNumberLimit)\n"
"  --dump-mode               load the driver as the crash-dump stack does (NULL DriverEntry\n"
"                            arguments, \"dump=1\", no interrupts, HwInterrupt polled)\n"
"  --srb-timeout S           override every SRB's TimeOutValue (seconds)\n"
"  --reset-tiers LIST        StorPort's resets after a timeout, in order (default lu,device,bus)\n"
"  --ram BYTES               guest RAM (default 256M)\n"
"  --fragmented-memory[=N]   no physically contiguous run above N bytes (default 128K): a\n"
"                            late PnP start on a fragmented x86 machine; a larger uncached\n"
"                            extension fails\n"
"  --timeout S               give up (exit 3) after S seconds in total (default 300)\n"
"  --driver PATH.sys         run a shipped driver binary (needs the PE loader)\n"
"  --json                    one JSON object on stdout instead of text\n"
"  -v, --verbose             more output (twice: driver debug prints); -q quiet\n"
"\n"
"run options:\n"
"  --rw read|write|randread|randwrite|randrw   (default randrw)\n"
"  --bs BYTES (default 4096)   --qd N (default 1)   --ios N | --seconds S (default 1000 I/Os)\n"
"  --seed N   --offset BYTES   --span BYTES   --write-pct P (randrw, default 50)\n"
"  --fua-pct P                 writes with FUA set (default 10 when MODE SENSE reports DPOFUA)\n"
"  --ideal-driver              no miniport: the simulator runs the workload on a virtqueue\n"
"                              of its own (VERSION_1 only, polled): the baseline of make bench\n"
"  --power-cycle-every MS      sleep/resume (Stop, Restart) every MS ms during the run\n"
"  --dpc-delay-us N, --isr-delay-us N  stretch the driver's DPC / interrupt routine: at\n"
"                              random register accesses and lock calls, sleep up to N us\n"
"  --foreign-intx HZ           INTx shared with another device: HwInterrupt is also called HZ\n"
"                              times a second for interrupts that are not ours\n"
"  --adapter-control-locks interrupt|none  ScsiStopAdapter/ScsiRestartAdapter at DIRQL holding\n"
"                              the interrupt lock, or (default) at DISPATCH_LEVEL holding no\n"
"                              lock while interrupts and DPCs are delivered meanwhile\n"
"  --dpc-reentrant             the same DPC may run on two threads at once\n"
"  --s4-adapter-control on|off hibernate / hibernate-resume with ScsiStopAdapter and\n"
"                              ScsiRestartAdapter around them, or no call at all (default off)\n"
"  --s4-firmware on|off        at hibernate-resume a firmware stand-in first resets the device\n"
"                              and runs a ring of its own (default on)\n"
"  --s4-gap-ms N               wall-clock time a hibernation takes (default 30000)\n"
"  --dump-config saved|fresh   dump-load's ConfigInfo: the normal instance's saved one\n"
"                              (default) or fresh defaults\n"
"  --second-uncached same|null a second StorPortGetUncachedExtension (pnp rebalance) returns\n"
"                              the first address or NULL (default null)\n"
"  --expect-removal            the device goes away during the run: NO_DEVICE failures are\n"
"                              counted (no_device), not errors\n"
"  --verify-generation G       every chunk must already hold generation G of the pattern\n"
"                              (written by an earlier run with the same --seed, --bs, --offset)\n"
"  --no-readback               skip the read-back pass (written chunks read again after the flush)\n"
"  test only: --no-image-check (skip the image-file comparison), --corrupt-image N (flip a\n"
"                              byte in N written chunks of the image file after the flush)\n"
"  test only: --test-drop-completion N  the port swallows the Nth READ/WRITE completion\n"
"                              (a lost SRB: the soak's negative control; never in real use)\n"
"\n"
"cdb options:  --in N (bytes to read)  |  --out FILE (data to send)\n"
"ioctl options: --signature S  --code N  --header-length N  --length N  --buffer-size N\n"
"               --return-code N (sent ReturnCode)  --raw (buffer bytes sent and returned)\n"
"\n"
"Exit status: 0 ok; 1 error, mismatch or verifier finding; 2 usage; 3 timeout.\n", f);
}

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t m = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': m = 1ull << 10; break;
    case 'M': m = 1ull << 20; break;
    case 'G': m = 1ull << 30; break;
    case 'T': m = 1ull << 40; break;
    }
    if (*end == 'x' || (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) return strtoull(s, NULL, 0);
    return (uint64_t)(v * (double)m);
}

enum { O_DISK = 256, O_SIZE, O_BACKEND, O_DEVOPTS, O_DRIVEOPTS, O_NOMSI, O_MSIMSG, O_DUMP, O_SRBTMO, O_RAM,
       O_TIMEOUT, O_DRIVER, O_JSON, O_RW, O_BS, O_QD, O_IOS, O_SECONDS, O_SEED, O_OFFSET, O_SPAN, O_WPCT,
       O_IN, O_OUT, O_SIG, O_CODE, O_HLEN, O_LEN, O_BUFSZ, O_HELP, O_TIERS, O_PCYCLE, O_XREMOVAL, O_VGEN,
       O_FUAPCT, O_RETCODE, O_RAW, O_DPCDELAY, O_ISRDELAY, O_FOREIGN, O_TESTDROP };

enum { O_NORB = 0x400, O_NOIMG, O_CORRUPT };   /* run: read-back pass, test-only negative controls */
enum { O_ACL = 0x1100, O_DPCRE };               /* issue 11 items 2, 3 */
enum { O_WIN7MODEL = 0x1180 };                   /* issue 11 item 15 */
enum { O_S4CTL = 0x480, O_S4FW, O_S4GAP, O_DUMPCFG, O_SECUNC };   /* issue 11 items 6, 9, 10 */
static bool on_off(const char *opt, const char *v, bool *out)
{
    if (!strcmp(v, "on")) *out = true;
    else if (!strcmp(v, "off")) *out = false;
    else { fprintf(stderr, "%s: on or off\n", opt); return false; }
    return true;
}
enum { O_FRAGMEM = 0x420 };                      /* --fragmented-memory (sim/fragmem.c) */
enum { O_IDEAL = 0x1200 };                       /* --ideal-driver (sim/ideal.c) */

static const struct option longopts[] = {
    { "disk", 1, 0, O_DISK }, { "size", 1, 0, O_SIZE }, { "backend", 1, 0, O_BACKEND },
    { "device-opts", 1, 0, O_DEVOPTS }, { "drive-opts", 1, 0, O_DRIVEOPTS }, { "no-msi", 0, 0, O_NOMSI },
    { "msi-messages", 1, 0, O_MSIMSG }, { "dump-mode", 0, 0, O_DUMP }, { "srb-timeout", 1, 0, O_SRBTMO },
    { "ram", 1, 0, O_RAM }, { "timeout", 1, 0, O_TIMEOUT }, { "driver", 1, 0, O_DRIVER },
    { "json", 0, 0, O_JSON }, { "rw", 1, 0, O_RW }, { "bs", 1, 0, O_BS }, { "qd", 1, 0, O_QD },
    { "ios", 1, 0, O_IOS }, { "seconds", 1, 0, O_SECONDS }, { "seed", 1, 0, O_SEED },
    { "offset", 1, 0, O_OFFSET }, { "span", 1, 0, O_SPAN }, { "write-pct", 1, 0, O_WPCT },
    { "fua-pct", 1, 0, O_FUAPCT },
    { "in", 1, 0, O_IN }, { "out", 1, 0, O_OUT }, { "signature", 1, 0, O_SIG }, { "code", 1, 0, O_CODE },
    { "header-length", 1, 0, O_HLEN }, { "length", 1, 0, O_LEN }, { "buffer-size", 1, 0, O_BUFSZ },
    { "return-code", 1, 0, O_RETCODE }, { "raw", 0, 0, O_RAW },
    { "reset-tiers", 1, 0, O_TIERS }, { "power-cycle-every", 1, 0, O_PCYCLE }, { "expect-removal", 0, 0, O_XREMOVAL },
    { "dpc-delay-us", 1, 0, O_DPCDELAY }, { "isr-delay-us", 1, 0, O_ISRDELAY }, { "foreign-intx", 1, 0, O_FOREIGN },
    { "win7-model", 1, 0, O_WIN7MODEL }, { "adapter-control-locks", 1, 0, O_ACL }, { "dpc-reentrant", 0, 0, O_DPCRE },
    { "fragmented-memory", 2, 0, O_FRAGMEM }, { "ideal-driver", 0, 0, O_IDEAL },
    { "test-drop-completion", 1, 0, O_TESTDROP },
    { "no-readback", 0, 0, O_NORB }, { "no-image-check", 0, 0, O_NOIMG }, { "corrupt-image", 1, 0, O_CORRUPT },
    { "s4-adapter-control", 1, 0, O_S4CTL }, { "s4-firmware", 1, 0, O_S4FW }, { "s4-gap-ms", 1, 0, O_S4GAP },
    { "dump-config", 1, 0, O_DUMPCFG }, { "second-uncached", 1, 0, O_SECUNC },
    { "verify-generation", 1, 0, O_VGEN }, { "verbose", 0, 0, 'v' }, { "quiet", 0, 0, 'q' }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 }
};

/* Parses options (anywhere on the line); non-options are collected into pos[]. */
/* --win7-model default|pessimistic (issue 11 item 15; docs/simulator.md). The disputed
 * readings already default to the harshest (--adapter-control-locks none, --s4-adapter-control
 * off, --s4-firmware on, --dump-config saved, --second-uncached null, D3 all ones, the
 * blocking reset of the QEMU backend); "pessimistic" also turns on every adverse variant
 * that is off by default. It is applied before the options are parsed, so an explicit
 * option wins wherever it stands on the command line. Returns -1 on a bad value. */
static bool win7_pessimistic;
static const char win7_contract_opts[] = "reset-blocks=1,flush-delay-ms=20";
static int win7_model_apply(int argc, char **argv)
{
    const char *v = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--win7-model") && i + 1 < argc) v = argv[++i];
        else if (!strncmp(argv[i], "--win7-model=", 13)) v = argv[i] + 13;
    }
    if (!v || !strcmp(v, "default")) return 0;
    if (strcmp(v, "pessimistic")) {
        fprintf(stderr, "aerovblk-sim: --win7-model takes default or pessimistic\n");
        return -1;
    }
    win7_pessimistic = true;
    sim_dpc_reentrant = true;                            /* facts §11.6 */
    sim_stretch_dpc_us = sim_stretch_isr_us = 200;       /* SMP timing, slow host */
    sim_foreign_intx_hz = 2000;                          /* §11.7 (INTx only) */
    sim_fragmented_memory = true;                        /* §11.12, at SIM_FRAG_MAX_BYTES */
    return 0;
}

/* The contract device's adverse options (blocking reset §11.4, slow flush §11.5) go
 * first, so --device-opts given by the user override them. */
static const char *win7_model_device_opts(const char *backend, const char *user, char *buf, size_t len)
{
    if (!win7_pessimistic || strcmp(backend, "contract")) return user;
    snprintf(buf, len, "%s%s%s", win7_contract_opts, user && *user ? "," : "", user ? user : "");
    return buf;
}

static int parse_opts(int argc, char **argv, struct opts *o, char **pos, int maxpos, int *npos)
{
    int c;
    *npos = 0;
    optind = 0;   /* glibc: full re-initialisation (scripts parse many lines) */
    opterr = 1;
    while ((c = getopt_long(argc, argv, "-vqh", longopts, NULL)) != -1) {
        switch (c) {
        case 1: if (*npos < maxpos) pos[(*npos)++] = optarg; break;
        case O_DISK: o->disk = optarg; break;
        case O_SIZE: o->size = parse_size(optarg); break;
        case O_BACKEND: o->backend = optarg; break;
        case O_DEVOPTS: o->device_opts = optarg; break;
        case O_DRIVEOPTS: o->drive_opts = optarg; break;
        case O_NOMSI: o->msi = false; break;
        case O_MSIMSG: o->msi_messages = atoi(optarg); break;
        case O_DUMP: o->dump = true; break;
        case O_SRBTMO: o->srb_timeout = (unsigned)atoi(optarg); break;
        case O_RAM: o->ram = parse_size(optarg); break;
        case O_TIERS:
            o->reset_tiers = (strstr(optarg, "lu") ? SIM_RESET_LU : 0) | (strstr(optarg, "device") ? SIM_RESET_DEVICE : 0) |
                             (strstr(optarg, "bus") ? SIM_RESET_BUS : 0);
            if (!o->reset_tiers) { fprintf(stderr, "--reset-tiers: lu,device,bus\n"); return -1; }
            break;
        case O_TIMEOUT: o->timeout = (unsigned)atoi(optarg); break;
        case O_DRIVER: o->driver = optarg; break;
        case O_JSON: o->json = true; break;
        case O_IDEAL: o->ideal = true; break;
        case O_RW:
            if (!strcmp(optarg, "read")) o->wl.mode = WL_READ;
            else if (!strcmp(optarg, "write")) o->wl.mode = WL_WRITE;
            else if (!strcmp(optarg, "randread")) o->wl.mode = WL_RANDREAD;
            else if (!strcmp(optarg, "randwrite")) o->wl.mode = WL_RANDWRITE;
            else if (!strcmp(optarg, "randrw")) o->wl.mode = WL_RANDRW;
            else { fprintf(stderr, "--rw: unknown mode %s\n", optarg); return -1; }
            break;
        case O_BS: o->wl.bs = (unsigned)parse_size(optarg); break;
        case O_QD: o->wl.qd = (unsigned)atoi(optarg); break;
        case O_IOS: o->wl.ios = strtoull(optarg, NULL, 0); o->wl.seconds = 0; break;
        case O_SECONDS: o->wl.seconds = (unsigned)atoi(optarg); o->wl.ios = 0; break;
        case O_SEED: o->wl.seed = strtoull(optarg, NULL, 0); break;
        case O_OFFSET: o->wl.offset = parse_size(optarg); break;
        case O_SPAN: o->wl.span = parse_size(optarg); break;
        case O_WPCT: o->wl.write_pct = (unsigned)atoi(optarg); break;
        case O_FUAPCT: o->wl.fua_pct = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
        case O_PCYCLE: o->power_cycle_ms = (unsigned)atoi(optarg); break;
        case O_TESTDROP:   /* test only: the soak's negative control (docs/reliability.md) */
            sim_test_drop_completion = strtoull(optarg, NULL, 0);
            if (!sim_test_drop_completion) { fprintf(stderr, "--test-drop-completion: N >= 1\n"); return -1; }
            break;
        case O_DPCDELAY: sim_stretch_dpc_us = (unsigned)atoi(optarg); break;
        case O_ISRDELAY: sim_stretch_isr_us = (unsigned)atoi(optarg); break;
        case O_FOREIGN: sim_foreign_intx_hz = (unsigned)atoi(optarg); break;
        case O_ACL:
            if (!strcmp(optarg, "none")) sim_adapter_control_locks = SIM_ACL_NONE;
            else if (!strcmp(optarg, "interrupt")) sim_adapter_control_locks = SIM_ACL_INTERRUPT;
            else { fprintf(stderr, "aerovblk-sim: --adapter-control-locks takes interrupt or none\n"); return -1; }
            break;
        case O_DPCRE: sim_dpc_reentrant = true; break;
        case O_WIN7MODEL: break;   /* applied before parsing: win7_model_apply() */
        case O_FRAGMEM:
            sim_fragmented_memory = true;
            if (optarg) sim_frag_max_bytes = parse_size(optarg);
            if (sim_frag_max_bytes < 4096) { fprintf(stderr, "aerovblk-sim: --fragmented-memory=%s: at least 4K\n", optarg); return 2; }
            break;
        case O_XREMOVAL: o->wl.tolerate_removal = true; break;
        case O_S4CTL: if (!on_off("--s4-adapter-control", optarg, &sim_s4_adapter_control)) return -1; break;
        case O_S4FW: if (!on_off("--s4-firmware", optarg, &sim_s4_firmware)) return -1; break;
        case O_S4GAP: sim_s4_gap_ms = (unsigned)atoi(optarg); break;
        case O_DUMPCFG:
            if (strcmp(optarg, "saved") && strcmp(optarg, "fresh")) { fprintf(stderr, "--dump-config: saved or fresh\n"); return -1; }
            sim_dump_config_saved = !strcmp(optarg, "saved");
            break;
        case O_SECUNC:
            if (strcmp(optarg, "null") && strcmp(optarg, "same")) { fprintf(stderr, "--second-uncached: same or null\n"); return -1; }
            sim_second_uncached_null = !strcmp(optarg, "null");
            break;
        case O_VGEN: o->wl.verify_gen = (uint32_t)strtoul(optarg, NULL, 0); break;
        case O_NORB: o->wl.no_readback = true; break;
        case O_NOIMG: o->wl.no_image_check = true; break;
        case O_CORRUPT: o->wl.corrupt_image = (unsigned)strtoul(optarg, NULL, 0); break;
        case O_IN: o->in_len = (unsigned)parse_size(optarg); break;
        case O_OUT: o->out_file = optarg; break;
        case O_SIG: o->signature = optarg; break;
        case O_CODE: o->code = strtoll(optarg, NULL, 0); break;
        case O_HLEN: o->header_len = strtoll(optarg, NULL, 0); break;
        case O_LEN: o->length = strtoll(optarg, NULL, 0); break;
        case O_BUFSZ: o->buffer_size = strtoll(optarg, NULL, 0); break;
        case O_RETCODE: o->return_code = strtoll(optarg, NULL, 0); break;
        case O_RAW: o->raw = true; break;
        case 'v': sim_verbose++; break;
        case 'q': sim_verbose = 0; break;
        case O_HELP: case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------ */
/* JSON text builder */
struct js { char *p; size_t len, cap; };
static void jsf(struct js *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jsf(struct js *j, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(j->p + j->len, j->cap - j->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < j->cap - j->len) { j->len += (size_t)n; return; }
        j->cap = j->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        j->p = realloc(j->p, j->cap);
    }
}
static void jstr(struct js *j, const char *key, const char *val)
{
    char e[1024];
    sim_json_escape(e, sizeof(e), val ? val : "");
    jsf(j, "\"%s\":\"%s\",", key, e);
}

/* ------------------------------------------------------------------------------ */
struct session {
    struct opts *o;
    sim_dev *dev;
    struct sim_driver drv;
    struct sim_adapter *a;
    struct sim_disk disk;
    bool disk_up;
    char tmp_disk[256];
    int failures;              /* errors, mismatches, failed expectations */
    struct js out;             /* JSON members collected by commands */
    /* last cdb/ioctl for `expect` */
    struct sim_request last;
    bool have_last;
    uint8_t last_data[4096];
    unsigned last_data_len;
    AVDIAG_INFO last_info;
    bool have_info;
    uint32_t last_return_code;
    struct sim_adapter *old[8];    /* crashed or replaced instances (crash / dump-load / reload) */
    struct sim_counters ctr_prev;  /* counters of the instances replaced so far (--json "all_instances") */
    uint64_t power_cycles_prev;
    int nold;
    struct sim_driver drv_extra[8];
    int ndrv;
    struct sim_workload_result last_wl;
    struct sim_workload_opts last_wl_opts;
    bool have_wl;
    /* every `run` of the session (a script may have several): verified I/Os etc. */
    uint64_t sum_runs, sum_ios, sum_errors, sum_mismatches, sum_readback, sum_image_chunks;
    struct sim_counters wl_before;
    uint64_t last_wl_power_cycles;
    uint64_t rebalances, s4_resumes;   /* `pnp rebalance` / `hibernate-resume` done (--json) */
    /* every driver instance started (for --json "instances") */
    struct { char name[72]; bool dump; unsigned uncached_bytes, max_transfer, breaks, srbext; } inst[16];
    int ninst;
};

/* Remember what an instance asked for (the dump instance must stay in its budget). */
static void note_instance(struct session *s)
{
    if (!s->a || s->ninst >= 16) return;
    snprintf(s->inst[s->ninst].name, sizeof(s->inst[0].name), "%s", s->a->drv->name);
    s->inst[s->ninst].dump = s->a->opts.dump_mode;
    s->inst[s->ninst].uncached_bytes = s->a->unc_len;
    s->inst[s->ninst].max_transfer = s->a->cfg->MaximumTransferLength;
    s->inst[s->ninst].breaks = s->a->cfg->NumberOfPhysicalBreaks;
    s->inst[s->ninst].srbext = s->a->cfg->SrbExtensionSize;
    s->ninst++;
}

static struct session *g_session;

static void *watchdog(void *arg)
{
    struct session *s = arg;
    sim_sleep_us(s->o->timeout * 1000000u);
    fprintf(stderr, "aerovblk-sim: TIMEOUT after %u s (a hung driver or device); giving up\n", s->o->timeout);
    if (s->dev) s->dev->ops->destroy(s->dev);
    if (s->tmp_disk[0]) unlink(s->tmp_disk);
    _exit(3);
    return NULL;
}

/* A re-acquired spin lock (verifier: DEADLOCK): Windows hangs there, so the run ends:
 * the device is torn down as the watchdog does, --json gets a minimal result. */
static void on_deadlock(void)
{
    struct session *s = g_session;
    if (s && s->o->json) {
        char *fj = sim_findings_json();
        printf("{\"deadlock\":true,\"verifier_findings\":%u,\"findings\":%s,\"exit_status\":1}\n",
               sim_findings_count(), fj);
        free(fj);
    }
    fflush(stdout);
    if (s && s->dev) s->dev->ops->destroy(s->dev);
    if (s && s->tmp_disk[0]) unlink(s->tmp_disk);
}

static int prepare_disk(struct session *s, char *err, size_t el)
{
    struct opts *o = s->o;
    if (!o->disk) {
        snprintf(s->tmp_disk, sizeof(s->tmp_disk), "/tmp/aerovblk-sim-%d.img", (int)getpid());
        o->disk = s->tmp_disk;
    }
    struct stat st;
    if (stat(o->disk, &st) == 0) return 0;
    int fd = open(o->disk, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { snprintf(err, el, "create %s: %s", o->disk, strerror(errno)); return -1; }
    if (ftruncate(fd, (off_t)o->size)) { snprintf(err, el, "size %s: %s", o->disk, strerror(errno)); close(fd); return -1; }
    close(fd);
    return 0;
}

static int session_start(struct session *s, char *err, size_t el)
{
    struct opts *o = s->o;
    if (prepare_disk(s, err, el)) return -1;
    char model_opts[1024];
    sim_dev_config cfg = { .disk_path = o->disk, .disk_size = o->size,
                           .device_opts = win7_model_device_opts(o->backend, o->device_opts, model_opts, sizeof(model_opts)),
                           .drive_opts = o->drive_opts, .ram_size = o->ram, .verbose = sim_verbose > 1 };
    if (!strcmp(o->backend, "qemu")) s->dev = sim_qemu_create(&cfg, err, el);
    else if (!strcmp(o->backend, "contract")) s->dev = sim_contract_create(&cfg, err, el);
    else { snprintf(err, el, "unknown backend %s", o->backend); return -1; }
    if (!s->dev) return -1;
    if (o->ideal) return 0;   /* --ideal-driver: no miniport (sim/ideal.c) */

    void *entry = (void *)DriverEntry;
    /* AEROVBLK_SIM_DRIVER is the default --driver, so whole check scripts can be rerun
     * against a shipped .sys (tests/checks/77-shipped-scenarios.sh). */
    const char *driver = o->driver ? o->driver : getenv("AEROVBLK_SIM_DRIVER");
    if (driver && !*driver) driver = NULL;
    if (driver) {
        if (!sim_load_sys_driver) { snprintf(err, el, "--driver: this build has no PE loader"); return -1; }
        if (sim_load_sys_driver(driver, &entry, err, el)) return -1;
    }
    if (!entry) { snprintf(err, el, "no driver linked into this simulator build"); return -1; }
    s->drv.driver_entry = entry;
    snprintf(s->drv.name, sizeof(s->drv.name), "%s", driver ? driver : "aerovblk (host build)");
    if (sim_driver_load(&s->drv, o->dump, err, el)) return -1;
    struct sim_adapter_opts ao = { .msi = o->msi, .msi_messages = o->msi_messages, .dump_mode = o->dump,
                                   .srb_timeout = o->srb_timeout, .seed = o->wl.seed,
                                   .reset_tiers = o->reset_tiers };
    s->a = sim_adapter_create(&s->drv, s->dev, &ao, err, el);
    if (!s->a) return -1;
    if (sim_adapter_start(s->a, err, el)) return -1;
    note_instance(s);
    if (sim_disk_arrive(&s->disk, s->a, err, el)) return -1;
    s->disk_up = true;
    return 0;
}

/* A new instance of the driver on the same device: the dump stack's copy after a crash
 * (dump-load) or a fresh boot's (reload), as Windows loads them. */
static int session_dump_close(struct session *s);
static int session_new_instance(struct session *s, bool dump, char *err, size_t el)
{
    if (s->ndrv >= 8 || s->nold >= 8) { snprintf(err, el, "too many driver instances"); return -1; }
    struct sim_adapter *prev = s->a;
    if (prev && prev->opts.dump_mode && session_dump_close(s)) { snprintf(err, el, "the dump port's SYNCHRONIZE CACHE / SHUTDOWN failed"); return -1; }
    if (prev) {   /* keep its counts: the soak's evidence spans instances */
        const uint64_t *src = (const uint64_t *)&prev->ctr;
        uint64_t *dst = (uint64_t *)&s->ctr_prev;
        for (size_t i = 0; i < sizeof(prev->ctr) / sizeof(uint64_t); i++) dst[i] += src[i];
        s->power_cycles_prev += prev->power_cycles;
    }
    if (prev && !prev->crashed && !dump) {   /* orderly shutdown of the running instance first */
        if (s->disk_up && s->disk.a == prev) sim_disk_shutdown(&s->disk);
        sim_adapter_destroy(prev);
        prev = NULL;
    }
    if (prev) s->old[s->nold++] = prev;
    s->a = NULL;
    struct sim_driver *drv = &s->drv_extra[s->ndrv++];
    memset(drv, 0, sizeof(*drv));
    drv->driver_entry = s->drv.driver_entry;
    snprintf(drv->name, sizeof(drv->name), "%s%.50s", dump ? "dump_" : "", s->drv.name);
    if (sim_driver_load(drv, dump, err, el)) return -1;
    struct sim_adapter_opts ao = { .msi = s->o->msi, .msi_messages = s->o->msi_messages, .dump_mode = dump,
                                   .srb_timeout = s->o->srb_timeout, .seed = s->o->wl.seed + (uint64_t)s->ndrv,
                                   .reset_tiers = s->o->reset_tiers };
    s->a = sim_adapter_create(drv, s->dev, &ao, err, el);
    if (!s->a || sim_adapter_start(s->a, err, el)) return -1;
    note_instance(s);
    if (dump) {
        sim_disk_attach(&s->disk, s->a);
        if (sim_disk_dump_open(&s->disk)) { snprintf(err, el, "the dump port's INQUIRY failed"); return -1; }
    } else if (sim_disk_arrive(&s->disk, s->a, err, el)) return -1;
    return 0;
}

/* The dump instance's work is done (the dump was written, the hibernation image too):
 * the dump port's last requests, once. */
static int session_dump_close(struct session *s)
{
    struct sim_adapter *a = s->a;
    if (!a || !a->opts.dump_mode || a->crashed || s->disk.a != a) return 0;
    return sim_disk_dump_close(&s->disk);
}

static int send_pnp_power(struct sim_adapter *a, UCHAR function, ULONG action, ULONG flags, struct sim_request *r);
/* `hibernate-resume`: the instance frozen by `hibernate` continues (sim/s4.c); the
 * hibernation instance (if dump-load ran) is frozen for good. */
static int session_s4_resume(struct session *s, char *err, size_t el)
{
    int k = s->nold;
    while (k-- > 0 && !s->old[k]->s4_hibernated) {}
    if (k < 0) { snprintf(err, el, "no instance was hibernated (use hibernate first)"); return -1; }
    struct sim_adapter *frozen = s->old[k], *hiber = NULL;
    if (s->a && s->a->opts.dump_mode) {
        hiber = s->a;
        if (session_dump_close(s)) { snprintf(err, el, "the dump port's SYNCHRONIZE CACHE / SHUTDOWN failed"); return -1; }
        if (!hiber->crashed) sim_port_crash(hiber, 0);
        if (s->nold >= 8) { snprintf(err, el, "too many driver instances"); return -1; }
        s->old[s->nold++] = hiber;
    } else if (s->a) {
        snprintf(err, el, "a normal instance runs: hibernate-resume follows hibernate [+ dump-load]");
        return -1;
    }
    for (int i = 0; i < s->nold; i++)
        if (s->old[i] == frozen) { memmove(&s->old[i], &s->old[i + 1], sizeof(s->old[0]) * (size_t)(s->nold - i - 1)); s->nold--; break; }
    s->a = frozen;
    if (sim_s4_resume(frozen, hiber, err, el)) return -1;
    if (s->disk_up) sim_disk_attach(&s->disk, frozen);
    s->s4_resumes++;
    if (sim_s4_adapter_control) {
        struct sim_request pr;
        if (send_pnp_power(frozen, SRB_FUNCTION_POWER, StorPowerDeviceD0, 0, &pr) ||
            SRB_STATUS(pr.srb_status) != SRB_STATUS_SUCCESS) {
            snprintf(err, el, "SRB_FUNCTION_POWER (D0) failed");
            return -1;
        }
    }
    return 0;
}

/* `pnp rebalance` (issue 11 item 10): StorPort's SRB_FUNCTION_FLUSH (CachesData,
 * [MS-ACT]) and SRB_FUNCTION_PNP StorStopDevice for the adapter, then ScsiStopAdapter and
 * HwFindAdapter + HwInitialize again on the same device extension (sim/port.c). */
static int session_rebalance(struct session *s, char *err, size_t el)
{
    struct sim_adapter *a = s->a;
    struct sim_request r;
    if (!a || a->opts.dump_mode || a->crashed) { snprintf(err, el, "no running normal instance"); return -1; }
    if (a->cfg->CachesData && s->disk_up &&
        (sim_disk_no_cdb_srb(&s->disk, SRB_FUNCTION_FLUSH, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS)) {
        snprintf(err, el, "SRB_FUNCTION_FLUSH failed (0x%02x)", r.srb_status);
        return -1;
    }
    if (send_pnp_power(a, SRB_FUNCTION_PNP, StorStopDevice, SRB_PNP_FLAGS_ADAPTER_REQUEST, &r) ||
        SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        snprintf(err, el, "SRB_FUNCTION_PNP StorStopDevice came back with 0x%02x", r.srb_status);
        return -1;
    }
    if (sim_port_rebalance(a, err, el)) return -1;
    sim_log("pnp: rebalance done: HwFindAdapter + HwInitialize ran again on the same device extension");
    s->rebalances++;
    note_instance(s);
    if (s->disk_up) sim_disk_attach(&s->disk, a);
    return 0;
}

static void session_stop(struct session *s)
{
    if (session_dump_close(s)) s->failures++;
    if (s->a && s->disk_up && s->disk.a == s->a) sim_disk_shutdown(&s->disk);   /* system shutdown */
    if (s->a) { sim_adapter_destroy(s->a); s->a = NULL; }
    for (int i = s->nold; i-- > 0;) { sim_adapter_destroy(s->old[i]); s->old[i] = NULL; }
    sim_contract_stats cs;
    if (s->dev && sim_contract_get_stats(s->dev, &cs) == 0 && cs.driver_bugs)
        sim_finding("DEVICE", "the contract device saw %llu request(s) or register access(es) breaking the virtio spec "
                    "or the contract (DMA outside guest RAM, bad descriptors, ...; see \"contract-dev: DRIVER BUG\" lines)",
                    (unsigned long long)cs.driver_bugs);
    if (s->dev) { s->dev->ops->destroy(s->dev); s->dev = NULL; }
    if (s->tmp_disk[0]) unlink(s->tmp_disk);
}

/* Device truth from the common configuration registers (harness access, not counted). */
struct devstate { bool ok; uint64_t offered, negotiated; unsigned queue_size, num_queues, status; };
static struct devstate device_state(struct session *s)
{
    struct devstate ds = { 0 };
    struct sim_adapter *a = s->a;
    if (!a || !a->pci.vreg[1].present || !a->pci.bar[a->pci.vreg[1].bar].present) return ds;
    sim_dev *d = s->dev;
    uint64_t c = a->pci.bar[a->pci.vreg[1].bar].gpa + a->pci.vreg[1].off;
    for (unsigned i = 0; i < 2; i++) {
        d->ops->mmio_write(d, c + 0x00, 4, i);
        ds.offered |= (uint64_t)d->ops->mmio_read(d, c + 0x04, 4) << (32 * i);
        d->ops->mmio_write(d, c + 0x08, 4, i);
        ds.negotiated |= (uint64_t)d->ops->mmio_read(d, c + 0x0C, 4) << (32 * i);
    }
    ds.num_queues = d->ops->mmio_read(d, c + 0x12, 2);
    ds.status = d->ops->mmio_read(d, c + 0x14, 1);
    d->ops->mmio_write(d, c + 0x16, 2, 0);
    ds.queue_size = d->ops->mmio_read(d, c + 0x18, 2);
    ds.ok = true;
    return ds;
}

static const char *srb_status_name(unsigned st)
{
    switch (SRB_STATUS(st)) {
    case 0x00: return "PENDING"; case 0x01: return "SUCCESS"; case 0x02: return "ABORTED";
    case 0x04: return "ERROR"; case 0x05: return "BUSY"; case 0x06: return "INVALID_REQUEST";
    case 0x07: return "INVALID_PATH_ID"; case 0x08: return "NO_DEVICE"; case 0x09: return "TIMEOUT";
    case 0x0B: return "COMMAND_TIMEOUT"; case 0x0E: return "BUS_RESET"; case 0x12: return "DATA_OVERRUN";
    case 0x16: return "REQUEST_FLUSHED"; case 0x20: return "INVALID_LUN"; case 0x21: return "INVALID_TARGET_ID";
    case 0x22: return "BAD_FUNCTION"; case 0x23: return "ERROR_RECOVERY"; case 0x24: return "NOT_POWERED";
    case 0x30: return "INTERNAL_ERROR";
    default: return "?";
    }
}

static void hexdump(FILE *f, const uint8_t *p, unsigned n)
{
    for (unsigned i = 0; i < n; i += 16) {
        fprintf(f, "  %04x:", i);
        for (unsigned k = 0; k < 16; k++) {
            if (i + k < n) fprintf(f, " %02x", p[i + k]);
            else fputs("   ", f);
        }
        fputs("  |", f);
        for (unsigned k = 0; k < 16 && i + k < n; k++) fputc(isprint(p[i + k]) ? p[i + k] : '.', f);
        fputs("|\n", f);
    }
}

/* ------------------------------------------------------------------------------ */
static void print_result(struct session *s, const char *what, const struct sim_request *r,
                         const uint8_t *data, unsigned n)
{
    bool sv = r->srb_status & SRB_STATUS_AUTOSENSE_VALID;
    if (s->o->json) {
        jsf(&s->out, "\"%s\":{\"srb_status\":%u,\"srb_status_name\":\"%s\",\"autosense_valid\":%s,"
                     "\"scsi_status\":%u,", what, r->srb_status, srb_status_name(r->srb_status),
            sv ? "true" : "false", r->scsi_status);
        if (sv) jsf(&s->out, "\"sense_key\":%u,\"asc\":%u,\"ascq\":%u,", r->sense[2] & 15, r->sense[12], r->sense[13]);
        jsf(&s->out, "\"transferred\":%u,\"data\":\"", r->out_transfer_len);
        for (unsigned i = 0; i < n; i++) jsf(&s->out, "%02x", data[i]);
        jsf(&s->out, "\"},");
        return;
    }
    printf("%s: srb_status 0x%02x (%s%s)  scsi_status 0x%02x", what, r->srb_status, srb_status_name(r->srb_status),
           sv ? ", autosense valid" : "", r->scsi_status);
    if (sv) printf("  sense key %X asc %02X ascq %02X", r->sense[2] & 15, r->sense[12], r->sense[13]);
    printf("  transferred %u\n", r->out_transfer_len);
    if (n) hexdump(stdout, data, n);
}

static int parse_hex_bytes(const char *p, uint8_t *out, unsigned max)
{
    unsigned n = 0;
    while (p && *p) {
        while (*p && !isxdigit((unsigned char)*p)) p++;
        if (!*p) break;
        if (!isxdigit((unsigned char)p[1]) || n >= max) return -1;
        char h[3] = { p[0], p[1], 0 };
        out[n++] = (uint8_t)strtoul(h, NULL, 16);
        p += 2;
    }
    return (int)n;
}

static bool is_rw_opcode(uint8_t op)
{
    return op == 0x08 || op == 0x0A || op == 0x28 || op == 0x2A || op == 0xA8 || op == 0xAA || op == 0x88 || op == 0x8A;
}

static int cmd_cdb(struct session *s, struct opts *o)
{
    uint8_t cdb[16] = { 0 };
    int n = parse_hex_bytes(o->cdb_hex, cdb, 16);
    if (n <= 0) { fprintf(stderr, "cdb: give 1-16 hex bytes, e.g. \"12 00 00 00 24 00\"\n"); return -1; }
    uint8_t *data = NULL;
    unsigned len = 0;
    bool out = false;
    if (o->out_file) {
        FILE *f = fopen(o->out_file, "rb");
        if (!f) { fprintf(stderr, "cdb: %s: %s\n", o->out_file, strerror(errno)); return -1; }
        data = malloc(1 << 20);
        len = (unsigned)fread(data, 1, 1 << 20, f);
        fclose(f);
        out = true;
    } else if (o->in_len) {
        len = o->in_len;
        data = calloc(1, len);
    }
    struct sim_buf *b = len ? sim_buf_alloc(&s->a->mem, len, is_rw_opcode(cdb[0]), 0) : NULL;
    if (len && !b) { free(data); fprintf(stderr, "cdb: no guest memory for %u bytes\n", len); return -1; }
    if (b) sim_buf_write(s->dev, b, 0, data, len);   /* zeroes for --in */
    struct sim_request *r = &s->last;
    sim_request_init(r, cdb, (unsigned)n, b, len, len && !out, out);
    int rc = sim_port_execute(s->a, r);
    unsigned got = 0;
    if (b && !out) {
        got = r->out_transfer_len < len ? r->out_transfer_len : len;
        sim_buf_read(s->dev, b, 0, data, got);
    }
    s->last_data_len = got < sizeof(s->last_data) ? got : sizeof(s->last_data);
    if (got) memcpy(s->last_data, data, s->last_data_len);
    s->have_last = true;
    print_result(s, "cdb", r, data, got);
    r->buf = NULL;
    if (!r->buffer_held) sim_buf_free(&s->a->mem, b);
    free(data);
    return rc;
}

static int cmd_ioctl(struct session *s, struct opts *o)
{
    size_t payload = sizeof(AEROVBLK_QUERY_INFO);
    size_t bufsz = o->buffer_size >= 0 ? (size_t)o->buffer_size : AVDIAG_SRBIO_SIZE + payload;
    uint8_t *buf = calloc(1, bufsz + AVDIAG_SRBIO_SIZE);
    AVDIAG_SRBIO h;
    AvDiagSrbIoInitQuery(&h, (uint32_t)(bufsz >= AVDIAG_SRBIO_SIZE ? bufsz - AVDIAG_SRBIO_SIZE : 0));
    if (o->signature) { memset(h.Signature, 0, sizeof(h.Signature)); memcpy(h.Signature, o->signature, strnlen(o->signature, 8)); }
    if (o->code >= 0) h.ControlCode = (uint32_t)o->code;
    if (o->header_len >= 0) h.HeaderLength = (uint32_t)o->header_len;
    if (o->length >= 0) h.Length = (uint32_t)o->length;
    if (o->return_code >= 0) h.ReturnCode = (uint32_t)o->return_code;
    uint8_t hdr[AVDIAG_SRBIO_SIZE];
    AvDiagSrbIoStore(&h, hdr, sizeof(hdr));
    memcpy(buf, hdr, bufsz < sizeof(hdr) ? bufsz : sizeof(hdr));   /* a short buffer gets a cut header */
    uint8_t *sent = o->raw ? malloc(bufsz + 1) : NULL;
    if (sent) memcpy(sent, buf, bufsz);

    struct sim_buf *b = bufsz ? sim_buf_alloc(&s->a->mem, bufsz, false, 0) : NULL;
    if (b) sim_buf_write(s->dev, b, 0, buf, bufsz);
    struct sim_request *r = &s->last;
    uint8_t nocdb[1] = { 0 };
    sim_request_init(r, nocdb, 0, b, (ULONG)bufsz, true, true);
    r->function = SRB_FUNCTION_IO_CONTROL;
    r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
    r->queue_action = 0;
    r->timeout = 10;
    int rc = sim_port_execute(s->a, r);
    size_t got = r->out_transfer_len < bufsz ? r->out_transfer_len : bufsz;
    if (b) sim_buf_read(s->dev, b, 0, buf, bufsz);
    r->buf = NULL;
    if (!r->buffer_held) sim_buf_free(&s->a->mem, b);
    s->have_last = true;
    s->last_data_len = 0;

    AVDIAG_REPLY rep;
    AVDIAG_REPLY_STATUS rs = AvDiagParseReply(buf, got, &rep);
    s->last_return_code = rep.Header.ReturnCode;
    s->have_info = false;
    if (rs == AVDIAG_REPLY_OK) {
        AvDiagDecode(rep.Payload, rep.PayloadLength, &s->last_info);
        s->have_info = true;
    }
    const char *ntname = AvDiagNtStatusName(rep.Header.ReturnCode);
    if (s->o->json) {
        jsf(&s->out, "\"ioctl\":{\"srb_status\":%u,\"srb_status_name\":\"%s\",\"transferred\":%zu,"
                     "\"return_code\":%u,\"return_code_name\":\"%s\",\"length\":%u,\"reply\":\"%s\"",
            r->srb_status, srb_status_name(r->srb_status), got, rep.Header.ReturnCode, ntname ? ntname : "?",
            rep.Header.Length, AvDiagReplyStatusText(rs));
        if (sent) {   /* every byte of the buffer, not through the reply decoder */
            jsf(&s->out, ",\"sent\":\"");
            for (size_t i = 0; i < bufsz; i++) jsf(&s->out, "%02x", sent[i]);
            jsf(&s->out, "\",\"raw\":\"");
            for (size_t i = 0; i < bufsz; i++) jsf(&s->out, "%02x", buf[i]);
            jsf(&s->out, "\"");
        }
        if (s->have_info) {
            size_t need = AvDiagFormatJson(&s->last_info, "simulator", NULL, 0);
            char *t = malloc(need + 1);
            AvDiagFormatJson(&s->last_info, "simulator", t, need + 1);
            jsf(&s->out, ",\"query\":%s", t);
            free(t);
        }
        jsf(&s->out, "},");
    } else {
        printf("ioctl: srb_status 0x%02x (%s)  transferred %zu  ReturnCode 0x%08x (%s)  Length %u  reply: %s\n",
               r->srb_status, srb_status_name(r->srb_status), got, rep.Header.ReturnCode, ntname ? ntname : "?",
               rep.Header.Length, AvDiagReplyStatusText(rs));
        if (sent) {
            printf("ioctl sent (%zu bytes):\n", bufsz);
            hexdump(stdout, sent, (unsigned)bufsz);
            printf("ioctl returned buffer:\n");
            hexdump(stdout, buf, (unsigned)bufsz);
        }
        if (s->have_info) {
            size_t need = AvDiagFormatText(&s->last_info, "simulator", NULL, 0);
            char *t = malloc(need + 1);
            AvDiagFormatText(&s->last_info, "simulator", t, need + 1);
            fputs(t, stdout);
            free(t);
        }
    }
    free(sent);
    free(buf);
    return rc;
}

static uint64_t sum6(const uint64_t *v) { uint64_t t = 0; for (int i = 0; i < SIM_MMIO_KINDS; i++) t += v[i]; return t; }

/* SRB_FUNCTION_PNP / SRB_FUNCTION_POWER as StorPort sends them to the unit (flags may
 * add the ADAPTER_REQUEST bit). 0 when the SRB came back; r holds its status. */
static int send_pnp_power(struct sim_adapter *a, UCHAR function, ULONG action, ULONG flags, struct sim_request *r)
{
    uint8_t nocdb[1] = { 0 };
    sim_request_init(r, nocdb, 0, NULL, 0, false, false);
    r->function = function;
    r->srb_flags = SRB_FLAGS_NO_QUEUE_FREEZE | SRB_FLAGS_BYPASS_FROZEN_QUEUE;
    r->queue_action = 0;
    r->sense_len = 0;
    r->pnp_action = action;
    r->pnp_flags = flags;
    return sim_port_execute(a, r);
}

/* Sleep/resume as Windows 7 does it for the adapter: the LUN's power SRB (D3), StorPort
 * pauses and drains, HwAdapterControl(ScsiStopAdapter) at DIRQL, the powered-off gap,
 * (ScsiRestartAdapter), the LUN's power SRB (D0). */
static int power_cycle(struct session *s)
{
    struct sim_adapter *a = s->a;
    struct sim_request r;
    int rc = 0;
    /* classpnp's power-down: SYNCHRONIZE CACHE, START STOP UNIT (stop); after power-up
     * START STOP UNIT (start) */
    bool disk = s->disk_up && s->disk.a == a;
    if (disk && (sim_disk_flush(&s->disk) || sim_disk_start_stop(&s->disk, false))) {
        fprintf(stderr, "power cycle: SYNCHRONIZE CACHE / START STOP UNIT (stop) failed\n");
        rc = -1;
    }
    if (send_pnp_power(a, SRB_FUNCTION_POWER, StorPowerDeviceD3, 0, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        fprintf(stderr, "power cycle: SRB_FUNCTION_POWER (D3) came back with SRB status 0x%02x\n", r.srb_status);
        rc = -1;
    }
    if (sim_port_power_cycle(a)) rc = -1;
    if (send_pnp_power(a, SRB_FUNCTION_POWER, StorPowerDeviceD0, 0, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        fprintf(stderr, "power cycle: SRB_FUNCTION_POWER (D0) came back with SRB status 0x%02x\n", r.srb_status);
        rc = -1;
    }
    if (disk && sim_disk_start_stop(&s->disk, true)) {
        fprintf(stderr, "power cycle: START STOP UNIT (start) failed\n");
        rc = -1;
    }
    return rc;
}

/* "remove", "surprise-removal", "stop" or a number; 0 ok */
static int parse_pnp_action(const char *words, ULONG *action)
{
    char w[32];
    snprintf(w, sizeof(w), "%s", words);
    w[strcspn(w, " \t")] = 0;
    if (!strcmp(w, "remove")) *action = StorRemoveDevice;
    else if (!strcmp(w, "surprise-removal")) *action = StorSurpriseRemoval;
    else if (!strcmp(w, "stop")) *action = StorStopDevice;
    else if (isdigit((unsigned char)w[0])) *action = (ULONG)strtoul(w, NULL, 0);
    else return -1;
    return 0;
}

/* --power-cycle-every: sleep/resume cycles on their own thread while the workload runs,
 * as a user closing the lid would (StorPort quiesces, Stop, Restart). */
struct cycler { struct session *s; unsigned ms; volatile bool done; int failures; pthread_t th; };
static void *cycler_thread(void *arg)
{
    struct cycler *c = arg;
    for (;;) {
        for (unsigned t = 0; t < c->ms && !c->done; t += 5) sim_sleep_us(5000);
        if (c->done) break;
        if (power_cycle(c->s)) c->failures++;
    }
    return NULL;
}

static int cmd_run(struct session *s, struct opts *o)
{
    struct sim_workload_opts wl = o->wl;
    if (!wl.ios && !wl.seconds) wl.ios = 1000;
    s->wl_before = s->a->ctr;
    s->last_wl_opts = wl;
    uint64_t cycles0 = __atomic_load_n(&s->a->power_cycles, __ATOMIC_RELAXED);
    struct cycler cyc = { .s = s, .ms = o->power_cycle_ms };
    if (cyc.ms) pthread_create(&cyc.th, NULL, cycler_thread, &cyc);
    int rc = sim_workload_run(&s->disk, o->disk, &wl, &s->last_wl);
    if (cyc.ms) {
        cyc.done = true;
        pthread_join(cyc.th, NULL);
        if (cyc.failures) { fprintf(stderr, "run: %d power cycle(s) failed\n", cyc.failures); s->failures++; }
    }
    s->last_wl_power_cycles = __atomic_load_n(&s->a->power_cycles, __ATOMIC_RELAXED) - cycles0;
    s->have_wl = true;
    struct sim_workload_result *w = &s->last_wl;
    s->sum_runs++;
    s->sum_ios += w->ios;
    s->sum_errors += w->errors;
    s->sum_mismatches += w->mismatches + w->image_mismatches;
    s->sum_readback += w->readback_reads;
    s->sum_image_chunks += w->image_chunks_checked;
    if (rc) return -1;
    if (w->errors || w->mismatches || w->image_mismatches) s->failures++;
    return 0;
}

static void wl_report(struct session *s)
{
    struct sim_workload_result *w = &s->last_wl;
    struct sim_counters *b = &s->wl_before, *c = &s->a->ctr;
    uint64_t ios = w->ios ? w->ios : 1;
    /* the read-back pass is verification, not workload: its accesses are left out */
    uint64_t mr = sum6(c->mmio_reads) - sum6(b->mmio_reads) - w->rb_mmio_reads;
    uint64_t mw = sum6(c->mmio_writes) - sum6(b->mmio_writes) - w->rb_mmio_writes;
    uint64_t db = c->doorbells - b->doorbells - w->rb_doorbells, irq = c->interrupts - b->interrupts - w->rb_interrupts;
    uint64_t dpc = c->dpcs - b->dpcs - w->rb_dpcs;
    double secs = (double)w->elapsed_ns / 1e9;
    static const char *modes[] = { "read", "write", "randread", "randwrite", "randrw" };
    if (s->o->json) {
        jsf(&s->out, "\"workload\":{\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"seed\":%llu,\"ios\":%llu,\"reads\":%llu,"
                     "\"writes\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,"
                     "\"image_chunks_checked\":%llu,\"image_mismatches\":%llu,\"seconds\":%.3f,\"iops\":%.0f,"
                     "\"avg_latency_us\":%.1f,\"max_latency_us\":%.1f,\"mmio_reads\":%llu,\"mmio_writes\":%llu,"
                     "\"doorbells\":%llu,\"interrupts\":%llu,\"dpcs\":%llu,\"busy_requeues\":%llu,"
                     "\"no_device\":%llu,\"power_cycles\":%llu,\"fua_writes\":%llu,"
                     "\"readback_reads\":%llu,\"readback_mismatches\":%llu,\"image_check\":%s,\"corrupted_chunks\":%llu,"
                     "\"per_io\":{\"mmio_reads\":%.3f,\"mmio_writes\":%.3f,\"doorbells\":%.3f,\"interrupts\":%.3f}},",
            modes[s->last_wl_opts.mode], s->last_wl_opts.bs, s->last_wl_opts.qd, (unsigned long long)s->last_wl_opts.seed,
            (unsigned long long)w->ios, (unsigned long long)w->reads, (unsigned long long)w->writes,
            (unsigned long long)w->errors, (unsigned long long)w->mismatches, (unsigned long long)w->bytes_read,
            (unsigned long long)w->bytes_written, (unsigned long long)w->image_chunks_checked,
            (unsigned long long)w->image_mismatches, secs, secs > 0 ? (double)w->ios / secs : 0.0,
            w->ios ? (double)w->total_latency_ns / (double)w->ios / 1000.0 : 0.0, (double)w->max_latency_ns / 1000.0,
            (unsigned long long)mr, (unsigned long long)mw, (unsigned long long)db, (unsigned long long)irq,
            (unsigned long long)dpc, (unsigned long long)(c->srbs_busy - b->srbs_busy - w->rb_busy),
            (unsigned long long)w->no_device, (unsigned long long)s->last_wl_power_cycles,
            (unsigned long long)w->fua_writes,
            (unsigned long long)w->readback_reads, (unsigned long long)w->readback_mismatches,
            s->last_wl_opts.no_image_check ? "false" : "true", (unsigned long long)w->corrupted_chunks,
            (double)mr / (double)ios, (double)mw / (double)ios, (double)db / (double)ios, (double)irq / (double)ios);
        return;
    }
    printf("Workload (%s, bs %u, qd %u, seed %llu):\n", modes[s->last_wl_opts.mode], s->last_wl_opts.bs, s->last_wl_opts.qd,
           (unsigned long long)s->last_wl_opts.seed);
    printf("  I/Os            %llu (%llu reads, %llu writes) in %.2f s, %.0f IOPS, avg %.0f us, max %.0f us\n",
           (unsigned long long)w->ios, (unsigned long long)w->reads, (unsigned long long)w->writes, secs,
           secs > 0 ? (double)w->ios / secs : 0.0,
           w->ios ? (double)w->total_latency_ns / (double)w->ios / 1000.0 : 0.0, (double)w->max_latency_ns / 1000.0);
    printf("  data            %.1f MiB read, %.1f MiB written\n", (double)w->bytes_read / 1048576.0,
           (double)w->bytes_written / 1048576.0);
    printf("  verification    %llu errors, %llu read-back mismatches; %llu written chunks checked in the image file: %llu mismatches\n",
           (unsigned long long)w->errors, (unsigned long long)w->mismatches, (unsigned long long)w->image_chunks_checked,
           (unsigned long long)w->image_mismatches);
    printf("  read-back pass  %llu written chunks read again through the driver: %llu sector mismatches\n",
           (unsigned long long)w->readback_reads, (unsigned long long)w->readback_mismatches);
    if (s->last_wl_opts.tolerate_removal || s->last_wl_power_cycles)
        printf("  lifecycle       %llu requests failed with NO_DEVICE (removal expected: %s); %llu sleep/resume cycles\n",
               (unsigned long long)w->no_device, s->last_wl_opts.tolerate_removal ? "yes" : "no",
               (unsigned long long)s->last_wl_power_cycles);
    printf("  VM exits        %llu MMIO reads, %llu MMIO writes (%llu doorbells); %llu interrupts, %llu DPCs\n",
           (unsigned long long)mr, (unsigned long long)mw, (unsigned long long)db, (unsigned long long)irq,
           (unsigned long long)dpc);
    printf("  per I/O         %.3f MMIO reads, %.3f MMIO writes, %.3f doorbells, %.3f interrupts\n",
           (double)mr / (double)ios, (double)mw / (double)ios, (double)db / (double)ios, (double)irq / (double)ios);
}

static void describe(struct session *s)
{
    struct sim_disk *d = &s->disk;
    struct sim_adapter *a = s->a;
    struct devstate ds = device_state(s);
    char feat[512] = "";
    size_t fl = 0;
    for (unsigned bit = 0; bit < 64; bit++) {
        if (!(ds.negotiated & (1ull << bit))) continue;
        const char *nm = AvDiagFeatureName(bit);
        char tmp[32];
        if (!nm) { snprintf(tmp, sizeof(tmp), "bit%u", bit); nm = tmp; }
        fl += (size_t)snprintf(feat + fl, sizeof(feat) - fl, "%s%s", fl ? " " : "", nm);
        if (fl >= sizeof(feat)) break;
    }
    const char *imode = a->opts.dump_mode ? "polled (dump mode)" : a->use_msi ? "MSI-X" : "INTx";
    if (s->o->json) {
        const uint8_t *c = a->pci.cfg;
        jsf(&s->out, "\"pci_id\":\"PCI\\\\VEN_%02X%02X&DEV_%02X%02X&SUBSYS_%02X%02X%02X%02X&REV_%02X\",",
            c[1], c[0], c[3], c[2], c[0x2F], c[0x2E], c[0x2D], c[0x2C], c[8]);
        jsf(&s->out, "\"identity\":{");
        jstr(&s->out, "vendor", d->vendor);
        jstr(&s->out, "product", d->product);
        jstr(&s->out, "revision", d->revision);
        jstr(&s->out, "serial", d->serial);
        s->out.len--;
        jsf(&s->out, "},\"capacity_blocks\":%llu,\"capacity_bytes\":%llu,\"block_size\":%u,\"write_protect\":%s,"
                     "\"write_cache\":%s,\"read_capacity_16\":%s,\"max_transfer\":%u,\"queue_depth\":%u,",
            (unsigned long long)d->blocks, (unsigned long long)(d->blocks * d->block_size), d->block_size,
            d->write_protect ? "true" : "false", d->wce ? "true" : "false", d->use16 ? "true" : "false",
            d->max_transfer, a->queue_depth);
        jsf(&s->out, "\"features_offered\":\"0x%016llx\",\"features_negotiated\":\"0x%016llx\",\"features\":\"%s\","
                     "\"queue_size\":%u,\"num_queues\":%u,\"device_status\":%u,\"interrupt_mode\":\"%s\",\"msix_messages\":%u,"
                     "\"synchronization\":\"%s\",\"vpd_pages\":\"",
            (unsigned long long)ds.offered, (unsigned long long)ds.negotiated, feat, ds.queue_size, ds.num_queues,
            ds.status, imode, a->use_msi ? a->pci.nmsg : 0,
            a->sync_model == StorSynchronizeFullDuplex ? "full-duplex" : "half-duplex");
        for (unsigned i = 0; i < d->nvpd; i++) jsf(&s->out, "%s%02x", i ? " " : "", d->vpd_pages[i]);
        jsf(&s->out, "\",");
        return;
    }
    const uint8_t *c = a->pci.cfg;
    printf("What Windows would see:\n");
    printf("  PCI function    PCI\\VEN_%02X%02X&DEV_%02X%02X&SUBSYS_%02X%02X%02X%02X&REV_%02X, memory BARs:",
           c[1], c[0], c[3], c[2], c[0x2F], c[0x2E], c[0x2D], c[0x2C], c[8]);
    for (unsigned i = 0; i < 6; i++)
        if (a->pci.bar[i].present) printf(" BAR%u %llu KiB", i, (unsigned long long)(a->pci.bar[i].len >> 10));
    printf("\n");
    printf("  disk            \"%s %s\" rev \"%s\", serial \"%s\"\n", d->vendor, d->product, d->revision, d->serial);
    printf("  capacity        %llu blocks of %u bytes = %llu bytes (%.1f MiB)%s\n", (unsigned long long)d->blocks,
           d->block_size, (unsigned long long)(d->blocks * d->block_size),
           (double)(d->blocks * d->block_size) / 1048576.0, d->use16 ? ", READ CAPACITY(16)" : "");
    printf("  caching         write cache %s%s; VPD pages:", d->wce ? "enabled" : "disabled",
           d->write_protect ? ", WRITE PROTECTED" : "");
    for (unsigned i = 0; i < d->nvpd; i++) printf(" %02x", d->vpd_pages[i]);
    printf("\n  transfers       up to %u bytes per request (MaximumTransferLength %u, NumberOfPhysicalBreaks %u), queue depth %u\n",
           d->max_transfer, a->cfg->MaximumTransferLength, a->cfg->NumberOfPhysicalBreaks, a->queue_depth);
    printf("  virtio          features 0x%llx: %s\n", (unsigned long long)ds.negotiated, feat);
    printf("  queue           %u entries (device has %u queue%s)\n", ds.queue_size, ds.num_queues, ds.num_queues == 1 ? "" : "s");
    printf("  interrupts      %s", imode);
    if (a->use_msi) printf(" with %u message%s (table size %u)", a->pci.nmsg, a->pci.nmsg == 1 ? "" : "s", a->pci.msix_table_size);
    printf(", %s StorPort\n", a->sync_model == StorSynchronizeFullDuplex ? "full-duplex" : "half-duplex");
}

/* ------------------------------------------------------------------------------ */
static int run_script(struct session *s, const char *path);

static void opts_defaults(struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->size = 256ull << 20;
    o->backend = "qemu";
    o->msi = true;
    o->ram = 256ull << 20;
    o->timeout = 300;
    o->wl.mode = WL_RANDRW;
    o->wl.bs = 4096;
    o->wl.qd = 1;
    o->wl.seed = 1;
    o->wl.write_pct = 50;
    o->wl.stop_on_finding = false;
    o->code = o->header_len = o->length = o->buffer_size = o->return_code = -1;
}

/* One command with per-command options (CLI or script step). */
static int do_command(struct session *s, const char *cmd, struct opts *o, char **pos, int npos)
{
    if (!strcmp(cmd, "info")) return 0;
    if (!strcmp(cmd, "run")) return cmd_run(s, o);
    if (!strcmp(cmd, "cdb")) {
        static char joined[256];
        joined[0] = 0;
        for (int i = 0; i < npos; i++) { strncat(joined, pos[i], sizeof(joined) - strlen(joined) - 2); strcat(joined, " "); }
        o->cdb_hex = joined;
        return cmd_cdb(s, o);
    }
    if (!strcmp(cmd, "ioctl")) return cmd_ioctl(s, o);
    if (!strcmp(cmd, "script")) {
        if (npos < 1) { fprintf(stderr, "script: FILE missing\n"); return -1; }
        return run_script(s, pos[0]);
    }
    fprintf(stderr, "unknown command %s (see --help)\n", cmd);
    return -1;
}

/* ---- script ---------------------------------------------------------------------- */
static int expect_one(struct session *s, const char *kv, int line)
{
    char key[64];
    const char *eq = strchr(kv, '=');
    if (!eq || (size_t)(eq - kv) >= sizeof(key)) { fprintf(stderr, "script:%d: expect KEY=VALUE, got %s\n", line, kv); return -1; }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    const char *val = eq + 1;
    struct sim_request *r = &s->last;
    uint64_t want = strtoull(val, NULL, 0), have = 0;
    bool ok;
    if (!strcmp(key, "srb") || !strcmp(key, "srb_status")) have = SRB_STATUS(r->srb_status);
    else if (!strcmp(key, "autosense")) have = (r->srb_status & SRB_STATUS_AUTOSENSE_VALID) ? 1 : 0;
    else if (!strcmp(key, "scsi")) have = r->scsi_status;
    else if (!strcmp(key, "key")) have = r->sense[2] & 15;
    else if (!strcmp(key, "asc")) have = r->sense[12];
    else if (!strcmp(key, "ascq")) have = r->sense[13];
    else if (!strcmp(key, "sense")) {
        unsigned k, a, q;
        if (sscanf(val, "%x/%x/%x", &k, &a, &q) != 3) { fprintf(stderr, "script:%d: sense=K/ASC/ASCQ (hex)\n", line); return -1; }
        want = (uint64_t)k << 16 | a << 8 | q;
        have = (uint64_t)(r->sense[2] & 15) << 16 | (uint64_t)r->sense[12] << 8 | r->sense[13];
        if (!(r->srb_status & SRB_STATUS_AUTOSENSE_VALID)) have = 0xFFFFFF;
    }
    else if (!strcmp(key, "len") || !strcmp(key, "transferred")) have = r->out_transfer_len;
    else if (!strncmp(key, "data[", 5)) {
        unsigned idx = (unsigned)strtoul(key + 5, NULL, 0);
        have = idx < s->last_data_len ? s->last_data[idx] : 0x100;
    }
    else if (!strcmp(key, "data")) {
        uint8_t exp[256];
        int n = parse_hex_bytes(val, exp, sizeof(exp));
        ok = n >= 0 && (unsigned)n <= s->last_data_len && !memcmp(exp, s->last_data, (size_t)n);
        if (!ok) fprintf(stderr, "EXPECT FAILED (script line %d): data does not start with %s\n", line, val);
        return ok ? 0 : -1;
    }
    else if (!strcmp(key, "capacity")) have = s->disk.blocks;
    else if (!strcmp(key, "block_size")) have = s->disk.block_size;
    else if (!strcmp(key, "mismatches")) have = s->last_wl.mismatches + s->last_wl.image_mismatches;
    else if (!strcmp(key, "errors")) have = s->last_wl.errors;
    else if (!strcmp(key, "ios")) have = s->last_wl.ios;
    else if (!strcmp(key, "findings")) have = sim_findings_count();
    else if (!strcmp(key, "return_code")) have = s->last_return_code;
    else if (!strcmp(key, "outstanding")) have = sim_port_outstanding(s->a);
    else if (!strcmp(key, "interrupt_mode")) { have = s->a->use_msi; want = !strcmp(val, "msix") || !strcmp(val, "1"); }
    else if (!strcmp(key, "bus_changes")) have = s->a->ctr.bus_changes;
    else if (!strcmp(key, "resets")) have = s->a->ctr.resets;
    else if (!strcmp(key, "no_device")) have = s->last_wl.no_device;
    else if (!strcmp(key, "power_cycles")) have = s->last_wl_power_cycles;
    else if (!strcmp(key, "class_retries")) have = s->disk.retries;
    else if (!strcmp(key, "rescans")) have = s->disk.rescans;
    else if (!strcmp(key, "wce")) have = s->disk.wce ? 1 : 0;            /* write cache as disk.sys last read it */
    else if (!strcmp(key, "fua_disabled")) have = s->disk.fua_disabled;  /* FUA WRITE failed 05/24: FUA dropped */
    else if (!strcmp(key, "removed")) have = s->a->removal_noticed;
    else if (!strcmp(key, "mmio_after_removal"))   /* driver register accesses since it reported NO_DEVICE */
        have = s->a->removal_noticed ? sim_port_mmio_count(s->a) - s->a->mmio_at_notice : 0;
    else if (!strncmp(key, "field.", 6)) {
        const AVDIAG_FIELD *f = s->have_info ? AvDiagFindField(key + 6) : NULL;
        if (!f || !AvDiagGetField(&s->last_info, f, &have)) {
            fprintf(stderr, "EXPECT FAILED (script line %d): query field %s not available\n", line, key + 6);
            return -1;
        }
    }
    else { fprintf(stderr, "script:%d: unknown expectation key %s\n", line, key); return -1; }
    if (have == want) return 0;
    fprintf(stderr, "EXPECT FAILED (script line %d): %s is 0x%llx (%llu), expected %s\n", line, key,
            (unsigned long long)have, (unsigned long long)have, val);
    return -1;
}

/* `after MS control CMD` / `after MS qmp JSON`: a delayed device action on its own
 * thread, so it lands in the middle of the next step (e.g. block_resize during run). */
struct delayed { struct session *s; unsigned ms; char cmd[1024]; int line; pthread_t th; };
static void *delayed_thread(void *arg)
{
    struct delayed *d = arg;
    sim_sleep_us(d->ms * 1000u);
    sim_dev *dev = d->s->dev;
    char reply[4096] = "";
    int rc = -1;
    if (!strncmp(d->cmd, "control ", 8) && dev->ops->control) rc = dev->ops->control(dev, d->cmd + 8);
    else if (!strncmp(d->cmd, "qmp ", 4) && dev->ops->qmp) rc = dev->ops->qmp(dev, d->cmd + 4, reply, sizeof(reply));
    else if (!strcmp(d->cmd, "power-cycle")) rc = power_cycle(d->s);
    else if (!strcmp(d->cmd, "reset")) { sim_port_reset_bus(d->s->a, "script reset"); rc = 0; }
    else if (!strncmp(d->cmd, "class ", 6)) {   /* issue 11 item 12: class traffic mid-run */
        struct sim_request r;
        char m[256];
        rc = sim_disk_class_step(&d->s->disk, d->cmd + 6, &r, m, sizeof(m));
        if (rc == 0) sim_log("class %s: %s", d->cmd + 6, m);
        else snprintf(reply, sizeof(reply), "%s", m);
    }
    else if (!strncmp(d->cmd, "pnp ", 4)) {
        ULONG action;
        struct sim_request r;
        rc = parse_pnp_action(d->cmd + 4, &action);
        if (rc == 0) rc = send_pnp_power(d->s->a, SRB_FUNCTION_PNP, action,
                                         strstr(d->cmd, " adapter") ? SRB_PNP_FLAGS_ADAPTER_REQUEST : 0, &r);
        if (rc == 0) snprintf(reply, sizeof(reply), "(SRB status 0x%02x)", r.srb_status);
        if (rc == 0 && sim_verbose > 0) fprintf(stderr, "script:%d: delayed '%s': SRB status 0x%02x\n", d->line, d->cmd, r.srb_status);
    }
    if (rc) {
        fprintf(stderr, "script:%d: delayed '%s' failed %s\n", d->line, d->cmd, reply);
        d->s->failures++;
    } else if (sim_verbose > 0) {
        fprintf(stderr, "script:%d: delayed '%s' done\n", d->line, d->cmd);
    }
    return NULL;
}

static int run_script(struct session *s, const char *path)
{
    struct delayed *pending[32];
    int npending = 0;
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "script: %s: %s\n", path, strerror(errno)); return -1; }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        p[strcspn(p, "\r\n")] = 0;
        if (sim_verbose > 0 && !s->o->json) fprintf(stderr, "script:%d: %s\n", lineno, p);
        if (!strncmp(p, "qmp ", 4)) {
            char reply[4096] = "";
            if (!s->dev->ops->qmp) { fprintf(stderr, "script:%d: backend has no QMP\n", lineno); rc = -1; break; }
            if (s->dev->ops->qmp(s->dev, p + 4, reply, sizeof(reply))) {
                fprintf(stderr, "script:%d: QMP command failed: %s\n", lineno, reply);
                rc = -1; break;
            }
            continue;
        }
        if (!strncmp(p, "after ", 6)) {
            char *rest;
            unsigned ms = (unsigned)strtoul(p + 6, &rest, 0);
            while (isspace((unsigned char)*rest)) rest++;
            if (npending >= 32 || (strncmp(rest, "control ", 8) && strncmp(rest, "qmp ", 4) && strcmp(rest, "power-cycle") &&
                                   strcmp(rest, "reset") && strncmp(rest, "pnp ", 4) && strncmp(rest, "class ", 6))) {
                fprintf(stderr, "script:%d: after MS control CMD | qmp JSON | power-cycle | reset | pnp ACTION | class STEP\n", lineno);
                rc = -1; break;
            }
            struct delayed *d = calloc(1, sizeof(*d));
            d->s = s; d->ms = ms; d->line = lineno;
            snprintf(d->cmd, sizeof(d->cmd), "%s", rest);
            pthread_create(&d->th, NULL, delayed_thread, d);
            pending[npending++] = d;
            continue;
        }
        if (!strncmp(p, "control ", 8)) {
            if (!s->dev->ops->control || s->dev->ops->control(s->dev, p + 8)) {
                fprintf(stderr, "script:%d: control '%s' failed\n", lineno, p + 8);
                rc = -1; break;
            }
            continue;
        }
        /* tokenise (quotes group words) */
        char *argv[64];
        int argc = 0;
        argv[argc++] = (char *)"aerovblk-sim";
        for (char *q = p; *q && argc < 63;) {
            while (isspace((unsigned char)*q)) q++;
            if (!*q) break;
            char quote = (*q == '"' || *q == '\'') ? *q++ : 0;
            argv[argc++] = q;
            while (*q && (quote ? *q != quote : !isspace((unsigned char)*q))) q++;
            if (*q) *q++ = 0;
        }
        argv[argc] = NULL;
        const char *cmd = argv[1];
        if (!strcmp(cmd, "expect")) {
            for (int i = 2; i < argc; i++) if (expect_one(s, argv[i], lineno)) { rc = -1; }
            if (rc) break;
            continue;
        }
        if (!strcmp(cmd, "sleep")) { sim_sleep_us((unsigned)atoi(argc > 2 ? argv[2] : "0") * 1000u); continue; }
        if (!strcmp(cmd, "reset")) { sim_port_reset_bus(s->a, "script reset"); continue; }
        if (!strcmp(cmd, "crash")) {
            sim_port_crash(s->a, argc > 2 ? (unsigned)atoi(argv[2]) : 4);
            continue;
        }
        if (!strcmp(cmd, "dump-load") || !strcmp(cmd, "reload")) {
            char err[512] = "";
            if (session_new_instance(s, !strcmp(cmd, "dump-load"), err, sizeof(err))) {
                fprintf(stderr, "script:%d: %s: %s\n", lineno, cmd, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "power-cycle")) {
            if (power_cycle(s)) { fprintf(stderr, "script:%d: power cycle failed\n", lineno); rc = -1; break; }
            continue;
        }
        if (!strcmp(cmd, "hibernate")) {
            /* the system goes to S4: the disk's power SRB, StorPort stops the adapter, and
             * this instance gets no more calls (its memory is in the image; the hiber
             * instance loaded next writes it) */
            struct sim_request pr;
            if (sim_s4_adapter_control ? (send_pnp_power(s->a, SRB_FUNCTION_POWER, StorPowerDeviceD3, 0, &pr) ||
                                          sim_port_stop(s->a))
                                       : sim_port_quiesce(s->a)) {
                fprintf(stderr, "script:%d: hibernate: power down failed\n", lineno);
                rc = -1; break;
            }
            sim_log("hibernate: the adapter is %s and its instance frozen (no more calls)",
                    sim_s4_adapter_control ? "stopped" : "idle (no ScsiStopAdapter: --s4-adapter-control off)");
            sim_port_crash(s->a, 0);
            s->a->s4_hibernated = true;
            s->a->s4_frozen_ns = sim_now_ns();
            continue;
        }
        if (!strcmp(cmd, "hibernate-resume")) {
            char err[512] = "";
            if (session_s4_resume(s, err, sizeof(err))) {
                fprintf(stderr, "script:%d: hibernate-resume: %s\n", lineno, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "pnp") && argc > 2 && !strcmp(argv[2], "rebalance")) {
            char err[512] = "";
            if (session_rebalance(s, err, sizeof(err))) {
                fprintf(stderr, "script:%d: pnp rebalance: %s\n", lineno, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "pnp")) {
            ULONG action;
            if (argc < 3 || parse_pnp_action(argv[2], &action)) {
                fprintf(stderr, "script:%d: pnp remove|surprise-removal|stop|N [adapter]\n", lineno);
                rc = -1; break;
            }
            bool adapter = argc > 3 && !strcmp(argv[3], "adapter");
            if (send_pnp_power(s->a, SRB_FUNCTION_PNP, action, adapter ? SRB_PNP_FLAGS_ADAPTER_REQUEST : 0, &s->last)) {
                fprintf(stderr, "script:%d: pnp: the SRB did not come back\n", lineno);
                rc = -1; break;
            }
            s->have_last = true;
            s->last_data_len = 0;
            if (!s->o->json) printf("pnp %s: srb_status 0x%02x (%s)\n", argv[2], s->last.srb_status, srb_status_name(s->last.srb_status));
            continue;
        }
        if (!strcmp(cmd, "class")) {   /* issue 11 item 12: disk.sys / StorPort class traffic */
            char m[256];
            if (argc < 3 || sim_disk_class_step(&s->disk, argv[2], &s->last, m, sizeof(m))) {
                fprintf(stderr, "script:%d: class: %s\n", lineno, argc < 3 ? "class STEP" : m);
                rc = -1; break;
            }
            s->have_last = true;
            s->last_data_len = 0;
            sim_log("class %s: %s", argv[2], m);
            continue;
        }
        if (!strcmp(cmd, "rescan")) {
            __atomic_store_n(&s->a->bus_change_pending, 0, __ATOMIC_RELEASE);
            if (sim_disk_rescan(&s->disk)) { rc = -1; break; }
            continue;
        }
        struct opts so = *s->o;
        so.cdb_hex = NULL; so.in_len = 0; so.out_file = NULL;
        so.signature = NULL; so.code = so.header_len = so.length = so.buffer_size = so.return_code = -1;
        so.raw = false;
        char *pos[16];
        int npos;
        if (parse_opts(argc, argv, &so, pos, 16, &npos)) { fprintf(stderr, "script:%d: bad options\n", lineno); rc = -1; break; }
        /* getopt permutes; the command is the first positional */
        if (npos < 1) { fprintf(stderr, "script:%d: no command\n", lineno); rc = -1; break; }
        if (!strcmp(pos[0], "script")) { fprintf(stderr, "script:%d: nested scripts are not supported\n", lineno); rc = -1; break; }
        struct opts *saved = s->o;
        s->o = &so;
        int r = do_command(s, pos[0], &so, pos + 1, npos - 1);
        if (!strcmp(pos[0], "run") && !so.json && s->have_wl) wl_report(s);
        s->o = saved;
        if (r) { fprintf(stderr, "script:%d: '%s' failed\n", lineno, p); rc = -1; break; }
    }
    fclose(f);
    for (int i = 0; i < npending; i++) { pthread_join(pending[i]->th, NULL); free(pending[i]); }
    if (s->failures) rc = -1;
    return rc;
}

/* ------------------------------------------------------------------------------ */
/* A fault on a READ/WRITE SRB's DataBuffer gets a precise message before ASan's (or the
 * default) handler reports the crash. */
static struct sigaction old_segv;
#if defined(__i386__)
__attribute__((force_align_arg_pointer))   /* qemu-i386 aligns signal frames to 8 only */
#endif
static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
    if (si && sim_addr_is_databuffer_decoy(si->si_addr)) {
        static const char msg[] = "VERIFIER: DATABUFFER: the driver dereferenced the DataBuffer of a READ/WRITE SRB; "
                                  "Windows 7 does not map it (facts §10 item 13): use the scatter/gather list\n";
        ssize_t rc = write(2, msg, sizeof(msg) - 1);
        (void)rc;
    }
    if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) { old_segv.sa_sigaction(sig, si, ctx); return; }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) { old_segv.sa_handler(sig); return; }
    signal(sig, SIG_DFL);   /* re-fault with the default action */
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &old_segv);

    struct opts o;
    opts_defaults(&o);
    char *pos[32];
    int npos;
    if (win7_model_apply(argc, argv)) return 2;
    if (parse_opts(argc, argv, &o, pos, 32, &npos)) { usage(stderr); return 2; }
    {   /* an x86 .sys runs in the 32-bit simulator, natively or emulated (x86_launch.c) */
        const char *drv = o.driver ? o.driver : getenv("AEROVBLK_SIM_DRIVER");
        int lr = sim_x86_relaunch(argc, argv, drv);
        if (lr) return lr;
        if (sim_x86_mode() && drv && *drv) {
            sim_log("x86 driver, %s", sim_x86_mode());
            sim_x86_note_run();
        }
    }
    const char *cmd = npos ? pos[0] : "run";
    if (strcmp(cmd, "run") && strcmp(cmd, "info") && strcmp(cmd, "cdb") && strcmp(cmd, "ioctl") && strcmp(cmd, "script")) {
        fprintf(stderr, "unknown command %s\n", cmd);
        usage(stderr);
        return 2;
    }
    if (o.json && sim_verbose == 1) sim_verbose = 1;   /* stderr stays human-readable */

    struct session s;
    memset(&s, 0, sizeof(s));
    s.o = &o;
    g_session = &s;
    sim_deadlock_hook = on_deadlock;
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, &s);
    pthread_detach(wd);

    char err[512] = "";
    int rc = 0;
    sim_contract_stats cstats;
    bool have_cstats = false, have_qnotify = false;
    uint64_t qnotify = 0, cirq[2] = { 0, 0 };
    if (o.ideal && strcmp(cmd, "run")) {
        fprintf(stderr, "aerovblk-sim: --ideal-driver is for run only\n");
        return 2;
    }
    if (session_start(&s, err, sizeof(err))) {
        fprintf(stderr, "aerovblk-sim: %s\n", err);
        rc = 1;
    } else if (o.ideal) {
        struct sim_workload_opts wl = o.wl;
        struct sim_ideal_result ir;
        if (!wl.ios && !wl.seconds) wl.ios = 1000;
        rc = sim_ideal_run(s.dev, o.disk, &wl, &ir);
        session_stop(&s);   /* the contract device's DRIVER BUG count: a finding */
        if (sim_findings_count()) rc = 1;
        sim_ideal_print(&wl, &ir, o.json, o.backend, sim_findings_count(), rc);
        return rc;
    } else {
        if (!o.json && (!strcmp(cmd, "run") || !strcmp(cmd, "info") || !strcmp(cmd, "script"))) describe(&s);
        if (do_command(&s, cmd, &o, pos + 1, npos ? npos - 1 : 0)) rc = 1;
        /* before describe(): its register reads are the harness's, not the driver's */
        have_cstats = sim_contract_get_stats(s.dev, &cstats) == 0;
        have_qnotify = sim_qemu_notify_writes(s.dev, &qnotify) == 0;
        sim_contract_irq_counts(s.dev, &cirq[0], &cirq[1]);
        if (!strcmp(cmd, "run") && s.have_wl && !o.json) wl_report(&s);
        if (o.json) { describe(&s); if (s.have_wl) wl_report(&s); }
    }
    struct sim_counters ctr = s.a ? s.a->ctr : (struct sim_counters){ 0 };
    unsigned maxout = s.a ? s.a->max_outstanding : 0;
    uint64_t pcycles_all = (s.a ? s.a->power_cycles : 0) + s.power_cycles_prev;
    if (o.json && s.a) {
        /* class-layer completions by SRB status and sense key; the device's own counts */
        static const char *keys[16] = { "NO_SENSE", "RECOVERED_ERROR", "NOT_READY", "MEDIUM_ERROR", "HARDWARE_ERROR",
                                        "ILLEGAL_REQUEST", "UNIT_ATTENTION", "DATA_PROTECT", "BLANK_CHECK", "0x9",
                                        "COPY_ABORTED", "ABORTED_COMMAND", "0xc", "VOLUME_OVERFLOW", "MISCOMPARE", "0xf" };
        jsf(&s.out, "\"class_completions\":{");
        for (unsigned i = 0, n = 0; i < 64; i++) {
            if (!s.disk.srb_status_count[i]) continue;
            const char *nm = srb_status_name(i);
            if (!strcmp(nm, "?")) jsf(&s.out, "%s\"0x%02x\":%llu", n++ ? "," : "", i, (unsigned long long)s.disk.srb_status_count[i]);
            else jsf(&s.out, "%s\"%s\":%llu", n++ ? "," : "", nm, (unsigned long long)s.disk.srb_status_count[i]);
        }
        jsf(&s.out, "},\"class_sense_keys\":{");
        for (unsigned i = 0, n = 0; i < 16; i++)
            if (s.disk.sense_key_count[i]) jsf(&s.out, "%s\"%s\":%llu", n++ ? "," : "", keys[i], (unsigned long long)s.disk.sense_key_count[i]);
        jsf(&s.out, "},");
        jsf(&s.out, "\"class_fua_disabled\":%llu,\"class_wce_disable_attempts\":%llu,",
            (unsigned long long)s.disk.fua_disabled, (unsigned long long)s.disk.wce_disable_attempts);
        if (have_cstats)
            jsf(&s.out, "\"device_flushes_delayed\":%llu,\"device_reset_blocked_us\":%llu,\"device_status_resets\":%llu,",
                (unsigned long long)cstats.flushes_delayed, (unsigned long long)(cstats.reset_blocked_ns_max / 1000),
                (unsigned long long)cstats.resets);
        if (have_cstats)
            jsf(&s.out, "\"device\":{\"doorbells\":%llu,\"requests\":%llu,\"msix_messages\":%llu,\"intx_raises\":%llu,\"faults_injected\":%llu,"
                        "\"irq_passes\":%llu,\"irq_suppressed\":%llu},",
                (unsigned long long)cstats.doorbells, (unsigned long long)cstats.requests, (unsigned long long)cstats.msix_messages,
                (unsigned long long)cstats.intx_raises, (unsigned long long)cstats.faults_injected,
                (unsigned long long)cirq[0], (unsigned long long)cirq[1]);
        else if (have_qnotify)
            jsf(&s.out, "\"device\":{\"doorbells\":%llu,\"requests\":-1},", (unsigned long long)qnotify);
    }
    if (o.json && s.a) {
        struct sim_adapter *a = s.a;
        jsf(&s.out, "\"rescans\":%llu,", (unsigned long long)s.disk.rescans);
        jsf(&s.out, "\"power_cycles\":%llu,\"class_retries\":%llu,\"removal\":{\"noticed\":%s,\"no_device_completions\":%llu,"
                    "\"driver_mmio_after_notice\":%llu,\"device_mmio_after_removal_at_notice\":%lld,\"device_mmio_after_removal\":%lld},",
            (unsigned long long)a->power_cycles, (unsigned long long)s.disk.retries, a->removal_noticed ? "true" : "false",
            (unsigned long long)a->no_device_completions,
            (unsigned long long)(a->removal_noticed ? sim_port_mmio_count(a) - a->mmio_at_notice : 0),
            (long long)a->dev_removed_mmio_at_notice, have_cstats ? (long long)cstats.mmio_after_removal : -1ll);
    }
    if (o.json) {
        jsf(&s.out, "\"instances\":[");
        for (int i = 0; i < s.ninst; i++) {
            char e[160];
            sim_json_escape(e, sizeof(e), s.inst[i].name);
            jsf(&s.out, "%s{\"name\":\"%s\",\"dump_mode\":%s,\"uncached_extension_bytes\":%u,\"max_transfer\":%u,"
                        "\"physical_breaks\":%u,\"srb_extension_bytes\":%u}", i ? "," : "", e, s.inst[i].dump ? "true" : "false",
                s.inst[i].uncached_bytes, s.inst[i].max_transfer, s.inst[i].breaks, s.inst[i].srbext);
        }
        jsf(&s.out, "],");
    }
    session_stop(&s);   /* teardown checks may add findings */
    unsigned findings = sim_findings_count();
    if (s.failures) rc = 1;
    if (findings) rc = 1;

    if (o.json) {
        struct js *j = &s.out;
        uint64_t mr = sum6(ctr.mmio_reads), mw = sum6(ctr.mmio_writes);
        char *fj = sim_findings_json(), *lj = sim_log_json();
        jsf(j, "\"backend\":\"%s\",\"command\":\"%s\",\"mmio_reads\":%llu,\"mmio_writes\":%llu,"
               "\"mmio_by_region\":{\"common\":[%llu,%llu],\"notify\":[%llu,%llu],\"isr\":[%llu,%llu],\"device\":[%llu,%llu],\"other\":[%llu,%llu]},"
               "\"doorbells\":%llu,\"interrupts\":%llu,\"intx_unclaimed\":%llu,\"dpcs\":%llu,\"timers\":%llu,\"srbs\":%llu,"
               "\"busy_requeues\":%llu,\"srb_timeouts\":%llu,\"lu_resets\":%llu,\"device_resets\":%llu,\"bus_resets\":%llu,\"bus_changes\":%llu,\"reset_detected\":%llu,"
               "\"max_outstanding\":%u,",
            o.backend, cmd, (unsigned long long)mr, (unsigned long long)mw,
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_COMMON], (unsigned long long)ctr.mmio_writes[SIM_MMIO_COMMON],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_NOTIFY], (unsigned long long)ctr.mmio_writes[SIM_MMIO_NOTIFY],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_ISR], (unsigned long long)ctr.mmio_writes[SIM_MMIO_ISR],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_DEVICE], (unsigned long long)ctr.mmio_writes[SIM_MMIO_DEVICE],
            (unsigned long long)(ctr.mmio_reads[0] + ctr.mmio_reads[5]), (unsigned long long)(ctr.mmio_writes[0] + ctr.mmio_writes[5]),
            (unsigned long long)ctr.doorbells, (unsigned long long)ctr.interrupts, (unsigned long long)ctr.intx_unclaimed,
            (unsigned long long)ctr.dpcs, (unsigned long long)ctr.timers, (unsigned long long)ctr.srbs,
            (unsigned long long)ctr.srbs_busy, (unsigned long long)ctr.srb_timeouts, (unsigned long long)ctr.lu_resets,
            (unsigned long long)ctr.device_resets, (unsigned long long)ctr.resets,
            (unsigned long long)ctr.bus_changes, (unsigned long long)ctr.reset_detected, maxout);
        jsf(j, "\"foreign_interrupts\":%llu,\"d3_accesses\":%llu,", (unsigned long long)ctr.foreign_intx,
            (unsigned long long)ctr.d3_accesses);
        jsf(j, "\"win7_model\":\"%s\",", win7_pessimistic ? "pessimistic" : "default");
        jsf(j, "\"dpc_concurrent\":%llu,\"ctl_interrupts\":%llu,\"ctl_dpcs\":%llu,",
            (unsigned long long)ctr.dpc_concurrent, (unsigned long long)ctr.ctl_interrupts,
            (unsigned long long)ctr.ctl_dpcs);
        jsf(j, "\"pnp_rebalances\":%llu,\"s4_resumes\":%llu,", (unsigned long long)s.rebalances,
            (unsigned long long)s.s4_resumes);
        jsf(j, "\"max_locked_mmio_us\":%llu,\"reset_left_outstanding\":%llu,",
            (unsigned long long)(sim_max_locked_mmio_ns / 1000), (unsigned long long)ctr.reset_left_outstanding);
        if (s.have_wl)
            jsf(j, "\"ios\":%llu,\"errors\":%llu,\"mismatches\":%llu,",
                (unsigned long long)s.last_wl.ios, (unsigned long long)s.last_wl.errors,
                (unsigned long long)(s.last_wl.mismatches + s.last_wl.image_mismatches));
        jsf(j, "\"all_instances\":{\"bus_resets\":%llu,\"lu_resets\":%llu,\"device_resets\":%llu,\"srb_timeouts\":%llu,"
               "\"reset_detected\":%llu,\"bus_changes\":%llu,\"power_cycles\":%llu},",
            (unsigned long long)(ctr.resets + s.ctr_prev.resets), (unsigned long long)(ctr.lu_resets + s.ctr_prev.lu_resets),
            (unsigned long long)(ctr.device_resets + s.ctr_prev.device_resets),
            (unsigned long long)(ctr.srb_timeouts + s.ctr_prev.srb_timeouts),
            (unsigned long long)(ctr.reset_detected + s.ctr_prev.reset_detected),
            (unsigned long long)(ctr.bus_changes + s.ctr_prev.bus_changes),
            (unsigned long long)pcycles_all);
        jsf(j, "\"runs_total\":{\"runs\":%llu,\"ios\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"readback_reads\":%llu,"
               "\"image_chunks_checked\":%llu},",
            (unsigned long long)s.sum_runs, (unsigned long long)s.sum_ios, (unsigned long long)s.sum_errors,
            (unsigned long long)s.sum_mismatches, (unsigned long long)s.sum_readback, (unsigned long long)s.sum_image_chunks);
        jsf(j, "\"srb_accounting\":{\"issued\":%llu,\"completed\":%llu,\"lost\":%llu,\"abandoned\":%llu,\"duplicates\":%llu,"
               "\"late\":%llu,\"test_dropped\":%llu},",
            (unsigned long long)sim_srb_acct.issued, (unsigned long long)sim_srb_acct.completed,
            (unsigned long long)sim_srb_acct.lost, (unsigned long long)sim_srb_acct.abandoned,
            (unsigned long long)sim_srb_acct.duplicates, (unsigned long long)sim_srb_acct.late,
            (unsigned long long)sim_srb_acct.test_dropped);
        if (err[0]) jstr(j, "error", err);
        jsf(j, "\"verifier_findings\":%u,\"findings\":%s,\"log\":%s,\"exit_status\":%d}", findings, fj, lj, rc);
        printf("{%s\n", j->p ? j->p : "}");
        fflush(stdout);   /* before LeakSanitizer's exit, which does not flush stdio */
        free(fj);
        free(lj);
    } else {
        printf("Longest register access held by the device at DIRQL / under the interrupt lock: %.3f ms (limit 100 ms)\n",
               sim_max_locked_mmio_ns / 1e6);
        printf("Verifier: %u finding%s%s\n", findings, findings == 1 ? "" : "s", findings ? " (see VERIFIER lines above)" : "");
        printf("Result: %s\n", rc ? "FAIL" : "PASS");
    }
    free(s.out.p);
    return rc;
}
