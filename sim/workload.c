/*
 * The verified workload of `aerovblk-sim run`: qd submitter threads (one SRB each in
 * flight, like qd outstanding IRPs) doing read/write/random I/O through the disk-class
 * layer. Every 512-byte sector written carries a pattern derived from (sector, write
 * generation, seed); reads are checked against the generation last written (or the
 * image file for never-written chunks); at the end (after the flush) every chunk this
 * run wrote is read back through the driver and checked again (the read-back pass),
 * and checked in the image file itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "workload.h"

#define GEN_UNKNOWN 0xFFFFFFFFu

struct wl {
    struct sim_disk *d;
    const struct sim_workload_opts *o;
    struct sim_workload_result *res;
    uint32_t *gen;            /* per chunk */
    uint8_t *busy;            /* per chunk: I/O in flight */
    uint8_t *written;         /* per chunk: written by this run (read-back pass) */
    uint64_t rb_next;         /* read-back pass: next chunk to look at */
    uint64_t nchunks;
    uint64_t next_seq;
    uint64_t issued;
    uint64_t deadline_ns;
    int image_fd;
    pthread_mutex_t lock;
    unsigned mismatch_reports;
};

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void sim_pattern_fill(uint8_t *p, uint64_t sector, uint32_t gen, uint64_t seed)
{
    uint64_t w[64];
    uint64_t s = mix(sector ^ mix(gen ^ mix(seed)));
    for (int i = 0; i < 64; i++) w[i] = mix(s + (uint64_t)i);
    w[0] = 0x4B425641ull | (uint64_t)gen << 32;   /* "AVBK", generation */
    w[1] = sector;
    w[2] = seed;
    memcpy(p, w, 512);
}

/* 0 = matches; else describes what was found. */
static int pattern_check(const uint8_t *p, uint64_t sector, uint32_t gen, uint64_t seed, char *why, size_t wl)
{
    uint8_t exp[512];
    sim_pattern_fill(exp, sector, gen, seed);
    if (!memcmp(exp, p, 512)) return 0;
    uint64_t w[3];
    memcpy(w, p, sizeof(w));
    if ((w[0] & 0xFFFFFFFFull) == 0x4B425641ull)
        snprintf(why, wl, "found pattern of sector %llu generation %u seed %llu", (unsigned long long)w[1],
                 (unsigned)(w[0] >> 32), (unsigned long long)w[2]);
    else
        snprintf(why, wl, "found non-pattern data (first bytes %02x %02x %02x %02x)", p[0], p[1], p[2], p[3]);
    return 1;
}

static void report_mismatch(struct wl *w, const char *where, uint64_t sector, uint32_t gen, const char *why)
{
    pthread_mutex_lock(&w->lock);
    if (w->mismatch_reports++ < 10)
        fprintf(stderr, "MISMATCH (%s): sector %llu expected generation %u: %s\n", where,
                (unsigned long long)sector, gen, why);
    pthread_mutex_unlock(&w->lock);
}

/* Compare a chunk's data (buf) with what it must hold. Returns sectors mismatching. */
static uint64_t verify_chunk(struct wl *w, uint64_t chunk, uint32_t gen, const uint8_t *data, const char *where)
{
    uint64_t bs = w->o->bs, mism = 0;
    uint64_t byte0 = w->o->offset + chunk * bs;
    if (gen == GEN_UNKNOWN) return 0;
    if (gen == 0) {
        if (w->image_fd < 0) return 0;
        uint8_t *f = malloc(bs);
        ssize_t n = pread(w->image_fd, f, bs, (off_t)byte0);
        if (n < 0) n = 0;
        if ((uint64_t)n < bs) memset(f + n, 0, bs - (uint64_t)n);
        if (memcmp(f, data, bs)) {
            for (uint64_t s = 0; s < bs / 512; s++)
                if (memcmp(f + s * 512, data + s * 512, 512)) {
                    if (!mism) report_mismatch(w, where, byte0 / 512 + s, 0, "differs from the image file (never written by this run)");
                    mism++;
                }
        }
        free(f);
        return mism;
    }
    for (uint64_t s = 0; s < bs / 512; s++) {
        char why[160];
        if (pattern_check(data + s * 512, byte0 / 512 + s, gen, w->o->seed, why, sizeof(why))) {
            if (!mism) report_mismatch(w, where, byte0 / 512 + s, gen, why);
            mism++;
        }
    }
    return mism;
}

