/*
 * SCSI translation: the commands the driver answers itself (TEST UNIT READY, START
 * STOP UNIT, REQUEST SENSE, REPORT LUNS, READ CAPACITY, INQUIRY and its VPD pages,
 * MODE SENSE/SELECT). INQUIRY VPD 80/83 only asks the device (GET_ID): scsi.c builds
 * the page when that completes. Rows of ScsiCommands[] (scsi.c), called by
 * ScsiStartSrb (HwStartIo: StartIo lock held, DISPATCH_LEVEL; dump mode: no lock).
 * No StorPort calls.
 */
#include "scsi_int.h"

/* ------------------------------------------------------------------ answered locally */

/* The write cache is switchable only with CONFIG_WCE and FLUSH (a device offering
 * CONFIG_WCE must offer FLUSH, spec 5.2.5; without it a cache could never be flushed). */
static BOOLEAN ScsiWceChangeable(const SCSI_DISK *Disk)
{
    return (BOOLEAN)(ScsiHas(Disk, VIRTIO_BLK_F_CONFIG_WCE) && ScsiHas(Disk, VIRTIO_BLK_F_FLUSH));
}

SCSI_ACTION ScsiCmdTestUnitReady(SCSI_CONTEXT *Ctx)
{
    return ScsiGoodNoData(Ctx);
}

/* PREVENT ALLOW MEDIUM REMOVAL: the medium is not removable; nothing to lock. */
SCSI_ACTION ScsiCmdMediumRemoval(SCSI_CONTEXT *Ctx)
{
    return ScsiGoodNoData(Ctx);
}

/* START STOP UNIT: no spindle; a stop (or standby) request flushes a volatile cache
 * first, as a real disk would before spinning down (SBC-3 5.19). */
SCSI_ACTION ScsiCmdStartStopUnit(SCSI_CONTEXT *Ctx)
{
    UCHAR PowerCondition = (UCHAR)(Ctx->Cdb[4] >> 4);
    BOOLEAN Stop = (BOOLEAN)((PowerCondition == 0 && (Ctx->Cdb[4] & 0x01) == 0) ||
                             PowerCondition == 0x3 || PowerCondition == 0xB);
    if (Stop) return ScsiFlushIfVolatile(Ctx);
    return ScsiGoodNoData(Ctx);
}

/* REQUEST SENSE (SPC-3 6.27): fixed format; a pending unit attention is reported here
 * (and cleared), otherwise NO SENSE (autosense already delivered every error). */
SCSI_ACTION ScsiCmdRequestSense(SCSI_CONTEXT *Ctx)
{
    UCHAR Sense[SCSI_SENSE_BYTES];
    if (Ctx->Cdb[1] & 0x01) return ScsiInvalidCdb(Ctx);      /* DESC: fixed format only */
    AvZeroMemory(Sense, sizeof(Sense));
    Sense[0] = SCSI_SENSE_ERRORCODE_FIXED_CURRENT;
    Sense[7] = SCSI_SENSE_BYTES - 8;
    if (Ctx->Disk->UnitAttentionPending) {
        Ctx->Disk->UnitAttentionPending = FALSE;
        Sense[2] = SCSI_SENSE_UNIT_ATTENTION;
        Sense[12] = SCSI_ADSENSE_PARAMETERS_CHANGED;
        Sense[13] = SCSI_SENSEQ_CAPACITY_DATA_CHANGED;
    }
    return ScsiReturnData(Ctx, Sense, sizeof(Sense), Ctx->Cdb[4]);
}

/* REPORT LUNS (SPC-3 6.21): LUN 0 only. */
SCSI_ACTION ScsiCmdReportLuns(SCSI_CONTEXT *Ctx)
{
    UCHAR Data[16];
    UCHAR Select = Ctx->Cdb[2];
    ULONG Allocation = ScsiGet32(Ctx->Cdb + 6);
    if (Allocation < 16 || Select > 2) return ScsiInvalidCdb(Ctx);
    AvZeroMemory(Data, sizeof(Data));
    /* SELECT REPORT 1 = well-known LUNs only: there are none. */
    ScsiPut32(Data, Select == 1 ? 0 : 8);
    return ScsiReturnData(Ctx, Data, Select == 1 ? 8 : 16, Allocation);
}

