/*
 * virtio-blk requests (virtio 1.x spec 5.2) on top of the split virtqueue: the feature
 * set, the validated config snapshot, the per-request DMA blocks (header + status +
 * payload, "slots") carved from the queue memory, and submission / completion.
 *
 * OS-free (no StorPort calls): compiled unmodified into the unit tests and the fuzzer.
 * x86/x64 only: the little-endian header fields are stored natively (as virtqueue.c).
 *
 * Locking (docs/architecture.md): every function taking a VBLK_QUEUE runs under the
 * queue lock (the StorPort InterruptLock) except VblkNotify, which writes the doorbell
 * after the lock is dropped. VblkReadConfig / VblkSetWriteback touch only device
 * config space; the glue serialises them with the queue lock or runs them before
 * interrupts are connected.
 */
#include "blk.h"

AV_STATIC_ASSERT(sizeof(VBLK_REQUEST_DMA) % 16 == 0, VblkSlotKeeps16ByteAlignment);
AV_STATIC_ASSERT(VBLK_PAYLOAD_BYTES >= VIRTIO_BLK_ID_BYTES, VblkPayloadHoldsId);
AV_STATIC_ASSERT(VBLK_PAYLOAD_SLOTS <= 32 && VBLK_PAYLOAD_SLOTS < VBLK_NO_PAYLOAD_SLOT, VblkPayloadMaskFits);

#define VBLK_ALIGN16(x) (((x) + 15u) & ~15u)
#define VBLK_STAT_NONE 6

/*
 * Who: the glue, in HwFindAdapter and on restart/reset, before negotiation.
 * Never RING_PACKED (the driver only has a split ring) nor MQ (Windows 7 StorPort
 * has one submission path; a single queue is all it can use).
 */
ULONGLONG VblkWantedFeatures(void)
{
    return VBLK_FEATURE(VIRTIO_F_VERSION_1) |
           VBLK_FEATURE(VIRTIO_F_INDIRECT_DESC) |
           VBLK_FEATURE(VIRTIO_F_EVENT_IDX) |
           VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX) |
           VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX) |
           VBLK_FEATURE(VIRTIO_BLK_F_BLK_SIZE) |
           VBLK_FEATURE(VIRTIO_BLK_F_TOPOLOGY) |
           VBLK_FEATURE(VIRTIO_BLK_F_GEOMETRY) |
           VBLK_FEATURE(VIRTIO_BLK_F_FLUSH) |
           VBLK_FEATURE(VIRTIO_BLK_F_CONFIG_WCE) |
           VBLK_FEATURE(VIRTIO_BLK_F_RO) |
           VBLK_FEATURE(VIRTIO_BLK_F_DISCARD) |
           VBLK_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES);
}

static BOOLEAN VblkHas(ULONGLONG Negotiated, ULONG Bit)
{
    return (BOOLEAN)((Negotiated & VBLK_FEATURE(Bit)) != 0);
}

BOOLEAN VblkHasVolatileCache(ULONGLONG Negotiated, const VBLK_CONFIG *Config)
{
    if (!VblkHas(Negotiated, VIRTIO_BLK_F_FLUSH)) return FALSE;   /* 5.2.5.1: may deduce writethrough */
    if (!VblkHas(Negotiated, VIRTIO_BLK_F_CONFIG_WCE)) return TRUE; /* SHOULD assume writeback */
    return (BOOLEAN)(Config->Writeback != 0);
}

