/*
 * The AEROVBLK IOCTL at the byte level: what `aerovblk-sim ioctl` cannot show.
 *
 * Each request's buffer starts 8-byte aligned (METHOD_BUFFERED buffers come from pool,
 * which is at least that aligned) as close as possible to the end of a guest page, and
 * the next page of this process's view of guest RAM is made inaccessible (PROT_NONE)
 * for the duration of the request: a driver read or write past the page faults at once
 * (ASan reports the SEGV) instead of going unnoticed in guest RAM; for buffer sizes that
 * are multiples of 8 the buffer ends exactly at the guard page. The up to 7 slack bytes
 * after a buffer belong to nobody and must stay untouched.
 * Every byte of the buffer is pre-filled with a pattern (0xCC), then checked afterwards:
 *  - header bytes other than ReturnCode/Length never change; ReturnCode/Length stay as
 *    sent when the request was not for us (short buffer, wrong signature);
 *  - errors: ReturnCode/Length as documented, every byte after the header untouched;
 *  - success: Length = min(Length, 0x120), the copied bytes equal a reference QUERY
 *    taken just before on the idle adapter, and every other byte (between the header and
 *    HeaderLength, after the copied bytes) untouched.
 * Also a NULL DataBuffer with a non-zero DataTransferLength. Expected statuses follow
 * docs/diagnostics.md §3 (the rules are written out again here, not taken from diag.c).
 * Sweep: buffer sizes 0..400 with the default header, and for each size 28..160 the
 * header lies of tests/diag/malformed.py (Length = room + 1, HeaderLength 27 and
 * buffer + 1, HeaderLength 40, unknown code, wrong signature, Length 15/16).
 *
 * usage: ioctl_raw qemu|contract DISK.img     prints one JSON line; exit 0 = all held
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#include "sim.h"
#include "contract_dev.h"
#include "aerovblk_diagfmt.h"

extern NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath);

#define PAGE 4096u
#define HDR 28u
#define INFO ((unsigned)sizeof(AEROVBLK_QUERY_INFO))
#define FILL 0xCC
#define ST_INVALID_PARAMETER 0xC000000Du
#define ST_NOT_SUPPORTED 0xC00000BBu
#define ST_BUFFER_TOO_SMALL 0xC0000023u

static unsigned failures, cases;
static char first_failure[512];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (failures++ < 30) fprintf(stderr, "ioctl_raw: FAIL: %s\n", msg);
    if (!first_failure[0]) snprintf(first_failure, sizeof(first_failure), "%s", msg);
}

struct req {
    unsigned bufsz;
    uint32_t hlen, length, code;
    const char *sig;     /* 8 bytes used, zero-padded */
    bool null_buffer;    /* DataBuffer NULL, DataTransferLength bufsz */
};

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

static struct sim_adapter *A;
static sim_dev *D;
static uint64_t two_pages;   /* guest-physical: buffer page, then the guard page */
static uint8_t reference[0x120];

/* One request; 0 when it could be sent. out receives the buffer as the driver left it. */
static int send(const struct req *q, const uint8_t *in, uint8_t *out, unsigned *srb_status)
{
    uint64_t gpa[1];
    uint32_t flen[1];
    struct sim_buf b;
    struct sim_request r;
    uint8_t nocdb[1] = { 0 };
    uint8_t *guard = sim_gpa(D, two_pages + PAGE);

    memset(&b, 0, sizeof(b));
    gpa[0] = (two_pages + PAGE - q->bufsz) & ~7ull;  /* 8-aligned, ends <= 7 bytes before the guard */
    unsigned slack = (unsigned)(two_pages + PAGE - gpa[0]) - q->bufsz;
    flen[0] = q->bufsz;
    b.len = q->bufsz;
    b.nfrag = 1;
    b.gpa = gpa;
    b.flen = flen;
    b.contig_gpa = gpa[0];
    b.contig = true;
    if (q->bufsz) memcpy(sim_gpa(D, gpa[0]), in, q->bufsz);
    memset(sim_gpa(D, gpa[0] + q->bufsz), 0xEE, slack);
    sim_request_init(&r, nocdb, 0, (q->null_buffer || !q->bufsz) ? NULL : &b, q->bufsz, true, true);
    r.function = SRB_FUNCTION_IO_CONTROL;
    r.srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
    r.queue_action = 0;
    r.timeout = 10;
    if (mprotect(guard, PAGE, PROT_NONE)) { perror("mprotect"); exit(1); }
    int rc = sim_port_execute(A, &r);
    mprotect(guard, PAGE, PROT_READ | PROT_WRITE);
    if (q->bufsz) memcpy(out, sim_gpa(D, gpa[0]), q->bufsz);
    for (unsigned i = 0; i < slack; i++)
        if (((uint8_t *)sim_gpa(D, gpa[0] + q->bufsz))[i] != 0xEE) {
            fail("bufsz %u: the driver wrote past DataTransferLength (byte %u)", q->bufsz, q->bufsz + i);
            break;
        }
    *srb_status = r.srb_status;
    if (rc || r.buffer_held) { fail("bufsz %u: the port gave up on the SRB", q->bufsz); return -1; }
    return 0;
}

