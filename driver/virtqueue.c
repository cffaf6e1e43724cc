/*
 * Split virtqueue (virtio 1.x spec 2.7), OS-free. See virtqueue.h for the contract
 * and docs/virtqueue.md for the design (layout, barrier points, validation).
 *
 * Trust boundary: the device may write anything anywhere in the ring. This file
 * therefore never reads back what it wrote to device-visible memory (descriptor
 * table, avail ring): the free list, chain lengths and cookies live in the
 * driver-private State arrays. Device-written values (used idx, used elements,
 * used flags, avail_event) are read once into locals and validated before use.
 */
#include "virtqueue.h"

#define VQ_MAX_SIZE          32768u
#define VQ_DESC_BYTES        16u
#define VQ_USED_ALIGN        64u     /* spec minimum 4; a cache line avoids false sharing */
#define VQ_MAX_CHAIN_BYTES   0x100000000ULL  /* spec 2.7.5.2: no chain longer than 2^32 bytes */

AV_STATIC_ASSERT(sizeof(VQ_DESC) == VQ_DESC_BYTES, VqDescIs16Bytes);

/* ---- layout helpers (no division: Size is a power of two) ---- */

static BOOLEAN VqSizeValid(USHORT QueueSize)
{
    return (BOOLEAN)(QueueSize != 0 && (QueueSize & (QueueSize - 1)) == 0 && QueueSize <= VQ_MAX_SIZE);
}

/* Avail ring: flags, idx, ring[Size], used_event (EVENT_IDX only). Spec 2.7.6. */
static ULONG VqAvailBytes(ULONG Size, BOOLEAN EventIdx)
{
    return 4 + 2 * Size + (EventIdx ? 2 : 0);
}

/* Used ring: flags, idx, ring[Size] of {le32 id, le32 len}, avail_event. Spec 2.7.8. */
static ULONG VqUsedBytes(ULONG Size, BOOLEAN EventIdx)
{
    return 4 + 8 * Size + (EventIdx ? 2 : 0);
}

static ULONG VqUsedOffset(ULONG Size, BOOLEAN EventIdx)
{
    ULONG End = VQ_DESC_BYTES * Size + VqAvailBytes(Size, EventIdx);
    return (End + VQ_USED_ALIGN - 1) & ~(VQ_USED_ALIGN - 1);
}

ULONG VqRingBytes(USHORT QueueSize, BOOLEAN EventIdx)
{
    ULONG End;
    if (!VqSizeValid(QueueSize)) return 0;
    End = VqUsedOffset(QueueSize, EventIdx) + VqUsedBytes(QueueSize, EventIdx);
    return (End + 15) & ~15u;
}

ULONG VqIndirectBytes(USHORT QueueSize, USHORT IndirectMax)
{
    ULONGLONG Bytes;
    if (!VqSizeValid(QueueSize)) return 0;
    Bytes = (ULONGLONG)QueueSize * IndirectMax * VQ_DESC_BYTES;
    return Bytes > 0xFFFFFFFFULL ? 0 : (ULONG)Bytes;
}

ULONG VqStateBytes(USHORT QueueSize)
{
    if (!VqSizeValid(QueueSize)) return 0;
    /* Cookies[Size] (pointer-aligned, first), NextFree[Size], ChainLength[Size]. */
    return (ULONG)QueueSize * (ULONG)(sizeof(void *) + 2 * sizeof(USHORT));
}

static BOOLEAN VqAligned16(const void *Va, ULONGLONG Pa)
{
    return (BOOLEAN)(((ULONG_PTR)Va & 15) == 0 && (Pa & 15) == 0);
}

/* ---- device-shared fields: one volatile access each ---- */

