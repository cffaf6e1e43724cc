/*
 * Contract device: interrupts (MSI-X messages, INTx / ISR), reset of the virtio state,
 * request processing (descriptor chains, the I/O itself, used ring, delayed FLUSHes,
 * held completions), the device thread and the doorbell.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "contract_dev_int.h"

uint64_t cdev_bar_address(cdev *d, int i)
{
    uint64_t a = get32(d->cfg, 0x10 + 4 * i) & ~0xFull;
    if (d->L.bar_flags[i] & 0x4)
        a |= (uint64_t)get32(d->cfg, 0x14 + 4 * i) << 32;
    return a;
}

bool cdev_msix_enabled(cdev *d)
{
    return d->msix_cap && (get16(d->cfg, d->msix_cap + 2) & MSIX_CTRL_ENABLE);
}

bool cdev_intx_asserted(cdev *d)
{
    return !d->removed && !cdev_msix_enabled(d) && d->isr != 0 &&
           !(get16(d->cfg, 0x04) & PCI_COMMAND_INTX_DISABLE);
}

/* ---- interrupts ------------------------------------------------------------------- */
static void msix_send(cdev *d, unsigned v)
{
    uint64_t addr;
    void *p;
    if (v == NO_VECTOR) {                 /* contract: NO_VECTOR silences the source */
        d->st.msix_suppressed++;
        return;
    }
    if (v >= d->msix_vectors)
        return;
    if ((get16(d->cfg, d->msix_cap + 2) & MSIX_CTRL_MASKALL) || (d->msix[v].ctrl & 1) ||
        !(get16(d->cfg, 0x04) & PCI_COMMAND_MASTER)) {
        d->pba[v / 64] |= 1ull << (v % 64);   /* PCI 3.0 6.8.2.9: pending while masked */
        return;
    }
    addr = ((uint64_t)d->msix[v].hi << 32) | d->msix[v].lo;
    p = (addr & 3) ? NULL : ram_at(d, addr, 4);
    if (!p) {
        fprintf(stderr, "contract-dev: MSI-X entry %u address 0x%" PRIx64 " is not in guest RAM; message dropped\n", v, addr);
        return;
    }
    __atomic_store_n((uint32_t *)p, d->msix[v].data, __ATOMIC_SEQ_CST);
    d->st.msix_messages++;
}

void cdev_msix_deliver_pending(cdev *d)
{
    unsigned v;
    if (!cdev_msix_enabled(d))
        return;
    for (v = 0; v < d->msix_vectors; v++) {
        if (d->pba[v / 64] & (1ull << (v % 64))) {
            d->pba[v / 64] &= ~(1ull << (v % 64));
            msix_send(d, v);       /* re-sets the bit if still masked */
        }
    }
}

static void raise_isr(cdev *d, uint8_t bit)
{
    if (d->isr == 0 && !cdev_msix_enabled(d))
        d->st.intx_raises++;
    d->isr |= bit;
}

void cdev_queue_interrupt(cdev *d)
{
    if (d->removed)
        return;
    if (cdev_msix_enabled(d))
        msix_send(d, d->q.vector);
    else
        raise_isr(d, 1);
}

void cdev_config_interrupt(cdev *d)
{
    if (d->removed)
        return;
    d->st.config_interrupts++;
    /* Spec 4.1.4.5: the config bit is set before any config notification. */
    if (cdev_msix_enabled(d)) {
        d->isr |= 2;
        msix_send(d, d->msix_config);
    } else {
        raise_isr(d, 2);
    }
}

static void needs_reset(cdev *d, const char *why)
{
    fprintf(stderr, "contract-dev: DEVICE_NEEDS_RESET: %s\n", why);
    d->broken = true;
    d->status |= ST_NEEDS_RESET;
    cdev_config_interrupt(d);
}

/* ---- virtio reset ----------------------------------------------------------------- */
void cdev_virtio_reset(cdev *d)
{
    d->drv_features = 0;
    d->dfsel = d->gfsel = 0;
    d->msix_config = NO_VECTOR;
    d->status = 0;
    d->qsel = 0;
    memset(&d->q, 0, sizeof(d->q));
    d->q.size = d->qsize_max;
    d->q.vector = NO_VECTOR;
    d->broken = false;
    d->isr = 0;
    d->kick_pending = false;
    d->nflushes = 0;                       /* a reset drops FLUSHes still pending */
}

