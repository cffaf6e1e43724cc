/*
 * Hibernation resume of the same instance (issue 11 item 6, facts §11.3).
 *
 * S4 resume, hybrid sleep and a cancelled hibernation continue the instance that was
 * running when the system hibernated. Meanwhile the hibernation instance (dump-load)
 * reset the device and ran its own ring, and on a real resume the firmware's INT13
 * driver did the same at yet another address before winresume restored memory. Whether
 * StorPort stops and restarts the boot adapter around all this is undocumented:
 * --s4-adapter-control on|off (default off, the harsher: the instance is neither
 * stopped nor restarted and gets no call at all). --s4-firmware on|off (default on):
 * a firmware stand-in resets the device, negotiates VERSION_1 only, runs a queue of its
 * own, reads sector 0 and leaves the device running (DRIVER_OK, queue enabled) — as a
 * BIOS that does not reset its devices before handing over does.
 *
 * After the resume the memory those rings used belongs to the resumed system again
 * (winresume restored it from the hiberfile). The simulator fills it with a pattern and
 * keeps it from being handed out; any change to it is a device DMA into a ring left
 * behind (finding S4, checked at teardown); and each doorbell of the resumed instance,
 * until it has once found the device running its own queue, checks the device's
 * queue 0 registers (harness access, not counted): not DRIVER_OK, queue disabled, or a
 * descriptor table outside the instance's uncached extension is an S4 finding.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

bool sim_s4_adapter_control = false;
bool sim_s4_firmware = true;
unsigned sim_s4_gap_ms = 30000;
int64_t sim_s4_time_offset;

#define PG 4096u
#define CANARY 0x5A
/* virtio 1.x modern common configuration (spec 4.1.4.3) */
#define C_DFSEL 0x00
#define C_GF_SEL 0x08
#define C_GF 0x0C
#define C_STATUS 0x14
#define C_QSEL 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1A
#define C_QENABLE 0x1C
#define C_QNOTIFY 0x1E
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30

static uint64_t region_gpa(const struct sim_pci *p, unsigned type)
{
    if (!p->vreg[type].present || !p->bar[p->vreg[type].bar].present) return 0;
    return p->bar[p->vreg[type].bar].gpa + p->vreg[type].off;
}

/* notify_off_multiplier of the notify capability (spec 4.1.4.4), from config space. */
static uint32_t notify_multiplier(const struct sim_pci *p)
{
    unsigned ptr = p->cfg[0x34] & 0xFC;
    for (int n = 0; ptr >= 0x40 && ptr < 0xF0 && n < 48; n++) {
        if (p->cfg[ptr] == 0x09 && p->cfg[ptr + 3] == 2 && ptr + 20 <= 256) {
            uint32_t m;
            memcpy(&m, &p->cfg[ptr + 16], 4);
            return m;
        }
        ptr = p->cfg[ptr + 1] & 0xFC;
    }
    return 0;
}

static void stale_add(struct sim_adapter *a, uint64_t gpa, uint64_t len, const char *who)
{
    if (a->s4_nstale >= 4 || !len) return;
    memset(sim_gpa(a->dev, gpa), CANARY, len);
    a->s4_stale[a->s4_nstale].gpa = gpa;
    a->s4_stale[a->s4_nstale].len = len;
    a->s4_stale[a->s4_nstale].who = who;
    a->s4_stale[a->s4_nstale].reported = false;
    a->s4_nstale++;
    /* winresume restored memory the resumed system owns: keep it out of the resumed
     * instance's allocations so the pattern stays the evidence */
    pthread_mutex_lock(&a->mem.lock);
    for (uint64_t g = gpa & ~(uint64_t)(PG - 1); g < gpa + len; g += PG) {
        if (g < a->mem.base || g >= a->mem.end) continue;
        uint64_t i = (g - a->mem.base) / PG;
        if (!a->mem.used[i]) { a->mem.used[i] = 1; a->mem.free_pages--; }
    }
    pthread_mutex_unlock(&a->mem.lock);
}

