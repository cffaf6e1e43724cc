/*
 * Virtio 1.x modern PCI transport (virtio spec 4.1), OS-free.
 *
 * Everything the device tells us is untrusted: config-space bytes are walked with
 * bounds, alignment and loop checks; every register write of the init sequence is
 * read back; an all-ones read means the device vanished (surprise removal).
 * Callers: the adapter glue (HwFindAdapter / HwInitialize / reset paths, PASSIVE or
 * DISPATCH level, StartIo or interrupt lock as the glue documents) and the unit tests.
 * Nothing here takes locks: selector registers (feature/queue select) are shared
 * state, so the caller serialises all calls except VpciNotifyQueue / VpciReadIsr.
 */
#include "virtio_pci.h"
#include "hwreg.h"

/* PCI configuration header (PCI Local Bus 3.0, 6.1) */
#define PCI_CFG_VENDOR_ID      0x00
#define PCI_CFG_DEVICE_ID      0x02
#define PCI_CFG_STATUS         0x06
#define PCI_CFG_REVISION       0x08
#define PCI_CFG_HEADER_TYPE    0x0E
#define PCI_CFG_BAR0           0x10
#define PCI_CFG_CAP_PTR        0x34
#define PCI_CFG_INTERRUPT_PIN  0x3D
#define PCI_CFG_HEADER_END     0x40     /* capabilities live after the type-0 header */
#define PCI_CFG_STD_END        0x100    /* ...and inside the standard 256 bytes */
#define PCI_STATUS_CAP_LIST    0x10
#define PCI_CAP_ID_MSIX        0x11
#define PCI_CAP_ID_VNDR        0x09
#define PCI_BAR_IO             0x01
#define PCI_BAR_TYPE_MASK      0x06
#define PCI_BAR_TYPE_32        0x00
#define PCI_BAR_TYPE_64        0x04

/* virtio_pci_cap (spec 4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VPCI_CAP_LEN_MIN        16      /* sizeof(struct virtio_pci_cap) */
#define VPCI_NOTIFY_CAP_LEN_MIN 20      /* + notify_off_multiplier */
/* Spec 4.1.4: a driver may map only what it uses of a large structure. */
#define VPCI_REGION_MAP_LIMIT   0x1000

/* virtio_pci_common_cfg (spec 4.1.4.3) */
#define COMMON_DFSELECT      0x00
#define COMMON_DF            0x04
#define COMMON_GFSELECT      0x08
#define COMMON_GF            0x0C
#define COMMON_MSIX_CONFIG   0x10
#define COMMON_NUM_QUEUES    0x12
#define COMMON_STATUS        0x14
#define COMMON_CFG_GEN       0x15
#define COMMON_Q_SELECT      0x16
#define COMMON_Q_SIZE        0x18
#define COMMON_Q_MSIX        0x1A
#define COMMON_Q_ENABLE      0x1C
#define COMMON_Q_NOTIFY_OFF  0x1E
#define COMMON_Q_DESC        0x20
#define COMMON_Q_DRIVER      0x28
#define COMMON_Q_DEVICE      0x30
#define COMMON_MIN_LENGTH    0x38       /* through queue_device: all we use */

/* Reset wait: spec 4.1.4.3.2 gives no bound. QEMU and Aero reset synchronously; the
 * bound keeps a broken device from holding the interrupt lock (DIRQL) for long. */
#define VPCI_RESET_POLLS     2000   /* 2000 x 100 us: at most 200 ms, often at DIRQL */
#define VPCI_RESET_POLL_US   100    /* each StallExecution well under 1 ms (facts sheet 6.) */

/* ---- small helpers --------------------------------------------------------------- */

static VPCI_STATUS VpciError(VPCI_DEVICE *Dev, VPCI_STATUS Status, ULONG Detail, ULONG Value)
{
    Dev->ErrorDetail = Detail;
    Dev->ErrorValue = Value;
    return Status;
}

static UCHAR CfgByte(const UCHAR *Config, ULONG Offset) { return Config[Offset]; }
static USHORT CfgWord(const UCHAR *Config, ULONG Offset)
{
    return (USHORT)(Config[Offset] | (Config[Offset + 1] << 8));
}
static ULONG CfgDword(const UCHAR *Config, ULONG Offset)
{
    return (ULONG)Config[Offset] | ((ULONG)Config[Offset + 1] << 8) |
           ((ULONG)Config[Offset + 2] << 16) | ((ULONG)Config[Offset + 3] << 24);
}

static BOOLEAN IsPowerOfTwo(ULONG Value) { return Value != 0 && (Value & (Value - 1)) == 0; }

