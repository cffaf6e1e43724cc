/*
 * Device side of a split virtqueue for the unit tests (see vq_device.h).
 * Layout offsets below come from the spec's structures (2.7.5, 2.7.6, 2.7.8), not
 * from the driver: virtq_desc {le64 addr; le32 len; le16 flags; le16 next},
 * virtq_avail {le16 flags; le16 idx; le16 ring[N]; le16 used_event},
 * virtq_used {le16 flags; le16 idx; {le32 id; le32 len} ring[N]; le16 avail_event}.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "vq_device.h"

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

static void fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

void *vqd_ptr(vqd *d, uint64_t pa, size_t len)
{
    if (pa < d->ram_pa || len > d->ram_len || pa - d->ram_pa > d->ram_len - len)
        fail_msg("device: DMA outside guest RAM: pa=0x%llx len=%zu",
                 (unsigned long long)pa, len);
    return d->ram + (pa - d->ram_pa);
}

static uint16_t rd16(vqd *d, uint64_t pa) { return *(volatile uint16_t *)vqd_ptr(d, pa, 2); }
static uint32_t rd32(vqd *d, uint64_t pa) { return *(volatile uint32_t *)vqd_ptr(d, pa, 4); }
static uint64_t rd64(vqd *d, uint64_t pa) { return *(volatile uint64_t *)vqd_ptr(d, pa, 8); }
static void wr16(vqd *d, uint64_t pa, uint16_t v) { *(volatile uint16_t *)vqd_ptr(d, pa, 2) = v; }
static void wr32(vqd *d, uint64_t pa, uint32_t v) { *(volatile uint32_t *)vqd_ptr(d, pa, 4) = v; }

#define AVAIL_FLAGS(d)      ((d)->avail_pa)
#define AVAIL_IDX(d)        ((d)->avail_pa + 2)
#define AVAIL_RING(d, i)    ((d)->avail_pa + 4 + 2 * (uint64_t)(i))
#define USED_EVENT(d)       ((d)->avail_pa + 4 + 2 * (uint64_t)(d)->qsize)
#define USED_FLAGS(d)       ((d)->used_pa)
#define USED_IDX(d)         ((d)->used_pa + 2)
#define USED_ELEM(d, i)     ((d)->used_pa + 4 + 8 * (uint64_t)(i))
#define AVAIL_EVENT(d)      ((d)->used_pa + 4 + 8 * (uint64_t)(d)->qsize)

void vqd_init(vqd *d, uint8_t *ram, uint64_t ram_pa, size_t ram_len, uint16_t qsize,
              bool event_idx, bool indirect_ok, uint64_t desc_pa, uint64_t avail_pa,
              uint64_t used_pa)
{
    memset(d, 0, sizeof(*d));
    d->ram = ram;
    d->ram_pa = ram_pa;
    d->ram_len = ram_len;
    d->qsize = qsize;
    d->event_idx = event_idx;
    d->indirect_ok = indirect_ok;
    d->desc_pa = desc_pa;
    d->avail_pa = avail_pa;
    d->used_pa = used_pa;
    /* Spec 2.7 alignment the driver MUST provide. */
    assert_int_equal(desc_pa % 16, 0);
    assert_int_equal(avail_pa % 2, 0);
    assert_int_equal(used_pa % 4, 0);
    d->desc_busy = calloc(qsize, 1);
    d->pending = calloc(qsize, sizeof(vqd_req));
    assert_non_null(d->desc_busy);
    assert_non_null(d->pending);
    /* The driver MUST have initialised used flags to 0 (2.7.10). */
    assert_int_equal(rd16(d, USED_FLAGS(d)), 0);
}

void vqd_fini(vqd *d)
{
    free(d->desc_busy);
    free(d->pending);
    d->desc_busy = NULL;
    d->pending = NULL;
}

