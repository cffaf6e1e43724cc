/*
 * QEMU backend: the sim_dev ops (simdev.h) the simulator core calls from any thread:
 * PCI config space through 0xCF8/0xCFC and MMIO as qtest commands, the INTx line, QMP,
 * destroy; the blocking reset (a status-0 write held until QEMU used every request);
 * and the counters sim_qemu_notify_writes / sim_qemu_get_stats.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "qemu_backend_int.h"

/* ------------------------------------------------------------------- the ops */

static qemu_dev *to_qd(sim_dev *d) { return (qemu_dev *)d; }

static uint32_t width_mask(unsigned width)
{
    return width >= 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
}

static bool valid_width(unsigned width) { return width == 1 || width == 2 || width == 4; }

/* A failed qtest command: a broken stream is reported once, single failures always. */
static void qemu_report(qemu_dev *qd, const char *what, const char *detail)
{
    if (qd->qt.dead) {
        if (qd->dead_reported)
            return;
        qd->dead_reported = true;
    }
    fprintf(stderr, "aerovblk-sim: qemu backend: %s: %s\n", what, detail);
}

/* Selects dword `off` of 00:04.0 config space through 0xCF8. Client lock held. */
static int qemu_select_cfg(qemu_dev *qd, unsigned off, char *err, size_t err_len)
{
    uint32_t addr = 0x80000000u | (QEMU_PCI_SLOT << 11) | (off & 0xFCu);
    if (qd->cf8_valid && qd->cf8 == addr)
        return 0;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "outl 0xcf8 0x%" PRIx32, addr);
    qd->cf8_valid = false;
    if (sim_qtest_cmd_locked(&qd->qt, cmd, NULL, err, err_len) != 0)
        return -1;
    qd->cf8 = addr;
    qd->cf8_valid = true;
    return 0;
}

/*
 * Who calls: the simulator core (firmware/bus-driver emulation, StorPort config reads),
 * any thread. Config space is 256 bytes (conventional PCI on the q35 root bus).
 */
uint32_t qemu_cfg_read(sim_dev *d, unsigned off, unsigned width)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width) || off + width > 256 || (off & (width - 1))) {
        snprintf(err, sizeof(err), "offset 0x%x width %u", off, width);
        qemu_report(qd, "invalid config read", err);
        return width_mask(valid_width(width) ? width : 4);
    }
    uint64_t v = 0;
    sim_qtest_lock(&qd->qt);
    int rc = qemu_select_cfg(qd, off, err, sizeof(err));
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "%s 0x%x", width == 1 ? "inb" : width == 2 ? "inw" : "inl",
                 0xCFCu + (off & 3));
        rc = sim_qtest_cmd_locked(&qd->qt, cmd, &v, err, sizeof(err));
    }
    sim_qtest_unlock(&qd->qt);
    if (rc != 0) {
        qemu_report(qd, "config read failed", err);
        return width_mask(width);   /* what a vanished PCI function returns */
    }
    return (uint32_t)v & width_mask(width);
}

static void qemu_cfg_write(sim_dev *d, unsigned off, unsigned width, uint32_t val)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width) || off + width > 256 || (off & (width - 1))) {
        snprintf(err, sizeof(err), "offset 0x%x width %u", off, width);
        qemu_report(qd, "invalid config write", err);
        return;
    }
    sim_qtest_lock(&qd->qt);
    int rc = qemu_select_cfg(qd, off, err, sizeof(err));
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "%s 0x%x 0x%" PRIx32,
                 width == 1 ? "outb" : width == 2 ? "outw" : "outl", 0xCFCu + (off & 3),
                 val & width_mask(width));
        rc = sim_qtest_cmd_locked(&qd->qt, cmd, NULL, err, sizeof(err));
    }
    if (rc == 0 && width == 4 && off == 0x20) __atomic_store_n(&qd->bar4_lo, val, __ATOMIC_RELAXED);
    if (rc == 0 && width == 4 && off == 0x24) __atomic_store_n(&qd->bar4_hi, val, __ATOMIC_RELAXED);
    sim_qtest_unlock(&qd->qt);
    if (rc != 0)
        qemu_report(qd, "config write failed", err);
}