static volatile UCHAR *CommonReg(VPCI_DEVICE *Dev, ULONG Offset) { return Dev->Common + Offset; }

/* 64-bit common-config field as two 32-bit writes, low half first (spec 4.1.3.1). */
static void WriteCommon64(VPCI_DEVICE *Dev, ULONG Offset, ULONGLONG Value)
{
    AvWrite32(CommonReg(Dev, Offset), (ULONG)Value);
    AvWrite32(CommonReg(Dev, Offset + 4), (ULONG)(Value >> 32));
}
static ULONGLONG ReadCommon64(VPCI_DEVICE *Dev, ULONG Offset)
{
    ULONGLONG Low = AvRead32(CommonReg(Dev, Offset));
    ULONGLONG High = AvRead32(CommonReg(Dev, Offset + 4));
    return Low | (High << 32);
}

/* Any caller, any IRQL: constant strings only. */
const char *VpciStatusName(VPCI_STATUS Status)
{
    switch (Status) {
    case VPCI_OK: return "ok";
    case VPCI_ERR_IDENTITY: return "not a virtio-blk 1AF4:1042 function";
    case VPCI_ERR_REVISION: return "unsupported PCI revision (contract v1 needs 01)";
    case VPCI_ERR_CAPABILITIES: return "malformed or missing virtio capability";
    case VPCI_ERR_BAR: return "virtio region outside its mapped BAR";
    case VPCI_ERR_RESET_TIMEOUT: return "device reset did not complete";
    case VPCI_ERR_NO_VERSION_1: return "device does not offer VIRTIO_F_VERSION_1";
    case VPCI_ERR_FEATURES_REFUSED: return "device refused FEATURES_OK";
    case VPCI_ERR_QUEUE: return "virtqueue unavailable or misconfigured";
    case VPCI_ERR_VECTOR: return "MSI-X vector not accepted";
    case VPCI_ERR_CONFIG_UNSTABLE: return "config_generation kept changing";
    case VPCI_ERR_DEVICE_GONE: return "device vanished (reads return all ones)";
    case VPCI_ERR_STATUS_STUCK: return "device status bit did not stick";
    }
    return "unknown";
}

/* ---- phase 1: config space ------------------------------------------------------- */

/* Decode the six BAR registers (PCI 3.0, 6.2.5.1). The upper half of a 64-bit BAR is
 * not a BAR of its own: its slot stays !IsMemory with Address 0 and UsableBar FALSE. */