void vqd_reset(vqd *d)
{
    memset(d->desc_busy, 0, d->qsize);
    d->npending = 0;
    d->last_avail = 0;
    d->used_idx = 0;
    d->published_used = 0;
}

static void add_elem(vqd_req *r, uint64_t pa, uint32_t len, uint16_t flags, bool *seen_write)
{
    if (len == 0) fail_msg("device: zero-length descriptor");
    if (flags & F_WRITE) *seen_write = true;
    else if (*seen_write) fail_msg("device: readable descriptor after a writable one (2.7.4.2)");
    if (r->nelem >= VQD_MAX_ELEMS) fail_msg("device: chain longer than the test supports");
    r->elem[r->nelem].pa = pa;
    r->elem[r->nelem].len = len;
    r->elem[r->nelem].write = (flags & F_WRITE) != 0;
    r->nelem++;
}

/* Walk an indirect table (2.7.5.3): no INDIRECT inside, NEXT stays in the table,
 * at most len/16 descriptors (loop guard), never longer than the queue size. */
static void parse_indirect(vqd *d, vqd_req *r, uint64_t table_pa, uint32_t table_len, bool *seen_write)
{
    uint32_t n, i = 0, count = 0;
    if (!d->indirect_ok) fail_msg("device: INDIRECT used but not negotiated");
    if (table_len == 0 || table_len % 16) fail_msg("device: bad indirect table length %u", table_len);
    n = table_len / 16;
    if (n > d->qsize) fail_msg("device: indirect chain of %u > queue size %u", n, d->qsize);
    (void)vqd_ptr(d, table_pa, table_len);
    for (;;) {
        uint64_t dp = table_pa + 16 * (uint64_t)i;
        uint16_t flags = rd16(d, dp + 12);
        if (++count > n) fail_msg("device: loop in indirect table");
        if (flags & F_INDIRECT) fail_msg("device: INDIRECT inside an indirect table");
        add_elem(r, rd64(d, dp), rd32(d, dp + 8), flags, seen_write);
        if (!(flags & F_NEXT)) break;
        i = rd16(d, dp + 14);
        if (i >= n) fail_msg("device: indirect next %u out of table (%u)", i, n);
    }
}

static void parse_chain(vqd *d, vqd_req *r, uint16_t head, bool mark_busy)
{
    uint16_t i = head;
    uint32_t count = 0;
    bool seen_write = false;
    memset(r, 0, offsetof(vqd_req, elem));
    r->head = head;
    if (head >= d->qsize) fail_msg("device: avail head %u >= size %u", head, d->qsize);
    for (;;) {
        uint64_t dp = d->desc_pa + 16 * (uint64_t)i;
        uint16_t flags = rd16(d, dp + 12);
        if (++count > d->qsize) fail_msg("device: descriptor loop / chain > queue size");
        if (mark_busy) {
            if (d->desc_busy[i]) fail_msg("device: descriptor %u reused while in flight", i);
            d->desc_busy[i] = 1;
        }
        r->ring_idx[r->ring_descs++] = i;
        if (flags & F_INDIRECT) {
            if (flags & F_NEXT) fail_msg("device: INDIRECT together with NEXT");
            /* Our driver only ever uses INDIRECT as the sole descriptor. */
            if (count != 1) fail_msg("device: INDIRECT after a direct chain");
            r->indirect = true;
            parse_indirect(d, r, rd64(d, dp), rd32(d, dp + 8), &seen_write);
            break;
        }
        add_elem(r, rd64(d, dp), rd32(d, dp + 8), flags, &seen_write);
        if (!(flags & F_NEXT)) break;
        i = rd16(d, dp + 14);
        if (i >= d->qsize) fail_msg("device: next %u >= size", i);
    }
}

