/*
 * Diagnostics IOCTL: IOCTL_SCSI_MINIPORT with signature "AEROVBLK" (ABI in
 * include/aerovblk_ioctl.h, every field in docs/diagnostics.md).
 *
 * The buffer is untrusted: every length and offset is validated before any byte is
 * read or written. The reply is built in a zeroed local, so no uninitialised byte or
 * kernel address reaches the caller. Counters are read under the queue lock that
 * protects them; the I/O path pays nothing for them but plain increments.
 */
#include "adapter.h"
#include <ntddscsi.h>
#include "aerovblk_ioctl.h"

AV_STATIC_ASSERT(sizeof(SRB_IO_CONTROL) == 28, SrbIoControlIs28Bytes);

static VOID AerovblkFillQueryInfo(PAEROVBLK_ADAPTER Adapter, AEROVBLK_QUERY_INFO *Info)
{
    STOR_LOCK_HANDLE Lock;
    const VIRTQUEUE *Vq = &Adapter->Queue.Vq;
    const VBLK_STATS *Stats = &Adapter->Queue.Stats;
    const AEROVBLK_COUNTERS *C = &Adapter->Counters;
    ULONG I;

    AvZeroMemory(Info, sizeof(*Info));
    AerovblkLockQueue(Adapter, &Lock);
    Info->NegotiatedFeatures = Adapter->Features;
    Info->QueueSize = VqSize(Vq);
    Info->NumFree = VqNumFree(Vq);
    Info->AvailIdx = VqAvailIdx(Vq);
    Info->UsedIdx = VqUsedIdx(Vq);
    Info->InterruptMode = Adapter->MessageCount ? AEROVBLK_INTERRUPT_MSI : AEROVBLK_INTERRUPT_INTX;
    Info->MsixConfigVector = Adapter->ConfigVector;
    Info->MsixQueue0Vector = Adapter->QueueVector;
    Info->MessageCount = Adapter->MessageCount;
    Info->Flags = Adapter->State;
    Info->AbortSrbCount = C->AbortSrbCount;
    Info->ResetDeviceSrbCount = C->ResetDeviceSrbCount;
    Info->ResetBusSrbCount = C->ResetBusSrbCount;
    Info->PnpSrbCount = C->PnpSrbCount;
    Info->IoctlResetCount = C->IoctlResetCount;
    Info->CapacityChangeEvents = C->CapacityChangeEvents;
    Info->ResetDetectedCount = C->ResetDetectedCount;
    Info->HwResetBusCount = C->HwResetBusCount;

    Info->LayoutVersion = AEROVBLK_QUERY_LAYOUT_VERSION;
    Info->StructSize = sizeof(AEROVBLK_QUERY_INFO);
    Info->CapacitySectors = Adapter->Disk.Config.CapacitySectors;
    Info->LogicalBlockSize = Adapter->Disk.BlockSize;
    Info->SegMax = (Adapter->Features & VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX)) ? Adapter->Disk.Config.SegMax : 0;
    Info->SizeMax = (Adapter->Features & VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX)) ? Adapter->Disk.Config.SizeMax : 0;
    Info->MaximumTransferLength = Adapter->Disk.MaxTransferBytes;
    for (I = 0; I < AEROVBLK_REQ_TYPES; I++) {
        Info->Submitted[I] = Stats->Submitted[I];
        Info->Completed[I] = Stats->Completed[I];
    }
    Info->BytesRead = Stats->BytesRead;
    Info->BytesWritten = Stats->BytesWritten;
    Info->DoorbellsWritten = C->DoorbellsWritten;
    Info->DoorbellsSuppressed = C->DoorbellsSuppressed;
    Info->InterruptsQueue = C->InterruptsQueue;
    Info->InterruptsConfig = C->InterruptsConfig;
    Info->InterruptsSpurious = C->InterruptsSpurious;
    Info->CompletionsInInterrupts = C->CompletionsInInterrupts;
    Info->MaxCompletionsPerInterrupt = C->MaxCompletionsPerInterrupt;
    Info->BusyCompletions = C->BusyCompletions;
    /* A missing or invalid status byte is device misbehaviour the SRB saw as IOERR. */
    Info->ErrorsIoErr = Stats->ErrorsIoErr + Stats->ErrorsNoStatus + Stats->ErrorsBadStatus;
    Info->ErrorsUnsupported = Stats->ErrorsUnsupported;
    Info->ErrorsInvalidRequest = Adapter->Disk.ErrorsInvalidRequest;
    Info->ErrorsOutOfRange = Adapter->Disk.ErrorsOutOfRange;
    Info->MaxInFlight = Stats->MaxInFlight;
    Info->CurrentInFlight = Stats->InFlight;
    AerovblkUnlockQueue(Adapter, &Lock);
}

