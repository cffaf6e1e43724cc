/*
 * SCSI translation: the CDBs Windows' disk stack sends, answered by the driver or
 * turned into virtio-blk requests, and virtio completions turned back into SRB status
 * and sense. The command set is the table ScsiCommands[] below (one row per opcode,
 * documented in docs/scsi-commands.md). No StorPort calls: the same object runs in the
 * driver, the unit tests and the libFuzzer harness.
 *
 * Rules kept everywhere (issue 5 section 2; SPC-3 / SBC-3 for the SCSI side):
 *  - READ/WRITE data only through the scatter/gather list: DataBuffer is never
 *    dereferenced for them (on Windows it may be unmapped, facts section 10.13).
 *    Commands the driver answers itself, or whose parameter data it parses, use
 *    DataBuffer (the glue sets MapBuffers = STOR_MAP_NON_READ_WRITE_BUFFERS).
 *  - DataTransferLength never grows; on any error it becomes 0.
 *  - Sense goes only into the SRB's own SenseInfoBuffer (no adapter-wide "last sense").
 *  - Short responses: DataTransferLength = bytes returned, SRB_STATUS_SUCCESS (see
 *    SCSI_UNDERRUN_STATUS and docs/scsi-commands.md for why not DATA_OVERRUN).
 */
#include "scsixlat.h"

/* ------------------------------------------------------------------ local names */
/* Everything below is in the WDK's scsi.h / storport.h; kept under #ifndef so a WDK
 * that lacks one still builds. */
#ifndef SCSI_ADSENSE_SAVING_PARAMS_NOT_SUPPORTED
#define SCSI_ADSENSE_SAVING_PARAMS_NOT_SUPPORTED 0x39
#endif
#ifndef SCSI_SENSEQ_CAPACITY_DATA_CHANGED
#define SCSI_SENSEQ_CAPACITY_DATA_CHANGED 0x09
#endif
#ifndef SCSIOP_WRITE_SAME16
#define SCSIOP_WRITE_SAME16 0x93
#endif
#ifndef SERVICE_ACTION_READ_CAPACITY16
#define SERVICE_ACTION_READ_CAPACITY16 0x10
#endif

/* Status for a response shorter than the caller's buffer. Windows' classpnp accepts
 * DATA_OVERRUN-as-underrun for INQUIRY and MODE SENSE only (facts section 8), while
 * StorPort maps it to STATUS_BUFFER_OVERFLOW, which fails NT_SUCCESS for any caller
 * that does not special-case it; DataTransferLength carries the real length either way. */
#define SCSI_UNDERRUN_STATUS SRB_STATUS_SUCCESS

/* State->Stage */
#define SCSI_STAGE_NONE      0
#define SCSI_STAGE_IO        1   /* one device request, status mapped on completion */
#define SCSI_STAGE_FUA_WRITE 2   /* write done -> FLUSH next (volatile cache) */
#define SCSI_STAGE_FLUSH     3   /* FLUSH (SYNC CACHE, FUA 2nd stage, STOP, MODE SELECT WCE 1->0) */
#define SCSI_STAGE_GET_ID    4   /* GET_ID for VPD 80/83 */

#define SCSI_SENSE_BYTES     18
#define SCSI_RESPONSE_MAX    128   /* largest page the driver builds (INQUIRY: 96) */
#define SCSI_SERIAL_MAX      VIRTIO_BLK_ID_BYTES
#define SCSI_NAA_LOCAL       3     /* NAA locally assigned (SPC-3 7.6.3.6.2) */

/* Command flags */
#define SCSI_CMD_UA_EXEMPT   0x01  /* not blocked by a pending unit attention (SPC-3 5.9.7) */
#define SCSI_CMD_WRITES      0x02  /* modifies the medium: DATA PROTECT when read-only */
#define SCSI_CMD_MEDIUM      0x04  /* needs a medium: NOT READY 02/3A/00 on a zero-capacity disk */
#define SCSI_CMD_VERIFY      0x08  /* WRITE AND VERIFY: written through (a FUA write) */

typedef struct _SCSI_CONTEXT {
    SCSI_DISK *Disk;
    PSCSI_REQUEST_BLOCK Srb;
    PSTOR_SCATTER_GATHER_LIST Sg;
    SCSI_REQUEST_STATE *State;
    const UCHAR *Cdb;
    UCHAR Flags;                  /* SCSI_CMD_* of the command's row */
} SCSI_CONTEXT;

typedef SCSI_ACTION (*SCSI_HANDLER)(SCSI_CONTEXT *Ctx);

typedef struct _SCSI_COMMAND {
    UCHAR Opcode;
    UCHAR CdbLength;
    UCHAR Flags;
    SCSI_HANDLER Handler;
} SCSI_COMMAND;

/* ------------------------------------------------------------------ byte helpers */

