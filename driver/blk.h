/*
 * virtio-blk requests (virtio 1.x spec 5.2): device config snapshot, feature set,
 * per-request DMA blocks (header + status + small payload) and submission /
 * completion on top of the split virtqueue. Knows virtqueue.h and virtio_pci.h.
 *
 * Locking: VblkSubmit/VblkKickPrepare and VblkNextCompleted run under the caller's
 * queue lock (the StorPort InterruptLock, see docs/architecture.md); VblkNotify
 * (the doorbell) outside it.
 */
#ifndef AEROVBLK_BLK_H
#define AEROVBLK_BLK_H
#include <ntdef.h>
#include "compat.h"
#include "virtqueue.h"
#include "virtio_pci.h"

/* Feature bits (spec 5.2.3, 6) */
#define VIRTIO_BLK_F_SIZE_MAX      1
#define VIRTIO_BLK_F_SEG_MAX       2
#define VIRTIO_BLK_F_GEOMETRY      4
#define VIRTIO_BLK_F_RO            5
#define VIRTIO_BLK_F_BLK_SIZE      6
#define VIRTIO_BLK_F_FLUSH         9
#define VIRTIO_BLK_F_TOPOLOGY      10
#define VIRTIO_BLK_F_CONFIG_WCE    11
#define VIRTIO_BLK_F_MQ            12
#define VIRTIO_BLK_F_DISCARD       13
#define VIRTIO_BLK_F_WRITE_ZEROES  14
#define VIRTIO_F_INDIRECT_DESC     28
#define VIRTIO_F_EVENT_IDX         29
#define VIRTIO_F_RING_PACKED       34
#define VBLK_FEATURE(b) (1ULL << (b))

/* Request types (spec 5.2.6) */
#define VIRTIO_BLK_T_IN            0
#define VIRTIO_BLK_T_OUT           1
#define VIRTIO_BLK_T_FLUSH         4
#define VIRTIO_BLK_T_GET_ID        8
#define VIRTIO_BLK_T_DISCARD       11
#define VIRTIO_BLK_T_WRITE_ZEROES  13
/* Status byte */
#define VIRTIO_BLK_S_OK            0
#define VIRTIO_BLK_S_IOERR         1
#define VIRTIO_BLK_S_UNSUPP        2
#define VBLK_STATUS_SENTINEL       0xFF   /* pre-set; a completion still showing it is a device bug */
/* Driver-side outcomes that never come from the device (the device's status byte is
 * normalised to OK/IOERR/UNSUPP by VblkNextCompleted), mapped by the SCSI layer: */
#define VBLK_STATUS_RESET          0xFD   /* detached after a device reset (VblkDetachNext): bus reset */
#define VBLK_STATUS_DEVICE_GONE    0xFE   /* set by the glue: surprise removal, device unreachable */

#define VIRTIO_BLK_ID_BYTES        20
/* Largest number of data buffers one request may carry (StorPort SG elements).
 * 254 = QEMU's default seg_max (queue size 256 - 2): 253 pages (1012 KiB) + 1 for an
 * unaligned start; header + 254 + status is exactly a 256-entry queue (2.7.5.3.1). */
#define VBLK_MAX_DATA_BUFFERS      254
/* Discard / write-zeroes segments per request we are prepared to send. */
#define VBLK_MAX_DISCARD_SEGMENTS  16
#define VBLK_PAYLOAD_BYTES         (VBLK_MAX_DISCARD_SEGMENTS * 16)
#define VBLK_SEGMENT_BYTES         16     /* struct virtio_blk_discard_write_zeroes */
#define VBLK_SEGMENT_FLAG_UNMAP    1      /* write-zeroes: the device may unmap */

