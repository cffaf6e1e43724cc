/*
 * aerovblk: StorPort glue, adapter bring-up: DriverEntry, HwFindAdapter (identity,
 * BARs, negotiation, queue planning and memory), HwInitialize and the passive
 * initialisation (DPC), and AerovblkStartDevice, the one device (re)initialisation
 * that HwInitialize, ScsiRestartAdapter and reset recovery share. Each entry point
 * says its caller, IRQL and locks; the glue's lock rules are in aerovblk_int.h.
 */
#include "aerovblk_int.h"

AV_STATIC_ASSERT(sizeof(AEROVBLK_SRB_EXTENSION) < 8192, SrbExtensionReasonable);

ULONG NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath);
static BOOLEAN NTAPI AerovblkHwPassiveInitialize(PVOID DeviceExtension);

/* ----------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* Transport's busy-wait; a plain function because VPCI_DEVICE stores a C pointer. */
static void AerovblkStall(ULONG Microseconds)
{
    StorPortStallExecution(Microseconds);
}

/* "dump=1" in HwFindAdapter's ArgumentString marks the crash-dump / hibernation
 * instance on Windows 7 [MS-BOOT]. */
static BOOLEAN AerovblkArgumentsSayDump(const CHAR *Arguments)
{
    static const CHAR Key[] = "dump=1";
    ULONG I, J;
    if (Arguments == NULL) {
        return FALSE;
    }
    for (I = 0; Arguments[I] != 0 && I < 256; I++) {
        for (J = 0; Key[J] != 0 && Arguments[I + J] == Key[J]; J++) {
        }
        if (Key[J] == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

/* ----------------------------------------------------------------------------
 * Device bring-up
 * ------------------------------------------------------------------------- */

/* Maps every BAR that holds a virtio region. Windows does not say which access
 * range is which BAR: match the BAR address decoded from config space. */
static BOOLEAN AerovblkMapBars(PAEROVBLK_ADAPTER Adapter, PPORT_CONFIGURATION_INFORMATION ConfigInfo)
{
    ULONG Bar, Range;
    for (Bar = 0; Bar < 6; Bar++) {
        VPCI_BAR *Info = &Adapter->Pci.Bars[Bar];
        BOOLEAN Mapped = FALSE;
        if (!Info->Needed) {
            continue;
        }
        for (Range = 0; Range < ConfigInfo->NumberOfAccessRanges && !Mapped; Range++) {
            ACCESS_RANGE *Access = &(*ConfigInfo->AccessRanges)[Range];
            PVOID Va;
            if ((ULONGLONG)Access->RangeStart.QuadPart != Info->Address ||
                Access->RangeInMemory != Info->IsMemory || Access->RangeLength == 0) {
                continue;
            }
            Va = StorPortGetDeviceBase(Adapter, ConfigInfo->AdapterInterfaceType,
                                       ConfigInfo->SystemIoBusNumber, Access->RangeStart,
                                       Access->RangeLength, (BOOLEAN)!Access->RangeInMemory);
            if (Va == NULL) {
                return FALSE;
            }
            Info->Va = (volatile UCHAR *)Va;
            Info->MappedLength = Access->RangeLength;
            Mapped = TRUE;
        }
        if (!Mapped) {
            return FALSE;
        }
    }
    return TRUE;
}

/* Features the memory plan and transfer limits were sized for: a re-initialisation
 * (reset, resume) must get exactly these again. Others (RO, WCE, DISCARD, ...) may
 * change across a resume and are simply re-read. */
#define AEROVBLK_LAYOUT_FEATURES (VBLK_FEATURE(VIRTIO_F_VERSION_1) | VBLK_FEATURE(VIRTIO_F_INDIRECT_DESC) | \
                                  VBLK_FEATURE(VIRTIO_F_EVENT_IDX) | VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX) | \
                                  VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX))

/* Copies a fresh config snapshot (and the negotiated features) into the SCSI layer's
 * view. Returns TRUE when the disk changed in a way Windows must re-read: capacity,
 * logical block size or write protection. */
