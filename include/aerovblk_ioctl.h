/*
 * aerovblk diagnostics ABI: IOCTL_SCSI_MINIPORT with an SRB_IO_CONTROL header
 * (28 bytes) followed by AEROVBLK_QUERY_INFO. Shared by the driver, the Windows
 * query tool, the simulator and the tests. Self-contained (plain C types only) so
 * it can be included by kernel, Win32 and Linux code alike.
 *
 * Compatibility rules:
 *  - Bytes 0x00-0x0F are the original layout; 0x10-0x3F the layout Aero's guest tools
 *    read. Both are frozen.
 *  - From 0x40 the layout is append-only; LayoutVersion increments when fields are
 *    appended, StructSize is sizeof(AEROVBLK_QUERY_INFO) of the driver that answered.
 *  - The driver copies min(requested, sizeof) bytes and sets SRB_IO_CONTROL.Length to
 *    what it copied; fewer than 16 requested -> STATUS_BUFFER_TOO_SMALL.
 * All fields little-endian. See docs/diagnostics.md for every field.
 */
#ifndef AEROVBLK_IOCTL_H
#define AEROVBLK_IOCTL_H

#define AEROVBLK_SIGNATURE            "AEROVBLK"   /* 8 bytes, no terminator in the header */
#define AEROVBLK_SIGNATURE_LENGTH     8
#define AEROVBLK_IOCTL_QUERY          0x8000A001u
#define AEROVBLK_QUERY_MIN_LENGTH     16u          /* the original layout */
#define AEROVBLK_QUERY_AERO_LENGTH    0x40u        /* through HwResetBusCount */
#define AEROVBLK_QUERY_LAYOUT_VERSION 1u

/* InterruptMode */
#define AEROVBLK_INTERRUPT_INTX 0u
#define AEROVBLK_INTERRUPT_MSI  1u
/* Flags */
#define AEROVBLK_FLAG_REMOVED          0x1u
#define AEROVBLK_FLAG_SURPRISE_REMOVED 0x2u
#define AEROVBLK_FLAG_RESET_IN_PROGRESS 0x4u
#define AEROVBLK_FLAG_RESET_PENDING    0x8u
#define AEROVBLK_FLAG_STOPPED          0x10u   /* aerovblk: adapter stopped (power down) */

/* Request types counted in Submitted[]/Completed[] */
enum {
    AEROVBLK_REQ_READ = 0,
    AEROVBLK_REQ_WRITE,
    AEROVBLK_REQ_FLUSH,
    AEROVBLK_REQ_DISCARD,
    AEROVBLK_REQ_WRITE_ZEROES,
    AEROVBLK_REQ_GET_ID,
    AEROVBLK_REQ_TYPES
};

#pragma pack(push, 1)
typedef struct _AEROVBLK_QUERY_INFO {
    /* 0x00: original layout */
    unsigned long long NegotiatedFeatures;
    unsigned short QueueSize;
    unsigned short NumFree;
    unsigned short AvailIdx;
    unsigned short UsedIdx;
    /* 0x10: Aero guest-tools layout */
    unsigned int InterruptMode;
    unsigned short MsixConfigVector;
    unsigned short MsixQueue0Vector;      /* 0xFFFF = none */
    unsigned int MessageCount;
    unsigned int Flags;
    unsigned int AbortSrbCount;
    unsigned int ResetDeviceSrbCount;
    unsigned int ResetBusSrbCount;
    unsigned int PnpSrbCount;
    unsigned int IoctlResetCount;
    unsigned int CapacityChangeEvents;
    unsigned int ResetDetectedCount;
    unsigned int HwResetBusCount;
    /* 0x40: aerovblk, append-only */
    unsigned int LayoutVersion;
    unsigned int StructSize;
    unsigned long long CapacitySectors;   /* 512-byte sectors */
    unsigned int LogicalBlockSize;
    unsigned int SegMax;                  /* 0 when not negotiated */
    unsigned int SizeMax;                 /* 0 when not negotiated */
    unsigned int MaximumTransferLength;   /* as told to StorPort */
    unsigned long long Submitted[AEROVBLK_REQ_TYPES];   /* 0x60 */
    unsigned long long Completed[AEROVBLK_REQ_TYPES];   /* 0x90 */
    unsigned long long BytesRead;         /* 0xC0 */
    unsigned long long BytesWritten;
    unsigned long long DoorbellsWritten;  /* 0xD0 */
    unsigned long long DoorbellsSuppressed;
    unsigned long long InterruptsQueue;   /* 0xE0 */
    unsigned long long InterruptsConfig;
    unsigned long long InterruptsSpurious;
    unsigned long long CompletionsInInterrupts;  /* 0xF8: total completed by interrupt/DPC passes */
    unsigned int MaxCompletionsPerInterrupt;     /* 0x100 */
    unsigned int BusyCompletions;
    unsigned int ErrorsIoErr;
    unsigned int ErrorsUnsupported;
    unsigned int ErrorsInvalidRequest;           /* 0x110 */
    unsigned int ErrorsOutOfRange;
    unsigned int MaxInFlight;
    unsigned int CurrentInFlight;
} AEROVBLK_QUERY_INFO;                            /* 0x120 bytes */
#pragma pack(pop)

/* Compile-time layout checks (usable from C89 on every compiler). */
#define AEROVBLK_IOCTL_ASSERT(c, n) typedef char AerovblkIoctlAssert_##n[(c) ? 1 : -1]
#if defined(__GNUC__)
#define AEROVBLK_OFFSETOF(f) __builtin_offsetof(AEROVBLK_QUERY_INFO, f)
#else
#include <stddef.h>
#define AEROVBLK_OFFSETOF(f) offsetof(AEROVBLK_QUERY_INFO, f)
#endif
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(InterruptMode) == 0x10, interrupt_mode);
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(HwResetBusCount) == 0x3C, hw_reset_bus);
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(LayoutVersion) == 0x40, layout_version);
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(Submitted) == 0x60, submitted);
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(BytesRead) == 0xC0, bytes_read);
AEROVBLK_IOCTL_ASSERT(AEROVBLK_OFFSETOF(MaxCompletionsPerInterrupt) == 0x100, max_cpi);
AEROVBLK_IOCTL_ASSERT(sizeof(AEROVBLK_QUERY_INFO) == 0x120, size);

#endif
