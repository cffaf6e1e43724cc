/*
 * Unit test of the QEMU backend (sim/qemu_backend*.c, sim/qtest.c, sim/qmp.c) against
 * QEMU's real virtio-blk-pci: identity, BAR sizing/assignment, one raw virtio-blk READ
 * through a hand-built descriptor chain in shared RAM, MSI-X delivery into RAM on
 * block_resize, INTx level (vectors=0), concurrent config access, teardown on destroy
 * and on signals, and clean errors.
 *
 * Every instance's temp files go to a private TMPDIR, which must be empty after each
 * test; no qemu child may outlive its test; fds must not leak.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp.h"
#include "qtest.h"
#include "simdev.h"

#define MiB (1024u * 1024u)
#define IMAGE_SIZE (16u * MiB)
#define BAR_WINDOW 0xE0000000ull

static char g_dir[256];       /* scratch root */
static char g_tmpdir[300];    /* TMPDIR given to the backend: must stay empty */
static char g_image[300];

/* ------------------------------------------------------------ host helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static uint8_t pattern_byte(uint64_t offset)
{
    return (uint8_t)((offset / 512) * 7 + offset * 13 + 0x5A);
}

/* 16 MiB sparse image, first 64 KiB filled with a position-dependent pattern. */
static void make_image(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, IMAGE_SIZE), 0);
    static uint8_t buf[65536];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = pattern_byte(i);
    assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    close(fd);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1;   /* the opendir fd itself */
}

