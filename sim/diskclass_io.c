/*
 * Disk-class layer: the I/O disk.sys and classpnp send for the workload and the session
 * (workload.c, main_session.c): READ/WRITE(10/16) split at the transfer limit, with FUA
 * when asked (and dropped once the disk refused it), SYNCHRONIZE CACHE and StorPort's
 * SRB_FUNCTION_FLUSH, SRB_FUNCTION_SHUTDOWN, the dump port's first and last requests, and
 * START STOP UNIT around power transitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskclass_int.h"

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
        struct sim_buf *v = diskclass_buf_view(buf, off, bytes);
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
        diskclass_buf_view_free(v);
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
    int rc = diskclass_simple_cmd(d, cdb, 6, buf, sizeof(buf), true, OTHER_RETRIES, &got);
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
