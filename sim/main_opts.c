/*
 * aerovblk-sim command line: usage text, option parsing (also for script lines),
 * --win7-model and the option defaults.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

void main_usage(FILE *f)
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
"               --fill-seed N (the buffer's bytes pseudo-random from seed N, header on top)\n"
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
       O_FUAPCT, O_RETCODE, O_RAW, O_FILLSEED, O_DPCDELAY, O_ISRDELAY, O_FOREIGN, O_TESTDROP };

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
    { "return-code", 1, 0, O_RETCODE }, { "raw", 0, 0, O_RAW }, { "fill-seed", 1, 0, O_FILLSEED },
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
bool win7_pessimistic;
static const char win7_contract_opts[] = "reset-blocks=1,flush-delay-ms=20";
int win7_model_apply(int argc, char **argv)
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
const char *win7_model_device_opts(const char *backend, const char *user, char *buf, size_t len)
{
    if (!win7_pessimistic || strcmp(backend, "contract")) return user;
    snprintf(buf, len, "%s%s%s", win7_contract_opts, user && *user ? "," : "", user ? user : "");
    return buf;
}

int main_parse_opts(int argc, char **argv, struct opts *o, char **pos, int maxpos, int *npos)
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
        case O_FILLSEED: o->fill_seed = strtoll(optarg, NULL, 0); break;
        case 'v': sim_verbose++; break;
        case 'q': sim_verbose = 0; break;
        case O_HELP: case 'h': main_usage(stdout); exit(0);
        default: return -1;
        }
    }
    return 0;
}

void main_opts_defaults(struct opts *o)
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
    o->code = o->header_len = o->length = o->buffer_size = o->return_code = o->fill_seed = -1;
}