/* struct virtio_blk_config offsets (spec 5.2.4) */
#define VBLK_CFG_CAPACITY                 0x00
#define VBLK_CFG_SIZE_MAX                 0x08
#define VBLK_CFG_SEG_MAX                  0x0C
#define VBLK_CFG_GEOMETRY_CYLINDERS       0x10
#define VBLK_CFG_GEOMETRY_HEADS           0x12
#define VBLK_CFG_GEOMETRY_SECTORS         0x13
#define VBLK_CFG_BLK_SIZE                 0x14
#define VBLK_CFG_PHYSICAL_BLOCK_EXP       0x18
#define VBLK_CFG_ALIGNMENT_OFFSET         0x19
#define VBLK_CFG_MIN_IO_SIZE              0x1A
#define VBLK_CFG_OPT_IO_SIZE              0x1C
#define VBLK_CFG_WRITEBACK                0x20
#define VBLK_CFG_MAX_DISCARD_SECTORS      0x24
#define VBLK_CFG_MAX_DISCARD_SEG          0x28
#define VBLK_CFG_DISCARD_SECTOR_ALIGNMENT 0x2C
#define VBLK_CFG_MAX_WRITE_ZEROES_SECTORS 0x30
#define VBLK_CFG_MAX_WRITE_ZEROES_SEG     0x34
#define VBLK_CFG_WRITE_ZEROES_MAY_UNMAP   0x38

/* Largest capacity accepted: bytes must fit in 64 bits (2^55 sectors = 16 EiB). */
#define VBLK_MAX_CAPACITY_SECTORS  ((1ULL << 55) - 1)
/* config_generation loop bound (spec 4.1.4.3.1) */
#define VBLK_CONFIG_TRIES          16

/* VBLK_CONFIG.Notes: device values VblkReadConfig had to correct (the glue logs them). */
#define VBLK_NOTE_BLK_SIZE_INVALID   0x01  /* not a power of two in 512..65536: 512 used */
#define VBLK_NOTE_CAPACITY_CLAMPED   0x02  /* above VBLK_MAX_CAPACITY_SECTORS: clamped */
#define VBLK_NOTE_SEG_MAX_ZERO       0x04  /* SEG_MAX negotiated but 0: 1 used */
#define VBLK_NOTE_SIZE_MAX_INVALID   0x08  /* SIZE_MAX negotiated but below 512: 512 used */
#define VBLK_NOTE_TOPOLOGY_INVALID   0x10  /* physical_block_exp > 15 or alignment >= blocks per
                                            * physical block: topology ignored */
#define VBLK_NOTE_DISCARD_LIMITS     0x20  /* max_discard_seg / max_write_zeroes_seg 0: 1 used */

/* Device config snapshot: only fields whose feature was negotiated are filled,
 * the rest hold safe defaults (BlockSize 512, SegMax/SizeMax 0 = unknown). */
typedef struct _VBLK_CONFIG {
    ULONGLONG CapacitySectors;        /* 512-byte sectors */
    ULONG SizeMax;
    ULONG SegMax;
    USHORT Cylinders;
    UCHAR Heads;
    UCHAR SectorsPerTrack;
    ULONG BlockSize;                  /* logical block size, validated power of two >= 512 */
    UCHAR PhysicalBlockExp;
    UCHAR AlignmentOffset;
    USHORT MinIoSize;
    ULONG OptIoSize;
    UCHAR Writeback;                  /* CONFIG_WCE */
    ULONG MaxDiscardSectors;
    ULONG MaxDiscardSeg;
    ULONG DiscardSectorAlignment;
    ULONG MaxWriteZeroesSectors;
    ULONG MaxWriteZeroesSeg;
    UCHAR WriteZeroesMayUnmap;
    ULONG Notes;                      /* VBLK_NOTE_*: values corrected during validation */
} VBLK_CONFIG;

/* The per-request DMA block, one per slot, in the uncached extension: header and
 * status only (32 bytes), so a slot per ring entry stays cheap. */
typedef struct _VBLK_REQUEST_DMA {
    ULONG Type;                        /* virtio_blk_outhdr, little-endian */
    ULONG Ioprio;
    ULONGLONG Sector;
    UCHAR Status;
    UCHAR Reserved[15];
} VBLK_REQUEST_DMA;

