/*
 * aerovblk_diagfmt: request building, reply checking, decoding and formatting of the
 * AEROVBLK QUERY diagnostics (see aerovblk_diagfmt.h and docs/diagnostics.md).
 * Plain C99, no OS calls, no allocation. Every read of caller data is bounded by the
 * length the caller gave; all output goes through a bounded sink.
 */
#include "aerovblk_diagfmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The decoder relies on the packed ABI layout; the header asserts the offsets too. */
typedef char AvDiagAssertInfoSize[(sizeof(AEROVBLK_QUERY_INFO) == 0x120) ? 1 : -1];

/* ---- little-endian byte access ------------------------------------------------- */
static uint64_t LoadLe(const uint8_t *p, size_t size)
{
    uint64_t v = 0;
    size_t i;
    for (i = size; i > 0; i--)
        v = (v << 8) | p[i - 1];
    return v;
}

static void StoreLe32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ---- SRB_IO_CONTROL -------------------------------------------------------------- */
void AvDiagSrbIoInitQuery(AVDIAG_SRBIO *header, uint32_t payloadLength)
{
    memset(header, 0, sizeof(*header));
    header->HeaderLength = AVDIAG_SRBIO_SIZE;
    memcpy(header->Signature, AEROVBLK_SIGNATURE, AEROVBLK_SIGNATURE_LENGTH);
    header->Timeout = AVDIAG_DEFAULT_TIMEOUT_SECONDS;
    header->ControlCode = AEROVBLK_IOCTL_QUERY;
    header->ReturnCode = AVDIAG_STATUS_SUCCESS;
    header->Length = payloadLength;
}

size_t AvDiagSrbIoStore(const AVDIAG_SRBIO *header, uint8_t *buffer, size_t bufferSize)
{
    if (buffer == NULL || bufferSize < AVDIAG_SRBIO_SIZE)
        return 0;
    StoreLe32(buffer + AVDIAG_SRBIO_OFF_HEADERLENGTH, header->HeaderLength);
    memcpy(buffer + AVDIAG_SRBIO_OFF_SIGNATURE, header->Signature, AEROVBLK_SIGNATURE_LENGTH);
    StoreLe32(buffer + AVDIAG_SRBIO_OFF_TIMEOUT, header->Timeout);
    StoreLe32(buffer + AVDIAG_SRBIO_OFF_CONTROLCODE, header->ControlCode);
    StoreLe32(buffer + AVDIAG_SRBIO_OFF_RETURNCODE, header->ReturnCode);
    StoreLe32(buffer + AVDIAG_SRBIO_OFF_LENGTH, header->Length);
    return AVDIAG_SRBIO_SIZE;
}

int AvDiagSrbIoLoad(const uint8_t *buffer, size_t length, AVDIAG_SRBIO *header)
{
    memset(header, 0, sizeof(*header));
    if (buffer == NULL || length < AVDIAG_SRBIO_SIZE)
        return 0;
    header->HeaderLength = (uint32_t)LoadLe(buffer + AVDIAG_SRBIO_OFF_HEADERLENGTH, 4);
    memcpy(header->Signature, buffer + AVDIAG_SRBIO_OFF_SIGNATURE, AEROVBLK_SIGNATURE_LENGTH);
    header->Timeout = (uint32_t)LoadLe(buffer + AVDIAG_SRBIO_OFF_TIMEOUT, 4);
    header->ControlCode = (uint32_t)LoadLe(buffer + AVDIAG_SRBIO_OFF_CONTROLCODE, 4);
    header->ReturnCode = (uint32_t)LoadLe(buffer + AVDIAG_SRBIO_OFF_RETURNCODE, 4);
    header->Length = (uint32_t)LoadLe(buffer + AVDIAG_SRBIO_OFF_LENGTH, 4);
    return 1;
}

size_t AvDiagBuildQueryRequest(uint8_t *buffer, size_t bufferSize, uint32_t payloadLength)
{
    AVDIAG_SRBIO header;
    size_t total = (size_t)AVDIAG_SRBIO_SIZE + payloadLength;

    if (buffer == NULL || total < payloadLength || bufferSize < total)
        return 0;
    AvDiagSrbIoInitQuery(&header, payloadLength);
    memset(buffer, 0, total);      /* the payload goes out zeroed: see AVDIAG_REPLY_EMPTY */
    AvDiagSrbIoStore(&header, buffer, bufferSize);
    return total;
}

AVDIAG_REPLY_STATUS AvDiagParseReply(const uint8_t *buffer, size_t returned, AVDIAG_REPLY *reply)
{
    size_t available, i;

    memset(reply, 0, sizeof(*reply));
    if (!AvDiagSrbIoLoad(buffer, returned, &reply->Header))
        return reply->Status = AVDIAG_REPLY_NO_HEADER;
    if (reply->Header.HeaderLength < AVDIAG_SRBIO_SIZE || reply->Header.HeaderLength > returned)
        return reply->Status = AVDIAG_REPLY_BAD_HEADER_LENGTH;
    if (memcmp(reply->Header.Signature, AEROVBLK_SIGNATURE, AEROVBLK_SIGNATURE_LENGTH) != 0)
        return reply->Status = AVDIAG_REPLY_BAD_SIGNATURE;

    available = returned - reply->Header.HeaderLength;
    reply->Payload = buffer + reply->Header.HeaderLength;
    reply->PayloadLength = reply->Header.Length < available ? reply->Header.Length : available;
    reply->LengthClamped = reply->Header.Length > available;

    if (reply->Header.ReturnCode != AVDIAG_STATUS_SUCCESS)
        return reply->Status = AVDIAG_REPLY_DRIVER_STATUS;
    if (reply->PayloadLength < AEROVBLK_QUERY_MIN_LENGTH)
        return reply->Status = AVDIAG_REPLY_TOO_SHORT;
    for (i = 0; i < reply->PayloadLength; i++) {
        if (reply->Payload[i] != 0)
            return reply->Status = AVDIAG_REPLY_OK;
    }
    return reply->Status = AVDIAG_REPLY_EMPTY;
}

