/*
 * SCSI translation, private to its three files: scsi.c (entry points, command table,
 * status/sense and device-request helpers, the READ/WRITE hot path), scsi_medium.c
 * (VERIFY, SYNCHRONIZE CACHE, UNMAP, WRITE SAME) and scsi_info.c (commands answered
 * by the driver: INQUIRY/VPD, READ CAPACITY, MODE SENSE/SELECT, REPORT LUNS, ...).
 * No StorPort calls. Every handler runs under ScsiStartSrb (HwStartIo: StartIo lock
 * held, DISPATCH_LEVEL; dump mode: no lock) or ScsiCompleteRequest (completion DPC,
 * no lock held).
 */
#ifndef AEROVBLK_SCSI_INT_H
#define AEROVBLK_SCSI_INT_H
#include "scsixlat.h"

/* Helpers shared by the three files are static (inline) in each rather than exported
 * from scsi.c: the READ/WRITE path and ScsiCompleteRequest pass them their context,
 * which the compiler keeps in registers only while every callee is local to the file
 * (measured, scripts/bench.py: +16 instructions per 4 KiB read when they were calls
 * into scsi.c). __inline: unused ones draw no warning (GCC, MSVC /W4). */
#define SCSI_SHARED static __inline

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

SCSI_SHARED ULONG ScsiGet16(const UCHAR *P) { return ((ULONG)P[0] << 8) | P[1]; }
SCSI_SHARED ULONG ScsiGet32(const UCHAR *P)
{
    return ((ULONG)P[0] << 24) | ((ULONG)P[1] << 16) | ((ULONG)P[2] << 8) | P[3];
}
SCSI_SHARED ULONGLONG ScsiGet64(const UCHAR *P)
{
    return ((ULONGLONG)ScsiGet32(P) << 32) | ScsiGet32(P + 4);
}
SCSI_SHARED void ScsiPut16(UCHAR *P, ULONG V) { P[0] = (UCHAR)(V >> 8); P[1] = (UCHAR)V; }
SCSI_SHARED void ScsiPut32(UCHAR *P, ULONG V)
{
    P[0] = (UCHAR)(V >> 24); P[1] = (UCHAR)(V >> 16); P[2] = (UCHAR)(V >> 8); P[3] = (UCHAR)V;
}
SCSI_SHARED void ScsiPut64(UCHAR *P, ULONGLONG V)
{
    ScsiPut32(P, (ULONG)(V >> 32));
    ScsiPut32(P + 4, (ULONG)V);
}
SCSI_SHARED void ScsiPutLe32(UCHAR *P, ULONG V)
{
    P[0] = (UCHAR)V; P[1] = (UCHAR)(V >> 8); P[2] = (UCHAR)(V >> 16); P[3] = (UCHAR)(V >> 24);
}
SCSI_SHARED void ScsiPutLe64(UCHAR *P, ULONGLONG V)
{
    ScsiPutLe32(P, (ULONG)V);
    ScsiPutLe32(P + 4, (ULONG)(V >> 32));
}

SCSI_SHARED BOOLEAN ScsiHas(const SCSI_DISK *Disk, ULONG Bit)
{
    return (BOOLEAN)((Disk->Features & VBLK_FEATURE(Bit)) != 0);
}

/* 512-byte sectors per logical block (BlockSize is validated: power of two >= 512). */
SCSI_SHARED ULONG ScsiSectorsPerBlock(const SCSI_DISK *Disk)
{
    return Disk->BlockSize >= 512 ? Disk->BlockSize / 512 : 1;
}

/* Discard segments one request may carry: the device's limit and our payload's. */
SCSI_SHARED ULONG ScsiMaxDiscardSegments(const SCSI_DISK *Disk)
{
    return Disk->Config.MaxDiscardSeg < VBLK_MAX_DISCARD_SEGMENTS ? Disk->Config.MaxDiscardSeg
                                                                  : VBLK_MAX_DISCARD_SEGMENTS;
}

SCSI_SHARED BOOLEAN ScsiVolatileCache(const SCSI_DISK *Disk)
{
    return VblkHasVolatileCache(Disk->Features, &Disk->Config);
}

SCSI_SHARED ULONG ScsiMaxTransferBytes(const SCSI_DISK *Disk)
{
    if (Disk->MaxTransferBytes != 0) return Disk->MaxTransferBytes;
    return (ULONG)(VBLK_MAX_DATA_BUFFERS - 1) * 4096u;
}

/* SBC-3 4.5: the range must lie inside the medium; a zero-length transfer still needs
 * a valid LBA. Overflow-free: Blocks is compared with what is left after Lba. */
