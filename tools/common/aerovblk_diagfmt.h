/*
 * aerovblk_diagfmt: build AEROVBLK QUERY requests, check the replies, decode
 * AEROVBLK_QUERY_INFO and format it as a readable report or as JSON.
 *
 * Plain C99 without any OS call, so one copy serves tools/aerovblk-query (Windows user
 * mode, mingw-w64 x86/x64), the simulator's `ioctl` command and the unit tests (Linux,
 * ASan/UBSan). Everything works on byte buffers: multi-byte values are read and written
 * little-endian byte by byte, and no function reads past the length it is given.
 *
 * The ABI itself is include/aerovblk_ioctl.h and docs/diagnostics.md.
 */
#ifndef AEROVBLK_DIAGFMT_H
#define AEROVBLK_DIAGFMT_H

#include <stddef.h>
#include <stdint.h>
#include "aerovblk_ioctl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SRB_IO_CONTROL ------------------------------------------------------------
 * Declared here as byte offsets rather than by including ntddscsi.h: our
 * include/wdk headers are for kernel builds and clash with <windows.h>, and Linux has
 * no ntddscsi.h. Layout (ntddscsi.h, 28 bytes on x86 and x64, no padding):
 *   0 ULONG HeaderLength | 4 UCHAR Signature[8] | 12 ULONG Timeout |
 *   16 ULONG ControlCode | 20 ULONG ReturnCode  | 24 ULONG Length; payload at HeaderLength.
 */
#define AVDIAG_SRBIO_SIZE             28u
#define AVDIAG_SRBIO_OFF_HEADERLENGTH 0u
#define AVDIAG_SRBIO_OFF_SIGNATURE    4u
#define AVDIAG_SRBIO_OFF_TIMEOUT      12u
#define AVDIAG_SRBIO_OFF_CONTROLCODE  16u
#define AVDIAG_SRBIO_OFF_RETURNCODE   20u
#define AVDIAG_SRBIO_OFF_LENGTH       24u

/* CTL_CODE(FILE_DEVICE_CONTROLLER, 0x402, METHOD_BUFFERED, FILE_READ_ACCESS|FILE_WRITE_ACCESS) */
#define AVDIAG_IOCTL_SCSI_MINIPORT    0x0004D008u

/* NTSTATUS values the driver puts in ReturnCode (docs/diagnostics.md). */
#define AVDIAG_STATUS_SUCCESS             0x00000000u
#define AVDIAG_STATUS_INVALID_PARAMETER   0xC000000Du
#define AVDIAG_STATUS_INVALID_DEVICE_REQUEST 0xC0000010u
#define AVDIAG_STATUS_BUFFER_TOO_SMALL    0xC0000023u
#define AVDIAG_STATUS_NOT_SUPPORTED       0xC00000BBu

#define AVDIAG_DEFAULT_TIMEOUT_SECONDS 10u
/* Payload space the query tool offers: room for fields a newer driver may append. */
#define AVDIAG_QUERY_PAYLOAD_LENGTH    1024u

typedef struct AVDIAG_SRBIO {
    uint32_t HeaderLength;
    uint8_t  Signature[AEROVBLK_SIGNATURE_LENGTH];
    uint32_t Timeout;
    uint32_t ControlCode;
    uint32_t ReturnCode;
    uint32_t Length;
} AVDIAG_SRBIO;

/* A well-formed QUERY header asking for payloadLength bytes. Callers that want a
 * malformed request (the simulator's tests) change fields before storing it. */
void AvDiagSrbIoInitQuery(AVDIAG_SRBIO *header, uint32_t payloadLength);

/* Writes the 28 header bytes. Returns AVDIAG_SRBIO_SIZE, or 0 if bufferSize < 28. */
size_t AvDiagSrbIoStore(const AVDIAG_SRBIO *header, uint8_t *buffer, size_t bufferSize);

/* Reads the 28 header bytes. Returns 1, or 0 (header zeroed) if length < 28. */
int AvDiagSrbIoLoad(const uint8_t *buffer, size_t length, AVDIAG_SRBIO *header);

