/*
 * The "ideal driver" baseline of `make bench` (issue 16 item 1): `aerovblk-sim
 * --ideal-driver run` loads no miniport. The simulator itself brings the device up as
 * the S4 firmware stand-in does (sim/s4.c: reset, VERSION_1 as the only feature — no
 * EVENT_IDX, no INDIRECT_DESC, no FLUSH, so 512-byte sectors and write-through — one
 * queue, no MSI-X vector) and runs the same workload as `run` (same --rw, --bs, --qd,
 * --ios/--seconds, --seed, --offset/--span, --write-pct) straight on the split
 * virtqueue (spec 2.7): one thread, qd requests of three fixed descriptors each
 * (header, data, status) kept in flight, the used ring polled, one doorbell per batch
 * of refills (skipped while the device sets VIRTQ_USED_F_NO_NOTIFY). What remains per
 * request is the least a driver can do: fill a header, publish one avail entry, ring,
 * reap — plus the workload's own data verification, identical to `run`'s: a read of a
 * chunk this run wrote is checked against the sector pattern (sim_pattern_fill), of
 * any other chunk against the image file; every chunk written is checked in the image
 * file at the end. No StorPort, class layer, SRBs, interrupts or DPCs: the wall-time
 * difference to `run` is what that whole simulated path costs.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "workload.h"

#define PG 4096u
#define GEN_UNKNOWN 0xFFFFFFFFu

struct vdesc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct slot {
    uint64_t chunk, t0, hdr_gpa, data_gpa;
    bool write;
};

static uint64_t pages_of(uint64_t bytes) { return (bytes + PG - 1) / PG; }

/* 0 = the chunk holds what it must (generation gen of the pattern, or the image file's
 * bytes when gen is 0). */
static uint64_t check_chunk(const uint8_t *data, uint64_t byte0, unsigned bs, uint32_t gen, uint64_t seed,
                            int image_fd, uint8_t *tmp)
{
    if (gen == GEN_UNKNOWN) return 0;
    if (gen == 0) {
        ssize_t n = image_fd >= 0 ? pread(image_fd, tmp, bs, (off_t)byte0) : -1;
        if (n < 0) n = 0;
        if ((unsigned)n < bs) memset(tmp + n, 0, bs - (unsigned)n);
    } else {
        for (unsigned s = 0; s < bs / 512; s++) sim_pattern_fill(tmp + s * 512, byte0 / 512 + s, gen, seed);
    }
    uint64_t mism = 0;
    for (unsigned s = 0; s < bs / 512; s++) mism += memcmp(tmp + s * 512, data + s * 512, 512) != 0;
    return mism;
}