SCSI_SHARED BOOLEAN ScsiRangeValid(const SCSI_DISK *Disk, ULONGLONG Lba, ULONGLONG Blocks)
{
    return (BOOLEAN)(Lba < Disk->BlockCount && Blocks <= Disk->BlockCount - Lba);
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

/* ------------------------------------------------------------------ completion status */

/* The status/sense and device-request helpers every handler uses. */
SCSI_SHARED SCSI_ACTION ScsiGood(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->SrbStatus = SRB_STATUS_SUCCESS;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    return SCSI_ACTION_COMPLETE;
}

/* A command with no data phase completing successfully transfers nothing. */
SCSI_SHARED SCSI_ACTION ScsiGoodNoData(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->DataTransferLength = 0;
    return ScsiGood(Ctx);
}

/* CHECK CONDITION with counting: LBA out of range, or any other ILLEGAL REQUEST /
 * DATA PROTECT (requests the driver refused). */
SCSI_SHARED SCSI_ACTION ScsiFail(SCSI_CONTEXT *Ctx, UCHAR SenseKey, UCHAR Asc, UCHAR Ascq)
{
    if (SenseKey == SCSI_SENSE_ILLEGAL_REQUEST && Asc == SCSI_ADSENSE_ILLEGAL_BLOCK)
        Ctx->Disk->ErrorsOutOfRange++;
    else if (SenseKey == SCSI_SENSE_ILLEGAL_REQUEST || SenseKey == SCSI_SENSE_DATA_PROTECT)
        Ctx->Disk->ErrorsInvalidRequest++;
    ScsiSetCheckCondition(Ctx->Srb, SenseKey, Asc, Ascq);
    return SCSI_ACTION_COMPLETE;
}

SCSI_SHARED SCSI_ACTION ScsiInvalidCdb(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_INVALID_CDB, 0);
}

SCSI_SHARED SCSI_ACTION ScsiInvalidParameter(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_INVALID_FIELD_PARAMETER_LIST, 0);
}

SCSI_SHARED SCSI_ACTION ScsiOutOfRange(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_ILLEGAL_BLOCK, 0);
}

SCSI_SHARED SCSI_ACTION ScsiInvalidOpcode(SCSI_CONTEXT *Ctx)
{
    return ScsiFail(Ctx, SCSI_SENSE_ILLEGAL_REQUEST, SCSI_ADSENSE_ILLEGAL_COMMAND, 0);
}

/* SRB-level refusal (bad addressing, no SG list, SG list that cannot be carried):
 * a port/transport problem rather than a SCSI one, so no sense. */
SCSI_SHARED SCSI_ACTION ScsiSrbFail(SCSI_CONTEXT *Ctx, UCHAR SrbStatus)
{
    Ctx->Disk->ErrorsInvalidRequest++;
    Ctx->Srb->SrbStatus = SrbStatus;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    Ctx->Srb->DataTransferLength = 0;
    return SCSI_ACTION_COMPLETE;
}

/* The SRB's buffer does not match what the CDB describes: refuse rather than over- or
 * under-run it (issue 5 section 2). */
SCSI_SHARED SCSI_ACTION ScsiLengthMismatch(SCSI_CONTEXT *Ctx)
{
    return ScsiInvalidCdb(Ctx);
}

/* Copies a response the driver built to DataBuffer: min(response, allocation length,
 * DataTransferLength) bytes; DataTransferLength becomes what was returned. */
SCSI_SHARED SCSI_ACTION ScsiReturnData(SCSI_CONTEXT *Ctx, const UCHAR *Data, ULONG Length,
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
SCSI_SHARED const UCHAR *ScsiParameterData(SCSI_CONTEXT *Ctx, ULONG ParameterLength)
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

SCSI_SHARED void ScsiPrepareBlk(SCSI_CONTEXT *Ctx, ULONG Type, UCHAR Stage)
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

SCSI_SHARED SCSI_ACTION ScsiSubmit(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->SrbStatus = SRB_STATUS_PENDING;
    Ctx->Srb->ScsiStatus = SCSISTAT_GOOD;
    return SCSI_ACTION_SUBMIT;
}

SCSI_SHARED SCSI_ACTION ScsiSubmitFlush(SCSI_CONTEXT *Ctx)
{
    ScsiPrepareBlk(Ctx, VIRTIO_BLK_T_FLUSH, SCSI_STAGE_FLUSH);
    return ScsiSubmit(Ctx);
}

/* FLUSH whenever the device has FLUSH (spec 5.2.6.3), even while writeback reads 0:
 * writes cached before Windows turned the write cache off (MODE SELECT) are only
 * stable after a FLUSH sent after they completed. Without FLUSH the device has no
 * volatile cache, so there is nothing to do. */
SCSI_SHARED SCSI_ACTION ScsiFlushIfVolatile(SCSI_CONTEXT *Ctx)
{
    Ctx->Srb->DataTransferLength = 0;
    if (ScsiHas(Ctx->Disk, VIRTIO_BLK_F_FLUSH)) return ScsiSubmitFlush(Ctx);
    return ScsiGood(Ctx);
}

/* scsi_medium.c: command handlers (rows of ScsiCommands[]). */
SCSI_ACTION ScsiCmdVerify(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdSynchronizeCache(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdUnmap(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdWriteSame(SCSI_CONTEXT *Ctx);

/* scsi_info.c: command handlers (rows of ScsiCommands[]). */
SCSI_ACTION ScsiCmdTestUnitReady(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdMediumRemoval(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdStartStopUnit(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdRequestSense(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdReportLuns(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdReadCapacity10(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdServiceActionIn16(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdInquiry(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdModeSense(SCSI_CONTEXT *Ctx);
SCSI_ACTION ScsiCmdModeSelect(SCSI_CONTEXT *Ctx);

#endif
