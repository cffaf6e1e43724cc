/*
 * In-process virtio-blk PCI function following the AERO-W7-VIRTIO contract v1
 * (../shared/reference/aero-w7-virtio-contract-v1.md), with a stock-QEMU-layout
 * variant and fault injection. Implements sim/simdev.h; options and control
 * commands are documented in docs/contract-device.md.
 *
 * The device is deliberately strict: everything the driver puts in registers or in
 * the ring is validated, and whatever breaks the virtio spec or the contract is a
 * "DRIVER BUG" line on stderr plus a counter (sim_contract_get_stats), since on real
 * hardware it would be silent corruption.
 *
 * Locking: one mutex per device guards all state; every op takes it. Requests are
 * processed either by a device thread (default; needed for stalls and to make the
 * device run concurrently with the driver like real hardware) or inside the doorbell
 * write (mode=sync, deterministic).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memfd_create */
#endif
#include "contract_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- constants (virtio spec 1.x, PCI 3.0) ---------------------------------------- */
#define VIRTIO_F_VERSION_1       32
#define VIRTIO_F_RING_INDIRECT   28
#define VIRTIO_F_RING_EVENT_IDX  29
#define VIRTIO_BLK_F_SEG_MAX     2
#define VIRTIO_BLK_F_RO          5
#define VIRTIO_BLK_F_BLK_SIZE    6
#define VIRTIO_BLK_F_FLUSH       9

#define ST_ACKNOWLEDGE 0x01
#define ST_DRIVER      0x02
#define ST_DRIVER_OK   0x04
#define ST_FEATURES_OK 0x08
#define ST_NEEDS_RESET 0x40
#define ST_FAILED      0x80

#define NO_VECTOR 0xFFFF
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1

#define BLK_T_IN    0
#define BLK_T_OUT   1
#define BLK_T_FLUSH 4
#define BLK_S_OK     0
#define BLK_S_IOERR  1
#define BLK_S_UNSUPP 2
#define BLK_S_DEFERRED 0xFF              /* internal: FLUSH completes later (flush-delay-ms) */

#define PCI_COMMAND_MEMORY  0x0002
#define PCI_COMMAND_MASTER  0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000

/* Contract guard rails: at most 1024 descriptors and 4 MiB of data per request. */
#define GUARD_DESCS   1024
#define GUARD_BYTES   (4u << 20)
/* Hard bound of a chain walk (loop detection is by count; beyond GUARD_DESCS the
 * request is still walked so its status byte can be found and set to IOERR). */
#define WALK_MAX      4096
#define MSIX_MAX      2048

/* ---- types ------------------------------------------------------------------------ */
typedef struct layout {
    int regs_bar;                          /* common/notify/isr/device */
    uint32_t common_off, common_len, notify_off, notify_len, isr_off, isr_len, dev_off, dev_len;
    int msix_bar;
    uint32_t table_off, pba_off;
    uint64_t bar_size[6];
    uint32_t bar_flags[6];                 /* low bits of the BAR register */
} layout;

typedef struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
} seg;

typedef struct cdev {
    sim_dev base;                          /* first: sim_dev* == cdev* */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started, quit;
    bool verbose;
    char path[512];

    /* options */
    bool qemu_layout, msix_on, event_idx, indirect, flush, ro, size_writable, sync_mode;
    bool cap_loop, short_cap_len, bar6, range_outside_bar, overlapping;
    bool refuse_features_ok, queue_size0, vector_readback_ffff, reset_stuck;
    bool serial_per_reset;   /* test-only: GET_ID answered, the serial changes at every reset */
    /* test-only `hold-completions`: requests are executed but their used entries are
     * kept back until `release-completions` writes them, into the ring they came from
     * even if the device was reset meanwhile (a completion still in flight) */
    bool hold_completions;
    struct { uint8_t *used; uint32_t id; uint16_t idx, size; } held[16];
    unsigned nheld;
    bool version1;                         /* offer VIRTIO_F_VERSION_1 (default on) */
    uint16_t q_notify_off;                 /* queue_notify_off of queue 0 (default 0) */
    uint8_t revision;
    uint16_t qsize_max, msix_vectors;
    uint32_t seg_max, blk_size, latency_us;
    /* issue 11 item 7: a status-0 write waits until every request the device holds has
     * completed (QEMU's virtio_blk_reset: blk_drain inside the register write). */
    bool reset_blocks;
    /* issue 11 item 8: a FLUSH completes flush_delay_ms after it was taken; data
     * requests behind it are not held up (a host fdatasync of a large dirty cache). */
    uint32_t flush_delay_ms;

    layout L;
    uint8_t cfg[256], wmask[256];
    uint8_t msix_cap;                      /* 0 = none */

    /* virtio common state */
    uint64_t dev_features, drv_features;
    uint32_t dfsel, gfsel;
    uint16_t msix_config;
    uint8_t status, generation;
    uint16_t qsel;
    struct {
        uint16_t size, vector, enable;
        uint64_t desc, driver, device;
        uint16_t last_avail, used_idx;
    } q;
    bool broken;                           /* NEEDS_RESET raised; no more processing */
    uint8_t isr;
    struct { uint32_t lo, hi, data, ctrl; } *msix;
    uint64_t *pba;

    /* disk */
    int fd;
    uint64_t capacity;                     /* 512-byte sectors */

    /* faults */
    bool stalled, removed, kick_pending, busy;
    int fail_next_read, fail_next_write, bad_used_id, dup_used_id, needs_reset_next;
    unsigned garbage_used_len;   /* next N used elements carry a random len (soak, device garbage) */
    uint64_t garbage_lcg;
    int drop_next_write;                   /* test-only: complete a WRITE OK without writing */
    int corrupt_next_read;                 /* test-only: complete a READ OK with one byte flipped */
    /* passes that published used entries: interrupted, and not interrupted because of the
     * driver's NO_INTERRUPT flag / used_event */
    uint64_t irq_passes, irq_suppressed;

    /* FLUSHes taken but not yet completed (flush_delay_ms): head, status byte, due time */
    struct pending_flush { uint16_t head; uint8_t *status; uint64_t due_ns; } *flushes;
    unsigned nflushes;

    sim_contract_stats st;
    seg segs[WALK_MAX];
} cdev;

static const struct sim_dev_ops contract_ops;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Absolute CLOCK_REALTIME deadline ns from now (d->cv uses the default clock). */
static void realtime_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ns / 1000000000ull);
    ts->tv_nsec += (long)(ns % 1000000000ull);
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