size_t vqd_fetch(vqd *d)
{
    uint16_t avail_idx = rd16(d, AVAIL_IDX(d));
    size_t n = 0;
    if ((uint16_t)(avail_idx - d->last_avail) > d->qsize)
        fail_msg("device: avail idx jumped %u -> %u", d->last_avail, avail_idx);
    fence();   /* read idx before the ring entries it covers */
    while (d->last_avail != avail_idx) {
        uint16_t head = rd16(d, AVAIL_RING(d, d->last_avail & (d->qsize - 1)));
        if (d->npending >= d->qsize) fail_msg("device: more requests than queue size");
        parse_chain(d, &d->pending[d->npending], head, true);
        d->npending++;
        d->last_avail++;
        d->fetched++;
        n++;
    }
    return n;
}

bool vqd_set_notify(vqd *d, bool enable)
{
    if (d->event_idx) {
        if (enable) wr16(d, AVAIL_EVENT(d), d->last_avail);
    } else {
        wr16(d, USED_FLAGS(d), enable ? 0 : 1);
    }
    if (!enable) return false;
    fence();   /* publish the request before re-checking avail idx */
    return rd16(d, AVAIL_IDX(d)) != d->last_avail;
}

/* At completion the chain must read exactly as when it was fetched: the driver may
 * not touch descriptors (or indirect tables) of a request in flight. Then free it. */
static void check_and_clear(vqd *d, const vqd_req *r)
{
    static vqd_req again;   /* big: keep it off the stack */
    uint16_t k;
    bool same;
    parse_chain(d, &again, r->head, false);
    same = again.nelem == r->nelem && again.ring_descs == r->ring_descs &&
           memcmp(again.ring_idx, r->ring_idx, r->ring_descs * sizeof(r->ring_idx[0])) == 0;
    for (k = 0; same && k < r->nelem; k++)
        same = again.elem[k].pa == r->elem[k].pa && again.elem[k].len == r->elem[k].len &&
               again.elem[k].write == r->elem[k].write;
    if (!same) fail_msg("device: driver modified descriptors of in-flight head %u", r->head);
    for (k = 0; k < r->ring_descs; k++) d->desc_busy[r->ring_idx[k]] = 0;
}

void vqd_push_raw(vqd *d, uint32_t id, uint32_t len)
{
    uint64_t ep = USED_ELEM(d, d->used_idx & (d->qsize - 1));
    wr32(d, ep, id);
    wr32(d, ep + 4, len);
    d->used_idx++;
}

void vqd_complete(vqd *d, size_t i, uint32_t len)
{
    assert_true(i < d->npending);
    check_and_clear(d, &d->pending[i]);
    vqd_push_raw(d, d->pending[i].head, len);
    d->pending[i] = d->pending[d->npending - 1];
    d->npending--;
    d->completed++;
}

bool vqd_publish(vqd *d)
{
    uint16_t old = d->published_used, idx;
    bool irq = false;
    if (old == d->used_idx) return false;
    fence();   /* 2.7.8: elements (and buffers) before idx */
    wr16(d, USED_IDX(d), d->used_idx);
    d->published_used = d->used_idx;
    fence();   /* idx before reading the driver's suppression fields */
    if (d->event_idx) {
        uint16_t used_event = rd16(d, USED_EVENT(d));
        if (rd16(d, AVAIL_FLAGS(d)) != 0) fail_msg("driver set avail flags with EVENT_IDX");
        /* 2.7.7: interrupt if the idx at which any entry was placed equals used_event. */
        for (idx = old; idx != d->used_idx; idx++)
            if (idx == used_event) irq = true;
    } else {
        uint16_t flags = rd16(d, AVAIL_FLAGS(d));
        if (flags > 1) fail_msg("driver set avail flags %u (must be 0 or 1)", flags);
        irq = flags == 0;
    }
    if (d->ignore_suppression) irq = true;
    if (irq) d->interrupts++;
    else d->interrupts_suppressed++;
    return irq;
}

void vqd_publish_raw_idx(vqd *d, uint16_t idx)
{
    fence();
    wr16(d, USED_IDX(d), idx);
}