static void DecodeBars(VPCI_DEVICE *Dev, const UCHAR *Config, BOOLEAN *Usable)
{
    ULONG Index = 0;
    while (Index < 6) {
        ULONG Low = CfgDword(Config, PCI_CFG_BAR0 + Index * 4);
        VPCI_BAR *Bar = &Dev->Bars[Index];
        Usable[Index] = FALSE;
        if (Low & PCI_BAR_IO) {
            /* I/O BAR: hwreg.h only does memory accesses, so regions here are unusable. */
            Bar->Address = Low & ~(ULONG)3;
            Index++;
            continue;
        }
        Bar->IsMemory = TRUE;
        if ((Low & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64) {
            if (Index == 5)          /* no upper half: malformed, unusable */
                break;
            Bar->Is64Bit = TRUE;
            Bar->Address = (ULONGLONG)(Low & ~(ULONG)0xF) |
                           ((ULONGLONG)CfgDword(Config, PCI_CFG_BAR0 + (Index + 1) * 4) << 32);
            Usable[Index] = TRUE;
            Usable[Index + 1] = FALSE;
            Index += 2;
            continue;
        }
        if ((Low & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_32) {
            Bar->Address = Low & ~(ULONG)0xF;
            Usable[Index] = TRUE;
        }
        Index++;
    }
}

static void NoteIgnoredCap(VPCI_DEVICE *Dev, ULONG Detail, ULONG CapOffset)
{
    if (Dev->IgnoredCapDetail == VPCI_DETAIL_NONE) {
        Dev->IgnoredCapDetail = Detail;
        Dev->IgnoredCapOffset = CapOffset;
    }
}

/* One vendor capability (spec 4.1.4). Returns silently for ones we ignore (reserved
 * cfg_type or bar, malformed, or a later instance of a type we already have: spec
 * 4.1.4.1 "first instance ... they can support"). */
static void ParseVirtioCap(VPCI_DEVICE *Dev, const UCHAR *Config, ULONG CapEnd, ULONG Cap,
                           const BOOLEAN *UsableBar)
{
    UCHAR CapLen, CfgType, BarIndex;
    ULONG Offset, Length, MinLength, Alignment;
    VPCI_REGION *Region;

    if (Cap + 4 > CapEnd)
        return;
    CapLen = CfgByte(Config, Cap + 2);
    CfgType = CfgByte(Config, Cap + 3);
    switch (CfgType) {
    case VIRTIO_PCI_CAP_COMMON_CFG: Region = &Dev->CommonRegion; MinLength = COMMON_MIN_LENGTH; Alignment = 4; break;
    case VIRTIO_PCI_CAP_NOTIFY_CFG: Region = &Dev->NotifyRegion; MinLength = 2; Alignment = 2; break;
    case VIRTIO_PCI_CAP_ISR_CFG:    Region = &Dev->IsrRegion;    MinLength = 1; Alignment = 1; break;
    case VIRTIO_PCI_CAP_DEVICE_CFG: Region = &Dev->DeviceRegion; MinLength = 4; Alignment = 4; break;
    default: return;                 /* reserved / PCI_CFG / shared memory / vendor data */
    }
    if (Region->Present)
        return;
    /* cap_len covers the structure (longer is allowed); it must also fit in config space. */
    if (CapLen < (CfgType == VIRTIO_PCI_CAP_NOTIFY_CFG ? VPCI_NOTIFY_CAP_LEN_MIN : VPCI_CAP_LEN_MIN) ||
        Cap + CapLen > CapEnd) {
        NoteIgnoredCap(Dev, VPCI_DETAIL_CAP_LEN, Cap);
        return;
    }
    BarIndex = CfgByte(Config, Cap + 4);
    if (BarIndex >= 6 || !UsableBar[BarIndex]) {   /* spec: ignore reserved bar values */
        NoteIgnoredCap(Dev, VPCI_DETAIL_CAP_BAR, Cap);
        return;
    }
    Offset = CfgDword(Config, Cap + 8);
    Length = CfgDword(Config, Cap + 12);
    if (Offset & (Alignment - 1)) {                /* spec 4.1.4.3 / 4.1.4.4 / 4.1.4.6 */
        NoteIgnoredCap(Dev, VPCI_DETAIL_CAP_ALIGN, Cap);
        return;
    }
    if (Length < MinLength || Offset + Length < Offset) {
        NoteIgnoredCap(Dev, VPCI_DETAIL_CAP_LENGTH, Cap);
        return;
    }
    if (CfgType != VIRTIO_PCI_CAP_NOTIFY_CFG && Length > VPCI_REGION_MAP_LIMIT)
        Length = VPCI_REGION_MAP_LIMIT;
    if (CfgType == VIRTIO_PCI_CAP_NOTIFY_CFG) {
        ULONG Multiplier = CfgDword(Config, Cap + 16);
        /* Spec 4.1.4.4: an even power of 2, or 0; anything else would make 16-bit
         * doorbell writes misaligned. */
        if (Multiplier != 0 && ((Multiplier & (Multiplier - 1)) != 0 || Multiplier == 1)) {
            NoteIgnoredCap(Dev, VPCI_DETAIL_CAP_ALIGN, Cap);
            return;
        }
        Dev->NotifyOffMultiplier = Multiplier;
    }
    Region->Present = TRUE;
    Region->Bar = BarIndex;
    Region->Offset = Offset;
    Region->Length = Length;
}

static const VPCI_REGION *RegionByIndex(const VPCI_DEVICE *Dev, ULONG Index)
{
    switch (Index) {
    case 0: return &Dev->CommonRegion;
    case 1: return &Dev->NotifyRegion;
    case 2: return &Dev->IsrRegion;
    default: return &Dev->DeviceRegion;
    }
}

static BOOLEAN RegionsOverlap(const VPCI_REGION *A, const VPCI_REGION *B)
{
    ULONGLONG EndA = (ULONGLONG)A->Offset + A->Length;
    ULONGLONG EndB = (ULONGLONG)B->Offset + B->Length;
    return A->Bar == B->Bar && A->Offset < EndB && B->Offset < EndA;
}

/* Caller: glue in HwFindAdapter (PASSIVE_LEVEL, no lock), or a unit test. Config is
 * the function's config space as read by StorPortGetBusData (at least 64 bytes). */
VPCI_STATUS VpciParseConfig(VPCI_DEVICE *Dev, const UCHAR *Config, ULONG ConfigLength)
{
    void (*Stall)(ULONG) = Dev->StallMicroseconds;
    BOOLEAN UsableBar[6];
    ULONG CapEnd, Cap, Steps, Index, Other;
    ULONGLONG Seen[4];               /* one bit per dword of the 256-byte space */
    USHORT Status;

    AvZeroMemory(Dev, sizeof(*Dev));
    Dev->StallMicroseconds = Stall;
    if (Config == NULL || ConfigLength < PCI_CFG_HEADER_END)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CONFIG_TOO_SHORT, ConfigLength);
    CapEnd = ConfigLength < PCI_CFG_STD_END ? ConfigLength : PCI_CFG_STD_END;

    Dev->VendorId = CfgWord(Config, PCI_CFG_VENDOR_ID);
    Dev->DeviceId = CfgWord(Config, PCI_CFG_DEVICE_ID);
    Dev->Revision = CfgByte(Config, PCI_CFG_REVISION);
    Dev->InterruptPin = CfgByte(Config, PCI_CFG_INTERRUPT_PIN);
    if (Dev->VendorId == 0xFFFF && Dev->DeviceId == 0xFFFF)
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, 0xFFFF);
    if (Dev->VendorId != VIRTIO_PCI_VENDOR_ID)
        return VpciError(Dev, VPCI_ERR_IDENTITY, VPCI_DETAIL_VENDOR, Dev->VendorId);
    if (Dev->DeviceId != VIRTIO_PCI_DEVICE_ID_BLK)
        return VpciError(Dev, VPCI_ERR_IDENTITY, VPCI_DETAIL_DEVICE, Dev->DeviceId);
    /* Contract v1: the revision is the contract's major version; anything else may
     * behave differently, so refuse it rather than guess. */
    if (Dev->Revision != VIRTIO_PCI_REVISION_AERO_V1)
        return VpciError(Dev, VPCI_ERR_REVISION, VPCI_DETAIL_REVISION, Dev->Revision);
    if ((CfgByte(Config, PCI_CFG_HEADER_TYPE) & 0x7F) != 0)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_HEADER_TYPE,
                         CfgByte(Config, PCI_CFG_HEADER_TYPE));
    Status = CfgWord(Config, PCI_CFG_STATUS);
    if (!(Status & PCI_STATUS_CAP_LIST))
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_NO_CAP_LIST, Status);

    DecodeBars(Dev, Config, UsableBar);

    Seen[0] = Seen[1] = Seen[2] = Seen[3] = 0;
    Cap = CfgByte(Config, PCI_CFG_CAP_PTR);
    for (Steps = 0; Cap != 0; Steps++) {
        ULONG Dword = Cap >> 2;
        /* PCI 3.0 6.7: pointers are dword aligned, point past the header, and the
         * 2-byte id/next pair must be inside config space. */
        if (Cap & 3)
            return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_PTR_ALIGN, Cap);
        if (Cap < PCI_CFG_HEADER_END || Cap + 2 > CapEnd)
            return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_PTR_BOUNDS, Cap);
        if ((Seen[Dword >> 6] >> (Dword & 63)) & 1 || Steps >= 64)
            return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_LOOP, Cap);
        Seen[Dword >> 6] |= (ULONGLONG)1 << (Dword & 63);

        if (CfgByte(Config, Cap) == PCI_CAP_ID_VNDR) {
            ParseVirtioCap(Dev, Config, CapEnd, Cap, UsableBar);
        } else if (CfgByte(Config, Cap) == PCI_CAP_ID_MSIX && Dev->MsixCapOffset == 0 &&
                   Cap + 12 <= CapEnd) {
            /* Message Control bits 10:0 = table size - 1 (PCI 3.0, 6.8.2.3). */
            Dev->MsixCapOffset = (UCHAR)Cap;
            Dev->MsixTableSize = (USHORT)((CfgWord(Config, Cap + 2) & 0x7FF) + 1);
        }
        Cap = CfgByte(Config, Cap + 1);
    }

    if (!Dev->CommonRegion.Present)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON, 0);
    if (!Dev->NotifyRegion.Present)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_NOTIFY, 0);
    if (!Dev->IsrRegion.Present)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_ISR, 0);
    /* virtio-blk always has device config (capacity), spec 5.2.4. */
    if (!Dev->DeviceRegion.Present)
        return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_DEVICE, 0);

    /* Overlapping structures mean a broken device: a write to one would change the other. */
    for (Index = 0; Index < 4; Index++) {
        for (Other = Index + 1; Other < 4; Other++) {
            if (RegionsOverlap(RegionByIndex(Dev, Index), RegionByIndex(Dev, Other)))
                return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_OVERLAP,
                                 ((Index + 1) << 8) | (Other + 1));
        }
    }
    for (Index = 0; Index < 4; Index++)
        Dev->Bars[RegionByIndex(Dev, Index)->Bar].Needed = TRUE;
    Dev->ErrorDetail = VPCI_DETAIL_NONE;
    return VPCI_OK;
}