static int count_dir_entries(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

/* Alive = exists and is not a zombie (an orphan may wait for a non-reaping init). */
static bool pid_alive(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z';
}

static bool wait_pid_dead(int pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (pid_alive(pid)) {
        if (now_ms() > deadline)
            return false;
        sleep_ms(10);
    }
    return true;
}

/* Number of our child processes (QEMU is the only kind this test starts). */
static int count_children(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        char state = 0;
        if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid())
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Instances a failed test left behind are destroyed by its teardown, so one failure
 * does not cascade (QEMU holds a write lock on the image). */
static sim_dev *g_live;

static int destroy_leftover(void **state)
{
    (void)state;
    if (g_live)
        g_live->ops->destroy(g_live);
    g_live = NULL;
    return 0;
}

static sim_dev *create(const char *device_opts, char *err, size_t err_len)
{
    sim_dev_config cfg = {
        .disk_path = g_image,
        .disk_size = IMAGE_SIZE,
        .device_opts = device_opts,
        .drive_opts = "cache=writeback",
        .ram_size = 64 * MiB,
    };
    return sim_qemu_create(&cfg, err, err_len);
}

static sim_dev *create_ok(const char *device_opts)
{
    char err[1024] = "";
    sim_dev *d = create(device_opts, err, sizeof(err));
    if (!d)
        fail_msg("sim_qemu_create failed: %s", err);
    assert_string_equal(d->name, "qemu");
    assert_true(d->ram_base_free >= MiB && d->ram_base_free < d->ram_size);
    assert_int_equal(d->mmio_window_base, BAR_WINDOW);
    g_live = d;
    assert_int_equal(count_dir_entries(g_tmpdir), 0);   /* files unlinked once up */
    return d;
}

/* ----------------------------------------------------- PCI/virtio helpers */

static uint32_t cfg32(sim_dev *d, unsigned off) { return d->ops->cfg_read(d, off, 4); }
static uint32_t cfg16(sim_dev *d, unsigned off) { return d->ops->cfg_read(d, off, 2); }
static uint32_t cfg8(sim_dev *d, unsigned off) { return d->ops->cfg_read(d, off, 1); }

typedef struct bars {
    uint64_t addr[6], size[6];
} bars;

/* What firmware does: size each memory BAR (all-ones write), assign naturally aligned
 * addresses from `base` up, enable memory decoding and bus mastering. */
static void assign_bars(sim_dev *d, uint64_t base, bars *b)
{
    memset(b, 0, sizeof(*b));
    uint64_t next = base;
    for (unsigned i = 0; i < 6; i++) {
        unsigned off = 0x10 + 4 * i;
        uint32_t orig = cfg32(d, off);
        if (orig & 1)
            continue;   /* I/O BAR: none on a modern-only device */
        bool is64 = ((orig >> 1) & 3) == 2;
        d->ops->cfg_write(d, off, 4, 0xFFFFFFFFu);
        uint64_t mask = cfg32(d, off) & ~0xFull;
        if (is64) {
            d->ops->cfg_write(d, off + 4, 4, 0xFFFFFFFFu);
            mask |= (uint64_t)cfg32(d, off + 4) << 32;
        } else {
            mask |= 0xFFFFFFFF00000000ull;
        }
        if (mask & 0xFFFFFFFFull) {
            uint64_t size = ~mask + 1;
            next = (next + size - 1) & ~(size - 1);
            b->size[i] = size;
            b->addr[i] = next;
            d->ops->cfg_write(d, off, 4, (uint32_t)next);
            if (is64)
                d->ops->cfg_write(d, off + 4, 4, (uint32_t)(next >> 32));
            next += size;
        } else {
            d->ops->cfg_write(d, off, 4, orig);
        }
        if (is64)
            i++;
    }
    d->ops->cfg_write(d, 0x04, 2, cfg16(d, 0x04) | 0x6);   /* memory space + bus master */
}

/* Modern virtio-pci layout from the vendor capabilities (virtio 4.1.4). */
typedef struct vdev {
    sim_dev *d;
    bars b;
    uint64_t common, isr, devcfg, notify;
    uint32_t notify_mult;
    unsigned msix_cap;
    /* queue 0 */
    uint16_t qsize, notify_off, avail_idx, used_seen;
    uint64_t desc, avail, used;
} vdev;

static uint8_t *ram(vdev *v, uint64_t gpa) { return v->d->ram + gpa; }
static uint32_t rd(vdev *v, uint64_t a, unsigned w) { return v->d->ops->mmio_read(v->d, a, w); }
static void wr(vdev *v, uint64_t a, unsigned w, uint32_t x) { v->d->ops->mmio_write(v->d, a, w, x); }

static void locate(vdev *v, sim_dev *d)
{
    memset(v, 0, sizeof(*v));
    v->d = d;
    assign_bars(d, d->mmio_window_base, &v->b);
    for (unsigned cap = cfg8(d, 0x34); cap; cap = cfg8(d, cap + 1)) {
        unsigned id = cfg8(d, cap);
        if (id == 0x11)
            v->msix_cap = cap;
        if (id != 0x09)
            continue;
        unsigned type = cfg8(d, cap + 3), bar = cfg8(d, cap + 4);
        uint64_t at = v->b.addr[bar] + cfg32(d, cap + 8);
        switch (type) {
        case 1: v->common = at; break;
        case 2: v->notify = at; v->notify_mult = cfg32(d, cap + 16); break;
        case 3: v->isr = at; break;
        case 4: v->devcfg = at; break;
        default: break;
        }
    }
    assert_true(v->common && v->notify && v->isr && v->devcfg);
}

/* virtio 3.1.1 driver initialization, VERSION_1 only, queue 0 at ring_gpa. */
static void driver_ok(vdev *v, uint64_t ring_gpa)
{
    wr(v, v->common + 0x14, 1, 0);
    assert_int_equal(rd(v, v->common + 0x14, 1), 0);
    wr(v, v->common + 0x14, 1, 1);
    wr(v, v->common + 0x14, 1, 3);
    wr(v, v->common + 0x08, 4, 0);
    wr(v, v->common + 0x0C, 4, 0);
    wr(v, v->common + 0x08, 4, 1);
    wr(v, v->common + 0x0C, 4, 1);   /* VIRTIO_F_VERSION_1 (bit 32) */
    wr(v, v->common + 0x14, 1, 0xB);
    assert_int_equal(rd(v, v->common + 0x14, 1), 0xB);   /* FEATURES_OK accepted */
    wr(v, v->common + 0x16, 2, 0);
    v->qsize = (uint16_t)rd(v, v->common + 0x18, 2);
    assert_true(v->qsize >= 8);
    v->notify_off = (uint16_t)rd(v, v->common + 0x1E, 2);
    v->desc = ring_gpa;
    v->avail = ring_gpa + 16u * v->qsize;
    v->used = (v->avail + 6 + 2u * v->qsize + 4095) & ~4095ull;
    memset(ram(v, ring_gpa), 0, (size_t)(v->used + 6 + 8u * v->qsize - ring_gpa));
    wr(v, v->common + 0x20, 4, (uint32_t)v->desc);
    wr(v, v->common + 0x24, 4, 0);
    wr(v, v->common + 0x28, 4, (uint32_t)v->avail);
    wr(v, v->common + 0x2C, 4, 0);
    wr(v, v->common + 0x30, 4, (uint32_t)v->used);
    wr(v, v->common + 0x34, 4, 0);
    wr(v, v->common + 0x1C, 2, 1);
    wr(v, v->common + 0x14, 1, 0xF);
    assert_int_equal(rd(v, v->common + 0x14, 1), 0xF);
}

static void put_desc(vdev *v, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *p = ram(v, v->desc + 16u * i);
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* One VIRTIO_BLK_T_IN of `len` bytes at `sector` into data_gpa (virtio 5.2.6). */
static void raw_read(vdev *v, uint64_t sector, uint64_t data_gpa, uint32_t len)
{
    uint64_t hdr = v->desc + 0x8000, status = hdr + 16;
    uint32_t type = 0, reserved = 0;
    memcpy(ram(v, hdr), &type, 4);
    memcpy(ram(v, hdr + 4), &reserved, 4);
    memcpy(ram(v, hdr + 8), &sector, 8);
    *ram(v, status) = 0xFF;
    memset(ram(v, data_gpa), 0xEE, len);
    put_desc(v, 0, hdr, 16, 1 /* NEXT */, 1);
    put_desc(v, 1, data_gpa, len, 1 | 2 /* NEXT|WRITE */, 2);
    put_desc(v, 2, status, 1, 2 /* WRITE */, 0);
    uint16_t head = 0;
    memcpy(ram(v, v->avail + 4 + 2u * (v->avail_idx % v->qsize)), &head, 2);
    v->avail_idx++;
    __atomic_store_n((uint16_t *)ram(v, v->avail + 2), v->avail_idx, __ATOMIC_SEQ_CST);
    wr(v, v->notify + (uint64_t)v->notify_off * v->notify_mult, 2, 0);
    int64_t deadline = now_ms() + 5000;
    while (__atomic_load_n((uint16_t *)ram(v, v->used + 2), __ATOMIC_SEQ_CST) == v->used_seen) {
        if (now_ms() > deadline)
            fail_msg("virtio-blk READ not completed within 5 s");
        sleep_ms(1);
    }
    uint32_t id, used_len;
    memcpy(&id, ram(v, v->used + 4 + 8u * (v->used_seen % v->qsize)), 4);
    memcpy(&used_len, ram(v, v->used + 8 + 8u * (v->used_seen % v->qsize)), 4);
    v->used_seen++;
    assert_int_equal(id, 0);
    assert_int_equal(used_len, len + 1);   /* data + status byte written */
    assert_int_equal(*ram(v, status), 0);  /* VIRTIO_BLK_S_OK */
    for (uint32_t i = 0; i < len; i++)
        if (*ram(v, data_gpa + i) != pattern_byte(sector * 512 + i))
            fail_msg("data mismatch at byte %u of sector %" PRIu64, i, sector);
}

static void qmp_ok(sim_dev *d, const char *json, char *reply, size_t reply_len)
{
    int rc = d->ops->qmp(d, json, reply, reply_len);
    if (rc != 0)
        fail_msg("QMP %s failed: %s", json, reply);
}

static uint64_t capacity(vdev *v)
{
    return rd(v, v->devcfg, 4) | (uint64_t)rd(v, v->devcfg + 4, 4) << 32;
}

/* Destroys d and checks that nothing is left: process, files, fds. */
static void destroy_checked(sim_dev *d, int fds_before)
{
    sim_qemu_stats st;
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    int pid = st.qemu_pid;
    assert_true(pid > 0 && pid_alive(pid));
    g_live = NULL;
    d->ops->destroy(d);
    assert_false(pid_alive(pid));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d", pid);
    assert_int_not_equal(access(path, F_OK), 0);   /* reaped, not a zombie */
    assert_int_equal(count_children(), 0);
    assert_int_equal(count_dir_entries(g_tmpdir), 0);
    assert_int_equal(count_fds(), fds_before);
}

/* destroy() of an instance whose QEMU is already gone (killed, not yet reaped). */
static void destroy_checked_dead(sim_dev *d, int fds_before)
{
    g_live = NULL;
    d->ops->destroy(d);
    assert_int_equal(count_children(), 0);
    assert_int_equal(count_dir_entries(g_tmpdir), 0);
    assert_int_equal(count_fds(), fds_before);
}

/* ------------------------------------------------------------------ tests */

static void test_identity_and_read(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok(NULL);

    /* Identity as QEMU 7.2 presents the modern-only virtio-blk function. */
    assert_int_equal(cfg16(d, 0x00), 0x1AF4);
    assert_int_equal(cfg16(d, 0x02), 0x1042);
    assert_int_equal(cfg8(d, 0x08), 0x01);          /* revision */
    assert_int_equal(cfg32(d, 0x08) >> 8, 0x010000); /* class: mass storage, SCSI */
    assert_int_equal(cfg16(d, 0x2C), 0x1AF4);
    assert_int_equal(cfg16(d, 0x2E), 0x1100);
    assert_int_equal(cfg8(d, 0x3D), 1);             /* INTA# */
    assert_true(cfg16(d, 0x06) & 0x10);             /* capability list */

    vdev v;
    locate(&v, d);
    assert_int_equal(v.b.size[1], 0x1000);          /* MSI-X table */
    assert_int_equal(v.b.size[4], 0x4000);          /* virtio regions, 64-bit */
    assert_int_equal(cfg32(d, 0x20) & 0xF, 0xC);    /* 64-bit prefetchable */
    assert_int_equal(v.common, v.b.addr[4] + 0x0000);
    assert_int_equal(v.isr, v.b.addr[4] + 0x1000);
    assert_int_equal(v.devcfg, v.b.addr[4] + 0x2000);
    assert_int_equal(v.notify, v.b.addr[4] + 0x3000);
    assert_int_equal(v.notify_mult, 4);
    assert_true(v.msix_cap != 0);
    assert_int_equal((cfg16(d, v.msix_cap + 2) & 0x7FF) + 1, 2);   /* config + 1 queue */

    wr(&v, v.common + 0x00, 4, 1);
    assert_true(rd(&v, v.common + 0x04, 4) & 1);    /* VIRTIO_F_VERSION_1 */
    assert_int_equal(capacity(&v), IMAGE_SIZE / 512);

    driver_ok(&v, d->ram_base_free);
    raw_read(&v, 2, d->ram_base_free + 0x10000, 4096);
    raw_read(&v, 9, d->ram_base_free + 0x30000, 512);

    sim_qemu_stats st;
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    assert_true(st.qtest_round_trips > 40);
    assert_false(st.qtest_dead);
    destroy_checked(d, fds);
}

static void test_msix_on_resize(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok("id=vblk0");
    vdev v;
    locate(&v, d);
    driver_ok(&v, d->ram_base_free);

    /* Table entry 0 -> a marker word in guest RAM (what the core does for MSI-X). */
    uint32_t table = cfg32(d, v.msix_cap + 4);
    uint64_t entry = v.b.addr[table & 7] + (table & ~7u);
    uint64_t marker = d->ram_base_free + 0x20000;
    memset(ram(&v, marker), 0, 4);
    wr(&v, entry + 0, 4, (uint32_t)marker);
    wr(&v, entry + 4, 4, 0);
    wr(&v, entry + 8, 4, 0x4D534958);
    wr(&v, entry + 12, 4, 0);
    d->ops->cfg_write(d, v.msix_cap + 2, 2, cfg16(d, v.msix_cap + 2) | 0x8000);
    wr(&v, v.common + 0x10, 2, 0);
    assert_int_equal(rd(&v, v.common + 0x10, 2), 0);
    uint32_t gen = rd(&v, v.common + 0x15, 1);

    char reply[4096];
    qmp_ok(d, "{\"execute\":\"block_resize\",\"arguments\":{\"device\":\"d0\",\"size\":33554432}}",
           reply, sizeof(reply));
    int64_t deadline = now_ms() + 3000;
    while (__atomic_load_n((uint32_t *)ram(&v, marker), __ATOMIC_SEQ_CST) != 0x4D534958) {
        if (now_ms() > deadline)
            fail_msg("MSI-X message not written to guest RAM within 3 s");
        sleep_ms(1);
    }
    assert_int_not_equal(rd(&v, v.common + 0x15, 1), gen);   /* config_generation */
    assert_int_equal(capacity(&v), 32 * MiB / 512);
    assert_false(d->ops->intx_level(d));   /* MSI-X on: INTx stays low */

    /* QMP plumbing: events are skipped, errors come back as -1 with the reply. */
    qmp_ok(d, "{\"execute\":\"query-status\"}", reply, sizeof(reply));
    assert_non_null(strstr(reply, "prelaunch"));   /* -S: the vCPU never ran */
    assert_int_equal(d->ops->qmp(d, "{\"execute\":\"no-such-command\"}", reply, sizeof(reply)), -1);
    assert_non_null(strstr(reply, "CommandNotFound"));
    assert_int_equal(d->ops->qmp(d, "{\"execute\":\"cont\"}", reply, sizeof(reply)), -1);
    assert_non_null(strstr(reply, "refused"));
    /* Hot-unplug: q35's root bus refuses it (documented in docs/qemu-backend.md). */
    assert_int_equal(d->ops->qmp(d, "{\"execute\":\"device_del\",\"arguments\":"
                                    "{\"id\":\"vblk0\"}}", reply, sizeof(reply)), -1);
    assert_non_null(strstr(reply, "does not support hotplugging"));
    destroy_checked(d, fds);
    make_image(g_image);   /* undo the resize for later tests */
}

static void test_intx(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok("vectors=0");
    vdev v;
    locate(&v, d);
    assert_int_equal(v.msix_cap, 0);   /* vectors=0: no MSI-X capability at all */
    driver_ok(&v, d->ram_base_free);
    assert_false(d->ops->intx_level(d));

    char reply[1024];
    qmp_ok(d, "{\"execute\":\"block_resize\",\"arguments\":{\"device\":\"d0\",\"size\":33554432}}",
           reply, sizeof(reply));
    int64_t deadline = now_ms() + 3000;
    while (!d->ops->intx_level(d)) {
        if (now_ms() > deadline)
            fail_msg("INTx not raised within 3 s of block_resize");
        sleep_ms(1);
    }
    /* QEMU sets both ISR bits for a config change; reading clears them and lowers the
     * line before the read's reply arrives. */
    assert_int_equal(rd(&v, v.isr, 1), 0x3);
    assert_false(d->ops->intx_level(d));
    assert_int_equal(rd(&v, v.isr, 1), 0);

    /* Queue interrupt: a READ completes, INTx rises, ISR bit 0. */
    raw_read(&v, 5, d->ram_base_free + 0x10000, 512);
    deadline = now_ms() + 3000;
    while (!d->ops->intx_level(d)) {
        if (now_ms() > deadline)
            fail_msg("INTx not raised for a used buffer");
        sleep_ms(1);
    }
    assert_int_equal(rd(&v, v.isr, 1), 0x1);
    assert_false(d->ops->intx_level(d));

    sim_qemu_stats st;
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    assert_int_equal(st.intx_raises, 2);
    destroy_checked(d, fds);
    make_image(g_image);
}

/* Two threads interleave config reads: CF8/CFC pairs must stay atomic. */
struct cfg_hammer {
    sim_dev *d;
    unsigned off;
    uint32_t expect;
    int bad;
};

static void *hammer(void *arg)
{
    struct cfg_hammer *h = arg;
    for (int i = 0; i < 300; i++)
        if (h->d->ops->cfg_read(h->d, h->off, 4) != h->expect)
            h->bad++;
    return NULL;
}

static void test_concurrent_cfg(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok(NULL);
    struct cfg_hammer a = { d, 0x00, 0x10421AF4, 0 }, b = { d, 0x2C, 0x11001AF4, 0 };
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, hammer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, hammer, &b), 0);
    for (int i = 0; i < 300; i++)
        d->ops->intx_level(d);   /* the interrupt thread polling at the same time */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.bad, 0);
    assert_int_equal(b.bad, 0);
    destroy_checked(d, fds);
}

