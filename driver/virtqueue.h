/*
 * Split virtqueue (virtio 1.x spec 2.7), OS-free: no StorPort calls, compiled
 * unmodified into the unit tests. The caller serialises calls with one lock (the
 * "queue lock"): VqAdd/VqKickPrepare (submission) and VqGetUsed/VqEnable/Disable
 * (completion) share the free list. The doorbell itself is written by the caller
 * after dropping the lock, when VqKickPrepare returned TRUE. Every function is
 * non-blocking, allocates nothing and touches only the memory given to VqInit, so it
 * may run at any IRQL up to DIRQL (StartIo/DPC under the StorPort InterruptLock, or
 * lock-free in dump mode where StorPort serialises everything).
 *
 * Device-written memory (used ring, and in theory the whole ring) is untrusted:
 * every used element is validated; on inconsistency the queue marks itself broken,
 * stops returning completions and the caller must reset the device (VqIsBroken).
 *
 * Fields of VIRTQUEUE are private to virtqueue.c; use the accessors.
 *
 * x86/x64 only (little-endian, coherent DMA): ring fields are stored natively, which
 * is the spec's little-endian layout there. Design notes: docs/virtqueue.md.
 */
#ifndef AEROVBLK_VIRTQUEUE_H
#define AEROVBLK_VIRTQUEUE_H
#include <ntdef.h>
#include "compat.h"

/* Spec 2.7.5 / 2.7.6 / 2.7.8 */
#define VQ_DESC_F_NEXT       1
#define VQ_DESC_F_WRITE      2
#define VQ_DESC_F_INDIRECT   4
#define VQ_AVAIL_F_NO_INTERRUPT 1
#define VQ_USED_F_NO_NOTIFY     1

typedef struct _VQ_DESC {          /* 16 bytes, little-endian, 16-byte aligned table */
    ULONGLONG Address;
    ULONG Length;
    USHORT Flags;
    USHORT Next;
} VQ_DESC;

/* One buffer: its direction comes from where it sits in a VQ_REQUEST. */
typedef struct _VQ_BUFFER {
    ULONGLONG PhysicalAddress;
    ULONG Length;
} VQ_BUFFER;

/* One element of a scatter/gather list. Laid out like StorPort's
 * STOR_SCATTER_GATHER_ELEMENT on x86 and x64 (the SCSI layer asserts it at compile
 * time), so the list StorPort built reaches VqAdd without a copy. */
typedef struct _VQ_SG_ELEMENT {
    ULONGLONG PhysicalAddress;
    ULONG Length;
    ULONG_PTR Reserved;
} VQ_SG_ELEMENT;

#define VQ_NO_BUFFER_LIMIT 0xFFFFFFFFu

/* One request for VqAdd, in ring order (spec 2.7.4.2: device-readable before
 * device-writable): the Out buffers, then the data (the first DataBytes bytes of the
 * Data elements, each cut into buffers of at most DataBufferMax bytes, zero-length
 * elements giving none; device-writable if DataWritable), then the In buffers. */
typedef struct _VQ_REQUEST {
    const VQ_BUFFER *Out;          /* device-readable */
    const VQ_BUFFER *In;           /* device-writable */
    const VQ_SG_ELEMENT *Data;
    ULONG DataElements;
    ULONG DataBytes;               /* 0: no data part */
    ULONG DataBufferMax;           /* VQ_NO_BUFFER_LIMIT: one buffer per element */
    USHORT DataMaxBuffers;         /* more data buffers than this: VQ_INVALID */
    USHORT OutCount;
    USHORT InCount;
    BOOLEAN DataWritable;
} VQ_REQUEST;

/* Why a queue went broken (VqBrokenReason); the offending value is reported too. */
typedef enum _VQ_BROKEN_REASON {
    VQ_BROKEN_NONE = 0,
    VQ_BROKEN_USED_IDX,            /* used->idx moved past the entries the device was given */
    VQ_BROKEN_USED_ID_RANGE,       /* used id >= queue size */
    VQ_BROKEN_USED_ID_NOT_IN_FLIGHT /* used id not a head in flight: duplicate, stale or mid-chain */
} VQ_BROKEN_REASON;