const char *AvDiagReplyStatusText(AVDIAG_REPLY_STATUS status)
{
    switch (status) {
    case AVDIAG_REPLY_OK:                return "ok";
    case AVDIAG_REPLY_NO_HEADER:         return "reply shorter than the 28-byte SRB_IO_CONTROL header";
    case AVDIAG_REPLY_BAD_HEADER_LENGTH: return "reply HeaderLength is invalid";
    case AVDIAG_REPLY_BAD_SIGNATURE:     return "reply signature is not AEROVBLK";
    case AVDIAG_REPLY_DRIVER_STATUS:     return "driver returned an error status";
    case AVDIAG_REPLY_TOO_SHORT:         return "driver returned fewer than 16 bytes";
    case AVDIAG_REPLY_EMPTY:             return "reply is empty (the miniport ignored the request)";
    }
    return "unknown reply status";
}

const char *AvDiagNtStatusName(uint32_t status)
{
    switch (status) {
    case AVDIAG_STATUS_SUCCESS:                return "STATUS_SUCCESS";
    case AVDIAG_STATUS_INVALID_PARAMETER:      return "STATUS_INVALID_PARAMETER";
    case AVDIAG_STATUS_INVALID_DEVICE_REQUEST: return "STATUS_INVALID_DEVICE_REQUEST";
    case AVDIAG_STATUS_BUFFER_TOO_SMALL:       return "STATUS_BUFFER_TOO_SMALL";
    case AVDIAG_STATUS_NOT_SUPPORTED:          return "STATUS_NOT_SUPPORTED";
    default:                                   return NULL;
    }
}

/* ---- the field table ----------------------------------------------------------- */
enum {
    GROUP_FEATURES, GROUP_QUEUE, GROUP_INTERRUPTS, GROUP_STATE, GROUP_EVENTS, GROUP_LAYOUT,
    GROUP_DISK, GROUP_SUBMITTED, GROUP_COMPLETED, GROUP_DATA, GROUP_DOORBELLS,
    GROUP_INTERRUPTS_TAKEN, GROUP_ERRORS, GROUP_INFLIGHT, GROUP_COUNT
};

static const char *const GroupTitles[GROUP_COUNT] = {
    "Features", "Queue", "Interrupts", "State", "Reset and PnP events", "Layout",
    "Disk and limits", "Requests submitted", "Requests completed", "Data transferred",
    "Doorbells", "Interrupts taken", "Errors and back-pressure", "In flight"
};

#define AV_MEMBER_SIZE(m) sizeof(((AEROVBLK_QUERY_INFO *)0)->m)
#define AV_FIELD(member, name, key, label, kind, group) \
    { name, key, label, (uint16_t)offsetof(AEROVBLK_QUERY_INFO, member), \
      (uint8_t)AV_MEMBER_SIZE(member), (uint8_t)(kind), (uint8_t)(group) }
