/*
 * The disk-class layer: what Windows 7's StorPort enumeration, disk.sys and classpnp
 * send to a new disk (facts §8) and how they send reads, writes and flushes: SRB
 * flags, queue tags, TimeOutValue, sense buffers, transfer-size limits from
 * MaximumTransferLength / NumberOfPhysicalBreaks, and the retry policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define PG 4096u
#define SENSE_LEN 18              /* SENSE_BUFFER_SIZE */
#define DISK_TIMEOUT 10           /* SCSI_DISK_TIMEOUT, facts §8 */
#define RW_RETRIES 8              /* reads/writes before Windows 8.1 */
#define OTHER_RETRIES 4           /* MAXIMUM_RETRIES */

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

/* A view of [off, off+len) of b (fragments shared; free with buf_view_free). */
static struct sim_buf *buf_view(const struct sim_buf *b, uint64_t off, uint64_t len)
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

static void buf_view_free(struct sim_buf *v)
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

static void count_completion(struct sim_disk *d, const struct sim_request *r)
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
        count_completion(d, r);
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

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static int simple_cmd(struct sim_disk *d, const uint8_t *cdb, unsigned cdb_len, void *data, unsigned len,
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

int sim_disk_refresh_capacity(struct sim_disk *d)
{
    uint8_t cdb[16] = { 0x25 }, buf[32];
    ULONG got;
    if (simple_cmd(d, cdb, 10, buf, 8, true, 1, &got) || got < 8) {
        sim_log("disk: READ CAPACITY(10) failed");
        return -1;
    }
    uint32_t last = (uint32_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
    uint32_t bs = (uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 | buf[7];
    uint64_t blocks = (uint64_t)last + 1;
    if (last == 0xFFFFFFFFu) {
        /* READ CAPACITY(16): 9E/10, allocation length 12 (facts §8) */
        uint8_t c16[16] = { 0x9E, 0x10 };
        c16[13] = 12;
        if (simple_cmd(d, c16, 16, buf, 12, true, 1, &got) || got < 12) {
            sim_log("disk: READ CAPACITY(16) failed");
            return -1;
        }
        uint64_t l = 0;
        for (int i = 0; i < 8; i++) l = l << 8 | buf[i];
        bs = (uint32_t)buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11];
        blocks = l + 1;
        d->use16 = true;
    }
    if (bs < 512 || (bs & (bs - 1))) {
        sim_log("disk: READ CAPACITY reports block size %u", bs);
        return -1;
    }
    pthread_mutex_lock(&d->lock);
    d->blocks = blocks;
    d->block_size = bs;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static void trim_copy(char *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = 0;
    for (size_t i = 0; i < n; i++) if ((unsigned char)dst[i] < 32 || (unsigned char)dst[i] > 126) dst[i] = '?';
    while (n && dst[n - 1] == ' ') dst[--n] = 0;
}

/* StorPort's enumeration and disk.sys's identity probes: standard INQUIRY, TEST UNIT
 * READY, VPD 00 and the pages it lists that Windows asks for; fills d's identity. */
static int probe_identity(struct sim_disk *d, char *err, size_t errlen)
{
    uint8_t cdb[16], buf[256];
    ULONG got;

    /* StorPort enumeration: standard INQUIRY */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x12; cdb[4] = 96;
    if (simple_cmd(d, cdb, 6, buf, 96, true, OTHER_RETRIES, &got) || got < 36) {
        snprintf(err, errlen, "INQUIRY failed (or returned %u bytes < 36): Windows would not create a disk", got);
        return -1;
    }
    memcpy(d->inquiry, buf, 96);
    d->inquiry_len = got;
    if ((buf[0] & 0x1F) != 0) {
        snprintf(err, errlen, "INQUIRY: peripheral device type %u is not a disk (0)", buf[0] & 0x1F);
        return -1;
    }
    trim_copy(d->vendor, buf + 8, 8);
    trim_copy(d->product, buf + 16, 16);
    trim_copy(d->revision, buf + 32, 4);

    /* class driver start: TEST UNIT READY */
    memset(cdb, 0, sizeof(cdb));
    simple_cmd(d, cdb, 6, NULL, 0, false, OTHER_RETRIES, NULL);

    /* VPD 00, then the pages it lists that Windows asks for */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x12; cdb[1] = 1; cdb[2] = 0x00; cdb[4] = 255;
    if (simple_cmd(d, cdb, 6, buf, 255, true, OTHER_RETRIES, &got) == 0 && got >= 4) {
        unsigned n = buf[3];
        if (n > got - 4) n = got - 4;
        if (n > sizeof(d->vpd_pages)) n = sizeof(d->vpd_pages);
        memcpy(d->vpd_pages, buf + 4, n);
        d->nvpd = n;
    } else {
        sim_log("disk: INQUIRY VPD 00 failed");
    }
    for (unsigned i = 0; i < d->nvpd; i++) {
        uint8_t page = d->vpd_pages[i];
        if (page != 0x80 && page != 0x83 && page != 0xB0 && page != 0xB1 && page != 0xB2) continue;
        memset(cdb, 0, sizeof(cdb));
        cdb[0] = 0x12; cdb[1] = 1; cdb[2] = page; cdb[4] = 255;
        if (simple_cmd(d, cdb, 6, buf, 255, true, OTHER_RETRIES, &got) || got < 4) {
            sim_log("disk: INQUIRY VPD %02x (listed in VPD 00) failed", page);
            continue;
        }
        if (buf[1] != page) sim_log("disk: INQUIRY VPD %02x returned page %02x", page, buf[1]);
        unsigned plen = 4u + ((unsigned)buf[2] << 8 | buf[3]);
        if (plen > got) plen = got;
        if (page == 0x80) trim_copy(d->serial, buf + 4, plen - 4 < sizeof(d->serial) - 1 ? plen - 4 : sizeof(d->serial) - 1);
        if (page == 0x83) { memcpy(d->vpd83, buf, plen); d->vpd83_len = plen; }
        if (page == 0xB0) { d->vpdb0_len = plen < sizeof(d->vpdb0) ? plen : sizeof(d->vpdb0); memcpy(d->vpdb0, buf, d->vpdb0_len); }
    }

    return 0;
}

int sim_disk_arrive(struct sim_disk *d, struct sim_adapter *a, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    d->a = a;
    uint8_t cdb[16], buf[256];
    ULONG got;

    if (probe_identity(d, err, errlen)) return -1;
    if (sim_disk_refresh_capacity(d)) { snprintf(err, errlen, "READ CAPACITY failed"); return -1; }

    /* MODE SENSE(6): all pages (media check), then caching; 192-byte allocation, DBD clear */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x1A; cdb[2] = 0x3F; cdb[4] = 192;
    bool ms_ok = simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) == 0 && got >= 4;
    if (!ms_ok) sim_log("disk: MODE SENSE(6) page 3F failed; falling back to page 08");
    cdb[2] = 0x08;
    if (simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) == 0 && got >= 4) {
        d->write_protect = buf[2] & 0x80;
        d->fua_supported = buf[2] & 0x10;
        unsigned p = 4 + buf[3];
        while (p + 2 < got && p < 192) {
            if ((buf[p] & 0x3F) == 0x08 && p + 2 < got) { d->wce = buf[p + 2] & 0x04; break; }
            p += 2u + buf[p + 1];
        }
    } else {
        sim_log("disk: MODE SENSE(6) caching page failed");
    }
    cdb[2] = 0x1C;   /* informational exceptions: failure is fine */
    simple_cmd(d, cdb, 6, buf, 192, true, 0, NULL);

    /* disk.sys' SMART probe and, with WmiDataProvider (preset TRUE), StorPort's WMI
     * registration (facts §11.11); a failure only means "not supported". */
    struct sim_request *pr = malloc(sizeof(*pr));
    char m[200];
    if (pr && sim_disk_class_step(d, "smart", pr, m, sizeof(m)) == 0) sim_log("disk: %s", m);
    if (pr && a->cfg->WmiDataProvider && sim_disk_class_step(d, "wmi", pr, m, sizeof(m)) == 0) sim_log("disk: %s", m);
    free(pr);

    sim_disk_attach(d, a);
    return 0;
}

/* After BusChangeDetected StorPort re-enumerates the bus and the class driver probes
 * the disk as a new one (facts §11.10): INQUIRY, VPD 00 / 80 / 83, REPORT LUNS, READ
 * CAPACITY. A disk whose identity (INQUIRY names, serial, page-83 designators) differs
 * from the first enumeration's is a different disk to Windows (a new PDO; the old one
 * is removed, the boot disk is lost): IDENTITY finding. */
int sim_disk_rescan(struct sim_disk *d)
{
    struct sim_disk t;
    char err[256] = "";
    memcpy(&t, d, sizeof(t));
    pthread_mutex_init(&t.lock, NULL);
    memset(t.srb_status_count, 0, sizeof(t.srb_status_count));
    memset(t.sense_key_count, 0, sizeof(t.sense_key_count));
    t.errors = t.retries = t.unit_attentions = 0;
    int rc = probe_identity(&t, err, sizeof(err));
    if (rc == 0) {
        uint8_t cdb[16] = { 0xA0 }, buf[64];   /* REPORT LUNS, select report 0, 64 bytes */
        ULONG got;
        cdb[9] = sizeof(buf);
        if (simple_cmd(&t, cdb, 12, buf, sizeof(buf), true, OTHER_RETRIES, &got) == 0 && got >= 16) {
            uint32_t len = (uint32_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
            static const uint8_t lun0[8];
            if (len != 8 || memcmp(buf + 8, lun0, 8))
                sim_finding("IDENTITY", "REPORT LUNS after a bus change lists %u byte(s) of LUNs, not LUN 0 alone", len);
        } else {
            sim_log("disk: REPORT LUNS failed (StorPort then scans LUNs itself)");
        }
        rc = sim_disk_refresh_capacity(&t);
    }
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < 64; i++) d->srb_status_count[i] += t.srb_status_count[i];
    for (unsigned i = 0; i < 16; i++) d->sense_key_count[i] += t.sense_key_count[i];
    d->errors += t.errors; d->retries += t.retries; d->unit_attentions += t.unit_attentions;
    if (rc == 0) { d->blocks = t.blocks; d->block_size = t.block_size; d->use16 = t.use16; }
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_destroy(&t.lock);
    if (rc) { sim_log("disk: re-enumeration failed: %s", err[0] ? err : "READ CAPACITY failed"); return -1; }
    __atomic_fetch_add(&d->rescans, 1, __ATOMIC_RELAXED);
    if (strcmp(t.vendor, d->vendor) || strcmp(t.product, d->product) || strcmp(t.revision, d->revision))
        sim_finding("IDENTITY", "re-enumeration: INQUIRY says '%s' '%s' '%s', first enumeration '%s' '%s' '%s'",
                    t.vendor, t.product, t.revision, d->vendor, d->product, d->revision);
    if (strcmp(t.serial, d->serial))
        sim_finding("IDENTITY", "re-enumeration: serial (VPD 80) '%s', first enumeration '%s': Windows sees another disk",
                    t.serial, d->serial);
    if (t.vpd83_len != d->vpd83_len || memcmp(t.vpd83, d->vpd83, d->vpd83_len))
        sim_finding("IDENTITY", "re-enumeration: the VPD 83 designators changed (%u bytes, first enumeration %u)",
                    t.vpd83_len, d->vpd83_len);
    return 0;
}

void sim_disk_attach(struct sim_disk *d, struct sim_adapter *a)
{
    d->a = a;
    /* transfer limits as the class driver derives them (facts §2 NumberOfPhysicalBreaks
     * note): ScsiPort meaning, breaks = elements - 1, so a buffer of `breaks` pages may
     * start unaligned and use breaks + 1 elements. */
    ULONG mtl = a->cfg->MaximumTransferLength, breaks = a->cfg->NumberOfPhysicalBreaks;
    uint64_t lim = (uint64_t)breaks * PG;
    if (mtl < lim) lim = mtl;
    if (a->opts.dump_mode) lim = mtl;   /* the dump port follows MaximumTransferLength alone (facts §11.8) */
    if (lim > (1u << 20)) lim = 1u << 20;
    lim &= ~(uint64_t)(d->block_size - 1);
    if (lim < d->block_size) lim = d->block_size;
    d->max_transfer = (unsigned)lim;
    d->max_pages = a->opts.dump_mode ? (unsigned)(lim / PG) + 1 : breaks + 1;
}

static void cdb_rw(uint8_t *cdb, unsigned *len, bool write, bool use16, uint64_t lba, uint32_t n, bool fua)
{
    memset(cdb, 0, 16);
    if (use16 || lba + n > 0xFFFFFFFFull || n > 0xFFFF) {
        cdb[0] = write ? 0x8A : 0x88;
        for (int i = 0; i < 8; i++) cdb[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
        for (int i = 0; i < 4; i++) cdb[10 + i] = (uint8_t)(n >> (24 - 8 * i));
        *len = 16;
    } else {
        cdb[0] = write ? 0x2A : 0x28;
        for (int i = 0; i < 4; i++) cdb[2 + i] = (uint8_t)(lba >> (24 - 8 * i));
        cdb[7] = (uint8_t)(n >> 8);
        cdb[8] = (uint8_t)n;
        *len = 10;
    }
    if (fua) cdb[1] |= 0x08;
}

int sim_disk_rw(struct sim_disk *d, bool write, uint64_t lba, uint32_t count, struct sim_buf *buf,
                struct sim_request *last)
{
    return sim_disk_rw_fua(d, write, false, lba, count, buf, last);
}

int sim_disk_rw_fua(struct sim_disk *d, bool write, bool fua, uint64_t lba, uint32_t count, struct sim_buf *buf,
                    struct sim_request *last)
{
    uint32_t per = d->max_transfer / d->block_size;
    if (__atomic_load_n(&d->fua_not_supported, __ATOMIC_ACQUIRE)) fua = false;   /* ADJUST_FUA_FLAG */
    uint64_t off = 0;
    struct sim_request *r = last ? last : malloc(sizeof(*r));
    int rc = 0;
    while (count && rc == 0) {
        uint32_t n = count < per ? count : per;
        uint64_t bytes = (uint64_t)n * d->block_size;
        struct sim_buf *v = buf_view(buf, off, bytes);
        uint8_t cdb[16];
        unsigned cl;
        cdb_rw(cdb, &cl, write, d->use16, lba, n, write && fua);
        sim_request_init(r, cdb, cl, v, (ULONG)bytes, !write, write);
        r->srb_flags |= SRB_FLAGS_ADAPTER_CACHE_ENABLE;
        rc = sim_disk_execute_retry(d, r, RW_RETRIES);
        if (rc == 0 && r->out_transfer_len != bytes) {
            sim_log("disk: %s of %u blocks at LBA %llu transferred %u of %llu bytes", write ? "WRITE" : "READ",
                    n, (unsigned long long)lba, r->out_transfer_len, (unsigned long long)bytes);
            rc = -1;
        }
        buf_view_free(v);
        r->buf = NULL;
        lba += n; count -= n; off += bytes;
    }
    if (!last) free(r);
    bool disable = false;
    pthread_mutex_lock(&d->lock);
    if (d->wce_disable_pending) { d->wce_disable_pending = false; disable = true; }
    pthread_mutex_unlock(&d->lock);
    if (disable) sim_disk_disable_write_cache(d);   /* disk.sys' work item, here inline */
    return rc;
}

static int no_cdb_srb(struct sim_disk *d, UCHAR function);

int sim_disk_flush(struct sim_disk *d)
{
    uint8_t cdb[16] = { 0x35 };
    struct sim_request *r = malloc(sizeof(*r));
    sim_request_init(r, cdb, 10, NULL, 0, false, false);
    r->timeout = DISK_TIMEOUT * 4;            /* SYNCHRONIZE CACHE: 4x (facts §8) */
    int rc = sim_disk_execute_retry(d, r, OTHER_RETRIES);
    /* An adapter that declared CachesData also gets StorPort's SRB_FUNCTION_FLUSH
     * (facts §3: FLUSH and SHUTDOWN reach the miniport only with CachesData). */
    if (rc == 0 && d->a->cfg->CachesData) rc = no_cdb_srb(d, SRB_FUNCTION_FLUSH);
    free(r);
    return rc;
}

int sim_disk_no_cdb_srb(struct sim_disk *d, UCHAR function, struct sim_request *r)
{
    static const uint8_t none[16];
    sim_request_init(r, none, 0, NULL, 0, false, false);
    r->function = function;
    r->sense_len = 0;
    r->srb_flags = SRB_FLAGS_NO_QUEUE_FREEZE;
    r->timeout = DISK_TIMEOUT * 4;
    int rc = sim_disk_execute_retry(d, r, OTHER_RETRIES);
    if (rc) sim_log("disk: SRB function 0x%02x came back with SRB status 0x%02x", function, r->srb_status);
    return rc;
}

static int no_cdb_srb(struct sim_disk *d, UCHAR function)
{
    struct sim_request *r = malloc(sizeof(*r));
    int rc = sim_disk_no_cdb_srb(d, function, r);
    free(r);
    return rc;
}

int sim_disk_shutdown(struct sim_disk *d)
{
    /* disk.sys at shutdown with a caching adapter: SRB_FUNCTION_SHUTDOWN, twice (the
     * class driver's shutdown flush and the port's own) */
    struct sim_adapter *a = d->a;
    if (!a || !a->started || !a->cfg->CachesData || a->crashed || a->opts.dump_mode || a->removal_noticed ||
        a->pnp_removed || a->pause_deadline_ns || a->stopping)
        return 0;   /* only a running, present disk is shut down */
    int rc = no_cdb_srb(d, SRB_FUNCTION_SHUTDOWN);
    if (no_cdb_srb(d, SRB_FUNCTION_SHUTDOWN)) rc = -1;
    return rc;
}

/* The dump port's first request: INQUIRY (storahci's comments, facts §11.8). */
int sim_disk_dump_open(struct sim_disk *d)
{
    uint8_t cdb[16] = { 0x12 }, buf[36];
    ULONG got;
    cdb[4] = sizeof(buf);
    int rc = simple_cmd(d, cdb, 6, buf, sizeof(buf), true, OTHER_RETRIES, &got);
    if (rc || got < 36 || (buf[0] & 0x1F) != 0) { sim_log("disk: the dump port's INQUIRY failed"); return -1; }
    sim_log("disk: dump port: INQUIRY first");
    return 0;
}

/* The dump port's last requests: SYNCHRONIZE CACHE, then SRB_FUNCTION_SHUTDOWN
 * (whatever CachesData says; facts §11.8). */
int sim_disk_dump_close(struct sim_disk *d)
{
    uint8_t cdb[16] = { 0x35 };
    struct sim_request *r = malloc(sizeof(*r));
    sim_request_init(r, cdb, 10, NULL, 0, false, false);
    r->timeout = DISK_TIMEOUT * 4;
    int rc = sim_disk_execute_retry(d, r, OTHER_RETRIES);
    if (rc || SRB_STATUS(r->srb_status) != SRB_STATUS_SUCCESS) { sim_log("disk: the dump port's SYNCHRONIZE CACHE failed"); rc = -1; }
    if (sim_disk_no_cdb_srb(d, SRB_FUNCTION_SHUTDOWN, r) || SRB_STATUS(r->srb_status) != SRB_STATUS_SUCCESS) {
        sim_log("disk: the dump port's SRB_FUNCTION_SHUTDOWN came back with 0x%02x", r->srb_status);
        rc = -1;
    }
    free(r);
    if (rc == 0) sim_log("disk: dump port: SYNCHRONIZE CACHE, then SRB_FUNCTION_SHUTDOWN last");
    return rc;
}

int sim_disk_start_stop(struct sim_disk *d, bool start)
{
    /* classpnp around a power transition: START STOP UNIT with START clear (stop)
     * before D3, set (start) after D0 (SBC-3 5.25) */
    uint8_t cdb[16] = { 0x1B };
    cdb[4] = start ? 0x01 : 0x00;
    struct sim_request *r = malloc(sizeof(*r));
    sim_request_init(r, cdb, 6, NULL, 0, false, false);
    r->srb_flags |= SRB_FLAGS_NO_QUEUE_FREEZE;
    int rc = sim_disk_execute_retry(d, r, OTHER_RETRIES);
    free(r);
    return rc;
}

/* ---- issue 11 item 12: class traffic beyond reads, writes and flushes ---------------- */

/* MODE SENSE(6) caching page (current values); 0 and the 20-byte page in page[]. */
static int caching_page(struct sim_disk *d, uint8_t *page, uint8_t *dsp)
{
    uint8_t cdb[16] = { 0x1A, 0, 0x08, 0, 192 }, buf[192];
    ULONG got;
    if (simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) || got < 4) return -1;
    unsigned p = 4u + buf[3];
    if (dsp) *dsp = buf[2];
    while (p + 2 < got) {
        if ((buf[p] & 0x3F) == 0x08 && p + 20 <= got) { memcpy(page, buf + p, 20); return 0; }
        p += 2u + buf[p + 1];
    }
    return -1;
}

int sim_disk_disable_write_cache(struct sim_disk *d)
{
    /* disk.sys DisableWriteCache -> DiskGetCacheInformation (MODE SENSE 08) ->
     * DiskSetCacheInformation (MODE SELECT(6), PF, the caching page with WCE clear). */
    uint8_t page[20], list[24], cdb[16] = { 0x15, 0x10 };
    __atomic_fetch_add(&d->wce_disable_attempts, 1, __ATOMIC_RELAXED);
    if (caching_page(d, page, NULL)) { sim_log("disk: DisableWriteCache: caching page unreadable"); return -1; }
    if (page[2] & 0x04) {
        memset(list, 0, 4);                   /* header: no block descriptor */
        memcpy(list + 4, page, 20);
        list[4] &= 0x3F;                      /* PS is reserved in MODE SELECT */
        list[6] &= (uint8_t)~0x04;            /* WCE off */
        cdb[4] = sizeof(list);
        if (simple_cmd(d, cdb, 6, list, sizeof(list), false, OTHER_RETRIES, NULL))
            sim_log("disk: DisableWriteCache: MODE SELECT failed (the write cache stays on)");
    }
    uint8_t dsp = 0;
    if (caching_page(d, page, &dsp)) return -1;
    pthread_mutex_lock(&d->lock);
    d->wce = (page[2] & 0x04) != 0;
    pthread_mutex_unlock(&d->lock);
    sim_log("disk: DisableWriteCache: write cache now %s", d->wce ? "ON" : "off");
    return d->wce ? -1 : 0;
}

/* One SRB without retries (the probes: disk.sys judges the first answer). */
static int once(struct sim_disk *d, struct sim_request *r)
{
    int rc = sim_port_execute(d->a, r);
    if (rc == 0) count_completion(d, r);
    return rc;
}

int sim_disk_class_step(struct sim_disk *d, const char *name, struct sim_request *r, char *msg, size_t msglen)
{
    static const uint8_t none[16];
    msg[0] = 0;
    if (!strcmp(name, "smart")) {
        /* disk.sys DiskGetIdentifyInfo (diskwmi.c, the SMART probe at start):
         * IOCTL_SCSI_MINIPORT through SRB_FUNCTION_IO_CONTROL, SRB_IO_CONTROL signature
         * "SCSIDISK", ControlCode IOCTL_SCSI_MINIPORT_IDENTIFY (0x1B0501), then
         * SENDCMDINPARAMS {cBufferSize 512, bCommandReg ID_CMD 0xEC, bDriveNumber};
         * buffer: header + max(SENDCMDINPARAMS 33, SENDCMDOUTPARAMS 16 - 1 + 512). */
        enum { HDR = 28, BODY = 16 - 1 + 512, LEN = HDR + BODY };
        uint8_t b[LEN], after[LEN];
        memset(b, 0, sizeof(b));
        put_le32(b, HDR);                               /* HeaderLength */
        memcpy(b + 4, "SCSIDISK", 8);
        put_le32(b + 12, 2 * DISK_TIMEOUT);             /* Timeout */
        put_le32(b + 16, 0x1B0501);                     /* ControlCode */
        put_le32(b + 24, BODY);                         /* Length */
        put_le32(b + HDR, 512);                         /* cBufferSize */
        b[HDR + 4 + 6] = 0xEC;                          /* irDriveRegs.bCommandReg = ID_CMD */
        b[HDR + 12] = 0;                                /* bDriveNumber = TargetId */
        struct sim_buf *buf = sim_buf_alloc(&d->a->mem, LEN, false, 0);
        if (!buf) return -1;
        sim_buf_write(d->a->dev, buf, 0, b, LEN);
        sim_request_init(r, none, 0, buf, LEN, true, true);
        r->function = SRB_FUNCTION_IO_CONTROL;
        r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
        r->queue_action = 0;
        r->sense_len = 0;
        int rc = once(d, r);
        sim_buf_read(d->a->dev, buf, 0, after, LEN);
        bool touched = memcmp(b, after, LEN) != 0;
        snprintf(msg, msglen, "SMART probe (SCSIDISK, IOCTL_SCSI_MINIPORT_IDENTIFY): SRB status 0x%02x, buffer %s",
                 r->srb_status, touched ? "CHANGED" : "untouched");
        if (touched && SRB_STATUS(r->srb_status) != SRB_STATUS_SUCCESS)
            sim_finding("SRB", "SMART probe failed (SRB status 0x%02x) but the miniport wrote into its buffer", r->srb_status);
        r->buf = NULL;
        if (!r->buffer_held) sim_buf_free(&d->a->mem, buf);
        return rc;
    }
    if (!strcmp(name, "wmi")) {
        /* StorPort's WMI registration for a miniport that left WmiDataProvider TRUE:
         * SCSI_WMI_REQUEST_BLOCK, WMISubFunction IRP_MN_REGINFO (8, over ScsiStatus),
         * WMIFlags SRB_WMI_FLAGS_ADAPTER_REQUEST (over QueueAction), DataPath NULL. */
        struct sim_buf *buf = sim_buf_alloc(&d->a->mem, 4096, false, 0);
        if (!buf) return -1;
        uint8_t z[4096] = { 0 };
        sim_buf_write(d->a->dev, buf, 0, z, sizeof(z));
        sim_request_init(r, none, 0, buf, 4096, true, false);
        r->function = SRB_FUNCTION_WMI;
        r->pnp_action = 8;                              /* IRP_MN_REGINFO */
        r->pnp_flags = SRB_WMI_FLAGS_ADAPTER_REQUEST;
        r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_NO_QUEUE_FREEZE;
        r->sense_len = 0;
        int rc = once(d, r);
        snprintf(msg, msglen, "WMI SRB (IRP_MN_REGINFO, WmiDataProvider %s): SRB status 0x%02x, %u bytes",
                 d->a->cfg->WmiDataProvider ? "TRUE" : "FALSE", r->srb_status, r->out_transfer_len);
        r->buf = NULL;
        if (!r->buffer_held) sim_buf_free(&d->a->mem, buf);
        return rc;
    }
    if (!strcmp(name, "reset-bus")) {
        /* classpnp ResetBus (a disk that stays BUSY): SRB_FUNCTION_RESET_BUS through
         * IRP_MJ_SCSI, which StorPort hands to HwStartIo (viostor b54b88d5). */
        sim_request_init(r, none, 0, NULL, 0, false, false);
        r->function = SRB_FUNCTION_RESET_BUS;
        r->srb_flags = 0;
        r->sense_len = 0;
        int rc = once(d, r);
        snprintf(msg, msglen, "SRB_FUNCTION_RESET_BUS: SRB status 0x%02x", r->srb_status);
        return rc;
    }
    if (!strcmp(name, "stop-immed") || !strcmp(name, "start-immed") || !strcmp(name, "immed-invalid")) {
        /* classpnp ClassSendStartUnit / power: START STOP UNIT with IMMED and
         * SRB_FLAGS_DISABLE_AUTOSENSE. A sense buffer is still given (pessimistic): the
         * port checks it is left alone. immed-invalid: a 5-byte CDB (refused). */
        uint8_t cdb[16] = { 0x1B, 0x01, 0, 0, (uint8_t)(!strcmp(name, "start-immed") ? 0x01 : 0x00) };
        sim_request_init(r, cdb, !strcmp(name, "immed-invalid") ? 5 : 6, NULL, 0, false, false);
        r->srb_flags = SRB_FLAGS_NO_DATA_TRANSFER | SRB_FLAGS_DISABLE_AUTOSENSE | SRB_FLAGS_DISABLE_SYNCH_TRANSFER |
                       SRB_FLAGS_NO_QUEUE_FREEZE;
        int rc = once(d, r);
        snprintf(msg, msglen, "START STOP UNIT (IMMED, autosense disabled): SRB status 0x%02x, SCSI status 0x%02x",
                 r->srb_status, r->scsi_status);
        return rc;
    }
    if (!strcmp(name, "disable-write-cache")) {
        int rc = sim_disk_disable_write_cache(d);
        memset(r, 0, sizeof(*r));
        r->srb_status = rc == 0 ? SRB_STATUS_SUCCESS : SRB_STATUS_ERROR;
        snprintf(msg, msglen, "DisableWriteCache: write cache %s", d->wce ? "still ON" : "off");
        return 0;
    }
    snprintf(msg, msglen, "unknown class step '%s' (smart, wmi, reset-bus, stop-immed, start-immed, "
                          "immed-invalid, disable-write-cache)", name);
    return -1;
}