AV_INLINE volatile USHORT *VqUsedFlagsPtr(VIRTQUEUE *Vq)
{
    return (volatile USHORT *)(Vq->Used + 0);
}
AV_INLINE volatile USHORT *VqUsedIdxPtr(VIRTQUEUE *Vq)
{
    return (volatile USHORT *)(Vq->Used + 2);
}
AV_INLINE volatile ULONG *VqUsedElemPtr(VIRTQUEUE *Vq, USHORT Slot)
{
    return (volatile ULONG *)(Vq->Used + 4 + 8 * (ULONG)Slot);
}
AV_INLINE volatile USHORT *VqAvailEventPtr(VIRTQUEUE *Vq)
{
    return (volatile USHORT *)(Vq->Used + 4 + 8 * (ULONG)Vq->Size);
}
AV_INLINE volatile USHORT *VqUsedEventPtr(VIRTQUEUE *Vq)
{
    return &Vq->Avail[2 + (ULONG)Vq->Size];
}

/*
 * Spec 2.7.10.1 (driver side of available buffer notification suppression): with
 * EVENT_IDX the driver must notify iff one of the avail idx values it just used,
 * Old .. New-1, equals avail_event. Modulo 2^16 that is "Event - Old < New - Old";
 * New - Old <= Size <= 32768, so the 16-bit window never aliases.
 */
static BOOLEAN VqEventInWindow(USHORT Event, USHORT New, USHORT Old)
{
    return (BOOLEAN)((USHORT)(Event - Old) < (USHORT)(New - Old));
}

/* Return a chain to the free list. Its links are still the free-list links it was
 * taken with (VqAdd follows NextFree, never rewrites it), so only the tail's
 * link changes. Walks driver-private memory only; O(1) for an indirect request (one
 * ring descriptor), the usual case. Inline: it runs once per completion. */
AV_INLINE void VqFreeChain(VIRTQUEUE *Vq, USHORT Head)
{
    USHORT Count = Vq->ChainLength[Head];
    USHORT Tail = Head;
    USHORT i;
    for (i = 1; i < Count; i++) Tail = Vq->NextFree[Tail];
    Vq->NextFree[Tail] = Vq->FreeHead;
    Vq->FreeHead = Head;
    Vq->NumFree = (USHORT)(Vq->NumFree + Count);
    Vq->ChainLength[Head] = 0;
    Vq->Cookies[Head] = NULL;
    Vq->InFlight--;
}

static void VqSetBroken(VIRTQUEUE *Vq, VQ_BROKEN_REASON Reason, ULONG Value)
{
    Vq->Broken = TRUE;
    Vq->BrokenReason = (UCHAR)Reason;
    Vq->BrokenValue = Value;
    Vq->BadUsedEntries++;
}

VQ_STATUS VqInit(VIRTQUEUE *Vq, USHORT QueueSize, BOOLEAN EventIdx,
                 void *Ring, ULONGLONG RingPa,
                 void *Indirect, ULONGLONG IndirectPa, USHORT IndirectMax,
                 void *State)
{
    ULONG Size = QueueSize;
    ULONG i;
    UCHAR *Base = (UCHAR *)Ring;
    UCHAR *Private = (UCHAR *)State;

    if (Vq == NULL || Ring == NULL || State == NULL || !VqSizeValid(QueueSize))
        return VQ_INVALID;
    if (!VqAligned16(Ring, RingPa) || ((ULONG_PTR)State & 15) != 0)
        return VQ_INVALID;
    if (Indirect == NULL || IndirectMax == 0) {
        Indirect = NULL;
        IndirectPa = 0;
        IndirectMax = 0;
    } else if (!VqAligned16(Indirect, IndirectPa) || VqIndirectBytes(QueueSize, IndirectMax) == 0) {
        return VQ_INVALID;
    }

    AvZeroMemory(Vq, sizeof(*Vq));
    /* Zeroed ring: avail flags/idx 0, used flags 0 (spec 2.7.10: driver MUST
     * initialise used flags to 0), used_event 0 = interrupt on the first completion. */
    AvZeroMemory(Ring, VqRingBytes(QueueSize, EventIdx));
    Vq->Desc = (volatile VQ_DESC *)Base;
    Vq->Avail = (volatile USHORT *)(Base + VQ_DESC_BYTES * Size);
    Vq->Used = (volatile UCHAR *)(Base + VqUsedOffset(Size, EventIdx));
    Vq->DescPa = RingPa;
    Vq->AvailPa = RingPa + VQ_DESC_BYTES * Size;
    Vq->UsedPa = RingPa + VqUsedOffset(Size, EventIdx);
    Vq->Indirect = (VQ_DESC *)Indirect;
    Vq->IndirectPa = IndirectPa;
    Vq->IndirectMax = IndirectMax;

    Vq->Cookies = (void **)Private;
    Vq->NextFree = (USHORT *)(Private + Size * sizeof(void *));
    Vq->ChainLength = Vq->NextFree + Size;
    for (i = 0; i < Size; i++) {
        Vq->Cookies[i] = NULL;
        Vq->NextFree[i] = (USHORT)(i + 1);   /* last link (Size) is never followed */
        Vq->ChainLength[i] = 0;
    }
    Vq->Size = QueueSize;
    Vq->NumFree = QueueSize;
    Vq->FreeHead = 0;
    Vq->EventIdx = (BOOLEAN)(EventIdx != 0);
    return VQ_OK;
}

