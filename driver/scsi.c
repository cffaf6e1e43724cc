/*
 * SCSI translation: the CDBs Windows' disk stack sends, answered by the driver or
 * turned into virtio-blk requests, and virtio completions turned back into SRB status
 * and sense. The command set is the table ScsiCommands[] below (one row per opcode,
 * documented in docs/scsi-commands.md). No StorPort calls: the same object runs in the
 * driver, the unit tests and the libFuzzer harness.
 *
 * This file: the entry points, the table, the status/sense and device-request helpers
 * and the READ/WRITE hot path (kept with ScsiStartSrb so it stays inlined), and the
 * VPD 80/83 pages built when GET_ID completes; the other handlers are in
 * scsi_medium.c and scsi_info.c, the shared names in scsi_int.h.
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
#include "scsi_int.h"

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

/* StorPort's scatter/gather list goes down to the virtqueue as it is: blk's element
 * must be laid out like StorPort's on every architecture this compiles for. */
AV_STATIC_ASSERT(sizeof(VBLK_SG_ELEMENT) == sizeof(STOR_SCATTER_GATHER_ELEMENT), ScsiSgElementSize);
AV_STATIC_ASSERT(FIELD_OFFSET(VBLK_SG_ELEMENT, PhysicalAddress) ==
                 FIELD_OFFSET(STOR_SCATTER_GATHER_ELEMENT, PhysicalAddress), ScsiSgElementAddress);
AV_STATIC_ASSERT(FIELD_OFFSET(VBLK_SG_ELEMENT, Length) ==
                 FIELD_OFFSET(STOR_SCATTER_GATHER_ELEMENT, Length), ScsiSgElementLength);

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

/* ------------------------------------------------------------------ VPD 80/83 after GET_ID */

/* Kept here, beside ScsiCompleteRequest (its only caller): a call into another file
 * would make the compiler keep that function's context in memory on every completion. */

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