bool cdev_ring_view_get(cdev *d, ring_view *r)
{
    unsigned n = d->q.size;
    unsigned extra = d->event_idx ? 2 : 0;
    r->desc = ram_at(d, d->q.desc, 16ull * n);
    r->avail = ram_at(d, d->q.driver, 4 + 2ull * n + extra);
    r->used = ram_at(d, d->q.device, 4 + 8ull * n + extra);
    return r->desc && r->avail && r->used;
}

static bool event_idx_on(cdev *d)
{
    return d->event_idx && (d->drv_features & (1ull << VIRTIO_F_RING_EVENT_IDX));
}

/* Reads descriptor i of a table (device view, little-endian). */
static void read_desc(const uint8_t *t, unsigned i, uint64_t *addr, uint32_t *len,
                      uint16_t *flags, uint16_t *next)
{
    const uint8_t *p = t + 16u * i;
    *addr = get32(p, 0) | ((uint64_t)get32(p, 4) << 32);
    *len = get32(p, 8);
    *flags = get16(p, 12);
    *next = get16(p, 14);
}

/* Walks the chain starting at head into d->segs. Returns the segment count, or -1
 * when the chain itself is unusable (loop, bad index, table outside RAM): then the
 * status byte cannot be located and the device needs a reset. */
static int walk_chain(cdev *d, const ring_view *r, uint16_t head, const char **why)
{
    const uint8_t *table = r->desc;
    unsigned table_n = d->q.size, i = head, count = 0, n = 0;
    bool indirect = false;

    for (;;) {
        uint64_t addr; uint32_t len; uint16_t flags, next;
        if (i >= table_n) { *why = "descriptor index out of range"; return -1; }
        if (++count > table_n || count > WALK_MAX) { *why = "descriptor chain loops"; return -1; }
        read_desc(table, i, &addr, &len, &flags, &next);
        if (flags & DESC_F_INDIRECT) {
            /* Spec 2.7.5.3.1: only with INDIRECT_DESC, never inside an indirect table,
             * never with NEXT, length a non-zero multiple of 16. */
            if (indirect) { *why = "INDIRECT flag inside an indirect table"; return -1; }
            if (!(d->drv_features & (1ull << VIRTIO_F_RING_INDIRECT))) { *why = "indirect descriptor without VIRTIO_F_INDIRECT_DESC"; return -1; }
            if (flags & DESC_F_NEXT) { *why = "descriptor has both INDIRECT and NEXT"; return -1; }
            if (len == 0 || len % 16) { *why = "indirect table length not a non-zero multiple of 16"; return -1; }
            table = ram_at(d, addr, len);
            if (!table) { *why = "indirect table outside guest RAM"; return -1; }
            table_n = len / 16;
            indirect = true;
            i = 0; count = 0;
            continue;
        }
        if (n >= WALK_MAX) { *why = "descriptor chain too long"; return -1; }
        d->segs[n].gpa = addr;
        d->segs[n].len = len;
        d->segs[n].write = (flags & DESC_F_WRITE) != 0;
        n++;
        if (!(flags & DESC_F_NEXT))
            break;
        i = next;
    }
    return (int)n;
}

/* Copies len bytes at stream offset off of the readable (write=false) segments. */
static bool gather(cdev *d, int n, uint64_t off, void *dst, uint32_t len)
{
    uint8_t *out = dst;
    for (int k = 0; k < n && len; k++) {
        seg *s = &d->segs[k];
        if (s->write)
            continue;
        if (off >= s->len) { off -= s->len; continue; }
        uint32_t chunk = (uint32_t)(s->len - off) < len ? (uint32_t)(s->len - off) : len;
        const uint8_t *p = ram_at(d, s->gpa + off, chunk);
        if (!p)
            return false;
        memcpy(out, p, chunk);
        out += chunk; len -= chunk; off = 0;
    }
    return len == 0;
}

/* Segment pieces of the data range [off, off+len) of the readable or writable
 * stream, as (gpa, len) pairs; calls fn for each. Returns the number of descriptors
 * touched, or -1 when fn failed. */
typedef int (*piece_fn)(cdev *d, uint64_t gpa, uint32_t len, uint64_t disk_off);
static int for_each_piece(cdev *d, int n, bool write, uint64_t off, uint64_t len,
                          uint64_t disk_off, piece_fn fn)
{
    int touched = 0;
    for (int k = 0; k < n && len; k++) {
        seg *s = &d->segs[k];
        if (s->write != write)
            continue;
        if (off >= s->len) { off -= s->len; continue; }
        uint32_t chunk = (uint64_t)(s->len - off) < len ? (uint32_t)(s->len - off) : (uint32_t)len;
        touched++;
        if (fn && fn(d, s->gpa + off, chunk, disk_off) != 0)
            return -1;
        disk_off += chunk; len -= chunk; off = 0;
    }
    return touched;
}

