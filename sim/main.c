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
    int msi_messages;
    unsigned srb_timeout;
    uint64_t ram;
    unsigned timeout;
    /* run */
    struct sim_workload_opts wl;
    /* cdb */
    const char *cdb_hex;
    unsigned in_len;
    const char *out_file;
    /* ioctl */
    const char *signature;
    long long code, header_len, length, buffer_size;
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
"  --ram BYTES               guest RAM (default 256M)\n"
"  --timeout S               give up (exit 3) after S seconds in total (default 300)\n"
"  --driver PATH.sys         run a shipped driver binary (needs the PE loader)\n"
"  --json                    one JSON object on stdout instead of text\n"
"  -v, --verbose             more output (twice: driver debug prints); -q quiet\n"
"\n"
"run options:\n"
"  --rw read|write|randread|randwrite|randrw   (default randrw)\n"
"  --bs BYTES (default 4096)   --qd N (default 1)   --ios N | --seconds S (default 1000 I/Os)\n"
"  --seed N   --offset BYTES   --span BYTES   --write-pct P (randrw, default 50)\n"
"\n"
"cdb options:  --in N (bytes to read)  |  --out FILE (data to send)\n"
"ioctl options: --signature S  --code N  --header-length N  --length N  --buffer-size N\n"
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
       O_IN, O_OUT, O_SIG, O_CODE, O_HLEN, O_LEN, O_BUFSZ, O_HELP };

static const struct option longopts[] = {
    { "disk", 1, 0, O_DISK }, { "size", 1, 0, O_SIZE }, { "backend", 1, 0, O_BACKEND },
    { "device-opts", 1, 0, O_DEVOPTS }, { "drive-opts", 1, 0, O_DRIVEOPTS }, { "no-msi", 0, 0, O_NOMSI },
    { "msi-messages", 1, 0, O_MSIMSG }, { "dump-mode", 0, 0, O_DUMP }, { "srb-timeout", 1, 0, O_SRBTMO },
    { "ram", 1, 0, O_RAM }, { "timeout", 1, 0, O_TIMEOUT }, { "driver", 1, 0, O_DRIVER },
    { "json", 0, 0, O_JSON }, { "rw", 1, 0, O_RW }, { "bs", 1, 0, O_BS }, { "qd", 1, 0, O_QD },
    { "ios", 1, 0, O_IOS }, { "seconds", 1, 0, O_SECONDS }, { "seed", 1, 0, O_SEED },
    { "offset", 1, 0, O_OFFSET }, { "span", 1, 0, O_SPAN }, { "write-pct", 1, 0, O_WPCT },
    { "in", 1, 0, O_IN }, { "out", 1, 0, O_OUT }, { "signature", 1, 0, O_SIG }, { "code", 1, 0, O_CODE },
    { "header-length", 1, 0, O_HLEN }, { "length", 1, 0, O_LEN }, { "buffer-size", 1, 0, O_BUFSZ },
    { "verbose", 0, 0, 'v' }, { "quiet", 0, 0, 'q' }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 }
};

/* Parses options (anywhere on the line); non-options are collected into pos[]. */
static int parse_opts(int argc, char **argv, struct opts *o, char **pos, int maxpos, int *npos)
{
    int c;
    *npos = 0;
    optind = 1;
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
        case O_TIMEOUT: o->timeout = (unsigned)atoi(optarg); break;
        case O_DRIVER: o->driver = optarg; break;
        case O_JSON: o->json = true; break;
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
        case O_IN: o->in_len = (unsigned)parse_size(optarg); break;
        case O_OUT: o->out_file = optarg; break;
        case O_SIG: o->signature = optarg; break;
        case O_CODE: o->code = strtoll(optarg, NULL, 0); break;
        case O_HLEN: o->header_len = strtoll(optarg, NULL, 0); break;
        case O_LEN: o->length = strtoll(optarg, NULL, 0); break;
        case O_BUFSZ: o->buffer_size = strtoll(optarg, NULL, 0); break;
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
    struct sim_workload_result last_wl;
    bool have_wl;
    struct sim_counters wl_before;
};

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
    sim_dev_config cfg = { .disk_path = o->disk, .disk_size = o->size, .device_opts = o->device_opts,
                           .drive_opts = o->drive_opts, .ram_size = o->ram, .verbose = sim_verbose > 1 };
    if (!strcmp(o->backend, "qemu")) s->dev = sim_qemu_create(&cfg, err, el);
    else if (!strcmp(o->backend, "contract")) s->dev = sim_contract_create(&cfg, err, el);
    else { snprintf(err, el, "unknown backend %s", o->backend); return -1; }
    if (!s->dev) return -1;

    void *entry = (void *)DriverEntry;
    if (o->driver) {
        if (!sim_load_sys_driver) { snprintf(err, el, "--driver: this build has no PE loader"); return -1; }
        if (sim_load_sys_driver(o->driver, &entry, err, el)) return -1;
    }
    if (!entry) { snprintf(err, el, "no driver linked into this simulator build"); return -1; }
    s->drv.driver_entry = entry;
    snprintf(s->drv.name, sizeof(s->drv.name), "%s", o->driver ? o->driver : "aerovblk (host build)");
    if (sim_driver_load(&s->drv, o->dump, err, el)) return -1;
    struct sim_adapter_opts ao = { .msi = o->msi, .msi_messages = o->msi_messages, .dump_mode = o->dump,
                                   .srb_timeout = o->srb_timeout, .seed = o->wl.seed };
    s->a = sim_adapter_create(&s->drv, s->dev, &ao, err, el);
    if (!s->a) return -1;
    if (sim_adapter_start(s->a, err, el)) return -1;
    if (sim_disk_arrive(&s->disk, s->a, err, el)) return -1;
    s->disk_up = true;
    return 0;
}

static void session_stop(struct session *s)
{
    if (s->a) { sim_adapter_destroy(s->a); s->a = NULL; }
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