/* Caller: glue in HwFindAdapter after StorPortGetDeviceBase for every Needed BAR. */
VPCI_STATUS VpciMapRegions(VPCI_DEVICE *Dev)
{
    volatile UCHAR **Targets[4];
    ULONG Index;

    Targets[0] = &Dev->Common;
    Targets[1] = &Dev->Notify;
    Targets[2] = &Dev->Isr;
    Targets[3] = &Dev->DeviceCfg;
    for (Index = 0; Index < 4; Index++) {
        const VPCI_REGION *Region = RegionByIndex(Dev, Index);
        const VPCI_BAR *Bar;
        if (!Region->Present || Region->Bar >= 6)
            return VpciError(Dev, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON + Index, 0);
        Bar = &Dev->Bars[Region->Bar];
        if (Bar->Va == NULL || Bar->MappedLength == 0)
            return VpciError(Dev, VPCI_ERR_BAR, VPCI_DETAIL_BAR_NOT_MAPPED, Region->Bar);
        if (Region->Offset > Bar->MappedLength ||
            Region->Length > Bar->MappedLength - Region->Offset)
            return VpciError(Dev, VPCI_ERR_BAR, VPCI_DETAIL_OUTSIDE_BAR, Index + 1);
        *Targets[Index] = Bar->Va + Region->Offset;
    }
    Dev->QueueNotify = NULL;
    return VPCI_OK;
}

