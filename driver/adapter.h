/*
 * Adapter (device extension) and SRB extension of aerovblk: the state the StorPort
 * glue (aerovblk.c) and the diagnostics IOCTL (diag.c) share. The layers below keep
 * their own state inside it (VPCI_DEVICE, VBLK_QUEUE, SCSI_DISK).
 */
#ifndef AEROVBLK_ADAPTER_H
#define AEROVBLK_ADAPTER_H
#include <ntdef.h>
#include <storport.h>
#include <scsi.h>
#include "compat.h"
#include "virtio_pci.h"
#include "virtqueue.h"
#include "blk.h"
#include "scsixlat.h"

/* Queue sizing: the normal-mode ring is capped at 256 entries and its indirect tables
 * sized so the uncached extension stays within 128 KiB; dump mode must stay under 32 KiB of
 * noncached memory [MS-BOOT], so it uses direct chains and 2 request slots (the
 * ring itself, at most 256 entries, takes < 10 KiB). */
#define AEROVBLK_MAX_QUEUE_SIZE        256
#define AEROVBLK_MAX_LUN_QUEUE_DEPTH   254  /* StorPort's per-LUN maximum */
#define AEROVBLK_DUMP_SLOTS            2
#define AEROVBLK_DUMP_MAX_DATA_BUFFERS 17   /* 16 physical breaks, as SCSI_MINIMUM_PHYSICAL_BREAKS */
#define AEROVBLK_DUMP_BUDGET_BYTES     (30 * 1024)
/* Normal mode: the uncached extension (incl. the alignment page) stays within 128 KiB,
 * a size a late PnP start on a fragmented machine can still get (facts §11.12). */
#define AEROVBLK_NORMAL_BUDGET_BYTES   (128 * 1024)
#define AEROVBLK_PAGE_SIZE             4096
#define AEROVBLK_PCI_CONFIG_BYTES      256

/* StorPortLogError unique codes (documented in docs/lifecycle.md): 0xA0B1CCDD, CC the
 * event below, DD the transport's VPCI_DETAIL_* reason when the transport failed. */
#define AEROVBLK_LOG_WRONG_DEVICE      0xA0B10100
#define AEROVBLK_LOG_WRONG_REVISION    0xA0B10200
#define AEROVBLK_LOG_BAD_CAPABILITIES  0xA0B10300
#define AEROVBLK_LOG_BAR_NOT_MAPPED    0xA0B10400
#define AEROVBLK_LOG_RESET_TIMEOUT     0xA0B10500
#define AEROVBLK_LOG_NEGOTIATION       0xA0B10600
#define AEROVBLK_LOG_CONFIG            0xA0B10700
#define AEROVBLK_LOG_QUEUE_SETUP       0xA0B10800
#define AEROVBLK_LOG_MSIX_VECTOR       0xA0B10900
#define AEROVBLK_LOG_NO_MEMORY         0xA0B10A00
#define AEROVBLK_LOG_NO_MEMORY_REDUCED 0xA0B10A01  /* started without indirect tables (fragmented memory) */
#define AEROVBLK_LOG_RING_BROKEN       0xA0B10B00
#define AEROVBLK_LOG_NEEDS_RESET       0xA0B10C00
#define AEROVBLK_LOG_RESET             0xA0B10D00
#define AEROVBLK_LOG_RESET_DEFERRED    0xA0B10D01  /* StorPort's reset while the host holds requests: not written */
#define AEROVBLK_LOG_REMOVED           0xA0B10E00
#define AEROVBLK_LOG_BUS_DATA          0xA0B10F00
#define AEROVBLK_LOG_RESTART_FAILED    0xA0B11000
#define AEROVBLK_LOG_RESUMED_FOREIGN   0xA0B11500   /* resumed without Restart: device reprogrammed by others */

/* Adapter state flags (same bit values as AEROVBLK_QUERY_INFO.Flags). */
#define AEROVBLK_STATE_REMOVED           0x1
#define AEROVBLK_STATE_SURPRISE_REMOVED  0x2
#define AEROVBLK_STATE_RESET_IN_PROGRESS 0x4
#define AEROVBLK_STATE_RESET_PENDING     0x8
#define AEROVBLK_STATE_STOPPED           0x10  /* between ScsiStopAdapter and ScsiRestartAdapter */