static ULONG ScsiGet16(const UCHAR *P) { return ((ULONG)P[0] << 8) | P[1]; }
static ULONG ScsiGet32(const UCHAR *P)
{
    return ((ULONG)P[0] << 24) | ((ULONG)P[1] << 16) | ((ULONG)P[2] << 8) | P[3];
}
static ULONGLONG ScsiGet64(const UCHAR *P)
{
    return ((ULONGLONG)ScsiGet32(P) << 32) | ScsiGet32(P + 4);
}
static void ScsiPut16(UCHAR *P, ULONG V) { P[0] = (UCHAR)(V >> 8); P[1] = (UCHAR)V; }
static void ScsiPut32(UCHAR *P, ULONG V)
{
    P[0] = (UCHAR)(V >> 24); P[1] = (UCHAR)(V >> 16); P[2] = (UCHAR)(V >> 8); P[3] = (UCHAR)V;
}
static void ScsiPut64(UCHAR *P, ULONGLONG V)
{
    ScsiPut32(P, (ULONG)(V >> 32));
    ScsiPut32(P + 4, (ULONG)V);
}
static void ScsiPutLe32(UCHAR *P, ULONG V)
{
    P[0] = (UCHAR)V; P[1] = (UCHAR)(V >> 8); P[2] = (UCHAR)(V >> 16); P[3] = (UCHAR)(V >> 24);
}
static void ScsiPutLe64(UCHAR *P, ULONGLONG V)
{
    ScsiPutLe32(P, (ULONG)V);
    ScsiPutLe32(P + 4, (ULONG)(V >> 32));
}

static BOOLEAN ScsiHas(const SCSI_DISK *Disk, ULONG Bit)
{
    return (BOOLEAN)((Disk->Features & VBLK_FEATURE(Bit)) != 0);
}

/* 512-byte sectors per logical block (BlockSize is validated: power of two >= 512). */
static ULONG ScsiSectorsPerBlock(const SCSI_DISK *Disk)
{
    return Disk->BlockSize >= 512 ? Disk->BlockSize / 512 : 1;
}

/* Discard segments one request may carry: the device's limit and our payload's. */
static ULONG ScsiMaxDiscardSegments(const SCSI_DISK *Disk)
{
    return Disk->Config.MaxDiscardSeg < VBLK_MAX_DISCARD_SEGMENTS ? Disk->Config.MaxDiscardSeg
                                                                  : VBLK_MAX_DISCARD_SEGMENTS;
}

/* The write cache is switchable only with CONFIG_WCE and FLUSH (a device offering
 * CONFIG_WCE must offer FLUSH, spec 5.2.5; without it a cache could never be flushed). */
static BOOLEAN ScsiWceChangeable(const SCSI_DISK *Disk)
{
    return (BOOLEAN)(ScsiHas(Disk, VIRTIO_BLK_F_CONFIG_WCE) && ScsiHas(Disk, VIRTIO_BLK_F_FLUSH));
}

static BOOLEAN ScsiVolatileCache(const SCSI_DISK *Disk)
{
    return VblkHasVolatileCache(Disk->Features, &Disk->Config);
}

static ULONG ScsiMaxTransferBytes(const SCSI_DISK *Disk)
{
    if (Disk->MaxTransferBytes != 0) return Disk->MaxTransferBytes;
    return (ULONG)(VBLK_MAX_DATA_BUFFERS - 1) * 4096u;
}

/* ------------------------------------------------------------------ completion status */

/*
 * Who: this file, and the glue (HwStartIo / DPC) for requests it must refuse itself.
 * Fixed-format sense (SPC-3 4.5.3) into the SRB's own buffer, at most
 * SenseInfoBufferLength bytes (which is then updated to the bytes written, as the SRB
 * documentation asks for a short sense transfer). AUTOSENSE_VALID only if written.
 */
void ScsiSetCheckCondition(PSCSI_REQUEST_BLOCK Srb, UCHAR SenseKey, UCHAR Asc, UCHAR Ascq)
{
    UCHAR Sense[SCSI_SENSE_BYTES];
    ULONG Length;

    Srb->ScsiStatus = SCSISTAT_CHECK_CONDITION;
    Srb->SrbStatus = SRB_STATUS_ERROR;
    Srb->DataTransferLength = 0;
    if (Srb->SenseInfoBuffer == NULL || Srb->SenseInfoBufferLength == 0 ||
        (Srb->SrbFlags & SRB_FLAGS_DISABLE_AUTOSENSE) != 0)
        return;

    AvZeroMemory(Sense, sizeof(Sense));
    Sense[0] = SCSI_SENSE_ERRORCODE_FIXED_CURRENT;
    Sense[2] = (UCHAR)(SenseKey & 0x0F);
    Sense[7] = SCSI_SENSE_BYTES - 8;          /* additional sense length */
    Sense[12] = Asc;
    Sense[13] = Ascq;
    Length = Srb->SenseInfoBufferLength < SCSI_SENSE_BYTES ? Srb->SenseInfoBufferLength
                                                           : SCSI_SENSE_BYTES;
    AvCopyMemory(Srb->SenseInfoBuffer, Sense, Length);
    Srb->SenseInfoBufferLength = (UCHAR)Length;
    Srb->SrbStatus = SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID;
}

static SCSI_ACTION ScsiGood(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->SrbStatus = SRB_STATUS_SUCCESS;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    return SCSI_ACTION_COMPLETE;
}

/* A command with no data phase completing successfully transfers nothing. */
static SCSI_ACTION ScsiGoodNoData(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->DataTransferLength = 0;
    return ScsiGood(Ctx);
}

/* CHECK CONDITION with counting: LBA out of range, or any other ILLEGAL REQUEST /
 * DATA PROTECT (requests the driver refused). */