static void test_errors(void **state)
{
    (void)state;
    char err[1024];
    int fds = count_fds();

    /* QEMU rejects a device option: its own message comes back, nothing is left. */
    int64_t t0 = now_ms();
    assert_null(create("no_such_prop=1", err, sizeof(err)));
    assert_true(now_ms() - t0 < 15000);
    assert_non_null(strstr(err, "QEMU"));
    assert_non_null(strstr(err, "no_such_prop"));
    assert_int_equal(count_children(), 0);
    assert_int_equal(count_dir_entries(g_tmpdir), 0);
    assert_int_equal(count_fds(), fds);

    /* Options that leave no virtio device at 00:04.0 never reach the core. */
    assert_null(create("addr=05.0", err, sizeof(err)));
    assert_non_null(strstr(err, "no virtio device"));
    assert_int_equal(count_children(), 0);
    assert_int_equal(count_dir_entries(g_tmpdir), 0);

    /* No QEMU on PATH: the message names the Debian package. */
    char *old_path = strdup(getenv("PATH"));
    setenv("PATH", g_dir, 1);
    unsetenv("AEROVBLK_QEMU");
    assert_null(create(NULL, err, sizeof(err)));
    setenv("PATH", old_path, 1);
    free(old_path);
    assert_non_null(strstr(err, "apt-get install qemu-system-x86"));

    /* Missing image without a size, silly RAM size. */
    sim_dev_config cfg = { .disk_path = "/nonexistent-dir/x.img" };
    assert_null(sim_qemu_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "does not exist"));
    cfg.disk_path = g_image;
    cfg.ram_size = 3 * MiB + 5;
    assert_null(sim_qemu_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "RAM"));
    assert_int_equal(count_dir_entries(g_tmpdir), 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(sim_qemu_get_stats(NULL, NULL), -1);
}