/* READ CAPACITY (10): 0xFFFFFFFF tells the host to use READ CAPACITY (16). */
SCSI_ACTION ScsiCmdReadCapacity10(SCSI_CONTEXT *Ctx)
{
    UCHAR Data[8];
    ULONGLONG Last = Ctx->Disk->BlockCount ? Ctx->Disk->BlockCount - 1 : 0;
    if ((Ctx->Cdb[8] & 0x01) == 0 && ScsiGet32(Ctx->Cdb + 2) != 0)
        return ScsiInvalidCdb(Ctx);                            /* LBA without PMI */
    ScsiPut32(Data, Last >= 0xFFFFFFFFULL ? 0xFFFFFFFFu : (ULONG)Last);
    ScsiPut32(Data + 4, Ctx->Disk->BlockSize);
    return ScsiReturnData(Ctx, Data, sizeof(Data), sizeof(Data));
}

/* SERVICE ACTION IN (16) / READ CAPACITY (16) (SBC-3 5.16). */
SCSI_ACTION ScsiCmdServiceActionIn16(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    UCHAR Data[32];
    ULONG Allocation = ScsiGet32(Ctx->Cdb + 10);
    if ((Ctx->Cdb[1] & 0x1F) != SERVICE_ACTION_READ_CAPACITY16) return ScsiInvalidCdb(Ctx);
    AvZeroMemory(Data, sizeof(Data));
    ScsiPut64(Data, Disk->BlockCount ? Disk->BlockCount - 1 : 0);
    ScsiPut32(Data + 8, Disk->BlockSize);
    if (ScsiHas(Disk, VIRTIO_BLK_F_TOPOLOGY)) {
        /* Spec 5.2.4 topology: log2(logical per physical), first aligned logical block. */
        Data[13] = (UCHAR)(Disk->Config.PhysicalBlockExp & 0x0F);
        Data[15] = Disk->Config.AlignmentOffset;
    }
    if (ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) Data[14] |= 0x80;   /* LBPME */
    return ScsiReturnData(Ctx, Data, sizeof(Data), Allocation);
}

static BOOLEAN ScsiProvisioningPage(const SCSI_DISK *Disk)
{
    return (BOOLEAN)(ScsiHas(Disk, VIRTIO_BLK_F_DISCARD) || ScsiHas(Disk, VIRTIO_BLK_F_WRITE_ZEROES));
}

/* Longest WRITE SAME the driver can carry in one request, in logical blocks. */
static ULONGLONG ScsiMaxWriteSameBlocks(const SCSI_DISK *Disk)
{
    ULONG PerBlock = ScsiSectorsPerBlock(Disk);
    ULONG Sectors, Segments;
    if (ScsiHas(Disk, VIRTIO_BLK_F_WRITE_ZEROES)) {
        Sectors = Disk->Config.MaxWriteZeroesSectors;
        Segments = Disk->Config.MaxWriteZeroesSeg;
    } else if (ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) {
        Sectors = Disk->Config.MaxDiscardSectors;
        Segments = Disk->Config.MaxDiscardSeg;
    } else {
        return 0;
    }
    if (Segments > VBLK_MAX_DISCARD_SEGMENTS) Segments = VBLK_MAX_DISCARD_SEGMENTS;
    return (ULONGLONG)(Sectors / PerBlock) * Segments;
}