/* tolerate_removal: a request the miniport failed because the device is gone (the
 * port did not give up on it: a hang stays an error). */
static bool removed_ok(const struct wl *w, const struct sim_request *r)
{
    return w->o->tolerate_removal && !r->buffer_held && SRB_STATUS(r->srb_status) == SRB_STATUS_NO_DEVICE;
}

/* SYNCHRONIZE CACHE at the end of the run (classpnp: 4x the timeout, 4 retries). */
static int flush_cache(struct wl *w)
{
    uint8_t cdb[16] = { 0x35 };
    struct sim_request *r = malloc(sizeof(*r));
    sim_request_init(r, cdb, 10, NULL, 0, false, false);
    r->timeout = 40;
    int rc = sim_disk_execute_retry(w->d, r, 4);
    /* a caching adapter also gets the port's SRB_FUNCTION_FLUSH (see sim_disk_flush) */
    if (rc == 0 && w->d->a->cfg->CachesData) rc = sim_disk_no_cdb_srb(w->d, SRB_FUNCTION_FLUSH, r);
    if (rc && removed_ok(w, r)) {
        w->res->no_device++;
        rc = 0;
    }
    free(r);
    return rc;
}

static bool take_chunk(struct wl *w, uint64_t c)
{
    return __atomic_exchange_n(&w->busy[c], 1, __ATOMIC_ACQ_REL) == 0;
}

