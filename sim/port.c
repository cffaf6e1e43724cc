/*
 * The port driver half of the simulated StorPort: adapter start (PnP start as Windows 7
 * does it, facts §1-§2, §6), the SRB path per the miniport's SynchronizationModel,
 * the interrupt thread (MSI-X words in guest RAM, or the INTx line), DPC threads, the
 * RequestTimerCall timer, SRB ownership tracking, SRB_STATUS_BUSY requeue, TimeOutValue
 * timeouts with HwResetBus, and teardown checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim.h"

/* Sense buffer fill of an SRB with SRB_FLAGS_DISABLE_AUTOSENSE (must stay so). */
#define SIM_SENSE_UNTOUCHED 0xA5
#include "contract_dev.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PG 4096ull
#define POISON_BYTE 0xDB
#define GARBAGE_BYTE 0xA5
#define CANARY_BYTE 0x5C
#define QUARANTINE 512
#if UINTPTR_MAX > 0xFFFFFFFFu
#define DECOY_SLOTS 1024
#else
#define DECOY_SLOTS 48          /* 32-bit simulator: keep the address space */
#endif
#define DECOY_SLOT_BYTES ((size_t)2 << 20)

struct sim_adapter *sim_adapters;
pthread_mutex_t sim_adapters_lock = PTHREAD_MUTEX_INITIALIZER;

static uint8_t *decoy_base;     /* PROT_NONE: DataBuffer of READ/WRITE SRBs */

struct sim_tracked {
    PSCSI_REQUEST_BLOCK srb;
    uint8_t *ext; uint64_t ext_gpa, ext_pages; ULONG ext_len;
    PSTOR_SCATTER_GATHER_LIST sg;
    uint8_t *sense; uint64_t sense_gpa;   /* in guest RAM: StorPortGetPhysicalAddress works on it */
    struct sim_request *req;
    bool mapped, done;
    uint64_t start_ns;
    uint64_t reset_gen;
    const char *completed_by;
    struct sim_request *orphan;   /* own copy of req after the port gave up */
    bool owns_buf;                /* orphan->buf belongs to the tracker (crash writes) */
    bool lost_counted;            /* already counted in sim_srb_acct.lost (port gave up) */
    /* canaries: [DataTransferLength, page end) of a mapped buffer, [SrbExtensionSize,
     * page end) of the SRB extension; checked at completion */
    uint8_t *buf_canary, *buf_canary_saved; size_t buf_canary_len;
    void *sg_copy; size_t sg_bytes;   /* the S/G list as handed out (compared at completion) */
    size_t ext_canary_len;
    struct sim_tracked *next;
};

/* Every SRB of the process accounted, across instances (docs/reliability.md):
 * issued == completed + lost + abandoned once every instance is gone. */
struct sim_srb_acct sim_srb_acct;
/* test-only (--test-drop-completion N): the Nth READ/WRITE completion is swallowed */
uint64_t sim_test_drop_completion;
static uint64_t rw_completions_seen;

/* ------------------------------------------------------------------------------- */
struct sim_adapter *sim_adapter_from_ext(void *ext)
{
    struct sim_adapter *a;
    if (sim_tls.adapter && sim_tls.adapter->devext == ext) return sim_tls.adapter;
    pthread_mutex_lock(&sim_adapters_lock);
    for (a = sim_adapters; a; a = a->next)
        if (a->devext == ext) break;
    pthread_mutex_unlock(&sim_adapters_lock);
    return a;
}

static void set_ctx(struct sim_adapter *a, int irql) { sim_tls.adapter = a; sim_tls.irql = irql; }

/* The interrupt lock: one for SynchronizeAll, every message lock for PerMessage. */
void sim_acquire_interrupt_lock(struct sim_adapter *a, const char *who)
{
    if (!sim_lock_note_acquire(who, SIM_LOCK_INTERRUPT, 0)) return;
    if (a->use_msi && a->ism == InterruptSynchronizePerMessage)
        for (unsigned i = 0; i < a->pci.nmsg; i++) pthread_mutex_lock(&a->msi_lock[i]);
    else
        pthread_mutex_lock(&a->interrupt_lock);
}

void sim_release_interrupt_lock(struct sim_adapter *a, const char *who)
{
    if (!sim_lock_note_release(who, SIM_LOCK_INTERRUPT, 0)) return;
    if (a->use_msi && a->ism == InterruptSynchronizePerMessage)
        for (unsigned i = a->pci.nmsg; i-- > 0;) pthread_mutex_unlock(&a->msi_lock[i]);
    else
        pthread_mutex_unlock(&a->interrupt_lock);
}

void sim_acquire_startio_lock(struct sim_adapter *a, const char *who)
{
    if (sim_lock_note_acquire(who, SIM_LOCK_STARTIO, 0)) pthread_mutex_lock(&a->startio_lock);
}

void sim_release_startio_lock(struct sim_adapter *a, const char *who)
{
    if (sim_lock_note_release(who, SIM_LOCK_STARTIO, 0)) pthread_mutex_unlock(&a->startio_lock);
}

static void check_locks_after(const char *cb, unsigned expect)
{
    if (sim_tls.locks != expect || sim_tls.msi_locks) {
        sim_finding("LOCK", "%s returned still holding StorPort locks (mask 0x%x, MSI 0x%llx)", cb,
                    sim_tls.locks & ~expect, (unsigned long long)sim_tls.msi_locks);
    }
}

/* ------------------------------------------------------------------------------- */
/* Interrupt thread: MSI-X messages are DMA writes of the marker into guest RAM; INTx is
 * the line level. Delivery runs under the interrupt lock at DIRQL, as on Windows. */
static void deliver_msi(struct sim_adapter *a, unsigned msg)
{
    __atomic_fetch_add(&a->ctr.interrupts, 1, __ATOMIC_RELAXED);
    if (msg < 64) __atomic_fetch_add(&a->ctr.msi_interrupts[msg], 1, __ATOMIC_RELAXED);
    set_ctx(a, SIM_IRQL_DIRQL);
    if (a->ism == InterruptSynchronizePerMessage) {
        sim_lock_note_acquire("interrupt dispatch", 0, 1ull << msg);
        pthread_mutex_lock(&a->msi_lock[msg]);
        sim_call_msi(a->msi_routine, a->devext, msg);
        pthread_mutex_unlock(&a->msi_lock[msg]);
        sim_lock_note_release("interrupt dispatch", 0, 1ull << msg);
        check_locks_after("HwMSInterruptRoutine", 0);
    } else {
        sim_acquire_interrupt_lock(a, "interrupt dispatch");
        sim_call_msi(a->msi_routine, a->devext, msg);
        check_locks_after("HwMSInterruptRoutine", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "interrupt dispatch");
    }
    set_ctx(a, SIM_IRQL_PASSIVE);
}

static bool deliver_intx(struct sim_adapter *a)
{
    BOOLEAN claimed;
    __atomic_fetch_add(&a->ctr.interrupts, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->ctr.intx_interrupts, 1, __ATOMIC_RELAXED);
    set_ctx(a, SIM_IRQL_DIRQL);
    sim_acquire_interrupt_lock(a, "interrupt dispatch");
    claimed = sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    check_locks_after("HwInterrupt", SIM_LOCK_INTERRUPT);
    sim_release_interrupt_lock(a, "interrupt dispatch");
    set_ctx(a, SIM_IRQL_PASSIVE);
    if (!claimed) __atomic_fetch_add(&a->ctr.intx_unclaimed, 1, __ATOMIC_RELAXED);
    return claimed;
}

unsigned sim_foreign_intx_hz;

/* HwInterrupt called for an interrupt that may not be ours (shared INTx line): claiming
 * it is right only if the driver found its own device's ISR bit set meanwhile. */
static void deliver_checked_intx(struct sim_adapter *a, const char *what)
{
    BOOLEAN claimed;
    set_ctx(a, SIM_IRQL_DIRQL);
    sim_acquire_interrupt_lock(a, "interrupt dispatch");
    sim_tls.isr_read_nonzero = false;
    claimed = sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    check_locks_after("HwInterrupt", SIM_LOCK_INTERRUPT);
    if (claimed && !sim_tls.isr_read_nonzero)
        sim_finding("INTERRUPT", "HwInterrupt claimed %s (its ISR byte was not set)", what);
    sim_release_interrupt_lock(a, "interrupt dispatch");
    set_ctx(a, SIM_IRQL_PASSIVE);
}

/* Another device's interrupt on our INTx line: HwInterrupt must decline it (its ISR byte
 * reads 0) and, while stopped or removed, must not even look (D3). */
static void deliver_foreign_intx(struct sim_adapter *a)
{
    __atomic_fetch_add(&a->ctr.foreign_intx, 1, __ATOMIC_RELAXED);
    deliver_checked_intx(a, "another device's interrupt on the shared INTx line: the other device's "
                            "handler would never run");
}

