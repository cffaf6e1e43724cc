/*
 * The disk-class layer: what Windows 7's StorPort enumeration, disk.sys and classpnp
 * send to a new disk (facts §8) and how they send reads, writes and flushes: SRB
 * flags, queue tags, TimeOutValue, sense buffers, transfer-size limits from
 * MaximumTransferLength / NumberOfPhysicalBreaks, and the retry policy.
 *
 * This file: data buffers in guest RAM (sim_buf_*: the workload, the CLI's cdb/ioctl
 * commands and the port's power paths allocate them), request setup as disk.sys does it
 * (sim_request_init), sense decoding and classpnp's retry policy (sim_disk_execute_retry,
 * the internal commands of the other diskclass files). The rest, by concern:
 * diskclass_enum.c (arrival, identity, capacity, re-enumeration, transfer limits),
 * diskclass_io.c (reads, writes, flushes, shutdown, the dump port's requests, START STOP
 * UNIT), diskclass_traffic.c (class traffic beyond reads and writes: SMART, WMI, reset,
 * IMMED start/stop, DisableWriteCache); shared declarations in diskclass_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskclass_int.h"

/* ---- buffers in guest RAM --------------------------------------------------------- */
struct sim_buf *sim_buf_alloc(struct sim_mem *m, uint64_t len, bool scattered, unsigned start_off)
{
    struct sim_buf *b = calloc(1, sizeof(*b));
    /* A mapped buffer is pool memory on Windows: it starts anywhere 8/16-byte aligned
     * in a page, not at a page boundary. */
    if (!scattered && start_off == 0 && len)
        start_off = (unsigned)(sim_mem_rand(m) % (PG / 8)) * 8u;
    uint64_t pages = (start_off + len + PG - 1) / PG;
    if (!pages) pages = 1;
    b->len = len;
    b->gpa = calloc(pages, sizeof(uint64_t));
    b->flen = calloc(pages, sizeof(uint32_t));
    if (scattered) {
        uint64_t *pg = calloc(pages, sizeof(uint64_t));
        if (sim_mem_alloc_scattered(m, pages, pg)) { free(pg); free(b->gpa); free(b->flen); free(b); return NULL; }
        uint64_t left = len;
        for (uint64_t i = 0; i < pages; i++) {
            uint64_t off = i == 0 ? start_off : 0;
            uint64_t n = PG - off < left ? PG - off : left;
            b->gpa[i] = pg[i] + off;
            b->flen[i] = (uint32_t)n;
            left -= n;
        }
        b->nfrag = (unsigned)pages;
        b->pages = pages;
        /* keep the page list for freeing: reuse gpa (page = gpa & ~0xFFF) */
        free(pg);
        b->contig = false;
    } else {
        uint64_t g = sim_mem_alloc_contig(m, pages);
        if (!g) { free(b->gpa); free(b->flen); free(b); return NULL; }
        b->contig_gpa = g;
        b->pages = pages;
        b->gpa[0] = g + start_off;
        b->flen[0] = (uint32_t)len;
        b->nfrag = 1;
        b->contig = true;
    }
    if (len == 0) b->nfrag = 0;
    return b;
}

void sim_buf_free(struct sim_mem *m, struct sim_buf *b)
{
    if (!b) return;
    if (b->contig) sim_mem_free(m, b->contig_gpa, b->pages);
    else for (unsigned i = 0; i < b->pages; i++) sim_mem_free(m, b->gpa[i] & ~(uint64_t)(PG - 1), 1);
    free(b->gpa);
    free(b->flen);
    free(b);
}

static void buf_copy(sim_dev *d, const struct sim_buf *b, uint64_t off, uint8_t *p, uint64_t len, bool to_buf)
{
    for (unsigned i = 0; i < b->nfrag && len; i++) {
        if (off >= b->flen[i]) { off -= b->flen[i]; continue; }
        uint64_t n = b->flen[i] - off;
        if (n > len) n = len;
        uint8_t *g = sim_gpa(d, b->gpa[i] + off);
        if (to_buf) memcpy(g, p, n); else memcpy(p, g, n);
        p += n;
        len -= n;
        off = 0;
    }
}