static void test_creates_sparse_image(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof(path), "%s/new,with,commas.img", g_dir);
    sim_dev_config cfg = { .disk_path = path, .disk_size = 8 * MiB };
    char err[1024];
    sim_dev *d = sim_qemu_create(&cfg, err, sizeof(err));
    if (!d)
        fail_msg("create: %s", err);
    g_live = d;
    assert_int_equal(d->ram_size, 256 * MiB);   /* default */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 8 * MiB);
    assert_true(st.st_blocks * 512 < 1 * MiB);  /* sparse */
    vdev v;
    locate(&v, d);
    assert_int_equal(capacity(&v), 8 * MiB / 512);
    g_live = NULL;
    d->ops->destroy(d);
    unlink(path);
    assert_int_equal(count_children(), 0);
}

/*
 * Child mode (a fresh exec of this binary, so cmocka's own signal handlers are not in
 * the way): create a backend, report QEMU's pid on fd `out_fd`, wait for a byte on
 * `go_fd`, then die by `how`.
 */
static int child_die_by(int how, int out_fd, int go_fd)
{
    char err[1024];
    sim_dev *d = create(NULL, err, sizeof(err));
    sim_qemu_stats st = { 0 };
    if (!d || sim_qemu_get_stats(d, &st) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 3;
    }
    char go;
    if (write(out_fd, &st.qemu_pid, sizeof(st.qemu_pid)) != sizeof(st.qemu_pid) ||
        read(go_fd, &go, 1) != 1)
        return 4;
    /* The backend's handler must be wired (PDEATHSIG alone would also kill QEMU). */
    struct sigaction sa;
    if (sigaction(how == SIGKILL ? SIGTERM : how, NULL, &sa) != 0 ||
        !(sa.sa_flags & SA_SIGINFO))
        return 7;
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);   /* ASan's SEGV report is expected noise */
    if (how == SIGSEGV)
        *(volatile int *)(uintptr_t)8 = 1;
    else if (how == SIGKILL)
        pause();
    else
        raise(how);
    return 5;
}