static int piece_read(cdev *d, uint64_t gpa, uint32_t len, uint64_t disk_off)
{
    uint8_t *p = ram_at(d, gpa, len);
    while (len) {
        ssize_t r = pread(d->fd, p, len, (off_t)disk_off);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        if (r == 0) { memset(p, 0, len); break; }     /* beyond EOF of a sparse image */
        p += r; len -= (uint32_t)r; disk_off += (uint64_t)r;
    }
    return 0;
}

static int piece_write(cdev *d, uint64_t gpa, uint32_t len, uint64_t disk_off)
{
    const uint8_t *p = ram_at(d, gpa, len);
    while (len) {
        ssize_t r = pwrite(d->fd, p, len, (off_t)disk_off);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        p += r; len -= (uint32_t)r; disk_off += (uint64_t)r;
    }
    return 0;
}

static int piece_flip(cdev *d, uint64_t gpa, uint32_t len, uint64_t disk_off)
{
    uint8_t *p = ram_at(d, gpa, len);
    (void)disk_off;
    if (p)
        p[0] ^= 0xFF;
    return 0;
}

/* Copies 20 GET_ID bytes into the device-writable data of the chain (before status). */
static bool id_write(cdev *d, int n, const uint8_t *id)
{
    uint32_t left = 20;
    for (int k = 0; k < n && left; k++) {
        seg *s = &d->segs[k];
        if (!s->write) continue;
        uint32_t c = s->len < left ? s->len : left;
        uint8_t *p = ram_at(d, s->gpa, c);
        if (!p) return false;
        memcpy(p, id + (20 - left), c);
        left -= c;
    }
    return left == 0;
}