void sim_buf_write(sim_dev *d, const struct sim_buf *b, uint64_t off, const void *src, uint64_t len)
{
    buf_copy(d, b, off, (uint8_t *)src, len, true);
}

void sim_buf_read(sim_dev *d, const struct sim_buf *b, uint64_t off, void *dst, uint64_t len)
{
    buf_copy(d, b, off, dst, len, false);
}

/* A view of [off, off+len) of b (fragments shared; free with diskclass_buf_view_free). */
struct sim_buf *diskclass_buf_view(const struct sim_buf *b, uint64_t off, uint64_t len)
{
    struct sim_buf *v = calloc(1, sizeof(*v));
    v->gpa = calloc(b->nfrag + 1, sizeof(uint64_t));
    v->flen = calloc(b->nfrag + 1, sizeof(uint32_t));
    v->len = len;
    v->contig = b->contig;
    for (unsigned i = 0; i < b->nfrag && len; i++) {
        if (off >= b->flen[i]) { off -= b->flen[i]; continue; }
        uint64_t n = b->flen[i] - off;
        if (n > len) n = len;
        v->gpa[v->nfrag] = b->gpa[i] + off;
        v->flen[v->nfrag++] = (uint32_t)n;
        len -= n;
        off = 0;
    }
    return v;
}

void diskclass_buf_view_free(struct sim_buf *v)
{
    free(v->gpa);
    free(v->flen);
    free(v);
}

/* ---- requests ------------------------------------------------------------------- */
void sim_request_init(struct sim_request *r, const uint8_t *cdb, unsigned cdb_len,
                      struct sim_buf *buf, ULONG len, bool data_in, bool data_out)
{
    memset(r, 0, sizeof(*r));
    r->function = SRB_FUNCTION_EXECUTE_SCSI;
    memcpy(r->cdb, cdb, cdb_len > 16 ? 16 : cdb_len);
    r->cdb_len = (UCHAR)cdb_len;
    /* disk.sys: PORT_DRIVER_ALLOCSENSE always; QUEUE_ACTION_ENABLE + SIMPLE tag when the
     * device and adapter do command queuing (facts §8). */
    r->srb_flags = SRB_FLAGS_PORT_DRIVER_ALLOCSENSE | SRB_FLAGS_QUEUE_ACTION_ENABLE |
                   (data_in ? SRB_FLAGS_DATA_IN : 0) | (data_out ? SRB_FLAGS_DATA_OUT : 0);
    r->queue_action = SRB_SIMPLE_TAG_REQUEST;
    r->timeout = DISK_TIMEOUT;
    r->sense_len = SENSE_LEN;
    r->buf = buf;
    r->transfer_len = len;
}

/* Sense key / ASC / ASCQ of a completion, when AUTOSENSE_VALID is set and the buffer
 * holds fixed (70h/71h) or descriptor (72h/73h) format sense data, as classpnp's
 * ScsiGetSenseKeyAndCodes accepts it. Returns false otherwise ("no valid sense"). */
static bool sense_of(const struct sim_request *r, uint8_t *key, uint8_t *asc, uint8_t *ascq, bool *ili)
{
    *key = *asc = *ascq = 0;
    *ili = false;
    if (!(r->srb_status & SRB_STATUS_AUTOSENSE_VALID)) return false;
    uint8_t code = r->sense[0] & 0x7F;
    if (code == 0x70 || code == 0x71) {
        *key = r->sense[2] & 0x0F;
        *ili = (r->sense[2] & 0x20) != 0;
        *asc = r->sense[12];
        *ascq = r->sense[13];
        return true;
    }
    if (code == 0x72 || code == 0x73) {
        *key = r->sense[1] & 0x0F;
        *asc = r->sense[2];
        *ascq = r->sense[3];
        return true;
    }
    return false;
}

/* Outcome of one completion as classpnp's ClassInterpretSenseInfo judges it (the
 * Windows 8.1 sample source, storage/class/classpnp/src/class.c, with Windows 7's
 * legacy HARDWARE ERROR handling; facts §8). */
