/*
 * Issue 6 "Tests" (c): the AEROVBLK QUERY issued while a verified workload runs.
 *
 * The simulator's CLI cannot do this (its `script` runs steps one after another and
 * `after MS` only takes `control`/`qmp`), so this harness drives the simulator's core
 * (every simulator object but the CLI main*.o, the host-built driver, ASan+UBSan) directly: it brings the
 * disk up as `aerovblk-sim` does, runs sim_workload_run() on a thread (QD submitter
 * threads of its own) and meanwhile sends QUERY after QUERY through sim_port_execute()
 * from the main thread, exactly as the `ioctl` command builds it (tools/common/
 * aerovblk_diagfmt). Each reply taken mid-workload must be self-consistent (the driver
 * fills it under the queue lock that guards every counter it compares):
 *   SUCCESS, ReturnCode 0, Length 0x120, LayoutVersion 1;
 *   sum(Submitted) - sum(Completed) == CurrentInFlight == (AvailIdx - UsedIdx) mod 2^16;
 *   QueueSize - NumFree >= CurrentInFlight; CurrentInFlight <= MaxInFlight <= QD;
 *   DoorbellsWritten + DoorbellsSuppressed == sum(Submitted);
 *   CompletionsInInterrupts == sum(Completed); Completed[i] <= Submitted[i];
 *   BytesRead == BS * Submitted[read], BytesWritten == BS * Submitted[write];
 *   every counter non-decreasing from one reply to the next.
 * After the workload a last QUERY must match it exactly. Prints one JSON object; exit 0
 * when every check held and there was no verifier finding, else 1.
 *
 * usage: concurrent_ioctl qemu|contract DISK.img QD IOS [msi|intx]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdarg.h>

#include "sim.h"
#include "workload.h"
#include "contract_dev.h"
#include "aerovblk_diagfmt.h"

extern NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath);

#define BS 4096u

static unsigned violations;
static char first_violation[512];

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (violations++ < 20) fprintf(stderr, "concurrent_ioctl: VIOLATION: %s\n", msg);
    if (!first_violation[0]) snprintf(first_violation, sizeof(first_violation), "%s", msg);
}

struct wl_arg {
    struct sim_disk *disk;
    const char *image;
    struct sim_workload_opts o;
    struct sim_workload_result res;
    int rc;
    int done;
};

static void *wl_thread(void *p)
{
    struct wl_arg *w = p;
    w->rc = sim_workload_run(w->disk, w->image, &w->o, &w->res);
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* One QUERY as `aerovblk-sim ioctl` sends it. 0 with *info filled on a good reply. */
static int query(struct sim_adapter *a, sim_dev *dev, AEROVBLK_QUERY_INFO *info)
{
    size_t bufsz = AVDIAG_SRBIO_SIZE + sizeof(AEROVBLK_QUERY_INFO);
    uint8_t buf[AVDIAG_SRBIO_SIZE + sizeof(AEROVBLK_QUERY_INFO)];
    AVDIAG_SRBIO h;
    AVDIAG_REPLY rep;
    struct sim_request r;
    uint8_t nocdb[1] = { 0 };

    memset(buf, 0, sizeof(buf));
    AvDiagSrbIoInitQuery(&h, (uint32_t)sizeof(AEROVBLK_QUERY_INFO));
    AvDiagSrbIoStore(&h, buf, AVDIAG_SRBIO_SIZE);
    struct sim_buf *b = sim_buf_alloc(&a->mem, bufsz, false, 0);
    if (!b) { violation("no guest memory for the IOCTL buffer"); return -1; }
    sim_buf_write(dev, b, 0, buf, bufsz);
    memset(&r, 0, sizeof(r));
    sim_request_init(&r, nocdb, 0, b, (ULONG)bufsz, true, true);
    r.function = SRB_FUNCTION_IO_CONTROL;
    r.srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
    r.queue_action = 0;
    r.timeout = 10;
    int rc = sim_port_execute(a, &r);
    sim_buf_read(dev, b, 0, buf, bufsz);
    if (!r.buffer_held) sim_buf_free(&a->mem, b);
    if (rc) { violation("the port gave up on the IOCTL SRB"); return -1; }
    if (SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        violation("IOCTL SRB status 0x%02x, expected SUCCESS", r.srb_status);
        return -1;
    }
    AVDIAG_REPLY_STATUS rs = AvDiagParseReply(buf, bufsz, &rep);
    if (rs != AVDIAG_REPLY_OK || rep.Header.ReturnCode != 0 || rep.PayloadLength != sizeof(*info)) {
        violation("reply %s, ReturnCode 0x%08x, %zu payload bytes", AvDiagReplyStatusText(rs),
                  rep.Header.ReturnCode, (size_t)rep.PayloadLength);
        return -1;
    }
    memcpy(info, rep.Payload, sizeof(*info));   /* little-endian host: the ABI layout as is */
    return 0;
}