static uint32_t qemu_mmio_read(sim_dev *d, uint64_t gpa, unsigned width)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width)) {
        snprintf(err, sizeof(err), "gpa 0x%" PRIx64 " width %u", gpa, width);
        qemu_report(qd, "invalid MMIO read", err);
        return 0xFFFFFFFFu;
    }
    snprintf(cmd, sizeof(cmd), "read%c 0x%" PRIx64, width == 1 ? 'b' : width == 2 ? 'w' : 'l',
             gpa);
    uint64_t v = 0;
    if (sim_qtest_cmd(&qd->qt, cmd, &v, err, sizeof(err)) != 0) {
        qemu_report(qd, "MMIO read failed", err);
        return width_mask(width);
    }
    return (uint32_t)v & width_mask(width);
}

/* QEMU's virtio_blk_reset drains every request inside the status-0 write (blk_drain,
 * hw/block/virtio-blk.c), and that drain also lifts a block_set_io_throttle stall:
 * QEMU disables I/O limits while draining. A hung host backend is not lifted by a
 * reset, so the harsh model holds the write back here until every request the driver
 * made available is used (the stall ends on its own, e.g. a scripted QMP), bounded by
 * 60 s. The writer stays inside the register write meanwhile, as a vCPU would. */
static __thread uint64_t tls_held_ns;     /* this thread's last drain (qemu_held_ns) */

static uint64_t qemu_held_ns(sim_dev *d) { (void)d; return sim_dev_take_held(&tls_held_ns); }

static void qemu_reset_drain(qemu_dev *qd)
{
    uint64_t av = __atomic_load_n(&qd->snoop_avail, __ATOMIC_RELAXED);
    uint64_t us = __atomic_load_n(&qd->snoop_used, __ATOMIC_RELAXED);
    uint8_t *ram = qd->pub.ram;
    if (!ram || !av || !us || av + 4 > qd->pub.ram_size || us + 4 > qd->pub.ram_size)
        return;
    int64_t t0 = qemu_now_ms(), last_probe = t0;
    bool waited = false;
    for (;;) {
        uint16_t a = __atomic_load_n((uint16_t *)(ram + av + 2), __ATOMIC_ACQUIRE);
        uint16_t u = __atomic_load_n((uint16_t *)(ram + us + 2), __ATOMIC_ACQUIRE);
        if (a == u || qd->dead_reported || qemu_now_ms() - t0 > 60000)
            break;
        if (qemu_now_ms() - last_probe >= 100) {       /* QEMU still there? */
            char err[320];
            uint64_t v = 0;
            last_probe = qemu_now_ms();
            if (sim_qtest_cmd(&qd->qt, "readb 0x0", &v, err, sizeof(err)) != 0)
                break;
        }
        waited = true;
        qemu_sleep_ms(1);
    }
    if (waited)
        tls_held_ns = (uint64_t)(qemu_now_ms() - t0) * 1000000ull;
    if (waited)
        fprintf(stderr, "qemu: reset held %lld ms until the device's requests completed (blocking reset)\n",
                (long long)(qemu_now_ms() - t0));
}

/* Queue 0's ring areas as the driver programs them (common cfg: queue_select 0x16,
 * queue_driver 0x28/0x2C, queue_device 0x30/0x34; virtio 4.1.4.3), and the status-0
 * write (0x14). */
static void qemu_snoop_common(qemu_dev *qd, uint64_t off, unsigned width, uint32_t val)
{
    if (off == 0x16 && width == 2) qd->snoop_qsel = (uint16_t)val;
    if (qd->snoop_qsel != 0 || width != 4) return;
    if (off == 0x28) qd->snoop_avail = (qd->snoop_avail & ~0xFFFFFFFFull) | val;
    if (off == 0x2C) qd->snoop_avail = (qd->snoop_avail & 0xFFFFFFFFull) | ((uint64_t)val << 32);
    if (off == 0x30) qd->snoop_used = (qd->snoop_used & ~0xFFFFFFFFull) | val;
    if (off == 0x34) qd->snoop_used = (qd->snoop_used & 0xFFFFFFFFull) | ((uint64_t)val << 32);
}