/* Guest-physical address of a virtio region (cfg_type 1..4), 0 if absent. */
uint64_t sim_fw_region_gpa(const struct sim_pci *p, unsigned type) { return region_gpa(p, type); }

/* A minimal virtio-blk driver's bring-up (spec 3.1.1): reset, VERSION_1 as the only
 * feature, queue 0 selected and its size cut to max_qsz when larger. Shared by the
 * firmware stand-in and the ideal driver (sim/ideal.c). */
int sim_fw_queue_open(sim_dev *d, const struct sim_pci *p, unsigned max_qsz, unsigned *qsz, char *err, size_t el)
{
    uint64_t c = region_gpa(p, 1), nb = region_gpa(p, 2);
    if (!c || !nb) { snprintf(err, el, "no common/notify region"); return -1; }
    d->ops->mmio_write(d, c + C_STATUS, 1, 0);
    uint64_t dl = sim_now_ns() + 1000000000ull;
    while (d->ops->mmio_read(d, c + C_STATUS, 1) != 0 && sim_now_ns() < dl) sim_sleep_us(100);
    d->ops->mmio_write(d, c + C_STATUS, 1, 0x01 | 0x02);
    d->ops->mmio_write(d, c + C_GF_SEL, 4, 0);
    d->ops->mmio_write(d, c + C_GF, 4, 0);
    d->ops->mmio_write(d, c + C_GF_SEL, 4, 1);
    d->ops->mmio_write(d, c + C_GF, 4, 1);          /* VERSION_1 (bit 32) only */
    d->ops->mmio_write(d, c + C_STATUS, 1, 0x01 | 0x02 | 0x08);
    if (!(d->ops->mmio_read(d, c + C_STATUS, 1) & 0x08)) { snprintf(err, el, "FEATURES_OK refused"); return -1; }
    d->ops->mmio_write(d, c + C_QSEL, 2, 0);
    unsigned n = d->ops->mmio_read(d, c + C_QSIZE, 2);
    if (n > max_qsz) { d->ops->mmio_write(d, c + C_QSIZE, 2, max_qsz); n = d->ops->mmio_read(d, c + C_QSIZE, 2); }
    if (!n || n > 1024) { snprintf(err, el, "queue size %u", n); return -1; }
    *qsz = n;
    return 0;
}

/* Queue 0's rings, no MSI-X vector (the caller polls the used ring), queue enabled,
 * DRIVER_OK; returns the queue's doorbell address (spec 4.1.4.4). */
uint64_t sim_fw_queue_start(sim_dev *d, const struct sim_pci *p, uint64_t desc, uint64_t avail, uint64_t used)
{
    uint64_t c = region_gpa(p, 1), nb = region_gpa(p, 2);
    d->ops->mmio_write(d, c + C_QDESC, 4, (uint32_t)desc); d->ops->mmio_write(d, c + C_QDESC + 4, 4, (uint32_t)(desc >> 32));
    d->ops->mmio_write(d, c + C_QDRIVER, 4, (uint32_t)avail); d->ops->mmio_write(d, c + C_QDRIVER + 4, 4, (uint32_t)(avail >> 32));
    d->ops->mmio_write(d, c + C_QDEVICE, 4, (uint32_t)used); d->ops->mmio_write(d, c + C_QDEVICE + 4, 4, (uint32_t)(used >> 32));
    d->ops->mmio_write(d, c + C_QMSIX, 2, 0xFFFF);
    unsigned noff = d->ops->mmio_read(d, c + C_QNOTIFY, 2);
    d->ops->mmio_write(d, c + C_QENABLE, 2, 1);
    d->ops->mmio_write(d, c + C_STATUS, 1, 0x01 | 0x02 | 0x08 | 0x04);
    return nb + (uint64_t)noff * notify_multiplier(p);
}