static void *worker(void *arg)
{
    struct wl *w = ((void **)arg)[0];
    unsigned id = (unsigned)(uintptr_t)((void **)arg)[1];
    const struct sim_workload_opts *o = w->o;
    struct sim_disk *d = w->d;
    uint64_t rng = mix(o->seed ^ (0x1000ull + id));
    uint8_t *tmp = malloc(o->bs);
    struct sim_request *r = malloc(sizeof(*r));
    uint32_t blocks = (uint32_t)(o->bs / d->block_size);
    uint32_t seen_capacity_gen = __atomic_load_n(&d->capacity_generation, __ATOMIC_ACQUIRE);

    for (;;) {
        if (o->ios) {
            if (__atomic_fetch_add(&w->issued, 1, __ATOMIC_RELAXED) >= o->ios) break;
        } else if (sim_now_ns() >= w->deadline_ns) {
            break;
        }
        if (sim_findings_count() && o->stop_on_finding) break;
        bool random = o->mode == WL_RANDREAD || o->mode == WL_RANDWRITE || o->mode == WL_RANDRW;
        bool write = o->mode == WL_WRITE || o->mode == WL_RANDWRITE ||
                     (o->mode == WL_RANDRW && (sim_rand_next(&rng) % 100) < o->write_pct);
        uint64_t c;
        unsigned tries = 0;
        for (;;) {
            c = random ? sim_rand_next(&rng) % w->nchunks
                       : __atomic_fetch_add(&w->next_seq, 1, __ATOMIC_RELAXED) % w->nchunks;
            if (take_chunk(w, c)) break;
            if (++tries > 64) { sim_sleep_us(100); tries = 0; }
        }
        uint64_t byte0 = o->offset + c * o->bs;
        uint64_t lba = byte0 / d->block_size;
        /* sometimes start the buffer unaligned within its first page (AlignmentMask
         * permitting), as user buffers are */
        unsigned align = d->a->cfg->AlignmentMask + 1;
        unsigned start = 0;
        if (sim_rand_next(&rng) % 4 == 0) {
            /* a miniport that accepts less than sector alignment gets it: user buffers
             * can start at any address (odd ones too when AlignmentMask is 0) */
            if (align < 512) start = (unsigned)(sim_rand_next(&rng) % (4096 / align)) * align;
            else start = ((unsigned)((sim_rand_next(&rng) % 8) * 512) & 4095) / align * align;
        }
        struct sim_buf *b = sim_buf_alloc(&d->a->mem, o->bs, true, start);
        if (!b) { sim_sleep_us(1000); __atomic_store_n(&w->busy[c], 0, __ATOMIC_RELEASE); continue; }
        uint64_t t0 = sim_now_ns();
        if (write) {
            uint32_t g = w->gen[c] + 1;
            if (g == GEN_UNKNOWN || g == 0) g = 1;
            for (uint64_t s = 0; s < o->bs / 512; s++) sim_pattern_fill(tmp + s * 512, byte0 / 512 + s, g, o->seed);
            sim_buf_write(d->a->dev, b, 0, tmp, o->bs);
            /* disk.sys sets FUA on write-through writes when the write cache is on and FUA
             * was not found unsupported (ADJUST_FUA_FLAG, 8.1 classpnp.h: DPOFUA is not
             * consulted); CLASS_SPECIAL_FUA_NOT_SUPPORTED is applied in sim_disk_rw_fua */
            int fua_pct = o->fua_pct > 0 ? o->fua_pct : o->fua_pct == 0 && d->wce ? 10 : 0;
            bool fua = fua_pct && (int)(sim_rand_next(&rng) % 100) < fua_pct;
            if (fua) __atomic_fetch_add(&w->res->fua_writes, 1, __ATOMIC_RELAXED);
            int rc = sim_disk_rw_fua(d, true, fua, lba, blocks, b, r);
            w->gen[c] = rc == 0 ? g : GEN_UNKNOWN;
            if (rc == 0) w->written[c] = 1;
            if (rc == 0) {
                __atomic_fetch_add(&w->res->writes, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&w->res->bytes_written, o->bs, __ATOMIC_RELAXED);
            } else if (removed_ok(w, r)) {
                __atomic_fetch_add(&w->res->no_device, 1, __ATOMIC_RELAXED);
            } else {
                __atomic_fetch_add(&w->res->errors, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "ERROR: WRITE LBA %llu: SRB status 0x%02x, SCSI status 0x%02x, sense %x/%02x/%02x\n",
                         (unsigned long long)lba, r->srb_status, r->scsi_status, r->sense[2] & 15, r->sense[12], r->sense[13]);
            }
        } else {
            memset(tmp, 0, o->bs);
            sim_buf_write(d->a->dev, b, 0, tmp, o->bs);   /* stale data must not pass as a read */
            int rc = sim_disk_rw(d, false, lba, blocks, b, r);
            if (rc == 0) {
                sim_buf_read(d->a->dev, b, 0, tmp, o->bs);
                uint64_t m = verify_chunk(w, c, w->gen[c], tmp, "read-back");
                __atomic_fetch_add(&w->res->mismatches, m, __ATOMIC_RELAXED);
                __atomic_fetch_add(&w->res->reads, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&w->res->bytes_read, o->bs, __ATOMIC_RELAXED);
            } else if (removed_ok(w, r)) {
                __atomic_fetch_add(&w->res->no_device, 1, __ATOMIC_RELAXED);
            } else {
                __atomic_fetch_add(&w->res->errors, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "ERROR: READ LBA %llu: SRB status 0x%02x, SCSI status 0x%02x, sense %x/%02x/%02x\n",
                        (unsigned long long)lba, r->srb_status, r->scsi_status, r->sense[2] & 15, r->sense[12], r->sense[13]);
            }
        }
        uint64_t lat = sim_now_ns() - t0;
        pthread_mutex_lock(&w->lock);
        if (lat > w->res->max_latency_ns) w->res->max_latency_ns = lat;
        w->res->total_latency_ns += lat;
        pthread_mutex_unlock(&w->lock);
        if (!r->buffer_held) sim_buf_free(&d->a->mem, b);
        else r->buffer_held = false;
        __atomic_store_n(&w->busy[c], 0, __ATOMIC_RELEASE);
        /* the class layer reacts to BusChangeDetected by re-reading the capacity */
        uint32_t cg = __atomic_load_n(&d->capacity_generation, __ATOMIC_ACQUIRE);
        if (__atomic_exchange_n(&d->a->bus_change_pending, 0, __ATOMIC_ACQ_REL)) {
            seen_capacity_gen = cg;   /* BusChangeDetected: StorPort re-enumerates (facts §11.10) */
            sim_disk_rescan(d);
        } else if (cg != seen_capacity_gen) {
            seen_capacity_gen = cg;   /* after 06/2A/09: the class driver re-reads the capacity */
            sim_disk_refresh_capacity(d);
        }
    }
    free(tmp);
    free(r);
    return NULL;
}

/* The read-back pass: after the flush every chunk this run wrote is read through the
 * driver again and checked against the pattern of its last generation, so corruption
 * is caught by reads alone (without the image-file comparison). */