/* ---- device status (spec 2.1, 3.1.1) --------------------------------------------- */
/* Callers: the glue's init and reset paths (HwFindAdapter / HwInitialize at PASSIVE,
 * the reset/recovery path at up to DISPATCH) with I/O quiesced, so no lock is needed;
 * VpciIsDeviceGone also from the DPC / timer (DISPATCH, any lock): one read, no state. */

UCHAR VpciGetStatus(VPCI_DEVICE *Dev)
{
    return AvRead8(CommonReg(Dev, COMMON_STATUS));
}

BOOLEAN VpciIsDeviceGone(VPCI_DEVICE *Dev)
{
    return VpciGetStatus(Dev) == 0xFF;
}

void VpciAddStatus(VPCI_DEVICE *Dev, UCHAR Bits)
{
    UCHAR Status = VpciGetStatus(Dev);
    AvWrite8(CommonReg(Dev, COMMON_STATUS), (UCHAR)(Status | Bits));
}

VPCI_STATUS VpciAddStatusChecked(VPCI_DEVICE *Dev, UCHAR Bits)
{
    UCHAR Status;
    VpciAddStatus(Dev, Bits);
    Status = VpciGetStatus(Dev);
    if (Status == 0xFF)
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, Status);
    if ((Status & Bits) != Bits || (Status & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
        return VpciError(Dev, VPCI_ERR_STATUS_STUCK, VPCI_DETAIL_STATUS_STUCK, Status);
    return VPCI_OK;
}

VPCI_STATUS VpciReset(VPCI_DEVICE *Dev)
{
    ULONG Poll;
    UCHAR Status = 0;

    AvWrite8(CommonReg(Dev, COMMON_STATUS), 0);
    /* Spec 4.1.4.3.2: wait for a read of device_status to return 0. */
    for (Poll = 0; Poll < VPCI_RESET_POLLS; Poll++) {
        Status = VpciGetStatus(Dev);
        if (Status == 0) {
            Dev->QueueNotify = NULL;
            Dev->QueueSizeInUse = 0;
            return VPCI_OK;
        }
        if (Status == 0xFF)
            return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, Status);
        if (Dev->StallMicroseconds != NULL)
            Dev->StallMicroseconds(VPCI_RESET_POLL_US);
    }
    return VpciError(Dev, VPCI_ERR_RESET_TIMEOUT, VPCI_DETAIL_RESET_TIMEOUT, Status);
}

void VpciFail(VPCI_DEVICE *Dev)
{
    VpciAddStatus(Dev, VIRTIO_STATUS_FAILED);
}

VPCI_STATUS VpciBeginInit(VPCI_DEVICE *Dev)
{
    VPCI_STATUS Status = VpciReset(Dev);
    if (Status == VPCI_OK)
        Status = VpciAddStatusChecked(Dev, VIRTIO_STATUS_ACKNOWLEDGE);
    if (Status == VPCI_OK)
        Status = VpciAddStatusChecked(Dev, VIRTIO_STATUS_DRIVER);
    return Status;
}