static void run_case(const struct req *q)
{
    uint8_t in[PAGE], out[PAGE];
    unsigned st, i;
    cases++;
    memset(in, FILL, sizeof(in));
    /* the header as the caller builds it (cut to the buffer when shorter) */
    uint8_t hdr[HDR];
    memset(hdr, 0, sizeof(hdr));
    put32(hdr + 0, q->hlen);
    strncpy((char *)hdr + 4, q->sig, 8);              /* zero-padded, no terminator needed */
    put32(hdr + 12, 10);
    put32(hdr + 16, q->code);
    put32(hdr + 20, 0x5A5A5A5A);                      /* ReturnCode: a value the driver must overwrite or keep */
    put32(hdr + 24, q->length);
    memcpy(in, hdr, q->bufsz < HDR ? q->bufsz : HDR);
    if (send(q, in, out, &st)) return;

    /* expected outcome, docs/diagnostics.md §3 */
    bool ours = q->bufsz >= HDR && !q->null_buffer && !memcmp(hdr + 4, "AEROVBLK", 8);
    unsigned want_srb = SRB_STATUS_INVALID_REQUEST, copy = 0;
    uint32_t want_rc = 0x5A5A5A5A, want_len = q->length;
    if (ours) {
        want_len = 0;
        if (q->hlen < HDR || q->hlen > q->bufsz || q->length > q->bufsz - q->hlen) want_rc = ST_INVALID_PARAMETER;
        else if (q->code != AEROVBLK_IOCTL_QUERY) want_rc = ST_NOT_SUPPORTED;
        else if (q->length < 16) want_rc = ST_BUFFER_TOO_SMALL;
        else {
            want_rc = 0;
            want_srb = SRB_STATUS_SUCCESS;
            copy = want_len = q->length < INFO ? q->length : INFO;
        }
    }
    const char *what = q->null_buffer ? "NULL DataBuffer" : "";
    if (SRB_STATUS(st) != want_srb)
        fail("bufsz %u hlen %u len %u code 0x%x sig %.8s %s: SRB status 0x%02x, expected 0x%02x", q->bufsz, q->hlen,
             q->length, q->code, q->sig, what, st, want_srb);
    if (q->null_buffer || q->bufsz == 0) return;
    if (q->bufsz < HDR || !ours) {
        if (memcmp(in, out, q->bufsz))
            fail("bufsz %u sig %.8s: a request not for us was modified", q->bufsz, q->sig);
        return;
    }
    for (i = 0; i < HDR; i++) {
        if (i >= 20 && i < 28) continue;
        if (out[i] != in[i]) { fail("bufsz %u: header byte %u changed 0x%02x -> 0x%02x", q->bufsz, i, in[i], out[i]); break; }
    }
    if (le32(out + 20) != want_rc || le32(out + 24) != want_len)
        fail("bufsz %u hlen %u len %u code 0x%x: ReturnCode 0x%08x Length %u, expected 0x%08x %u", q->bufsz, q->hlen,
             q->length, q->code, le32(out + 20), le32(out + 24), want_rc, want_len);
    unsigned from = copy ? q->hlen : HDR;
    if (copy && memcmp(out + q->hlen, reference, copy))
        fail("bufsz %u hlen %u: the %u copied bytes differ from the reference QUERY", q->bufsz, q->hlen, copy);
    for (i = HDR; i < q->bufsz; i++) {
        if (i >= from && i < from + copy) continue;
        if (out[i] != FILL) {
            fail("bufsz %u hlen %u len %u: byte %u outside the reply changed to 0x%02x", q->bufsz, q->hlen, q->length, i, out[i]);
            break;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s qemu|contract DISK.img\n", argv[0]); return 2; }
    char err[512] = "";
    int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 16 << 20)) { perror(argv[2]); return 1; }
    close(fd);
    sim_dev_config cfg = { .disk_path = argv[2], .disk_size = 16 << 20, .ram_size = 256ull << 20 };
    D = !strcmp(argv[1], "qemu") ? sim_qemu_create(&cfg, err, sizeof(err)) : sim_contract_create(&cfg, err, sizeof(err));
    if (!D) { fprintf(stderr, "ioctl_raw: device: %s\n", err); return 1; }
    static struct sim_driver drv;
    static struct sim_disk disk;
    drv.driver_entry = (void *)DriverEntry;
    snprintf(drv.name, sizeof(drv.name), "aerovblk (host build)");
    struct sim_adapter_opts ao = { .msi = true, .seed = 1 };
    if (sim_driver_load(&drv, false, err, sizeof(err)) || !(A = sim_adapter_create(&drv, D, &ao, err, sizeof(err))) ||
        sim_adapter_start(A, err, sizeof(err)) || sim_disk_arrive(&disk, A, err, sizeof(err))) {
        fprintf(stderr, "ioctl_raw: start: %s\n", err);
        return 1;
    }
    two_pages = sim_mem_alloc_contig(&A->mem, 2);
    if (!two_pages || ((uintptr_t)sim_gpa(D, two_pages) & (PAGE - 1))) { fprintf(stderr, "ioctl_raw: no aligned guest pages\n"); return 1; }

    /* reference: a full QUERY on the idle adapter (nothing changes between requests) */
    {
        uint8_t in[HDR + 0x120], out[HDR + 0x120];
        struct req q = { .bufsz = HDR + INFO, .hlen = HDR, .length = INFO, .code = AEROVBLK_IOCTL_QUERY, .sig = "AEROVBLK" };
        unsigned st;
        memset(in, 0, sizeof(in));
        put32(in, HDR); memcpy(in + 4, "AEROVBLK", 8); put32(in + 16, AEROVBLK_IOCTL_QUERY); put32(in + 24, INFO);
        if (send(&q, in, out, &st) || SRB_STATUS(st) != SRB_STATUS_SUCCESS) { fprintf(stderr, "ioctl_raw: reference QUERY failed\n"); return 1; }
        memcpy(reference, out + HDR, INFO);
        if (le32(reference + 0x40) != 1 || le32(reference + 0x44) != INFO) fail("reference QUERY: LayoutVersion/StructSize wrong");
    }

    for (unsigned n = 0; n <= 400; n++) {
        struct req q = { .bufsz = n, .hlen = HDR, .length = n >= HDR ? n - HDR : 0, .code = AEROVBLK_IOCTL_QUERY, .sig = "AEROVBLK" };
        run_case(&q);
        if (n < HDR || n > 160) continue;
        struct req v = q;
        v.length = n - HDR + 1;               run_case(&v); v = q;
        v.hlen = 27;                          run_case(&v); v = q;
        v.hlen = n + 1;                       run_case(&v); v = q;
        v.hlen = 40; v.length = n >= 40 ? n - 40 : 0; run_case(&v); v = q;
        v.hlen = 0xFFFFFFFFu;                 run_case(&v); v = q;
        v.length = 0x100000000ull - HDR;      run_case(&v); v = q;
        v.code = 0x8000A002u;                 run_case(&v); v = q;
        v.sig = "AEROVBLX";                   run_case(&v); v = q;
        v.length = 15;                        run_case(&v); v = q;
        v.length = 16;                        run_case(&v); v = q;
        v.null_buffer = true;                 run_case(&v);
    }
    sim_mem_free(&A->mem, two_pages, 2);
    sim_adapter_destroy(A);
    sim_contract_stats cs;
    if (sim_contract_get_stats(D, &cs) == 0 && cs.driver_bugs)
        sim_finding("DEVICE", "the contract device saw %llu driver bug(s)", (unsigned long long)cs.driver_bugs);
    D->ops->destroy(D);
    unsigned findings = sim_findings_count();
    char first[1024];
    sim_json_escape(first, sizeof(first), first_failure);
    printf("{\"backend\":\"%s\",\"cases\":%u,\"failures\":%u,\"first_failure\":\"%s\",\"findings\":%u}\n", argv[1], cases,
           failures, first, findings);
    return failures || findings ? 1 : 0;
}