typedef enum _VQ_STATUS {
    VQ_OK = 0,
    VQ_FULL,                       /* not enough free descriptors now: retry later (BUSY) */
    VQ_INVALID,                    /* request can never fit / bad arguments */
    VQ_BROKEN                      /* device misbehaved; reset required */
} VQ_STATUS;

typedef struct _VIRTQUEUE {
    /* Device-shared ring (DMA memory). */
    volatile VQ_DESC *Desc;
    volatile USHORT *Avail;        /* flags, idx, ring[Size], used_event */
    volatile UCHAR *Used;          /* flags, idx, ring[Size] {id,len}, avail_event */
    ULONGLONG DescPa, AvailPa, UsedPa;
    /* Optional indirect tables: Size tables of IndirectMax descriptors, table i used by head i. */
    VQ_DESC *Indirect;
    ULONGLONG IndirectPa;
    USHORT IndirectMax;
    /* Driver-private state (never device-visible, so never corrupted by it). */
    void **Cookies;                /* per head: request cookie, NULL = free */
    USHORT *NextFree;              /* free-list links; equal desc.next inside a chain, which is
                                      never read back from the device-writable table */
    USHORT *ChainLength;           /* per head: ring descriptors of its chain (1 = indirect) */
    USHORT Size;
    USHORT NumFree;
    USHORT FreeHead;
    USHORT AvailIdx;               /* shadow of avail->idx (next slot to fill) */
    USHORT LastKickAvailIdx;       /* avail->idx as last published (by VqKickPrepare) */
    USHORT LastUsedIdx;            /* next used entry to consume */
    USHORT InFlight;
    USHORT DetachCursor;           /* VqDetachNext scan position */
    BOOLEAN EventIdx;
    BOOLEAN InterruptsDisabled;
    BOOLEAN Broken;
    UCHAR BrokenReason;            /* VQ_BROKEN_REASON */
    ULONG BrokenValue;             /* the used idx / id that broke the queue */
    /* Counters (read by diagnostics; plain increments under the queue lock). */
    ULONG KicksNeeded;
    ULONG KicksSuppressed;
    ULONG BadUsedEntries;
} VIRTQUEUE;

/* Bytes of DMA memory for the ring: descriptor table at 0 (16-aligned), avail ring
 * right after it (2-aligned), used ring on the next 64-byte boundary (spec minimum 4;
 * 64 keeps device-written and driver-written cache lines apart), with
 * used_event/avail_event when EventIdx; rounded up to 16 so whatever follows stays
 * 16-aligned. Ring memory must be 16-byte aligned and physically contiguous.
 * 0 if QueueSize is not a power of two in 1..32768. */
ULONG VqRingBytes(USHORT QueueSize, BOOLEAN EventIdx);
/* Bytes of DMA memory for indirect tables (QueueSize x IndirectMax descriptors);
 * 0 for an invalid QueueSize or when the total does not fit in 32 bits. */
ULONG VqIndirectBytes(USHORT QueueSize, USHORT IndirectMax);
/* Bytes of driver-private memory (cookies, free-list links, chain lengths);
 * 0 for an invalid QueueSize. */
ULONG VqStateBytes(USHORT QueueSize);

/* Lay out and reset the queue. QueueSize must be a power of two, 1..32768.
 * Indirect may be NULL (IndirectMax 0): direct chains only. Zeroes the ring.
 * Ring, Indirect (VA and PA) and State must be 16-byte aligned; VQ_INVALID otherwise.
 * Called at PASSIVE (HwFindAdapter/HwInitialize) or after a reset, device not live. */
VQ_STATUS VqInit(VIRTQUEUE *Vq, USHORT QueueSize, BOOLEAN EventIdx,
                 void *Ring, ULONGLONG RingPa,
                 void *Indirect, ULONGLONG IndirectPa, USHORT IndirectMax,
                 void *State);