static void *readback_worker(void *arg)
{
    struct wl *w = arg;
    const struct sim_workload_opts *o = w->o;
    struct sim_disk *d = w->d;
    uint8_t *tmp = malloc(o->bs);
    struct sim_request *r = malloc(sizeof(*r));
    uint32_t blocks = (uint32_t)(o->bs / d->block_size);
    for (;;) {
        uint64_t c = __atomic_fetch_add(&w->rb_next, 1, __ATOMIC_RELAXED);
        if (c >= w->nchunks) break;
        uint32_t g = w->gen[c];
        if (!w->written[c] || g == 0 || g == GEN_UNKNOWN) continue;
        if (sim_findings_count() && o->stop_on_finding) break;
        uint64_t byte0 = o->offset + c * o->bs;
        uint64_t lba = byte0 / d->block_size;
        struct sim_buf *b;
        while (!(b = sim_buf_alloc(&d->a->mem, o->bs, true, 0))) sim_sleep_us(1000);
        memset(tmp, 0, o->bs);
        sim_buf_write(d->a->dev, b, 0, tmp, o->bs);
        int rc = sim_disk_rw(d, false, lba, blocks, b, r);
        if (rc == 0) {
            sim_buf_read(d->a->dev, b, 0, tmp, o->bs);
            uint64_t m = verify_chunk(w, c, g, tmp, "read-back pass");
            __atomic_fetch_add(&w->res->readback_mismatches, m, __ATOMIC_RELAXED);
            __atomic_fetch_add(&w->res->mismatches, m, __ATOMIC_RELAXED);
            __atomic_fetch_add(&w->res->readback_reads, 1, __ATOMIC_RELAXED);
        } else if (removed_ok(w, r)) {
            __atomic_fetch_add(&w->res->no_device, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_add(&w->res->errors, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "ERROR: READ (read-back pass) LBA %llu: SRB status 0x%02x, SCSI status 0x%02x, sense %x/%02x/%02x\n",
                    (unsigned long long)lba, r->srb_status, r->scsi_status, r->sense[2] & 15, r->sense[12], r->sense[13]);
        }
        if (!r->buffer_held) sim_buf_free(&d->a->mem, b);
        else r->buffer_held = false;
    }
    free(tmp);
    free(r);
    return NULL;
}

static uint64_t ctr_sum(const uint64_t *v)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < SIM_MMIO_KINDS; i++) t += v[i];
    return t;
}

static void readback_pass(struct wl *w, unsigned qd)
{
    struct sim_counters c0 = w->d->a->ctr;
    pthread_t *th = calloc(qd, sizeof(pthread_t));
    w->rb_next = 0;
    for (unsigned i = 0; i < qd; i++) pthread_create(&th[i], NULL, readback_worker, w);
    for (unsigned i = 0; i < qd; i++) pthread_join(th[i], NULL);
    free(th);
    struct sim_counters c1 = w->d->a->ctr;
    struct sim_workload_result *res = w->res;
    res->rb_mmio_reads = ctr_sum(c1.mmio_reads) - ctr_sum(c0.mmio_reads);
    res->rb_mmio_writes = ctr_sum(c1.mmio_writes) - ctr_sum(c0.mmio_writes);
    res->rb_doorbells = c1.doorbells - c0.doorbells;
    res->rb_interrupts = c1.interrupts - c0.interrupts;
    res->rb_dpcs = c1.dpcs - c0.dpcs;
    res->rb_busy = c1.srbs_busy - c0.srbs_busy;
}

/* Test-only: flips one byte (inside the first sector's pattern bytes) of each of the
 * first n chunks this run wrote, in the image file, behind the driver's back. */
static uint64_t corrupt_image(struct wl *w, const char *image_path, unsigned n)
{
    uint64_t done = 0;
    int fd = image_path ? open(image_path, O_RDWR) : -1;
    if (fd < 0) {
        fprintf(stderr, "run: --corrupt-image: cannot open %s: %s\n", image_path ? image_path : "(no image)", strerror(errno));
        return 0;
    }
    for (uint64_t c = 0; c < w->nchunks && done < n; c++) {
        if (!w->written[c] || w->gen[c] == 0 || w->gen[c] == GEN_UNKNOWN) continue;
        off_t at = (off_t)(w->o->offset + c * w->o->bs + 300);
        uint8_t b;
        if (pread(fd, &b, 1, at) != 1) continue;
        b ^= 0x5A;
        if (pwrite(fd, &b, 1, at) != 1) continue;
        fprintf(stderr, "run: --corrupt-image: flipped the byte at image offset %llu (chunk %llu)\n",
                (unsigned long long)at, (unsigned long long)c);
        done++;
    }
    fsync(fd);
    close(fd);
    return done;
}