BOOLEAN AerovblkApplyConfig(PAEROVBLK_ADAPTER Adapter, const VBLK_CONFIG *Config,
                            BOOLEAN Initial)
{
    BOOLEAN Changed = (BOOLEAN)(!Initial &&
        (Adapter->Disk.Config.CapacitySectors != Config->CapacitySectors ||
         Adapter->Disk.Config.BlockSize != Config->BlockSize ||
         ((Adapter->Disk.Features ^ Adapter->Features) & VBLK_FEATURE(VIRTIO_BLK_F_RO)) != 0));
    if (Config->Notes != 0) {
        /* The device reported values the driver had to correct (VBLK_NOTE_*). */
        AerovblkLogError(Adapter, AEROVBLK_LOG_CONFIG | (Config->Notes & 0xFF));
    }
    Adapter->Disk.Device = &Adapter->Pci;
    Adapter->Disk.Features = Adapter->Features;
    Adapter->Disk.Config = *Config;
    ScsiUpdateGeometry(&Adapter->Disk);
    if (Changed) {
        Adapter->Disk.UnitAttentionPending = TRUE;
        Adapter->Counters.CapacityChangeEvents++;
    }
    return Changed;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (virtio 3.1.1 steps 1-6).
 * Writes the negotiated set into *Negotiated. */
static BOOLEAN AerovblkNegotiate(PAEROVBLK_ADAPTER Adapter, ULONGLONG *Negotiated)
{
    /* Reset (bounded wait for 0), ACKNOWLEDGE, DRIVER, each read back. */
    VPCI_STATUS Status = VpciBeginInit(&Adapter->Pci);
    if (Status != VPCI_OK) {
        AerovblkLogTransportError(Adapter, Status == VPCI_ERR_DEVICE_GONE ? AEROVBLK_LOG_REMOVED
                                                                           : AEROVBLK_LOG_RESET_TIMEOUT);
        return FALSE;
    }
    Status = VpciNegotiateFeatures(&Adapter->Pci, Adapter->WantedFeatures, Negotiated);
    if (Status != VPCI_OK) {
        AerovblkLogTransportError(Adapter, AEROVBLK_LOG_NEGOTIATION);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    return TRUE;
}

/* Full (re)initialisation of a device whose memory plan is already made: used by
 * HwInitialize, ScsiRestartAdapter and reset recovery (one path for all three).
 * Caller: reset recovery (queue lock held, inside the device gate), HwInitialize
 * (StorPort holds the interrupt lock), ScsiRestartAdapter (interrupt lock or no lock,
 * with the device gate closed). No allocation, no bus-data access: legal at DIRQL. */
BOOLEAN AerovblkStartDevice(PAEROVBLK_ADAPTER Adapter, BOOLEAN Initial, BOOLEAN *DiskChanged)
{
    ULONGLONG Negotiated = 0;
    VBLK_CONFIG Config, Fresh;
    USHORT Size = Adapter->QueueSize;
    VIRTQUEUE *Vq = &Adapter->Queue.Vq;
    VPCI_STATUS Status;
    UCHAR ChosenWriteback = Adapter->Disk.Config.Writeback;

    *DiskChanged = FALSE;
    if (!AerovblkNegotiate(Adapter, &Negotiated)) {
        return FALSE;
    }
    /* The memory plan (indirect tables, event idx layout, data buffers) was made for
     * the first negotiation; a device that now differs there cannot be driven safely. */
    if (((Negotiated ^ Adapter->Features) & AEROVBLK_LAYOUT_FEATURES) != 0) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_NEGOTIATION);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    if (VblkReadConfig(&Adapter->Pci, Negotiated, &Config) != VPCI_OK ||
        ((Negotiated & VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX)) && Config.SegMax < Adapter->Disk.MaxDataBuffers)) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_CONFIG);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    /* The cache mode after a reset is the device's choice (virtio 5.2.4); Windows
     * chose one with MODE SELECT and will not ask again, so restore it before
     * DRIVER_OK (allowed by 5.2.5.1). */
    if (!Initial && (Negotiated & VBLK_FEATURE(VIRTIO_BLK_F_CONFIG_WCE)) &&
        Config.Writeback != ChosenWriteback) {
        if (VblkSetWriteback(&Adapter->Pci, ChosenWriteback)) {
            Config.Writeback = ChosenWriteback;
        } else {
            AerovblkLogError(Adapter, AEROVBLK_LOG_CONFIG);
        }
    }
    Adapter->Features = Negotiated;
    *DiskChanged = AerovblkApplyConfig(Adapter, &Config, Initial);

    if (VblkQueueInit(&Adapter->Queue, Adapter->QueueSize,
                      (BOOLEAN)((Negotiated & VBLK_FEATURE(VIRTIO_F_EVENT_IDX)) != 0),
                      Adapter->IndirectMax, Adapter->SlotCount,
                      Adapter->QueueMemory, Adapter->QueueMemoryPa) != VQ_OK) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_QUEUE_SETUP);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    /* The data limits told to StorPort in HwFindAdapter (MaxDataBuffers counts the
     * size_max pieces, AerovblkPlanQueue) are the ones the queue enforces. */
    VblkQueueSetLimits(&Adapter->Queue, Adapter->Disk.MaxDataBuffers, VblkBufferBytesMax(Negotiated, &Config));
    Status = VpciSetupQueue(&Adapter->Pci, 0, &Size, Vq->DescPa, Vq->AvailPa, Vq->UsedPa,
                            Adapter->QueueVector);
    if (Status == VPCI_OK && Size != Adapter->QueueSize) {
        Status = VPCI_ERR_QUEUE;     /* device kept a size our memory plan does not cover */
    }
    if (Status == VPCI_OK && Adapter->MessageCount != 0) {
        Status = VpciSetConfigVector(&Adapter->Pci, Adapter->ConfigVector);
    }
    if (Status != VPCI_OK) {
        AerovblkLogTransportError(Adapter, Status == VPCI_ERR_VECTOR ? AEROVBLK_LOG_MSIX_VECTOR
                                                                     : AEROVBLK_LOG_QUEUE_SETUP);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    if (Adapter->DumpMode) {
        /* Polled: ask the device not to interrupt at all (virtio 2.7.7). */
        VqDisableInterrupts(Vq);
    }
    if (VpciAddStatusChecked(&Adapter->Pci, VIRTIO_STATUS_DRIVER_OK) != VPCI_OK) {
        AerovblkLogTransportError(Adapter, AEROVBLK_LOG_QUEUE_SETUP);
        VpciFail(&Adapter->Pci);
        return FALSE;
    }
    /* A config change between the read above and DRIVER_OK raised no interrupt (a device
     * notifies config changes only once DRIVER_OK is set: QEMU's virtio_notify_config),
     * e.g. a resize while the adapter was stopped: read once more. */
    if (VblkReadConfig(&Adapter->Pci, Negotiated, &Fresh) == VPCI_OK &&
        Fresh.CapacitySectors != Config.CapacitySectors &&
        AerovblkApplyConfig(Adapter, &Fresh, Initial)) {
        *DiskChanged = TRUE;
    }
    return TRUE;
}