enum cls_verdict { CLS_SUCCESS, CLS_RETRY, CLS_FAIL };

static enum cls_verdict classpnp_interpret(const struct sim_request *r, unsigned retries_left)
{
    uint8_t st = SRB_STATUS(r->srb_status), key, asc, ascq;
    bool ili;
    if (st == SRB_STATUS_SUCCESS) return CLS_SUCCESS;
    /* INTERNAL_ERROR first (it may carry every flag), then RESERVATION CONFLICT */
    if (st == SRB_STATUS_INTERNAL_ERROR) return CLS_FAIL;
    if (r->scsi_status == 0x18) return CLS_FAIL;              /* SCSISTAT_RESERVATION_CONFLICT */
    if (sense_of(r, &key, &asc, &ascq, &ili)) {
        switch (key) {
        case 0x00: return ili ? CLS_FAIL : CLS_RETRY;           /* NO SENSE: retried unless ILI */
        case 0x01: return CLS_SUCCESS;                           /* RECOVERED ERROR: STATUS_SUCCESS */
        case 0x02:                                               /* NOT READY */
            if (asc == 0x3A) return CLS_FAIL;                    /* medium not present */
            if (asc == 0x04 && (ascq == 0x00 || ascq == 0x03 || ascq == 0x04 || ascq == 0x08))
                return CLS_FAIL;   /* cause not reportable, manual intervention, format, long write */
            return CLS_RETRY;                                    /* becoming ready, in progress, ... */
        case 0x03: return CLS_FAIL;                              /* MEDIUM ERROR: never retried */
        case 0x04: return CLS_RETRY;   /* HARDWARE ERROR: retried (legacy = pre-8.1 behaviour) */
        case 0x05: return CLS_FAIL;                              /* ILLEGAL REQUEST */
        case 0x06: return CLS_RETRY;                             /* UNIT ATTENTION (fixed disk) */
        case 0x07: return CLS_FAIL;                              /* DATA PROTECT */
        case 0x08: return CLS_FAIL;                              /* BLANK CHECK */
        default:   return CLS_RETRY;                             /* ABORTED COMMAND, others */
        }
    }
    /* no valid sense: by SRB status */
    switch (st) {
    case SRB_STATUS_INVALID_REQUEST:
    case SRB_STATUS_INVALID_PATH_ID: case SRB_STATUS_NO_DEVICE: case SRB_STATUS_NO_HBA:
    case SRB_STATUS_INVALID_LUN: case SRB_STATUS_INVALID_TARGET_ID:
    case SRB_STATUS_SELECTION_TIMEOUT:
        return CLS_FAIL;
    case SRB_STATUS_DATA_OVERRUN:
        /* an underrun on INQUIRY / MODE SENSE counts as success (facts §8); else failed */
        return (r->cdb[0] == 0x12 || r->cdb[0] == 0x1A || r->cdb[0] == 0x5A) ? CLS_SUCCESS : CLS_FAIL;
    case SRB_STATUS_PHASE_SEQUENCE_FAILURE:
        return retries_left > 1 ? CLS_RETRY : CLS_FAIL;          /* "limit the number of retries" */
    default:
        /* ABORTED, ERROR (incl. SCSI BUSY), TIMEOUT, COMMAND_TIMEOUT, PARITY_ERROR,
         * UNEXPECTED_BUS_FREE, BUS_RESET, REQUEST_FLUSHED, and everything else (BUSY,
         * BAD_FUNCTION, ...: the default case, logged as a controller error) */
        return CLS_RETRY;
    }
}

void diskclass_count_completion(struct sim_disk *d, const struct sim_request *r)
{
    uint8_t key, asc, ascq;
    bool ili;
    __atomic_fetch_add(&d->srb_status_count[SRB_STATUS(r->srb_status) & 0x3F], 1, __ATOMIC_RELAXED);
    if (sense_of(r, &key, &asc, &ascq, &ili))
        __atomic_fetch_add(&d->sense_key_count[key], 1, __ATOMIC_RELAXED);
}

