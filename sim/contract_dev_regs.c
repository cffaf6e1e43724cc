/*
 * Contract device: PCI configuration space (capabilities, BAR layout variants), the
 * virtio common configuration, device status and reset, the device-specific
 * configuration, the MSI-X table and the register-access ops (cfg / MMIO / INTx).
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

/* ---- PCI config space ------------------------------------------------------------- */
void cdev_set_layout(cdev *d)
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

void cdev_build_config(cdev *d)
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
static __thread uint64_t tls_held_ns;     /* this thread's last drain (cdev_held_ns) */

uint64_t cdev_held_ns(sim_dev *sd) { (void)sd; return sim_dev_take_held(&tls_held_ns); }

static void drain_for_reset(cdev *d)
{
    uint64_t t0 = now_ns();
    unsigned held = cdev_held_requests(d);
    if (held == 0)
        return;
    dlog(d, "reset waits for %u held request(s)", held);
    while (!d->quit && cdev_held_requests(d) > 0) {
        if (!d->stalled) {
            ring_view r;
            if (cdev_ring_view_get(d, &r)) {
                uint16_t before = d->q.used_idx;
                cdev_complete_flushes(d, &r);  /* a held FLUSH still takes its time */
                if (d->q.used_idx != before)
                    cdev_queue_interrupt(d);
            }
            cdev_process_queue(d);                  /* the drain itself, in the writer's context */
            if (cdev_held_requests(d) == 0)
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
        cdev_virtio_reset(d);
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
        cdev_kick(d);
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
        base = cdev_bar_address(d, i);
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

uint32_t cdev_mmio_read(sim_dev *sd, uint64_t gpa, unsigned width)
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

void cdev_mmio_write(sim_dev *sd, uint64_t gpa, unsigned width, uint32_t val)
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
            else { d->msix[e].ctrl = val & 1; cdev_msix_deliver_pending(d); }
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
        else { d->st.doorbells++; cdev_kick(d); }
    } else if (in_range(off, width, d->L.dev_off, d->L.dev_len, &rel)) {
        bug(d, "write to device config offset 0x%" PRIx64 " (no writable field without CONFIG_WCE)", rel);
    } else if (in_range(off, width, d->L.isr_off, d->L.isr_len, &rel)) {
        bug(d, "write to the read-only ISR status");
    }
out:
    pthread_mutex_unlock(&d->mu);
}

/* ---- config-space ops ------------------------------------------------------------- */
uint32_t cdev_cfg_read(sim_dev *sd, unsigned off, unsigned width)
{
    cdev *d = (cdev *)sd;
    uint32_t v = 0;
    pthread_mutex_lock(&d->mu);
    if (d->removed)
        v = width == 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
    else if (off + width <= 256) {
        uint8_t b[256];
        memcpy(b, d->cfg, sizeof(b));
        if (d->isr && !cdev_msix_enabled(d))
            b[0x06] |= 0x08;                 /* PCI status: Interrupt Status */
        for (unsigned i = 0; i < width; i++)
            v |= (uint32_t)b[off + i] << (8 * i);
    }
    pthread_mutex_unlock(&d->mu);
    return v;
}

void cdev_cfg_write(sim_dev *sd, unsigned off, unsigned width, uint32_t val)
{
    cdev *d = (cdev *)sd;
    pthread_mutex_lock(&d->mu);
    if (!d->removed && off + width <= 256) {
        for (unsigned i = 0; i < width; i++) {
            uint8_t m = d->wmask[off + i];
            d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | ((val >> (8 * i)) & m));
        }
        /* Enabling MSI-X / unmasking / bus master may release pending messages. */
        cdev_msix_deliver_pending(d);
    }
    pthread_mutex_unlock(&d->mu);
}

bool cdev_intx_level(sim_dev *sd)
{
    cdev *d = (cdev *)sd;
    bool v;
    pthread_mutex_lock(&d->mu);
    v = cdev_intx_asserted(d);
    pthread_mutex_unlock(&d->mu);
    return v;
}