static uint64_t sum6(const unsigned long long *v)
{
    uint64_t t = 0;
    for (int i = 0; i < AEROVBLK_REQ_TYPES; i++) t += v[i];
    return t;
}

/* The consistency every reply must have, taken at any moment. */
static void check_reply(const AEROVBLK_QUERY_INFO *q, unsigned qd, unsigned n)
{
    uint64_t sub = sum6(q->Submitted), done = sum6(q->Completed);
    if (q->LayoutVersion != 1 || q->StructSize != sizeof(*q))
        violation("reply %u: LayoutVersion %u StructSize %u", n, q->LayoutVersion, q->StructSize);
    if (sub - done != q->CurrentInFlight)
        violation("reply %u: submitted %llu - completed %llu != CurrentInFlight %u", n,
                  (unsigned long long)sub, (unsigned long long)done, q->CurrentInFlight);
    if (((unsigned)(q->AvailIdx - q->UsedIdx) & 0xFFFFu) != q->CurrentInFlight)
        violation("reply %u: AvailIdx %u - UsedIdx %u != CurrentInFlight %u", n, q->AvailIdx, q->UsedIdx,
                  q->CurrentInFlight);
    if (q->NumFree > q->QueueSize || (unsigned)(q->QueueSize - q->NumFree) < q->CurrentInFlight)
        violation("reply %u: QueueSize %u - NumFree %u < CurrentInFlight %u", n, q->QueueSize, q->NumFree,
                  q->CurrentInFlight);
    if (q->CurrentInFlight > q->MaxInFlight || q->MaxInFlight > qd)
        violation("reply %u: CurrentInFlight %u, MaxInFlight %u, QD %u", n, q->CurrentInFlight, q->MaxInFlight, qd);
    if (q->DoorbellsWritten + q->DoorbellsSuppressed != sub)
        violation("reply %u: doorbells written %llu + suppressed %llu != submitted %llu", n,
                  q->DoorbellsWritten, q->DoorbellsSuppressed, (unsigned long long)sub);
    if (q->CompletionsInInterrupts != done)
        violation("reply %u: CompletionsInInterrupts %llu != completed %llu", n, q->CompletionsInInterrupts,
                  (unsigned long long)done);
    for (int i = 0; i < AEROVBLK_REQ_TYPES; i++)
        if (q->Completed[i] > q->Submitted[i])
            violation("reply %u: Completed[%d] %llu > Submitted[%d] %llu", n, i, q->Completed[i], i, q->Submitted[i]);
    /* Bytes count when a request completes OK (every request of this workload does). */
    if (q->BytesRead != (unsigned long long)BS * q->Completed[AEROVBLK_REQ_READ] ||
        q->BytesWritten != (unsigned long long)BS * q->Completed[AEROVBLK_REQ_WRITE])
        violation("reply %u: BytesRead %llu / BytesWritten %llu != %u x completed reads %llu / writes %llu", n,
                  q->BytesRead, q->BytesWritten, BS, q->Completed[AEROVBLK_REQ_READ], q->Completed[AEROVBLK_REQ_WRITE]);
}

/* Counters never go back between two replies. */
static void check_monotonic(const AEROVBLK_QUERY_INFO *p, const AEROVBLK_QUERY_INFO *q, unsigned n)
{
#define MONO(f) do { if (q->f < p->f) violation("reply %u: " #f " went back from %llu to %llu", n, \
                         (unsigned long long)p->f, (unsigned long long)q->f); } while (0)
    for (int i = 0; i < AEROVBLK_REQ_TYPES; i++) { MONO(Submitted[i]); MONO(Completed[i]); }
    MONO(BytesRead); MONO(BytesWritten); MONO(DoorbellsWritten); MONO(DoorbellsSuppressed);
    MONO(InterruptsQueue); MONO(InterruptsConfig); MONO(InterruptsSpurious); MONO(CompletionsInInterrupts);
    MONO(MaxCompletionsPerInterrupt); MONO(MaxInFlight); MONO(BusyCompletions);