/* Raw reads of every negotiated field; no validation (done once the snapshot is stable). */
static void VblkReadConfigOnce(VPCI_DEVICE *Dev, ULONGLONG Negotiated, VBLK_CONFIG *C)
{
    AvZeroMemory(C, sizeof(*C));
    C->CapacitySectors = VpciConfigRead64(Dev, VBLK_CFG_CAPACITY);
    if (VblkHas(Negotiated, VIRTIO_BLK_F_SIZE_MAX))
        C->SizeMax = VpciConfigRead32(Dev, VBLK_CFG_SIZE_MAX);
    if (VblkHas(Negotiated, VIRTIO_BLK_F_SEG_MAX))
        C->SegMax = VpciConfigRead32(Dev, VBLK_CFG_SEG_MAX);
    if (VblkHas(Negotiated, VIRTIO_BLK_F_GEOMETRY)) {
        C->Cylinders = VpciConfigRead16(Dev, VBLK_CFG_GEOMETRY_CYLINDERS);
        C->Heads = VpciConfigRead8(Dev, VBLK_CFG_GEOMETRY_HEADS);
        C->SectorsPerTrack = VpciConfigRead8(Dev, VBLK_CFG_GEOMETRY_SECTORS);
    }
    C->BlockSize = 512;
    if (VblkHas(Negotiated, VIRTIO_BLK_F_BLK_SIZE))
        C->BlockSize = VpciConfigRead32(Dev, VBLK_CFG_BLK_SIZE);
    if (VblkHas(Negotiated, VIRTIO_BLK_F_TOPOLOGY)) {
        C->PhysicalBlockExp = VpciConfigRead8(Dev, VBLK_CFG_PHYSICAL_BLOCK_EXP);
        C->AlignmentOffset = VpciConfigRead8(Dev, VBLK_CFG_ALIGNMENT_OFFSET);
        C->MinIoSize = VpciConfigRead16(Dev, VBLK_CFG_MIN_IO_SIZE);
        C->OptIoSize = VpciConfigRead32(Dev, VBLK_CFG_OPT_IO_SIZE);
    }
    /* 5.2.5.1: writeback is read after FEATURES_OK, which the caller guarantees. */
    if (VblkHas(Negotiated, VIRTIO_BLK_F_CONFIG_WCE))
        C->Writeback = VpciConfigRead8(Dev, VBLK_CFG_WRITEBACK);
    if (VblkHas(Negotiated, VIRTIO_BLK_F_DISCARD)) {
        C->MaxDiscardSectors = VpciConfigRead32(Dev, VBLK_CFG_MAX_DISCARD_SECTORS);
        C->MaxDiscardSeg = VpciConfigRead32(Dev, VBLK_CFG_MAX_DISCARD_SEG);
        C->DiscardSectorAlignment = VpciConfigRead32(Dev, VBLK_CFG_DISCARD_SECTOR_ALIGNMENT);
    }
    if (VblkHas(Negotiated, VIRTIO_BLK_F_WRITE_ZEROES)) {
        C->MaxWriteZeroesSectors = VpciConfigRead32(Dev, VBLK_CFG_MAX_WRITE_ZEROES_SECTORS);
        C->MaxWriteZeroesSeg = VpciConfigRead32(Dev, VBLK_CFG_MAX_WRITE_ZEROES_SEG);
        C->WriteZeroesMayUnmap = VpciConfigRead8(Dev, VBLK_CFG_WRITE_ZEROES_MAY_UNMAP);
    }
}

/* Device data is untrusted: replace every value the driver cannot use safely by a
 * conservative one and note it (the glue logs Notes). */
