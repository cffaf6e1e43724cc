/*
 * Simulated StorPort: SRB ownership tracking (SRB, extension, sense buffer, S/G list,
 * the quarantine of completed SRBs), physical addresses, and the checks made when the
 * miniport completes an SRB (canaries, status consistency, double completion).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_int.h"
#include "contract_dev.h"

/* Every SRB of the process accounted, across instances (docs/reliability.md):
 * issued == completed + lost + abandoned once every instance is gone. */
struct sim_srb_acct sim_srb_acct;
/* test-only (--test-drop-completion N): the Nth READ/WRITE completion is swallowed */
uint64_t sim_test_drop_completion;
static uint64_t rw_completions_seen;

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

void port_sense_free(struct sim_adapter *a, struct sim_tracked *t)
{
    if (t->sense_gpa) sim_mem_free(&a->mem, t->sense_gpa & ~(PG - 1), 1);
    t->sense = NULL;
    t->sense_gpa = 0;
}

void port_tracked_free(struct sim_adapter *a, struct sim_tracked *t)
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
    port_sense_free(a, t);
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
    if (old) port_tracked_free(a, old);
}

struct sim_tracked *port_tracked_new(struct sim_adapter *a, struct sim_request *r)
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
        if (!t->ext_gpa) { port_sense_free(a, t); free(srb); free(t); return NULL; }
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
            srb->DataBuffer = port_decoy_base + slot * DECOY_SLOT_BYTES + (b->gpa[0] & (PG - 1));
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

void port_abstime_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t t = (uint64_t)ts->tv_nsec + ns;
    ts->tv_sec += (time_t)(t / 1000000000ull);
    ts->tv_nsec = (long)(t % 1000000000ull);
}