/*
 * A request being walked by VqWalkRequest: its descriptors go into Table at Index, then
 * at Links[Index] (the free list of a direct chain) or at Index + 1 (Links NULL: an
 * indirect table); CountOnly writes nothing. A local of VqAdd's paths that never
 * escapes (everything using it is inline), so the compiler keeps it in registers, and
 * its constant fields (Links NULL, CountOnly) fold away in each path's copy.
 */
typedef struct _VQ_WRITER {
    volatile VQ_DESC *Table;
    const USHORT *Links;
    ULONG Count;
    USHORT Index;
    USHORT Last;
    BOOLEAN CountOnly;
} VQ_WRITER;

/* One descriptor, with NEXT and its successor (VqEndChain ends the chain). The caller
 * has made sure there is room: VqAdd sizes the table or the free list first. */
AV_INLINE void VqEmit(VQ_WRITER *W, ULONGLONG Address, ULONG Length, USHORT Flags)
{
    if (!W->CountOnly) {
        USHORT Index = W->Index;
        USHORT Next = W->Links != NULL ? W->Links[Index] : (USHORT)(Index + 1);
        W->Table[Index].Address = Address;
        W->Table[Index].Length = Length;
        W->Table[Index].Flags = Flags;
        W->Table[Index].Next = Next;
        W->Last = Index;
        W->Index = Next;
    }
    W->Count++;
}

/* Out or In buffers; FALSE on none given or one of length 0 (QEMU refuses "zero
 * sized buffers"). */
AV_INLINE BOOLEAN VqEmitBuffers(VQ_WRITER *W, const VQ_BUFFER *Buffers, ULONG Count, USHORT Flags,
                                ULONGLONG *Total)
{
    ULONG i;
    if (Buffers == NULL && Count != 0) return FALSE;
    for (i = 0; i < Count; i++) {
        if (Buffers[i].Length == 0) return FALSE;
        VqEmit(W, Buffers[i].PhysicalAddress, Buffers[i].Length, Flags);
        *Total += Buffers[i].Length;
    }
    return TRUE;
}

/* The data: the first DataBytes bytes of the elements, cut at DataBufferMax (not 0), at
 * most DataMaxBuffers buffers; FALSE if the elements hold less or need more. */
AV_INLINE BOOLEAN VqEmitData(VQ_WRITER *W, const VQ_REQUEST *R, USHORT Flags)
{
    const VQ_SG_ELEMENT *Elements = R->Data;
    ULONG Remaining = R->DataBytes;
    ULONG BufferMax = R->DataBufferMax;
    ULONG End = W->Count + R->DataMaxBuffers;
    ULONG i;

    if (Elements == NULL || BufferMax == 0) return FALSE;
    for (i = 0; i < R->DataElements && Remaining != 0; i++) {
        ULONGLONG Address = Elements[i].PhysicalAddress;
        ULONG Length = Elements[i].Length < Remaining ? Elements[i].Length : Remaining;
        Remaining -= Length;
        while (Length != 0) {               /* a zero-length element gives no buffer */
            ULONG Piece = Length < BufferMax ? Length : BufferMax;
            if (W->Count >= End) return FALSE;
            VqEmit(W, Address, Piece, Flags);
            Address += Piece;
            Length -= Piece;
        }
    }
    return (BOOLEAN)(Remaining == 0);
}