/* Indirect table entries per head so that the whole normal-mode queue stays within
 * AEROVBLK_NORMAL_BUDGET_BYTES of uncached extension: the largest requests go as
 * direct chains instead (same transfer limit, fewer of them in the ring at once).
 * 0 (no tables) when not even header + 1 data buffer + status fit. */
static USHORT AerovblkIndirectMaxForBudget(PAEROVBLK_ADAPTER Adapter, USHORT Wanted)
{
    ULONG Base = VblkQueueMemoryBytes(Adapter->QueueSize,
        (BOOLEAN)((Adapter->Features & VBLK_FEATURE(VIRTIO_F_EVENT_IDX)) != 0), 0, Adapter->SlotCount);
    ULONG Fit;
    if (Base == 0 || Base + AEROVBLK_PAGE_SIZE >= AEROVBLK_NORMAL_BUDGET_BYTES) {
        return 0;
    }
    Fit = (AEROVBLK_NORMAL_BUDGET_BYTES - AEROVBLK_PAGE_SIZE - Base) / ((ULONG)Adapter->QueueSize * 16);
    if (Fit < 3) {
        return 0;
    }
    return (USHORT)(Fit < Wanted ? Fit : Wanted);
}

/* Chooses queue size, data-buffer limit, indirect table size and slot count so the
 * whole queue fits the budget; fills the StorPort transfer limits. */