#undef MONO
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s qemu|contract DISK.img QD IOS [msi|intx]\n", argv[0]);
        return 2;
    }
    const char *backend = argv[1], *image = argv[2];
    unsigned qd = (unsigned)atoi(argv[3]);
    uint64_t ios = strtoull(argv[4], NULL, 0);
    bool msi = !(argc > 5 && !strcmp(argv[5], "intx"));
    char err[512] = "";
    sim_verbose = getenv("AVDIAG_VERBOSE") ? 2 : 1;

    int fd = open(image, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 64 << 20)) { perror(image); return 1; }
    close(fd);
    sim_dev_config cfg = { .disk_path = image, .disk_size = 64 << 20, .ram_size = 256ull << 20 };
    sim_dev *dev = !strcmp(backend, "qemu") ? sim_qemu_create(&cfg, err, sizeof(err))
                                            : sim_contract_create(&cfg, err, sizeof(err));
    if (!dev) { fprintf(stderr, "concurrent_ioctl: device: %s\n", err); return 1; }
    static struct sim_driver drv;
    drv.driver_entry = (void *)DriverEntry;
    snprintf(drv.name, sizeof(drv.name), "aerovblk (host build)");
    struct sim_adapter_opts ao = { .msi = msi, .seed = 1 };
    static struct sim_disk disk;
    struct sim_adapter *a = NULL;
    if (sim_driver_load(&drv, false, err, sizeof(err)) || !(a = sim_adapter_create(&drv, dev, &ao, err, sizeof(err))) ||
        sim_adapter_start(a, err, sizeof(err)) || sim_disk_arrive(&disk, a, err, sizeof(err))) {
        char *lj = sim_log_json(), *fj = sim_findings_json();
        fprintf(stderr, "concurrent_ioctl: start: %s\n  log: %s\n  findings: %s\n", err, lj, fj);
        free(lj);
        free(fj);
        if (a) sim_adapter_destroy(a);
        dev->ops->destroy(dev);
        return 1;
    }

    AEROVBLK_QUERY_INFO before, prev, cur, last;
    unsigned replies = 0, in_flight_seen = 0, max_current = 0;
    struct wl_arg w = { .disk = &disk, .image = image, .rc = -1 };
    if (query(a, dev, &before)) goto out;
    check_reply(&before, qd, 0);
    prev = before;

    w.o.mode = WL_RANDRW;
    w.o.bs = BS;
    w.o.qd = qd;
    w.o.ios = ios;
    w.o.seed = 5;
    w.o.span = 16 << 20;
    w.o.write_pct = 50;
    w.o.fua_pct = -1;   /* no FUA writes: each would add a flush */
    w.o.no_readback = true;   /* the final reply is compared with the workload's own counts */
    pthread_t th;
    pthread_create(&th, NULL, wl_thread, &w);
    while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) {
        if (query(a, dev, &cur)) break;
        replies++;
        check_reply(&cur, qd, replies);
        check_monotonic(&prev, &cur, replies);
        if (cur.CurrentInFlight) in_flight_seen++;
        if (cur.CurrentInFlight > max_current) max_current = cur.CurrentInFlight;
        prev = cur;
        sim_sleep_us(500);
    }
    pthread_join(th, NULL);

    /* quiet again: the last reply matches the workload exactly */
    if (query(a, dev, &last) == 0) {
        check_reply(&last, qd, replies + 1);
        check_monotonic(&prev, &last, replies + 1);
        /* SYNCHRONIZE CACHE, and SRB_FUNCTION_FLUSH when the driver declared CachesData */
        uint64_t flushes = w.res.writes ? (a->cfg->CachesData ? 2 : 1) : 0;
        if (last.Submitted[AEROVBLK_REQ_READ] - before.Submitted[AEROVBLK_REQ_READ] != w.res.reads ||
            last.Submitted[AEROVBLK_REQ_WRITE] - before.Submitted[AEROVBLK_REQ_WRITE] != w.res.writes ||
            last.Submitted[AEROVBLK_REQ_FLUSH] - before.Submitted[AEROVBLK_REQ_FLUSH] != flushes ||
            last.BytesRead - before.BytesRead != w.res.bytes_read ||
            last.BytesWritten - before.BytesWritten != w.res.bytes_written || last.CurrentInFlight != 0)
            violation("final reply does not match the workload (%llu reads, %llu writes)",
                      (unsigned long long)w.res.reads, (unsigned long long)w.res.writes);
    }
out:;
    unsigned findings_before_teardown = sim_findings_count();
    sim_adapter_destroy(a);
    sim_contract_stats cs;
    if (sim_contract_get_stats(dev, &cs) == 0 && cs.driver_bugs)
        sim_finding("DEVICE", "the contract device saw %llu driver bug(s)", (unsigned long long)cs.driver_bugs);
    dev->ops->destroy(dev);
    unsigned findings = sim_findings_count();
    char first[1024];
    sim_json_escape(first, sizeof(first), first_violation);
    printf("{\"backend\":\"%s\",\"interrupts\":\"%s\",\"qd\":%u,\"ios\":%llu,\"reads\":%llu,\"writes\":%llu,"
           "\"workload_errors\":%llu,\"mismatches\":%llu,\"workload_rc\":%d,\"replies\":%u,"
           "\"replies_with_requests_in_flight\":%u,\"max_current_in_flight\":%u,\"violations\":%u,"
           "\"first_violation\":\"%s\",\"findings\":%u,\"findings_before_teardown\":%u}\n",
           backend, msi ? "msi" : "intx", qd, (unsigned long long)w.res.ios, (unsigned long long)w.res.reads,
           (unsigned long long)w.res.writes, (unsigned long long)w.res.errors,
           (unsigned long long)(w.res.mismatches + w.res.image_mismatches), w.rc, replies, in_flight_seen,
           max_current, violations, first, findings, findings_before_teardown);
    return violations || findings || w.rc || w.res.errors || w.res.mismatches + w.res.image_mismatches ? 1 : 0;
}