/* A simulator process dying by a signal (or SIGKILL) takes its QEMU along. */
static void check_death_by(int how)
{
    int fds[2], go[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        close(go[1]);
        char how_s[16], fd_s[16], go_s[16];
        snprintf(how_s, sizeof(how_s), "%d", how);
        snprintf(fd_s, sizeof(fd_s), "%d", fds[1]);
        snprintf(go_s, sizeof(go_s), "%d", go[0]);
        execl("/proc/self/exe", "test_qemu_backend", "--die-by", how_s, fd_s, go_s, g_dir,
              (char *)NULL);
        _exit(6);
    }
    close(fds[1]);
    close(go[0]);
    int qemu_pid = 0;
    struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 30000), 1);
    assert_int_equal(read(fds[0], &qemu_pid, sizeof(qemu_pid)), sizeof(qemu_pid));
    close(fds[0]);
    assert_true(qemu_pid > 0 && pid_alive(qemu_pid));
    assert_int_equal(write(go[1], "!", 1), 1);
    close(go[1]);
    if (how == SIGKILL)
        kill(child, SIGKILL);
    int status = 0;
    int64_t deadline = now_ms() + 20000;
    while (waitpid(child, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(child, SIGKILL);
            fail_msg("child did not die");
        }
        sleep_ms(10);
    }
    if (how == SIGTERM || how == SIGKILL)
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == how);
    else   /* SIGSEGV: ASan reports and exits non-zero, after our handler ran */
        assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                                            WEXITSTATUS(status) < 3));
    if (!wait_pid_dead(qemu_pid, 5000))
        fail_msg("QEMU pid %d survived its simulator (signal %d)", qemu_pid, how);
    assert_int_equal(count_dir_entries(g_tmpdir), 0);
}