static BOOLEAN AerovblkPlanQueue(PAEROVBLK_ADAPTER Adapter, PPORT_CONFIGURATION_INFORMATION ConfigInfo,
                                 const VBLK_CONFIG *Config)
{
    USHORT DeviceMax = VpciQueueMaxSize(&Adapter->Pci, 0);
    USHORT Size = 1;
    ULONG DataBuffers, Pages, MaxTransfer, BuffersPerPage = 1;
    BOOLEAN Indirect = (BOOLEAN)((Adapter->Features & VBLK_FEATURE(VIRTIO_F_INDIRECT_DESC)) != 0);

    /* Split rings are power-of-two sized (virtio 2.7). */
    if (DeviceMax == 0 || (DeviceMax & (DeviceMax - 1)) != 0) {
        return FALSE;
    }
    /* Largest power of two <= min(device max, our cap). A device whose queue size is
     * fixed (Aero: 128, never above our cap) keeps it; a larger one (QEMU 1024) takes
     * our smaller write (checked at setup). */
    Size = DeviceMax < AEROVBLK_MAX_QUEUE_SIZE ? DeviceMax : AEROVBLK_MAX_QUEUE_SIZE;
    if (Size < 4) {
        return FALSE;             /* header + data + status must fit as a direct chain */
    }

    /* Data buffers per request: the device's seg_max (virtio 5.2.4); without SEG_MAX
     * the only limit is structural (a chain no longer than the queue, 2.7.5.3.1). */
    DataBuffers = (Adapter->Features & VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX)) ? Config->SegMax
                                                                           : (ULONG)Size - 2;
    if (DataBuffers == 0) {
        DataBuffers = 1;
    }
    if (DataBuffers > VBLK_MAX_DATA_BUFFERS) {
        DataBuffers = VBLK_MAX_DATA_BUFFERS;
    }
    if (Adapter->DumpMode && DataBuffers > AEROVBLK_DUMP_MAX_DATA_BUFFERS) {
        DataBuffers = AEROVBLK_DUMP_MAX_DATA_BUFFERS;
    }
    /* No chain may be longer than the queue, even through an indirect table
     * (virtio 2.7.5.3.1): header + data + status <= Size. */
    if (DataBuffers > (ULONG)Size - 2) {
        DataBuffers = (ULONG)Size - 2;
    }

    /* A device size_max below a page splits every page into several buffers. */
    if ((Adapter->Features & VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX)) && Config->SizeMax != 0 &&
        Config->SizeMax < AEROVBLK_PAGE_SIZE) {
        BuffersPerPage = (AEROVBLK_PAGE_SIZE + Config->SizeMax - 1) / Config->SizeMax;
    }
    Pages = DataBuffers / BuffersPerPage;
    /* One element may start mid-page: N page-sized elements carry N - 1 full pages, and
     * the transfer must be whole logical blocks. */
    if (Pages > 1) {
        MaxTransfer = (Pages - 1) * AEROVBLK_PAGE_SIZE;
    } else {
        /* One page-sized element per request: only a block-aligned single block is
         * sure never to straddle a page (AlignmentMask below makes Windows align it). */
        MaxTransfer = Config->BlockSize <= AEROVBLK_PAGE_SIZE ? Config->BlockSize : 0;
    }
    MaxTransfer &= ~(Config->BlockSize - 1);
    if (MaxTransfer == 0) {
        return FALSE;             /* the device cannot take even one block per request */
    }

    Adapter->QueueSize = Size;
    Adapter->SlotCount = Adapter->DumpMode ? AEROVBLK_DUMP_SLOTS : Size;
    Adapter->IndirectMax = (Indirect && !Adapter->DumpMode) ?
        AerovblkIndirectMaxForBudget(Adapter, (USHORT)(DataBuffers + 2)) : 0;
    Adapter->Disk.MaxDataBuffers = (USHORT)DataBuffers;
    Adapter->Disk.MaxTransferBytes = MaxTransfer;
    ConfigInfo->MaximumTransferLength = MaxTransfer;
    /* With the NumberOfPhysicalBreaks ambiguity (facts sheet 2.), Pages - 1 breaks is
     * safe under both readings ("elements" or "elements - 1"). One element per request:
     * 1, not 0 (read as an element count, 0 admits no request at all); the one-block,
     * block-aligned transfer above never needs a second element under either reading. */
    ConfigInfo->NumberOfPhysicalBreaks = Pages > 1 ? Pages - 1 : 1;

    Adapter->QueueMemoryBytes = VblkQueueMemoryBytes(Size,
        (BOOLEAN)((Adapter->Features & VBLK_FEATURE(VIRTIO_F_EVENT_IDX)) != 0),
        Adapter->IndirectMax, Adapter->SlotCount);
    if (Adapter->QueueMemoryBytes == 0 ||
        (Adapter->DumpMode && Adapter->QueueMemoryBytes + AEROVBLK_PAGE_SIZE > AEROVBLK_DUMP_BUDGET_BYTES)) {
        return FALSE;
    }
    return TRUE;
}