static SCSI_ACTION ScsiFail(SCSI_CONTEXT *Ctx, UCHAR SenseKey, UCHAR Asc, UCHAR Ascq)
{
    if (SenseKey == SCSI_SENSE_ILLEGAL_REQUEST && Asc == SCSI_ADSENSE_ILLEGAL_BLOCK)
        Ctx->Disk->ErrorsOutOfRange++;
    else if (SenseKey == SCSI_SENSE_ILLEGAL_REQUEST || SenseKey == SCSI_SENSE_DATA_PROTECT)
        Ctx->Disk->ErrorsInvalidRequest++;
    ScsiSetCheckCondition(Ctx->Srb, SenseKey, Asc, Ascq);
    return SCSI_ACTION_COMPLETE;
}

static SCSI_ACTION ScsiInvalidCdb(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_INVALID_CDB, 0);
}

static SCSI_ACTION ScsiInvalidParameter(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_INVALID_FIELD_PARAMETER_LIST, 0);
}

static SCSI_ACTION ScsiOutOfRange(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_ILLEGAL_BLOCK, 0);
}

static SCSI_ACTION ScsiInvalidOpcode(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_ILLEGAL_COMMAND, 0);
}

/* SRB-level refusal (bad addressing, no SG list, SG list that cannot be carried):
 * a port/transport problem rather than a SCSI one, so no sense. */
static SCSI_ACTION ScsiSrbFail(SCSI_CONTEXT *Ctx, UCHAR SrbStatus)
{
    Ctx->Disk->ErrorsInvalidRequest++;
    Ctx->Srb->SrbStatus = SrbStatus;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    Ctx->Srb->DataTransferLength = 0;
    return SCSI_ACTION_COMPLETE;
}

/* The SRB's buffer does not match what the CDB describes: refuse rather than over- or
 * under-run it (issue 5 section 2). */
static SCSI_ACTION ScsiLengthMismatch(SCSI_CONTEXT *Ctx)
{
    return ScsiInvalidCdb(Ctx);
}

/*
 * The ONE mapping of a device outcome to SRB status + sense (issue 5 section 3).
 * Type is the virtio request type that produced Status (reads map to 11/00,
 * everything that writes the medium, FLUSH included, to 0C/00).
 */
static SCSI_ACTION ScsiMapDeviceStatus(SCSI_CONTEXT *Ctx, UCHAR Status, ULONG Type)
{
    switch (Status) {
    case VIRTIO_BLK_S_OK:
        return ScsiGood(Ctx);
    case VIRTIO_BLK_S_UNSUPP:
        /* Not ScsiFail: the device refused it (counted in the queue's stats), and this
         * runs in the DPC, where the driver-refusal counters are not ours to touch. */
        ScsiSetCheckCondition(Ctx->Srb, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_ILLEGAL_COMMAND, 0);
        return SCSI_ACTION_COMPLETE;
    case VBLK_STATUS_RESET:
        Ctx->Srb->DataTransferLength = 0;
        Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
        Ctx->Srb->SrbStatus = SRB_STATUS_BUS_RESET;     /* classpnp retries */
        return SCSI_ACTION_COMPLETE;
    case VBLK_STATUS_DEVICE_GONE:
        Ctx->Srb->DataTransferLength = 0;
        Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
        Ctx->Srb->SrbStatus = SRB_STATUS_NO_DEVICE;
        return SCSI_ACTION_COMPLETE;
    case VIRTIO_BLK_S_IOERR:
    default:                                           /* blk.c normalises; be safe */
        ScsiSetCheckCondition(Ctx->Srb, SCSI_SENSE_MEDIUM_ERROR,
                              Type == VIRTIO_BLK_T_IN ? SCSI_ADSENSE_UNRECOVERED_ERROR
                                                      : SCSI_ADSENSE_WRITE_ERROR, 0);
        return SCSI_ACTION_COMPLETE;
    }
}

/* Copies a response the driver built to DataBuffer: min(response, allocation length,
 * DataTransferLength) bytes; DataTransferLength becomes what was returned. */
static SCSI_ACTION ScsiReturnData(SCSI_CONTEXT *Ctx, const UCHAR *Data, ULONG Length,
                                  ULONG AllocationLength)
{
    PSCSI_REQUEST_BLOCK Srb = Ctx->Srb;
    ULONG Transfer = Length;

    if (Transfer > AllocationLength) Transfer = AllocationLength;
    if (Transfer > Srb->DataTransferLength) Transfer = Srb->DataTransferLength;
    if (Transfer != 0) {
        if (Srb->DataBuffer == NULL) return ScsiSrbFail(Ctx, SRB_STATUS_INVALID_REQUEST);
        if ((Srb->SrbFlags & SRB_FLAGS_UNSPECIFIED_DIRECTION) == SRB_FLAGS_DATA_OUT)
            return ScsiLengthMismatch(Ctx);
        AvCopyMemory(Srb->DataBuffer, Data, Transfer);
    }
    Srb->ScsiStatus = SCSISTAT_GOOD;
    Srb->SrbStatus = (Transfer < Srb->DataTransferLength) ? SCSI_UNDERRUN_STATUS : SRB_STATUS_SUCCESS;
    Srb->DataTransferLength = Transfer;
    return SCSI_ACTION_COMPLETE;
}

/* Parameter data (data-out) of exactly ParameterLength bytes, read through the mapped
 * DataBuffer. NULL (SRB completed) if the SRB does not carry exactly that. */