static int ideal_body(sim_dev *d, const char *image_path, const struct sim_workload_opts *o, struct sim_ideal_result *r,
                      const struct sim_pci *p, struct sim_mem *mem)
{
    char err[256];
    unsigned qd = o->qd ? o->qd : 1, bs = o->bs, qsz;
    if (sim_fw_queue_open(d, p, 1024, &qsz, err, sizeof(err))) { fprintf(stderr, "ideal: %s\n", err); return 1; }
    if (3u * qd > qsz) { fprintf(stderr, "ideal: --qd %u needs %u descriptors, the queue has %u\n", qd, 3 * qd, qsz); return 1; }
    uint64_t devcfg = sim_fw_region_gpa(p, 4);
    uint64_t disk_bytes = ((uint64_t)d->ops->mmio_read(d, devcfg, 4) | (uint64_t)d->ops->mmio_read(d, devcfg + 4, 4) << 32) * 512;
    if (!bs || bs % 512 || o->offset % bs || o->offset >= disk_bytes) {
        fprintf(stderr, "ideal: --bs must be a multiple of 512 and --offset of --bs inside the disk\n");
        return 1;
    }
    uint64_t span = o->span && o->span <= disk_bytes - o->offset ? o->span : disk_bytes - o->offset;
    uint64_t nchunks = span / bs;
    if (nchunks < qd || nchunks > (1ull << 28)) { fprintf(stderr, "ideal: the span must hold between --qd and 2^28 chunks of --bs\n"); return 1; }

    /* split virtqueue layout (spec 2.7): descriptors, avail (+used_event), used (4-aligned) */
    uint64_t dbytes = 16ull * qsz, abytes = 6 + 2ull * qsz, ubytes = 6 + 8ull * qsz;
    uint64_t ring = sim_mem_alloc_contig(mem, pages_of(dbytes + abytes));
    uint64_t used = sim_mem_alloc_contig(mem, pages_of(ubytes));
    uint64_t hdrs = sim_mem_alloc_contig(mem, pages_of(32ull * qd));
    if (!ring || !used || !hdrs) { fprintf(stderr, "ideal: no memory for the ring\n"); return 1; }
    uint64_t avail = ring + dbytes;
    memset(sim_gpa(d, ring), 0, pages_of(dbytes + abytes) * PG);
    memset(sim_gpa(d, used), 0, pages_of(ubytes) * PG);
    struct vdesc *desc = sim_gpa(d, ring);
    uint16_t *aflags = sim_gpa(d, avail), *aidx = sim_gpa(d, avail + 2), *aring = sim_gpa(d, avail + 4);
    uint16_t *uflags = sim_gpa(d, used), *uidx = sim_gpa(d, used + 2);
    struct { uint32_t id, len; } *uring = sim_gpa(d, used + 4);
    struct slot *sl = calloc(qd, sizeof(*sl));
    for (unsigned i = 0; i < qd; i++) {
        sl[i].hdr_gpa = hdrs + 32ull * i;
        sl[i].data_gpa = sim_mem_alloc_contig(mem, pages_of(bs));
        if (!sl[i].data_gpa) { fprintf(stderr, "ideal: no memory for buffers\n"); free(sl); return 1; }
        /* the three descriptors of slot i are fixed; only the data direction changes */
        desc[3 * i] = (struct vdesc){ sl[i].hdr_gpa, 16, 1, (uint16_t)(3 * i + 1) };
        desc[3 * i + 1] = (struct vdesc){ sl[i].data_gpa, bs, 1, (uint16_t)(3 * i + 2) };
        desc[3 * i + 2] = (struct vdesc){ sl[i].hdr_gpa + 16, 1, 2, 0 };
    }
    *aflags = 1;   /* VIRTQ_AVAIL_F_NO_INTERRUPT: the used ring is polled */
    uint64_t doorbell = sim_fw_queue_start(d, p, ring, avail, used);

    uint32_t *gen = calloc(nchunks, sizeof(uint32_t));
    uint8_t *busy = calloc(nchunks, 1), *written = calloc(nchunks, 1), *tmp = malloc(bs);
    int image_fd = image_path ? open(image_path, O_RDONLY) : -1;
    bool random = o->mode == WL_RANDREAD || o->mode == WL_RANDWRITE || o->mode == WL_RANDRW;
    uint64_t rng = o->seed ^ 0x1DEA1ull, seq = 0, issued = 0, done = 0, reads = 0, writes = 0, errors = 0, mism = 0;
    uint64_t lat_total = 0, lat_max = 0, doorbells = 0;
    uint64_t limit = o->ios ? o->ios : UINT64_MAX;
    /* test-only negative control (--corrupt-image N): the device returns N reads with a
     * flipped byte (contract device), and N written chunks are altered in the image
     * file before the image check; both must be reported as mismatches */
    if (o->corrupt_image && d->ops->control)
        for (unsigned i = 0; i < o->corrupt_image; i++) d->ops->control(d, "corrupt-next-read");
    uint64_t t_start = sim_now_ns();
    uint64_t deadline = o->ios ? UINT64_MAX : t_start + (uint64_t)(o->seconds ? o->seconds : 1) * 1000000000ull;
    uint64_t stall = 0;
    uint16_t avail_idx = 0, used_seen = 0;
    unsigned inflight = 0;
    unsigned *refill = calloc(qd, sizeof(unsigned)), nrefill = qd;
    for (unsigned i = 0; i < qd; i++) refill[i] = i;

    for (;;) {
        /* refill the free slots with the workload's next requests, then ring once */
        unsigned added = 0;
        uint64_t now = sim_now_ns();
        for (unsigned k = 0; k < nrefill && issued < limit && now < deadline; k++) {
            struct slot *s = &sl[refill[k]];
            s->write = o->mode == WL_WRITE || o->mode == WL_RANDWRITE ||
                       (o->mode == WL_RANDRW && sim_rand_next(&rng) % 100 < o->write_pct);
            do s->chunk = random ? sim_rand_next(&rng) % nchunks : seq++ % nchunks;
            while (busy[s->chunk]);
            busy[s->chunk] = 1;
            uint64_t byte0 = o->offset + s->chunk * bs;
            uint8_t *data = sim_gpa(d, s->data_gpa);
            if (s->write) {
                uint32_t g = gen[s->chunk] + 1;
                if (g == GEN_UNKNOWN || g == 0) g = 1;
                gen[s->chunk] = g;   /* provisional: GEN_UNKNOWN if the write fails */
                for (unsigned q = 0; q < bs / 512; q++) sim_pattern_fill(data + q * 512, byte0 / 512 + q, g, o->seed);
            } else {
                memset(data, 0, bs);   /* stale data must not pass as a read */
            }
            uint8_t *h = sim_gpa(d, s->hdr_gpa);
            uint32_t type = s->write ? 1 : 0;         /* VIRTIO_BLK_T_OUT / _IN (spec 5.2.6) */
            uint64_t sector = byte0 / 512;
            memcpy(h, &type, 4);
            memset(h + 4, 0, 4);
            memcpy(h + 8, &sector, 8);
            h[16] = 0xFF;
            desc[3 * refill[k] + 1].flags = (uint16_t)(1 | (s->write ? 0 : 2));
            s->t0 = now;
            aring[(uint16_t)(avail_idx + added) % qsz] = (uint16_t)(3 * refill[k]);
            added++;
            issued++;
        }
        nrefill = 0;
        if (added) {
            avail_idx = (uint16_t)(avail_idx + added);
            __atomic_store_n(aidx, avail_idx, __ATOMIC_SEQ_CST);
            inflight += added;
            if (!(__atomic_load_n(uflags, __ATOMIC_SEQ_CST) & 1)) {   /* VIRTQ_USED_F_NO_NOTIFY */
                d->ops->mmio_write(d, doorbell, 2, 0);
                doorbells++;
            }
        }
        if (!inflight) break;
        /* reap */
        uint16_t ui = __atomic_load_n(uidx, __ATOMIC_ACQUIRE);
        if (ui == used_seen) {
            if (!stall) stall = sim_now_ns();
            else if (sim_now_ns() - stall > 30000000000ull) {
                fprintf(stderr, "ideal: %u request(s) not completed in 30 s\n", inflight);
                errors += inflight;
                break;
            }
            sched_yield();   /* the device's threads share the CPUs */
            continue;
        }
        stall = 0;
        uint64_t t = sim_now_ns();
        for (; used_seen != ui; used_seen++) {
            uint32_t id = uring[used_seen % qsz].id;
            if (id % 3 || id / 3 >= qd) { fprintf(stderr, "ideal: device returned bad id %u\n", id); errors++; continue; }
            struct slot *s = &sl[id / 3];
            uint8_t st = *(uint8_t *)sim_gpa(d, s->hdr_gpa + 16);
            uint64_t byte0 = o->offset + s->chunk * bs;
            if (st != 0) {
                errors++;
                fprintf(stderr, "ideal: %s of sector %llu: status %u\n", s->write ? "write" : "read",
                        (unsigned long long)(byte0 / 512), st);
                if (s->write) gen[s->chunk] = GEN_UNKNOWN;
            } else if (s->write) {
                writes++;
                written[s->chunk] = 1;
            } else {
                uint64_t m = check_chunk(sim_gpa(d, s->data_gpa), byte0, bs, gen[s->chunk], o->seed, image_fd, tmp);
                if (m && mism < 10) fprintf(stderr, "MISMATCH (ideal read): chunk %llu: %llu sector(s)\n",
                                            (unsigned long long)s->chunk, (unsigned long long)m);
                mism += m;
                reads++;
            }
            uint64_t lat = t - s->t0;
            lat_total += lat;
            if (lat > lat_max) lat_max = lat;
            busy[s->chunk] = 0;
            inflight--;
            done++;
            refill[nrefill++] = id / 3;
        }
    }
    uint64_t elapsed = sim_now_ns() - t_start;
    /* every chunk written: in the image file (write-through: FLUSH was not negotiated) */
    uint64_t img_checked = 0, img_mism = 0;
    if (o->corrupt_image && image_path) {
        int wfd = open(image_path, O_RDWR);
        for (uint64_t c = 0, n = 0; wfd >= 0 && c < nchunks && n < o->corrupt_image; c++) {
            if (!written[c] || gen[c] == GEN_UNKNOWN) continue;
            uint8_t b;
            off_t at = (off_t)(o->offset + c * bs + 300);
            if (pread(wfd, &b, 1, at) != 1) continue;
            b ^= 0x5A;
            if (pwrite(wfd, &b, 1, at) == 1) n++;
        }
        if (wfd >= 0) close(wfd);
    }
    uint8_t *f = malloc(bs);
    for (uint64_t c = 0; c < nchunks; c++) {
        if (!written[c] || gen[c] == GEN_UNKNOWN) continue;
        uint64_t byte0 = o->offset + c * bs;
        ssize_t n = image_fd >= 0 ? pread(image_fd, f, bs, (off_t)byte0) : -1;
        if (n < 0) n = 0;
        if ((unsigned)n < bs) memset(f + n, 0, bs - (unsigned)n);
        img_mism += check_chunk(f, byte0, bs, gen[c], o->seed, -1, tmp);
        img_checked++;
    }
    d->ops->mmio_write(d, sim_fw_region_gpa(p, 1) + 0x14, 1, 0);   /* reset: the device lets go of the ring */
    if (image_fd >= 0) close(image_fd);
    free(f); free(tmp); free(gen); free(busy); free(written); free(sl); free(refill);

    struct sim_workload_result *w = &r->w;
    w->ios = done; w->reads = reads; w->writes = writes; w->errors = errors; w->mismatches = mism;
    w->bytes_read = reads * bs; w->bytes_written = writes * bs;
    w->image_chunks_checked = img_checked; w->image_mismatches = img_mism;
    w->elapsed_ns = elapsed; w->max_latency_ns = lat_max; w->total_latency_ns = lat_total;
    r->doorbells = doorbells;
    r->queue_size = qsz;
    return errors || mism || img_mism || !done ? 1 : 0;
}