static void VblkValidateConfig(ULONGLONG Negotiated, VBLK_CONFIG *C)
{
    ULONG Bs = C->BlockSize;
    if (Bs < 512 || Bs > 65536 || (Bs & (Bs - 1)) != 0) {
        C->BlockSize = 512;
        C->Notes |= VBLK_NOTE_BLK_SIZE_INVALID;
    }
    if (C->CapacitySectors > VBLK_MAX_CAPACITY_SECTORS) {
        C->CapacitySectors = VBLK_MAX_CAPACITY_SECTORS;
        C->Notes |= VBLK_NOTE_CAPACITY_CLAMPED;
    }
    /* seg_max 0 cannot mean "no data segments": like Linux, allow one per request. */
    if (VblkHas(Negotiated, VIRTIO_BLK_F_SEG_MAX) && C->SegMax == 0) {
        C->SegMax = 1;
        C->Notes |= VBLK_NOTE_SEG_MAX_ZERO;
    }
    /* size_max 0 is read as "no limit"; below one sector would make every transfer
     * impossible to describe, so use 512. */
    if (VblkHas(Negotiated, VIRTIO_BLK_F_SIZE_MAX) && C->SizeMax != 0 && C->SizeMax < 512) {
        C->SizeMax = 512;
        C->Notes |= VBLK_NOTE_SIZE_MAX_INVALID;
    }
    if (VblkHas(Negotiated, VIRTIO_BLK_F_TOPOLOGY) &&
        (C->PhysicalBlockExp > 15 ||
         (ULONG)C->AlignmentOffset >= (1u << (C->PhysicalBlockExp > 15 ? 0 : C->PhysicalBlockExp)))) {
        C->PhysicalBlockExp = 0;
        C->AlignmentOffset = 0;
        C->Notes |= VBLK_NOTE_TOPOLOGY_INVALID;
    }
    /* Spec 5.2.4 gives no meaning to 0: max_*_sectors 0 = no limit beyond the le32
     * field, max_*_seg 0 = one segment (Linux does the same). */
    if (VblkHas(Negotiated, VIRTIO_BLK_F_DISCARD)) {
        if (C->MaxDiscardSectors == 0) C->MaxDiscardSectors = 0xFFFFFFFFu;
        if (C->MaxDiscardSeg == 0) { C->MaxDiscardSeg = 1; C->Notes |= VBLK_NOTE_DISCARD_LIMITS; }
    }
    if (VblkHas(Negotiated, VIRTIO_BLK_F_WRITE_ZEROES)) {
        if (C->MaxWriteZeroesSectors == 0) C->MaxWriteZeroesSectors = 0xFFFFFFFFu;
        if (C->MaxWriteZeroesSeg == 0) { C->MaxWriteZeroesSeg = 1; C->Notes |= VBLK_NOTE_DISCARD_LIMITS; }
    }
    C->Writeback = (UCHAR)(C->Writeback != 0);
    C->WriteZeroesMayUnmap = (UCHAR)(C->WriteZeroesMayUnmap != 0);
}

/*
 * Who: the glue, after FEATURES_OK (HwFindAdapter / HwInitialize / restart) and in
 * the DPC after a config-change interrupt; PASSIVE..DISPATCH_LEVEL.
 * Spec 4.1.4.3.1: re-read until config_generation is unchanged across the reads.
 */
VPCI_STATUS VblkReadConfig(VPCI_DEVICE *Dev, ULONGLONG Negotiated, VBLK_CONFIG *Config)
{
    ULONG Tries;
    UCHAR Generation;

    for (Tries = 0; Tries < VBLK_CONFIG_TRIES; Tries++) {
        Generation = VpciConfigGeneration(Dev);
        VblkReadConfigOnce(Dev, Negotiated, Config);
        if (VpciConfigStable(Dev, Generation)) {
            /* An all-ones capacity is what a removed device reads as. */
            if (Config->CapacitySectors == ~0ULL && VpciIsDeviceGone(Dev))
                return VPCI_ERR_DEVICE_GONE;
            VblkValidateConfig(Negotiated, Config);
            return VPCI_OK;
        }
    }
    if (VpciIsDeviceGone(Dev)) return VPCI_ERR_DEVICE_GONE;
    return VPCI_ERR_CONFIG_UNSTABLE;
}

/*
 * Who: the SCSI layer for MODE SELECT of the caching page (HwStartIo, StartIo lock)
 * and the glue. Spec 5.2.6.3 (driver part): writeback may be written when
 * CONFIG_WCE was negotiated; read back to confirm the device took it.
 */
BOOLEAN VblkSetWriteback(VPCI_DEVICE *Dev, UCHAR Writeback)
{
    UCHAR Value = (UCHAR)(Writeback != 0);
    if (Dev == NULL) return FALSE;
    VpciConfigWrite8(Dev, VBLK_CFG_WRITEBACK, Value);
    return (BOOLEAN)(VpciConfigRead8(Dev, VBLK_CFG_WRITEBACK) == Value);
}

/* ----------------------------------------------------------------- queue memory */

typedef struct _VBLK_LAYOUT {
    ULONG Ring, Indirect, Slots, Payloads, State, FreeStack, Total;
} VBLK_LAYOUT;

static USHORT VblkPayloadSlots(USHORT SlotCount)
{
    return (USHORT)(SlotCount < VBLK_PAYLOAD_SLOTS ? SlotCount : VBLK_PAYLOAD_SLOTS);
}