/* ---- features (spec 2.2, 3.1.1 steps 4-6) ---------------------------------------- */
/* Callers: init path only (PASSIVE/DISPATCH, I/O quiesced): the select registers are
 * shared device state, so nothing else may run against common cfg meanwhile. */

static ULONGLONG ReadFeatures(VPCI_DEVICE *Dev, ULONG SelectReg, ULONG ValueReg)
{
    ULONGLONG Low, High;
    AvWrite32(CommonReg(Dev, SelectReg), 0);
    Low = AvRead32(CommonReg(Dev, ValueReg));
    AvWrite32(CommonReg(Dev, SelectReg), 1);
    High = AvRead32(CommonReg(Dev, ValueReg));
    return Low | (High << 32);
}

ULONGLONG VpciReadDeviceFeatures(VPCI_DEVICE *Dev)
{
    return ReadFeatures(Dev, COMMON_DFSELECT, COMMON_DF);
}

ULONGLONG VpciReadDriverFeatures(VPCI_DEVICE *Dev)
{
    return ReadFeatures(Dev, COMMON_GFSELECT, COMMON_GF);
}

VPCI_STATUS VpciNegotiateFeatures(VPCI_DEVICE *Dev, ULONGLONG Wanted, ULONGLONG *Negotiated)
{
    ULONGLONG Offered, Accepted, ReadBack;
    const ULONGLONG Version1 = (ULONGLONG)1 << VIRTIO_F_VERSION_1;
    UCHAR Status;

    *Negotiated = 0;
    if (!(Wanted & Version1))
        return VpciError(Dev, VPCI_ERR_NO_VERSION_1, VPCI_DETAIL_BAD_ARGUMENT, 0);
    Offered = VpciReadDeviceFeatures(Dev);
    if (Offered == ~(ULONGLONG)0 && VpciIsDeviceGone(Dev))
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, 0xFFFFFFFF);
    /* Spec 6.1: a modern driver MUST accept VERSION_1, and we never speak legacy. */
    if (!(Offered & Version1))
        return VpciError(Dev, VPCI_ERR_NO_VERSION_1, VPCI_DETAIL_NO_VERSION_1, (ULONG)(Offered >> 32));
    Accepted = Offered & Wanted;

    AvWrite32(CommonReg(Dev, COMMON_GFSELECT), 0);
    AvWrite32(CommonReg(Dev, COMMON_GF), (ULONG)Accepted);
    AvWrite32(CommonReg(Dev, COMMON_GFSELECT), 1);
    AvWrite32(CommonReg(Dev, COMMON_GF), (ULONG)(Accepted >> 32));
    /* Spec 4.1.4.3.1: the device presents valid bits written; anything else is broken. */
    ReadBack = VpciReadDriverFeatures(Dev);
    if (ReadBack != Accepted) {
        if (VpciIsDeviceGone(Dev))
            return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, 0);
        return VpciError(Dev, VPCI_ERR_FEATURES_REFUSED, VPCI_DETAIL_FEATURES_READBACK,
                         (ULONG)ReadBack == (ULONG)Accepted ? 1 : 0);
    }

    /* Spec 3.1.1 steps 5-6: set FEATURES_OK, re-read: cleared = combination refused. */
    VpciAddStatus(Dev, VIRTIO_STATUS_FEATURES_OK);
    Status = VpciGetStatus(Dev);
    if (Status == 0xFF)
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, Status);
    if (!(Status & VIRTIO_STATUS_FEATURES_OK) || (Status & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
        return VpciError(Dev, VPCI_ERR_FEATURES_REFUSED, VPCI_DETAIL_FEATURES_OK_CLEARED, Status);
    *Negotiated = Accepted;
    return VPCI_OK;
}

/* ---- queues (spec 4.1.5.1.3) ----------------------------------------------------- */
/* Callers: init path only, after FEATURES_OK and before DRIVER_OK (queue_select is
 * shared state); the ring memory must already be zeroed (VqInit). */

USHORT VpciNumQueues(VPCI_DEVICE *Dev)
{
    return AvRead16(CommonReg(Dev, COMMON_NUM_QUEUES));
}

USHORT VpciQueueMaxSize(VPCI_DEVICE *Dev, USHORT QueueIndex)
{
    AvWrite16(CommonReg(Dev, COMMON_Q_SELECT), QueueIndex);
    return AvRead16(CommonReg(Dev, COMMON_Q_SIZE));
}

/* Write a vector register and read it back (spec 4.1.5.1.2: NO_VECTOR = mapping failed). */
static VPCI_STATUS SetVector(VPCI_DEVICE *Dev, ULONG Register, USHORT Vector)
{
    USHORT ReadBack;
    if (Vector != VIRTIO_MSI_NO_VECTOR && Vector >= Dev->MsixTableSize)
        return VpciError(Dev, VPCI_ERR_VECTOR, VPCI_DETAIL_VECTOR_RANGE, Vector);
    AvWrite16(CommonReg(Dev, Register), Vector);
    ReadBack = AvRead16(CommonReg(Dev, Register));
    if (ReadBack == Vector)
        return VPCI_OK;
    if (ReadBack == 0xFFFF && VpciIsDeviceGone(Dev))
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, ReadBack);
    return VpciError(Dev, VPCI_ERR_VECTOR, VPCI_DETAIL_VECTOR_READBACK, ReadBack);
}