static void test_signal_teardown(void **state)
{
    (void)state;
    check_death_by(SIGTERM);
    check_death_by(SIGSEGV);
    check_death_by(SIGKILL);
}

/* QEMU killed under the core's feet (emergency cleanup), then hung (SIGSTOP): every
 * op returns promptly with all-ones / no effect, and destroy still cleans up. */
static void test_dead_and_hung_qemu(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok(NULL);
    sim_qemu_stats st;
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    sim_qemu_emergency_cleanup();
    assert_true(wait_pid_dead(st.qemu_pid, 3000));
    assert_int_equal(cfg32(d, 0), 0xFFFFFFFFu);
    assert_int_equal(d->ops->mmio_read(d, BAR_WINDOW, 2), 0xFFFF);
    d->ops->mmio_write(d, BAR_WINDOW, 4, 1);
    assert_false(d->ops->intx_level(d));
    char reply[256];
    assert_int_equal(d->ops->qmp(d, "{\"execute\":\"query-status\"}", reply, sizeof(reply)), -1);
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    assert_true(st.qtest_dead);
    destroy_checked_dead(d, fds);

    setenv("AEROVBLK_QEMU_TIMEOUT_MS", "700", 1);
    d = create_ok(NULL);
    unsetenv("AEROVBLK_QEMU_TIMEOUT_MS");
    assert_int_equal(sim_qemu_get_stats(d, &st), 0);
    assert_int_equal(kill(st.qemu_pid, SIGSTOP), 0);
    int64_t t0 = now_ms();
    assert_int_equal(cfg32(d, 0), 0xFFFFFFFFu);
    int64_t waited = now_ms() - t0;
    assert_true(waited >= 600 && waited < 5000);
    t0 = now_ms();
    assert_int_equal(cfg32(d, 0), 0xFFFFFFFFu);   /* dead now: no second wait */
    assert_true(now_ms() - t0 < 100);
    t0 = now_ms();
    destroy_checked(d, fds);
    assert_true(now_ms() - t0 < 3000);
}