static BOOLEAN VblkLayout(USHORT QueueSize, BOOLEAN EventIdx, USHORT IndirectMax,
                          USHORT SlotCount, VBLK_LAYOUT *L)
{
    ULONGLONG Offset;
    ULONG RingBytes = VqRingBytes(QueueSize, EventIdx);
    ULONG IndirectBytes = IndirectMax ? VqIndirectBytes(QueueSize, IndirectMax) : 0;
    ULONG StateBytes = VqStateBytes(QueueSize);

    if (RingBytes == 0 || StateBytes == 0 || SlotCount == 0 || SlotCount > QueueSize)
        return FALSE;
    if (IndirectMax != 0 && IndirectBytes == 0) return FALSE;
    L->Ring = 0;
    Offset = VBLK_ALIGN16((ULONGLONG)RingBytes);
    L->Indirect = (ULONG)Offset;
    Offset = VBLK_ALIGN16(Offset + IndirectBytes);
    L->Slots = (ULONG)Offset;
    Offset = VBLK_ALIGN16(Offset + (ULONGLONG)SlotCount * sizeof(VBLK_REQUEST_DMA));
    L->Payloads = (ULONG)Offset;
    Offset = VBLK_ALIGN16(Offset + (ULONGLONG)VblkPayloadSlots(SlotCount) * sizeof(VBLK_PAYLOAD_DMA));
    L->State = (ULONG)Offset;
    Offset = VBLK_ALIGN16(Offset + StateBytes);
    L->FreeStack = (ULONG)Offset;
    Offset = VBLK_ALIGN16(Offset + (ULONGLONG)SlotCount * sizeof(USHORT));
    if (Offset > 0xFFFFFFFFULL) return FALSE;
    L->Total = (ULONG)Offset;
    return TRUE;
}

/* Who: the glue in HwFindAdapter (budgeting the uncached extension). Layout, each
 * part 16-byte aligned: ring | indirect tables (if IndirectMax) | SlotCount slots |
 * payload blocks | virtqueue private state | free-slot stack. 0 for invalid sizes. */
ULONG VblkQueueMemoryBytes(USHORT QueueSize, BOOLEAN EventIdx, USHORT IndirectMax,
                           USHORT SlotCount)
{
    VBLK_LAYOUT L;
    return VblkLayout(QueueSize, EventIdx, IndirectMax, SlotCount, &L) ? L.Total : 0;
}

/* Who: the glue at start/restart/reset, before the queue address is given to the
 * device (no concurrent users). Zeroes the ring and the slots. */
VQ_STATUS VblkQueueInit(VBLK_QUEUE *Q, USHORT QueueSize, BOOLEAN EventIdx, USHORT IndirectMax,
                        USHORT SlotCount, void *Mem, ULONGLONG MemPa)
{
    VBLK_LAYOUT L;
    UCHAR *Base = (UCHAR *)Mem;
    VQ_STATUS Status;
    USHORT i;

    if (Q == NULL || Mem == NULL || ((ULONG_PTR)Mem & 15) != 0 || (MemPa & 15) != 0)
        return VQ_INVALID;
    if (!VblkLayout(QueueSize, EventIdx, IndirectMax, SlotCount, &L)) return VQ_INVALID;

    {
        /* Diagnostics counters live for the adapter's lifetime: a reset or resume
         * re-lays the queue out, it does not restart the statistics. Copied with
         * AvCopyMemory, not by structure assignment: a compiler may turn a copy this
         * size into a memcpy call (clang does), which the kernel image cannot import. */
        VBLK_STATS Kept;
        AvCopyMemory(&Kept, &Q->Stats, sizeof(Kept));
        AvZeroMemory(Q, sizeof(*Q));
        AvCopyMemory(&Q->Stats, &Kept, sizeof(Kept));
        Q->Stats.InFlight = 0;      /* everything in flight was detached before re-init */
    }
    Status = VqInit(&Q->Vq, QueueSize, EventIdx, Base + L.Ring, MemPa + L.Ring,
                    IndirectMax ? Base + L.Indirect : NULL, IndirectMax ? MemPa + L.Indirect : 0,
                    IndirectMax, Base + L.State);
    if (Status != VQ_OK) return Status;

    Q->Slots = (VBLK_REQUEST_DMA *)(Base + L.Slots);
    Q->SlotsPa = MemPa + L.Slots;
    AvZeroMemory(Q->Slots, (ULONG)SlotCount * sizeof(VBLK_REQUEST_DMA));
    Q->FreeSlots = (USHORT *)(Base + L.FreeStack);
    /* Stack top = FreeSlots[FreeSlotCount - 1]; slot 0 handed out first. */
    for (i = 0; i < SlotCount; i++) Q->FreeSlots[i] = (USHORT)(SlotCount - 1 - i);
    Q->FreeSlotCount = SlotCount;
    Q->SlotCount = SlotCount;
    Q->Payloads = (VBLK_PAYLOAD_DMA *)(Base + L.Payloads);
    Q->PayloadsPa = MemPa + L.Payloads;
    Q->PayloadSlotCount = VblkPayloadSlots(SlotCount);
    Q->PayloadFree = (ULONG)((1ULL << Q->PayloadSlotCount) - 1);
    VblkQueueSetLimits(Q, VBLK_MAX_DATA_BUFFERS, VQ_NO_BUFFER_LIMIT);
    return VQ_OK;
}