static void *irq_thread(void *arg)
{
    struct sim_adapter *a = arg;
    unsigned idle = 0, unclaimed_run = 0;
    bool storm_reported = false;
    uint64_t next_foreign = 0;
    sim_tls.adapter = a;
    while (!a->stopping) {
        bool did = false;
        if (sim_foreign_intx_hz && !a->use_msi && a->drv->hwid.HwInterrupt) {
            uint64_t now = sim_now_ns();
            if (now >= next_foreign) {
                next_foreign = now + 1000000000ull / sim_foreign_intx_hz;
                deliver_foreign_intx(a);
            }
        }
        if (a->use_msi) {
            for (unsigned i = 0; i < a->pci.nmsg; i++) {
                uint32_t *w = (uint32_t *)sim_gpa(a->dev, a->pci.msi_target_gpa + SIM_MSI_STRIDE * i);
                uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
                if (!v) continue;
                __atomic_store_n(w, 0, __ATOMIC_RELEASE);
                if (v != SIM_MSI_DATA(i))
                    sim_log("interrupt: message %u wrote 0x%08x, expected 0x%08x", i, v, SIM_MSI_DATA(i));
                deliver_msi(a, i);
                did = true;
            }
        } else if (a->drv->hwid.HwInterrupt && a->dev->ops->intx_level(a->dev)) {
            if (deliver_intx(a)) unclaimed_run = 0;
            else if (++unclaimed_run > 20000 && !storm_reported) {
                storm_reported = true;
                sim_finding("INTERRUPT", "INTx stays asserted but HwInterrupt keeps returning FALSE (interrupt storm)");
            }
            if (unclaimed_run > 100) sim_sleep_us(100);
            did = true;
        }
        if (did) { idle = 0; continue; }
        if (++idle < 200) { __builtin_ia32_pause(); continue; }
        sim_sleep_us(idle < 2000 ? 20 : 100);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------- */
/* DPCs: two DPC "CPUs"; each STOR_DPC queued at most once and serialized with itself
 * ([MS-ISSUEDPC]), or, with --dpc-reentrant, not (ReactOS: KeInitializeDpc on the
 * miniport's routine, no wrapper lock; facts §11.6). */
bool sim_dpc_reentrant;
void sim_port_issue_dpc(struct sim_adapter *a, struct sim_dpc *d)
{
    d->next_q = NULL;
    if (a->dpcq_tail) a->dpcq_tail->next_q = d; else a->dpcq_head = d;
    a->dpcq_tail = d;
    pthread_cond_signal(&a->dpc_cond);
}

static void *dpc_thread(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    pthread_mutex_lock(&a->dpc_mutex);
    while (!a->stopping) {
        struct sim_dpc *d = a->dpcq_head;
        if (!d) { pthread_cond_wait(&a->dpc_cond, &a->dpc_mutex); continue; }
        a->dpcq_head = d->next_q;
        if (!a->dpcq_head) a->dpcq_tail = NULL;
        d->queued = false;
        void *a1 = d->a1, *a2 = d->a2;
        bool overlap = __atomic_load_n(&a->in_adapter_control, __ATOMIC_ACQUIRE) != 0;
        if (overlap) a->ctr.ctl_dpcs++;
        /* --dpc-reentrant: as if its interrupt came again at once, so the other DPC
         * thread runs the same DPC while this one does (one run in two). */
        if (sim_dpc_reentrant && !d->queued && (__atomic_load_n(&a->ctr.dpcs, __ATOMIC_RELAXED) & 1)) {
            d->queued = true;
            sim_port_issue_dpc(a, d);
        }
        pthread_mutex_unlock(&a->dpc_mutex);

        if (!sim_dpc_reentrant) pthread_mutex_lock(&d->run);
        pthread_mutex_lock(&a->dpc_mutex);
        if (d->running++) a->ctr.dpc_concurrent++;   /* another thread is inside it now */
        pthread_mutex_unlock(&a->dpc_mutex);
        __atomic_fetch_add(&a->ctr.dpcs, 1, __ATOMIC_RELAXED);
        set_ctx(a, SIM_IRQL_DISPATCH);
        sim_tls.ctl_overlap = overlap;
        sim_call_dpc(d->routine, d->obj, a->devext, a1, a2);
        sim_tls.ctl_overlap = false;
        check_locks_after("HwDpcRoutine", 0);
        sim_tls.locks = 0; sim_tls.msi_locks = 0;
        set_ctx(a, SIM_IRQL_PASSIVE);
        pthread_mutex_lock(&a->dpc_mutex);
        d->running--;
        if (!sim_dpc_reentrant) pthread_mutex_unlock(&d->run);
    }
    pthread_mutex_unlock(&a->dpc_mutex);
    return NULL;
}

/* ------------------------------------------------------------------------------- */
/* RequestTimerCall: one timer per adapter; HwTimer runs under the StartIo lock at
 * DISPATCH (half duplex: also the interrupt lock), facts §6. */
void sim_port_set_timer(struct sim_adapter *a, void *routine, ULONG us)
{
    pthread_mutex_lock(&a->timer_mutex);
    a->timer_routine = routine;
    a->timer_due_ns = (us && routine) ? sim_now_ns() + (uint64_t)us * 1000ull : 0;
    a->timer_gen++;
    pthread_cond_signal(&a->timer_cond);
    pthread_mutex_unlock(&a->timer_mutex);
}

static void *timer_thread(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    pthread_mutex_lock(&a->timer_mutex);
    while (!a->stopping) {
        uint64_t now = sim_now_ns();
        if (!a->timer_due_ns || a->timer_due_ns > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = a->timer_due_ns ? a->timer_due_ns - now : 50000000ull;
            if (wait > 50000000ull) wait = 50000000ull;
            uint64_t ns = (uint64_t)ts.tv_nsec + wait;
            ts.tv_sec += (time_t)(ns / 1000000000ull);
            ts.tv_nsec = (long)(ns % 1000000000ull);
            pthread_cond_timedwait(&a->timer_cond, &a->timer_mutex, &ts);
            continue;
        }
        void *routine = a->timer_routine;
        a->timer_due_ns = 0;
        pthread_mutex_unlock(&a->timer_mutex);
        __atomic_fetch_add(&a->ctr.timers, 1, __ATOMIC_RELAXED);
        set_ctx(a, SIM_IRQL_DISPATCH);
        sim_acquire_startio_lock(a, "timer dispatch");
        bool half = a->sync_model == StorSynchronizeHalfDuplex;
        if (half) { sim_acquire_interrupt_lock(a, "timer dispatch"); sim_tls.irql = SIM_IRQL_DIRQL; }
        sim_call_timer(routine, a->devext);
        check_locks_after("HwTimer", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
        if (half) sim_release_interrupt_lock(a, "timer dispatch");
        sim_release_startio_lock(a, "timer dispatch");
        set_ctx(a, SIM_IRQL_PASSIVE);
        pthread_mutex_lock(&a->timer_mutex);
    }
    pthread_mutex_unlock(&a->timer_mutex);
    return NULL;
}

/* ------------------------------------------------------------------------------- */
/* SRB tracking */
static bool is_read_write(const UCHAR *cdb)
{
    switch (cdb[0]) {
    case 0x08: case 0x0A: case 0x28: case 0x2A: case 0xA8: case 0xAA: case 0x88: case 0x8A:
        return true;
    default:
        return false;
    }
}

static struct sim_tracked *find_outstanding(struct sim_adapter *a, const void *srb)
{
    for (struct sim_tracked *t = a->outstanding; t; t = t->next)
        if (t->srb == srb) return t;
    return NULL;
}

static struct sim_tracked *find_quarantined(struct sim_adapter *a, const void *srb)
{
    for (unsigned i = 0; i < a->quar_n; i++)
        if (a->quarantine[i] && a->quarantine[i]->srb == srb) return a->quarantine[i];
    return NULL;
}

static void sense_free(struct sim_adapter *a, struct sim_tracked *t)
{
    if (t->sense_gpa) sim_mem_free(&a->mem, t->sense_gpa & ~(PG - 1), 1);
    t->sense = NULL;
    t->sense_gpa = 0;
}

static void tracked_free(struct sim_adapter *a, struct sim_tracked *t)
{
    UNPOISON(t->srb, sizeof(*t->srb));
    const uint8_t *s = (const uint8_t *)t->srb;
    for (size_t i = 0; i < sizeof(*t->srb); i++)
        if (s[i] != POISON_BYTE) {
            sim_finding("SRB", "SRB %p (CDB %02x) was modified after completion (byte 0x%zx = 0x%02x)",
                        (void *)t->srb, t->srb->Cdb[0], i, s[i]);
            break;
        }
    if (t->ext) {
        UNPOISON(t->ext, t->ext_len);
        for (size_t i = 0; i < t->ext_len; i++)
            if (t->ext[i] != POISON_BYTE) {
                sim_finding("SRB", "SRB extension of SRB %p was modified after completion (offset 0x%zx)",
                            (void *)t->srb, i);
                break;
            }
        sim_mem_free(&a->mem, t->ext_gpa, t->ext_pages);
    }
    free(t->srb);
    if (t->sg) UNPOISON(t->sg, t->sg_bytes);
    free(t->sg);
    free(t->sg_copy);
    free(t->buf_canary_saved);
    sense_free(a, t);
    if (t->owns_buf && t->orphan) sim_buf_free(&a->mem, t->orphan->buf);
    free(t->orphan);
    free(t);
}

static void quarantine_add(struct sim_adapter *a, struct sim_tracked *t)
{
    struct sim_tracked *old = a->quarantine[a->quar_pos];
    a->quarantine[a->quar_pos] = t;
    a->quar_pos = (a->quar_pos + 1) % QUARANTINE;
    if (a->quar_n < QUARANTINE) a->quar_n++;
    if (old) tracked_free(a, old);
}

static struct sim_tracked *tracked_new(struct sim_adapter *a, struct sim_request *r)
{
    struct sim_tracked *t = calloc(1, sizeof(*t));
    PSCSI_REQUEST_BLOCK srb = calloc(1, sizeof(*srb));
    if (!t || !srb) { free(t); free(srb); return NULL; }
    t->srb = srb;
    t->req = r;
    srb->Length = sizeof(SCSI_REQUEST_BLOCK);
    srb->Function = r->function;
    srb->SrbStatus = SRB_STATUS_PENDING;
    srb->PathId = r->path; srb->TargetId = r->target; srb->Lun = r->lun;
    srb->QueueAction = r->queue_action;
    srb->CdbLength = r->cdb_len;
    memcpy(srb->Cdb, r->cdb, sizeof(srb->Cdb));
    srb->SrbFlags = r->srb_flags;
    srb->DataTransferLength = r->transfer_len;
    srb->TimeOutValue = r->timeout;
    srb->OriginalRequest = t;            /* stands in for the IRP */
    if (r->sense_len) {
        /* classpnp's sense buffer is pool: somewhere 8-byte aligned inside a page */
        t->sense_gpa = sim_mem_alloc_contig(&a->mem, 1);
        if (!t->sense_gpa) { free(srb); free(t); return NULL; }
        t->sense_gpa += (sim_mem_rand(&a->mem) % ((PG - r->sense_len) / 8 + 1)) * 8;
        t->sense = sim_gpa(a->dev, t->sense_gpa);
        /* autosense disabled: a pattern the miniport must leave alone (check_srb_result) */
        memset(t->sense, (r->srb_flags & SRB_FLAGS_DISABLE_AUTOSENSE) ? SIM_SENSE_UNTOUCHED : 0, r->sense_len);
        srb->SenseInfoBuffer = t->sense;
        srb->SenseInfoBufferLength = r->sense_len;
    }
    if (a->srbext_size) {
        t->ext_len = a->srbext_size;
        t->ext_pages = (a->srbext_size + PG - 1) / PG;
        t->ext_gpa = sim_mem_alloc_contig(&a->mem, t->ext_pages);
        if (!t->ext_gpa) { sense_free(a, t); free(srb); free(t); return NULL; }
        t->ext = sim_gpa(a->dev, t->ext_gpa);
        memset(t->ext, GARBAGE_BYTE, t->ext_len);   /* StorPort does not promise zeroes */
        t->ext_canary_len = (size_t)(t->ext_pages * PG - t->ext_len);
        memset(t->ext + t->ext_len, CANARY_BYTE, t->ext_canary_len);
        srb->SrbExtension = t->ext;
    }
    if (r->buf && r->buf->len) {
        struct sim_buf *b = r->buf;
        t->sg = calloc(1, sizeof(STOR_SCATTER_GATHER_LIST) + sizeof(STOR_SCATTER_GATHER_ELEMENT) * b->nfrag);
        unsigned n = 0;
        for (unsigned i = 0; i < b->nfrag; i++) {
            if (n && t->sg->List[n - 1].PhysicalAddress.QuadPart + t->sg->List[n - 1].Length == (LONGLONG)b->gpa[i]) {
                t->sg->List[n - 1].Length += b->flen[i];   /* contiguous: one element, as the HAL builds it */
                continue;
            }
            t->sg->List[n].PhysicalAddress.QuadPart = (LONGLONG)b->gpa[i];
            t->sg->List[n].Length = b->flen[i];
            n++;
        }
        t->sg->NumberOfElements = n;
        t->sg_bytes = sizeof(STOR_SCATTER_GATHER_LIST) + sizeof(STOR_SCATTER_GATHER_ELEMENT) * b->nfrag;
        t->sg_copy = malloc(t->sg_bytes);
        if (t->sg_copy) memcpy(t->sg_copy, t->sg, t->sg_bytes);
        bool rw = r->function == SRB_FUNCTION_EXECUTE_SCSI && is_read_write(r->cdb);
        bool map = r->function == SRB_FUNCTION_IO_CONTROL || r->function == SRB_FUNCTION_WMI ||
                   (!rw && a->cfg->MapBuffers != STOR_MAP_NO_BUFFERS);
        if (map && b->contig) {
            t->mapped = true;
            srb->DataBuffer = sim_gpa(a->dev, b->gpa[0]);
            /* canary from DataTransferLength to the end of the buffer's last page; the
             * bytes there are the caller's, so they are saved and put back at completion */
            uint64_t used = r->transfer_len < b->len ? r->transfer_len : b->len;
            uint64_t end = (b->gpa[0] + b->len + PG - 1) & ~(PG - 1);
            t->buf_canary_len = (size_t)(end - (b->gpa[0] + used));
            t->buf_canary_saved = t->buf_canary_len ? malloc(t->buf_canary_len) : NULL;
            if (t->buf_canary_saved) {
                t->buf_canary = sim_gpa(a->dev, b->gpa[0] + used);
                memcpy(t->buf_canary_saved, t->buf_canary, t->buf_canary_len);
                memset(t->buf_canary, CANARY_BYTE, t->buf_canary_len);
            } else {
                t->buf_canary_len = 0;
            }
        } else {
            /* Never to be dereferenced (facts §10 item 13): an inaccessible address. */
            uint64_t slot = __atomic_fetch_add(&a->decoy_next, 1, __ATOMIC_RELAXED) % DECOY_SLOTS;
            srb->DataBuffer = decoy_base + slot * DECOY_SLOT_BYTES + (b->gpa[0] & (PG - 1));
        }
    }
    t->start_ns = sim_now_ns();
    return t;
}

PSTOR_SCATTER_GATHER_LIST sim_port_sglist(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb)
{
    PSTOR_SCATTER_GATHER_LIST sg = NULL;
    pthread_mutex_lock(&a->srb_mutex);
    struct sim_tracked *t = find_outstanding(a, srb);
    if (!t)
        sim_finding("SRB", "StorPortGetScatterGatherList for SRB %p the miniport does not own", (void *)srb);
    else
        sg = t->sg;
    pthread_mutex_unlock(&a->srb_mutex);
    return sg;
}

/* StorPortGetPhysicalAddress ([MS-GPA]): Srb NULL for the uncached extension and the
 * SRB extensions of outstanding SRBs; the SRB for its DataBuffer and SenseInfoBuffer.
 * Pool-like memory (SRB extension, sense) is promised contiguous only to its page end. */
static ULONG to_page_end(uint64_t gpa) { return (ULONG)(PG - (gpa & (PG - 1))); }

bool sim_port_phys_of(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb, const void *va,
                      uint64_t *gpa, ULONG *len)
{
    const uint8_t *p = va;
    bool ok = false;
    if (a->unc_va && p >= a->unc_va && p < a->unc_va + a->unc_len) {
        *gpa = a->unc_gpa + (uint64_t)(p - a->unc_va);
        *len = (ULONG)(a->unc_len - (uint64_t)(p - a->unc_va));
        return true;
    }
    if (!srb && sim_contig_phys(a, va, gpa, len)) return true;
    pthread_mutex_lock(&a->srb_mutex);
    struct sim_tracked *t = srb ? find_outstanding(a, srb) : NULL;
    if (!srb) {
        for (t = a->outstanding; t; t = t->next)
            if (t->ext && p >= t->ext && p < t->ext + t->ext_len) break;
    } else if (!t) {
        sim_finding("SRB", "StorPortGetPhysicalAddress with SRB %p the miniport does not own", (void *)srb);
    }
    if (!t) {
        /* not found */
    } else if (t->ext && p >= t->ext && p < t->ext + t->ext_len) {
        /* With an SRB the documentation wants NULL here; Windows resolves it anyway. */
        *gpa = t->ext_gpa + (uint64_t)(p - t->ext);
        *len = to_page_end(*gpa);
        ok = true;
    } else if (t->sense && p >= t->sense && p < t->sense + t->req->sense_len) {
        *gpa = t->sense_gpa + (uint64_t)(p - t->sense);
        *len = to_page_end(*gpa);
        ok = true;
    } else if (t->sg && srb->DataBuffer && p >= (uint8_t *)srb->DataBuffer &&
               p < (uint8_t *)srb->DataBuffer + t->req->buf->len) {
        uint64_t off = (uint64_t)(p - (uint8_t *)srb->DataBuffer);
        for (unsigned i = 0; i < t->sg->NumberOfElements; i++) {
            if (off < t->sg->List[i].Length) {
                *gpa = (uint64_t)t->sg->List[i].PhysicalAddress.QuadPart + off;
                *len = (ULONG)(t->sg->List[i].Length - off);
                ok = true;
                break;
            }
            off -= t->sg->List[i].Length;
        }
    }
    pthread_mutex_unlock(&a->srb_mutex);
    return ok;
}

/* Overrun detection: the canary after the end the miniport was given must be intact
 * when the SRB comes back (checked before the SRB is poisoned). */
static void check_canary(const uint8_t *c, size_t n, const char *how, const char *what,
                         PSCSI_REQUEST_BLOCK srb)
{
    size_t last = 0;
    for (size_t i = 0; c && i < n; i++)
        if (c[i] != CANARY_BYTE) last = i + 1;
    if (last)
        sim_finding("SRB", "%s: miniport wrote %zu bytes past %s (CDB %02x)", how, last, what, srb->Cdb[0]);
}

/* What a completed SRB must look like to classpnp ([MS-SRB], facts §8): the status
 * fields must agree with each other and with the sense data. */
static void check_srb_result(struct sim_adapter *a, struct sim_tracked *t, PSCSI_REQUEST_BLOCK srb, const char *how)
{
    (void)a;
    if (srb->Function != SRB_FUNCTION_EXECUTE_SCSI) return;
    UCHAR st = SRB_STATUS(srb->SrbStatus);
    bool autosense = (srb->SrbStatus & SRB_STATUS_AUTOSENSE_VALID) != 0;
    if (srb->ScsiStatus == SCSISTAT_CHECK_CONDITION && !autosense && t->sense && t->req->sense_len &&
        !(t->req->srb_flags & SRB_FLAGS_DISABLE_AUTOSENSE))
        sim_finding("SRB", "%s: CDB %02x completed with CHECK CONDITION but without SRB_STATUS_AUTOSENSE_VALID although "
                    "a sense buffer was given (AutoRequestSense: the sense data must come with it)", how, srb->Cdb[0]);
    if (t->req->srb_flags & SRB_FLAGS_DISABLE_AUTOSENSE) {
        /* SRB_FLAGS_DISABLE_AUTOSENSE ([MS-SRB]): no sense data may be returned (classpnp's
         * START STOP UNIT with IMMED; facts §11.11) */
        bool written = false;
        for (unsigned i = 0; t->sense && i < t->req->sense_len; i++) written |= t->sense[i] != SIM_SENSE_UNTOUCHED;
        if (autosense || written)
            sim_finding("SRB", "%s: CDB %02x sent with SRB_FLAGS_DISABLE_AUTOSENSE came back with %s", how, srb->Cdb[0],
                        autosense ? "SRB_STATUS_AUTOSENSE_VALID" : "its sense buffer written");
    }
    if (st == SRB_STATUS_SUCCESS && srb->ScsiStatus != SCSISTAT_GOOD)
        sim_finding("SRB", "%s: CDB %02x completed with SRB_STATUS_SUCCESS but SCSI status 0x%02x (not GOOD)", how,
                    srb->Cdb[0], srb->ScsiStatus);
    if (autosense && srb->ScsiStatus == SCSISTAT_GOOD)
        sim_finding("SRB", "%s: CDB %02x completed with SRB_STATUS_AUTOSENSE_VALID but SCSI status GOOD", how, srb->Cdb[0]);
    /* An error completion that still claims the whole transfer (facts §11.14): the class
     * driver would take the buffer for complete data. Allowed to keep it: SUCCESS,
     * DATA_OVERRUN (DataTransferLength is the real count either way), BUSY (StorPort
     * issues the same SRB again, so its length must survive: [MS-STARTIO]), and CHECK
     * CONDITION with autosense RECOVERED ERROR (01h): the command completed (SPC-3
     * 4.5.6; classpnp's ClassInterpretSenseInfo maps it to success without retry). */
    if (t->req->transfer_len && srb->DataTransferLength == t->req->transfer_len &&
        (t->req->srb_flags & (SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT)) &&
        st != SRB_STATUS_SUCCESS && st != SRB_STATUS_DATA_OVERRUN && st != SRB_STATUS_BUSY &&
        st != SRB_STATUS_PENDING &&
        !(srb->ScsiStatus == SCSISTAT_CHECK_CONDITION && autosense && t->sense && t->req->sense_len > 2 &&
          (t->sense[2] & 0x0F) == 0x01))
        sim_finding("SRB", "%s: CDB %02x completed with SRB status 0x%02x but DataTransferLength still %u "
                    "(the full request): an error completion must report what was transferred (facts §11.14)",
                    how, srb->Cdb[0], st, srb->DataTransferLength);
    /* the S/G list is StorPort's: the miniport must not write to it */
    if (t->sg && t->sg_copy && memcmp(t->sg, t->sg_copy, t->sg_bytes))
        sim_finding("SRB", "%s: the scatter/gather list of SRB (CDB %02x) was modified by the miniport", how, srb->Cdb[0]);
}

/* RequestComplete: the miniport hands the SRB back. Results are copied now and the
 * SRB and its extension are poisoned, so a later touch is caught (ASan, or the
 * pattern check when the quarantine releases them). */
void sim_port_request_complete(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb, const char *how)
{
    pthread_mutex_lock(&a->srb_mutex);
    struct sim_tracked *t = find_outstanding(a, srb);
    if (!t) {
        struct sim_tracked *q = find_quarantined(a, srb);
        __atomic_fetch_add(&sim_srb_acct.duplicates, 1, __ATOMIC_RELAXED);
        if (q)
            sim_finding("SRB", "%s: SRB %p (CDB %02x) completed twice (first completion by %s)",
                        how, (void *)srb, q->req ? q->req->cdb[0] : 0, q->completed_by ? q->completed_by : "?");
        else
            sim_finding("SRB", "%s: SRB %p is not owned by the miniport (never issued, or already completed)",
                        how, (void *)srb);
        pthread_mutex_unlock(&a->srb_mutex);
        return;
    }
    if (sim_test_drop_completion && srb->Function == SRB_FUNCTION_EXECUTE_SCSI && is_read_write(srb->Cdb) &&
        ++rw_completions_seen == sim_test_drop_completion) {
        /* TEST ONLY: the port "loses" this completion; the SRB stays outstanding */
        __atomic_fetch_add(&sim_srb_acct.test_dropped, 1, __ATOMIC_RELAXED);
        sim_log("port: TEST: --test-drop-completion %llu: completion of SRB %p (CDB %02x) dropped",
                (unsigned long long)sim_test_drop_completion, (void *)srb, srb->Cdb[0]);
        pthread_mutex_unlock(&a->srb_mutex);
        return;
    }
    struct sim_request *r = t->req;
    /* a completion after the port gave up stays counted as lost (the class layer had failed it) */
    __atomic_fetch_add(t->lost_counted ? &sim_srb_acct.late : &sim_srb_acct.completed, 1, __ATOMIC_RELAXED);
    r->srb_status = srb->SrbStatus;
    r->scsi_status = srb->ScsiStatus;
    r->out_transfer_len = srb->DataTransferLength;
    if (t->sense) memcpy(r->sense, t->sense, r->sense_len);
    if (SRB_STATUS(srb->SrbStatus) == SRB_STATUS_PENDING)
        sim_finding("SRB", "%s: SRB (CDB %02x) completed with SrbStatus PENDING", how, srb->Cdb[0]);
    if (srb->SrbStatus & SRB_STATUS_QUEUE_FROZEN)
        sim_finding("SRB", "%s: miniport set SRB_STATUS_QUEUE_FROZEN (port driver only)", how);
    if (srb->DataTransferLength > r->transfer_len)
        sim_finding("SRB", "%s: DataTransferLength grew from %u to %u (overrun)", how,
                    r->transfer_len, srb->DataTransferLength);
    check_canary(t->buf_canary, t->buf_canary_len, how, "DataTransferLength (mapped data buffer)", srb);
    if (t->buf_canary) memcpy(t->buf_canary, t->buf_canary_saved, t->buf_canary_len);
    if (t->ext) check_canary(t->ext + t->ext_len, t->ext_canary_len, how, "SrbExtensionSize (SRB extension)", srb);
    check_srb_result(a, t, srb, how);
    /* unlink */
    for (struct sim_tracked **pp = &a->outstanding; *pp; pp = &(*pp)->next)
        if (*pp == t) { *pp = t->next; break; }
    a->noutstanding--;
    a->completions++;
    if (a->busy_count) a->busy_count--;
    t->done = true;
    t->completed_by = sim_tls.callback ? sim_tls.callback : how;
    t->next = NULL;
    memset(srb, POISON_BYTE, sizeof(*srb));
    POISON(srb, sizeof(*srb));
    if (t->ext) { memset(t->ext, POISON_BYTE, t->ext_len); POISON(t->ext, t->ext_len); }
    if (t->sg) { memset(t->sg, POISON_BYTE, t->sg_bytes); POISON(t->sg, t->sg_bytes); }
    r->port_done = true;          /* the waiter looks only at r from now on */
    quarantine_add(a, t);         /* at once: a second completion must find it here */
    bool first_no_device = false;
    if (SRB_STATUS(r->srb_status) == SRB_STATUS_NO_DEVICE) {
        a->no_device_completions++;
        if (!a->removal_noticed) {
            /* the driver has declared the device gone: from now on no MMIO (docs/lifecycle.md) */
            a->removal_noticed = true;
            a->mmio_at_notice = sim_port_mmio_count(a);
            first_no_device = true;
        }
    }
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    if (first_no_device) {
        sim_contract_stats cs;
        a->dev_removed_mmio_at_notice = sim_contract_get_stats(a->dev, &cs) == 0 ? (int64_t)cs.mmio_after_removal : -1;
    }
}

uint64_t sim_port_mmio_count(struct sim_adapter *a)
{
    uint64_t n = 0;
    for (int i = 0; i < SIM_MMIO_KINDS; i++)
        n += __atomic_load_n(&a->ctr.mmio_reads[i], __ATOMIC_RELAXED) + __atomic_load_n(&a->ctr.mmio_writes[i], __ATOMIC_RELAXED);
    return n;
}

void sim_port_complete_all(struct sim_adapter *a, UCHAR status)
{
    for (;;) {
        pthread_mutex_lock(&a->srb_mutex);
        struct sim_tracked *t = a->outstanding;
        PSCSI_REQUEST_BLOCK srb = t ? t->srb : NULL;
        if (srb) srb->SrbStatus = status;
        pthread_mutex_unlock(&a->srb_mutex);
        if (!srb) return;
        sim_port_request_complete(a, srb, "StorPortCompleteRequest");
    }
}

unsigned sim_port_outstanding(struct sim_adapter *a)
{
    pthread_mutex_lock(&a->srb_mutex);
    unsigned n = a->noutstanding;
    pthread_mutex_unlock(&a->srb_mutex);
    return n;
}

static void abstime_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t t = (uint64_t)ts->tv_nsec + ns;
    ts->tv_sec += (time_t)(t / 1000000000ull);
    ts->tv_nsec = (long)(t % 1000000000ull);
}

static void dump_poll(struct sim_adapter *a);

/* The LU queue is paused while a reset escalation runs: no new request (nor BUSY
 * reissue) reaches the miniport until it is over (facts §6: HwResetBus is called
 * "after every LU queue is paused"). Nests. */
static void reset_pause(struct sim_adapter *a, bool on)
{
    pthread_mutex_lock(&a->srb_mutex);
    if (on) a->reset_pause++;
    else if (a->reset_pause) a->reset_pause--;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
}

void sim_port_reset_bus(struct sim_adapter *a, const char *why)
{
    __atomic_fetch_add(&a->ctr.resets, 1, __ATOMIC_RELAXED);
    sim_log("port: %s: calling HwResetBus", why);
    reset_pause(a, true);
    /* HwResetBus must complete every outstanding SRB with SRB_STATUS_BUS_RESET before
     * it returns (facts §6, [MS-RESET]): remember which ones it owns now. */
    pthread_mutex_lock(&a->srb_mutex);
    unsigned nsnap = 0;
    struct sim_tracked **snap = calloc(a->noutstanding + 1, sizeof(*snap));
    for (struct sim_tracked *t = a->outstanding; t && snap; t = t->next) snap[nsnap++] = t;
    pthread_mutex_unlock(&a->srb_mutex);
    struct sim_tls saved = sim_tls;
    set_ctx(a, SIM_IRQL_DISPATCH);
    sim_tls.locks = 0;
    sim_acquire_startio_lock(a, "bus reset");
    bool half = a->sync_model == StorSynchronizeHalfDuplex;
    if (half) { sim_acquire_interrupt_lock(a, "bus reset"); sim_tls.irql = SIM_IRQL_DIRQL; }
    BOOLEAN ok = sim_call_reset_bus((void *)a->drv->hwid.HwResetBus, a->devext, 0);
    check_locks_after("HwResetBus", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
    if (half) sim_release_interrupt_lock(a, "bus reset");
    sim_release_startio_lock(a, "bus reset");
    if (!ok) sim_log("port: HwResetBus returned FALSE");
    a->reset_gen++;
    sim_tls = saved;
    /* A completion already on its way (a DPC that took the SRB off the miniport's list
     * just before the reset) may land a little later: allow 2 s, queue still paused. */
    uint64_t grace = sim_now_ns() + 2000000000ull;
    pthread_mutex_lock(&a->srb_mutex);
    for (;;) {
        unsigned left = 0;
        for (unsigned i = 0; i < nsnap; i++)
            for (struct sim_tracked *t = a->outstanding; t; t = t->next)
                if (t == snap[i]) { left++; break; }
        if (!left || sim_now_ns() > grace || a->stopping) break;
        if (a->opts.dump_mode) {
            pthread_mutex_unlock(&a->srb_mutex);
            dump_poll(a);
            sim_sleep_us(20);
            pthread_mutex_lock(&a->srb_mutex);
        } else {
            struct timespec ts;
            abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
        }
    }
    /* What StorPort does with SRBs HwResetBus left outstanding is undocumented
     * ([MS-RESET]: complete them "if necessary"). Modelled on the evidence: viostor's
     * HwResetBus completed nothing for years (virtio-win #135) and Windows kept the
     * requests, timed them again and re-issued the reset (event 129 repeated), so they
     * stay outstanding here too; one never completed is a finding once its timeout
     * has run out again after a second round of resets (sim_port_execute). */
    unsigned left = 0;
    for (unsigned i = 0; i < nsnap; i++)
        for (struct sim_tracked *t = a->outstanding; t; t = t->next)
            if (t == snap[i]) { left++; break; }
    if (left) __atomic_fetch_add(&a->ctr.reset_left_outstanding, left, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&a->srb_mutex);
    if (left) sim_log("port: HwResetBus left %u SRB(s) outstanding: StorPort keeps timing them", left);
    free(snap);
    reset_pause(a, false);
}

/* Dump mode has no interrupts, DPCs or timers: the dump port polls HwInterrupt and
 * runs a due RequestTimerCall routine from the same loop (facts §7). */
static void dump_poll(struct sim_adapter *a)
{
    struct sim_tls saved = sim_tls;
    set_ctx(a, SIM_IRQL_HIGH);
    sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    pthread_mutex_lock(&a->timer_mutex);
    void *routine = a->timer_due_ns && sim_now_ns() >= a->timer_due_ns ? a->timer_routine : NULL;
    if (routine) a->timer_due_ns = 0;
    pthread_mutex_unlock(&a->timer_mutex);
    if (routine) {
        __atomic_fetch_add(&a->ctr.timers, 1, __ATOMIC_RELAXED);
        sim_call_timer(routine, a->devext);
    }
    sim_tls = saved;
}

static void start_srb(struct sim_adapter *a, struct sim_tracked *t, struct sim_request *r)
{
    PSCSI_REQUEST_BLOCK srb = t->srb;   /* not dereferenced here: it may complete any time */
    struct sim_tls saved = sim_tls;
    bool dump = a->opts.dump_mode;
    set_ctx(a, dump ? SIM_IRQL_HIGH : SIM_IRQL_DISPATCH);
    sim_tls.locks = 0;
    if (a->drv->hwid.HwBuildIo) {
        BOOLEAN go = sim_call_bool_ext_srb("HwBuildIo", (void *)a->drv->hwid.HwBuildIo, a->devext, srb);
        check_locks_after("HwBuildIo", 0);
        if (!go) {
            pthread_mutex_lock(&a->srb_mutex);
            bool done = r->port_done;
            pthread_mutex_unlock(&a->srb_mutex);
            if (!done)
                sim_finding("SRB", "HwBuildIo returned FALSE without completing the SRB (CDB %02x)", r->cdb[0]);
            sim_tls = saved;
            return;
        }
    }
    bool half = a->sync_model == StorSynchronizeHalfDuplex;
    if (!dump) {
        sim_acquire_startio_lock(a, "StartIo dispatch");
        if (half) { sim_acquire_interrupt_lock(a, "StartIo dispatch"); sim_tls.irql = SIM_IRQL_DIRQL; }
    }
    BOOLEAN ok = sim_call_bool_ext_srb("HwStartIo", (void *)a->drv->hwid.HwStartIo, a->devext, srb);
    if (!dump) {
        check_locks_after("HwStartIo", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
        if (half) sim_release_interrupt_lock(a, "StartIo dispatch");
        sim_release_startio_lock(a, "StartIo dispatch");
    }
    if (!ok) sim_log("port: HwStartIo returned FALSE (CDB %02x)", r->cdb[0]);
    sim_tls = saved;
}

/* A reset SRB of StorPort's own (multi-tier reset): bypasses the queue gate, waits at
 * most tmo seconds. Returns true when it came back (any status). */
static bool internal_reset_srb(struct sim_adapter *a, UCHAR function, unsigned tmo)
{
    struct sim_request *rr = calloc(1, sizeof(*rr));
    rr->function = function;
    rr->srb_flags = SRB_FLAGS_BYPASS_FROZEN_QUEUE | SRB_FLAGS_BYPASS_LOCKED_QUEUE | SRB_FLAGS_NO_QUEUE_FREEZE;
    rr->timeout = tmo;
    pthread_mutex_lock(&a->srb_mutex);
    struct sim_tracked *t = tracked_new(a, rr);
    if (!t) { pthread_mutex_unlock(&a->srb_mutex); free(rr); return false; }
    t->srb->QueueTag = SP_UNTAGGED;
    t->reset_gen = a->reset_gen;
    t->next = a->outstanding;
    a->outstanding = t;
    a->noutstanding++;
    pthread_mutex_unlock(&a->srb_mutex);
    __atomic_fetch_add(&a->ctr.srbs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);
    start_srb(a, t, rr);
    uint64_t deadline = sim_now_ns() + (uint64_t)tmo * 1000000000ull;
    pthread_mutex_lock(&a->srb_mutex);
    while (!rr->port_done && sim_now_ns() < deadline) {
        struct timespec ts;
        abstime_in(&ts, 20000000ull);
        pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
    }
    bool done = rr->port_done;
    if (done) free(rr);
    else t->orphan = rr;   /* still the miniport's: freed with the tracker */
    pthread_mutex_unlock(&a->srb_mutex);
    if (!done) sim_log("port: reset SRB (function 0x%02x) not completed in %u s", function, tmo);
    return done;
}

static void escalate_tiers(struct sim_adapter *a, struct sim_request *r, unsigned tiers, unsigned short_tmo,
                           const char *why);

/* A request timed out: StorPort's multi-tier reset [MS-RESETTIER]: reset the logical
 * unit, then the device (target), then the bus, stopping as soon as the timed-out SRB
 * has come back. Called with reset_mutex held. */
static void escalate_reset(struct sim_adapter *a, struct sim_request *r, unsigned tmo, const char *why)
{
    unsigned tiers = a->opts.reset_tiers ? a->opts.reset_tiers : SIM_RESET_LU | SIM_RESET_DEVICE | SIM_RESET_BUS;
    unsigned short_tmo = tmo < 5 ? tmo : 5;
    reset_pause(a, true);
    escalate_tiers(a, r, tiers, short_tmo, why);
    reset_pause(a, false);
}

static void escalate_tiers(struct sim_adapter *a, struct sim_request *r, unsigned tiers, unsigned short_tmo,
                           const char *why)
{
    if (!a->opts.dump_mode && (tiers & SIM_RESET_LU)) {
        sim_log("port: %s: SRB_FUNCTION_RESET_LOGICAL_UNIT", why);
        __atomic_fetch_add(&a->ctr.lu_resets, 1, __ATOMIC_RELAXED);
        internal_reset_srb(a, SRB_FUNCTION_RESET_LOGICAL_UNIT, short_tmo);
        if (__atomic_load_n(&r->port_done, __ATOMIC_ACQUIRE)) { a->reset_gen++; return; }
    }
    if (!a->opts.dump_mode && (tiers & SIM_RESET_DEVICE)) {
        sim_log("port: %s: SRB_FUNCTION_RESET_DEVICE", why);
        __atomic_fetch_add(&a->ctr.device_resets, 1, __ATOMIC_RELAXED);
        internal_reset_srb(a, SRB_FUNCTION_RESET_DEVICE, short_tmo);
        if (__atomic_load_n(&r->port_done, __ATOMIC_ACQUIRE)) { a->reset_gen++; return; }
    }
    if (tiers & SIM_RESET_BUS) sim_port_reset_bus(a, why);
}

int sim_port_execute(struct sim_adapter *a, struct sim_request *r)
{
    unsigned busy_limit = 100000;
    for (;;) {
        pthread_mutex_lock(&a->srb_mutex);
        /* queue depth / StorPortBusy / StorPortPause gate new requests */
        uint64_t gate_deadline = sim_now_ns() + 60ull * 1000000000ull;
        while (!a->stopping && (a->noutstanding >= a->queue_depth || a->busy_count || a->reset_pause ||
                                (a->pause_deadline_ns && sim_now_ns() < a->pause_deadline_ns))) {
            if (a->busy_count && a->noutstanding == 0) a->busy_count = 0;
            struct timespec ts;
            abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
            if (sim_now_ns() > gate_deadline) {
                pthread_mutex_unlock(&a->srb_mutex);
                sim_finding("HANG", "no SRB slot became free in 60 s (%u outstanding, depth %u)",
                            a->noutstanding, a->queue_depth);
                return -1;
            }
        }
        if (a->stopping || a->crashed) { pthread_mutex_unlock(&a->srb_mutex); return -1; }
        r->port_done = false;
        struct sim_tracked *t = tracked_new(a, r);
        if (!t) { pthread_mutex_unlock(&a->srb_mutex); sim_log("port: out of guest memory for an SRB"); return -1; }
        t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0xFF);
        if (t->srb->QueueTag == SP_UNTAGGED) t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0xFF);
        if (r->function == SRB_FUNCTION_PNP) {
            if (r->pnp_action == StorRemoveDevice || r->pnp_action == StorSurpriseRemoval) a->pnp_removed = true;
            /* SCSI_PNP_REQUEST_BLOCK: the action overlays QueueTag..SenseInfoBufferLength (facts §3) */
            PSCSI_PNP_REQUEST_BLOCK p = (PSCSI_PNP_REQUEST_BLOCK)t->srb;
            p->PnPAction = (STOR_PNP_ACTION)r->pnp_action;
            p->PnPSubFunction = 0;
            p->SrbPnPFlags = r->pnp_flags;
        } else if (r->function == SRB_FUNCTION_WMI) {
            /* SCSI_WMI_REQUEST_BLOCK: WMISubFunction over ScsiStatus, WMIFlags over
             * QueueAction, DataPath over SenseInfoBuffer (NULL: no sense buffer) */
            t->srb->ScsiStatus = (UCHAR)r->pnp_action;
            t->srb->QueueAction = (UCHAR)r->pnp_flags;
        } else if (r->function == SRB_FUNCTION_POWER) {
            PSCSI_POWER_REQUEST_BLOCK p = (PSCSI_POWER_REQUEST_BLOCK)t->srb;
            p->DevicePowerState = (STOR_DEVICE_POWER_STATE)r->pnp_action;
            p->SrbPowerFlags = (UCHAR)r->pnp_flags;
        }
        t->reset_gen = a->reset_gen;
        t->next = a->outstanding;
        a->outstanding = t;
        a->noutstanding++;
        if (a->noutstanding > a->max_outstanding) a->max_outstanding = a->noutstanding;
        pthread_mutex_unlock(&a->srb_mutex);
        __atomic_fetch_add(&a->ctr.srbs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);

        uint64_t start_ns = t->start_ns;
        uint64_t my_reset_gen = t->reset_gen;
        start_srb(a, t, r);

        /* wait for completion; TimeOutValue -> HwResetBus (StorPort's last tier) */
        unsigned tmo = a->opts.srb_timeout ? a->opts.srb_timeout : (r->timeout ? r->timeout : 10);
        uint64_t deadline = start_ns + (uint64_t)tmo * 1000000000ull;
        unsigned rounds = 0;            /* timeout + reset escalations so far */
        pthread_mutex_lock(&a->srb_mutex);
        while (!r->port_done) {
            if (a->opts.dump_mode) {
                pthread_mutex_unlock(&a->srb_mutex);
                dump_poll(a);
                sim_sleep_us(20);
                pthread_mutex_lock(&a->srb_mutex);
            } else {
                struct timespec ts;
                abstime_in(&ts, 20000000ull);
                pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
            }
            if (r->port_done || sim_now_ns() < deadline) continue;
            if (rounds < 2) {
                /* StorPort times the request again after its resets and resets again if
                 * it is still outstanding (event 129 once per round). */
                rounds++;
                if (rounds > 1) my_reset_gen = a->reset_gen;
                r->timed_out = true;
                __atomic_fetch_add(&a->ctr.srb_timeouts, 1, __ATOMIC_RELAXED);
                bool need_reset = a->reset_gen == my_reset_gen;
                pthread_mutex_unlock(&a->srb_mutex);
                pthread_mutex_lock(&a->reset_mutex);
                if (need_reset && a->reset_gen == my_reset_gen) {
                    char why[96];
                    snprintf(why, sizeof(why), "SRB (CDB %02x) timed out after %u s", r->cdb[0], tmo);
                    escalate_reset(a, r, tmo, why);
                }
                pthread_mutex_unlock(&a->reset_mutex);
                pthread_mutex_lock(&a->srb_mutex);
                deadline = sim_now_ns() + (uint64_t)(tmo > 5 ? tmo : 5) * 1000000000ull;
                continue;
            }
            UCHAR tag = t->srb->QueueTag;
            t->orphan = malloc(sizeof(*t->orphan));   /* completion may still come: not into r */
            *t->orphan = *r;
            t->req = t->orphan;
            t->lost_counted = true;
            __atomic_fetch_add(&sim_srb_acct.lost, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&a->srb_mutex);
            sim_finding("SRB", "SRB (CDB %02x, tag %u) still not completed after two rounds of StorPort's resets "
                               "(LU, device, HwResetBus; %u s each)",
                        r->cdb[0], tag, tmo > 5 ? tmo : 5);
            r->srb_status = SRB_STATUS_TIMEOUT;
            r->buffer_held = true;
            return -1;   /* left outstanding: reported again at teardown */
        }
        uint64_t seen = a->completions;
        pthread_mutex_unlock(&a->srb_mutex);

        if (SRB_STATUS(r->srb_status) != SRB_STATUS_BUSY) return 0;
        /* SRB_STATUS_BUSY: StorPort requeues with a fresh SRB extension (facts §6) and
         * retries once the adapter completes something, or after a short pause. */
        __atomic_fetch_add(&a->ctr.srbs_busy, 1, __ATOMIC_RELAXED);
        if (++r->busy_retries > busy_limit) {
            sim_log("port: SRB (CDB %02x) still BUSY after %u retries", r->cdb[0], busy_limit);
            return 0;
        }
        pthread_mutex_lock(&a->srb_mutex);
        if (a->completions == seen && a->noutstanding) {
            struct timespec ts;
            abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
        }
        pthread_mutex_unlock(&a->srb_mutex);
        if (!a->noutstanding) sim_sleep_us(1000);
    }
}

/* ------------------------------------------------------------------------------- */
/* Adapter start */
static void init_config_info(struct sim_adapter *a)
{
    PORT_CONFIGURATION_INFORMATION *c = a->cfg;
    const HW_INITIALIZATION_DATA *h = &a->drv->hwid;
    memset(c, 0, sizeof(*c));
    c->Length = sizeof(PORT_CONFIGURATION_INFORMATION);      /* Windows 7 size, facts §2 */
    c->SystemIoBusNumber = 0;
    c->AdapterInterfaceType = PCIBus;
    if (a->use_msi) {
        c->BusInterruptLevel = 0;
        c->BusInterruptVector = 0x60;
        c->InterruptMode = Latched;
    } else {
        c->BusInterruptLevel = 11;
        c->BusInterruptVector = 11;
        c->InterruptMode = LevelSensitive;
    }
    c->MaximumTransferLength = SP_UNINITIALIZED_VALUE;
    c->NumberOfPhysicalBreaks = 0x11;          /* documented default, facts §2 */
    c->DmaChannel = SP_UNINITIALIZED_VALUE;
    c->DmaPort = SP_UNINITIALIZED_VALUE;
    c->DmaWidth = Width32Bits;
    c->DmaSpeed = Compatible;
    c->AlignmentMask = 0;
    c->NumberOfAccessRanges = h->NumberOfAccessRanges;
    c->AccessRanges = (ACCESS_RANGE (*)[])a->ranges;
    c->NumberOfBuses = 0;
    for (int i = 0; i < 8; i++) c->InitiatorBusId[i] = (CCHAR)SP_UNTAGGED;
    c->ScatterGather = TRUE;
    c->Master = TRUE;
    c->Dma32BitAddresses = TRUE;
    c->MapBuffers = h->MapBuffers;
    c->NeedPhysicalAddresses = TRUE;
    c->TaggedQueuing = TRUE;
    c->AutoRequestSense = TRUE;
    c->MultipleRequestPerLu = TRUE;
    c->BufferAccessScsiPortControlled = TRUE;
    c->MaximumNumberOfTargets = SCSI_MAXIMUM_TARGETS_PER_BUS;
    c->SlotNumber = 4;                          /* device 4, function 0 */
    c->DeviceExtensionSize = h->DeviceExtensionSize;
    c->SpecificLuExtensionSize = h->SpecificLuExtensionSize;
    c->SrbExtensionSize = h->SrbExtensionSize;
    c->Dma64BitAddresses = SCSI_DMA64_SYSTEM_SUPPORTED;
    c->MaximumNumberOfLogicalUnits = SCSI_MAXIMUM_LOGICAL_UNITS;
    c->WmiDataProvider = TRUE;
    c->SynchronizationModel = StorSynchronizeHalfDuplex;   /* default undocumented, facts §10.2 */
    c->InterruptSynchronizationMode = InterruptSupportNone;
    c->MaxNumberOfIO = 1000;
}

static void fill_access_ranges(struct sim_adapter *a)
{
    unsigned n = a->drv->hwid.NumberOfAccessRanges, k = 0;
    a->nranges = n;
    a->ranges = calloc(n ? n : 1, sizeof(ACCESS_RANGE));
    for (unsigned i = 0; i < 6 && k < n; i++) {
        if (!a->pci.bar[i].present) continue;
        a->ranges[k].RangeStart.QuadPart = (LONGLONG)a->pci.bar[i].gpa;
        a->ranges[k].RangeLength = (ULONG)a->pci.bar[i].len;
        a->ranges[k].RangeInMemory = TRUE;
        k++;
    }
}

struct sim_adapter *sim_adapter_create(struct sim_driver *drv, sim_dev *dev,
                                       const struct sim_adapter_opts *o, char *err, size_t errlen)
{
    if (!drv->initialized) { snprintf(err, errlen, "driver did not call StorPortInitialize"); return NULL; }
    if (!decoy_base) {
        void *p = mmap(NULL, DECOY_SLOTS * DECOY_SLOT_BYTES, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) { snprintf(err, errlen, "mmap decoy: %s", strerror(errno)); return NULL; }
        decoy_base = p;
    }
    struct sim_adapter *a = calloc(1, sizeof(*a));
    a->drv = drv;
    a->dev = dev;
    a->opts = *o;
    pthread_mutex_init(&a->startio_lock, NULL);
    pthread_mutex_init(&a->interrupt_lock, NULL);
    for (int i = 0; i < 64; i++) pthread_mutex_init(&a->msi_lock[i], NULL);
    pthread_mutex_init(&a->dpc_mutex, NULL);
    pthread_cond_init(&a->dpc_cond, NULL);
    pthread_mutex_init(&a->timer_mutex, NULL);
    pthread_cond_init(&a->timer_cond, NULL);
    pthread_mutex_init(&a->srb_mutex, NULL);
    pthread_cond_init(&a->srb_cond, NULL);
    pthread_mutex_init(&a->pool_mutex, NULL);
    pthread_mutex_init(&a->reset_mutex, NULL);
    a->quarantine = calloc(QUARANTINE, sizeof(*a->quarantine));
    a->queue_depth = o->default_qdepth ? o->default_qdepth : 250;
    a->dev_removed_mmio_at_notice = -1;
    if (o->dump_mode) a->queue_depth = 1;   /* the dump port sends one request at a time (facts §7) */
    if (sim_mem_init(&a->mem, dev, dev->ram_base_free, dev->ram_size, o->seed ^ 0x5EED)) {
        snprintf(err, errlen, "guest RAM too small");
        free(a);
        return NULL;
    }
    pthread_mutex_lock(&sim_adapters_lock);
    /* A second instance on the same device (the dump stack after a crash, or a fresh
     * instance after hibernation) must not hand out RAM an earlier one still uses: the
     * device may still DMA into the crashed instance's ring until it is reset. */
    for (struct sim_adapter *o2 = sim_adapters; o2; o2 = o2->next)
        if (o2->dev == dev && o2->mem.npages == a->mem.npages) {
            pthread_mutex_lock(&o2->mem.lock);
            for (uint64_t i = 0; i < a->mem.npages; i++)
                if (o2->mem.used[i] && !a->mem.used[i]) { a->mem.used[i] = 1; a->mem.free_pages--; }
            pthread_mutex_unlock(&o2->mem.lock);
        }
    a->next = sim_adapters;
    sim_adapters = a;
    pthread_mutex_unlock(&sim_adapters_lock);
    return a;
}

static int start_threads(struct sim_adapter *a)
{
    a->stopping = false;
    if (!a->opts.dump_mode) {
        if (pthread_create(&a->irq_thread, NULL, irq_thread, a)) return -1;
        a->ndpc_threads = 2;
        for (unsigned i = 0; i < a->ndpc_threads; i++)
            if (pthread_create(&a->dpc_threads[i], NULL, dpc_thread, a)) return -1;
    }
    /* dump mode has no timer DPC either: RequestTimerCall runs from the poll loop */
    if (!a->opts.dump_mode && pthread_create(&a->timer_thread, NULL, timer_thread, a)) return -1;
    a->threads_started = true;
    return 0;
}

static void stop_threads(struct sim_adapter *a)
{
    if (!a->threads_started) return;
    a->stopping = true;
    pthread_mutex_lock(&a->dpc_mutex);
    pthread_cond_broadcast(&a->dpc_cond);
    pthread_mutex_unlock(&a->dpc_mutex);
    pthread_mutex_lock(&a->timer_mutex);
    pthread_cond_broadcast(&a->timer_cond);
    pthread_mutex_unlock(&a->timer_mutex);
    pthread_mutex_lock(&a->srb_mutex);
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    if (a->ctl_thread_live) { pthread_join(a->ctl_thread, NULL); a->ctl_thread_live = false; }
    if (!a->opts.dump_mode) {
        pthread_join(a->irq_thread, NULL);
        for (unsigned i = 0; i < a->ndpc_threads; i++) pthread_join(a->dpc_threads[i], NULL);
        pthread_join(a->timer_thread, NULL);
    }
    a->threads_started = false;
}

int sim_adapter_start(struct sim_adapter *a, char *err, size_t errlen)
{
    const HW_INITIALIZATION_DATA *h = &a->drv->hwid;
    /* The crash-dump / hibernation stack after a bug check: nobody reconfigures PCI; the
     * function keeps the BARs and MSI-X state the crashed instance left ([MS-BOOT]). */
    struct sim_adapter *frozen = NULL;
    if (a->opts.dump_mode) {
        pthread_mutex_lock(&sim_adapters_lock);
        for (struct sim_adapter *o2 = sim_adapters; o2; o2 = o2->next)
            if (o2 != a && o2->dev == a->dev && o2->crashed) frozen = o2;
        pthread_mutex_unlock(&sim_adapters_lock);
    }
    if (frozen) {
        a->pci = frozen->pci;
        sim_log("port: dump stack: PCI configuration left as the crashed instance had it (MSI-X %s)",
                a->pci.msix_enabled ? "still enabled" : "disabled");
    } else if (a->rebalanced) {
        /* PnP rebalance: the PCI bus driver hands out other memory ranges (16 MiB up) */
        uint64_t base = a->dev->mmio_window_base;
        a->dev->mmio_window_base = base + 0x1000000ull;
        int rc = sim_pci_configure(a->dev, &a->pci, err, errlen);
        a->dev->mmio_window_base = base;
        if (rc) return -1;
    } else if (sim_pci_configure(a->dev, &a->pci, err, errlen)) {
        return -1;
    }

    /* Interrupt resources: message interrupts when the INF asks for them (--msi) and
     * the function has MSI-X; else the INTx line. */
    uint64_t msi_page = a->rebalanced && a->msi_page ? a->msi_page : sim_mem_alloc_contig(&a->mem, 1);
    a->msi_page = msi_page;
    memset(sim_gpa(a->dev, msi_page), 0, PG);
    a->use_msi = false;
    if (!a->opts.dump_mode && a->opts.msi && a->pci.msix_cap) {
        if (sim_pci_enable_msix(a->dev, &a->pci, (unsigned)a->opts.msi_messages, msi_page) == 0)
            a->use_msi = true;
    } else if (a->pci.msix_cap && !frozen) {
        sim_pci_disable_msix(a->dev, &a->pci);
    }

    if (!a->rebalanced) {   /* a rebalance runs HwFindAdapter again on the same extension */
        a->devext_size = h->DeviceExtensionSize;
        a->devext = calloc(1, a->devext_size ? a->devext_size : 1);   /* StorPort zeroes it */
        if (h->SpecificLuExtensionSize) a->luext = calloc(1, h->SpecificLuExtensionSize);
    } else {
        free(a->cfg); free(a->ranges); free(a->argument_string);
        a->passive_routine = NULL;
    }
    a->cfg = calloc(1, sizeof(PORT_CONFIGURATION_INFORMATION));
    fill_access_ranges(a);
    init_config_info(a);
    const PORT_CONFIGURATION_INFORMATION *sv = a->opts.dump_mode ? sim_dump_saved_config() : NULL;
    if (sv) {   /* --dump-config saved: the normal instance's ConfigInfo (sim/dumpport.c) */
        PORT_CONFIGURATION_INFORMATION fresh = *a->cfg;
        *a->cfg = *sv;
        a->cfg->Length = fresh.Length;
        a->cfg->AccessRanges = fresh.AccessRanges;
        a->cfg->NumberOfAccessRanges = fresh.NumberOfAccessRanges;
        sim_log("port: dump stack: the dump instance gets the normal instance's saved ConfigInfo "
                "(Dma64BitAddresses 0x%02x, HwMSInterruptRoutine %s)", a->cfg->Dma64BitAddresses,
                a->cfg->HwMSInterruptRoutine ? "set" : "NULL");
    }
    PORT_CONFIGURATION_INFORMATION before = *a->cfg;

    a->argument_string = a->opts.dump_mode ? strdup("dump=1") : NULL;
    BOOLEAN again = FALSE;
    set_ctx(a, a->opts.dump_mode ? SIM_IRQL_HIGH : SIM_IRQL_PASSIVE);
    ULONG fr = sim_call_find_adapter((void *)h->HwFindAdapter, a->devext, NULL, NULL,
                                     a->argument_string, a->cfg, &again);
    check_locks_after("HwFindAdapter", 0);
    set_ctx(a, SIM_IRQL_PASSIVE);
    if (fr != SP_RETURN_FOUND) {
        snprintf(err, errlen, "HwFindAdapter returned %u (%s): Windows would show Code 10 and not start the disk",
                 fr, fr == SP_RETURN_NOT_FOUND ? "NOT_FOUND" : fr == SP_RETURN_ERROR ? "ERROR" :
                 fr == SP_RETURN_BAD_CONFIG ? "BAD_CONFIG" : "invalid");
        return -1;
    }
    PORT_CONFIGURATION_INFORMATION *c = a->cfg;
#define MUST_NOT_TOUCH(f) if (memcmp(&c->f, &before.f, sizeof(c->f))) \
        sim_finding("CONFIG", "HwFindAdapter modified ConfigInfo->" #f " (must not touch, facts §2)")
    MUST_NOT_TOUCH(SystemIoBusNumber); MUST_NOT_TOUCH(AdapterInterfaceType);
    MUST_NOT_TOUCH(BusInterruptLevel); MUST_NOT_TOUCH(BusInterruptVector); MUST_NOT_TOUCH(InterruptMode);
    MUST_NOT_TOUCH(DmaChannel); MUST_NOT_TOUCH(DmaPort); MUST_NOT_TOUCH(DmaWidth); MUST_NOT_TOUCH(DmaSpeed);
    MUST_NOT_TOUCH(AccessRanges); MUST_NOT_TOUCH(SlotNumber); MUST_NOT_TOUCH(BusInterruptLevel2);
    MUST_NOT_TOUCH(BusInterruptVector2); MUST_NOT_TOUCH(InterruptMode2); MUST_NOT_TOUCH(DmaChannel2);
    MUST_NOT_TOUCH(DmaPort2); MUST_NOT_TOUCH(Length);
#undef MUST_NOT_TOUCH
    if (!c->NeedPhysicalAddresses || !c->TaggedQueuing || !c->AutoRequestSense || !c->MultipleRequestPerLu)
        sim_finding("CONFIG", "HwFindAdapter cleared NeedPhysicalAddresses/TaggedQueuing/AutoRequestSense/MultipleRequestPerLu (must stay TRUE)");
    if (c->NumberOfBuses == 0) {
        snprintf(err, errlen, "ConfigInfo->NumberOfBuses is 0 after HwFindAdapter: StorPort would enumerate nothing, Windows would see no disk");
        return -1;
    }
    if (c->MaximumTransferLength == 0 || c->NumberOfPhysicalBreaks == 0) {
        snprintf(err, errlen, "MaximumTransferLength/NumberOfPhysicalBreaks is 0: no request could ever be sent");
        return -1;
    }
    sim_mem_set_dma64(&a->mem, (c->Dma64BitAddresses & (SCSI_DMA64_MINIPORT_SUPPORTED |
                                                         SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED)) != 0);
    a->sync_model = c->SynchronizationModel;
    a->ism = c->InterruptSynchronizationMode;
    a->msi_routine = (void *)c->HwMSInterruptRoutine;
    a->srbext_size = c->SrbExtensionSize;
    if (a->use_msi && !a->msi_routine) {
        sim_log("port: message interrupts granted but HwFindAdapter set no HwMSInterruptRoutine: using INTx");
        sim_pci_disable_msix(a->dev, &a->pci);
        a->use_msi = false;
    }
    if (a->use_msi && a->ism == InterruptSupportNone) a->ism = InterruptSynchronizeAll;
    if (a->unc_done && (a->unc_srbext != c->SrbExtensionSize || a->unc_breaks != c->NumberOfPhysicalBreaks ||
                        a->unc_maxxfer != c->MaximumTransferLength))
        sim_finding("CONFIG", "SrbExtensionSize/NumberOfPhysicalBreaks/MaximumTransferLength changed after StorPortGetUncachedExtension (set them first, [MS-UNC])");

    if (a->opts.dump_mode) sim_dump_budget_check(a);
    if (start_threads(a)) { snprintf(err, errlen, "cannot start threads"); return -1; }

    /* HwInitialize: DIRQL, interrupt lock held (facts §6). */
    set_ctx(a, a->opts.dump_mode ? SIM_IRQL_HIGH : SIM_IRQL_DIRQL);
    if (!a->opts.dump_mode) sim_acquire_interrupt_lock(a, "HwInitialize dispatch");
    BOOLEAN ok = sim_call_bool_ext("HwInitialize", (void *)h->HwInitialize, a->devext);
    if (!a->opts.dump_mode) {
        check_locks_after("HwInitialize", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "HwInitialize dispatch");
    }
    set_ctx(a, SIM_IRQL_PASSIVE);
    if (!ok) { snprintf(err, errlen, "HwInitialize returned FALSE"); return -1; }

    if (a->passive_routine) {
        ok = sim_call_bool_ext("HwPassiveInitializeRoutine", a->passive_routine, a->devext);
        check_locks_after("HwPassiveInitializeRoutine", 0);
        if (!ok) { snprintf(err, errlen, "HwPassiveInitializeRoutine returned FALSE"); return -1; }
    }

    if (h->HwAdapterControl && !a->opts.dump_mode) {
        /* SCSI_SUPPORTED_CONTROL_TYPE_LIST: MaxControlType BOOLEANs, then a canary: the
         * miniport fills entries 0..MaxControlType-1 only ([MS-CTLTYPE]); Windows 7's list
         * is ScsiAdapterControlMax (5) long and whatever follows it is StorPort's. */
        struct { ULONG Max; BOOLEAN List[ScsiAdapterControlMax]; uint8_t canary[27]; } q;
        memset(&q, 0, sizeof(q));
        memset(q.canary, 0xA5, sizeof(q.canary));
        q.Max = ScsiAdapterControlMax;
        sim_call_adapter_control((void *)h->HwAdapterControl, a->devext, ScsiQuerySupportedControlTypes, &q);
        check_locks_after("HwAdapterControl", 0);
        for (size_t i = 0; i < sizeof(q.canary); i++)
            if (q.canary[i] != 0xA5) {
                sim_finding("ADAPTERCONTROL", "ScsiQuerySupportedControlTypes wrote beyond the %u-entry "
                            "SupportedTypeList (byte %zu after it): MaxControlType bounds the list ([MS-CTLTYPE])",
                            (unsigned)ScsiAdapterControlMax, i);
                break;
            }
        if (!q.List[ScsiStopAdapter])
            sim_log("port: HwAdapterControl does not support ScsiStopAdapter (mandatory per [MS-ADAPTERCTL])");
        a->supported_ctl = 0;
        for (int i = 0; i < ScsiAdapterControlMax; i++) if (q.List[i]) a->supported_ctl |= 1u << i;
    }
    a->started = true;
    sim_dump_save_config(a);
    return 0;
}

int sim_adapter_control_locks = SIM_ACL_NONE;

/* --adapter-control-locks none: what else runs while Stop/Restart holds no lock. An
 * interrupt (every MSI-X message, or HwInterrupt on the INTx line with the claim check
 * of a shared line) and every initialised DPC queued as its ISR would, again and again
 * until the call returns. */
static void *adapter_control_disturber(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    sim_tls.ctl_overlap = true;   /* its ISR calls are stretched (sim_stretch) */
    while (__atomic_load_n(&a->in_adapter_control, __ATOMIC_ACQUIRE)) {
        if (a->use_msi) {
            for (unsigned i = 0; i < a->pci.nmsg; i++) deliver_msi(a, i);
        } else if (a->drv->hwid.HwInterrupt) {
            deliver_checked_intx(a, "an interrupt during HwAdapterControl");
        }
        __atomic_fetch_add(&a->ctr.ctl_interrupts, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&a->dpc_mutex);
        for (struct sim_dpc *d = a->dpcs; d; d = d->next_all)
            if (!d->queued) { d->queued = true; d->a1 = d->a2 = NULL; sim_port_issue_dpc(a, d); }
        pthread_mutex_unlock(&a->dpc_mutex);
        sim_sleep_us(100);
    }
    return NULL;
}

static SCSI_ADAPTER_CONTROL_STATUS adapter_control_locked(struct sim_adapter *a, int type)
{
    struct sim_tls saved = sim_tls;
    SCSI_ADAPTER_CONTROL_STATUS st;
    sim_tls.locks = 0;
    if (sim_adapter_control_locks == SIM_ACL_INTERRUPT) {
        /* Stop/Restart: DIRQL with the interrupt lock ([MS-ADAPTERCTL], facts §6). */
        set_ctx(a, SIM_IRQL_DIRQL);
        sim_acquire_interrupt_lock(a, "adapter control");
        st = sim_call_adapter_control((void *)a->drv->hwid.HwAdapterControl, a->devext, type, NULL);
        check_locks_after("HwAdapterControl", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "adapter control");
    } else {
        /* [MS-LOCK]: no lock held, and DPC, StartIo and Interrupt may be taken, so at or
         * below DISPATCH_LEVEL; the ISR, the DPCs and the timer keep running meanwhile
         * (facts §11.2). The call's register accesses and lock calls are stretched
         * (sim_stretch) so the disturbance really overlaps it. */
        uint64_t i0 = __atomic_load_n(&a->ctr.ctl_interrupts, __ATOMIC_RELAXED);
        uint64_t d0 = __atomic_load_n(&a->ctr.ctl_dpcs, __ATOMIC_RELAXED);
        uint64_t t0 = sim_now_ns();
        /* The previous call's disturber may still be inside an ISR it began before that
         * call returned (Windows does not wait for it either): joined here or at teardown. */
        if (a->ctl_thread_live) { pthread_join(a->ctl_thread, NULL); a->ctl_thread_live = false; }
        __atomic_store_n(&a->in_adapter_control, 1, __ATOMIC_RELEASE);
        bool disturb = a->threads_started && !a->opts.dump_mode &&
                       pthread_create(&a->ctl_thread, NULL, adapter_control_disturber, a) == 0;
        a->ctl_thread_live = disturb;
        if (disturb) sim_sleep_us(300);   /* let the first interrupt and DPC start first */
        set_ctx(a, SIM_IRQL_DISPATCH);
        st = sim_call_adapter_control((void *)a->drv->hwid.HwAdapterControl, a->devext, type, NULL);
        check_locks_after("HwAdapterControl", 0);
        __atomic_store_n(&a->in_adapter_control, 0, __ATOMIC_RELEASE);
        if (a->ctl_logged++ < 2)   /* the first Stop and Restart; counts in --json */
            sim_log("port: %s at DISPATCH_LEVEL without locks (--adapter-control-locks none): %.1f ms, "
                    "%llu interrupt(s) and %llu DPC run(s) meanwhile",
                    type == ScsiStopAdapter ? "ScsiStopAdapter" : "ScsiRestartAdapter",
                    (double)(sim_now_ns() - t0) / 1e6,
                    (unsigned long long)(__atomic_load_n(&a->ctr.ctl_interrupts, __ATOMIC_RELAXED) - i0),
                    (unsigned long long)(__atomic_load_n(&a->ctr.ctl_dpcs, __ATOMIC_RELAXED) - d0));
    }
    sim_tls = saved;
    return st;
}

/* StorPort's power-down of the adapter: no new requests, outstanding ones complete
 * (bounded), then HwAdapterControl(ScsiStopAdapter). New requests stay paused. */
int sim_port_stop(struct sim_adapter *a)
{
    (void)sim_port_quiesce(a);   /* what is still outstanding after 30 s is Stop's to complete */
    if (!(a->supported_ctl & (1u << ScsiStopAdapter))) {
        sim_log("port: power down skipped: ScsiStopAdapter unsupported");
        return -1;
    }
    if (adapter_control_locked(a, ScsiStopAdapter) != ScsiAdapterControlSuccess) return -1;
    __atomic_store_n(&a->d3, 1, __ATOMIC_RELEASE);   /* the power IRP follows Stop: D3 */
    return 0;
}

int sim_port_power_cycle(struct sim_adapter *a)
{
    int rc = sim_port_stop(a);
    if (rc == 0) {
        /* The adapter is in D3 now: "no DMA after return", and nothing may touch its
         * registers until Restart (MMIO decoding is off in D3hot; reads give all ones). */
        uint64_t before = sim_port_mmio_count(a);
        sim_sleep_us(2000);
        uint64_t during = sim_port_mmio_count(a) - before;
        if (during)
            sim_finding("POWER", "%llu register access(es) while the adapter was stopped (after ScsiStopAdapter, "
                        "before ScsiRestartAdapter)", (unsigned long long)during);
        if (a->supported_ctl & (1u << ScsiRestartAdapter)) {
            __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);   /* D0 first, then Restart */
            if (adapter_control_locked(a, ScsiRestartAdapter) != ScsiAdapterControlSuccess) rc = -1;
        } else {
            sim_log("port: ScsiRestartAdapter unsupported: Windows would call HwFindAdapter+HwInitialize again (not simulated)");
            rc = -1;
        }
    }
    if (rc == 0) __atomic_fetch_add(&a->power_cycles, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

void sim_port_crash(struct sim_adapter *a, unsigned inflight_writes)
{
    /* requests in flight at the crash: started, never waited for */
    for (unsigned i = 0; i < inflight_writes; i++) {
        struct sim_request *r = calloc(1, sizeof(*r));
        struct sim_buf *b = sim_buf_alloc(&a->mem, 4096, true, 0);
        uint8_t cdb[16] = { 0x2A };
        uint64_t lba = 8ull * i;
        for (int k = 0; k < 4; k++) cdb[2 + k] = (uint8_t)(lba >> (24 - 8 * k));
        cdb[8] = (uint8_t)(4096 / 512);   /* assumes 512-byte blocks; only the crash's noise */
        if (!b) { free(r); break; }
        sim_request_init(r, cdb, 10, b, 4096, false, true);
        pthread_mutex_lock(&a->srb_mutex);
        struct sim_tracked *t = tracked_new(a, r);
        if (!t) { pthread_mutex_unlock(&a->srb_mutex); free(r); break; }
        t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0x7F);
        t->orphan = r;                       /* r and b are freed with the tracker */
        t->owns_buf = true;
        t->next = a->outstanding;
        a->outstanding = t;
        a->noutstanding++;
        pthread_mutex_unlock(&a->srb_mutex);
        __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);
        start_srb(a, t, r);
    }
    stop_threads(a);
    a->crashed = true;
    sim_log("port: instance crashed with %u SRB(s) in flight: no more calls into it", sim_port_outstanding(a));
}

void sim_adapter_destroy(struct sim_adapter *a)
{
    if (!a) return;
    sim_s4_check(a);   /* device DMA into rings a resumed instance left behind */
    a->in_teardown = true;
    /* Never-completed SRBs are the miniport's bug (every SRB completed exactly once),
     * except on a crashed instance, whose requests were abandoned by the "bug check". */
    pthread_mutex_lock(&a->srb_mutex);
    for (struct sim_tracked *t = a->outstanding; t; t = t->next) {
        if (a->crashed) {   /* abandoned by the "bug check", not lost by the miniport */
            if (!t->lost_counted) __atomic_fetch_add(&sim_srb_acct.abandoned, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (!t->lost_counted) __atomic_fetch_add(&sim_srb_acct.lost, 1, __ATOMIC_RELAXED);
        sim_finding("SRB", "SRB %p (CDB %02x, tag %u) never completed (outstanding %.1f s at teardown)",
                    (void *)t->srb, t->req ? t->req->cdb[0] : 0, t->srb->QueueTag,
                    (double)(sim_now_ns() - t->start_ns) / 1e9);
    }
    pthread_mutex_unlock(&a->srb_mutex);
    if (a->crashed) {   /* nothing of it is released on Windows either; forget it quietly */
        pthread_mutex_lock(&a->srb_mutex);
        for (struct sim_tracked *t = a->outstanding; t;) {
            struct sim_tracked *n = t->next;
            if (t->ext) sim_mem_free(&a->mem, t->ext_gpa, t->ext_pages);
            if (t->owns_buf && t->orphan) sim_buf_free(&a->mem, t->orphan->buf);
            free(t->srb); free(t->sg); free(t->sg_copy); free(t->buf_canary_saved); sense_free(a, t); free(t->orphan); free(t);
            t = n;
        }
        a->outstanding = NULL;
        pthread_mutex_unlock(&a->srb_mutex);
        pthread_mutex_lock(&a->pool_mutex);
        for (struct sim_pool_block *b = a->pool; b;) { struct sim_pool_block *n = b->next; free(b->p); free(b); b = n; }
        a->pool = NULL;
        pthread_mutex_unlock(&a->pool_mutex);
        sim_contig_unload(a, true);
    }
    if (a->started && !a->crashed && !a->opts.dump_mode && a->drv->hwid.HwAdapterControl &&
        (a->supported_ctl & (1u << ScsiStopAdapter)) && !a->outstanding)
        adapter_control_locked(a, ScsiStopAdapter);   /* what removal does: stop, no DMA after */
    stop_threads(a);

    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_pool_block *b = a->pool; b;) {
        struct sim_pool_block *n = b->next;
        char tag[5];
        memcpy(tag, &b->tag, 4); tag[4] = 0;
        for (int i = 0; i < 4; i++) if (tag[i] < 32 || tag[i] > 126) tag[i] = '.';
        sim_finding("POOL", "pool block of %zu bytes (tag '%s') not freed at unload", b->len, tag);
        free(b->p);
        free(b);
        b = n;
    }
    a->pool = NULL;
    pthread_mutex_unlock(&a->pool_mutex);
    sim_contig_unload(a, false);

    if (a->unc_va) {
        uint8_t *slack = a->unc_va + a->unc_len;
        for (size_t i = 0; i < a->unc_canary_len; i++)
            if (slack[i] != 0xC5) {
                sim_finding("UNCACHED", "uncached extension overrun: byte %u past its end (%u bytes) was written",
                            (unsigned)i, a->unc_len);
                break;
            }
        uint8_t *guard = a->unc_va + a->unc_len + a->unc_canary_len;
        if (((uintptr_t)guard & (PG - 1)) == 0) mprotect(guard, PG, PROT_READ | PROT_WRITE);
    }
    pthread_mutex_lock(&a->srb_mutex);
    for (unsigned i = 0; i < QUARANTINE; i++)
        if (a->quarantine[i]) { tracked_free(a, a->quarantine[i]); a->quarantine[i] = NULL; }
    pthread_mutex_unlock(&a->srb_mutex);
    for (unsigned i = 0; i < a->nwin; i++)
        if (a->win[i].active) {
            uintptr_t pgoff = (uintptr_t)a->win[i].va & (PG - 1);
            a->win[i].active = false;
            munmap(a->win[i].va - pgoff, (size_t)((pgoff + a->win[i].len + PG - 1) & ~(PG - 1)));
        }

    pthread_mutex_lock(&sim_adapters_lock);
    for (struct sim_adapter **pp = &sim_adapters; *pp; pp = &(*pp)->next)
        if (*pp == a) { *pp = a->next; break; }
    pthread_mutex_unlock(&sim_adapters_lock);
    for (struct sim_dpc *d = a->dpcs; d;) { struct sim_dpc *n = d->next_all; free(d); d = n; }
    free(a->quarantine);
    free(a->devext);
    free(a->luext);
    free(a->cfg);
    free(a->ranges);
    free(a->argument_string);
    sim_mem_destroy(&a->mem);
    free(a);
}

bool sim_addr_is_databuffer_decoy(const void *addr)
{
    const uint8_t *p = addr;
    return decoy_base && p >= decoy_base && p < decoy_base + DECOY_SLOTS * DECOY_SLOT_BYTES;
}

void sim_describe_address(const void *addr, char *buf, size_t len)
{
    const uint8_t *p = addr;
    if (decoy_base && p >= decoy_base && p < decoy_base + DECOY_SLOTS * DECOY_SLOT_BYTES) {
        snprintf(buf, len, "%p is the DataBuffer of a READ/WRITE SRB: not mapped on Windows 7, never dereference it (facts §10.13); use the scatter/gather list", addr);
        return;
    }
    pthread_mutex_lock(&sim_adapters_lock);
    for (struct sim_adapter *a = sim_adapters; a; a = a->next) {
        for (unsigned i = 0; i < a->nwin; i++)
            if (a->win[i].active && p >= a->win[i].va && p < a->win[i].va + a->win[i].len) {
                snprintf(buf, len, "%p is inside the mapped BAR%u window (offset 0x%llx)", addr, a->win[i].bar,
                         (unsigned long long)(p - a->win[i].va));
                pthread_mutex_unlock(&sim_adapters_lock);
                return;
            }
        if (a->unc_va && p >= a->unc_va + a->unc_len && p < a->unc_va + a->unc_len + a->unc_canary_len + PG) {
            snprintf(buf, len, "%p is past the end of the uncached extension (%u bytes): overrun", addr, a->unc_len);
            pthread_mutex_unlock(&sim_adapters_lock);
            return;
        }
    }
    pthread_mutex_unlock(&sim_adapters_lock);
    snprintf(buf, len, "%p: not a simulator-managed address", addr);
}

/* Hibernation without HwAdapterControl (--s4-adapter-control off): StorPort pauses new
 * requests and the system waits for the outstanding ones; nothing is called. */
int sim_port_quiesce(struct sim_adapter *a)
{
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = UINT64_MAX;
    uint64_t dl = sim_now_ns() + 30ull * 1000000000ull;
    while (a->noutstanding && sim_now_ns() < dl) {
        struct timespec ts;
        abstime_in(&ts, 10000000ull);
        pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
    }
    int rc = a->noutstanding ? -1 : 0;
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

/* The frozen (hibernated) instance continues: its interrupt, DPC and timer threads run
 * again; with restart, D0 and HwAdapterControl(ScsiRestartAdapter) first, as after a
 * sleep; then StorPort lets requests through. */
int sim_port_thaw(struct sim_adapter *a, bool restart)
{
    int rc = 0;
    a->crashed = false;
    if (start_threads(a)) return -1;
    if (restart) {
        __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);
        if (!(a->supported_ctl & (1u << ScsiRestartAdapter)) ||
            adapter_control_locked(a, ScsiRestartAdapter) != ScsiAdapterControlSuccess) rc = -1;
    }
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

/* `pnp rebalance` (issue 11 item 10, facts §11.9, [MS-ACT] ScsiStopAdapter): after the
 * caller's SRB_FUNCTION_FLUSH and SRB_FUNCTION_PNP StorStopDevice, StorPort pauses and
 * drains, calls ScsiStopAdapter, releases the resources (interrupt disconnected, BAR
 * mappings invalid, decoding off: reads all ones), and at the new start runs
 * HwFindAdapter + HwInitialize again on the same device extension with other BARs. */
int sim_port_rebalance(struct sim_adapter *a, char *err, size_t errlen)
{
    if (sim_port_quiesce(a)) { snprintf(err, errlen, "requests still outstanding"); return -1; }
    if (!(a->supported_ctl & (1u << ScsiStopAdapter)) ||
        adapter_control_locked(a, ScsiStopAdapter) != ScsiAdapterControlSuccess) {
        snprintf(err, errlen, "ScsiStopAdapter failed");
        return -1;
    }
    __atomic_store_n(&a->d3, 1, __ATOMIC_RELEASE);      /* resources released: no decoding */
    stop_threads(a);
    /* A DPC the last interrupt before the disconnect queued may still be pending: nothing
     * says StorPort flushes (KeRemoveQueueDpc / KeFlushQueuedDpcs) the miniport's DPCs at
     * a PnP stop, and a delayed DPC on a busy (virtual) CPU can lag by the whole stop.
     * Harshest variant, always: every initialised DPC is left queued, so it runs as soon
     * as the interrupt is connected again, i.e. after HwFindAdapter re-ran on the
     * extension and racing HwInitialize (docs/simulator.md). */
    unsigned late = 0;
    pthread_mutex_lock(&a->dpc_mutex);
    for (struct sim_dpc *d = a->dpcs; d; d = d->next_all, late++)
        if (!d->queued) { d->queued = true; d->a1 = d->a2 = NULL; sim_port_issue_dpc(a, d); }
    pthread_mutex_unlock(&a->dpc_mutex);
    if (late) sim_log("port: rebalance: %u DPC(s) queued before the stop still pending: they run once the interrupt is reconnected", late);
    for (unsigned i = 0; i < a->nwin; i++) a->win[i].active = false;   /* mappings invalid */
    if (a->use_msi) sim_pci_disable_msix(a->dev, &a->pci);
    a->started = false;
    a->rebalanced = true;
    a->rebalances++;
    __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);
    uint64_t old_bar = 0;
    for (unsigned i = 0; i < 6 && !old_bar; i++) if (a->pci.bar[i].present) old_bar = a->pci.bar[i].gpa;
    int rc = sim_adapter_start(a, err, errlen);
    for (unsigned i = 0; i < 6; i++)
        if (a->pci.bar[i].present) {
            sim_log("port: rebalance: BAR%u moved from 0x%llx to 0x%llx", i, (unsigned long long)old_bar,
                    (unsigned long long)a->pci.bar[i].gpa);
            break;
        }
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}