/* The one walk over a request, in ring order (2.7.4.2: readable before writable),
 * checking the rules of VqAdd on the way. Returns its buffer count, 0 when a rule is
 * broken. Inline: each call in VqAdd is compiled for its kind of table. */
AV_INLINE ULONG VqWalkRequest(VQ_WRITER *W, const VQ_REQUEST *R)
{
    ULONGLONG Total = R->DataBytes;

    if (!VqEmitBuffers(W, R->Out, R->OutCount, VQ_DESC_F_NEXT, &Total)) return 0;
    if (R->DataBytes != 0 &&
        !VqEmitData(W, R, (USHORT)(R->DataWritable ? (VQ_DESC_F_WRITE | VQ_DESC_F_NEXT) : VQ_DESC_F_NEXT)))
        return 0;
    if (!VqEmitBuffers(W, R->In, R->InCount, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, &Total)) return 0;
    if (Total > VQ_MAX_CHAIN_BYTES) return 0;
    return W->Count;
}

/* Ends a written chain at its last descriptor (2.7.5: no NEXT there; next ignored). */
AV_INLINE void VqEndChain(const VQ_WRITER *W, const VQ_REQUEST *R)
{
    BOOLEAN Writable = (BOOLEAN)(R->InCount != 0 || (R->DataBytes != 0 && R->DataWritable));
    W->Table[W->Last].Flags = (USHORT)(Writable ? VQ_DESC_F_WRITE : 0);
    W->Table[W->Last].Next = 0;
}

/* At least as many buffers as the request will take, without walking it: an element
 * gives at most one data buffer unless it can be longer than DataBufferMax. */
AV_INLINE ULONG VqRequestBound(const VQ_REQUEST *R)
{
    ULONG Data = 0;
    if (R->DataBytes != 0) {
        Data = R->DataMaxBuffers;
        if (R->DataBytes <= R->DataBufferMax && R->DataElements < Data) Data = R->DataElements;
    }
    return (ULONG)R->OutCount + R->InCount + Data;
}

/* Spec 2.7.13.2: the head goes into ring slot idx % Size; the device does not see it
 * until VqKickPrepare moves idx. */
AV_INLINE void VqPublishHead(VIRTQUEUE *Vq, USHORT Head, void *Cookie)
{
    Vq->Avail[2 + (ULONG)(Vq->AvailIdx & (Vq->Size - 1))] = Head;
    Vq->AvailIdx++;
    Vq->Cookies[Head] = Cookie;
    Vq->InFlight++;
}

/* The exact buffer count of a request (a walk that writes nothing), 0 when it breaks a
 * rule or has more buffers than the queue (spec 2.7.5.3.1, also for indirect tables). */
static ULONG VqCountRequest(const VIRTQUEUE *Vq, const VQ_REQUEST *Request)
{
    VQ_WRITER W;
    ULONG Count;
    W.Table = NULL;
    W.Links = NULL;
    W.CountOnly = TRUE;
    W.Count = 0;
    W.Index = W.Last = 0;
    Count = VqWalkRequest(&W, Request);
    return Count > Vq->Size ? 0 : Count;
}

/* The indirect path of VqAdd: the request (Count buffers at most, checked) goes to
 * table Head (owned by Head) and one ring descriptor points at it (spec 2.7.5.3). */