/* VPD B0 block limits (SBC-3 6.5.3). */
static ULONG ScsiBuildBlockLimits(const SCSI_DISK *Disk, UCHAR *Page)
{
    ULONG PerBlock = ScsiSectorsPerBlock(Disk);
    ULONG MaxBlocks = ScsiMaxTransferBytes(Disk) / (Disk->BlockSize ? Disk->BlockSize : 512);
    Page[1] = VPD_BLOCK_LIMITS;
    ScsiPut16(Page + 2, 0x3C);
    Page[4] = 0x01;                                        /* WSNZ: WRITE SAME 0 blocks refused */
    if (ScsiHas(Disk, VIRTIO_BLK_F_TOPOLOGY)) {
        ULONG Granularity = Disk->Config.MinIoSize ? Disk->Config.MinIoSize
                                                   : (1u << Disk->Config.PhysicalBlockExp);
        ScsiPut16(Page + 6, Granularity > 0xFFFF ? 0xFFFF : Granularity);
        ScsiPut32(Page + 12, Disk->Config.OptIoSize > MaxBlocks ? MaxBlocks : Disk->Config.OptIoSize);
    }
    ScsiPut32(Page + 8, MaxBlocks);
    if (ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) {
        ULONG Descriptors = ScsiMaxDiscardSegments(Disk);
        ULONG Alignment = Disk->Config.DiscardSectorAlignment / PerBlock;
        ScsiPut32(Page + 20, Disk->Config.MaxDiscardSectors / PerBlock);
        ScsiPut32(Page + 24, Descriptors);
        ScsiPut32(Page + 28, Disk->Config.DiscardSectorAlignment ? (Alignment ? Alignment : 1) : 0);
    }
    ScsiPut64(Page + 36, ScsiMaxWriteSameBlocks(Disk));
    return 64;
}

/* INQUIRY (SPC-3 6.4): standard data or a VPD page. */
SCSI_ACTION ScsiCmdInquiry(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    UCHAR Page[SCSI_RESPONSE_MAX];
    ULONG Allocation = ScsiGet16(Ctx->Cdb + 3);
    UCHAR Code = Ctx->Cdb[2];
    ULONG Length;

    if (Ctx->Cdb[1] & 0x02) return ScsiInvalidCdb(Ctx);          /* CMDDT (obsolete) */
    AvZeroMemory(Page, sizeof(Page));
    if ((Ctx->Cdb[1] & 0x01) == 0) {
        static const char Identity[] = SCSI_INQUIRY_VENDOR SCSI_INQUIRY_PRODUCT SCSI_INQUIRY_REVISION;
        if (Code != 0) return ScsiInvalidCdb(Ctx);
        Page[0] = 0x00;                 /* connected direct-access block device */
        Page[2] = 0x05;                 /* SPC-3 */
        Page[3] = 0x02;                 /* response data format 2 */
        Page[4] = SCSI_INQUIRY_STD_BYTES - 5;
        Page[7] = 0x02;                 /* CmdQue: tagged queuing */
        AvCopyMemory(Page + 8, Identity, 28);
        ScsiPut16(Page + 58, 0x0060);   /* version descriptors: SAM-3, SPC-3, SBC-3 */
        ScsiPut16(Page + 60, 0x0300);
        ScsiPut16(Page + 62, 0x04C0);
        return ScsiReturnData(Ctx, Page, SCSI_INQUIRY_STD_BYTES, Allocation);
    }

    Page[1] = Code;
    switch (Code) {
    case VPD_SUPPORTED_PAGES:
        Length = 4;
        Page[Length++] = VPD_SUPPORTED_PAGES;
        Page[Length++] = VPD_SERIAL_NUMBER;
        Page[Length++] = VPD_DEVICE_IDENTIFIERS;
        Page[Length++] = VPD_BLOCK_LIMITS;
        Page[Length++] = VPD_BLOCK_DEVICE_CHARACTERISTICS;
        if (ScsiProvisioningPage(Disk)) Page[Length++] = VPD_LOGICAL_BLOCK_PROVISIONING;
        ScsiPut16(Page + 2, Length - 4);
        break;
    case VPD_SERIAL_NUMBER:
    case VPD_DEVICE_IDENTIFIERS:
        /* Both derive from the device id: fetch it, the page is built on completion. */
        ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_GET_ID, SCSI_STAGE_GET_ID);
        Ctx->State->Blk.PayloadLength = VIRTIO_BLK_ID_BYTES;
        return ScsiSubmit(Ctx);
    case VPD_BLOCK_LIMITS:
        Length = ScsiBuildBlockLimits(Disk, Page);
        break;
    case VPD_BLOCK_DEVICE_CHARACTERISTICS:
        ScsiPut16(Page + 2, 0x3C);
        ScsiPut16(Page + 4, 0x0001);    /* MEDIUM ROTATION RATE: non-rotating */
        Length = 64;
        break;
    case VPD_LOGICAL_BLOCK_PROVISIONING:
        if (!ScsiProvisioningPage(Disk)) return ScsiInvalidCdb(Ctx);
        ScsiPut16(Page + 2, 4);
        if (ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) Page[5] |= 0x80;         /* LBPU */
        if (ScsiHas(Disk, VIRTIO_BLK_F_WRITE_ZEROES))
            Page[5] |= 0x60;            /* LBPWS, LBPWS10: WRITE SAME with UNMAP reads back zeroes */
        Page[6] = ScsiHas(Disk, VIRTIO_BLK_F_DISCARD) ? 0x02 : 0x00;       /* thin provisioned */
        Length = 8;
        break;
    default:
        return ScsiInvalidCdb(Ctx);
    }
    return ScsiReturnData(Ctx, Page, Length, Allocation);
}