static const UCHAR *ScsiParameterData(SCSI_CONTEXT *Ctx, ULONG ParameterLength)
{
    PSCSI_REQUEST_BLOCK Srb = Ctx->Srb;
    if (Srb->DataTransferLength != ParameterLength ||
        (Srb->SrbFlags & SRB_FLAGS_UNSPECIFIED_DIRECTION) == SRB_FLAGS_DATA_IN) {
        ScsiLengthMismatch(Ctx);
        return NULL;
    }
    if (Srb->DataBuffer == NULL) {
        ScsiSrbFail(Ctx, SRB_STATUS_INVALID_REQUEST);
        return NULL;
    }
    return (const UCHAR *)Srb->DataBuffer;
}

/* ------------------------------------------------------------------ device requests */

static void ScsiPrepareBlk(SCSI_CONTEXT *Ctx, ULONG Type, UCHAR Stage)
{
    VBLK_REQUEST *Blk = &Ctx->State->Blk;
    Blk->Type = Type;
    Blk->Sector = 0;
    Blk->Data = NULL;
    Blk->DataElements = 0;
    Blk->DataBytes = 0;
    Blk->Status = VBLK_STATUS_SENTINEL;
    Blk->PayloadLength = 0;
    Ctx->State->Stage = Stage;
}

static SCSI_ACTION ScsiSubmit(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->SrbStatus = SRB_STATUS_PENDING;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    return SCSI_ACTION_SUBMIT;
}

static SCSI_ACTION ScsiSubmitFlush(SCSI_CONTEXT *Ctx)
{
    ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_FLUSH, SCSI_STAGE_FLUSH);
    return ScsiSubmit(Ctx);
}

/* FLUSH whenever the device has FLUSH (spec 5.2.6.3), even while writeback reads 0:
 * writes cached before Windows turned the write cache off (MODE SELECT) are only
 * stable after a FLUSH sent after they completed. Without FLUSH the device has no
 * volatile cache, so there is nothing to do. */
static SCSI_ACTION ScsiFlushIfVolatile(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->DataTransferLength = 0;
    if (ScsiHas(Ctx->Disk, VIRTIO_BLK_F_FLUSH)) return ScsiSubmitFlush(Ctx);
    return ScsiGood(Ctx);
}

/* StorPort's scatter/gather list goes down to the virtqueue as it is: blk's element
 * must be laid out like StorPort's on every architecture this compiles for. */
AV_STATIC_ASSERT(sizeof(VBLK_SG_ELEMENT) == sizeof(STOR_SCATTER_GATHER_ELEMENT), ScsiSgElementSize);
AV_STATIC_ASSERT(FIELD_OFFSET(VBLK_SG_ELEMENT, PhysicalAddress) ==
                 FIELD_OFFSET(STOR_SCATTER_GATHER_ELEMENT, PhysicalAddress), ScsiSgElementAddress);
AV_STATIC_ASSERT(FIELD_OFFSET(VBLK_SG_ELEMENT, Length) ==
                 FIELD_OFFSET(STOR_SCATTER_GATHER_ELEMENT, Length), ScsiSgElementLength);

/* SBC-3 4.5: the range must lie inside the medium; a zero-length transfer still needs
 * a valid LBA. Overflow-free: Blocks is compared with what is left after Lba. */
static BOOLEAN ScsiRangeValid(const SCSI_DISK *Disk, ULONGLONG Lba, ULONGLONG Blocks)
{
    return (BOOLEAN)(Lba < Disk->BlockCount && Blocks <= Disk->BlockCount - Lba);
}