/* Takes the queue memory from the uncached extension (legal only here, in
 * HwFindAdapter) and aligns it to a page. */
static BOOLEAN AerovblkAllocateQueueMemory(PAEROVBLK_ADAPTER Adapter, PPORT_CONFIGURATION_INFORMATION ConfigInfo)
{
    ULONG Bytes = Adapter->QueueMemoryBytes + AEROVBLK_PAGE_SIZE;
    ULONG Contiguous = Bytes;
    PUCHAR Va;
    STOR_PHYSICAL_ADDRESS Pa;
    ULONG Adjust;

    if (Adapter->UncachedVa != NULL && Adapter->UncachedBytes >= Bytes) {
        /* HwFindAdapter again (rebalance): reuse the extension of the first start */
        Va = Adapter->UncachedVa;
        Pa.QuadPart = (LONGLONG)Adapter->UncachedPa;
    } else {
        Va = (PUCHAR)StorPortGetUncachedExtension(Adapter, ConfigInfo, Bytes);
        if (Va == NULL) {
            return FALSE;
        }
        Pa = StorPortGetPhysicalAddress(Adapter, NULL, Va, &Contiguous);
        if (Contiguous < Bytes) {
            return FALSE;             /* the ring must be physically contiguous */
        }
        Adapter->UncachedVa = Va;
        Adapter->UncachedPa = (ULONGLONG)Pa.QuadPart;
        Adapter->UncachedBytes = Bytes;
    }
    Adjust = (ULONG)((AEROVBLK_PAGE_SIZE - ((ULONGLONG)Pa.QuadPart & (AEROVBLK_PAGE_SIZE - 1))) &
                     (AEROVBLK_PAGE_SIZE - 1));
    Adapter->QueueMemory = Va + Adjust;
    Adapter->QueueMemoryPa = (ULONGLONG)Pa.QuadPart + Adjust;
    return TRUE;
}

/* Fallback when the full uncached extension is not available (a late PnP start on a
 * fragmented machine, facts §11.12): the same queue without indirect tables, which are
 * most of its size. Every request then takes a direct chain; the transfer limits stay
 * as planned (header + data + status <= queue size either way), only fewer large
 * requests fit in the ring at once. Logged once (0xA0B10A01). */
static BOOLEAN AerovblkAllocateSmallerQueueMemory(PAEROVBLK_ADAPTER Adapter,
                                                  PPORT_CONFIGURATION_INFORMATION ConfigInfo)
{
    if (Adapter->DumpMode || Adapter->IndirectMax == 0) {
        return FALSE;
    }
    Adapter->IndirectMax = 0;
    Adapter->QueueMemoryBytes = VblkQueueMemoryBytes(Adapter->QueueSize,
        (BOOLEAN)((Adapter->Features & VBLK_FEATURE(VIRTIO_F_EVENT_IDX)) != 0), 0, Adapter->SlotCount);
    if (Adapter->QueueMemoryBytes == 0 || !AerovblkAllocateQueueMemory(Adapter, ConfigInfo)) {
        return FALSE;
    }
    AerovblkLogError(Adapter, AEROVBLK_LOG_NO_MEMORY_REDUCED);
    return TRUE;
}