static BOOLEAN AerovblkSignatureMatches(const SRB_IO_CONTROL *Header)
{
    static const UCHAR Expected[AEROVBLK_SIGNATURE_LENGTH] = { 'A', 'E', 'R', 'O', 'V', 'B', 'L', 'K' };
    ULONG I;
    for (I = 0; I < AEROVBLK_SIGNATURE_LENGTH; I++) {
        if (Header->Signature[I] != Expected[I]) {
            return FALSE;
        }
    }
    return TRUE;
}

/* SRB_FUNCTION_IO_CONTROL. Caller: HwStartIo (StartIo lock held, DISPATCH_LEVEL;
 * dump mode: no locks). Sets SrbStatus and the header's ReturnCode/Length; the caller
 * completes the SRB. */
VOID AerovblkHandleIoControl(PAEROVBLK_ADAPTER Adapter, PSCSI_REQUEST_BLOCK Srb)
{
    SRB_IO_CONTROL *Header = (SRB_IO_CONTROL *)Srb->DataBuffer;
    ULONG Available;
    AEROVBLK_QUERY_INFO Info;
    ULONG Copy;

    /* The header itself must be inside the buffer before any field is read. */
    if (Header == NULL || Srb->DataTransferLength < sizeof(SRB_IO_CONTROL)) {
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        Srb->DataTransferLength = 0;
        return;
    }
    if (!AerovblkSignatureMatches(Header)) {
        /* Not addressed to us (disk.sys' SMART probe "SCSIDISK" IOCTL_SCSI_MINIPORT_IDENTIFY
         * among others): the buffer is left alone and nothing is transferred, which disk.sys
         * takes for "SMART not supported" (facts §11.11). */
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        Srb->DataTransferLength = 0;
        return;
    }
    if (Header->HeaderLength < sizeof(SRB_IO_CONTROL) || Header->HeaderLength > Srb->DataTransferLength) {
        Header->ReturnCode = (ULONG)STATUS_INVALID_PARAMETER;
        Header->Length = 0;
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        return;
    }
    Available = Srb->DataTransferLength - Header->HeaderLength;
    if (Header->Length > Available) {
        Header->ReturnCode = (ULONG)STATUS_INVALID_PARAMETER;
        Header->Length = 0;
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        return;
    }
    if (Header->ControlCode != AEROVBLK_IOCTL_QUERY) {
        Header->ReturnCode = (ULONG)STATUS_NOT_SUPPORTED;
        Header->Length = 0;
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        return;
    }
    if (Header->Length < AEROVBLK_QUERY_MIN_LENGTH) {
        Header->ReturnCode = (ULONG)STATUS_BUFFER_TOO_SMALL;
        Header->Length = 0;
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        return;
    }
    AerovblkFillQueryInfo(Adapter, &Info);
    Copy = Header->Length < sizeof(Info) ? Header->Length : (ULONG)sizeof(Info);
    AvCopyMemory((PUCHAR)Header + Header->HeaderLength, &Info, Copy);
    Header->Length = Copy;
    Header->ReturnCode = (ULONG)STATUS_SUCCESS;
    Srb->SrbStatus = SRB_STATUS_SUCCESS;
}