/* Caching mode page (SBC-3 6.4.5), 20 bytes: WCE is the only field with meaning. */
static ULONG ScsiBuildCachingPage(const SCSI_DISK *Disk, UCHAR PageControl, UCHAR *Page)
{
    Page[0] = MODE_PAGE_CACHING;
    Page[1] = 0x12;
    if (PageControl == 1)               /* changeable: WCE when CONFIG_WCE was negotiated */
        Page[2] = ScsiWceChangeable(Disk) ? 0x04 : 0x00;
    else                                /* current; default = current (reset value unknown) */
        Page[2] = ScsiVolatileCache(Disk) ? 0x04 : 0x00;
    return 20;
}

/* MODE SENSE 6/10 (SPC-3 6.9/6.10): pages 08 and 3F. */
SCSI_ACTION ScsiCmdModeSense(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    const UCHAR *Cdb = Ctx->Cdb;
    BOOLEAN Is10 = (BOOLEAN)(Cdb[0] == SCSIOP_MODE_SENSE10);
    BOOLEAN Dbd = (BOOLEAN)((Cdb[1] & 0x08) != 0);
    BOOLEAN LongLba = (BOOLEAN)(Is10 && (Cdb[1] & 0x10) != 0);
    UCHAR PageControl = (UCHAR)(Cdb[2] >> 6);
    UCHAR PageCode = (UCHAR)(Cdb[2] & 0x3F);
    UCHAR Subpage = Cdb[3];
    ULONG Allocation = Is10 ? ScsiGet16(Cdb + 7) : Cdb[4];
    ULONG Header = Is10 ? 8 : 4;
    ULONG Length = Header, BlockDescriptor = 0;
    UCHAR Data[64];
    UCHAR DeviceSpecific;

    if (PageControl == 3)
        return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_SAVING_PARAMS_NOT_SUPPORTED, 0);
    if (PageCode != MODE_PAGE_CACHING && PageCode != MODE_SENSE_RETURN_ALL) return ScsiInvalidCdb(Ctx);
    if (Subpage != 0 && !(PageCode == MODE_SENSE_RETURN_ALL && Subpage == 0xFF))
        return ScsiInvalidCdb(Ctx);

    AvZeroMemory(Data, sizeof(Data));
    if (!Dbd) {
        UCHAR *D = Data + Header;
        BlockDescriptor = LongLba ? 16 : 8;
        if (LongLba) {
            ScsiPut64(D, Disk->BlockCount);
            ScsiPut32(D + 12, Disk->BlockSize);
        } else {
            /* SBC-3 short descriptor: 0xFFFFFFFF when the count does not fit. */
            ScsiPut32(D, Disk->BlockCount > 0xFFFFFFFFULL ? 0xFFFFFFFFu : (ULONG)Disk->BlockCount);
            ScsiPut32(D + 4, Disk->BlockSize & 0x00FFFFFFu);
        }
        Length += BlockDescriptor;
    }
    Length += ScsiBuildCachingPage(Disk, PageControl, Data + Length);

    /* Device-specific parameter: WP when read-only; DPOFUA because FUA is always
     * honoured (write-through device, or write then FLUSH). */
    DeviceSpecific = (UCHAR)(0x10 | (ScsiHas(Disk, VIRTIO_BLK_F_RO) ? 0x80 : 0x00));
    if (Is10) {
        ScsiPut16(Data, Length - 2);
        Data[3] = DeviceSpecific;
        Data[4] = LongLba ? 0x01 : 0x00;
        ScsiPut16(Data + 6, BlockDescriptor);
    } else {
        Data[0] = (UCHAR)(Length - 1);
        Data[2] = DeviceSpecific;
        Data[3] = (UCHAR)BlockDescriptor;
    }
    return ScsiReturnData(Ctx, Data, Length, Allocation);
}

