/*
 * Declarations shared by the files of the QEMU backend (sim/qemu_backend*.c): QEMU's
 * machine constants, the instance registry the signal handlers read, the backend's
 * device state and the functions one file calls in another. Internal to those files;
 * the simulator core sees simdev.h and the sim_qemu_* extras in qtest.h / sim.h.
 */
#ifndef AEROVBLK_SIM_QEMU_BACKEND_INT_H
#define AEROVBLK_SIM_QEMU_BACKEND_INT_H
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qmp.h"
#include "qtest.h"
#include "simdev.h"

#define QEMU_BINARY            "qemu-system-x86_64"
#define QEMU_APT_PACKAGE       "qemu-system-x86"
#define QEMU_PCI_SLOT          4u          /* -device ...,addr=04.0 */
#define QEMU_INTX_IOAPIC_PIN   20u         /* q35: slot 4 INTA# -> PIRQE -> GSI 20 */
#define QEMU_RAM_DEFAULT       (256ull << 20)
#define QEMU_RAM_MIN           (16ull << 20)
#define QEMU_RAM_MAX           (2048ull << 20)  /* q35 keeps up to 2 GiB below 4 GiB */
/* Below 1 MiB q35 overlays RAM with the BIOS ROM alias and SMRAM/VGA windows. */
#define QEMU_RAM_BASE_FREE     (1ull << 20)
/* In the 32-bit PCI hole: above RAM (<= 2 GiB), below the IOAPIC at 0xFEC00000. */
#define QEMU_MMIO_WINDOW_BASE  0xE0000000ull
#define QEMU_START_TIMEOUT_MS  30000
#define QEMU_REPLY_TIMEOUT_MS  15000
#define QEMU_TERM_TIMEOUT_MS   5000
#define QEMU_KILL_TIMEOUT_MS   5000
#define QEMU_MAX_INSTANCES     16
#define QEMU_PATH_LEN          108         /* sockaddr_un.sun_path */

enum { QEMU_FILE_QTEST, QEMU_FILE_QMP, QEMU_FILE_RAM, QEMU_FILE_LOG, QEMU_FILE_COUNT };

/*
 * Registry read by the signal handlers without locks: a slot is published by setting
 * used last and retired by clearing used first; paths are fixed arrays written while
 * the slot is unpublished or files_live is 0.
 */
struct qemu_slot {
    volatile sig_atomic_t used;
    volatile pid_t owner;        /* process that created it: a fork()ed copy must not act */
    volatile sig_atomic_t files_live;
    volatile pid_t pid;
    char dir[QEMU_PATH_LEN];
    char files[QEMU_FILE_COUNT][QEMU_PATH_LEN];
};

typedef struct qemu_dev {
    sim_dev pub;                 /* first: sim_dev* <-> qemu_dev* */
    int slot;
    pid_t pid;
    int log_fd;
    sim_qtest qt;
    bool qt_open;
    sim_qmp qmp;
    bool qmp_open;
    uint32_t cf8;                /* last value written to 0xCF8 (no CPU changes it) */
    bool cf8_valid;
    bool dead_reported;
    bool verbose;
    /* Counters only: BAR 4 as last written (QEMU's modern virtio-pci BAR) and the
     * qtest-level writes that reach QEMU's notify region in it. QEMU's own layout
     * (hw/virtio/virtio-pci.c: notify at 0x3000, 4 bytes per queue, VIRTIO_QUEUE_MAX
     * queues), not the core's capability parsing: an independent doorbell count. */
    uint32_t bar4_lo, bar4_hi;
    uint64_t notify_writes;
    /* Blocking reset (issue 11 item 7): queue 0's driver/device areas as the driver
     * wrote them into the common configuration (QEMU's layout: BAR 4 + 0). */
    uint16_t snoop_qsel;
    uint64_t snoop_avail, snoop_used;
} qemu_dev;

/* qemu_backend.c: helpers, startup */
int64_t qemu_now_ms(void);
void qemu_sleep_ms(int ms);

/* qemu_backend_proc.c: instance registry, signal/atexit cleanup, process control */
extern struct qemu_slot qemu_slots[QEMU_MAX_INSTANCES];
void qemu_slot_unlink_files(struct qemu_slot *s);
void qemu_install_handlers(void);
int qemu_slot_alloc(void);
void qemu_slot_publish(int i);
void qemu_slot_release(int i);
bool qemu_wait_exit(pid_t pid, int timeout_ms, int *status);
void qemu_teardown(qemu_dev *qd);
void qemu_child_exec(const char *binary, char *const argv[], int log_fd, pid_t parent);

/* qemu_backend_ops.c: the sim_dev ops */
extern const struct sim_dev_ops qemu_ops;
uint32_t qemu_cfg_read(sim_dev *d, unsigned off, unsigned width);

#endif
