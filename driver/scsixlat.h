/*
 * SCSI translation: what Windows' disk stack sends (CDBs in SRBs) into virtio-blk
 * requests, and virtio completions back into SRB status + sense. One switch, shaped
 * like a table (see docs/scsi-commands.md). Knows the SRB/CDB/sense formats and
 * blk.h; makes no StorPort calls (testable and fuzzable on the host).
 *
 * Callers: the StorPort glue, in HwStartIo (StartIo lock held, DISPATCH_LEVEL) for
 * ScsiStartSrb, and in the completion DPC (no lock held) for ScsiCompleteRequest.
 */
#ifndef AEROVBLK_SCSIXLAT_H
#define AEROVBLK_SCSIXLAT_H
#include <ntdef.h>
#include <storport.h>
#include <scsi.h>
#include "blk.h"

/* What the SCSI layer knows about the disk. Written by the glue at start/restart
 * and on config change (capacity / RO / writeback), read by the SCSI layer. */
typedef struct _SCSI_DISK {
    VPCI_DEVICE *Device;          /* for CONFIG_WCE writes (MODE SELECT) only */
    ULONGLONG Features;           /* negotiated */
    VBLK_CONFIG Config;
    ULONG BlockSize;              /* logical block size in bytes */
    ULONGLONG BlockCount;         /* logical blocks */
    ULONG MaxTransferBytes;       /* as told to StorPort (MaximumTransferLength) */
    USHORT MaxDataBuffers;        /* data buffers one request may carry */
    BOOLEAN UnitAttentionPending; /* capacity changed: 06/2A/09 on the next command */
    /* Fallback unit serial (VPD 80/83) when GET_ID yields nothing: "AEROVBLK-%08X" of
     * this value. The glue should set something stable per disk, e.g. the PCI location
     * (bus << 16 | device << 8 | function); 0 if left alone. */
    ULONG FallbackSerial;
    /* Error counters (diagnostics) */
    ULONG ErrorsInvalidRequest;
    ULONG ErrorsOutOfRange;
} SCSI_DISK;

/* Per-SRB state of the SCSI layer, embedded in the SRB extension. */
typedef struct _SCSI_REQUEST_STATE {
    UCHAR Stage;                  /* multi-step commands (e.g. write then FLUSH for FUA) */
    VBLK_REQUEST Blk;
} SCSI_REQUEST_STATE;

typedef enum _SCSI_ACTION {
    SCSI_ACTION_COMPLETE = 0,     /* SrbStatus/ScsiStatus/sense/DataTransferLength set: complete now */
    SCSI_ACTION_SUBMIT            /* State->Blk filled: submit it to the device */
} SCSI_ACTION;

/* Start an SRB of function EXECUTE_SCSI, FLUSH or SHUTDOWN. Sg is the StorPort
 * scatter/gather list of the data buffer (NULL when there is no data), DataBuffer
 * (mapped for non-read/write commands) is used for commands answered by the driver
 * itself or whose parameter data it parses (UNMAP, MODE SELECT). */
SCSI_ACTION ScsiStartSrb(SCSI_DISK *Disk, PSCSI_REQUEST_BLOCK Srb,
                         PSTOR_SCATTER_GATHER_LIST Sg, SCSI_REQUEST_STATE *State);

/* The device completed State->Blk (Blk.Status holds the virtio status). Maps the
 * status (one function: IOERR -> MEDIUM ERROR 11/00 on reads, 0C/00 on writes;
 * UNSUPP -> ILLEGAL REQUEST 20/00) or starts the next stage. */
SCSI_ACTION ScsiCompleteRequest(SCSI_DISK *Disk, PSCSI_REQUEST_BLOCK Srb,
                                SCSI_REQUEST_STATE *State);

/* Recompute BlockSize/BlockCount from Disk->Config (start and config change).
 * MaxTransferBytes / MaxDataBuffers stay as the glue set them (they were told to
 * StorPort in HwFindAdapter); 0 there means VBLK_MAX_DATA_BUFFERS / what that many
 * buffers carry. Who: the glue, under the StartIo lock or before I/O starts. */
void ScsiUpdateGeometry(SCSI_DISK *Disk);

/* Fixed-format (0x70) sense into the SRB's own SenseInfoBuffer, honouring
 * SenseInfoBufferLength, with SRB_STATUS_ERROR|AUTOSENSE_VALID as appropriate. */
void ScsiSetCheckCondition(PSCSI_REQUEST_BLOCK Srb, UCHAR SenseKey, UCHAR Asc, UCHAR Ascq);

/* INQUIRY identity (standard data bytes 8-35) */
#define SCSI_INQUIRY_VENDOR    "AERO    "          /* 8 bytes */
#define SCSI_INQUIRY_PRODUCT   "VIRTIO BLOCK    "  /* 16 bytes */
#define SCSI_INQUIRY_REVISION  "0001"              /* 4 bytes */
#define SCSI_INQUIRY_STD_BYTES 96                  /* SPC-3 standard data incl. version descriptors */
#define SCSI_FALLBACK_SERIAL_PREFIX "AEROVBLK-"

#endif
