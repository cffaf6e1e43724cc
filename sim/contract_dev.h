/*
 * Extra API of the in-process Aero-contract virtio-blk device (sim/contract_dev*.c),
 * beyond sim/simdev.h. Options and control commands: docs/contract-device.md.
 */
#ifndef AEROVBLK_SIM_CONTRACT_DEV_H
#define AEROVBLK_SIM_CONTRACT_DEV_H
#include "simdev.h"

/* Counters kept by the device. driver_bugs counts requests or register accesses that
 * break the virtio spec or the contract: each one is also logged loudly on stderr
 * ("contract-dev: DRIVER BUG: ..."), and a clean driver run must end with 0. */
typedef struct sim_contract_stats {
    uint64_t doorbells;          /* notify writes that named a valid queue */
    uint64_t requests;           /* used elements published for real requests */
    uint64_t reads, writes, flushes, unsupported;
    uint64_t ioerrs;             /* requests completed with VIRTIO_BLK_S_IOERR */
    uint64_t bytes_read, bytes_written;
    uint64_t driver_bugs;
    uint64_t msix_messages;      /* MSI-X DMA writes delivered to guest RAM */
    uint64_t msix_suppressed;    /* events whose vector was NO_VECTOR */
    uint64_t intx_raises;        /* ISR went from 0 to non-zero with MSI-X off */
    uint64_t config_interrupts;
    uint64_t isr_reads;
    uint64_t mmio_reads, mmio_writes;
    uint64_t resets;             /* device_status written 0 */
    uint64_t faults_injected;    /* fail-next-*, bad/dup used id, needs-reset-next actually applied */
    uint64_t max_batch;          /* most requests taken from the avail ring in one pass */
    uint64_t mmio_after_removal; /* register reads + writes after `surprise-remove` */
    uint64_t flushes_delayed;    /* FLUSHes held for flush-delay-ms */
    uint64_t reset_blocked_ns_max; /* reset-blocks: longest status-0 write spent draining */
} sim_contract_stats;

/* 0 and *out filled when d is a contract device; -1 otherwise. Thread-safe. */
int sim_contract_get_stats(sim_dev *d, sim_contract_stats *out);

/* Wait (bounded, timeout_ms) until the device has no request left to process: every
 * avail entry published so far has a used entry. 0 idle, -1 timeout / stalled. */
int sim_contract_wait_idle(sim_dev *d, unsigned timeout_ms);

#endif