/* Payload blocks (discard / write-zeroes segments, GET_ID bytes): a small pool of its
 * own, since such requests are rare; a request finding none free is VQ_FULL (BUSY). */
#define VBLK_PAYLOAD_SLOTS         8
#define VBLK_NO_PAYLOAD_SLOT       0xFF
typedef struct _VBLK_PAYLOAD_DMA {
    UCHAR Bytes[VBLK_PAYLOAD_BYTES];
} VBLK_PAYLOAD_DMA;

/* A scatter/gather element as the virtqueue takes it (laid out like StorPort's). */
typedef VQ_SG_ELEMENT VBLK_SG_ELEMENT;

/* Per-request state, embedded in the SRB extension. Filled by the caller (Type,
 * Sector, Data*, Payload*) and by VblkSubmit (Slot, PayloadSlot, Status). */
typedef struct _VBLK_REQUEST {
    ULONG Type;
    ULONGLONG Sector;
    const VBLK_SG_ELEMENT *Data;       /* IN/OUT: the data's elements, read by VblkSubmit only */
    ULONG DataElements;                /* elements in Data (it may hold more than DataBytes) */
    ULONG DataBytes;                   /* IN/OUT: bytes to transfer, the first DataBytes of Data */
    USHORT Slot;                       /* owned by blk.c while in flight */
    UCHAR PayloadSlot;                 /* owned by blk.c: payload block, VBLK_NO_PAYLOAD_SLOT if none */
    UCHAR Status;                      /* virtio status after completion */
    ULONG PayloadLength;               /* bytes of Payload sent (discard) or expected (GET_ID) */
    UCHAR Payload[VBLK_PAYLOAD_BYTES];
} VBLK_REQUEST;

/* Counters for diagnostics, updated under the queue lock; index = AEROVBLK_REQ_* order
 * (read, write, flush, discard, write-zeroes, get-id). */
typedef struct _VBLK_STATS {
    ULONGLONG Submitted[6];
    ULONGLONG Completed[6];
    ULONGLONG BytesRead;               /* by requests that completed OK (a retried one once) */
    ULONGLONG BytesWritten;
    ULONG ErrorsIoErr;
    ULONG ErrorsUnsupported;
    ULONG ErrorsNoStatus;              /* completed with the sentinel still in place (-> IOERR) */
    ULONG ErrorsBadStatus;             /* status byte not OK/IOERR/UNSUPP (-> IOERR) */
    ULONG InFlight;
    ULONG MaxInFlight;
} VBLK_STATS;

typedef struct _VBLK_QUEUE {
    VIRTQUEUE Vq;
    VBLK_STATS Stats;
    VBLK_REQUEST_DMA *Slots;
    ULONGLONG SlotsPa;
    USHORT *FreeSlots;                 /* stack of free slot indices */
    USHORT FreeSlotCount;
    USHORT SlotCount;
    VBLK_PAYLOAD_DMA *Payloads;        /* PayloadSlotCount blocks */
    ULONGLONG PayloadsPa;
    ULONG PayloadFree;                 /* bit i set: payload block i free */
    USHORT PayloadSlotCount;           /* min(SlotCount, VBLK_PAYLOAD_SLOTS) */
    USHORT DataBuffersMax;             /* data buffers per request (seg_max): VblkQueueSetLimits */
    ULONG BufferBytesMax;              /* longest data buffer (size_max): VblkQueueSetLimits */
} VBLK_QUEUE;

/* Features the driver asks for (intersected with the device's offer by the transport). */
ULONGLONG VblkWantedFeatures(void);

/* Read the config snapshot inside the config_generation loop and validate it.
 * Returns VPCI_ERR_CONFIG_UNSTABLE / VPCI_ERR_DEVICE_GONE on failure. */