/*
 * HwFindAdapter. Caller: StorPort at PnP start, PASSIVE_LEVEL (DISPATCH when StorPort
 * re-initialises; HIGH_LEVEL in dump mode), no locks held.
 * Identity check, BAR mapping, first negotiation (to size memory), transfer limits,
 * uncached extension. The device is started in HwInitialize.
 */
static ULONG AerovblkFindAdapter(PAEROVBLK_ADAPTER Adapter, PCHAR ArgumentString,
                                 PPORT_CONFIGURATION_INFORMATION ConfigInfo, BOOLEAN DumpMode)
{
    VPCI_STATUS Status;
    VBLK_CONFIG Config;
    ULONG Read;

    /* A PnP rebalance (stop, start) runs HwFindAdapter again on this extension (facts
     * §11.9), and a DPC queued before the stop may still run, even now (StorPort does
     * not say it flushes DPCs at a stop; a shared INTx line can also call the ISR
     * before HwInitialize): the gate stays closed until HwInitialize has started the
     * device (on a fresh extension nobody can be inside yet), and what lies before Pci
     * (the gate, the DPC object, what StorPort gives only once) is never rewritten. */
    (void)AvInterlockedExchange(&Adapter->GateClosed, 1);
    AvZeroMemory(&Adapter->Pci, (ULONG)((PUCHAR)(Adapter + 1) - (PUCHAR)&Adapter->Pci));
    Adapter->DumpMode = (BOOLEAN)(DumpMode || AerovblkArgumentsSayDump(ArgumentString));
    Adapter->Pci.StallMicroseconds = AerovblkStall;
    Adapter->ConfigVector = VIRTIO_MSI_NO_VECTOR;
    Adapter->QueueVector = VIRTIO_MSI_NO_VECTOR;
    /* Serial of last resort (device without GET_ID data): stable per PCI location,
     * distinct between disks of one machine. */
    Adapter->Disk.FallbackSerial = (ConfigInfo->SystemIoBusNumber << 16) | (ConfigInfo->SlotNumber & 0xFFFF);

    Read = StorPortGetBusData(Adapter, PCIConfiguration, ConfigInfo->SystemIoBusNumber,
                              ConfigInfo->SlotNumber, Adapter->PciConfig, AEROVBLK_PCI_CONFIG_BYTES);
    if (Read < 64) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_BUS_DATA);
        return SP_RETURN_NOT_FOUND;
    }
    Status = VpciParseConfig(&Adapter->Pci, Adapter->PciConfig, Read);
    if (Status != VPCI_OK) {
        AerovblkLogTransportError(Adapter, Status == VPCI_ERR_IDENTITY ? AEROVBLK_LOG_WRONG_DEVICE :
                                  Status == VPCI_ERR_REVISION ? AEROVBLK_LOG_WRONG_REVISION :
                                                                AEROVBLK_LOG_BAD_CAPABILITIES);
        return SP_RETURN_NOT_FOUND;
    }
    if (!AerovblkMapBars(Adapter, ConfigInfo) || VpciMapRegions(&Adapter->Pci) != VPCI_OK) {
        AerovblkLogTransportError(Adapter, AEROVBLK_LOG_BAR_NOT_MAPPED);
        return SP_RETURN_ERROR;
    }

    Adapter->WantedFeatures = VblkWantedFeatures();
    if (!AerovblkNegotiate(Adapter, &Adapter->Features)) {
        return SP_RETURN_ERROR;
    }
    if (VblkReadConfig(&Adapter->Pci, Adapter->Features, &Config) != VPCI_OK) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_CONFIG);
        VpciFail(&Adapter->Pci);
        return SP_RETURN_ERROR;
    }
    /* Later (re)negotiations must get the same layout features again; the rest is
     * asked for afresh (a resumed device may have gained or lost RO, WCE, ...). */
    Adapter->WantedFeatures = (Adapter->WantedFeatures & ~AEROVBLK_LAYOUT_FEATURES) |
                              (Adapter->Features & AEROVBLK_LAYOUT_FEATURES);
    AerovblkApplyConfig(Adapter, &Config, TRUE);

    if (!AerovblkPlanQueue(Adapter, ConfigInfo, &Config)) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_QUEUE_SETUP);
        VpciFail(&Adapter->Pci);
        return SP_RETURN_ERROR;
    }

    ConfigInfo->NumberOfBuses = 1;
    ConfigInfo->MaximumNumberOfTargets = 1;
    ConfigInfo->MaximumNumberOfLogicalUnits = 1;
    ConfigInfo->ScatterGather = TRUE;
    ConfigInfo->Master = TRUE;
    /* The device takes unaligned buffers (contract); only a one-element-per-request
     * device needs Windows to align them (see AerovblkPlanQueue). */
    ConfigInfo->AlignmentMask = (Adapter->Disk.MaxDataBuffers <= 1 ||
                                 Adapter->Disk.MaxTransferBytes <= Adapter->Disk.BlockSize)
                                ? Adapter->Disk.BlockSize - 1 : 0;
    ConfigInfo->CachesData = (BOOLEAN)((Adapter->Features & VBLK_FEATURE(VIRTIO_BLK_F_FLUSH)) != 0);
    ConfigInfo->MapBuffers = STOR_MAP_NON_READ_WRITE_BUFFERS;
    ConfigInfo->SynchronizationModel = StorSynchronizeFullDuplex;
    if (ConfigInfo->Dma64BitAddresses == SCSI_DMA64_SYSTEM_SUPPORTED) {
        ConfigInfo->Dma64BitAddresses = SCSI_DMA64_MINIPORT_SUPPORTED;
    }
    if (!Adapter->DumpMode) {
        ConfigInfo->HwMSInterruptRoutine = AerovblkHwMsInterrupt;
        ConfigInfo->InterruptSynchronizationMode = InterruptSynchronizeAll;
    } else {
        /* The dump port may hand us the normal instance's saved ConfigInfo (facts
         * §11.8): say explicitly that there is no message routine, we are polled. */
        ConfigInfo->HwMSInterruptRoutine = NULL;
        ConfigInfo->InterruptSynchronizationMode = InterruptSupportNone;
    }

    if (!AerovblkAllocateQueueMemory(Adapter, ConfigInfo) && !AerovblkAllocateSmallerQueueMemory(Adapter, ConfigInfo)) {
        AerovblkLogError(Adapter, AEROVBLK_LOG_NO_MEMORY);
        VpciFail(&Adapter->Pci);
        return SP_RETURN_ERROR;
    }
    return SP_RETURN_FOUND;
}