int sim_ideal_run(sim_dev *d, const char *image_path, const struct sim_workload_opts *o, struct sim_ideal_result *r)
{
    char err[256];
    struct sim_pci pci;
    struct sim_mem mem;
    memset(r, 0, sizeof(*r));
    memset(&pci, 0, sizeof(pci));
    if (sim_pci_configure(d, &pci, err, sizeof(err))) { fprintf(stderr, "ideal: %s\n", err); return 1; }
    if (sim_mem_init(&mem, d, d->ram_base_free, d->ram_size, o->seed ^ 0x1DEA1)) { fprintf(stderr, "ideal: no RAM\n"); return 1; }
    int rc = ideal_body(d, image_path, o, r, &pci, &mem);
    sim_mem_destroy(&mem);
    return rc;
}

void sim_ideal_print(const struct sim_workload_opts *o, const struct sim_ideal_result *r, bool json,
                     const char *backend, unsigned findings, int rc)
{
    const struct sim_workload_result *w = &r->w;
    uint64_t done = w->ios;
    double secs = (double)w->elapsed_ns / 1e9;
    double iops = secs > 0 ? (double)done / secs : 0.0, avg = done ? (double)w->total_latency_ns / (double)done / 1000.0 : 0.0;
    static const char *modes[] = { "read", "write", "randread", "randwrite", "randrw" };
    unsigned qd = o->qd ? o->qd : 1;
    if (!json && !r->queue_size) return;   /* set-up failed: its one-line error said why */
    if (json) {
        printf("{\"ideal_driver\":true,\"backend\":\"%s\",\"features\":\"VERSION_1\",\"queue_size\":%u,"
               "\"interrupt_mode\":\"polled\",\"workload\":{\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"seed\":%llu,"
               "\"ios\":%llu,\"reads\":%llu,\"writes\":%llu,\"errors\":%llu,\"mismatches\":%llu,"
               "\"image_chunks_checked\":%llu,\"image_mismatches\":%llu,\"seconds\":%.3f,\"iops\":%.0f,"
               "\"avg_latency_us\":%.1f,\"max_latency_us\":%.1f,\"doorbells\":%llu},"
               "\"verifier_findings\":%u,\"exit_status\":%d}\n",
               backend, r->queue_size, modes[o->mode], o->bs, qd, (unsigned long long)o->seed, (unsigned long long)done,
               (unsigned long long)w->reads, (unsigned long long)w->writes, (unsigned long long)w->errors,
               (unsigned long long)w->mismatches, (unsigned long long)w->image_chunks_checked,
               (unsigned long long)w->image_mismatches, secs, iops, avg, (double)w->max_latency_ns / 1000.0,
               (unsigned long long)r->doorbells, findings, rc);
        fflush(stdout);
        return;
    }
    printf("Ideal driver (no miniport; VERSION_1 only, queue of %u, polled), workload (%s, bs %u, qd %u, seed %llu):\n",
           r->queue_size, modes[o->mode], o->bs, qd, (unsigned long long)o->seed);
    printf("  I/Os            %llu (%llu reads, %llu writes) in %.2f s, %.0f IOPS, avg %.0f us, max %.0f us\n",
           (unsigned long long)done, (unsigned long long)w->reads, (unsigned long long)w->writes, secs, iops, avg,
           (double)w->max_latency_ns / 1000.0);
    printf("  verification    %llu errors, %llu read mismatches; %llu written chunks checked in the image file: %llu mismatches\n",
           (unsigned long long)w->errors, (unsigned long long)w->mismatches, (unsigned long long)w->image_chunks_checked,
           (unsigned long long)w->image_mismatches);
    printf("  doorbells       %llu (%.3f per I/O)\n", (unsigned long long)r->doorbells,
           done ? (double)r->doorbells / (double)done : 0.0);
    printf("Verifier: %u finding%s\nResult: %s\n", findings, findings == 1 ? "" : "s", rc ? "FAIL" : "PASS");
}