int sim_disk_execute_retry(struct sim_disk *d, struct sim_request *r, unsigned retries)
{
    for (unsigned attempt = 0;; attempt++) {
        r->srb_status = 0;
        r->scsi_status = 0;
        memset(r->sense, 0, sizeof(r->sense));
        if (sim_port_execute(d->a, r) < 0) return -1;
        diskclass_count_completion(d, r);
        uint8_t key, asc, ascq;
        bool ili, have_sense = sense_of(r, &key, &asc, &ascq, &ili);
        if (have_sense && key == 0x06) {           /* UNIT ATTENTION */
            __atomic_fetch_add(&d->unit_attentions, 1, __ATOMIC_RELAXED);
            if (asc == 0x2A && ascq == 0x09) __atomic_fetch_add(&d->capacity_generation, 1, __ATOMIC_RELEASE);
        }
        if (have_sense && key == 0x05 && asc == 0x24 && r->function == SRB_FUNCTION_EXECUTE_SCSI &&
            (r->cdb[0] == 0x2A || r->cdb[0] == 0x8A) && (r->cdb[1] & 0x08) && attempt < retries) {
            /* disk.sys (DiskFdoProcessError, 8.1 sample disk.c): a WRITE(10)/(16) with FUA
             * failing with ILLEGAL REQUEST / INVALID FIELD IN CDB: queue DisableWriteCache
             * (unless the user forced the cache on), set CLASS_SPECIAL_FUA_NOT_SUPPORTED
             * (ADJUST_FUA_FLAG: no FUA from now on), clear FUA and retry. */
            r->cdb[1] &= (uint8_t)~0x08;
            pthread_mutex_lock(&d->lock);
            if (!d->fua_not_supported) {
                d->fua_not_supported = true;
                d->wce_disable_pending = true;
                d->fua_disabled++;
                sim_log("disk: FUA WRITE failed with 05/24: FUA not supported; the write cache will be "
                        "turned off and writes retried without FUA");
            }
            pthread_mutex_unlock(&d->lock);
            __atomic_fetch_add(&d->retries, 1, __ATOMIC_RELAXED);
            continue;
        }
        enum cls_verdict v = classpnp_interpret(r, retries - (attempt < retries ? attempt : retries));
        if (v == CLS_SUCCESS) return 0;
        if (v == CLS_FAIL || attempt >= retries) {
            __atomic_fetch_add(&d->errors, 1, __ATOMIC_RELAXED);
            return -1;
        }
        __atomic_fetch_add(&d->retries, 1, __ATOMIC_RELAXED);
        if (!(have_sense && key == 0x06)) sim_sleep_us(20000);   /* classpnp waits ~1 s; shortened */
    }
}

int diskclass_simple_cmd(struct sim_disk *d, const uint8_t *cdb, unsigned cdb_len, void *data, unsigned len,
                      bool in, unsigned retries, ULONG *got)
{
    struct sim_buf *b = len ? sim_buf_alloc(&d->a->mem, len, false, 0) : NULL;
    struct sim_request *r = malloc(sizeof(*r));
    if (len && !b) { free(r); return -1; }
    if (b && !in) sim_buf_write(d->a->dev, b, 0, data, len);
    sim_request_init(r, cdb, cdb_len, b, len, in && len, !in && len);
    r->srb_flags |= SRB_FLAGS_DISABLE_SYNCH_TRANSFER | SRB_FLAGS_NO_QUEUE_FREEZE;  /* internal commands */
    int rc = sim_disk_execute_retry(d, r, retries);
    if (got) *got = rc == 0 ? r->out_transfer_len : 0;
    if (rc == 0 && b && in) {
        unsigned n = r->out_transfer_len < len ? r->out_transfer_len : len;
        memset(data, 0, len);
        sim_buf_read(d->a->dev, b, 0, data, n);
    }
    if (!r->buffer_held) sim_buf_free(&d->a->mem, b);
    free(r);
    return rc;
}