/* HwFindAdapter for the normal instance (see AerovblkFindAdapter). */
static ULONG NTAPI AerovblkHwFindAdapter(PVOID DeviceExtension, PVOID HwContext, PVOID BusInformation,
                                         PCHAR ArgumentString, PPORT_CONFIGURATION_INFORMATION ConfigInfo,
                                         PBOOLEAN Reserved)
{
    AV_UNUSED(HwContext);
    AV_UNUSED(BusInformation);
    AV_UNUSED(Reserved);
    return AerovblkFindAdapter((PAEROVBLK_ADAPTER)DeviceExtension, ArgumentString, ConfigInfo, FALSE);
}

/* HwFindAdapter registered when DriverEntry ran with NULL arguments: the dump/hiber
 * instance. Caller: the dump port at HIGH_LEVEL, no locks held. A separate entry
 * point carries that fact without a global. */
static ULONG NTAPI AerovblkHwFindAdapterDump(PVOID DeviceExtension, PVOID HwContext, PVOID BusInformation,
                                             PCHAR ArgumentString, PPORT_CONFIGURATION_INFORMATION ConfigInfo,
                                             PBOOLEAN Reserved)
{
    AV_UNUSED(HwContext);
    AV_UNUSED(BusInformation);
    AV_UNUSED(Reserved);
    return AerovblkFindAdapter((PAEROVBLK_ADAPTER)DeviceExtension, ArgumentString, ConfigInfo, TRUE);
}

/*
 * HwInitialize. Caller: StorPort after HwFindAdapter, at DIRQL holding the interrupt
 * lock. Counts the MSI-X messages granted, assigns vectors, starts the device.
 */