/* READ/WRITE (all sizes) and WRITE AND VERIFY. */
static SCSI_ACTION ScsiReadWrite(SCSI_CONTEXT *Ctx, ULONGLONG Lba, ULONG Blocks,
                                 BOOLEAN Write, BOOLEAN Fua)
{
    SCSI_DISK *Disk = Ctx->Disk;
    PSCSI_REQUEST_BLOCK Srb = Ctx->Srb;
    ULONGLONG Bytes;
    ULONG Needed = Write ? SRB_FLAGS_DATA_OUT : SRB_FLAGS_DATA_IN;
    ULONG Direction = Srb->SrbFlags & SRB_FLAGS_UNSPECIFIED_DIRECTION;

    if (!ScsiRangeValid(Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
    if (Blocks == 0) {                            /* SBC-3: not an error, no transfer */
        if (Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
        return ScsiGoodNoData(Ctx);
    }
    Bytes = (ULONGLONG)Blocks * Disk->BlockSize;
    if (Bytes > ScsiMaxTransferBytes(Disk)) return ScsiInvalidCdb(Ctx);  /* beyond VPD B0 limit */
    if (Bytes != Srb->DataTransferLength || (Direction != 0 && (Direction & Needed) == 0))
        return ScsiLengthMismatch(Ctx);

    ScsiPrepareBlk(Ctx, Write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
                   (Write && Fua && ScsiVolatileCache(Disk)) ? SCSI_STAGE_FUA_WRITE : SCSI_STAGE_IO);
    Ctx->State->Blk.Sector = Lba * ScsiSectorsPerBlock(Disk);   /* always 512-byte units */
    /* The data: the first Bytes bytes of the SG list, handed down as it is (blk.c cuts
     * it at size_max; a list that is short or needs more buffers than the device takes
     * is refused there, and completed SRB_STATUS_INVALID_REQUEST by the glue). */
    if (Ctx->Sg == NULL) return ScsiSrbFail(Ctx, SRB_STATUS_INVALID_REQUEST);
    Ctx->State->Blk.Data = (const VBLK_SG_ELEMENT *)Ctx->Sg->List;
    Ctx->State->Blk.DataElements = Ctx->Sg->NumberOfElements;
    Ctx->State->Blk.DataBytes = (ULONG)Bytes;
    return ScsiSubmit(Ctx);
}

/* Decodes LBA / transfer length of the READ/WRITE/VERIFY families (SBC-3 5.x). */
AV_INLINE void ScsiDecodeRange(const UCHAR *Cdb, ULONGLONG *Lba, ULONG *Blocks)
{
    switch (Cdb[0] >> 5) {                        /* group code gives the CDB layout */
    case 0:                                       /* 6-byte: 21-bit LBA, 0 blocks = 256 */
        *Lba = ((ULONG)(Cdb[1] & 0x1F) << 16) | ScsiGet16(Cdb + 2);
        *Blocks = Cdb[4] ? Cdb[4] : 256;
        break;
    case 5:                                       /* 12-byte */
        *Lba = ScsiGet32(Cdb + 2);
        *Blocks = ScsiGet32(Cdb + 6);
        break;
    case 4:                                       /* 16-byte */
        *Lba = ScsiGet64(Cdb + 2);
        *Blocks = ScsiGet32(Cdb + 10);
        break;
    default:                                      /* 10-byte */
        *Lba = ScsiGet32(Cdb + 2);
        *Blocks = ScsiGet16(Cdb + 7);
        break;
    }
}

/* READ and WRITE (6/10/12/16) and WRITE AND VERIFY (10/12/16): the command's row says
 * which (SCSI_CMD_WRITES, SCSI_CMD_VERIFY). */
static SCSI_ACTION ScsiCmdReadWrite(SCSI_CONTEXT *Ctx)
{
    const UCHAR *Cdb = Ctx->Cdb;
    BOOLEAN Write = (BOOLEAN)((Ctx->Flags & SCSI_CMD_WRITES) != 0);
    BOOLEAN Verify = (BOOLEAN)((Ctx->Flags & SCSI_CMD_VERIFY) != 0);
    BOOLEAN Fua = FALSE;
    ULONGLONG Lba;
    ULONG Blocks;

    if ((Cdb[0] >> 5) != 0) {
        if (Cdb[1] & 0xE0) return ScsiInvalidCdb(Ctx);   /* RD/WRPROTECT: no protection info */
        Fua = (BOOLEAN)((Cdb[1] & 0x08) != 0);
    }
    ScsiDecodeRange(Cdb, &Lba, &Blocks);
    /* WRITE AND VERIFY: the data must be on the medium when we report it verified, so
     * it is a FUA write (write then FLUSH with a volatile cache). */
    return ScsiReadWrite(Ctx, Lba, Blocks, Write, (BOOLEAN)(Fua || Verify));
}

/* VERIFY 10/12/16 (BYTCHK 0 only): range check; the virtual medium has no separate
 * verification to run. */
static SCSI_ACTION ScsiCmdVerify(SCSI_CONTEXT *Ctx)
{
    ULONGLONG Lba;
    ULONG Blocks;
    if (Ctx->Cdb[1] & 0xE6) return ScsiInvalidCdb(Ctx);   /* VRPROTECT, BYTCHK */
    ScsiDecodeRange(Ctx->Cdb, &Lba, &Blocks);
    if (!ScsiRangeValid(Ctx->Disk, Lba, Blocks)) return ScsiOutOfRange(Ctx);
    if (Ctx->Srb->DataTransferLength != 0) return ScsiLengthMismatch(Ctx);
    return ScsiGoodNoData(Ctx);
}

static SCSI_ACTION ScsiCmdSynchronizeCache(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdUnmap(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdWriteSame(SCSI_CONTEXT *Ctx)
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

/* ------------------------------------------------------------------ answered locally */

static SCSI_ACTION ScsiCmdTestUnitReady(SCSI_CONTEXT *Ctx)
{
    return ScsiGoodNoData(Ctx);
}

/* PREVENT ALLOW MEDIUM REMOVAL: the medium is not removable; nothing to lock. */
static SCSI_ACTION ScsiCmdMediumRemoval(SCSI_CONTEXT *Ctx)
{
    return ScsiGoodNoData(Ctx);
}

/* START STOP UNIT: no spindle; a stop (or standby) request flushes a volatile cache
 * first, as a real disk would before spinning down (SBC-3 5.19). */
static SCSI_ACTION ScsiCmdStartStopUnit(SCSI_CONTEXT *Ctx)
{
    UCHAR PowerCondition = (UCHAR)(Ctx->Cdb[4] >> 4);
    BOOLEAN Stop = (BOOLEAN)((PowerCondition == 0 && (Ctx->Cdb[4] & 0x01) == 0) ||
                             PowerCondition == 0x3 || PowerCondition == 0xB);
    if (Stop) return ScsiFlushIfVolatile(Ctx);
    return ScsiGoodNoData(Ctx);
}

/* REQUEST SENSE (SPC-3 6.27): fixed format; a pending unit attention is reported here
 * (and cleared), otherwise NO SENSE (autosense already delivered every error). */
static SCSI_ACTION ScsiCmdRequestSense(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdReportLuns(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdReadCapacity10(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdServiceActionIn16(SCSI_CONTEXT *Ctx)
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

/* The unit serial (VPD 80): the GET_ID string (NUL-padded ASCII up to 20 bytes, spec
 * 5.2.6) with non-printable bytes replaced and spaces trimmed; a stable fallback when
 * the device has none. Returns the length written to Serial. */
static ULONG ScsiFormatSerial(const SCSI_DISK *Disk, const UCHAR *Id, BOOLEAN HaveId, UCHAR *Serial)
{
    static const char Hex[] = "0123456789ABCDEF";
    static const char Prefix[] = SCSI_FALLBACK_SERIAL_PREFIX;
    ULONG Length = 0, Start = 0, i;

    if (HaveId) {
        while (Length < SCSI_SERIAL_MAX && Id[Length] != 0) Length++;
        while (Start < Length && Id[Start] == ' ') Start++;
        while (Length > Start && Id[Length - 1] == ' ') Length--;
        for (i = Start; i < Length; i++)
            Serial[i - Start] = (Id[i] >= 0x20 && Id[i] < 0x7F) ? Id[i] : '_';
        Length -= Start;
        if (Length != 0) return Length;
    }
    for (i = 0; i < sizeof(Prefix) - 1; i++) Serial[i] = (UCHAR)Prefix[i];
    for (Length = 0; Length < 8; Length++)
        Serial[i + Length] = (UCHAR)Hex[(Disk->FallbackSerial >> (28 - 4 * Length)) & 0xF];
    return i + Length;
}

static const char ScsiVendorId[] = SCSI_INQUIRY_VENDOR;

/* FNV-1a 64 over the vendor id and serial: a stable binary identifier for VPD 83. */
static ULONGLONG ScsiIdentityHash(const UCHAR *Serial, ULONG Length)
{
    ULONGLONG Hash = 0xCBF29CE484222325ULL;
    ULONG i;
    for (i = 0; i < sizeof(ScsiVendorId) - 1; i++) Hash = (Hash ^ (UCHAR)ScsiVendorId[i]) * 0x100000001B3ULL;
    for (i = 0; i < Length; i++) Hash = (Hash ^ Serial[i]) * 0x100000001B3ULL;
    return Hash;
}

/* VPD 80 / 83 once the GET_ID request came back (Status OK: Payload holds the id). */
static SCSI_ACTION ScsiFinishIdentityPage(SCSI_CONTEXT *Ctx, BOOLEAN HaveId)
{
    UCHAR Page[SCSI_RESPONSE_MAX];
    UCHAR Serial[SCSI_SERIAL_MAX];
    ULONG SerialLength = ScsiFormatSerial(Ctx->Disk, Ctx->State->Blk.Payload, HaveId, Serial);
    ULONG Allocation = ScsiGet16(Ctx->Cdb + 3);
    ULONG Length;

    AvZeroMemory(Page, sizeof(Page));
    Page[1] = Ctx->Cdb[2];
    if (Ctx->Cdb[2] == VPD_SERIAL_NUMBER) {
        AvCopyMemory(Page + 4, Serial, SerialLength);
        Length = 4 + SerialLength;
    } else {
        ULONGLONG Naa = ((ULONGLONG)SCSI_NAA_LOCAL << 60) |
                        (ScsiIdentityHash(Serial, SerialLength) & 0x0FFFFFFFFFFFFFFFULL);
        UCHAR *D = Page + 4;
        /* T10 vendor ID designator (SPC-3 7.6.3.4): ASCII, LU association. */
        D[0] = 0x02;
        D[1] = 0x01;
        D[3] = (UCHAR)(8 + SerialLength);
        AvCopyMemory(D + 4, ScsiVendorId, 8);
        AvCopyMemory(D + 12, Serial, SerialLength);
        D += 4 + D[3];
        /* NAA designator (SPC-3 7.6.3.6): binary, LU association, 8 bytes. */
        D[0] = 0x01;
        D[1] = 0x03;
        D[3] = 8;
        ScsiPut64(D + 4, Naa);
        D += 12;
        Length = (ULONG)(D - Page);
    }
    ScsiPut16(Page + 2, Length - 4);
    return ScsiReturnData(Ctx, Page, Length, Allocation);
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
static SCSI_ACTION ScsiCmdInquiry(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdModeSense(SCSI_CONTEXT *Ctx)
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
static SCSI_ACTION ScsiCmdModeSelect(SCSI_CONTEXT *Ctx)
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

/* ------------------------------------------------------------------ the table */

/* ScsiLookup scans in order: the reads and writes Windows' disk class sends for
 * all ordinary I/O (10-byte, 16-byte beyond 2 TiB) come first, so the per-request
 * lookup costs one or two compares instead of a scan of the whole table. */
static const SCSI_COMMAND ScsiCommands[] = {
    /* opcode                     CDB  flags                                handler */
    { SCSIOP_READ,                  10, SCSI_CMD_MEDIUM,                     ScsiCmdReadWrite },
    { SCSIOP_WRITE,                 10, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdReadWrite },
    { SCSIOP_READ16,                16, SCSI_CMD_MEDIUM,                     ScsiCmdReadWrite },
    { SCSIOP_WRITE16,               16, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdReadWrite },
    { SCSIOP_TEST_UNIT_READY,       6,  SCSI_CMD_MEDIUM,                     ScsiCmdTestUnitReady },
    { SCSIOP_REQUEST_SENSE,         6,  SCSI_CMD_UA_EXEMPT,                  ScsiCmdRequestSense },
    { SCSIOP_READ6,                 6,  SCSI_CMD_MEDIUM,                     ScsiCmdReadWrite },
    { SCSIOP_WRITE6,                6,  SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdReadWrite },
    { SCSIOP_INQUIRY,               6,  SCSI_CMD_UA_EXEMPT,                  ScsiCmdInquiry },
    { SCSIOP_MODE_SELECT,           6,  0,                                   ScsiCmdModeSelect },
    { SCSIOP_MODE_SENSE,            6,  0,                                   ScsiCmdModeSense },
    { SCSIOP_START_STOP_UNIT,       6,  0,                                   ScsiCmdStartStopUnit },
    { SCSIOP_MEDIUM_REMOVAL,        6,  0,                                   ScsiCmdMediumRemoval },
    { SCSIOP_READ_CAPACITY,         10, SCSI_CMD_MEDIUM,                     ScsiCmdReadCapacity10 },
    { SCSIOP_WRITE_VERIFY,          10, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM | SCSI_CMD_VERIFY, ScsiCmdReadWrite },
    { SCSIOP_VERIFY,                10, SCSI_CMD_MEDIUM,                     ScsiCmdVerify },
    { SCSIOP_SYNCHRONIZE_CACHE,     10, SCSI_CMD_MEDIUM,                     ScsiCmdSynchronizeCache },
    { SCSIOP_WRITE_SAME,            10, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdWriteSame },
    { SCSIOP_UNMAP,                 10, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdUnmap },
    { SCSIOP_MODE_SELECT10,         10, 0,                                   ScsiCmdModeSelect },
    { SCSIOP_MODE_SENSE10,          10, 0,                                   ScsiCmdModeSense },
    { SCSIOP_WRITE_VERIFY16,        16, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM | SCSI_CMD_VERIFY, ScsiCmdReadWrite },
    { SCSIOP_VERIFY16,              16, SCSI_CMD_MEDIUM,                     ScsiCmdVerify },
    { SCSIOP_SYNCHRONIZE_CACHE16,   16, SCSI_CMD_MEDIUM,                     ScsiCmdSynchronizeCache },
    { SCSIOP_WRITE_SAME16,          16, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdWriteSame },
    { SCSIOP_SERVICE_ACTION_IN16,   16, SCSI_CMD_MEDIUM,                     ScsiCmdServiceActionIn16 },
    { SCSIOP_REPORT_LUNS,           12, SCSI_CMD_UA_EXEMPT,                  ScsiCmdReportLuns },
    { SCSIOP_READ12,                12, SCSI_CMD_MEDIUM,                     ScsiCmdReadWrite },
    { SCSIOP_WRITE12,               12, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM,   ScsiCmdReadWrite },
    { SCSIOP_WRITE_VERIFY12,        12, SCSI_CMD_WRITES | SCSI_CMD_MEDIUM | SCSI_CMD_VERIFY, ScsiCmdReadWrite },
    { SCSIOP_VERIFY12,              12, SCSI_CMD_MEDIUM,                     ScsiCmdVerify },
};

static const SCSI_COMMAND *ScsiLookup(UCHAR Opcode)
{
    ULONG i;
    for (i = 0; i < sizeof(ScsiCommands) / sizeof(ScsiCommands[0]); i++)
        if (ScsiCommands[i].Opcode == Opcode) return &ScsiCommands[i];
    return NULL;
}

/* ------------------------------------------------------------------ entry points */

void ScsiUpdateGeometry(SCSI_DISK *Disk)
{
    ULONG Bs = Disk->Config.BlockSize;
    ULONG Shift;
    if (Bs < 512 || Bs > 65536 || (Bs & (Bs - 1)) != 0) Bs = 512;   /* VblkReadConfig validated it */
    Disk->BlockSize = Bs;
    /* A shift, not a 64-bit division: x86 kernel code has no libgcc __udivdi3. */
    for (Shift = 0; (512u << Shift) < Bs; Shift++) {}
    Disk->BlockCount = Disk->Config.CapacitySectors >> Shift;
}

/*
 * Who: the glue in HwStartIo (StartIo lock held, DISPATCH_LEVEL; dump mode: no lock)
 * for EXECUTE_SCSI, FLUSH and SHUTDOWN. Returns COMPLETE (SRB fully set) or SUBMIT
 * (State->Blk ready; the glue submits it, or completes BUSY on VQ_FULL).
 */
SCSI_ACTION ScsiStartSrb(SCSI_DISK *Disk, PSCSI_REQUEST_BLOCK Srb,
                         PSTOR_SCATTER_GATHER_LIST Sg, SCSI_REQUEST_STATE *State)
{
    SCSI_CONTEXT Ctx;
    const SCSI_COMMAND *Command;

    Ctx.Disk = Disk;
    Ctx.Srb = Srb;
    Ctx.Sg = Sg;
    Ctx.State = State;
    Ctx.Cdb = Srb->Cdb;
    Ctx.Flags = 0;
    State->Stage = SCSI_STAGE_NONE;
    Srb->ScsiStatus = SCSISTAT_GOOD;

    /* One disk: bus 0, target 0, LUN 0; anything else is refused without I/O. */
    if ((Srb->PathId | Srb->TargetId | Srb->Lun) != 0) {
        if (Srb->PathId != 0) return ScsiSrbFail(&Ctx, SRB_STATUS_INVALID_PATH_ID);
        if (Srb->TargetId != 0) return ScsiSrbFail(&Ctx, SRB_STATUS_INVALID_TARGET_ID);
        return ScsiSrbFail(&Ctx, SRB_STATUS_INVALID_LUN);
    }
    if (Srb->Function != SRB_FUNCTION_EXECUTE_SCSI) {
        if (Srb->Function == SRB_FUNCTION_FLUSH || Srb->Function == SRB_FUNCTION_SHUTDOWN)
            return ScsiFlushIfVolatile(&Ctx);
        return ScsiSrbFail(&Ctx, SRB_STATUS_INVALID_REQUEST);
    }
    if (Srb->CdbLength == 0 || Srb->CdbLength > sizeof(Srb->Cdb))
        return ScsiSrbFail(&Ctx, SRB_STATUS_INVALID_REQUEST);

    Command = ScsiLookup(Srb->Cdb[0]);
    /* SPC-3 5.9.7: a pending unit attention is reported to the next command, except
     * INQUIRY / REPORT LUNS (and REQUEST SENSE, which returns it as data). */
    if (Disk->UnitAttentionPending && (Command == NULL || !(Command->Flags & SCSI_CMD_UA_EXEMPT))) {
        ScsiSetCheckCondition(Srb, SCSI_SENSE_UNIT_ATTENTION, SCSI_ADSENSE_PARAMETERS_CHANGED,
                              SCSI_SENSEQ_CAPACITY_DATA_CHANGED);
        /* Cleared once reported (SPC-3 5.9.7): without autosense it stays pending for
         * the REQUEST SENSE that follows. */
        if (Srb->SrbStatus & SRB_STATUS_AUTOSENSE_VALID)
            Disk->UnitAttentionPending = FALSE;
        return SCSI_ACTION_COMPLETE;
    }
    if (Command == NULL) return ScsiInvalidOpcode(&Ctx);
    if (Srb->CdbLength < Command->CdbLength) return ScsiInvalidCdb(&Ctx);
    /* A disk of zero blocks (an image smaller than one block, or resized to 0) has no
     * medium to address: NOT READY, MEDIUM NOT PRESENT, not a one-block disk. */
    if ((Command->Flags & SCSI_CMD_MEDIUM) && Disk->BlockCount == 0)
        return ScsiFail(&Ctx, SCSI_SENSE_NOT_READY, SCSI_ADSENSE_NO_MEDIA_IN_DEVICE, 0);
    if ((Command->Flags & SCSI_CMD_WRITES) && ScsiHas(Disk, VIRTIO_BLK_F_RO))
        return ScsiFail(&Ctx, SCSI_SENSE_DATA_PROTECT, SCSI_ADSENSE_WRITE_PROTECT, 0);
    Ctx.Flags = Command->Flags;
    return Command->Handler(&Ctx);
}

/*
 * Who: the glue's completion DPC (no lock held; dump mode: inline in HwInterrupt)
 * after the device completed State->Blk, or after a reset detached it. COMPLETE or
 * SUBMIT (next stage in State->Blk).
 */
SCSI_ACTION ScsiCompleteRequest(SCSI_DISK *Disk, PSCSI_REQUEST_BLOCK Srb,
                                SCSI_REQUEST_STATE *State)
{
    SCSI_CONTEXT Ctx;
    UCHAR Status = State->Blk.Status;

    Ctx.Disk = Disk;
    Ctx.Srb = Srb;
    Ctx.Sg = NULL;
    Ctx.State = State;
    Ctx.Cdb = Srb->Cdb;
    Ctx.Flags = 0;

    switch (State->Stage) {
    case SCSI_STAGE_IO:
    case SCSI_STAGE_FLUSH:
        return ScsiMapDeviceStatus(&Ctx, Status, State->Blk.Type);
    case SCSI_STAGE_FUA_WRITE:
        if (Status != VIRTIO_BLK_S_OK) return ScsiMapDeviceStatus(&Ctx, Status, State->Blk.Type);
        /* Spec 5.2.6.3 case 3: the write is stable once a FLUSH sent after its
         * completion completes. DataTransferLength stays: the data went out. */
        ScsiPrepareBlk(&Ctx, VIRTIO_BLK_T_FLUSH, SCSI_STAGE_FLUSH);
        return ScsiSubmit(&Ctx);
    case SCSI_STAGE_GET_ID:
        if (Status == VBLK_STATUS_RESET || Status == VBLK_STATUS_DEVICE_GONE)
            return ScsiMapDeviceStatus(&Ctx, Status, State->Blk.Type);
        /* IOERR / UNSUPP (Aero has no GET_ID): the fallback serial, not an error. */
        return ScsiFinishIdentityPage(&Ctx, (BOOLEAN)(Status == VIRTIO_BLK_S_OK));
    default:
        return ScsiSrbFail(&Ctx, SRB_STATUS_INTERNAL_ERROR);
    }
}