/* Header + payloadLength zero bytes: the whole DeviceIoControl buffer of a QUERY.
 * Returns its size, or 0 if bufferSize is too small (nothing written then). */
size_t AvDiagBuildQueryRequest(uint8_t *buffer, size_t bufferSize, uint32_t payloadLength);

typedef enum AVDIAG_REPLY_STATUS {
    AVDIAG_REPLY_OK = 0,            /* at least 16 payload bytes, ReturnCode success */
    AVDIAG_REPLY_NO_HEADER,         /* fewer than 28 bytes came back */
    AVDIAG_REPLY_BAD_HEADER_LENGTH, /* HeaderLength < 28 or past the returned bytes */
    AVDIAG_REPLY_BAD_SIGNATURE,     /* Signature is not "AEROVBLK" */
    AVDIAG_REPLY_DRIVER_STATUS,     /* ReturnCode is not STATUS_SUCCESS */
    AVDIAG_REPLY_TOO_SHORT,         /* success, but fewer than 16 payload bytes */
    AVDIAG_REPLY_EMPTY              /* payload all zero: a miniport ignored the request */
} AVDIAG_REPLY_STATUS;

typedef struct AVDIAG_REPLY {
    AVDIAG_REPLY_STATUS Status;
    AVDIAG_SRBIO Header;            /* as returned (zero when NO_HEADER) */
    const uint8_t *Payload;         /* into the caller's buffer; NULL before the header checks pass */
    size_t PayloadLength;           /* min(Header.Length, returned - HeaderLength) */
    int LengthClamped;              /* Header.Length claimed more bytes than came back */
} AVDIAG_REPLY;

/* Checks a reply buffer of which `returned` bytes are valid (DeviceIoControl's
 * BytesReturned, or the simulator's DataTransferLength). Never reads past `returned`. */
AVDIAG_REPLY_STATUS AvDiagParseReply(const uint8_t *buffer, size_t returned, AVDIAG_REPLY *reply);
const char *AvDiagReplyStatusText(AVDIAG_REPLY_STATUS status);
/* "STATUS_BUFFER_TOO_SMALL" etc. for the codes above, NULL for any other value. */
const char *AvDiagNtStatusName(uint32_t status);

/* ---- decoding ------------------------------------------------------------------ */
typedef enum AVDIAG_LAYOUT {
    AVDIAG_LAYOUT_NONE = 0,   /* fewer than 16 bytes: nothing decodable */
    AVDIAG_LAYOUT_ORIGINAL,   /* 16..63 bytes: the original layout (+ any whole Aero fields) */
    AVDIAG_LAYOUT_AERO,       /* 0x40 bytes of the Aero guest-tools layout, no extension */
    AVDIAG_LAYOUT_EXTENDED    /* LayoutVersion != 0 and StructSize valid: aerovblk extension */
} AVDIAG_LAYOUT;

typedef struct AVDIAG_INFO {
    size_t Returned;          /* payload bytes the caller passed */
    size_t Valid;             /* bytes decoded: see AvDiagDecode */
    AVDIAG_LAYOUT Layout;
    size_t NewerBytes;        /* bytes of a newer driver's larger structure, not decoded */
    int StructSizeInvalid;    /* LayoutVersion set but StructSize < 0x48: extension ignored */
    uint8_t Raw[sizeof(AEROVBLK_QUERY_INFO)]; /* the Valid bytes, zero after them */
    AEROVBLK_QUERY_INFO Info; /* the same bytes as a struct (x86/x64 are little-endian) */
} AVDIAG_INFO;

/* Decodes `length` payload bytes (payload may be NULL when length is 0).
 * Valid = min(length, sizeof); below 0x48 bytes or with LayoutVersion 0 it is cut to
 * the last whole frozen layout (0x40) when >= 0x40; with the extension it is further cut
 * to StructSize, because bytes past the driver's own structure are not fields. */
void AvDiagDecode(const uint8_t *payload, size_t length, AVDIAG_INFO *info);