/* Who: the glue right after VblkQueueInit (and unit tests). */
void VblkQueueSetLimits(VBLK_QUEUE *Q, USHORT DataBuffersMax, ULONG BufferBytesMax)
{
    Q->DataBuffersMax = (DataBuffersMax == 0 || DataBuffersMax > VBLK_MAX_DATA_BUFFERS)
                            ? (USHORT)VBLK_MAX_DATA_BUFFERS : DataBuffersMax;
    Q->BufferBytesMax = BufferBytesMax != 0 ? BufferBytesMax : VQ_NO_BUFFER_LIMIT;
}

/* Who: the glue (queue limits). VblkValidateConfig made a negotiated size_max >= 512. */
ULONG VblkBufferBytesMax(ULONGLONG Negotiated, const VBLK_CONFIG *Config)
{
    if (VblkHas(Negotiated, VIRTIO_BLK_F_SIZE_MAX) && Config->SizeMax != 0) return Config->SizeMax;
    return VQ_NO_BUFFER_LIMIT;
}

/* ----------------------------------------------------------------- requests */

ULONG VblkStatIndex(ULONG Type)
{
    switch (Type) {
    case VIRTIO_BLK_T_IN:           return 0;   /* AEROVBLK_REQ_READ */
    case VIRTIO_BLK_T_OUT:          return 1;   /* AEROVBLK_REQ_WRITE */
    case VIRTIO_BLK_T_FLUSH:        return 2;
    case VIRTIO_BLK_T_DISCARD:      return 3;
    case VIRTIO_BLK_T_WRITE_ZEROES: return 4;
    case VIRTIO_BLK_T_GET_ID:       return 5;
    default:                        return VBLK_STAT_NONE;
    }
}

/* The shape each request type must have (spec 5.2.6): data only for IN/OUT, a segment
 * list for DISCARD/WRITE_ZEROES, the id buffer for GET_ID. */
static BOOLEAN VblkRequestValid(const VBLK_REQUEST *Req)
{
    /* Reads and writes (nearly every request) first, in one expression. */
    if (Req->Type == VIRTIO_BLK_T_IN || Req->Type == VIRTIO_BLK_T_OUT)
        return (BOOLEAN)(Req->DataBytes != 0 && Req->PayloadLength == 0);
    if (Req->DataBytes != 0 || Req->PayloadLength > VBLK_PAYLOAD_BYTES)
        return FALSE;
    switch (Req->Type) {
    case VIRTIO_BLK_T_FLUSH:
        return (BOOLEAN)(Req->PayloadLength == 0);
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return (BOOLEAN)(Req->PayloadLength != 0 && Req->PayloadLength % VBLK_SEGMENT_BYTES == 0);
    case VIRTIO_BLK_T_GET_ID:
        return (BOOLEAN)(Req->PayloadLength == VIRTIO_BLK_ID_BYTES);
    default:
        return FALSE;
    }
}

/*
 * Who: the glue in HwStartIo under the queue lock (DISPATCH_LEVEL; dump mode: no lock).
 * Chain (spec 5.2.6): header (out), data (out for OUT, in for IN: the caller's
 * scatter/gather elements, split at size_max, at most seg_max buffers), segment list
 * (out) or id buffer (in), status (in, last). Status pre-set to the sentinel: used.len
 * is never trusted, so only the status byte tells that the device really completed it.
 * Nothing (slot, payload block, descriptors) is taken unless VqAdd accepts the chain.
 */