/* ---- logging ---------------------------------------------------------------------- */
static void dlog(cdev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dlog(cdev *d, const char *fmt, ...)
{
    va_list ap;
    if (!d->verbose)
        return;
    va_start(ap, fmt);
    fputs("contract-dev: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A spec/contract violation by the driver: always loud, always counted. */
static void bug(cdev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bug(cdev *d, const char *fmt, ...)
{
    va_list ap;
    d->st.driver_bugs++;
    va_start(ap, fmt);
    fputs("contract-dev: DRIVER BUG: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- little-endian helpers -------------------------------------------------------- */
static void put8(uint8_t *b, unsigned o, uint8_t v) { b[o] = v; }
static void put16(uint8_t *b, unsigned o, uint16_t v) { b[o] = (uint8_t)v; b[o + 1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, unsigned o, uint32_t v) { put16(b, o, (uint16_t)v); put16(b, o + 2, (uint16_t)(v >> 16)); }
static uint16_t get16(const uint8_t *b, unsigned o) { return (uint16_t)(b[o] | (b[o + 1] << 8)); }
static uint32_t get32(const uint8_t *b, unsigned o) { return get16(b, o) | ((uint32_t)get16(b, o + 2) << 16); }

static void *ram_at(cdev *d, uint64_t gpa, uint64_t len)
{
    if (gpa > d->base.ram_size || len > d->base.ram_size - gpa)
        return NULL;
    return d->base.ram + gpa;
}

/* ---- PCI config space ------------------------------------------------------------- */
static void set_layout(cdev *d)
{
    layout *L = &d->L;
    memset(L, 0, sizeof(*L));
    if (!d->qemu_layout) {
        /* Contract: one 64-bit memory BAR0 of 0x4000, MSI-X table at 0x3100. */
        L->regs_bar = 0; L->msix_bar = 0;
        L->common_off = 0x0000; L->common_len = 0x100;
        L->notify_off = 0x1000; L->notify_len = 0x100;
        L->isr_off = 0x2000;    L->isr_len = 0x20;
        L->dev_off = 0x3000;    L->dev_len = 0x100;
        L->table_off = 0x3100;
        L->pba_off = 0x3100 + 16u * d->msix_vectors;
        L->bar_size[0] = 0x4000; L->bar_flags[0] = 0x4;          /* 64-bit, non-prefetchable */
        while (L->pba_off + 8 * ((d->msix_vectors + 63) / 64) > L->bar_size[0])
            L->bar_size[0] <<= 1;                                 /* large msix_vectors= */
    } else {
        /* Stock QEMU 7.x: BAR4 64-bit prefetchable 0x4000, MSI-X in BAR1 (0x1000). */
        L->regs_bar = 4; L->msix_bar = 1;
        L->common_off = 0x0000; L->common_len = 0x1000;
        L->isr_off = 0x1000;    L->isr_len = 0x1000;
        L->dev_off = 0x2000;    L->dev_len = 0x1000;
        L->notify_off = 0x3000; L->notify_len = 0x1000;
        L->table_off = 0; L->pba_off = 0x800;
        L->bar_size[4] = 0x4000; L->bar_flags[4] = 0xC;          /* 64-bit, prefetchable */
        L->bar_size[1] = 0x1000; L->bar_flags[1] = 0x0;
        if (16u * d->msix_vectors > L->pba_off)                  /* large msix_vectors= */
            L->pba_off = 16u * d->msix_vectors;
        while (L->pba_off + 8 * ((d->msix_vectors + 63) / 64) > L->bar_size[1])
            L->bar_size[1] <<= 1;
    }
    if (!d->msix_on && d->qemu_layout)
        L->bar_size[1] = 0;
}

/* Adds a virtio_pci_cap at o; returns o. */
static unsigned add_vcap(cdev *d, unsigned o, unsigned next, uint8_t type, uint8_t bar,
                         uint32_t off, uint32_t len, uint8_t cap_len)
{
    put8(d->cfg, o, 0x09);
    put8(d->cfg, o + 1, (uint8_t)next);
    put8(d->cfg, o + 2, cap_len);
    put8(d->cfg, o + 3, type);
    put8(d->cfg, o + 4, bar);
    put32(d->cfg, o + 8, off);
    put32(d->cfg, o + 12, len);
    return o;
}

static void build_config(cdev *d)
{
    layout *L = &d->L;
    uint8_t *c = d->cfg;
    unsigned cap_common, cap_notify, cap_isr, cap_dev, first, o, i;

    memset(d->cfg, 0, sizeof(d->cfg));
    memset(d->wmask, 0, sizeof(d->wmask));
    put16(c, 0x00, 0x1AF4);
    put16(c, 0x02, 0x1042);
    put16(c, 0x06, 0x0010);                       /* capability list */
    put8(c, 0x08, d->revision);
    put8(c, 0x0B, 0x01);                          /* class: mass storage / SCSI */
    put16(c, 0x2C, 0x1AF4);
    put16(c, 0x2E, d->qemu_layout ? 0x1100 : 0x0002);
    put8(c, 0x3D, 1);                             /* INTA# */
    put16(d->wmask, 0x04, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE | 0x0140);
    d->wmask[0x3C] = 0xFF;                        /* interrupt line */
    d->wmask[0x0C] = 0xFF;                        /* cache line size */
    /* BARs: writable bits are the address bits only, so writing all ones reads back
     * the size mask (PCI 3.0, 6.2.5.1). */
    for (i = 0; i < 6; i++) {
        uint64_t size = L->bar_size[i];
        if (!size)
            continue;
        put32(c, 0x10 + 4 * i, L->bar_flags[i]);
        put32(d->wmask, 0x10 + 4 * i, (uint32_t)~(size - 1) & ~0xFu);
        if (L->bar_flags[i] & 0x4)
            put32(d->wmask, 0x10 + 4 * (i + 1), (uint32_t)((~(size - 1)) >> 32));
    }

    if (!d->qemu_layout) {
        /* Aero: [40] MSI-X -> [50] common -> [60] notify -> [74] ISR -> [84] device */
        cap_common = add_vcap(d, 0x50, 0x60, 1, (uint8_t)L->regs_bar, L->common_off, L->common_len, 16);
        cap_notify = add_vcap(d, 0x60, 0x74, 2, (uint8_t)L->regs_bar, L->notify_off, L->notify_len, 20);
        cap_isr = add_vcap(d, 0x74, 0x84, 3, (uint8_t)L->regs_bar, L->isr_off, L->isr_len, 16);
        cap_dev = add_vcap(d, 0x84, 0x00, 4, (uint8_t)L->regs_bar, L->dev_off, L->dev_len, 16);
        d->msix_cap = d->msix_on ? 0x40 : 0;
        first = d->msix_on ? 0x40 : 0x50;
        o = 0x40;
        if (d->msix_on)
            put8(c, o + 1, 0x50);
    } else {
        /* QEMU 7.2: [98] MSI-X -> [84] pci-cfg -> [70] notify -> [60] device -> [50] ISR -> [40] common */
        add_vcap(d, 0x84, 0x70, 5, 0, 0, 0, 20);
        cap_notify = add_vcap(d, 0x70, 0x60, 2, (uint8_t)L->regs_bar, L->notify_off, L->notify_len, 20);
        cap_dev = add_vcap(d, 0x60, 0x50, 4, (uint8_t)L->regs_bar, L->dev_off, L->dev_len, 16);
        cap_isr = add_vcap(d, 0x50, 0x40, 3, (uint8_t)L->regs_bar, L->isr_off, L->isr_len, 16);
        cap_common = add_vcap(d, 0x40, 0x00, 1, (uint8_t)L->regs_bar, L->common_off, L->common_len, 16);
        d->msix_cap = d->msix_on ? 0x98 : 0;
        first = d->msix_on ? 0x98 : 0x84;
        o = 0x98;
        if (d->msix_on)
            put8(c, o + 1, 0x84);
    }
    put32(c, cap_notify + 16, 4);                 /* notify_off_multiplier */
    if (d->msix_on) {
        put8(c, o, 0x11);
        put16(c, o + 2, (uint16_t)(d->msix_vectors - 1));
        put32(c, o + 4, L->table_off | (uint32_t)L->msix_bar);
        put32(c, o + 8, L->pba_off | (uint32_t)L->msix_bar);
        d->wmask[o + 3] = 0xC0;                   /* Enable, Function Mask */
    }
    put8(c, 0x34, (uint8_t)first);

    /* Malformed variants for the transport's negative tests. */
    if (d->cap_loop) {                            /* last cap points back at the first */
        unsigned p = first;
        while (c[p + 1])
            p = c[p + 1];
        c[p + 1] = (uint8_t)first;
    }
    if (d->short_cap_len)                         /* notify cap without its multiplier */
        c[cap_notify + 2] = 16;
    if (d->bar6)                                  /* reserved BAR number: cap must be ignored */
        c[cap_common + 4] = 6;
    if (d->range_outside_bar) {
        /* Device cfg runs past the end of the BAR (Aero: straddles it; QEMU, whose
         * notify region ends the BAR: starts at the end, so nothing overlaps). */
        uint32_t size = (uint32_t)L->bar_size[L->regs_bar];
        put32(c, cap_dev + 8, d->qemu_layout ? size : size - 0x80);
        put32(c, cap_dev + 12, 0x100);
    }
    if (d->overlapping)                           /* ISR inside common cfg */
        put32(c, cap_isr + 8, L->common_off + 0x10);
}

static uint64_t bar_address(cdev *d, int i)
{
    uint64_t a = get32(d->cfg, 0x10 + 4 * i) & ~0xFull;
    if (d->L.bar_flags[i] & 0x4)
        a |= (uint64_t)get32(d->cfg, 0x14 + 4 * i) << 32;
    return a;
}

static bool msix_enabled(cdev *d)
{
    return d->msix_cap && (get16(d->cfg, d->msix_cap + 2) & MSIX_CTRL_ENABLE);
}

static bool intx_asserted(cdev *d)
{
    return !d->removed && !msix_enabled(d) && d->isr != 0 &&
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

static void msix_deliver_pending(cdev *d)
{
    unsigned v;
    if (!msix_enabled(d))
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
    if (d->isr == 0 && !msix_enabled(d))
        d->st.intx_raises++;
    d->isr |= bit;
}

static void queue_interrupt(cdev *d)
{
    if (d->removed)
        return;
    if (msix_enabled(d))
        msix_send(d, d->q.vector);
    else
        raise_isr(d, 1);
}

static void config_interrupt(cdev *d)
{
    if (d->removed)
        return;
    d->st.config_interrupts++;
    /* Spec 4.1.4.5: the config bit is set before any config notification. */
    if (msix_enabled(d)) {
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
    config_interrupt(d);
}

/* ---- virtio reset ----------------------------------------------------------------- */
static void virtio_reset(cdev *d)
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

/* ---- request processing ----------------------------------------------------------- */
typedef struct ring_view {
    uint8_t *desc, *avail, *used;
} ring_view;

static bool ring_view_get(cdev *d, ring_view *r)
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
         * flush-delay-ms the sync happens when the FLUSH completes (complete_flushes). */
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
static void complete_flushes(cdev *d, const ring_view *r)
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
static unsigned held_requests(cdev *d)
{
    ring_view r;
    if (d->removed || d->broken || !(d->status & ST_DRIVER_OK) || !d->q.enable)
        return 0;
    unsigned n = d->nflushes + (d->busy ? 1u : 0u);
    if (!d->kick_pending || !ring_view_get(d, &r))
        return n;
    uint16_t avail_idx = __atomic_load_n((uint16_t *)(r.avail + 2), __ATOMIC_ACQUIRE);
    return (uint16_t)(avail_idx - d->q.last_avail) + n;
}

/* Processes every available request. Caller holds d->mu. */
static void process_queue(cdev *d)
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
    if (!ring_view_get(d, &r)) {
        needs_reset(d, "ring addresses outside guest RAM");
        bug(d, "ring desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64 " outside guest RAM", d->q.desc, d->q.driver, d->q.device);
        return;
    }
    old_used = d->q.used_idx;
    d->busy = true;
    complete_flushes(d, &r);
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
        queue_interrupt(d);
}


static void *device_thread(void *arg)
{
    cdev *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->quit) {
        uint64_t due = d->stalled ? 0 : next_flush_due(d);
        if (due && now_ns() >= due) {
            process_queue(d);                  /* completes the due FLUSHes */
            pthread_cond_broadcast(&d->cv);
            continue;
        }
        if (!d->kick_pending || d->stalled) {
            if (due) {
                struct timespec ts;
                realtime_in(&ts, due - now_ns());
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
        process_queue(d);
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void kick(cdev *d)
{
    if (d->sync_mode && !d->stalled) {
        process_queue(d);
    } else {
        d->kick_pending = true;
        pthread_cond_broadcast(&d->cv);
    }
}

/* ---- common configuration (spec 4.1.4.3) ------------------------------------------ */
static unsigned common_width(unsigned off)
{
    switch (off) {
    case 0x00: case 0x04: case 0x08: case 0x0C:
    case 0x20: case 0x24: case 0x28: case 0x2C: case 0x30: case 0x34:
        return 4;
    case 0x10: case 0x12: case 0x16: case 0x18: case 0x1A: case 0x1C: case 0x1E:
    case 0x38: case 0x3A: case 0x3C: case 0x3E:
        return 2;
    case 0x14: case 0x15:
        return 1;
    }
    return 0;
}

static uint32_t common_read(cdev *d, unsigned off, unsigned width)
{
    unsigned w = common_width(off);
    bool qok = d->qsel == 0;
    if (w == 0)
        return 0;                                /* contract: undefined offsets read 0 */
    if (w != width) {
        bug(d, "common cfg offset 0x%x read with width %u (field is %u bytes, spec 4.1.3.1)", off, width, w);
        return 0;
    }
    switch (off) {
    case 0x00: return d->dfsel;
    case 0x04: return d->dfsel < 2 ? (uint32_t)(d->dev_features >> (32 * d->dfsel)) : 0;
    case 0x08: return d->gfsel;
    case 0x0C: return d->gfsel < 2 ? (uint32_t)(d->drv_features >> (32 * d->gfsel)) : 0;
    case 0x10: return d->msix_config;
    case 0x12: return 1;
    case 0x14: return d->status;
    case 0x15: return d->generation;
    case 0x16: return d->qsel;
    case 0x18: return qok && !d->queue_size0 ? d->q.size : 0;
    case 0x1A: return qok ? d->q.vector : NO_VECTOR;
    case 0x1C: return qok ? d->q.enable : 0;
    case 0x1E: return qok ? d->q_notify_off : 0; /* queue_notify_off (option notify_off) */
    case 0x20: return qok ? (uint32_t)d->q.desc : 0;
    case 0x24: return qok ? (uint32_t)(d->q.desc >> 32) : 0;
    case 0x28: return qok ? (uint32_t)d->q.driver : 0;
    case 0x2C: return qok ? (uint32_t)(d->q.driver >> 32) : 0;
    case 0x30: return qok ? (uint32_t)d->q.device : 0;
    case 0x34: return qok ? (uint32_t)(d->q.device >> 32) : 0;
    }
    return 0;
}

static uint16_t accept_vector(cdev *d, uint32_t v)
{
    if (d->vector_readback_ffff || !d->msix_cap)
        return NO_VECTOR;                        /* spec 4.1.5.1.2: mapping failed */
    return v < d->msix_vectors ? (uint16_t)v : NO_VECTOR;
}

static void set_queue_addr(cdev *d, uint64_t *field, bool high, uint32_t v, const char *name)
{
    if (d->q.enable) {
        bug(d, "%s written while the queue is enabled", name);
        return;
    }
    *field = high ? ((*field & 0xFFFFFFFFull) | ((uint64_t)v << 32)) : ((*field & ~0xFFFFFFFFull) | v);
}

/* reset-blocks: like QEMU's virtio_blk_reset (blk_drain), the register write returns
 * only when every request the device holds has completed: a stalled device keeps the
 * writer waiting until it is unstalled, a held FLUSH until it is due. Caller holds
 * d->mu (released while waiting, so the device thread and controls go on). */
static __thread uint64_t tls_held_ns;     /* this thread's last drain (c_held_ns) */

static uint64_t c_held_ns(sim_dev *sd) { (void)sd; return sim_dev_take_held(&tls_held_ns); }

static void drain_for_reset(cdev *d)
{
    uint64_t t0 = now_ns();
    unsigned held = held_requests(d);
    if (held == 0)
        return;
    dlog(d, "reset waits for %u held request(s)", held);
    while (!d->quit && held_requests(d) > 0) {
        if (!d->stalled) {
            ring_view r;
            if (ring_view_get(d, &r)) {
                uint16_t before = d->q.used_idx;
                complete_flushes(d, &r);  /* a held FLUSH still takes its time */
                if (d->q.used_idx != before)
                    queue_interrupt(d);
            }
            process_queue(d);                  /* the drain itself, in the writer's context */
            if (held_requests(d) == 0)
                break;
        }
        struct timespec ts;
        realtime_in(&ts, 5000000ull);
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    uint64_t waited = now_ns() - t0;
    tls_held_ns = waited;
    if (waited > d->st.reset_blocked_ns_max)
        d->st.reset_blocked_ns_max = waited;
    fprintf(stderr, "contract-dev: reset blocked %.1f ms draining %u held request(s)\n", waited / 1e6, held);
}

static void status_write(cdev *d, uint8_t v)
{
    uint8_t old = d->status;
    if (v == 0) {
        d->st.resets++;
        if (d->reset_stuck)
            return;                              /* variant: reset never completes */
        if (d->reset_blocks)
            drain_for_reset(d);
        virtio_reset(d);
        return;
    }
    if (old & ~v & ~ST_NEEDS_RESET)
        bug(d, "device_status 0x%02x -> 0x%02x clears bits without a reset (spec 2.1.1)", old, v);
    if ((v & ST_FEATURES_OK) && !(old & ST_FEATURES_OK)) {
        uint64_t extra = d->drv_features & ~d->dev_features;
        bool ok = !d->refuse_features_ok;
        if (extra) {
            /* Contract: asking for bits not offered makes the device clear FEATURES_OK. */
            bug(d, "driver accepted features not offered: 0x%" PRIx64, extra);
            ok = false;
        }
        if (!(d->drv_features & (1ull << VIRTIO_F_VERSION_1))) {
            bug(d, "driver did not accept VIRTIO_F_VERSION_1");
            ok = false;
        }
        if (!ok)
            v &= (uint8_t)~ST_FEATURES_OK;
    }
    if ((v & ST_DRIVER_OK) && !(old & ST_DRIVER_OK) && !(v & ST_FEATURES_OK))
        bug(d, "DRIVER_OK set without FEATURES_OK (spec 3.1.1)");
    d->status = v | (old & ST_NEEDS_RESET);
    if ((v & ST_DRIVER_OK) && !(old & ST_DRIVER_OK) && d->kick_pending)
        kick(d);
}

static void common_write(cdev *d, unsigned off, unsigned width, uint32_t v)
{
    unsigned w = common_width(off);
    bool qok = d->qsel == 0;
    if (w == 0)
        return;                                  /* contract: ignored */
    if (w != width) {
        bug(d, "common cfg offset 0x%x written with width %u (field is %u bytes, spec 4.1.3.1)", off, width, w);
        return;
    }
    switch (off) {
    case 0x00: d->dfsel = v; break;
    case 0x08: d->gfsel = v; break;
    case 0x0C:
        if (d->status & ST_FEATURES_OK)
            bug(d, "driver_feature written after FEATURES_OK");
        else if (d->gfsel < 2)
            d->drv_features = (d->drv_features & ~(0xFFFFFFFFull << (32 * d->gfsel))) | ((uint64_t)v << (32 * d->gfsel));
        break;
    case 0x10: d->msix_config = accept_vector(d, v); break;
    case 0x14: status_write(d, (uint8_t)v); break;
    case 0x16: d->qsel = (uint16_t)v; break;
    case 0x18:
        if (!qok) break;
        if (d->q.enable) { bug(d, "queue_size written while the queue is enabled"); break; }
        if (v == 0 || (v & (v - 1)) || v > d->qsize_max)
            bug(d, "queue_size %u is not a power of two <= %u (spec 4.1.4.3.2)", v, d->qsize_max);
        else if (d->size_writable)
            d->q.size = (uint16_t)v;
        /* else: contract, queue size fixed at 128: the write is ignored (reads back max) */
        break;
    case 0x1A: if (qok) d->q.vector = accept_vector(d, v); break;
    case 0x1C:
        if (!qok) break;
        if (v != 1) { bug(d, "queue_enable written with %u (spec 4.1.4.3.2: driver MUST NOT write 0)", v); break; }
        if ((d->q.desc & 15) || (d->q.driver & 1) || (d->q.device & 3))
            bug(d, "queue enabled with misaligned ring (desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64 ")", d->q.desc, d->q.driver, d->q.device);
        d->q.enable = 1;
        break;
    case 0x20: case 0x24: if (qok) set_queue_addr(d, &d->q.desc, off == 0x24, v, "queue_desc"); break;
    case 0x28: case 0x2C: if (qok) set_queue_addr(d, &d->q.driver, off == 0x2C, v, "queue_driver"); break;
    case 0x30: case 0x34: if (qok) set_queue_addr(d, &d->q.device, off == 0x34, v, "queue_device"); break;
    case 0x04: case 0x12: case 0x15: case 0x1E: case 0x38:
        bug(d, "write to read-only common cfg field 0x%x", off);
        break;
    default: break;                              /* queue_reset/admin: not offered, ignored */
    }
}

/* ---- device configuration (virtio_blk_config, spec 5.2.4) ------------------------- */
static uint32_t devcfg_read(cdev *d, unsigned off, unsigned width)
{
    uint8_t b[0x40];
    uint32_t v = 0;
    memset(b, 0, sizeof(b));
    put32(b, 0x00, (uint32_t)d->capacity);
    put32(b, 0x04, (uint32_t)(d->capacity >> 32));
    put32(b, 0x08, 0);                           /* size_max: 0 on Aero */
    put32(b, 0x0C, d->seg_max);
    put32(b, 0x14, d->blk_size);
    for (unsigned i = 0; i < width; i++)
        if (off + i < sizeof(b))
            v |= (uint32_t)b[off + i] << (8 * i);
    return v;
}

/* ---- MMIO dispatch ---------------------------------------------------------------- */
static int find_bar(cdev *d, uint64_t gpa, unsigned width, uint64_t *off)
{
    if (!(get16(d->cfg, 0x04) & PCI_COMMAND_MEMORY))
        return -1;
    for (int i = 0; i < 6; i++) {
        uint64_t size = d->L.bar_size[i], base;
        if (!size)
            continue;
        base = bar_address(d, i);
        if (base && gpa >= base && gpa - base + width <= size) {
            *off = gpa - base;
            return i;
        }
    }
    return -1;
}

static bool in_range(uint64_t off, unsigned width, uint32_t start, uint32_t len, uint64_t *rel)
{
    if (off < start || off + width > (uint64_t)start + len)
        return false;
    *rel = off - start;
    return true;
}

static bool msix_table_access(cdev *d, int bar, uint64_t off, unsigned width, uint64_t *rel, bool *pba)
{
    if (!d->msix_cap || bar != d->L.msix_bar)
        return false;
    if (in_range(off, width, d->L.table_off, 16u * d->msix_vectors, rel)) { *pba = false; return true; }
    if (in_range(off, width, d->L.pba_off, 8u * ((d->msix_vectors + 63) / 64), rel)) { *pba = true; return true; }
    return false;
}

static uint32_t c_mmio_read(sim_dev *sd, uint64_t gpa, unsigned width)
{
    cdev *d = (cdev *)sd;
    uint64_t off, rel;
    uint32_t v = 0;
    bool pba;
    int bar;

    pthread_mutex_lock(&d->mu);
    d->st.mmio_reads++;
    if (d->removed) {
        d->st.mmio_after_removal++;
        v = width == 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
        goto out;
    }
    bar = find_bar(d, gpa, width, &off);
    if (bar < 0) {
        fprintf(stderr, "contract-dev: MMIO read of unassigned address 0x%" PRIx64 "\n", gpa);
        goto out;
    }
    if (msix_table_access(d, bar, off, width, &rel, &pba)) {
        if (width != 4 || (rel & 3)) { bug(d, "MSI-X table/PBA read of width %u at 0x%" PRIx64, width, rel); goto out; }
        if (pba) v = (uint32_t)(d->pba[rel / 8] >> (32 * ((rel / 4) & 1)));
        else {
            unsigned e = (unsigned)(rel / 16), w = (unsigned)(rel % 16) / 4;
            v = w == 0 ? d->msix[e].lo : w == 1 ? d->msix[e].hi : w == 2 ? d->msix[e].data : d->msix[e].ctrl;
        }
        goto out;
    }
    if (bar != d->L.regs_bar)
        goto out;
    if (in_range(off, width, d->L.common_off, d->L.common_len, &rel))
        v = common_read(d, (unsigned)rel, width);
    else if (in_range(off, width, d->L.isr_off, d->L.isr_len, &rel)) {
        if (rel == 0) {
            /* Spec 4.1.4.5: read-to-clear, de-asserts INTx. */
            v = d->isr;
            d->isr = 0;
            d->st.isr_reads++;
            if (width != 1) bug(d, "ISR read with width %u", width);
        }
    } else if (in_range(off, width, d->L.dev_off, d->L.dev_len, &rel))
        v = devcfg_read(d, (unsigned)rel, width);
    /* notify region and holes: 0 */
out:
    pthread_mutex_unlock(&d->mu);
    return v;
}

static void c_mmio_write(sim_dev *sd, uint64_t gpa, unsigned width, uint32_t val)
{
    cdev *d = (cdev *)sd;
    uint64_t off, rel;
    bool pba;
    int bar;

    pthread_mutex_lock(&d->mu);
    d->st.mmio_writes++;
    if (d->removed) {
        d->st.mmio_after_removal++;
        goto out;
    }
    bar = find_bar(d, gpa, width, &off);
    if (bar < 0) {
        fprintf(stderr, "contract-dev: MMIO write of unassigned address 0x%" PRIx64 "\n", gpa);
        goto out;
    }
    if (msix_table_access(d, bar, off, width, &rel, &pba)) {
        if (width != 4 || (rel & 3)) { bug(d, "MSI-X table write of width %u at 0x%" PRIx64, width, rel); goto out; }
        if (!pba) {
            unsigned e = (unsigned)(rel / 16), w = (unsigned)(rel % 16) / 4;
            if (w == 0) d->msix[e].lo = val;
            else if (w == 1) d->msix[e].hi = val;
            else if (w == 2) d->msix[e].data = val;
            else { d->msix[e].ctrl = val & 1; msix_deliver_pending(d); }
        }
        goto out;
    }
    if (bar != d->L.regs_bar)
        goto out;
    if (in_range(off, width, d->L.common_off, d->L.common_len, &rel))
        common_write(d, (unsigned)rel, width, val);
    else if (in_range(off, width, d->L.notify_off, d->L.notify_len, &rel)) {
        /* queue_notify_off(0) * multiplier 4: the doorbell of queue 0; value = queue index. */
        if (width == 1) bug(d, "doorbell written with width 1");
        else if (rel != (uint64_t)d->q_notify_off * 4 || (val & 0xFFFF) != 0) bug(d, "doorbell at notify+0x%" PRIx64 " value %u names no queue", rel, val);
        else { d->st.doorbells++; kick(d); }
    } else if (in_range(off, width, d->L.dev_off, d->L.dev_len, &rel)) {
        bug(d, "write to device config offset 0x%" PRIx64 " (no writable field without CONFIG_WCE)", rel);
    } else if (in_range(off, width, d->L.isr_off, d->L.isr_len, &rel)) {
        bug(d, "write to the read-only ISR status");
    }
out:
    pthread_mutex_unlock(&d->mu);
}

/* ---- config-space ops ------------------------------------------------------------- */
static uint32_t c_cfg_read(sim_dev *sd, unsigned off, unsigned width)
{
    cdev *d = (cdev *)sd;
    uint32_t v = 0;
    pthread_mutex_lock(&d->mu);
    if (d->removed)
        v = width == 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
    else if (off + width <= 256) {
        uint8_t b[256];
        memcpy(b, d->cfg, sizeof(b));
        if (d->isr && !msix_enabled(d))
            b[0x06] |= 0x08;                 /* PCI status: Interrupt Status */
        for (unsigned i = 0; i < width; i++)
            v |= (uint32_t)b[off + i] << (8 * i);
    }
    pthread_mutex_unlock(&d->mu);
    return v;
}

static void c_cfg_write(sim_dev *sd, unsigned off, unsigned width, uint32_t val)
{
    cdev *d = (cdev *)sd;
    pthread_mutex_lock(&d->mu);
    if (!d->removed && off + width <= 256) {
        for (unsigned i = 0; i < width; i++) {
            uint8_t m = d->wmask[off + i];
            d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | ((val >> (8 * i)) & m));
        }
        /* Enabling MSI-X / unmasking / bus master may release pending messages. */
        msix_deliver_pending(d);
    }
    pthread_mutex_unlock(&d->mu);
}

static bool c_intx_level(sim_dev *sd)
{
    cdev *d = (cdev *)sd;
    bool v;
    pthread_mutex_lock(&d->mu);
    v = intx_asserted(d);
    pthread_mutex_unlock(&d->mu);
    return v;
}

/* ---- control (fault injection) ---------------------------------------------------- */
static void print_stats(cdev *d)
{
    sim_contract_stats *s = &d->st;
    fprintf(stderr,
            "contract-dev: stats doorbells=%" PRIu64 " requests=%" PRIu64 " reads=%" PRIu64
            " writes=%" PRIu64 " flushes=%" PRIu64 " unsupported=%" PRIu64 " ioerrs=%" PRIu64
            " driver_bugs=%" PRIu64 " msix=%" PRIu64 " intx=%" PRIu64 " config_irqs=%" PRIu64
            " isr_reads=%" PRIu64 " resets=%" PRIu64 " faults=%" PRIu64 " mmio_after_removal=%" PRIu64 "\n",
            s->doorbells, s->requests, s->reads, s->writes, s->flushes, s->unsupported, s->ioerrs,
            s->driver_bugs, s->msix_messages, s->intx_raises, s->config_interrupts, s->isr_reads,
            s->resets, s->faults_injected, s->mmio_after_removal);
}

static int c_control(sim_dev *sd, const char *cmd)
{
    cdev *d = (cdev *)sd;
    int rc = 0;
    unsigned long long n;
    char *end;

    pthread_mutex_lock(&d->mu);
    if (!strcmp(cmd, "hold-completions")) {
        d->hold_completions = true;
    } else if (!strcmp(cmd, "release-completions")) {
        d->hold_completions = false;
        for (unsigned i = 0; i < d->nheld; i++) {
            uint8_t *u = d->held[i].used;
            put32(u, 4 + 8 * (d->held[i].idx % d->held[i].size), d->held[i].id);
            put32(u, 4 + 8 * (d->held[i].idx % d->held[i].size) + 4, 0);
            __atomic_store_n((uint16_t *)(u + 2), (uint16_t)(d->held[i].idx + 1), __ATOMIC_RELEASE);
        }
        d->nheld = 0;
    } else if (!strcmp(cmd, "stall") || !strcmp(cmd, "stall=1")) {
        d->stalled = true;
    } else if (!strcmp(cmd, "unstall") || !strcmp(cmd, "stall=0")) {
        d->stalled = false;
        if (d->kick_pending)
            kick(d);
        pthread_cond_broadcast(&d->cv);
    } else if (!strcmp(cmd, "fail-next-read")) {
        d->fail_next_read++;
    } else if (!strcmp(cmd, "fail-next-write")) {
        d->fail_next_write++;
    } else if (!strcmp(cmd, "drop-next-write")) {
        d->drop_next_write++;
    } else if (!strcmp(cmd, "corrupt-next-read")) {
        d->corrupt_next_read++;
    } else if (!strcmp(cmd, "bad-used-id")) {
        d->bad_used_id++;
    } else if (!strcmp(cmd, "dup-used-id")) {
        d->dup_used_id++;
    } else if (!strncmp(cmd, "garbage-used-len=", 17)) {
        d->garbage_used_len += (unsigned)strtoul(cmd + 17, NULL, 0);
    } else if (!strcmp(cmd, "needs-reset-next")) {
        d->needs_reset_next++;
    } else if (!strcmp(cmd, "needs-reset")) {
        d->status |= ST_NEEDS_RESET;
        d->broken = true;
        config_interrupt(d);
    } else if (!strncmp(cmd, "capacity=", 9)) {
        errno = 0;
        n = strtoull(cmd + 9, &end, 0);
        if (errno || *end || end == cmd + 9 || n > (UINT64_MAX >> 9)) {
            rc = -1;
        } else {
            struct stat sb;
            /* Grow the image so it backs the new capacity; never shrink (data kept). */
            if (fstat(d->fd, &sb) == 0 && (uint64_t)sb.st_size < n * 512 && ftruncate(d->fd, (off_t)(n * 512)) != 0)
                rc = -1;
            else {
                d->capacity = n;
                d->generation++;     /* spec 4.1.4.3: config changed */
                config_interrupt(d);
            }
        }
    } else if (!strcmp(cmd, "config-interrupt")) {
        d->generation++;
        config_interrupt(d);
    } else if (!strcmp(cmd, "surprise-remove")) {
        d->removed = true;
        d->isr = 0;
    } else if (!strcmp(cmd, "stats")) {
        print_stats(d);
        rc = d->st.driver_bugs > INT32_MAX ? INT32_MAX : (int)d->st.driver_bugs;
    } else {
        fprintf(stderr, "contract-dev: unknown control command '%s'\n", cmd);
        rc = -1;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static void c_destroy(sim_dev *sd)
{
    cdev *d = (cdev *)sd;
    if (!d)
        return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->mu);
        d->quit = true;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    if (d->verbose)
        print_stats(d);
    if (d->fd >= 0) {
        fdatasync(d->fd);
        close(d->fd);
    }
    if (d->base.ram && d->base.ram != MAP_FAILED)
        munmap(d->base.ram, d->base.ram_size);
    if (d->base.ram_fd >= 0)
        close(d->base.ram_fd);
    free(d->msix);
    free(d->pba);
    free(d->flushes);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static const struct sim_dev_ops contract_ops = {
    .cfg_read = c_cfg_read,
    .cfg_write = c_cfg_write,
    .mmio_read = c_mmio_read,
    .mmio_write = c_mmio_write,
    .intx_level = c_intx_level,
    .qmp = NULL,
    .control = c_control,
    .destroy = c_destroy,
    .held_ns = c_held_ns,
};

/* ---- options ---------------------------------------------------------------------- */
static int parse_bool(const char *v, bool *out)
{
    if (!v || !strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) { *out = true; return 0; }
    if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) { *out = false; return 0; }
    return -1;
}

static int parse_num(const char *v, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (!v || !*v)
        return -1;
    errno = 0;
    *out = strtoull(v, &end, 0);
    return (errno || *end || *out > max) ? -1 : 0;
}

static int parse_opts(cdev *d, const char *opts, char *err, size_t err_len)
{
    static const struct { const char *name; size_t off; } flags[] = {
        { "msix", offsetof(cdev, msix_on) },            { "event_idx", offsetof(cdev, event_idx) },
        { "indirect_desc", offsetof(cdev, indirect) },  { "flush", offsetof(cdev, flush) },
        { "ro", offsetof(cdev, ro) },                    { "queue_size_writable", offsetof(cdev, size_writable) },
        { "cap_loop", offsetof(cdev, cap_loop) },        { "short_cap_len", offsetof(cdev, short_cap_len) },
        { "bar6", offsetof(cdev, bar6) },                { "range_outside_bar", offsetof(cdev, range_outside_bar) },
        { "overlapping", offsetof(cdev, overlapping) },  { "refuse_features_ok", offsetof(cdev, refuse_features_ok) },
        { "queue_size0", offsetof(cdev, queue_size0) },  { "vector_readback_ffff", offsetof(cdev, vector_readback_ffff) },
        { "reset_stuck", offsetof(cdev, reset_stuck) },  { "version1", offsetof(cdev, version1) },
        { "serial_per_reset", offsetof(cdev, serial_per_reset) },
    };
    char buf[1024], *save = NULL, *tok;
    bool seg_max_set = false;
    unsigned long long n;

    if (!opts || !*opts)
        goto defaults;
    if (strlen(opts) >= sizeof(buf)) {
        snprintf(err, err_len, "contract: device options too long");
        return -1;
    }
    strcpy(buf, opts);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *val = strchr(tok, '=');
        size_t i;
        bool done = false;
        if (val)
            *val++ = 0;
        for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
            if (!strcmp(tok, flags[i].name)) {
                if (parse_bool(val, (bool *)((char *)d + flags[i].off)) != 0)
                    goto bad;
                done = true;
            }
        }
        if (done)
            continue;
        if (!strcmp(tok, "layout")) {
            if (val && !strcmp(val, "aero")) d->qemu_layout = false;
            else if (val && !strcmp(val, "qemu")) d->qemu_layout = true;
            else goto bad;
        } else if (!strcmp(tok, "mode")) {
            if (val && !strcmp(val, "sync")) d->sync_mode = true;
            else if (val && !strcmp(val, "thread")) d->sync_mode = false;
            else goto bad;
        } else if (!strcmp(tok, "revision")) {
            if (parse_num(val, 255, &n)) goto bad;
            d->revision = (uint8_t)n;
        } else if (!strcmp(tok, "queue_size")) {
            if (parse_num(val, 32768, &n) || n == 0 || (n & (n - 1))) goto bad;
            d->qsize_max = (uint16_t)n;
        } else if (!strcmp(tok, "msix_vectors")) {
            if (parse_num(val, MSIX_MAX, &n) || n == 0) goto bad;
            d->msix_vectors = (uint16_t)n;
        } else if (!strcmp(tok, "seg_max")) {
            if (parse_num(val, GUARD_DESCS, &n) || n == 0) goto bad;
            d->seg_max = (uint32_t)n;
            seg_max_set = true;
        } else if (!strcmp(tok, "blk_size")) {
            if (parse_num(val, 1u << 20, &n) || n < 512 || (n & (n - 1))) goto bad;
            d->blk_size = (uint32_t)n;
        } else if (!strcmp(tok, "notify_off")) {
            /* doorbell at notify + N * 4 must fit the smaller (Aero, 0x100) notify region */
            if (parse_num(val, (0x100 - 2) / 4, &n)) goto bad;
            d->q_notify_off = (uint16_t)n;
        } else if (!strcmp(tok, "reset-blocks") || !strcmp(tok, "reset_blocks")) {
            if (parse_bool(val, &d->reset_blocks) != 0) goto bad;
        } else if (!strcmp(tok, "flush-delay-ms") || !strcmp(tok, "flush_delay_ms")) {
            if (parse_num(val, 600000, &n)) goto bad;
            d->flush_delay_ms = (uint32_t)n;
        } else if (!strcmp(tok, "latency_us")) {
            if (parse_num(val, 1000000, &n)) goto bad;
            d->latency_us = (uint32_t)n;
        } else {
            snprintf(err, err_len, "contract: unknown device option '%s' (see docs/contract-device.md)", tok);
            return -1;
        }
        continue;
bad:
        snprintf(err, err_len, "contract: bad value for device option '%s'", tok);
        return -1;
    }
defaults:
    if (!seg_max_set)
        d->seg_max = d->qsize_max > 2 ? d->qsize_max - 2u : 1u;  /* contract: queue size - 2 */
    return 0;
}

/* ---- creation --------------------------------------------------------------------- */
static int open_disk(cdev *d, const sim_dev_config *cfg, char *err, size_t err_len)
{
    struct stat sb;
    if (!cfg->disk_path || !*cfg->disk_path) {
        snprintf(err, err_len, "contract: no disk image path");
        return -1;
    }
    snprintf(d->path, sizeof(d->path), "%s", cfg->disk_path);
    d->fd = open(cfg->disk_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->fd < 0 || fstat(d->fd, &sb) != 0) {
        snprintf(err, err_len, "contract: cannot open %s: %s", cfg->disk_path, strerror(errno));
        return -1;
    }
    if (sb.st_size == 0) {
        if (cfg->disk_size < 512) {
            snprintf(err, err_len, "contract: %s is empty and no size was given", cfg->disk_path);
            return -1;
        }
        if (ftruncate(d->fd, (off_t)cfg->disk_size) != 0) {          /* sparse */
            snprintf(err, err_len, "contract: cannot size %s: %s", cfg->disk_path, strerror(errno));
            return -1;
        }
        sb.st_size = (off_t)cfg->disk_size;
    }
    d->capacity = (uint64_t)sb.st_size / 512;
    if (d->capacity == 0) {
        snprintf(err, err_len, "contract: %s is smaller than one sector", cfg->disk_path);
        return -1;
    }
    return 0;
}

static int alloc_ram(cdev *d, uint64_t size, char *err, size_t err_len)
{
    int fd = memfd_create("aerovblk-contract-ram", MFD_CLOEXEC);
    d->base.ram_size = size;
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0) {
        d->base.ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (d->base.ram != MAP_FAILED) {
            d->base.ram_fd = fd;
            return 0;
        }
    }
    if (fd >= 0)
        close(fd);
    d->base.ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (d->base.ram == MAP_FAILED) {
        d->base.ram = NULL;
        snprintf(err, err_len, "contract: cannot allocate %" PRIu64 " bytes of guest RAM: %s", size, strerror(errno));
        return -1;
    }
    return 0;
}

sim_dev *sim_contract_create(const sim_dev_config *cfg, char *err, size_t err_len)
{
    cdev *d = calloc(1, sizeof(*d));
    uint64_t ram_size = cfg->ram_size ? cfg->ram_size : (256ull << 20);

    if (!d) {
        snprintf(err, err_len, "contract: out of memory");
        return NULL;
    }
    d->fd = -1;
    d->base.ram_fd = -1;
    d->base.ops = &contract_ops;
    snprintf(d->base.name, sizeof(d->base.name), "contract");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->verbose = cfg->verbose;
    /* Contract defaults */
    d->revision = 0x01;
    d->qsize_max = 128;
    d->msix_on = true;
    d->msix_vectors = 2;
    d->indirect = true;
    d->flush = true;
    d->blk_size = 512;
    d->version1 = true;
    if (parse_opts(d, cfg->device_opts, err, err_len) != 0)
        goto fail;
    if (ram_size < (2ull << 20) || (ram_size & 0xFFF)) {
        snprintf(err, err_len, "contract: guest RAM size must be >= 2 MiB and page aligned");
        goto fail;
    }
    if (alloc_ram(d, ram_size, err, err_len) != 0 || open_disk(d, cfg, err, err_len) != 0)
        goto fail;
    d->base.ram_base_free = 0x100000;
    /* BARs go above RAM; below 4 GiB when RAM allows (like a PC's PCI hole). */
    d->base.mmio_window_base = ram_size <= 0xE0000000ull ? 0xE0000000ull : ((ram_size + 0xFFFFFFFFull) & ~0xFFFFFFFFull);

    d->dev_features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE);
    if (d->version1) d->dev_features |= 1ull << VIRTIO_F_VERSION_1;
    if (d->indirect) d->dev_features |= 1ull << VIRTIO_F_RING_INDIRECT;
    if (d->flush) d->dev_features |= 1ull << VIRTIO_BLK_F_FLUSH;
    if (d->event_idx) d->dev_features |= 1ull << VIRTIO_F_RING_EVENT_IDX;
    if (d->ro) d->dev_features |= 1ull << VIRTIO_BLK_F_RO;

    d->msix = calloc(d->msix_vectors, sizeof(*d->msix));
    d->pba = calloc((d->msix_vectors + 63) / 64, sizeof(*d->pba));
    d->flushes = calloc(d->qsize_max, sizeof(*d->flushes));
    if (!d->msix || !d->pba || !d->flushes) {
        snprintf(err, err_len, "contract: out of memory");
        goto fail;
    }
    for (unsigned v = 0; v < d->msix_vectors; v++)
        d->msix[v].ctrl = 1;                 /* PCI 3.0: entries start masked */
    set_layout(d);
    build_config(d);
    virtio_reset(d);

    if (pthread_create(&d->thread, NULL, device_thread, d) != 0) {
        snprintf(err, err_len, "contract: cannot start the device thread");
        goto fail;
    }
    d->thread_started = true;
    dlog(d, "%s layout, rev %02x, queue %u, msix %s (%u), capacity %" PRIu64 " sectors, image %s",
         d->qemu_layout ? "qemu" : "aero", d->revision, d->qsize_max, d->msix_on ? "on" : "off",
         d->msix_vectors, d->capacity, d->path);
    return &d->base;
fail:
    c_destroy(&d->base);
    return NULL;
}

/* ---- extra API -------------------------------------------------------------------- */
int sim_contract_get_stats(sim_dev *sd, sim_contract_stats *out)
{
    cdev *d = (cdev *)sd;
    if (!sd || sd->ops != &contract_ops)
        return -1;
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

int sim_contract_wait_idle(sim_dev *sd, unsigned timeout_ms)
{
    cdev *d = (cdev *)sd;
    struct timespec deadline;
    int rc = 0;
    if (!sd || sd->ops != &contract_ops)
        return -1;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&d->mu);
    while (d->kick_pending || d->busy) {
        if (d->stalled || pthread_cond_timedwait(&d->cv, &d->mu, &deadline) == ETIMEDOUT) {
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int sim_contract_irq_counts(sim_dev *sd, uint64_t *interrupting, uint64_t *suppressed)
{
    if (!sd || sd->ops != &contract_ops || !interrupting || !suppressed)
        return -1;
    cdev *d = (cdev *)sd;
    pthread_mutex_lock(&d->mu);
    *interrupting = d->irq_passes;
    *suppressed = d->irq_suppressed;
    pthread_mutex_unlock(&d->mu);
    return 0;
}