static BOOLEAN NTAPI AerovblkHwInitialize(PVOID DeviceExtension)
{
    PAEROVBLK_ADAPTER Adapter = (PAEROVBLK_ADAPTER)DeviceExtension;
    BOOLEAN DiskChanged;

    Adapter->MessageCount = 0;
    if (!Adapter->DumpMode) {
        MESSAGE_INTERRUPT_INFORMATION Info;
        while (Adapter->MessageCount < 8 &&
               StorPortGetMSIInfo(Adapter, Adapter->MessageCount, &Info) == STOR_STATUS_SUCCESS) {
            Adapter->MessageCount++;
        }
    }
    /* Two or more messages: config on 0, queue on 1. One: shared (config changes are
     * then detected by config_generation in the DPC). None: INTx. */
    if (Adapter->MessageCount >= 2) {
        Adapter->ConfigVector = 0;
        Adapter->QueueVector = 1;
    } else if (Adapter->MessageCount == 1) {
        Adapter->ConfigVector = 0;
        Adapter->QueueVector = 0;
    } else {
        Adapter->ConfigVector = VIRTIO_MSI_NO_VECTOR;
        Adapter->QueueVector = VIRTIO_MSI_NO_VECTOR;
    }
    if (!AerovblkStartDevice(Adapter, TRUE, &DiskChanged)) {
        return FALSE;
    }
    AerovblkGateOpen(Adapter);   /* also after a PnP stop that followed ScsiStopAdapter */
    if (!Adapter->DumpMode && !Adapter->DpcReady) {
        /* Once per extension: after a rebalance the DPC exists and a second request
         * may be refused (ReactOS, facts §11.9). */
        return StorPortEnablePassiveInitialization(Adapter, AerovblkHwPassiveInitialize);
    }
    return TRUE;
}

/* Passive initialisation. Caller: StorPort after HwInitialize, PASSIVE_LEVEL, no
 * locks; never in dump mode. The completion DPC is initialised here [MS-IDPC]. */
static BOOLEAN NTAPI AerovblkHwPassiveInitialize(PVOID DeviceExtension)
{
    PAEROVBLK_ADAPTER Adapter = (PAEROVBLK_ADAPTER)DeviceExtension;
    StorPortInitializeDpc(Adapter, &Adapter->CompletionDpc, AerovblkCompletionDpc);
    Adapter->DpcReady = TRUE;
    return TRUE;
}

/* ----------------------------------------------------------------------------
 * DriverEntry
 * ------------------------------------------------------------------------- */

/*
 * DriverEntry. Caller: the I/O manager at PASSIVE_LEVEL for the normal instance; the
 * crash-dump stack with both arguments NULL for the dump_/hiber_ instance.
 * Returns what StorPortInitialize returned.
 */
ULONG NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath)
{
    HW_INITIALIZATION_DATA Init;
    BOOLEAN DumpInstance = (BOOLEAN)(DriverObject == NULL && RegistryPath == NULL);

    AvZeroMemory(&Init, sizeof(Init));
    Init.HwInitializationDataSize = sizeof(HW_INITIALIZATION_DATA);   /* Windows 7 size */
    Init.AdapterInterfaceType = PCIBus;
    Init.HwInitialize = AerovblkHwInitialize;
    Init.HwStartIo = AerovblkHwStartIo;
    Init.HwInterrupt = AerovblkHwInterrupt;
    Init.HwFindAdapter = DumpInstance ? AerovblkHwFindAdapterDump : AerovblkHwFindAdapter;
    Init.HwResetBus = AerovblkHwResetBus;
    Init.HwAdapterControl = AerovblkHwAdapterControl;
    Init.DeviceExtensionSize = sizeof(AEROVBLK_ADAPTER);
    Init.SpecificLuExtensionSize = 0;
    Init.SrbExtensionSize = sizeof(AEROVBLK_SRB_EXTENSION);
    Init.NumberOfAccessRanges = 6;      /* any BAR may hold a region */
    Init.MapBuffers = STOR_MAP_NON_READ_WRITE_BUFFERS;
    Init.NeedPhysicalAddresses = TRUE;
    Init.TaggedQueuing = TRUE;
    Init.AutoRequestSense = TRUE;
    Init.MultipleRequestPerLu = TRUE;
    return StorPortInitialize(DriverObject, RegistryPath, &Init, NULL);
}