/* A 64-bit BAR above 4 GiB decodes too (the core may place BAR4 there). */
static void test_bar_above_4g(void **state)
{
    (void)state;
    int fds = count_fds();
    sim_dev *d = create_ok(NULL);
    uint64_t bar4 = 0x1000000000ull;   /* 64 GiB */
    d->ops->cfg_write(d, 0x20, 4, (uint32_t)bar4);
    d->ops->cfg_write(d, 0x24, 4, (uint32_t)(bar4 >> 32));
    d->ops->cfg_write(d, 0x04, 2, 0x2);
    assert_int_equal(d->ops->mmio_read(d, bar4 + 0x12, 2), 1);   /* num_queues */
    d->ops->mmio_write(d, bar4, 4, 1);
    assert_true(d->ops->mmio_read(d, bar4 + 4, 4) & 1);          /* VERSION_1 */
    destroy_checked(d, fds);
}

static void test_qmp_key_parser(void **state)
{
    (void)state;
    assert_true(sim_qmp_has_top_key("{\"return\": {}}", "return"));
    assert_false(sim_qmp_has_top_key(
        "{\"timestamp\": {\"seconds\": 1}, \"event\": \"X\", \"data\": {\"return\": 1}}",
        "return"));
    assert_true(sim_qmp_has_top_key("{\"a\": \"x\\\"}\", \"error\": {}}", "error"));
    assert_false(sim_qmp_has_top_key("not json", "return"));
}