int sim_workload_run(struct sim_disk *d, const char *image_path, const struct sim_workload_opts *o,
                     struct sim_workload_result *res)
{
    memset(res, 0, sizeof(*res));
    uint64_t disk_bytes = d->blocks * d->block_size;
    if (o->bs == 0 || o->bs % d->block_size || o->bs % 512) {
        fprintf(stderr, "run: --bs %u must be a multiple of the block size %u\n", o->bs, d->block_size);
        return -1;
    }
    if (o->offset % o->bs || o->offset >= disk_bytes) {
        fprintf(stderr, "run: --offset must be a multiple of --bs inside the disk\n");
        return -1;
    }
    uint64_t span = o->span ? o->span : disk_bytes - o->offset;
    if (span > disk_bytes - o->offset) span = disk_bytes - o->offset;
    struct wl w;
    memset(&w, 0, sizeof(w));
    w.d = d; w.o = o; w.res = res;
    w.nchunks = span / o->bs;
    if (!w.nchunks) { fprintf(stderr, "run: span smaller than one block of --bs\n"); return -1; }
    if (w.nchunks > (1ull << 28)) { fprintf(stderr, "run: span too large (use --span)\n"); return -1; }
    w.gen = calloc(w.nchunks, sizeof(uint32_t));
    if (o->verify_gen)
        for (uint64_t c = 0; c < w.nchunks; c++) w.gen[c] = o->verify_gen;
    w.busy = calloc(w.nchunks, 1);
    w.written = calloc(w.nchunks, 1);
    pthread_mutex_init(&w.lock, NULL);
    w.image_fd = image_path ? open(image_path, O_RDONLY) : -1;
    unsigned qd = o->qd ? o->qd : 1;
    w.deadline_ns = sim_now_ns() + (uint64_t)(o->seconds ? o->seconds : 1) * 1000000000ull;
    pthread_t *th = calloc(qd, sizeof(pthread_t));
    void *(*args)[2] = calloc(qd, sizeof(*args));
    uint64_t t0 = sim_now_ns();
    for (unsigned i = 0; i < qd; i++) {
        args[i][0] = &w;
        args[i][1] = (void *)(uintptr_t)i;
        pthread_create(&th[i], NULL, worker, args[i]);
    }
    for (unsigned i = 0; i < qd; i++) pthread_join(th[i], NULL);
    res->elapsed_ns = sim_now_ns() - t0;
    res->ios = res->reads + res->writes;

    /* flush; then (test-only) corruption behind the driver's back; then every chunk this
     * run wrote is read back through the driver and must be in the image file */
    if (res->writes) {
        if (flush_cache(&w)) { fprintf(stderr, "ERROR: SYNCHRONIZE CACHE failed\n"); res->errors++; }
        if (o->corrupt_image) res->corrupted_chunks = corrupt_image(&w, image_path, o->corrupt_image);
        if (!o->no_readback && !o->tolerate_removal) readback_pass(&w, qd);
        if (w.image_fd >= 0 && !o->no_image_check) {
            uint8_t *f = malloc(o->bs);
            for (uint64_t c = 0; c < w.nchunks; c++) {
                if (!w.gen[c] || w.gen[c] == GEN_UNKNOWN) continue;
                ssize_t n = pread(w.image_fd, f, o->bs, (off_t)(o->offset + c * o->bs));
                if (n != (ssize_t)o->bs) memset(f, 0, o->bs);
                res->image_chunks_checked++;
                res->image_mismatches += verify_chunk(&w, c, w.gen[c], f, "image file");
            }
            free(f);
        }
    }
    if (w.image_fd >= 0) close(w.image_fd);
    free(th);
    free(args);
    free(w.gen);
    free(w.busy);
    free(w.written);
    pthread_mutex_destroy(&w.lock);
    return 0;
}