VQ_STATUS VblkSubmit(VBLK_QUEUE *Q, VBLK_REQUEST *Req)
{
    VBLK_REQUEST_DMA *Dma;
    ULONGLONG DmaPa;
    VQ_BUFFER Buffers[3];                    /* header, [payload,] status */
    VQ_REQUEST Chain;
    USHORT Slot;
    VQ_STATUS Status;
    ULONG Stat;
    UCHAR Payload = VBLK_NO_PAYLOAD_SLOT;
    ULONG Type = Req != NULL ? Req->Type : 0;

    if (Q == NULL || Req == NULL || !VblkRequestValid(Req)) return VQ_INVALID;
    if (Q->FreeSlotCount == 0) return VQ_FULL;
    if (Req->PayloadLength != 0) {
        if (Q->PayloadFree == 0) return VQ_FULL;
        for (Payload = 0; (Q->PayloadFree & (1UL << Payload)) == 0; Payload++) {
        }
    }

    Slot = Q->FreeSlots[Q->FreeSlotCount - 1];
    Dma = &Q->Slots[Slot];
    DmaPa = Q->SlotsPa + (ULONGLONG)Slot * sizeof(VBLK_REQUEST_DMA);
    Dma->Type = Type;
    Dma->Ioprio = 0;                         /* contract: must be 0 */
    Dma->Sector = Req->DataBytes != 0 ? Req->Sector : 0;
    Dma->Status = VBLK_STATUS_SENTINEL;

    Buffers[0].PhysicalAddress = DmaPa;      /* type, reserved, sector: 16 bytes */
    Buffers[0].Length = 16;
    Chain.Out = &Buffers[0];
    Chain.OutCount = 1;
    Chain.In = &Buffers[1];
    Chain.InCount = 1;
    Chain.Data = Req->Data;
    Chain.DataElements = Req->DataElements;
    Chain.DataBytes = Req->DataBytes;
    Chain.DataBufferMax = Q->BufferBytesMax;
    Chain.DataMaxBuffers = Q->DataBuffersMax;
    Chain.DataWritable = (BOOLEAN)(Type == VIRTIO_BLK_T_IN);
    if (Payload != VBLK_NO_PAYLOAD_SLOT) {
        /* Discard / write-zeroes segments go out; GET_ID bytes come back (zeroed first). */
        if (Type == VIRTIO_BLK_T_GET_ID) {
            AvZeroMemory(Q->Payloads[Payload].Bytes, VIRTIO_BLK_ID_BYTES);
            Chain.InCount = 2;               /* id buffer, status */
        } else {
            AvCopyMemory(Q->Payloads[Payload].Bytes, Req->Payload, Req->PayloadLength);
            Chain.OutCount = 2;              /* header, segments */
            Chain.In = &Buffers[2];
        }
        Buffers[1].PhysicalAddress = Q->PayloadsPa + (ULONGLONG)Payload * sizeof(VBLK_PAYLOAD_DMA);
        Buffers[1].Length = Req->PayloadLength;
        Buffers[2].PhysicalAddress = DmaPa + FIELD_OFFSET(VBLK_REQUEST_DMA, Status);
        Buffers[2].Length = 1;
    } else {
        Buffers[1].PhysicalAddress = DmaPa + FIELD_OFFSET(VBLK_REQUEST_DMA, Status);
        Buffers[1].Length = 1;
    }

    Req->Slot = Slot;
    Req->Status = VBLK_STATUS_SENTINEL;
    Status = VqAdd(&Q->Vq, &Chain, Req);
    if (Status != VQ_OK) return Status;      /* slot not taken: still on the stack */

    Q->FreeSlotCount--;
    Req->PayloadSlot = Payload;
    if (Payload != VBLK_NO_PAYLOAD_SLOT) Q->PayloadFree &= ~(1UL << Payload);
    Stat = VblkStatIndex(Type);
    if (Stat < VBLK_STAT_NONE) Q->Stats.Submitted[Stat]++;
    Q->Stats.InFlight++;
    if (Q->Stats.InFlight > Q->Stats.MaxInFlight) Q->Stats.MaxInFlight = Q->Stats.InFlight;
    return VQ_OK;
}

