/*
 * The simulator's view of a virtio-blk PCI function plus the guest RAM it DMAs to.
 * Two backends implement it: QEMU's real device over qtest (sim/qemu_backend.c) and
 * the in-process Aero-contract device (sim/contract_dev*.c).
 *
 * The backend is only "the device and the RAM". Everything firmware and the Windows
 * PCI bus driver do (BAR sizing and assignment, command register, MSI-X table
 * programming, MSI-X enable) is done by the simulator core through cfg/mmio calls,
 * identically for both backends.
 *
 * Interrupt delivery: MSI-X messages are DMA writes of the entry's data to the
 * entry's address in guest RAM (the core points entries at RAM it watches); INTx is
 * a line level reported by intx_level(). All ops are thread-safe (the core's
 * interrupt thread and submission threads call concurrently).
 */
#ifndef AEROVBLK_SIMDEV_H
#define AEROVBLK_SIMDEV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim_dev sim_dev;

struct sim_dev_ops {
    /* PCI config space of the function, width 1/2/4, offset < 256 (or 4096). */
    uint32_t (*cfg_read)(sim_dev *d, unsigned off, unsigned width);
    void (*cfg_write)(sim_dev *d, unsigned off, unsigned width, uint32_t val);
    /* Memory-space access at guest-physical address gpa (inside an assigned BAR). */
    uint32_t (*mmio_read)(sim_dev *d, uint64_t gpa, unsigned width);
    void (*mmio_write)(sim_dev *d, uint64_t gpa, unsigned width, uint32_t val);
    /* Current INTx (INTA#) level. */
    bool (*intx_level)(sim_dev *d);
    /* Optional: QMP command (JSON text) for the QEMU backend; 0 on success, reply copied. */
    int (*qmp)(sim_dev *d, const char *json, char *reply, size_t reply_len);
    /* Optional: fault injection / control for the contract backend ("stall=1", ...). */
    int (*control)(sim_dev *d, const char *command);
    /* Flush and release everything (QEMU process, sockets, shared files). */
    void (*destroy)(sim_dev *d);
    /* Optional: how long the calling thread's last register access was held by the
     * device model itself (a blocking reset draining requests), in ns; reading clears
     * it. Host scheduling and qtest round trips are not counted (issue 11 item 7). */
    uint64_t (*held_ns)(sim_dev *d);
};

/* For held_ns: returns the calling thread's slot and clears it. */
static inline uint64_t sim_dev_take_held(uint64_t *slot)
{
    uint64_t v = *slot;
    *slot = 0;
    return v;
}

struct sim_dev {
    const struct sim_dev_ops *ops;
    uint8_t *ram;          /* guest RAM; guest-physical address X is ram[X] */
    uint64_t ram_size;
    int ram_fd;            /* fd backing ram (shared file / memfd) so the core can alias
                              pages at other virtual addresses; -1 if none */
    /* Region of guest RAM below which the backend itself keeps nothing; the core
     * allocates uncached extension, data buffers and MSI-X targets from
     * [ram_base_free, ram_size). */
    uint64_t ram_base_free;
    /* First guest-physical address where the core may assign BARs (above RAM). */
    uint64_t mmio_window_base;
    char name[32];         /* "qemu" or "contract" */
};

/* Options shared by both backends (from the CLI). */
typedef struct sim_dev_config {
    const char *disk_path;        /* raw image; created sparse if missing */
    uint64_t disk_size;           /* bytes, when creating */
    const char *device_opts;      /* QEMU: appended to -device virtio-blk-pci,...; contract: k=v */
    const char *drive_opts;       /* QEMU: appended to -drive ...             */
    uint64_t ram_size;            /* guest RAM (default 256 MiB) */
    bool verbose;
} sim_dev_config;

sim_dev *sim_qemu_create(const sim_dev_config *cfg, char *err, size_t err_len);
sim_dev *sim_contract_create(const sim_dev_config *cfg, char *err, size_t err_len);

#endif