/* The firmware stand-in: a minimal virtio-blk driver (spec 3.1.1, 2.7) that reads
 * sector 0 through a ring of its own and leaves the device running. */
static int firmware_run(struct sim_adapter *a, char *err, size_t el)
{
    sim_dev *d = a->dev;
    unsigned qsz;
    char e2[200];
    if (sim_fw_queue_open(d, &a->pci, 16, &qsz, e2, sizeof(e2))) { snprintf(err, el, "firmware: %s", e2); return -1; }
    /* descriptors, avail ring, used ring (page-aligned: spec 2.7 asks 16/2/4) and the
     * buffers, each sized for qsz: a device whose queue size is fixed (the contract
     * device ignores the smaller size written) keeps e.g. 256 */
    unsigned desc_pages = (16u * qsz + PG - 1) / PG, avail_pages = (6u + 2u * qsz + PG - 1) / PG;
    unsigned used_pages = (6u + 8u * qsz + PG - 1) / PG, pages = desc_pages + avail_pages + used_pages + 1;
    uint64_t ring = sim_mem_alloc_contig(&a->mem, pages);
    if (!ring) { snprintf(err, el, "firmware: no memory"); return -1; }
    uint8_t *m = sim_gpa(d, ring);
    memset(m, 0, (size_t)pages * PG);
    uint64_t desc = ring, avail = desc + (uint64_t)desc_pages * PG, used = avail + (uint64_t)avail_pages * PG;
    uint64_t buf = used + (uint64_t)used_pages * PG;
    uint64_t doorbell = sim_fw_queue_start(d, &a->pci, desc, avail, used);
    /* READ of sector 0: header, 512-byte data, status (spec 5.2.6) */
    uint8_t *hdr = sim_gpa(d, buf);
    memset(hdr, 0, 16);
    hdr[512 + 16] = 0xFF;
    struct { uint64_t addr; uint32_t len; uint16_t flags, next; } dsc[3] = {
        { buf, 16, 1, 1 }, { buf + 16, 512, 1 | 2, 2 }, { buf + 16 + 512, 1, 2, 0 } };
    memcpy(m, dsc, sizeof(dsc));
    uint16_t av[3] = { 1 /* NO_INTERRUPT */, 1, 0 };
    av[2] = 0;                     /* ring[0] = descriptor 0 */
    memcpy(sim_gpa(d, avail + 4), &av[2], 2);
    __atomic_store_n((uint16_t *)sim_gpa(d, avail), av[0], __ATOMIC_RELEASE);
    __atomic_store_n((uint16_t *)sim_gpa(d, avail + 2), av[1], __ATOMIC_RELEASE);
    d->ops->mmio_write(d, doorbell, 2, 0);
    uint64_t dl = sim_now_ns() + 5000000000ull;
    while (__atomic_load_n((uint16_t *)sim_gpa(d, used + 2), __ATOMIC_ACQUIRE) != 1 && sim_now_ns() < dl)
        sim_sleep_us(200);
    if (__atomic_load_n((uint16_t *)sim_gpa(d, used + 2), __ATOMIC_ACQUIRE) != 1 || hdr[512 + 16] != 0) {
        snprintf(err, el, "firmware: its READ of sector 0 did not complete (status 0x%02x)", hdr[512 + 16]);
        return -1;
    }
    sim_log("s4: firmware stand-in reset the device, ran queue 0 at 0x%llx (size %u), read sector 0, "
            "left the device running", (unsigned long long)ring, qsz);
    stale_add(a, ring, (uint64_t)pages * PG, "the firmware's ring");
    return 0;
}