/* ---- the field table (one entry per ABI field; arrays expanded) ---------------- */
enum AVDIAG_KIND {
    AVDIAG_KIND_COUNT = 0,    /* plain number */
    AVDIAG_KIND_FEATURES,     /* virtio feature bits */
    AVDIAG_KIND_INTMODE,      /* AEROVBLK_INTERRUPT_* */
    AVDIAG_KIND_VECTOR,       /* MSI-X vector, 0xFFFF = none */
    AVDIAG_KIND_FLAGS,        /* AEROVBLK_FLAG_* */
    AVDIAG_KIND_BYTES,        /* a size in bytes */
    AVDIAG_KIND_SECTORS,      /* 512-byte sectors */
    AVDIAG_KIND_OPTIONAL      /* 0 = not negotiated */
};

typedef struct AVDIAG_FIELD {
    const char *Name;         /* ABI name, e.g. "Submitted[READ]" */
    const char *Key;          /* JSON key, e.g. "submitted_read" */
    const char *Label;        /* report label */
    uint16_t Offset;
    uint8_t Size;             /* 2, 4 or 8 */
    uint8_t Kind;             /* enum AVDIAG_KIND */
    uint8_t Group;            /* index into the report's sections */
} AVDIAG_FIELD;

extern const AVDIAG_FIELD AvDiagFields[];
extern const size_t AvDiagFieldCount;

const AVDIAG_FIELD *AvDiagFindField(const char *keyOrName);
int AvDiagFieldPresent(const AVDIAG_INFO *info, const AVDIAG_FIELD *field);
/* Returns 1 and the value if the field was returned, else 0 and *value = 0. */
int AvDiagGetField(const AVDIAG_INFO *info, const AVDIAG_FIELD *field, uint64_t *value);

/* Feature bit name without the VIRTIO_[BLK_]F_ prefix, NULL if this tool has none. */
const char *AvDiagFeatureName(unsigned bit);

/* ---- derived values -------------------------------------------------------------- */
enum AVDIAG_DERIVED_KIND {
    AVDIAG_DERIVED_INTEGER = 0,  /* Numerator (Denominator unused) */
    AVDIAG_DERIVED_RATIO,        /* Numerator / Denominator, 2 decimals, truncated */
    AVDIAG_DERIVED_PERCENT       /* 100 * Numerator / Denominator, 2 decimals, truncated */
};

typedef struct AVDIAG_DERIVED {
    const char *Key;
    const char *Label;
    int Kind;                 /* enum AVDIAG_DERIVED_KIND */
    int Present;              /* every input returned and a non-zero denominator */
    uint64_t Numerator;
    uint64_t Denominator;
} AVDIAG_DERIVED;

#define AVDIAG_DERIVED_MAX 16
/* Fills up to AVDIAG_DERIVED_MAX entries (always the same keys, in the same order);
 * returns how many. */
size_t AvDiagComputeDerived(const AVDIAG_INFO *info, AVDIAG_DERIVED *out, size_t maxOut);

/* Decimal text of num/den (percent: 100*num/den) truncated to 2 decimals; "null" if den == 0. */
void AvDiagFormatRatio(char *out, size_t outSize, uint64_t num, uint64_t den, int percent);

/* ---- formatting ------------------------------------------------------------------
 * Both behave like snprintf: write at most bufferSize bytes, always NUL-terminated when
 * bufferSize > 0, and return the full length (excluding the NUL) so callers can size.
 * `source` names the device (e.g. "\\.\Scsi1:"); may be NULL. */
size_t AvDiagFormatText(const AVDIAG_INFO *info, const char *source, char *buffer, size_t bufferSize);
/* One JSON object. Keys are stable: every field key is always emitted (null when absent). */
size_t AvDiagFormatJson(const AVDIAG_INFO *info, const char *source, char *buffer, size_t bufferSize);
/* A JSON string literal (with quotes) for text; for callers that wrap reports in JSON. */
size_t AvDiagJsonString(const char *text, char *buffer, size_t bufferSize);

#define AVDIAG_JSON_FORMAT_VERSION 1u

#ifdef __cplusplus
}
#endif
#endif
