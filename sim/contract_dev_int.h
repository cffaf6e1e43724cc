/*
 * Internal to the in-process contract device (sim/contract_dev*.c): register and ring
 * constants, the device state (cdev), the small helpers every part uses (static inline:
 * the device exports only the simdev.h / contract_dev.h API, check 24) and the
 * functions one part calls in another.
 */
#ifndef AEROVBLK_SIM_CONTRACT_DEV_INT_H
#define AEROVBLK_SIM_CONTRACT_DEV_INT_H
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "contract_dev.h"

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

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Absolute CLOCK_REALTIME deadline ns from now (d->cv uses the default clock). */
static inline void realtime_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ns / 1000000000ull);
    ts->tv_nsec += (long)(ns % 1000000000ull);
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

/* ---- logging ---------------------------------------------------------------------- */
static inline void dlog(cdev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void dlog(cdev *d, const char *fmt, ...)
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
static inline void bug(cdev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void bug(cdev *d, const char *fmt, ...)
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
static inline void put8(uint8_t *b, unsigned o, uint8_t v) { b[o] = v; }
static inline void put16(uint8_t *b, unsigned o, uint16_t v) { b[o] = (uint8_t)v; b[o + 1] = (uint8_t)(v >> 8); }
static inline void put32(uint8_t *b, unsigned o, uint32_t v) { put16(b, o, (uint16_t)v); put16(b, o + 2, (uint16_t)(v >> 16)); }
static inline uint16_t get16(const uint8_t *b, unsigned o) { return (uint16_t)(b[o] | (b[o + 1] << 8)); }
static inline uint32_t get32(const uint8_t *b, unsigned o) { return get16(b, o) | ((uint32_t)get16(b, o + 2) << 16); }

static inline void *ram_at(cdev *d, uint64_t gpa, uint64_t len)
{
    if (gpa > d->base.ram_size || len > d->base.ram_size - gpa)
        return NULL;
    return d->base.ram + gpa;
}

/* ---- request processing: the ring's three parts in guest RAM ---------------------- */
typedef struct ring_view {
    uint8_t *desc, *avail, *used;
} ring_view;

/* contract_dev_regs.c */
void cdev_set_layout(cdev *d);
void cdev_build_config(cdev *d);
uint64_t cdev_held_ns(sim_dev *sd);
uint32_t cdev_mmio_read(sim_dev *sd, uint64_t gpa, unsigned width);
void cdev_mmio_write(sim_dev *sd, uint64_t gpa, unsigned width, uint32_t val);
uint32_t cdev_cfg_read(sim_dev *sd, unsigned off, unsigned width);
void cdev_cfg_write(sim_dev *sd, unsigned off, unsigned width, uint32_t val);
bool cdev_intx_level(sim_dev *sd);

/* contract_dev_queue.c */
uint64_t cdev_bar_address(cdev *d, int i);
bool cdev_msix_enabled(cdev *d);
bool cdev_intx_asserted(cdev *d);
void cdev_msix_deliver_pending(cdev *d);
void cdev_queue_interrupt(cdev *d);
void cdev_config_interrupt(cdev *d);
void cdev_virtio_reset(cdev *d);
bool cdev_ring_view_get(cdev *d, ring_view *r);
void cdev_complete_flushes(cdev *d, const ring_view *r);
unsigned cdev_held_requests(cdev *d);
void cdev_process_queue(cdev *d);
void *cdev_device_thread(void *arg);
void cdev_kick(cdev *d);

#endif