/* Add one request, written from its buffers and scatter/gather elements straight into
 * descriptors in one pass: the head's indirect table when configured and
 * 1 < buffers <= IndirectMax, else a direct chain. VQ_INVALID (queue unchanged): a
 * buffer of length 0, data elements holding fewer than DataBytes bytes or needing
 * more than DataMaxBuffers buffers, no buffer at all, more than QueueSize buffers
 * (spec 2.7.5.3.1, also for an indirect table), more than 4 GiB (2.7.5.2), Cookie NULL.
 * VQ_FULL: not enough free descriptors now. VQ_BROKEN once broken. Does not publish:
 * see VqKickPrepare. Under the queue lock. */
VQ_STATUS VqAdd(VIRTQUEUE *Vq, const VQ_REQUEST *Request, void *Cookie);

/* Publish added entries (spec 2.7.13: barrier before avail->idx) and decide whether
 * the device must be notified (spec 2.7.10: EVENT_IDX avail_event, else
 * VIRTQ_USED_F_NO_NOTIFY). TRUE: caller writes the doorbell after dropping the lock.
 * FALSE when nothing new was added, or when the queue is broken (nothing published). */
BOOLEAN VqKickPrepare(VIRTQUEUE *Vq);

/* Next completed request, or NULL when none (or when the queue is broken).
 * *UsedLength (may be NULL) receives used.len, which is untrusted and informational
 * only. A bad used entry breaks the queue (VqBrokenReason) before anything it names
 * is touched. Under the queue lock. */
void *VqGetUsed(VIRTQUEUE *Vq, ULONG *UsedLength);

/* TRUE when the device has published used entries not consumed yet: a cheap test
 * (inline, one read of used->idx) before VqGetUsed, which validates what it reads.
 * Under the queue lock. */
AV_INLINE BOOLEAN VqHasUsed(const VIRTQUEUE *Vq)
{
    return (BOOLEAN)(*(const volatile USHORT *)(Vq->Used + 2) != Vq->LastUsedIdx);
}

/* Completion-side interrupt control (spec 2.7.7 / 2.7.14). VqEnableInterrupts
 * returns TRUE if used entries arrived meanwhile: the caller must drain again
 * (disable -> drain -> enable -> re-check, so no interrupt is lost). With EVENT_IDX
 * and 16 or more requests outstanding it lets the device complete up to a quarter of
 * them (at most 16) before interrupting, always fewer than are outstanding. It returns
 * FALSE on a broken queue, so that loop always ends. A disabled queue stays quiet
 * however many entries are consumed meanwhile (dump mode disables once and polls).
 * Under the queue lock. */
void VqDisableInterrupts(VIRTQUEUE *Vq);
BOOLEAN VqEnableInterrupts(VIRTQUEUE *Vq);

/* After a device reset: returns the cookies still in flight (published or not), one
 * per call, freeing their descriptors; NULL when none remain. Works on a broken
 * queue. Then VqInit again before the device is restarted (its indices restart at 0). */
void *VqDetachNext(VIRTQUEUE *Vq);

/* Trivial accessors, inline: VqIsBroken runs on every submission and completion. */
AV_INLINE BOOLEAN VqIsBroken(const VIRTQUEUE *Vq) { return Vq->Broken; }
/* VQ_BROKEN_NONE while healthy; *BadValue (may be NULL) gets the offending idx/id. */
VQ_BROKEN_REASON VqBrokenReason(const VIRTQUEUE *Vq, ULONG *BadValue);
AV_INLINE USHORT VqSize(const VIRTQUEUE *Vq) { return Vq->Size; }
AV_INLINE USHORT VqNumFree(const VIRTQUEUE *Vq) { return Vq->NumFree; }
AV_INLINE USHORT VqInFlight(const VIRTQUEUE *Vq) { return Vq->InFlight; }
USHORT VqHeldByDevice(VIRTQUEUE *Vq);       /* in flight and not yet published as used */
AV_INLINE USHORT VqAvailIdx(const VIRTQUEUE *Vq) { return Vq->AvailIdx; }     /* driver's shadow */
/* used entries consumed (mod 2^16) = next to consume */
AV_INLINE USHORT VqUsedIdx(const VIRTQUEUE *Vq) { return Vq->LastUsedIdx; }

#endif