static VQ_STATUS VqAddIndirect(VIRTQUEUE *Vq, USHORT Head, const VQ_REQUEST *Request, void *Cookie)
{
    ULONG TableIndex = (ULONG)Head * Vq->IndirectMax;
    VQ_WRITER W;
    ULONG Count;

    W.Table = Vq->Indirect + TableIndex;
    W.Links = NULL;
    W.CountOnly = FALSE;
    W.Count = 0;
    W.Index = W.Last = 0;
    Count = VqWalkRequest(&W, Request);
    if (Count == 0) return VQ_INVALID;
    VqEndChain(&W, Request);
    /* INDIRECT alone, never with NEXT (2.7.5.3.1); WRITE is ignored by the device. */
    Vq->Desc[Head].Address = Vq->IndirectPa + (ULONGLONG)TableIndex * VQ_DESC_BYTES;
    Vq->Desc[Head].Length = Count * VQ_DESC_BYTES;
    Vq->Desc[Head].Flags = VQ_DESC_F_INDIRECT;
    Vq->Desc[Head].Next = 0;
    Vq->FreeHead = Vq->NextFree[Head];
    Vq->ChainLength[Head] = 1;
    Vq->NumFree--;
    VqPublishHead(Vq, Head, Cookie);
    return VQ_OK;
}

/* The direct path of VqAdd: a chain on free descriptors from Head, desc.next = the
 * free-list link (2.7.13.1); the caller made sure enough are free. */
static VQ_STATUS VqAddDirect(VIRTQUEUE *Vq, USHORT Head, const VQ_REQUEST *Request, void *Cookie)
{
    VQ_WRITER W;
    ULONG Count;

    W.Table = Vq->Desc;
    W.Links = Vq->NextFree;
    W.CountOnly = FALSE;
    W.Count = 0;
    W.Index = W.Last = Head;
    Count = VqWalkRequest(&W, Request);
    if (Count == 0) return VQ_INVALID;
    VqEndChain(&W, Request);
    Vq->FreeHead = W.Index;                  /* the link after the chain's last descriptor */
    Vq->ChainLength[Head] = (USHORT)Count;
    Vq->NumFree = (USHORT)(Vq->NumFree - Count);
    VqPublishHead(Vq, Head, Cookie);
    return VQ_OK;
}

VQ_STATUS VqAdd(VIRTQUEUE *Vq, const VQ_REQUEST *Request, void *Cookie)
{
    ULONG Count = 0;                         /* exact count, once known */
    ULONG Bound;

    if (Vq->Broken) return VQ_BROKEN;
    if (Request == NULL || Cookie == NULL) return VQ_INVALID;
    /* The usual request is sized by VqRequestBound without a walk. Without a cut at
     * DataBufferMax the bound is its count (or more, for a list longer than the
     * transfer, which StorPort does not build): one beyond the table goes straight to a
     * direct chain. A request that may be cut is counted exactly first, so that it
     * still takes a table when it fits one. */
    Bound = VqRequestBound(Request);
    if (Vq->Indirect != NULL && Vq->NumFree != 0) {
        if ((Bound > Vq->IndirectMax && Request->DataBytes > Request->DataBufferMax) || Bound > Vq->Size) {
            Count = VqCountRequest(Vq, Request);
            if (Count == 0) return VQ_INVALID;
            Bound = Count;
        }
        if (Bound > 1 && Bound <= Vq->IndirectMax)
            return VqAddIndirect(Vq, Vq->FreeHead, Request, Cookie);
    }
    if (Bound > Vq->NumFree) {
        /* A direct chain needs that many free descriptors: count exactly first. */
        if (Count == 0) Count = VqCountRequest(Vq, Request);
        if (Count == 0) return VQ_INVALID;
        if (Count > Vq->NumFree) return VQ_FULL;
    }
    return VqAddDirect(Vq, Vq->FreeHead, Request, Cookie);
}