/* Executes one request whose chain is in d->segs[0..n). Returns the status byte. */
static uint8_t execute(cdev *d, uint16_t head, int n)
{
    uint64_t rtot = 0, wtot = 0;
    bool seen_write = false;
    uint8_t hdr[16];
    uint32_t type, ioprio;
    uint64_t sector, data_len;
    int data_descs;

    for (int k = 0; k < n; k++) {
        seg *s = &d->segs[k];
        /* Spec 2.7.4.2: device-readable elements before device-writable ones. */
        if (!s->write && seen_write) { bug(d, "head %u: readable descriptor after a writable one", head); return BLK_S_IOERR; }
        seen_write |= s->write;
        if (s->len == 0) { bug(d, "head %u: zero-length descriptor", head); return BLK_S_IOERR; }
        if (!ram_at(d, s->gpa, s->len)) { bug(d, "head %u: buffer 0x%" PRIx64 "+%u outside guest RAM", head, s->gpa, s->len); return BLK_S_IOERR; }
        if (s->write) wtot += s->len; else rtot += s->len;
    }
    if (n > GUARD_DESCS) { bug(d, "head %u: %d descriptors exceed the contract's 1024", head, n); return BLK_S_IOERR; }
    if (rtot < sizeof(hdr) || !gather(d, n, 0, hdr, sizeof(hdr))) {
        bug(d, "head %u: no 16-byte request header", head);
        return BLK_S_IOERR;
    }
    type = get32(hdr, 0);
    ioprio = get32(hdr, 4);
    sector = get32(hdr, 8) | ((uint64_t)get32(hdr, 12) << 32);

    if (type == BLK_T_FLUSH) {
        d->st.flushes++;
        if (!d->flush || !(d->drv_features & (1ull << VIRTIO_BLK_F_FLUSH)))
            return BLK_S_UNSUPP;
        if (sector != 0 || ioprio != 0)
            bug(d, "head %u: FLUSH with sector %" PRIu64 " ioprio %u (must be 0)", head, sector, ioprio);
        if (rtot != 16 || wtot != 1)
            bug(d, "head %u: FLUSH carries data (%" PRIu64 " out, %" PRIu64 " in bytes)", head, rtot - 16, wtot - 1);
        /* Contract: FLUSH completes only when every completed write is durable. With
         * flush-delay-ms the sync happens when the FLUSH completes (cdev_complete_flushes). */
        if (d->flush_delay_ms)
            return BLK_S_DEFERRED;
        return fdatasync(d->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
    }
    if (type == 8 && d->serial_per_reset && wtot >= 21) {
        /* VIRTIO_BLK_T_GET_ID (spec 5.2.6): 20 bytes, here carrying the reset count, so
         * the disk's identity changes across a reset (negative control of the class
         * layer's re-enumeration identity check, docs/contract-device.md) */
        char id[21];
        snprintf(id, sizeof(id), "AEROSIM-RESET-%06llu", (unsigned long long)d->st.resets);
        return id_write(d, n, (const uint8_t *)id) ? BLK_S_OK : BLK_S_IOERR;
    }
    if (type != BLK_T_IN && type != BLK_T_OUT) {
        d->st.unsupported++;
        return BLK_S_UNSUPP;              /* contract: IN, OUT, FLUSH only */
    }
    if (ioprio != 0) { bug(d, "head %u: ioprio %u (contract: must be 0)", head, ioprio); return BLK_S_IOERR; }
    if (type == BLK_T_IN) {
        d->st.reads++;
        if (rtot != 16) { bug(d, "head %u: READ with %" PRIu64 " device-readable data bytes", head, rtot - 16); return BLK_S_IOERR; }
        data_len = wtot - 1;
        data_descs = for_each_piece(d, n, true, 0, data_len, 0, NULL);
    } else {
        d->st.writes++;
        if (wtot != 1) { bug(d, "head %u: WRITE with %" PRIu64 " device-writable bytes (only the status byte allowed)", head, wtot); return BLK_S_IOERR; }
        data_len = rtot - 16;
        data_descs = for_each_piece(d, n, false, 16, data_len, 0, NULL);
    }
    if (data_len == 0 || data_len % 512) { bug(d, "head %u: data length %" PRIu64 " not a non-zero multiple of 512", head, data_len); return BLK_S_IOERR; }
    if (data_len > GUARD_BYTES) { bug(d, "head %u: %" PRIu64 " bytes exceed the contract's 4 MiB", head, data_len); return BLK_S_IOERR; }
    if ((uint32_t)data_descs > d->seg_max) { bug(d, "head %u: %d data segments > seg_max %u", head, data_descs, d->seg_max); return BLK_S_IOERR; }
    if (sector > d->capacity || data_len / 512 > d->capacity - sector) {
        bug(d, "head %u: sectors %" PRIu64 "+%" PRIu64 " beyond capacity %" PRIu64, head, sector, data_len / 512, d->capacity);
        return BLK_S_IOERR;
    }
    if (type == BLK_T_IN) {
        if (d->fail_next_read) { d->fail_next_read--; d->st.faults_injected++; return BLK_S_IOERR; }
        if (for_each_piece(d, n, true, 0, data_len, sector * 512, piece_read) < 0) return BLK_S_IOERR;
        if (d->corrupt_next_read) {        /* wrong data, status OK: flip the first data byte */
            d->corrupt_next_read--;
            d->st.faults_injected++;
            for_each_piece(d, n, true, 0, 1, 0, piece_flip);
        }
        d->st.bytes_read += data_len;
    } else {
        if (d->ro) return BLK_S_IOERR;
        if (d->fail_next_write) { d->fail_next_write--; d->st.faults_injected++; return BLK_S_IOERR; }
        if (d->drop_next_write) {          /* a lost write: reported done, medium unchanged */
            d->drop_next_write--;
            d->st.faults_injected++;
            d->st.bytes_written += data_len;
            return BLK_S_OK;
        }
        if (for_each_piece(d, n, false, 16, data_len, sector * 512, piece_write) < 0) return BLK_S_IOERR;
        d->st.bytes_written += data_len;
    }
    return BLK_S_OK;
}

static void publish_used(cdev *d, const ring_view *r, uint32_t id, unsigned copies)
{
    for (unsigned i = 0; i < copies; i++) {
        unsigned slot = d->q.used_idx % d->q.size;
        put32(r->used, 4 + 8 * slot, id);
        uint32_t len = 0;                          /* contract: used.len = 0 */
        if (d->garbage_used_len) {                 /* garbage-used-len: untrusted device data */
            d->garbage_used_len--;
            d->st.faults_injected++;
            d->garbage_lcg = d->garbage_lcg * 6364136223846793005ull + 1442695040888963407ull;
            len = (uint32_t)(d->garbage_lcg >> 32) | 1u;
        }
        put32(r->used, 4 + 8 * slot + 4, len);
        d->q.used_idx++;
    }
    /* Spec 2.7.8: the element must be visible before the index that publishes it. A
     * duplicate (dup-used-id) is published together with the original: the driver can
     * only detect it before it reuses the id (after that it is indistinguishable from a
     * real completion of the new request). */
    __atomic_store_n((uint16_t *)(r->used + 2), d->q.used_idx, __ATOMIC_RELEASE);
}

/* Completes the pending FLUSHes that are due: the sync happens now, so it covers every write completed before. Caller holds
 * d->mu and publishes through r; the caller's pass decides about the interrupt. */
void cdev_complete_flushes(cdev *d, const ring_view *r)
{
    uint64_t now = now_ns();
    unsigned i = 0;
    while (i < d->nflushes) {
        if (d->flushes[i].due_ns > now) { i++; continue; }
        uint8_t status = fdatasync(d->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
        __atomic_store_n(d->flushes[i].status, status, __ATOMIC_RELAXED);
        d->st.requests++;
        publish_used(d, r, d->flushes[i].head, 1);
        d->flushes[i] = d->flushes[--d->nflushes];
    }
}

/* Earliest due time of a pending FLUSH, 0 when none. Caller holds d->mu. */
static uint64_t next_flush_due(cdev *d)
{
    uint64_t due = 0;
    for (unsigned i = 0; i < d->nflushes; i++)
        if (!due || d->flushes[i].due_ns < due) due = d->flushes[i].due_ns;
    return due;
}

/* Requests the device holds: made available and not yet used (taken or still to be
 * taken by a working device). A broken or removed device processes nothing more: it
 * holds none. Caller holds d->mu. */
/* Requests a reset drains (reset-blocks): those the device has taken (a held FLUSH, a
 * batch in progress) and, harshest variant, those the driver announced by a doorbell the
 * device has not served yet (QEMU tests and clears its ioeventfd before it detaches it).
 * Without a pending doorbell a device never reads the avail ring: QEMU's blk_drain waits
 * for submitted requests only, and after a hibernation or a firmware hand-over the
 * memory of a ring left configured belongs to someone else (sim/s4.c fills it with a
 * pattern); reading its avail idx there would be a device bug, not the driver's. */
unsigned cdev_held_requests(cdev *d)
{
    ring_view r;
    if (d->removed || d->broken || !(d->status & ST_DRIVER_OK) || !d->q.enable)
        return 0;
    unsigned n = d->nflushes + (d->busy ? 1u : 0u);
    if (!d->kick_pending || !cdev_ring_view_get(d, &r))
        return n;
    uint16_t avail_idx = __atomic_load_n((uint16_t *)(r.avail + 2), __ATOMIC_ACQUIRE);
    return (uint16_t)(avail_idx - d->q.last_avail) + n;
}

/* Processes every available request. Caller holds d->mu. */
void cdev_process_queue(cdev *d)
{
    ring_view r;
    uint16_t old_used, avail_idx, batch = 0;
    bool notify;

    if (d->removed || d->broken || d->stalled)
        return;
    if (!(d->status & ST_DRIVER_OK) || !d->q.enable)
        return;
    if (!(get16(d->cfg, 0x04) & PCI_COMMAND_MASTER)) {
        bug(d, "queue kicked with bus mastering disabled (no DMA possible)");
        return;
    }
    if (!cdev_ring_view_get(d, &r)) {
        needs_reset(d, "ring addresses outside guest RAM");
        bug(d, "ring desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64 " outside guest RAM", d->q.desc, d->q.driver, d->q.device);
        return;
    }
    old_used = d->q.used_idx;
    d->busy = true;
    cdev_complete_flushes(d, &r);
    for (;;) {
        avail_idx = __atomic_load_n((uint16_t *)(r.avail + 2), __ATOMIC_ACQUIRE);
        if ((uint16_t)(avail_idx - d->q.last_avail) > d->q.size) {
            bug(d, "avail idx jumped from %u to %u (queue size %u)", d->q.last_avail, avail_idx, d->q.size);
            needs_reset(d, "avail idx corrupt");
            break;
        }
        if (avail_idx == d->q.last_avail)
            break;
        while (d->q.last_avail != avail_idx) {
            uint16_t head = get16(r.avail, 4 + 2 * (d->q.last_avail % d->q.size));
            const char *why = NULL;
            int n;
            if (d->needs_reset_next) {
                /* injected with this request (and any after it) still in flight */
                d->needs_reset_next--;
                d->st.faults_injected++;
                needs_reset(d, "injected (needs-reset-next)");
                goto out;
            }
            d->q.last_avail++;
            batch++;
            if (head >= d->q.size) {
                bug(d, "avail ring names head %u (queue size %u)", head, d->q.size);
                needs_reset(d, "bad avail head");
                goto out;
            }
            n = walk_chain(d, &r, head, &why);
            if (n < 0) {
                bug(d, "head %u: %s", head, why);
                needs_reset(d, "unusable descriptor chain");
                goto out;
            }
            uint8_t status = execute(d, head, n);
            seg *last = &d->segs[n - 1];
            uint8_t *sp = last->write && last->len ? ram_at(d, last->gpa + last->len - 1, 1) : NULL;
            if (status == BLK_S_DEFERRED && sp && d->nflushes < d->q.size) {
                /* held by the device until due; later requests go on */
                d->flushes[d->nflushes].head = head;
                d->flushes[d->nflushes].status = sp;
                d->flushes[d->nflushes].due_ns = now_ns() + (uint64_t)d->flush_delay_ms * 1000000ull;
                d->nflushes++;
                d->st.flushes_delayed++;
                continue;
            }
            if (status == BLK_S_DEFERRED)
                status = fdatasync(d->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
            if (sp)
                __atomic_store_n(sp, status, __ATOMIC_RELAXED);
            else
                bug(d, "head %u: last descriptor is not a writable status byte", head);
            if (status == BLK_S_IOERR)
                d->st.ioerrs++;
            dlog(d, "head %u -> status %u", head, status);
            d->st.requests++;
            if (d->bad_used_id) {
                d->bad_used_id--;
                d->st.faults_injected++;
                publish_used(d, &r, (uint32_t)d->q.size + 7, 1);   /* an id no head has */
            } else if (d->dup_used_id) {
                d->dup_used_id--;
                d->st.faults_injected++;
                publish_used(d, &r, head, 2);
            } else if (d->hold_completions && d->nheld < 16) {
                d->held[d->nheld].used = r.used;
                d->held[d->nheld].id = head;
                d->held[d->nheld].idx = d->q.used_idx++;
                d->held[d->nheld].size = d->q.size;
                d->nheld++;
            } else {
                publish_used(d, &r, head, 1);
            }
            if (event_idx_on(d))   /* spec 2.7.10: driver need not kick before this index */
                __atomic_store_n((uint16_t *)(r.used + 4 + 8 * d->q.size), d->q.last_avail, __ATOMIC_RELEASE);
        }
        /* Re-check after publishing avail_event (spec 2.7.10 race). */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
out:
    d->busy = false;
    if (batch > d->st.max_batch)
        d->st.max_batch = batch;
    if (d->q.used_idx == old_used)
        return;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (event_idx_on(d)) {
        uint16_t used_event = __atomic_load_n((uint16_t *)(r.avail + 4 + 2 * d->q.size), __ATOMIC_ACQUIRE);
        /* vring_need_event: notify if used_event lies in (old, new]. */
        notify = (uint16_t)(d->q.used_idx - used_event - 1) < (uint16_t)(d->q.used_idx - old_used);
    } else {
        notify = !(get16(r.avail, 0) & AVAIL_F_NO_INTERRUPT);
    }
    if (notify) d->irq_passes++;
    else d->irq_suppressed++;
    if (notify)
        cdev_queue_interrupt(d);
}

void *cdev_device_thread(void *arg)
{
    cdev *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->quit) {
        uint64_t due = d->stalled ? 0 : next_flush_due(d), now = now_ns();
        if (due && now >= due) {
            cdev_process_queue(d);                  /* completes the due FLUSHes */
            pthread_cond_broadcast(&d->cv);
            continue;
        }
        if (!d->kick_pending || d->stalled) {
            if (due) {
                struct timespec ts;
                /* `now` from above: a second reading can pass `due`, and the
                 * unsigned difference then waits for decades (found by the soak:
                 * a 32-bit time_t overflow, on 64 bits a FLUSH left unfinished) */
                realtime_in(&ts, due - now);
                pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            } else {
                pthread_cond_wait(&d->cv, &d->mu);
            }
            continue;
        }
        d->kick_pending = false;
        if (d->latency_us) {
            d->busy = true;                    /* requests are "in the device" */
            pthread_mutex_unlock(&d->mu);
            usleep(d->latency_us);
            pthread_mutex_lock(&d->mu);
            d->busy = false;
        }
        cdev_process_queue(d);
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

void cdev_kick(cdev *d)
{
    if (d->sync_mode && !d->stalled) {
        cdev_process_queue(d);
    } else {
        d->kick_pending = true;
        pthread_cond_broadcast(&d->cv);
    }
}

