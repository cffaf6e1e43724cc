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
 *
 * This file: options, the disk image and guest RAM, creation and destruction, the
 * control commands (fault injection) and the contract_dev.h API. The rest:
 * contract_dev_regs.c (PCI config space, virtio registers, register-access ops),
 * contract_dev_queue.c (interrupts, reset, request processing, device thread);
 * shared declarations in contract_dev_int.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memfd_create */
#endif
#include "contract_dev_int.h"

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
            cdev_kick(d);
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
        cdev_config_interrupt(d);
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
                cdev_config_interrupt(d);
            }
        }
    } else if (!strcmp(cmd, "config-interrupt")) {
        d->generation++;
        cdev_config_interrupt(d);
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
    .cfg_read = cdev_cfg_read,
    .cfg_write = cdev_cfg_write,
    .mmio_read = cdev_mmio_read,
    .mmio_write = cdev_mmio_write,
    .intx_level = cdev_intx_level,
    .qmp = NULL,
    .control = c_control,
    .destroy = c_destroy,
    .held_ns = cdev_held_ns,
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
    cdev_set_layout(d);
    cdev_build_config(d);
    cdev_virtio_reset(d);

    if (pthread_create(&d->thread, NULL, cdev_device_thread, d) != 0) {
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