typedef struct _AEROVBLK_SRB_EXTENSION {
    PSCSI_REQUEST_BLOCK Srb;
    struct _AEROVBLK_SRB_EXTENSION *NextCompleted;   /* DPC-local completion list */
    SCSI_REQUEST_STATE Scsi;                          /* holds the VBLK_REQUEST (cookie) */
} AEROVBLK_SRB_EXTENSION, *PAEROVBLK_SRB_EXTENSION;

typedef struct _AEROVBLK_COUNTERS {
    ULONG AbortSrbCount;
    ULONG ResetDeviceSrbCount;
    ULONG ResetBusSrbCount;
    ULONG PnpSrbCount;
    ULONG IoctlResetCount;
    ULONG CapacityChangeEvents;
    ULONG ResetDetectedCount;
    ULONG HwResetBusCount;
    ULONGLONG DoorbellsWritten;
    ULONGLONG DoorbellsSuppressed;
    ULONGLONG InterruptsQueue;
    ULONGLONG InterruptsConfig;
    ULONGLONG InterruptsSpurious;
    ULONGLONG CompletionsInInterrupts;
    ULONG MaxCompletionsPerInterrupt;
    ULONG BusyCompletions;
} AEROVBLK_COUNTERS;

typedef struct _AEROVBLK_ADAPTER {
    /* Survives HwFindAdapter running again on this extension (PnP rebalance, facts
     * §11.9): AerovblkFindAdapter zeroes only from Pci on and never clears these: a
     * DPC queued before the stop may still run meanwhile (docs/lifecycle.md) and must
     * find the gate closed and its own DPC object intact. A second
     * StorPortGetUncachedExtension may return NULL, a second passive initialisation may
     * be refused. */
    STOR_DPC CompletionDpc;
    /* The device gate (aerovblk.c, AerovblkGateEnter): closed by ScsiStopAdapter and by
     * HwFindAdapter, opened by HwInitialize / ScsiRestartAdapter; GateUsers counts the
     * sections inside it. */
    volatile LONG GateClosed;
    volatile LONG GateUsers;
    PUCHAR UncachedVa;
    ULONGLONG UncachedPa;
    ULONG UncachedBytes;
    BOOLEAN DpcReady;                 /* StorPortInitializeDpc done (passive init) */

    /* Reset by every HwFindAdapter from here on. */
    VPCI_DEVICE Pci;
    VBLK_QUEUE Queue;
    SCSI_DISK Disk;

    ULONGLONG Features;               /* negotiated */
    ULONGLONG WantedFeatures;         /* asked for (restart/reset re-negotiate the same) */

    /* Uncached extension carve-out for the queue */
    PUCHAR QueueMemory;               /* 4 KiB aligned */
    ULONGLONG QueueMemoryPa;
    ULONG QueueMemoryBytes;
    USHORT QueueSize;                 /* in use */
    USHORT IndirectMax;               /* descriptors per indirect table, 0 = none */
    USHORT SlotCount;

    /* Interrupts */
    ULONG MessageCount;               /* MSI-X messages granted, 0 = INTx */
    USHORT ConfigVector;              /* VIRTIO_MSI_NO_VECTOR when INTx */
    USHORT QueueVector;

    BOOLEAN DumpMode;                 /* crash dump / hibernation instance */
    BOOLEAN QueueDepthSet;
    LONG ConfigChangePending;         /* set by the ISR, consumed by the DPC (interrupt lock) */
    LONGLONG LastStartIoTime;         /* system time of the last HwStartIo (AerovblkCheckResumed) */

    ULONG State;                      /* AEROVBLK_STATE_* */
    AEROVBLK_COUNTERS Counters;

    UCHAR PciConfig[AEROVBLK_PCI_CONFIG_BYTES];
} AEROVBLK_ADAPTER, *PAEROVBLK_ADAPTER;

/* diag.c: SRB_FUNCTION_IO_CONTROL. Called from HwStartIo (StartIo lock held,
 * DISPATCH_LEVEL; dump mode: no locks). Sets SrbStatus; the caller completes. */
VOID AerovblkHandleIoControl(PAEROVBLK_ADAPTER Adapter, PSCSI_REQUEST_BLOCK Srb);

/* aerovblk.c: queue lock helpers shared with diag.c (no-ops in dump mode). */
VOID AerovblkLockQueue(PAEROVBLK_ADAPTER Adapter, PSTOR_LOCK_HANDLE Handle);
VOID AerovblkUnlockQueue(PAEROVBLK_ADAPTER Adapter, PSTOR_LOCK_HANDLE Handle);

#endif