BOOLEAN VqKickPrepare(VIRTQUEUE *Vq)
{
    USHORT Old = Vq->LastKickAvailIdx;
    USHORT New = Vq->AvailIdx;
    BOOLEAN Kick;

    if (Vq->Broken || Old == New) return FALSE;

    /* 2.7.13.3.1: descriptors and avail ring entries must be visible before idx. */
    AvWriteBarrier();
    Vq->Avail[1] = New;
    Vq->LastKickAvailIdx = New;
    /* 2.7.13.4.1: idx store must be visible before we read flags/avail_event (store->load). */
    AvMemoryBarrier();

    if (Vq->EventIdx)
        Kick = VqEventInWindow(*VqAvailEventPtr(Vq), New, Old);       /* 2.7.10 */
    else
        Kick = (BOOLEAN)((*VqUsedFlagsPtr(Vq) & VQ_USED_F_NO_NOTIFY) == 0);
    if (Kick) Vq->KicksNeeded++;
    else Vq->KicksSuppressed++;
    return Kick;
}

void *VqGetUsed(VIRTQUEUE *Vq, ULONG *UsedLength)
{
    USHORT UsedIdx, Pending, Outstanding, Slot;
    ULONG Id, Length;
    void *Cookie;

    if (Vq->Broken) return NULL;
    UsedIdx = *VqUsedIdxPtr(Vq);
    if (UsedIdx == Vq->LastUsedIdx) return NULL;

    /* The device can only have used entries we published and have not consumed yet
     * (at most Size): anything more is a corrupt or hostile used->idx. */
    Pending = (USHORT)(UsedIdx - Vq->LastUsedIdx);
    Outstanding = (USHORT)(Vq->LastKickAvailIdx - Vq->LastUsedIdx);
    if (Pending > Outstanding) {
        VqSetBroken(Vq, VQ_BROKEN_USED_IDX, UsedIdx);
        return NULL;
    }
    /* 2.7.8.2: the device writes the element before idx; read idx before the element. */
    AvReadBarrier();

    Slot = (USHORT)(Vq->LastUsedIdx & (Vq->Size - 1));
    Id = VqUsedElemPtr(Vq, Slot)[0];
    Length = VqUsedElemPtr(Vq, Slot)[1];
    if (Id >= Vq->Size) {
        VqSetBroken(Vq, VQ_BROKEN_USED_ID_RANGE, Id);
        return NULL;
    }
    Cookie = Vq->Cookies[Id];
    if (Cookie == NULL) {   /* free descriptor, chain member, or completed already */
        VqSetBroken(Vq, VQ_BROKEN_USED_ID_NOT_IN_FLIGHT, Id);
        return NULL;
    }
    VqFreeChain(Vq, (USHORT)Id);
    Vq->LastUsedIdx++;
    /* Keep a disabled EVENT_IDX queue quiet however long it stays disabled (dump mode
     * polls for ever): used_event trails the consumer instead of being passed again
     * 64K entries later. */
    if (Vq->InterruptsDisabled && Vq->EventIdx)
        *VqUsedEventPtr(Vq) = (USHORT)(Vq->LastUsedIdx - 1);
    if (UsedLength != NULL) *UsedLength = Length;   /* untrusted: informational only */
    return Cookie;
}

void VqDisableInterrupts(VIRTQUEUE *Vq)
{
    /* A hint only (2.7.7: not synchronised; spurious interrupts are handled). With
     * EVENT_IDX, used_event = one behind the last consumed entry: the device has
     * already written that entry, so it does not interrupt (VqGetUsed keeps it
     * trailing while disabled). */
    if (Vq->EventIdx)
        *VqUsedEventPtr(Vq) = (USHORT)(Vq->LastUsedIdx - 1);
    else
        Vq->Avail[0] = VQ_AVAIL_F_NO_INTERRUPT;
    Vq->InterruptsDisabled = TRUE;
}

/*
 * Interrupt moderation at depth (issue 16): how many used entries past LastUsedIdx the
 * device may write before it interrupts. 0 (the next completion interrupts) while
 * fewer than VQ_MODERATE_MIN_OUTSTANDING requests are out, so depth 1..15 (QD1, QD8)
 * is unchanged; above that a quarter of them, at most VQ_MODERATE_MAX_DELAY.
 * Always less than Outstanding, the entries published and not yet consumed: the
 * device owes a used entry for each of them (every virtio-blk request ends with its
 * status byte and used entry, 5.2.6; only a reset takes buffers back, and it detaches
 * them), so it writes entry LastUsedIdx + Delay and interrupts (2.7.7.2: idx reaches
 * used_event + 1) without any new request. A delay of Outstanding or more would wait
 * for a request that may never come: the last completions of a burst would sit in
 * the ring until StorPort's timeout (negative control: mutant vq-used-event-too-far).
 * The cost: while a device holds three quarters of the outstanding requests, up to
 * Delay entries it already used wait with them (docs/performance.md).
 */