/* MODE SELECT 6/10 (SPC-3 6.7/6.8) of the caching page: WCE -> CONFIG_WCE writeback.
 * SP is accepted (the setting lasts until the device resets; nothing to save). */
SCSI_ACTION ScsiCmdModeSelect(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    const UCHAR *Cdb = Ctx->Cdb;
    BOOLEAN Is10 = (BOOLEAN)(Cdb[0] == SCSIOP_MODE_SELECT10);
    ULONG ParameterLength = Is10 ? ScsiGet16(Cdb + 7) : Cdb[4];
    ULONG Header = Is10 ? 8 : 4;
    ULONG BlockDescriptors, Offset, i;
    const UCHAR *Parameters;
    UCHAR Data[64];
    BOOLEAN Wce, WasVolatile;

    if ((Cdb[1] & 0x10) == 0) return ScsiInvalidCdb(Ctx);    /* PF: only standard pages */
    if (ParameterLength == 0) {
        if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
        return ScsiGoodNoData(Ctx);
    }
    if (ParameterLength < Header || ParameterLength > sizeof(Data))
        return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_PARAMETER_LIST_LENGTH, 0);
    Parameters = ScsiParameterData(Ctx, ParameterLength);
    if (Parameters == NULL) return SCSI_ACTION_COMPLETE;
    AvCopyMemory(Data, Parameters, ParameterLength);          /* read the buffer once */

    BlockDescriptors = Is10 ? ScsiGet16(Data + 6) : Data[3];
    if (BlockDescriptors > ParameterLength - Header) return ScsiInvalidParameter(Ctx);
    /* A short block descriptor cannot reformat the disk: its block length may only be
     * 0, the current one, or 512 (what NT-lineage disk.sys always puts there, even on a
     * 4 KiB-block disk when it toggles the write cache). */
    if (BlockDescriptors == 8) {
        ULONG BlockLength = ScsiGet32(Data + Header + 4) & 0x00FFFFFFu;
        if (BlockLength != 0 && BlockLength != 512 && BlockLength != Disk->BlockSize)
            return ScsiInvalidParameter(Ctx);
    }

    Offset = Header + BlockDescriptors;
    if (Offset == ParameterLength) return ScsiGoodNoData(Ctx);   /* no page: nothing to do */
    /* Exactly one caching page, PS bit ignored, subpage format refused. */
    if (ParameterLength - Offset != 20 || (Data[Offset] & 0x7F) != MODE_PAGE_CACHING ||
        Data[Offset + 1] != 0x12)
        return ScsiInvalidParameter(Ctx);
    /* Every field but WCE is not changeable and is 0: a different value is refused. */
    if (Data[Offset + 2] & ~0x04) return ScsiInvalidParameter(Ctx);
    for (i = Offset + 3; i < ParameterLength; i++)
        if (Data[i] != 0) return ScsiInvalidParameter(Ctx);

    Wce = (BOOLEAN)((Data[Offset + 2] & 0x04) != 0);
    WasVolatile = ScsiVolatileCache(Disk);
    if (Wce == WasVolatile) return ScsiGoodNoData(Ctx);
    if (!ScsiWceChangeable(Disk)) return ScsiInvalidParameter(Ctx);
    if (!VblkSetWriteback(Disk->Device, (UCHAR)Wce))
        return ScsiFail(Ctx, SCSI_SENSE_HARDWARE_ERROR, SCSI_ADSENSE_INTERNAL_TARGET_FAILURE, 0);
    Disk->Config.Writeback = (UCHAR)Wce;
    /* Writeback -> writethrough does not make earlier cached writes stable (spec
     * 5.2.6.3): flush them before reporting the change. */
    if (WasVolatile && !Wce) {
        Ctx->Srb->DataTransferLength = 0;
        return ScsiSubmitFlush(Ctx);
    }
    return ScsiGoodNoData(Ctx);
}
