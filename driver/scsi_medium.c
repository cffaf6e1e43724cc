/*
 * SCSI translation: the medium commands other than READ/WRITE: VERIFY (range check
 * only), SYNCHRONIZE CACHE (FLUSH), UNMAP and WRITE SAME (virtio DISCARD / WRITE
 * ZEROES segments, spec 5.2.6). Rows of ScsiCommands[] (scsi.c), called by
 * ScsiStartSrb (HwStartIo: StartIo lock held, DISPATCH_LEVEL; dump mode: no lock).
 * No StorPort calls.
 */
#include "scsi_int.h"

/* VERIFY 10/12/16 (BYTCHK 0 only): range check; the virtual medium has no separate
 * verification to run. */
SCSI_ACTION ScsiCmdVerify(SCSI_CONTEXT *Ctx)
{
    ULONGLONG Lba;
    ULONG Blocks;
    if (Ctx->Cdb[1] & 0xE6) return ScsiInvalidCdb(Ctx);   /* VRPROTECT, BYTCHK */
    ScsiDecodeRange(Ctx->Cdb, &Lba, &Blocks);
    if (!ScsiRangeValid(Ctx->Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
    if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
    return ScsiGoodNoData(Ctx);
}

SCSI_ACTION ScsiCmdSynchronizeCache(SCSI_CONTEXT *Ctx)
{
    ULONGLONG Lba;
    ULONG Blocks;
    if (Ctx->Cdb[0] == SCSIOP_SYNCHRONIZE_CACHE16) {
        Lba = ScsiGet64(Ctx->Cdb + 2);
        Blocks = ScsiGet32(Ctx->Cdb + 10);
    } else {
        Lba = ScsiGet32(Ctx->Cdb + 2);
        Blocks = ScsiGet16(Ctx->Cdb + 7);
    }
    /* Blocks 0 = to the end of the medium; IMMED is honoured by waiting (allowed). */
    if (!ScsiRangeValid(Ctx->Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
    if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
    return ScsiFlushIfVolatile(Ctx);
}

/* Splits [Sector, Sector + Sectors) into discard / write-zeroes segments (spec 5.2.6,
 * little-endian struct virtio_blk_discard_write_zeroes) of at most MaxSectors each.
 * MaxSectors is rounded down to whole logical blocks. FALSE if more than MaxSegments
 * are needed. */
static BOOLEAN ScsiAddSegments(SCSI_CONTEXT *Ctx, ULONGLONG Sector, ULONGLONG Sectors,
                               ULONG MaxSectors, ULONG MaxSegments, ULONG Flags)
{
    VBLK_REQUEST *Blk = &Ctx->State->Blk;
    ULONG PerBlock = ScsiSectorsPerBlock(Ctx->Disk);
    ULONG Limit = MaxSectors - MaxSectors % PerBlock;

    if (MaxSegments > VBLK_MAX_DISCARD_SEGMENTS) MaxSegments = VBLK_MAX_DISCARD_SEGMENTS;
    if (Limit == 0) return FALSE;
    while (Sectors != 0) {
        ULONG Count = Blk->PayloadLength / VBLK_SEGMENT_BYTES;
        ULONG Piece = Sectors > Limit ? Limit : (ULONG)Sectors;
        UCHAR *Segment = Blk->Payload + Blk->PayloadLength;
        if (Count >= MaxSegments) return FALSE;
        ScsiPutLe64(Segment, Sector);
        ScsiPutLe32(Segment + 8, Piece);
        ScsiPutLe32(Segment + 12, Flags);
        Blk->PayloadLength += VBLK_SEGMENT_BYTES;
        Sector += Piece;
        Sectors -= Piece;
    }
    return TRUE;
}

/* UNMAP (SBC-3 5.25) -> VIRTIO_BLK_T_DISCARD. */
SCSI_ACTION ScsiCmdUnmap(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    ULONG ParameterLength = ScsiGet16(Ctx->Cdb + 7);
    ULONG MaxDescriptors, DescriptorBytes, Descriptors, i;
    ULONGLONG MaxBlocks;
    const UCHAR *Parameters;
    UCHAR Header[8];

    if (!ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) return ScsiInvalidOpcode(Ctx);
    if (Ctx->Cdb[1] & 0x01) return ScsiInvalidCdb(Ctx);          /* ANCHOR */
    if (ParameterLength == 0) {
        if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
        return ScsiGoodNoData(Ctx);                              /* SBC-3: not an error */
    }
    if (ParameterLength < 8)
        return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_PARAMETER_LIST_LENGTH, 0);
    Parameters = ScsiParameterData(Ctx, ParameterLength);
    if (Parameters == NULL) return SCSI_ACTION_COMPLETE;

    /* Each byte of the (possibly user-mapped) buffer is read once into locals. */
    AvCopyMemory(Header, Parameters, sizeof(Header));
    DescriptorBytes = ScsiGet16(Header + 2);
    if (DescriptorBytes > ParameterLength - 8) return ScsiInvalidParameter(Ctx);
    Descriptors = DescriptorBytes / 16;                          /* partial one ignored */
    MaxDescriptors = ScsiMaxDiscardSegments(Disk);
    if (Descriptors > MaxDescriptors) return ScsiInvalidParameter(Ctx);
    MaxBlocks = Disk->Config.MaxDiscardSectors / ScsiSectorsPerBlock(Disk);

    ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_DISCARD, SCSI_STAGE_IO);
    for (i = 0; i < Descriptors; i++) {
        UCHAR Descriptor[16];
        ULONGLONG Lba;
        ULONG Blocks;
        AvCopyMemory(Descriptor, Parameters + 8 + i * 16, sizeof(Descriptor));
        Lba = ScsiGet64(Descriptor);
        Blocks = ScsiGet32(Descriptor + 8);
        if (Blocks == 0) continue;                               /* SBC-3: not an error */
        if (!ScsiRangeValid(Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
        if (Blocks > MaxBlocks) return ScsiInvalidParameter(Ctx); /* beyond VPD B0 limit */
        if (!ScsiAddSegments(Ctx, Lba * ScsiSectorsPerBlock(Disk),
                             (ULONGLONG)Blocks * ScsiSectorsPerBlock(Disk),
                             Disk->Config.MaxDiscardSectors, MaxDescriptors, 0))
            return ScsiInvalidParameter(Ctx);
    }
    if (Ctx->State->Blk.PayloadLength == 0) return ScsiGoodNoData(Ctx);
    return ScsiSubmit(Ctx);
}

static BOOLEAN ScsiAllZero(const UCHAR *Data, ULONG Length)
{
    ULONG i;
    for (i = 0; i < Length; i++)
        if (Data[i] != 0) return FALSE;
    return TRUE;
}

/* WRITE SAME 10/16 (SBC-3 5.41/5.42) for an all-zero block: WRITE_ZEROES (its unmap
 * flag from the UNMAP bit), or DISCARD when only that exists and UNMAP is set. */
SCSI_ACTION ScsiCmdWriteSame(SCSI_CONTEXT *Ctx)
{
    SCSI_DISK *Disk = Ctx->Disk;
    const UCHAR *Cdb = Ctx->Cdb;
    BOOLEAN Is16 = (BOOLEAN)(Cdb[0] == SCSIOP_WRITE_SAME16);
    BOOLEAN Unmap = (BOOLEAN)((Cdb[1] & 0x08) != 0);
    BOOLEAN NoDataOut = (BOOLEAN)(Is16 && (Cdb[1] & 0x01) != 0);   /* NDOB: zeroes */
    ULONGLONG Lba = Is16 ? ScsiGet64(Cdb + 2) : ScsiGet32(Cdb + 2);
    ULONG Blocks = Is16 ? ScsiGet32(Cdb + 10) : ScsiGet16(Cdb + 7);
    ULONG PerBlock = ScsiSectorsPerBlock(Disk);
    BOOLEAN Zeroes = ScsiHas(Disk, VIRTIO_BLK_F_WRITE_ZEROES);

    if (!Zeroes && !ScsiHas(Disk, VIRTIO_BLK_F_DISCARD)) return ScsiInvalidOpcode(Ctx);
    /* WRPROTECT, ANCHOR, PBDATA/LBDATA (no generated patterns), RELADR (WRITE SAME 10) */
    if ((Cdb[1] & 0xF6) || (!Is16 && (Cdb[1] & 0x01))) return ScsiInvalidCdb(Ctx);
    if (!Zeroes && !Unmap) return ScsiInvalidCdb(Ctx);  /* only the discard form exists */
    if (Blocks == 0) return ScsiInvalidCdb(Ctx);          /* WSNZ = 1 in VPD B0 */
    if (!ScsiRangeValid(Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
    if (NoDataOut) {
        if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
    } else {
        const UCHAR *Pattern = ScsiParameterData(Ctx, Disk->BlockSize);
        if (Pattern == NULL) return SCSI_ACTION_COMPLETE;
        if (!ScsiAllZero(Pattern, Disk->BlockSize)) return ScsiInvalidParameter(Ctx);
    }
    if (Zeroes) {
        ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_WRITE_ZEROES, SCSI_STAGE_IO);
        if (!ScsiAddSegments(Ctx, Lba * PerBlock, (ULONGLONG)Blocks * PerBlock,
                             Disk->Config.MaxWriteZeroesSectors, Disk->Config.MaxWriteZeroesSeg,
                             Unmap ? VBLK_SEGMENT_FLAG_UNMAP : 0))
            return ScsiInvalidCdb(Ctx);                   /* beyond MAXIMUM WRITE SAME LENGTH */
    } else {
        ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_DISCARD, SCSI_STAGE_IO);
        if (!ScsiAddSegments(Ctx, Lba * PerBlock, (ULONGLONG)Blocks * PerBlock,
                             Disk->Config.MaxDiscardSectors, Disk->Config.MaxDiscardSeg, 0))
            return ScsiInvalidCdb(Ctx);
    }
    return ScsiSubmit(Ctx);
}