#define VQ_MODERATE_MIN_OUTSTANDING 16u
#define VQ_MODERATE_MAX_DELAY       16u

static USHORT VqUsedEventDelay(const VIRTQUEUE *Vq)
{
    USHORT Outstanding = (USHORT)(Vq->LastKickAvailIdx - Vq->LastUsedIdx);
    USHORT Delay;
    if (Outstanding < VQ_MODERATE_MIN_OUTSTANDING) return 0;
    Delay = (USHORT)(Outstanding / 4u);
    return Delay > VQ_MODERATE_MAX_DELAY ? (USHORT)VQ_MODERATE_MAX_DELAY : Delay;
}

BOOLEAN VqEnableInterrupts(VIRTQUEUE *Vq)
{
    /* EVENT_IDX: interrupt when the device writes used entry LastUsedIdx + delay
     * (2.7.7.1; the delay is 0, the next entry, below VQ_MODERATE_MIN_OUTSTANDING);
     * else clear NO_INTERRUPT (flags MUST be 0 with EVENT_IDX, and they are: Avail[0]
     * is only written in the non-EVENT_IDX case). */
    if (Vq->EventIdx)
        *VqUsedEventPtr(Vq) = (USHORT)(Vq->LastUsedIdx + VqUsedEventDelay(Vq));
    else
        Vq->Avail[0] = 0;
    Vq->InterruptsDisabled = FALSE;
    /* 2.7.14: used_event/flags store must be visible before re-reading used->idx
     * (store->load), else a completion in between is neither seen nor interrupted.
     * Any new entry means "drain again", delayed used_event or not: when this returns
     * FALSE the ring was empty after the store, so the device writes entry used_event
     * later, sees the store and interrupts. */
    AvMemoryBarrier();
    if (Vq->Broken) return FALSE;   /* nothing more will be returned: end the drain loop */
    return (BOOLEAN)(*VqUsedIdxPtr(Vq) != Vq->LastUsedIdx);
}

void *VqDetachNext(VIRTQUEUE *Vq)
{
    ULONG Scanned;
    USHORT Mask = (USHORT)(Vq->Size - 1);

    if (Vq->InFlight == 0) return NULL;
    /* The cursor makes a full detach O(Size) overall; the wrap covers adds between calls. */
    for (Scanned = 0; Scanned < Vq->Size; Scanned++) {
        USHORT Head = Vq->DetachCursor;
        Vq->DetachCursor = (USHORT)((Head + 1) & Mask);
        if (Vq->Cookies[Head] != NULL) {
            void *Cookie = Vq->Cookies[Head];
            VqFreeChain(Vq, Head);
            return Cookie;
        }
    }
    return NULL;   /* unreachable while InFlight counts heads with cookies */
}


/* Requests the device has not returned yet: in flight minus the used entries it has
 * published and we have not consumed. 0 when the used index claims more than is in
 * flight (a broken device: nothing it says about holding requests can be trusted). */
USHORT VqHeldByDevice(VIRTQUEUE *Vq)
{
    USHORT Published = (USHORT)(*VqUsedIdxPtr(Vq) - Vq->LastUsedIdx);
    return Published > Vq->InFlight ? 0 : (USHORT)(Vq->InFlight - Published);
}

VQ_BROKEN_REASON VqBrokenReason(const VIRTQUEUE *Vq, ULONG *BadValue)
{
    if (BadValue != NULL) *BadValue = Vq->BrokenValue;
    return (VQ_BROKEN_REASON)Vq->BrokenReason;
}