static void qemu_mmio_write(sim_dev *d, uint64_t gpa, unsigned width, uint32_t val)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[80];
    if (!valid_width(width)) {
        snprintf(err, sizeof(err), "gpa 0x%" PRIx64 " width %u", gpa, width);
        qemu_report(qd, "invalid MMIO write", err);
        return;
    }
    {
        uint64_t b4 = ((uint64_t)__atomic_load_n(&qd->bar4_hi, __ATOMIC_RELAXED) << 32) |
                      (__atomic_load_n(&qd->bar4_lo, __ATOMIC_RELAXED) & ~0xFull);
        if (b4 && gpa >= b4 && gpa < b4 + 0x1000) {
            qemu_snoop_common(qd, gpa - b4, width, val);
            if (gpa - b4 == 0x14 && width == 1 && (val & 0xFF) == 0)
                qemu_reset_drain(qd);
        }
    }
    snprintf(cmd, sizeof(cmd), "write%c 0x%" PRIx64 " 0x%" PRIx32,
             width == 1 ? 'b' : width == 2 ? 'w' : 'l', gpa, val & width_mask(width));
    if (sim_qtest_cmd(&qd->qt, cmd, NULL, err, sizeof(err)) != 0) {
        qemu_report(qd, "MMIO write failed", err);
        return;
    }
    uint64_t bar4 = ((uint64_t)__atomic_load_n(&qd->bar4_hi, __ATOMIC_RELAXED) << 32) |
                    (__atomic_load_n(&qd->bar4_lo, __ATOMIC_RELAXED) & ~0xFull);
    if (bar4 && gpa >= bar4 + 0x3000 && gpa < bar4 + 0x4000)
        __atomic_fetch_add(&qd->notify_writes, 1, __ATOMIC_RELAXED);
}

int sim_qemu_notify_writes(sim_dev *d, uint64_t *out)
{
    if (!d || d->ops != &qemu_ops || !out)
        return -1;
    *out = __atomic_load_n(&to_qd(d)->notify_writes, __ATOMIC_RELAXED);
    return 0;
}

/* Called by the core's interrupt thread, polling; never blocks on a busy client. */
static bool qemu_intx_level(sim_dev *d)
{
    qemu_dev *qd = to_qd(d);
    bool level = sim_qtest_irq_level(&qd->qt, QEMU_INTX_IOAPIC_PIN);
    /* A vanished device drives no line, whatever level was last reported. */
    return level && !__atomic_load_n(&qd->qt.dead, __ATOMIC_SEQ_CST);
}

static int qemu_qmp(sim_dev *d, const char *json, char *reply, size_t reply_len)
{
    qemu_dev *qd = to_qd(d);
    if (!qd->qmp_open) {
        if (reply && reply_len)
            snprintf(reply, reply_len, "qmp: monitor not connected");
        return -1;
    }
    /* Starting the vCPU would run SeaBIOS against the device (see -S above). */
    if (json && strstr(json, "\"cont\"")) {
        if (reply && reply_len)
            snprintf(reply, reply_len,
                     "qmp: 'cont' refused: the vCPU must stay stopped (firmware would run)");
        return -1;
    }
    return sim_qmp_command(&qd->qmp, json, reply, reply_len);
}

static void qemu_destroy(sim_dev *d)
{
    if (d)
        qemu_teardown(to_qd(d));
}

const struct sim_dev_ops qemu_ops = {
    .cfg_read = qemu_cfg_read,
    .cfg_write = qemu_cfg_write,
    .mmio_read = qemu_mmio_read,
    .mmio_write = qemu_mmio_write,
    .intx_level = qemu_intx_level,
    .qmp = qemu_qmp,
    .control = NULL,
    .destroy = qemu_destroy,
    .held_ns = qemu_held_ns,
};

int sim_qemu_get_stats(sim_dev *d, sim_qemu_stats *out)
{
    if (!d || d->ops != &qemu_ops || !out)
        return -1;
    qemu_dev *qd = to_qd(d);
    memset(out, 0, sizeof(*out));
    sim_qtest_lock(&qd->qt);
    out->qtest_round_trips = qd->qt.round_trips;
    out->qtest_dead = qd->qt.dead;
    sim_qtest_unlock(&qd->qt);
    out->intx_raises = __atomic_load_n(&qd->qt.irq_raises, __ATOMIC_RELAXED);
    pthread_mutex_lock(&qd->qmp.lock);
    out->qmp_commands = qd->qmp.commands;
    pthread_mutex_unlock(&qd->qmp.lock);
    out->qemu_pid = (int)qd->pid;
    return 0;
}