#define AV_SIMPLE(member, key, label, kind, group) AV_FIELD(member, #member, key, label, kind, group)
/* Submitted[]/Completed[] entries: ABI name "Submitted[READ]", key "submitted_read". */
#define AV_REQ(array, keyPrefix, type, upper, lower, label, group) \
    AV_FIELD(array[type], #array "[" #upper "]", keyPrefix #lower, label, AVDIAG_KIND_COUNT, group)

const AVDIAG_FIELD AvDiagFields[] = {
    AV_SIMPLE(NegotiatedFeatures, "negotiated_features", "Negotiated features", AVDIAG_KIND_FEATURES, GROUP_FEATURES),
    AV_SIMPLE(QueueSize, "queue_size", "Queue size", AVDIAG_KIND_COUNT, GROUP_QUEUE),
    AV_SIMPLE(NumFree, "num_free", "Free descriptors", AVDIAG_KIND_COUNT, GROUP_QUEUE),
    AV_SIMPLE(AvailIdx, "avail_idx", "Avail index", AVDIAG_KIND_COUNT, GROUP_QUEUE),
    AV_SIMPLE(UsedIdx, "used_idx", "Used index", AVDIAG_KIND_COUNT, GROUP_QUEUE),
    AV_SIMPLE(InterruptMode, "interrupt_mode", "Interrupt mode", AVDIAG_KIND_INTMODE, GROUP_INTERRUPTS),
    AV_SIMPLE(MsixConfigVector, "msix_config_vector", "MSI-X config vector", AVDIAG_KIND_VECTOR, GROUP_INTERRUPTS),
    AV_SIMPLE(MsixQueue0Vector, "msix_queue0_vector", "MSI-X queue 0 vector", AVDIAG_KIND_VECTOR, GROUP_INTERRUPTS),
    AV_SIMPLE(MessageCount, "message_count", "Messages granted", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS),
    AV_SIMPLE(Flags, "flags", "Flags", AVDIAG_KIND_FLAGS, GROUP_STATE),
    AV_SIMPLE(AbortSrbCount, "abort_srb_count", "SRB_FUNCTION_ABORT_COMMAND", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(ResetDeviceSrbCount, "reset_device_srb_count", "SRB_FUNCTION_RESET_DEVICE", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(ResetBusSrbCount, "reset_bus_srb_count", "SRB_FUNCTION_RESET_BUS", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(PnpSrbCount, "pnp_srb_count", "SRB_FUNCTION_PNP", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(IoctlResetCount, "ioctl_reset_count", "Resets by IOCTL", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(CapacityChangeEvents, "capacity_change_events", "Capacity changes", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(ResetDetectedCount, "reset_detected_count", "Device resets detected", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(HwResetBusCount, "hw_reset_bus_count", "HwResetBus calls", AVDIAG_KIND_COUNT, GROUP_EVENTS),
    AV_SIMPLE(LayoutVersion, "layout_version", "Layout version", AVDIAG_KIND_COUNT, GROUP_LAYOUT),
    AV_SIMPLE(StructSize, "struct_size", "Driver structure size", AVDIAG_KIND_BYTES, GROUP_LAYOUT),
    AV_SIMPLE(CapacitySectors, "capacity_sectors", "Capacity", AVDIAG_KIND_SECTORS, GROUP_DISK),
    AV_SIMPLE(LogicalBlockSize, "logical_block_size", "Logical block size", AVDIAG_KIND_BYTES, GROUP_DISK),
    AV_SIMPLE(SegMax, "seg_max", "seg_max", AVDIAG_KIND_OPTIONAL, GROUP_DISK),
    AV_SIMPLE(SizeMax, "size_max", "size_max (bytes)", AVDIAG_KIND_OPTIONAL, GROUP_DISK),
    AV_SIMPLE(MaximumTransferLength, "maximum_transfer_length", "MaximumTransferLength", AVDIAG_KIND_BYTES, GROUP_DISK),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_READ, READ, read, "Read", GROUP_SUBMITTED),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_WRITE, WRITE, write, "Write", GROUP_SUBMITTED),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_FLUSH, FLUSH, flush, "Flush", GROUP_SUBMITTED),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_DISCARD, DISCARD, discard, "Discard", GROUP_SUBMITTED),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_WRITE_ZEROES, WRITE_ZEROES, write_zeroes, "Write zeroes", GROUP_SUBMITTED),
    AV_REQ(Submitted, "submitted_", AEROVBLK_REQ_GET_ID, GET_ID, get_id, "Get ID", GROUP_SUBMITTED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_READ, READ, read, "Read", GROUP_COMPLETED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_WRITE, WRITE, write, "Write", GROUP_COMPLETED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_FLUSH, FLUSH, flush, "Flush", GROUP_COMPLETED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_DISCARD, DISCARD, discard, "Discard", GROUP_COMPLETED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_WRITE_ZEROES, WRITE_ZEROES, write_zeroes, "Write zeroes", GROUP_COMPLETED),
    AV_REQ(Completed, "completed_", AEROVBLK_REQ_GET_ID, GET_ID, get_id, "Get ID", GROUP_COMPLETED),
    AV_SIMPLE(BytesRead, "bytes_read", "Bytes read", AVDIAG_KIND_BYTES, GROUP_DATA),
    AV_SIMPLE(BytesWritten, "bytes_written", "Bytes written", AVDIAG_KIND_BYTES, GROUP_DATA),
    AV_SIMPLE(DoorbellsWritten, "doorbells_written", "Written", AVDIAG_KIND_COUNT, GROUP_DOORBELLS),
    AV_SIMPLE(DoorbellsSuppressed, "doorbells_suppressed", "Suppressed", AVDIAG_KIND_COUNT, GROUP_DOORBELLS),
    AV_SIMPLE(InterruptsQueue, "interrupts_queue", "Queue", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS_TAKEN),
    AV_SIMPLE(InterruptsConfig, "interrupts_config", "Config change", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS_TAKEN),
    AV_SIMPLE(InterruptsSpurious, "interrupts_spurious", "Spurious", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS_TAKEN),
    AV_SIMPLE(CompletionsInInterrupts, "completions_in_interrupts", "Completions (total)", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS_TAKEN),
    AV_SIMPLE(MaxCompletionsPerInterrupt, "max_completions_per_interrupt", "Completions (max per interrupt)", AVDIAG_KIND_COUNT, GROUP_INTERRUPTS_TAKEN),
    AV_SIMPLE(BusyCompletions, "busy_completions", "BUSY completions", AVDIAG_KIND_COUNT, GROUP_ERRORS),
    AV_SIMPLE(ErrorsIoErr, "errors_ioerr", "Device IOERR", AVDIAG_KIND_COUNT, GROUP_ERRORS),
    AV_SIMPLE(ErrorsUnsupported, "errors_unsupported", "Device UNSUPP", AVDIAG_KIND_COUNT, GROUP_ERRORS),
    AV_SIMPLE(ErrorsInvalidRequest, "errors_invalid_request", "Invalid requests", AVDIAG_KIND_COUNT, GROUP_ERRORS),
    AV_SIMPLE(ErrorsOutOfRange, "errors_out_of_range", "Out of range", AVDIAG_KIND_COUNT, GROUP_ERRORS),
    AV_SIMPLE(MaxInFlight, "max_in_flight", "Maximum", AVDIAG_KIND_COUNT, GROUP_INFLIGHT),
    AV_SIMPLE(CurrentInFlight, "current_in_flight", "Current", AVDIAG_KIND_COUNT, GROUP_INFLIGHT),
};
const size_t AvDiagFieldCount = sizeof(AvDiagFields) / sizeof(AvDiagFields[0]);

const AVDIAG_FIELD *AvDiagFindField(const char *keyOrName)
{
    size_t i;
    for (i = 0; keyOrName != NULL && i < AvDiagFieldCount; i++) {
        if (strcmp(AvDiagFields[i].Key, keyOrName) == 0 || strcmp(AvDiagFields[i].Name, keyOrName) == 0)
            return &AvDiagFields[i];
    }
    return NULL;
}

int AvDiagFieldPresent(const AVDIAG_INFO *info, const AVDIAG_FIELD *field)
{
    return field != NULL && (size_t)field->Offset + field->Size <= info->Valid;
}

int AvDiagGetField(const AVDIAG_INFO *info, const AVDIAG_FIELD *field, uint64_t *value)
{
    *value = 0;
    if (!AvDiagFieldPresent(info, field))
        return 0;
    *value = LoadLe(info->Raw + field->Offset, field->Size);
    return 1;
}

/* By key, for code in this file; the key always exists (unit-tested). */
static int GetByKey(const AVDIAG_INFO *info, const char *key, uint64_t *value)
{
    return AvDiagGetField(info, AvDiagFindField(key), value);
}

/* ---- decoding -------------------------------------------------------------------- */
#define AV_EXT_HEADER_END (AEROVBLK_QUERY_AERO_LENGTH + 8u)   /* LayoutVersion + StructSize */

void AvDiagDecode(const uint8_t *payload, size_t length, AVDIAG_INFO *info)
{
    size_t valid = length < sizeof(info->Raw) ? length : sizeof(info->Raw);

    memset(info, 0, sizeof(*info));
    info->Returned = length;
    if (payload == NULL)
        valid = 0;
    if (valid < AEROVBLK_QUERY_MIN_LENGTH) {
        info->Layout = AVDIAG_LAYOUT_NONE;
        valid = 0;
    } else if (valid < AEROVBLK_QUERY_AERO_LENGTH) {
        info->Layout = AVDIAG_LAYOUT_ORIGINAL;
    } else {
        uint32_t version = 0, structSize = 0;
        if (valid >= AV_EXT_HEADER_END) {
            version = (uint32_t)LoadLe(payload + AEROVBLK_QUERY_AERO_LENGTH, 4);
            structSize = (uint32_t)LoadLe(payload + AEROVBLK_QUERY_AERO_LENGTH + 4, 4);
        }
        if (version != 0 && structSize < AV_EXT_HEADER_END)
            info->StructSizeInvalid = 1;
        if (version == 0 || info->StructSizeInvalid) {
            /* Without a trustworthy extension header the bytes after 0x40 mean nothing. */
            info->Layout = AVDIAG_LAYOUT_AERO;
            valid = AEROVBLK_QUERY_AERO_LENGTH;
        } else {
            size_t fromDriver = length < structSize ? length : structSize;
            info->Layout = AVDIAG_LAYOUT_EXTENDED;
            if (structSize < valid)
                valid = structSize;
            if (fromDriver > sizeof(info->Raw))
                info->NewerBytes = fromDriver - sizeof(info->Raw);
        }
    }
    info->Valid = valid;
    if (valid > 0)
        memcpy(info->Raw, payload, valid);
    memcpy(&info->Info, info->Raw, sizeof(info->Info));
}

/* ---- names --------------------------------------------------------------------- */
typedef struct AV_BIT_NAME { unsigned Bit; const char *Name; } AV_BIT_NAME;

/* virtio 5.2.3 (block device) and 6 (reserved, transport) feature bits. */
static const AV_BIT_NAME FeatureNames[] = {
    { 0, "BARRIER" }, { 1, "SIZE_MAX" }, { 2, "SEG_MAX" }, { 4, "GEOMETRY" }, { 5, "RO" },
    { 6, "BLK_SIZE" }, { 7, "SCSI" }, { 9, "FLUSH" }, { 10, "TOPOLOGY" }, { 11, "CONFIG_WCE" },
    { 12, "MQ" }, { 13, "DISCARD" }, { 14, "WRITE_ZEROES" }, { 15, "LIFETIME" },
    { 16, "SECURE_ERASE" }, { 17, "ZONED" },
    { 24, "NOTIFY_ON_EMPTY" }, { 27, "ANY_LAYOUT" }, { 28, "INDIRECT_DESC" }, { 29, "EVENT_IDX" },
    { 32, "VERSION_1" }, { 33, "ACCESS_PLATFORM" }, { 34, "RING_PACKED" }, { 35, "IN_ORDER" },
    { 36, "ORDER_PLATFORM" }, { 37, "SR_IOV" }, { 38, "NOTIFICATION_DATA" },
    { 39, "NOTIF_CONFIG_DATA" }, { 40, "RING_RESET" }, { 41, "ADMIN_VQ" }, { 43, "SUSPEND" },
};

static const AV_BIT_NAME FlagNames[] = {
    { 0, "removed" }, { 1, "surprise-removed" }, { 2, "reset-in-progress" }, { 3, "reset-pending" }, { 4, "stopped" },
};

static const char *BitName(const AV_BIT_NAME *table, size_t count, unsigned bit)
{
    size_t i;
    for (i = 0; i < count; i++) {
        if (table[i].Bit == bit)
            return table[i].Name;
    }
    return NULL;
}

const char *AvDiagFeatureName(unsigned bit)
{
    return BitName(FeatureNames, sizeof(FeatureNames) / sizeof(FeatureNames[0]), bit);
}

static const char *FlagName(unsigned bit)
{
    return BitName(FlagNames, sizeof(FlagNames) / sizeof(FlagNames[0]), bit);
}

static const char *InterruptModeName(uint64_t mode)
{
    if (mode == AEROVBLK_INTERRUPT_INTX)
        return "INTx";
    if (mode == AEROVBLK_INTERRUPT_MSI)
        return "MSI/MSI-X";
    return NULL;
}

static const char *LayoutName(AVDIAG_LAYOUT layout)
{
    switch (layout) {
    case AVDIAG_LAYOUT_ORIGINAL: return "original";
    case AVDIAG_LAYOUT_AERO:     return "aero";
    case AVDIAG_LAYOUT_EXTENDED: return "extended";
    default:                     return "none";
    }
}

static const char *LayoutDescription(AVDIAG_LAYOUT layout)
{
    switch (layout) {
    case AVDIAG_LAYOUT_ORIGINAL: return "original 16-byte layout (older driver)";
    case AVDIAG_LAYOUT_AERO:     return "Aero 64-byte layout without the aerovblk extension (older driver)";
    case AVDIAG_LAYOUT_EXTENDED: return "aerovblk extended layout";
    default:                     return "nothing decodable (fewer than 16 bytes)";
    }
}

/* ---- bounded output ------------------------------------------------------------ */
typedef struct AV_SINK {
    char *Buffer;
    size_t Size;
    size_t Length;     /* what the full output needs, may exceed Size */
} AV_SINK;

static void SinkInit(AV_SINK *sink, char *buffer, size_t size)
{
    sink->Buffer = buffer;
    sink->Size = buffer != NULL ? size : 0;
    sink->Length = 0;
    if (sink->Size > 0)
        sink->Buffer[0] = '\0';
}

static void PutN(AV_SINK *sink, const char *text, size_t n)
{
    if (sink->Size > 0 && sink->Length < sink->Size - 1) {
        size_t room = sink->Size - 1 - sink->Length;
        size_t copy = n < room ? n : room;
        memcpy(sink->Buffer + sink->Length, text, copy);
        sink->Buffer[sink->Length + copy] = '\0';
    }
    sink->Length += n;
}

static void Put(AV_SINK *sink, const char *text)
{
    PutN(sink, text, strlen(text));
}

/* Only short, fixed formats (%u, %x, %s of labels) pass through here; 64-bit values
 * are converted by U64Dec/U64Hex so the C runtime's %llu support does not matter. */
static void Putf(AV_SINK *sink, const char *format, ...)
{
    char text[192];
    int n;
    va_list args;

    va_start(args, format);
    n = vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    if (n < 0)
        return;
    PutN(sink, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

#define AV_NUM_TEXT 32

static const char *U64Dec(char *out, uint64_t value)
{
    char digits[AV_NUM_TEXT];
    size_t n = 0, i;
    do {
        digits[n++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0);
    for (i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\0';
    return out;
}

static const char *U64Hex(char *out, uint64_t value, unsigned digits)
{
    static const char hex[] = "0123456789abcdef";
    unsigned i;
    out[0] = '0';
    out[1] = 'x';
    for (i = 0; i < digits; i++)
        out[2 + i] = hex[(value >> (4u * (digits - 1u - i))) & 0xFu];
    out[2 + digits] = '\0';
    return out;
}

void AvDiagFormatRatio(char *out, size_t outSize, uint64_t num, uint64_t den, int percent)
{
    char whole[AV_NUM_TEXT], text[AV_NUM_TEXT + 8];
    unsigned frac[4];
    uint64_t q, r;
    size_t i;

    if (out == NULL || outSize == 0)
        return;
    if (den == 0) {
        snprintf(out, outSize, "null");
        return;
    }
    while (den > UINT64_MAX / 10u) {    /* keep r * 10 below: precision beyond 2^60 is moot */
        num >>= 1;
        den >>= 1;
    }
    q = num / den;
    r = num % den;
    for (i = 0; i < 4; i++) {          /* long division, truncating */
        r *= 10u;
        frac[i] = (unsigned)(r / den);
        r %= den;
    }
    if (!percent) {
        snprintf(text, sizeof(text), "%s.%u%u", U64Dec(whole, q), frac[0], frac[1]);
    } else if (q == 0) {               /* 100 * num / den by moving the decimal point */
        snprintf(text, sizeof(text), "%u.%u%u", frac[0] * 10u + frac[1], frac[2], frac[3]);
    } else {
        snprintf(text, sizeof(text), "%s%u%u.%u%u", U64Dec(whole, q), frac[0], frac[1], frac[2], frac[3]);
    }
    snprintf(out, outSize, "%s", text);
}

/* "(1.50 MiB)" style suffix for sizes of at least 1 KiB, empty otherwise. */
static void PutBinaryUnits(AV_SINK *sink, uint64_t bytes)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    char ratio[AV_NUM_TEXT + 8];
    uint64_t unit = 1024u;
    size_t i = 0;

    if (bytes < 1024u)
        return;
    while (i + 1 < sizeof(units) / sizeof(units[0]) && bytes / unit >= 1024u) {
        unit *= 1024u;
        i++;
    }
    AvDiagFormatRatio(ratio, sizeof(ratio), bytes, unit, 0);
    Putf(sink, " (%s %s)", ratio, units[i]);
}

size_t AvDiagJsonString(const char *text, char *buffer, size_t bufferSize)
{
    AV_SINK sink;
    const unsigned char *p;

    SinkInit(&sink, buffer, bufferSize);
    if (text == NULL) {
        Put(&sink, "null");
        return sink.Length;
    }
    Put(&sink, "\"");
    for (p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[3] = { '\\', (char)*p, '\0' };
            Put(&sink, esc);
        } else if (*p < 0x20 || *p == 0x7F) {
            Putf(&sink, "\\u%04x", (unsigned)*p);
        } else {
            PutN(&sink, (const char *)p, 1);
        }
    }
    Put(&sink, "\"");
    return sink.Length;
}

static void PutJsonString(AV_SINK *sink, const char *text)
{
    char small[256];
    size_t need = AvDiagJsonString(text, small, sizeof(small));
    if (need < sizeof(small)) {
        Put(sink, small);
        return;
    }
    /* Long strings: escape piecewise so no length limit applies. */
    Put(sink, "\"");
    for (; *text != '\0'; text++) {
        char one[2] = { *text, '\0' };
        char esc[8];
        AvDiagJsonString(one, esc, sizeof(esc));
        esc[strlen(esc) - 1] = '\0';   /* drop the closing quote */
        Put(sink, esc + 1);            /* and the opening one */
    }
    Put(sink, "\"");
}

/* ---- derived values -------------------------------------------------------------- */
/* Sum of the named fields; 0 (and *present = 0) if any of them is absent. */
static uint64_t SumFields(const AVDIAG_INFO *info, const char *const *keys, size_t count, int *present)
{
    uint64_t total = 0, value;
    size_t i;
    for (i = 0; i < count; i++) {
        if (!GetByKey(info, keys[i], &value))
            *present = 0;
        total += value;
    }
    return total;
}

static const char *const SubmittedKeys[AEROVBLK_REQ_TYPES] = {
    "submitted_read", "submitted_write", "submitted_flush", "submitted_discard",
    "submitted_write_zeroes", "submitted_get_id"
};
static const char *const CompletedKeys[AEROVBLK_REQ_TYPES] = {
    "completed_read", "completed_write", "completed_flush", "completed_discard",
    "completed_write_zeroes", "completed_get_id"
};
static const char *const ErrorKeys[] = {
    "errors_ioerr", "errors_unsupported", "errors_invalid_request", "errors_out_of_range"
};
/* Errors the device itself reported: the only ones that relate to completed requests
 * (invalid and out-of-range requests never reach the device). */
static const char *const DeviceErrorKeys[] = {
    "errors_ioerr", "errors_unsupported"
};
static const char *const InterruptKeys[] = {
    "interrupts_queue", "interrupts_config", "interrupts_spurious"
};

static void AddDerived(AVDIAG_DERIVED *out, size_t maxOut, size_t *count, const char *key,
                       const char *label, int kind, int present, uint64_t num, uint64_t den)
{
    AVDIAG_DERIVED *d;
    if (*count >= maxOut)
        return;
    d = &out[(*count)++];
    d->Key = key;
    d->Label = label;
    d->Kind = kind;
    d->Numerator = num;
    d->Denominator = den;
    d->Present = present && (kind == AVDIAG_DERIVED_INTEGER || den != 0);
}

size_t AvDiagComputeDerived(const AVDIAG_INFO *info, AVDIAG_DERIVED *out, size_t maxOut)
{
    size_t count = 0;
    int ok;
    uint64_t a, b, c;
    uint64_t submitted, completed;
    int submittedOk = 1, completedOk = 1;

    submitted = SumFields(info, SubmittedKeys, AEROVBLK_REQ_TYPES, &submittedOk);
    completed = SumFields(info, CompletedKeys, AEROVBLK_REQ_TYPES, &completedOk);

    ok = GetByKey(info, "queue_size", &a) & GetByKey(info, "num_free", &b);
    AddDerived(out, maxOut, &count, "descriptors_in_use", "Descriptors in use (size - free)",
               AVDIAG_DERIVED_INTEGER, ok && b <= a, a - (b <= a ? b : a), 0);
    ok = GetByKey(info, "avail_idx", &a) & GetByKey(info, "used_idx", &b);
    AddDerived(out, maxOut, &count, "avail_used_gap", "Avail - used index (mod 65536)",
               AVDIAG_DERIVED_INTEGER, ok, (uint16_t)(a - b), 0);

    AddDerived(out, maxOut, &count, "submitted_total", "Requests submitted (all types)",
               AVDIAG_DERIVED_INTEGER, submittedOk, submitted, 0);
    AddDerived(out, maxOut, &count, "completed_total", "Requests completed (all types)",
               AVDIAG_DERIVED_INTEGER, completedOk, completed, 0);
    AddDerived(out, maxOut, &count, "outstanding", "Submitted - completed",
               AVDIAG_DERIVED_INTEGER, submittedOk && completedOk && completed <= submitted,
               submitted - (completed <= submitted ? completed : submitted), 0);

    ok = GetByKey(info, "capacity_sectors", &a);
    AddDerived(out, maxOut, &count, "capacity_bytes", "Capacity (bytes)",
               AVDIAG_DERIVED_INTEGER, ok && a <= UINT64_MAX / 512u, a * 512u, 0);

    ok = GetByKey(info, "completions_in_interrupts", &a) & GetByKey(info, "interrupts_queue", &b);
    AddDerived(out, maxOut, &count, "completions_per_interrupt", "Completions per queue interrupt (avg)",
               AVDIAG_DERIVED_RATIO, ok, a, b);
    ok = GetByKey(info, "doorbells_written", &a);
    AddDerived(out, maxOut, &count, "requests_per_doorbell", "Requests per doorbell (avg)",
               AVDIAG_DERIVED_RATIO, ok && submittedOk, submitted, a);
    ok = ok & GetByKey(info, "doorbells_suppressed", &b);
    AddDerived(out, maxOut, &count, "doorbells_suppressed_percent", "Doorbells suppressed (%)",
               AVDIAG_DERIVED_PERCENT, ok && a + b >= a, b, a + b);

    ok = 1;
    c = SumFields(info, InterruptKeys, sizeof(InterruptKeys) / sizeof(InterruptKeys[0]), &ok);
    ok = ok && GetByKey(info, "interrupts_spurious", &a);
    AddDerived(out, maxOut, &count, "spurious_interrupts_percent", "Spurious interrupts (%)",
               AVDIAG_DERIVED_PERCENT, ok, a, c);

    /* The driver counts bytes when a request completes OK: divide by completions. */
    ok = GetByKey(info, "bytes_read", &a) & GetByKey(info, "completed_read", &b);
    AddDerived(out, maxOut, &count, "average_read_bytes", "Average read size (bytes)",
               AVDIAG_DERIVED_RATIO, ok, a, b);
    ok = GetByKey(info, "bytes_written", &a) & GetByKey(info, "completed_write", &b);
    AddDerived(out, maxOut, &count, "average_write_bytes", "Average write size (bytes)",
               AVDIAG_DERIVED_RATIO, ok, a, b);

    ok = 1;
    a = SumFields(info, ErrorKeys, sizeof(ErrorKeys) / sizeof(ErrorKeys[0]), &ok);
    AddDerived(out, maxOut, &count, "errors_total", "Errors (all classes)",
               AVDIAG_DERIVED_INTEGER, ok, a, 0);
    a = SumFields(info, DeviceErrorKeys, sizeof(DeviceErrorKeys) / sizeof(DeviceErrorKeys[0]), &ok);
    AddDerived(out, maxOut, &count, "errors_percent", "Device errors per completed request (%)",
               AVDIAG_DERIVED_PERCENT, ok && completedOk, a, completed);
    ok = GetByKey(info, "busy_completions", &a);
    AddDerived(out, maxOut, &count, "busy_percent", "BUSY per completed request (%)",
               AVDIAG_DERIVED_PERCENT, ok && completedOk, a, completed);
    return count;
}

static void DerivedText(const AVDIAG_DERIVED *d, char *out, size_t outSize)
{
    char num[AV_NUM_TEXT];
    if (!d->Present)
        snprintf(out, outSize, "null");
    else if (d->Kind == AVDIAG_DERIVED_INTEGER)
        snprintf(out, outSize, "%s", U64Dec(num, d->Numerator));
    else
        AvDiagFormatRatio(out, outSize, d->Numerator, d->Denominator, d->Kind == AVDIAG_DERIVED_PERCENT);
}

/* ---- text report ------------------------------------------------------------- */
static void PutBitNames(AV_SINK *sink, uint64_t value, unsigned bits,
                        const char *(*name)(unsigned), int json)
{
    unsigned bit;
    int first = 1;
    for (bit = 0; bit < bits; bit++) {
        const char *n;
        if (!(value & ((uint64_t)1 << bit)) || (n = name(bit)) == NULL)
            continue;
        if (json)
            Putf(sink, "%s\"%s\"", first ? "" : ", ", n);
        else
            Putf(sink, "%s%s", first ? "" : " ", n);
        first = 0;
    }
}

static void PutUnknownBits(AV_SINK *sink, uint64_t value, unsigned bits,
                           const char *(*name)(unsigned), const char *separator)
{
    unsigned bit;
    int first = 1;
    for (bit = 0; bit < bits; bit++) {
        if (!(value & ((uint64_t)1 << bit)) || name(bit) != NULL)
            continue;
        Putf(sink, "%s%u", first ? "" : separator, bit);
        first = 0;
    }
}

static int HasUnknownBits(uint64_t value, unsigned bits, const char *(*name)(unsigned))
{
    unsigned bit;
    for (bit = 0; bit < bits; bit++) {
        if ((value & ((uint64_t)1 << bit)) && name(bit) == NULL)
            return 1;
    }
    return 0;
}

static void PutTextValue(AV_SINK *sink, const AVDIAG_FIELD *field, uint64_t value)
{
    char num[AV_NUM_TEXT], hex[AV_NUM_TEXT];
    const char *name;

    switch (field->Kind) {
    case AVDIAG_KIND_FEATURES:
        Put(sink, U64Hex(hex, value, 16));
        Put(sink, "\n      ");
        if (value == 0)
            Put(sink, "(none)");
        PutBitNames(sink, value, 64, AvDiagFeatureName, 0);
        if (HasUnknownBits(value, 64, AvDiagFeatureName)) {
            Put(sink, "\n      unknown bits: ");
            PutUnknownBits(sink, value, 64, AvDiagFeatureName, " ");
        }
        break;
    case AVDIAG_KIND_INTMODE:
        name = InterruptModeName(value);
        Putf(sink, "%s (%s)", name != NULL ? name : "unknown", U64Dec(num, value));
        break;
    case AVDIAG_KIND_VECTOR:
        if (value == 0xFFFFu)
            Put(sink, "none (0xFFFF)");
        else
            Put(sink, U64Dec(num, value));
        break;
    case AVDIAG_KIND_FLAGS:
        Put(sink, U64Hex(hex, value, 8));
        Put(sink, " (");
        if (value == 0)
            Put(sink, "none");
        PutBitNames(sink, value, 32, FlagName, 0);
        if (HasUnknownBits(value, 32, FlagName)) {
            Put(sink, value & 0xFu ? " unknown bits " : "unknown bits ");
            PutUnknownBits(sink, value, 32, FlagName, ",");
        }
        Put(sink, ")");
        break;
    case AVDIAG_KIND_BYTES:
        Put(sink, U64Dec(num, value));
        PutBinaryUnits(sink, value);
        break;
    case AVDIAG_KIND_SECTORS:
        Putf(sink, "%s sectors", U64Dec(num, value));
        if (value <= UINT64_MAX / 512u)
            PutBinaryUnits(sink, value * 512u);
        break;
    case AVDIAG_KIND_OPTIONAL:
        Put(sink, U64Dec(num, value));
        if (value == 0)
            Put(sink, " (not negotiated)");
        break;
    default:
        Put(sink, U64Dec(num, value));
        break;
    }
}

/* JSON list of the keys of the fields not returned. */
static void PutAbsentKeys(AV_SINK *sink, const AVDIAG_INFO *info)
{
    size_t i, absent = 0;
    for (i = 0; i < AvDiagFieldCount; i++) {
        if (!AvDiagFieldPresent(info, &AvDiagFields[i]))
            Putf(sink, "%s\"%s\"", absent++ ? ", " : "", AvDiagFields[i].Key);
    }
}

static void PutNotes(AV_SINK *sink, const AVDIAG_INFO *info, int json)
{
    char num[AV_NUM_TEXT], num2[AV_NUM_TEXT];
    const char *sep = json ? ",\n    " : "\n  ";
    int n = 0;

    if (info->StructSizeInvalid) {
        Putf(sink, "%s%sLayoutVersion is set but StructSize is below 72 bytes: the extension was ignored%s",
             n++ ? sep : "", json ? "\"" : "", json ? "\"" : "");
    }
    if (info->NewerBytes > 0) {
        Putf(sink, "%s%s%s bytes of a newer driver's structure are not decoded by this tool%s",
             n++ ? sep : "", json ? "\"" : "", U64Dec(num, info->NewerBytes), json ? "\"" : "");
    }
    if (info->Returned > info->Valid && info->NewerBytes == 0 && info->Layout != AVDIAG_LAYOUT_NONE) {
        Putf(sink, "%s%s%s of %s returned bytes are outside the driver's layout and were ignored%s",
             n++ ? sep : "", json ? "\"" : "", U64Dec(num, info->Returned - info->Valid),
             U64Dec(num2, info->Returned), json ? "\"" : "");
    }
    if (info->Layout == AVDIAG_LAYOUT_NONE) {
        Putf(sink, "%s%sfewer than 16 bytes returned: nothing to decode%s",
             n++ ? sep : "", json ? "\"" : "", json ? "\"" : "");
    }
}

size_t AvDiagFormatText(const AVDIAG_INFO *info, const char *source, char *buffer, size_t bufferSize)
{
    AV_SINK sink;
    AVDIAG_DERIVED derived[AVDIAG_DERIVED_MAX];
    char num[AV_NUM_TEXT], num2[AV_NUM_TEXT];
    size_t i, count, shown, absentFields = 0, absentGroups = 0;
    unsigned group;

    SinkInit(&sink, buffer, bufferSize);
    Put(&sink, "aerovblk diagnostics");
    if (source != NULL) {
        Put(&sink, ": ");
        Put(&sink, source);
    }
    Putf(&sink, "\nReply: %s bytes, %s bytes decoded: %s\n", U64Dec(num, info->Returned),
         U64Dec(num2, info->Valid), LayoutDescription(info->Layout));

    /* Sections with at least one returned field; absent ones are summarised below. */
    for (group = 0; group < GROUP_COUNT; group++) {
        size_t present = 0;
        for (i = 0; i < AvDiagFieldCount; i++) {
            if (AvDiagFields[i].Group == group)
                present += (size_t)AvDiagFieldPresent(info, &AvDiagFields[i]);
        }
        if (present == 0)
            continue;
        Putf(&sink, "\n%s\n", GroupTitles[group]);
        for (i = 0; i < AvDiagFieldCount; i++) {
            const AVDIAG_FIELD *f = &AvDiagFields[i];
            uint64_t value;
            if (f->Group != group)
                continue;
            Putf(&sink, "  %-32s ", f->Label);
            if (AvDiagGetField(info, f, &value))
                PutTextValue(&sink, f, value);
            else
                Put(&sink, "(not returned)");
            Put(&sink, "\n");
        }
    }

    count = AvDiagComputeDerived(info, derived, AVDIAG_DERIVED_MAX);
    Put(&sink, "\nDerived\n");
    for (i = 0, shown = 0; i < count; i++) {
        char text[AV_NUM_TEXT + 16];
        if (!derived[i].Present)
            continue;
        DerivedText(&derived[i], text, sizeof(text));
        Putf(&sink, "  %-40s %s\n", derived[i].Label, text);
        shown++;
    }
    if (shown == 0)
        Put(&sink, "  (none: their inputs were not returned)\n");

    for (i = 0; i < AvDiagFieldCount; i++)
        absentFields += (size_t)!AvDiagFieldPresent(info, &AvDiagFields[i]);
    Putf(&sink, "\nNot returned by this driver: %s field(s)", U64Dec(num, absentFields));
    for (group = 0; group < GROUP_COUNT; group++) {
        size_t present = 0;
        for (i = 0; i < AvDiagFieldCount; i++) {
            if (AvDiagFields[i].Group == group)
                present += (size_t)AvDiagFieldPresent(info, &AvDiagFields[i]);
        }
        if (present == 0)
            Putf(&sink, "%s%s", absentGroups++ ? ", " : " - sections: ", GroupTitles[group]);
    }
    Put(&sink, "\n");
    if (info->StructSizeInvalid || info->NewerBytes > 0 || info->Returned > info->Valid
        || info->Layout == AVDIAG_LAYOUT_NONE) {
        Put(&sink, "Notes:\n");
        PutNotes(&sink, info, 0);
        Put(&sink, "\n");
    }
    return sink.Length;
}

/* ---- JSON ------------------------------------------------------------------------ */
size_t AvDiagFormatJson(const AVDIAG_INFO *info, const char *source, char *buffer, size_t bufferSize)
{
    AV_SINK sink;
    AVDIAG_DERIVED derived[AVDIAG_DERIVED_MAX];
    char num[AV_NUM_TEXT];
    uint64_t value;
    size_t i, count;
    int complete = 1;

    for (i = 0; i < AvDiagFieldCount; i++)
        complete &= AvDiagFieldPresent(info, &AvDiagFields[i]);

    SinkInit(&sink, buffer, bufferSize);
    Putf(&sink, "{\n  \"format_version\": %u,\n  \"device\": ", AVDIAG_JSON_FORMAT_VERSION);
    PutJsonString(&sink, source);
    Putf(&sink, ",\n  \"returned_length\": %s", U64Dec(num, info->Returned));
    Putf(&sink, ",\n  \"decoded_length\": %s", U64Dec(num, info->Valid));
    Putf(&sink, ",\n  \"layout\": \"%s\"", LayoutName(info->Layout));
    Putf(&sink, ",\n  \"complete\": %s", complete ? "true" : "false");
    Putf(&sink, ",\n  \"newer_bytes_ignored\": %s", U64Dec(num, info->NewerBytes));

    Put(&sink, ",\n  \"fields\": {");
    for (i = 0; i < AvDiagFieldCount; i++) {
        const AVDIAG_FIELD *f = &AvDiagFields[i];
        Putf(&sink, "%s\n    \"%s\": ", i ? "," : "", f->Key);
        if (AvDiagGetField(info, f, &value))
            Put(&sink, U64Dec(num, value));
        else
            Put(&sink, "null");
    }
    Put(&sink, "\n  }");

    Put(&sink, ",\n  \"features\": ");
    if (GetByKey(info, "negotiated_features", &value)) {
        char hex[AV_NUM_TEXT];
        Putf(&sink, "{\"hex\": \"%s\", \"names\": [", U64Hex(hex, value, 16));
        PutBitNames(&sink, value, 64, AvDiagFeatureName, 1);
        Put(&sink, "], \"unknown_bits\": [");
        PutUnknownBits(&sink, value, 64, AvDiagFeatureName, ", ");
        Put(&sink, "]}");
    } else {
        Put(&sink, "null");
    }

    Put(&sink, ",\n  \"interrupt_mode_name\": ");
    if (GetByKey(info, "interrupt_mode", &value) && InterruptModeName(value) != NULL)
        Putf(&sink, "\"%s\"", InterruptModeName(value));
    else
        Put(&sink, "null");

    Put(&sink, ",\n  \"flags_names\": ");
    if (GetByKey(info, "flags", &value)) {
        Put(&sink, "[");
        PutBitNames(&sink, value, 32, FlagName, 1);
        Put(&sink, "]");
    } else {
        Put(&sink, "null");
    }

    count = AvDiagComputeDerived(info, derived, AVDIAG_DERIVED_MAX);
    Put(&sink, ",\n  \"derived\": {");
    for (i = 0; i < count; i++) {
        char text[AV_NUM_TEXT + 16];
        DerivedText(&derived[i], text, sizeof(text));
        Putf(&sink, "%s\n    \"%s\": %s", i ? "," : "", derived[i].Key, text);
    }
    Put(&sink, "\n  }");

    Put(&sink, ",\n  \"absent_fields\": [");
    PutAbsentKeys(&sink, info);
    Put(&sink, "],\n  \"notes\": [");
    PutNotes(&sink, info, 1);
    Put(&sink, "]\n}\n");
    return sink.Length;
}