VPCI_STATUS VblkReadConfig(VPCI_DEVICE *Dev, ULONGLONG Negotiated, VBLK_CONFIG *Config);
/* CONFIG_WCE: write the writeback byte (spec 5.2.6.3) and read it back. */
BOOLEAN VblkSetWriteback(VPCI_DEVICE *Dev, UCHAR Writeback);

/* Memory: total bytes (DMA ring + indirect tables + slots + private state) for a
 * queue; Mem must be 4 KiB aligned and physically contiguous. SlotCount (1..QueueSize)
 * bounds the requests in flight: dump mode uses 2 to stay inside its 32 KiB budget.
 * IndirectMax 0 = no indirect tables (direct chains only). */
ULONG VblkQueueMemoryBytes(USHORT QueueSize, BOOLEAN EventIdx, USHORT IndirectMax,
                           USHORT SlotCount);
VQ_STATUS VblkQueueInit(VBLK_QUEUE *Q, USHORT QueueSize, BOOLEAN EventIdx, USHORT IndirectMax,
                        USHORT SlotCount, void *Mem, ULONGLONG MemPa);
/* The device's limits on a request's data (spec 5.2.4): at most DataBuffersMax buffers
 * (0 or more than VBLK_MAX_DATA_BUFFERS: VBLK_MAX_DATA_BUFFERS), each at most
 * BufferBytesMax bytes (VblkBufferBytesMax: size_max). VblkQueueInit sets these
 * defaults; the glue sets the planned ones right after it. */
void VblkQueueSetLimits(VBLK_QUEUE *Q, USHORT DataBuffersMax, ULONG BufferBytesMax);
/* size_max when SIZE_MAX was negotiated and is not 0, else VQ_NO_BUFFER_LIMIT. */
ULONG VblkBufferBytesMax(ULONGLONG Negotiated, const VBLK_CONFIG *Config);

/* Submit Req (header + data buffers + payload + status); Req itself is the virtqueue
 * cookie. The data's descriptors are written straight from Req->Data (one pass), each
 * element split at size_max. VQ_INVALID: a request of the wrong shape, data elements
 * holding less than DataBytes, or more data buffers than the device takes (seg_max).
 * VQ_FULL: ring or slots exhausted now (complete the SRB with SRB_STATUS_BUSY). Counts Submitted[]/bytes in Q->Stats. */
VQ_STATUS VblkSubmit(VBLK_QUEUE *Q, VBLK_REQUEST *Req);
BOOLEAN VblkKickPrepare(VBLK_QUEUE *Q);
void VblkNotify(VBLK_QUEUE *Q, VPCI_DEVICE *Dev);
/* Next completed request: fills Req->Status (a status still equal to the sentinel
 * becomes IOERR and is counted), copies the GET_ID payload back into Req->Payload,
 * frees the slot, counts Completed[]. NULL when none (or the queue is broken:
 * check VqIsBroken(&Q->Vq)). */
VBLK_REQUEST *VblkNextCompleted(VBLK_QUEUE *Q);
/* TRUE when VblkNextCompleted may have a request to return (inline: the drain loop's
 * test, so an empty ring costs no call). */
AV_INLINE BOOLEAN VblkHasCompleted(const VBLK_QUEUE *Q)
{
    return VqHasUsed(&Q->Vq);
}
/* After a device reset: in-flight requests, one per call (slots freed, Status set to
 * VBLK_STATUS_RESET); NULL when none. */
VBLK_REQUEST *VblkDetachNext(VBLK_QUEUE *Q);
/* Index into VBLK_STATS.Submitted/Completed (AEROVBLK_REQ_* order) for a request type. */
ULONG VblkStatIndex(ULONG Type);
/* Volatile write cache (spec 5.2.6.3 / 5.2.5.1): FLUSH negotiated and either CONFIG_WCE
 * not negotiated (SHOULD assume writeback) or writeback currently 1. */
BOOLEAN VblkHasVolatileCache(ULONGLONG Negotiated, const VBLK_CONFIG *Config);

#endif