static VPCI_STATUS SetQueueAddress(VPCI_DEVICE *Dev, ULONG Register, ULONGLONG Address,
                                   ULONG AlignMask, ULONG Which)
{
    if ((ULONG)Address & AlignMask)           /* spec 2.7: 16 / 2 / 4-byte alignment */
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_ADDRESS, Which);
    WriteCommon64(Dev, Register, Address);
    if (ReadCommon64(Dev, Register) != Address)
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_ADDRESS, Which);
    return VPCI_OK;
}

BOOLEAN VpciQueueStillOurs(VPCI_DEVICE *Dev, USHORT QueueIndex, ULONGLONG DescPa)
{
    UCHAR Status = AvRead8(CommonReg(Dev, COMMON_STATUS));
    if ((Status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) !=
        VIRTIO_STATUS_DRIVER_OK)
        return FALSE;
    /* queue_select may have been left elsewhere by the other user: select ours first */
    AvWrite16(CommonReg(Dev, COMMON_Q_SELECT), QueueIndex);
    return (BOOLEAN)(AvRead16(CommonReg(Dev, COMMON_Q_ENABLE)) == 1 &&
                     ReadCommon64(Dev, COMMON_Q_DESC) == DescPa);
}

VPCI_STATUS VpciSetupQueue(VPCI_DEVICE *Dev, USHORT QueueIndex, USHORT *QueueSize,
                           ULONGLONG DescPa, ULONGLONG AvailPa, ULONGLONG UsedPa,
                           USHORT MsixVector)
{
    USHORT NumQueues, MaxSize, Size, NotifyOff, Enable;
    ULONGLONG DoorbellOffset;
    VPCI_STATUS Status;

    NumQueues = VpciNumQueues(Dev);
    if (QueueIndex >= NumQueues || NumQueues == 0xFFFF) {
        if (NumQueues == 0xFFFF && VpciIsDeviceGone(Dev))
            return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, NumQueues);
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_INDEX, NumQueues);
    }
    if (!IsPowerOfTwo(*QueueSize))
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_BAD_ARGUMENT, *QueueSize);

    MaxSize = VpciQueueMaxSize(Dev, QueueIndex);
    if (MaxSize == 0)                          /* spec 4.1.4.3: 0 = queue unavailable */
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_SIZE_ZERO, 0);
    if (MaxSize == 0xFFFF && VpciIsDeviceGone(Dev))
        return VpciError(Dev, VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE, MaxSize);
    if (!IsPowerOfTwo(MaxSize))               /* split ring sizes are powers of two */
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_SIZE_INVALID, MaxSize);
    Enable = AvRead16(CommonReg(Dev, COMMON_Q_ENABLE));
    if (Enable != 0)                           /* must be 0 after reset, spec 4.1.4.3.1 */
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_ENABLED, Enable);

    Size = MaxSize;
    if (*QueueSize < MaxSize) {
        /* Optional smaller size (spec 4.1.5.1.3 step 3); a fixed-size device (Aero)
         * ignores the write, so check: a ring laid out for the wrong size is fatal. */
        AvWrite16(CommonReg(Dev, COMMON_Q_SIZE), *QueueSize);
        Size = AvRead16(CommonReg(Dev, COMMON_Q_SIZE));
        if (Size != *QueueSize) {
            *QueueSize = Size;
            return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_SIZE_REFUSED, Size);
        }
    }

    Status = SetQueueAddress(Dev, COMMON_Q_DESC, DescPa, 15, 0);
    if (Status == VPCI_OK)
        Status = SetQueueAddress(Dev, COMMON_Q_DRIVER, AvailPa, 1, 1);
    if (Status == VPCI_OK)
        Status = SetQueueAddress(Dev, COMMON_Q_DEVICE, UsedPa, 3, 2);
    if (Status == VPCI_OK)
        Status = SetVector(Dev, COMMON_Q_MSIX, MsixVector);
    if (Status != VPCI_OK)
        return Status;

    /* Doorbell = notify base + queue_notify_off * notify_off_multiplier (spec 4.1.4.4);
     * the 2-byte write must land inside the notify structure. */
    NotifyOff = AvRead16(CommonReg(Dev, COMMON_Q_NOTIFY_OFF));
    DoorbellOffset = (ULONGLONG)NotifyOff * Dev->NotifyOffMultiplier;
    if (DoorbellOffset + 2 > Dev->NotifyRegion.Length)
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_NOTIFY, NotifyOff);

    AvWrite16(CommonReg(Dev, COMMON_Q_ENABLE), 1);
    Enable = AvRead16(CommonReg(Dev, COMMON_Q_ENABLE));
    if (Enable != 1)
        return VpciError(Dev, VPCI_ERR_QUEUE, VPCI_DETAIL_QUEUE_ENABLE, Enable);

    if (QueueIndex == 0) {
        Dev->QueueNotify = Dev->Notify + (ULONG)DoorbellOffset;
        Dev->QueueSizeInUse = Size;
    }
    *QueueSize = Size;
    return VPCI_OK;
}