static void set_paths(const char *dir)
{
    snprintf(g_dir, sizeof(g_dir), "%s", dir);
    snprintf(g_tmpdir, sizeof(g_tmpdir), "%s/tmp", g_dir);
    snprintf(g_image, sizeof(g_image), "%s/disk.img", g_dir);
}

static int group_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    char dir[200];
    snprintf(dir, sizeof(dir), "%s/test_qemu_backend.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    set_paths(dir);
    if (mkdir(g_tmpdir, 0700) != 0)
        return -1;
    setenv("TMPDIR", g_tmpdir, 1);
    make_image(g_image);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(g_image);
    rmdir(g_tmpdir);
    rmdir(g_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--die-by") == 0) {
        set_paths(argv[5]);
        setenv("TMPDIR", g_tmpdir, 1);
        return child_die_by(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_qmp_key_parser, destroy_leftover),
        cmocka_unit_test_teardown(test_identity_and_read, destroy_leftover),
        cmocka_unit_test_teardown(test_msix_on_resize, destroy_leftover),
        cmocka_unit_test_teardown(test_intx, destroy_leftover),
        cmocka_unit_test_teardown(test_concurrent_cfg, destroy_leftover),
        cmocka_unit_test_teardown(test_errors, destroy_leftover),
        cmocka_unit_test_teardown(test_creates_sparse_image, destroy_leftover),
        cmocka_unit_test_teardown(test_signal_teardown, destroy_leftover),
        cmocka_unit_test_teardown(test_dead_and_hung_qemu, destroy_leftover),
        cmocka_unit_test_teardown(test_bar_above_4g, destroy_leftover),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