int sim_s4_resume(struct sim_adapter *frozen, struct sim_adapter *hiber, char *err, size_t el)
{
    /* the hibernation instance's memory is dead (its SRB extensions may still be
     * poisoned in its quarantine): the resumed instance must not be handed it */
    if (hiber && hiber->mem.npages == frozen->mem.npages) {
        pthread_mutex_lock(&frozen->mem.lock);
        for (uint64_t i = 0; i < frozen->mem.npages; i++)
            if (hiber->mem.used[i] && !frozen->mem.used[i]) { frozen->mem.used[i] = 1; frozen->mem.free_pages--; }
        pthread_mutex_unlock(&frozen->mem.lock);
    }
    if (hiber && hiber->unc_len)
        stale_add(frozen, hiber->unc_gpa, hiber->unc_len, "the hibernation instance's ring");
    if (sim_s4_firmware && firmware_run(frozen, err, el)) return -1;
    /* the hibernation took --s4-gap-ms of wall-clock time, exactly, whatever the
     * simulation of it took (Windows resynchronises the system time from the RTC on
     * wake) */
    int64_t took = (int64_t)(sim_now_ns() - frozen->s4_frozen_ns) / 100;
    __atomic_fetch_add(&sim_s4_time_offset, (int64_t)sim_s4_gap_ms * 10000 - took, __ATOMIC_RELAXED);
    frozen->s4_hibernated = false;
    frozen->s4_watch = true;
    sim_log("s4: the hibernated instance continues (%s ScsiRestartAdapter, %u ms later)",
            sim_s4_adapter_control ? "with" : "without", sim_s4_gap_ms);
    if (sim_port_thaw(frozen, sim_s4_adapter_control)) {
        snprintf(err, el, "resume: ScsiRestartAdapter failed");
        return -1;
    }
    return 0;
}

void sim_s4_doorbell(struct sim_adapter *a)
{
    sim_dev *d = a->dev;
    uint64_t c = region_gpa(&a->pci, 1);
    if (!c) return;
    unsigned st = d->ops->mmio_read(d, c + C_STATUS, 1);
    unsigned sel = d->ops->mmio_read(d, c + C_QSEL, 2);
    d->ops->mmio_write(d, c + C_QSEL, 2, 0);
    unsigned en = d->ops->mmio_read(d, c + C_QENABLE, 2);
    uint64_t desc = d->ops->mmio_read(d, c + C_QDESC, 4) | (uint64_t)d->ops->mmio_read(d, c + C_QDESC + 4, 4) << 32;
    d->ops->mmio_write(d, c + C_QSEL, 2, sel);
    bool ours = (st & 0xC4) == 0x04 && en == 1 && desc >= a->unc_gpa && desc < a->unc_gpa + a->unc_len;
    if (ours) { a->s4_watch = false; return; }
    const char *whose = "an address it never programmed";
    for (unsigned i = 0; i < a->s4_nstale; i++)
        if (desc >= a->s4_stale[i].gpa && desc < a->s4_stale[i].gpa + a->s4_stale[i].len) whose = a->s4_stale[i].who;
    sim_finding("S4", "resumed instance rang its doorbell while the device runs %s (status 0x%02x, queue 0 %s, "
                "descriptors at 0x%llx = %s): it must re-initialise the device first (facts §11.3)",
                (st & 0x04) ? "someone else's queue" : "no queue (reset)", st, en ? "enabled" : "disabled",
                (unsigned long long)desc, whose);
    a->s4_watch = false;     /* once: the request hangs from here on */
}

void sim_s4_check(struct sim_adapter *a)
{
    for (unsigned i = 0; i < a->s4_nstale; i++) {
        if (a->s4_stale[i].reported) continue;
        const uint8_t *p = sim_gpa(a->dev, a->s4_stale[i].gpa);
        uint64_t n = 0;
        for (uint64_t k = 0; k < a->s4_stale[i].len; k++) n += p[k] != CANARY;
        if (n) {
            sim_finding("S4", "the device wrote %llu byte(s) into %s at 0x%llx after the resume (memory the "
                        "resumed system owns again)", (unsigned long long)n, a->s4_stale[i].who,
                        (unsigned long long)a->s4_stale[i].gpa);
            a->s4_stale[i].reported = true;
        }
    }
}