VPCI_STATUS VpciSetConfigVector(VPCI_DEVICE *Dev, USHORT MsixVector)
{
    return SetVector(Dev, COMMON_MSIX_CONFIG, MsixVector);
}

/* Caller: HwStartIo path after dropping the queue lock (DISPATCH_LEVEL). One MMIO
 * write. Only queue 0's doorbell is resolved (the driver uses one queue). */
void VpciNotifyQueue(VPCI_DEVICE *Dev, USHORT QueueIndex)
{
    if (Dev->QueueNotify != NULL && QueueIndex == 0)
        AvWrite16(Dev->QueueNotify, QueueIndex);
}

/* Caller: HwInterrupt (DIRQL) for INTx only; reading clears it and lowers INTx. */
UCHAR VpciReadIsr(VPCI_DEVICE *Dev)
{
    return AvRead8(Dev->Isr);
}

/* ---- device-specific config (spec 4.1.4.6, 2.5.1) -------------------------------- */
/* Callers: the blk layer at init (PASSIVE) and from the config-change DPC (DISPATCH,
 * no lock needed: no selector is involved, and the generation loop makes the result
 * consistent). VpciConfigWrite8 only at init. */

UCHAR VpciConfigGeneration(VPCI_DEVICE *Dev)
{
    return AvRead8(CommonReg(Dev, COMMON_CFG_GEN));
}

BOOLEAN VpciConfigStable(VPCI_DEVICE *Dev, UCHAR Generation)
{
    return VpciConfigGeneration(Dev) == Generation;
}

/* Naturally aligned and inside the device structure (spec 4.1.3.1), else not read. */
static BOOLEAN ConfigFieldOk(const VPCI_DEVICE *Dev, ULONG Offset, ULONG Width)
{
    return Dev->DeviceCfg != NULL && (Offset & (Width - 1)) == 0 &&
           Offset < Dev->DeviceRegion.Length && Width <= Dev->DeviceRegion.Length - Offset;
}

UCHAR VpciConfigRead8(VPCI_DEVICE *Dev, ULONG Offset)
{
    return ConfigFieldOk(Dev, Offset, 1) ? AvRead8(Dev->DeviceCfg + Offset) : 0;
}

USHORT VpciConfigRead16(VPCI_DEVICE *Dev, ULONG Offset)
{
    return ConfigFieldOk(Dev, Offset, 2) ? AvRead16(Dev->DeviceCfg + Offset) : 0;
}

ULONG VpciConfigRead32(VPCI_DEVICE *Dev, ULONG Offset)
{
    return ConfigFieldOk(Dev, Offset, 4) ? AvRead32(Dev->DeviceCfg + Offset) : 0;
}

ULONGLONG VpciConfigRead64(VPCI_DEVICE *Dev, ULONG Offset)
{
    ULONGLONG Low, High;
    if (!ConfigFieldOk(Dev, Offset, 8))
        return 0;
    /* Spec 4.1.3.1: two 32-bit accesses; the caller's generation loop catches tearing. */
    Low = AvRead32(Dev->DeviceCfg + Offset);
    High = AvRead32(Dev->DeviceCfg + Offset + 4);
    return Low | (High << 32);
}

void VpciConfigWrite8(VPCI_DEVICE *Dev, ULONG Offset, UCHAR Value)
{
    if (ConfigFieldOk(Dev, Offset, 1))
        AvWrite8(Dev->DeviceCfg + Offset, Value);
}