/* Who: the glue, under the queue lock, after one or more VblkSubmit. */
BOOLEAN VblkKickPrepare(VBLK_QUEUE *Q)
{
    return VqKickPrepare(&Q->Vq);
}

/* Who: the glue, after dropping the queue lock, when VblkKickPrepare returned TRUE. */
void VblkNotify(VBLK_QUEUE *Q, VPCI_DEVICE *Dev)
{
    AV_UNUSED(Q);
    VpciNotifyQueue(Dev, 0);
}

static void VblkReleaseSlot(VBLK_QUEUE *Q, VBLK_REQUEST *Req)
{
    /* Req is driver memory (the cookie VqAdd returned), so Slot is ours; the checks
     * guard against a glue bug completing a request twice. */
    if (Req->Slot < Q->SlotCount && Q->FreeSlotCount < Q->SlotCount)
        Q->FreeSlots[Q->FreeSlotCount++] = Req->Slot;
    if (Req->PayloadSlot < Q->PayloadSlotCount) Q->PayloadFree |= 1UL << Req->PayloadSlot;
    Req->PayloadSlot = VBLK_NO_PAYLOAD_SLOT;
    if (Q->Stats.InFlight) Q->Stats.InFlight--;
}

/*
 * Who: the glue's completion DPC (or dump-mode HwInterrupt) under the queue lock.
 * The status byte decides (spec 5.2.6: written by the device before the used entry);
 * any value other than OK/IOERR/UNSUPP, the sentinel included, becomes IOERR.
 */
VBLK_REQUEST *VblkNextCompleted(VBLK_QUEUE *Q)
{
    VBLK_REQUEST *Req;
    volatile VBLK_REQUEST_DMA *Dma;
    UCHAR Status;
    ULONG Stat;

    /* used.len is not asked for: only the status byte decides (see VblkSubmit). */
    Req = (VBLK_REQUEST *)VqGetUsed(&Q->Vq, NULL);
    if (Req == NULL) return NULL;
    if (Req->Slot >= Q->SlotCount) {         /* cannot happen: we set it at submit */
        Req->Status = VIRTIO_BLK_S_IOERR;
        return Req;
    }
    Dma = &Q->Slots[Req->Slot];
    Status = Dma->Status;
    switch (Status) {
    case VIRTIO_BLK_S_OK:
        break;
    case VIRTIO_BLK_S_IOERR:
        Q->Stats.ErrorsIoErr++;
        break;
    case VIRTIO_BLK_S_UNSUPP:
        Q->Stats.ErrorsUnsupported++;
        break;
    case VBLK_STATUS_SENTINEL:
        Q->Stats.ErrorsNoStatus++;
        Status = VIRTIO_BLK_S_IOERR;
        break;
    default:
        Q->Stats.ErrorsBadStatus++;
        Status = VIRTIO_BLK_S_IOERR;
        break;
    }
    if (Status == VIRTIO_BLK_S_OK && Req->Type == VIRTIO_BLK_T_GET_ID && Req->PayloadSlot < Q->PayloadSlotCount)
        AvCopyMemory(Req->Payload, Q->Payloads[Req->PayloadSlot].Bytes, VIRTIO_BLK_ID_BYTES);
    /* Bytes count on success only: a request failed, or detached by a reset and
     * retried by the class driver, is counted once, when its data really moved. */
    if (Status == VIRTIO_BLK_S_OK && Req->Type == VIRTIO_BLK_T_IN) Q->Stats.BytesRead += Req->DataBytes;
    if (Status == VIRTIO_BLK_S_OK && Req->Type == VIRTIO_BLK_T_OUT) Q->Stats.BytesWritten += Req->DataBytes;
    Req->Status = Status;
    Stat = VblkStatIndex(Req->Type);
    if (Stat < VBLK_STAT_NONE) Q->Stats.Completed[Stat]++;
    VblkReleaseSlot(Q, Req);
    return Req;
}

/* Who: the glue after a device reset (queue lock held or device quiesced). */
VBLK_REQUEST *VblkDetachNext(VBLK_QUEUE *Q)
{
    VBLK_REQUEST *Req = (VBLK_REQUEST *)VqDetachNext(&Q->Vq);
    if (Req == NULL) return NULL;
    Req->Status = VBLK_STATUS_RESET;
    VblkReleaseSlot(Q, Req);
    return Req;
}
