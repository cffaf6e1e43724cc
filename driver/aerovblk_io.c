/*
 * aerovblk: the per-I/O path. HwStartIo (StartIo lock, DISPATCH_LEVEL), submission
 * under the queue lock with the doorbell outside it, the ISRs (HwInterrupt for INTx
 * and dump-mode polling, HwMsInterrupt for MSI-X; DIRQL, interrupt lock), the
 * completion DPC (no lock; takes the queue lock to drain) and the resume check made
 * from HwStartIo. Kept in one file so the hot path makes no calls between files.
 */
#include "aerovblk_int.h"

/* ----------------------------------------------------------------------------
 * I/O path
 * ------------------------------------------------------------------------- */

VOID AerovblkLockQueue(PAEROVBLK_ADAPTER Adapter, PSTOR_LOCK_HANDLE Handle)
{
    AerovblkLock(Adapter, InterruptLock, Handle);
}

VOID AerovblkUnlockQueue(PAEROVBLK_ADAPTER Adapter, PSTOR_LOCK_HANDLE Handle)
{
    AerovblkUnlock(Adapter, Handle);
}

/* Submits the SRB's virtio request: queue lock around the ring update and the kick
 * decision, doorbell after the lock is dropped (it is a VM exit). On VQ_FULL the
 * SRB goes back to StorPort as BUSY (it retries); nothing is lost.
 * Callers: HwStartIo (StartIo lock), the DPC (no lock), dump-mode polling. */
static VOID AerovblkSubmit(PAEROVBLK_ADAPTER Adapter, PAEROVBLK_SRB_EXTENSION SrbExt)
{
    STOR_LOCK_HANDLE Lock;
    VQ_STATUS Status;
    BOOLEAN Kick = FALSE;

    AerovblkLockQueue(Adapter, &Lock);
    /* REMOVED changes only under this lock and STOPPED only with the gate closed:
     * checked here, a request can never enter the ring of a removed or powered-down
     * device (e.g. a second stage submitted from the DPC while HwStartIo handles a
     * removal). The gate is held until the doorbell is written. */
    if ((Adapter->State & AEROVBLK_STATE_REMOVED) || !AerovblkGateEnter(Adapter)) {
        UCHAR Why = (Adapter->State & AEROVBLK_STATE_REMOVED) ? VBLK_STATUS_DEVICE_GONE : VBLK_STATUS_RESET;
        AerovblkUnlockQueue(Adapter, &Lock);
        SrbExt->NextCompleted = NULL;       /* a list of one: not the drain list it came from */
        AerovblkFailList(Adapter, SrbExt, Why);
        return;
    }
    Status = VblkSubmit(&Adapter->Queue, &SrbExt->Scsi.Blk);
    if (Status == VQ_OK) {
        Kick = VblkKickPrepare(&Adapter->Queue);
        if (Kick) {
            Adapter->Counters.DoorbellsWritten++;
        } else {
            Adapter->Counters.DoorbellsSuppressed++;
        }
    } else if (Status == VQ_FULL) {
        Adapter->Counters.BusyCompletions++;
    }
    AerovblkUnlockQueue(Adapter, &Lock);

    if (Kick) {
        VblkNotify(&Adapter->Queue, &Adapter->Pci);
    }
    AerovblkGateLeave(Adapter);
    if (Status == VQ_OK) {
        return;
    }
    if (Status == VQ_FULL) {
        SrbExt->Srb->SrbStatus = SRB_STATUS_BUSY;   /* StorPort re-issues it: length kept */
    } else if (Status == VQ_BROKEN) {
        /* Recovery runs from the DPC / next reset; the class driver retries. Nothing
         * was transferred (facts 11.14). */
        SrbExt->Srb->SrbStatus = SRB_STATUS_BUS_RESET;
        SrbExt->Srb->DataTransferLength = 0;
    } else {
        /* VQ_INVALID: the request as Windows gave it cannot go on the ring (a
         * scatter/gather list shorter than the transfer, or needing more buffers than
         * the device takes): refused, nothing transferred. */
        SrbExt->Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        SrbExt->Srb->DataTransferLength = 0;
    }
    AerovblkCompleteSrb(Adapter, SrbExt->Srb);
}

/* Drains the used ring: disable -> drain -> enable -> re-check (virtio 2.7.7, 2.7.14), so a
 * completion that lands between the last drain and re-enabling is not lost.
 * Returns the completed SRB extensions as a FIFO list. Caller holds the queue lock. */
static PAEROVBLK_SRB_EXTENSION AerovblkCollectCompleted(PAEROVBLK_ADAPTER Adapter, ULONG *Count)
{
    PAEROVBLK_SRB_EXTENSION Head = NULL, Tail = NULL;
    VBLK_REQUEST *Request;

    *Count = 0;
    for (;;) {
        if (!Adapter->DumpMode) {
            VqDisableInterrupts(&Adapter->Queue.Vq);
        }
        while (VblkHasCompleted(&Adapter->Queue) &&
               (Request = VblkNextCompleted(&Adapter->Queue)) != NULL) {
            PAEROVBLK_SRB_EXTENSION SrbExt = AerovblkSrbExtensionFromRequest(Request);
            SrbExt->NextCompleted = NULL;
            if (Tail != NULL) {
                Tail->NextCompleted = SrbExt;
            } else {
                Head = SrbExt;
            }
            Tail = SrbExt;
            (*Count)++;
        }
        if (Adapter->DumpMode || VqIsBroken(&Adapter->Queue.Vq) ||
            !VqEnableInterrupts(&Adapter->Queue.Vq)) {
            break;
        }
    }
    return Head;
}

/* Hands each completed request to the SCSI layer: complete the SRB, or submit its
 * next stage (FLUSH after a FUA write, the VPD page after GET_ID). No lock held on
 * entry. A next stage is submitted under the StartIo lock, like HwStartIo's own
 * submissions, so it cannot race a reset's re-initialisation (no doorbell before
 * DRIVER_OK, virtio 3.1.1). */
static VOID AerovblkFinishCompleted(PAEROVBLK_ADAPTER Adapter, PAEROVBLK_SRB_EXTENSION List)
{
    while (List != NULL) {
        PAEROVBLK_SRB_EXTENSION Next = List->NextCompleted;
        if (ScsiCompleteRequest(&Adapter->Disk, List->Srb, &List->Scsi) == SCSI_ACTION_SUBMIT) {
            STOR_LOCK_HANDLE StartIo;
            AerovblkLock(Adapter, StartIoLock, &StartIo);
            AerovblkSubmit(Adapter, List);
            AerovblkUnlock(Adapter, &StartIo);
        } else {
            AerovblkCompleteSrb(Adapter, List->Srb);
        }
        List = Next;
    }
}

/* Completion work shared by the DPC and dump-mode polling. */
static VOID AerovblkProcessCompletions(PAEROVBLK_ADAPTER Adapter)
{
    STOR_LOCK_HANDLE Lock;
    PAEROVBLK_SRB_EXTENSION Completed;
    ULONG Count;
    BOOLEAN ConfigChanged, Broken;

    AerovblkLockQueue(Adapter, &Lock);
    if ((Adapter->State & AEROVBLK_STATE_REMOVED) || !AerovblkGateEnter(Adapter)) {
        /* Nothing is in flight (detached at removal / stop); the device is not ours to
         * touch. A config change now is re-read by Restart. */
        Adapter->ConfigChangePending = 0;
        AerovblkUnlockQueue(Adapter, &Lock);
        return;
    }
    ConfigChanged = (BOOLEAN)(Adapter->ConfigChangePending != 0);
    Adapter->ConfigChangePending = 0;
    if (Adapter->MessageCount == 1) {
        /* One shared vector: the message does not say "config". The ISR byte does: the
         * device sets its config bit before any config notification, MSI-X or not
         * (virtio 4.1.4.5); this also catches DEVICE_NEEDS_RESET, which need not change
         * config_generation. One MMIO read per DPC, only in this mode. */
        UCHAR Isr = VpciReadIsr(&Adapter->Pci);
        if (Isr != 0xFF && (Isr & 0x2)) {
            Adapter->Counters.InterruptsConfig++;
            ConfigChanged = TRUE;
        }
    }
    Completed = AerovblkCollectCompleted(Adapter, &Count);
    Broken = VqIsBroken(&Adapter->Queue.Vq);
    Adapter->Counters.CompletionsInInterrupts += Count;
    if (Count > Adapter->Counters.MaxCompletionsPerInterrupt) {
        Adapter->Counters.MaxCompletionsPerInterrupt = Count;
    }
    AerovblkGateLeave(Adapter);
    AerovblkUnlockQueue(Adapter, &Lock);

    AerovblkFinishCompleted(Adapter, Completed);
    if (Broken) {
        STOR_LOCK_HANDLE StartIo;
        AerovblkLock(Adapter, StartIoLock, &StartIo);
        AerovblkRecoverBrokenRing(Adapter);     /* re-checks: HwStartIo may have recovered */
        AerovblkUnlock(Adapter, &StartIo);
    }
    if (ConfigChanged) {
        AerovblkHandleConfigChange(Adapter);
    }
}

/* Completion DPC. Caller: StorPort's DPC, DISPATCH_LEVEL, no locks held. Serialised
 * with itself per [MS-ISSUEDPC], but not relied on (facts 11.6: ReactOS runs it on two
 * CPUs at once): all it shares is touched under the queue / StartIo locks, and what it
 * completes it first detached from the ring under the queue lock (test 60d). */
VOID NTAPI AerovblkCompletionDpc(PSTOR_DPC Dpc, PVOID DeviceExtension, PVOID Argument1, PVOID Argument2)
{
    AV_UNUSED(Dpc);
    AV_UNUSED(Argument1);
    AV_UNUSED(Argument2);
    AerovblkProcessCompletions((PAEROVBLK_ADAPTER)DeviceExtension);
}

/* Queues the DPC, or, before passive initialisation created it (a config interrupt
 * right after DRIVER_OK), leaves the flags for the first DPC to find. Interrupt lock held. */
static VOID AerovblkScheduleCompletion(PAEROVBLK_ADAPTER Adapter)
{
    if (Adapter->DpcReady) {
        StorPortIssueDpc(Adapter, &Adapter->CompletionDpc, NULL, NULL);
    }
}

/* Records what an interrupt reported and queues the completion DPC. Interrupt lock held. */
static VOID AerovblkNoteInterrupt(PAEROVBLK_ADAPTER Adapter, BOOLEAN Config, BOOLEAN Queue)
{
    if (Config) {
        Adapter->ConfigChangePending = 1;
        Adapter->Counters.InterruptsConfig++;
    }
    if (Queue) {
        Adapter->Counters.InterruptsQueue++;
    }
    AerovblkScheduleCompletion(Adapter);
}

/*
 * HwInterrupt (INTx; and the dump port's polling). Caller: StorPort at DIRQL holding
 * the interrupt lock. INTx: the ISR byte (read-to-clear, virtio 4.1.4.5) says whether
 * the (possibly shared) line is ours. Dump mode: drain and complete inline.
 */
BOOLEAN NTAPI AerovblkHwInterrupt(PVOID DeviceExtension)
{
    PAEROVBLK_ADAPTER Adapter = (PAEROVBLK_ADAPTER)DeviceExtension;
    UCHAR Isr;

    if (Adapter->DumpMode) {
        AerovblkProcessCompletions(Adapter);
        return TRUE;
    }
    if ((Adapter->State & (AEROVBLK_STATE_SURPRISE_REMOVED | AEROVBLK_STATE_REMOVED)) ||
        !AerovblkGateEnter(Adapter)) {
        /* A shared line while we are gone or stopping/stopped (D3): never ours, and the
         * registers are not ours to touch. (Between Stop's gate and its reset our own
         * line may still be asserted: the reset lowers it, microseconds later.) */
        Adapter->Counters.InterruptsSpurious++;
        return FALSE;
    }
    Isr = VpciReadIsr(&Adapter->Pci);
    AerovblkGateLeave(Adapter);
    if (Isr == 0 || Isr == 0xFF) {
        /* Not ours (a shared line), or a vanished device reading all ones: claiming it
         * would only hide a stuck line; the request timeout / reset path notices. */
        Adapter->Counters.InterruptsSpurious++;
        return FALSE;
    }
    AerovblkNoteInterrupt(Adapter, (BOOLEAN)((Isr & 0x2) != 0), (BOOLEAN)((Isr & 0x1) != 0));
    return TRUE;
}

/*
 * HwMSInterruptRoutine. Caller: StorPort at DIRQL holding the interrupt lock
 * (InterruptSynchronizeAll). No MMIO at all: the message number says what happened.
 */
BOOLEAN NTAPI AerovblkHwMsInterrupt(PVOID DeviceExtension, ULONG MessageId)
{
    PAEROVBLK_ADAPTER Adapter = (PAEROVBLK_ADAPTER)DeviceExtension;

    if (Adapter->MessageCount >= 2 && MessageId == Adapter->ConfigVector) {
        AerovblkNoteInterrupt(Adapter, TRUE, FALSE);
    } else if (MessageId == Adapter->QueueVector) {
        AerovblkNoteInterrupt(Adapter, FALSE, TRUE);
    } else {
        Adapter->Counters.InterruptsSpurious++;
        return FALSE;
    }
    return TRUE;
}

/* A gap this long between two requests (100 ns units: 1 s) may hide a hibernation. */
#define AEROVBLK_RESUME_GAP 10000000LL

/*
 * Resume without ScsiRestartAdapter. Whether StorPort stops and restarts the boot
 * adapter around S4 is undocumented (facts §11.3): the instance may simply continue,
 * while the hibernation instance and, on a real resume, the firmware reset the device
 * and ran their own rings. Ringing our doorbell then would make the device run their
 * stale rings in memory Windows has reused. A hibernation lasts seconds and Windows
 * resynchronises the system time from the RTC on wake, so the first request after a
 * gap of AEROVBLK_RESUME_GAP, with nothing in flight, checks that the device still
 * runs our queue (five register accesses, before the doorbell) and re-initialises it
 * otherwise; a busy disk never pays for it. docs/lifecycle.md, "Hibernation resume".
 * Caller: HwStartIo (StartIo lock, DISPATCH_LEVEL); not in dump mode (no time routines).
 */
static VOID AerovblkCheckResumed(PAEROVBLK_ADAPTER Adapter)
{
    LARGE_INTEGER Now;
    LONGLONG Gap;
    BOOLEAN Ours = TRUE;
    STOR_LOCK_HANDLE Lock;

    if (Adapter->DumpMode) {
        return;
    }
    StorPortQuerySystemTime(&Now);
    Gap = Now.QuadPart - Adapter->LastStartIoTime;
    Adapter->LastStartIoTime = Now.QuadPart;
    if (Gap > -AEROVBLK_RESUME_GAP && Gap < AEROVBLK_RESUME_GAP) {
        return;
    }
    AerovblkLockQueue(Adapter, &Lock);
    if (!(Adapter->State & (AEROVBLK_STATE_REMOVED | AEROVBLK_STATE_STOPPED)) &&
        VqInFlight(&Adapter->Queue.Vq) == 0) {
        Ours = VpciQueueStillOurs(&Adapter->Pci, 0, Adapter->Queue.Vq.DescPa);
    }
    AerovblkUnlockQueue(Adapter, &Lock);
    if (!Ours) {
        /* nothing in flight: the reset fails no request */
        AerovblkResetDevice(Adapter, AEROVBLK_LOG_RESUMED_FOREIGN, FALSE);
    }
}

/* Sets the LUN queue depth to what the ring really holds, once the LUN exists. */
static VOID AerovblkSetQueueDepth(PAEROVBLK_ADAPTER Adapter)
{
    ULONG Depth;
    if (Adapter->QueueDepthSet || Adapter->DumpMode) {
        return;
    }
    /* Indirect: one descriptor per request. Direct: a 4 KiB I/O takes 3. */
    Depth = Adapter->IndirectMax ? Adapter->SlotCount : (ULONG)Adapter->QueueSize / 3;
    if (Depth > AEROVBLK_MAX_LUN_QUEUE_DEPTH) {
        Depth = AEROVBLK_MAX_LUN_QUEUE_DEPTH;
    }
    if (Depth == 0) {
        Depth = 1;
    }
    Adapter->QueueDepthSet = StorPortSetDeviceQueueDepth(Adapter, 0, 0, 0, Depth);
}

/*
 * HwStartIo. Caller: StorPort at DISPATCH_LEVEL holding the StartIo lock (full
 * duplex); dump mode: the dump port, above DISPATCH. Every SRB is either submitted
 * to the device or completed here, exactly once.
 */
BOOLEAN NTAPI AerovblkHwStartIo(PVOID DeviceExtension, PSCSI_REQUEST_BLOCK Srb)
{
    PAEROVBLK_ADAPTER Adapter = (PAEROVBLK_ADAPTER)DeviceExtension;
    PAEROVBLK_SRB_EXTENSION SrbExt = (PAEROVBLK_SRB_EXTENSION)Srb->SrbExtension;

    switch (Srb->Function) {
    case SRB_FUNCTION_EXECUTE_SCSI:
    case SRB_FUNCTION_FLUSH:
    case SRB_FUNCTION_SHUTDOWN:
        SrbExt->Srb = Srb;
        SrbExt->NextCompleted = NULL;
        if (Adapter->State & AEROVBLK_STATE_REMOVED) {
            Srb->SrbStatus = SRB_STATUS_NO_DEVICE;
            Srb->DataTransferLength = 0;      /* nothing transferred (facts 11.14) */
            break;
        }
        AerovblkSetQueueDepth(Adapter);
        if (VqIsBroken(&Adapter->Queue.Vq)) {   /* inline test: the call only when needed */
            AerovblkRecoverBrokenRing(Adapter);
        }
        AerovblkCheckResumed(Adapter);
        {
            PSTOR_SCATTER_GATHER_LIST Sg = NULL;
            if (Srb->DataTransferLength != 0 && (Srb->SrbFlags & (SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT))) {
                Sg = StorPortGetScatterGatherList(Adapter, Srb);
            }
            if (ScsiStartSrb(&Adapter->Disk, Srb, Sg, &SrbExt->Scsi) == SCSI_ACTION_SUBMIT) {
                AerovblkSubmit(Adapter, SrbExt);      /* completes the SRB itself on failure */
                return TRUE;
            }
        }
        break;

    case SRB_FUNCTION_IO_CONTROL:
        AerovblkHandleIoControl(Adapter, Srb);
        break;

    case SRB_FUNCTION_RESET_BUS:
    case SRB_FUNCTION_RESET_DEVICE:
    case SRB_FUNCTION_RESET_LOGICAL_UNIT:
        if (Srb->Function == SRB_FUNCTION_RESET_BUS) {
            Adapter->Counters.ResetBusSrbCount++;
        } else {
            Adapter->Counters.ResetDeviceSrbCount++;
        }
        if (!Adapter->DumpMode) {
            AerovblkResetRequested(Adapter);
        }
        Srb->SrbStatus = (Adapter->State & AEROVBLK_STATE_REMOVED) ? SRB_STATUS_NO_DEVICE
                                                                   : SRB_STATUS_SUCCESS;
        break;

    case SRB_FUNCTION_ABORT_COMMAND:
        /* virtio-blk cannot abort one request; failing makes StorPort escalate to a
         * LUN/bus reset, which completes the request (docs/lifecycle.md). */
        Adapter->Counters.AbortSrbCount++;
        Srb->SrbStatus = SRB_STATUS_ABORT_FAILED;
        break;

    case SRB_FUNCTION_PNP:
        Srb->SrbStatus = AerovblkHandlePnp(Adapter, Srb);
        break;

    case SRB_FUNCTION_POWER:
        /* LUN power transitions need no device work: the disk class flushes before
         * powering down, and adapter power goes through HwAdapterControl. */
        Srb->SrbStatus = SRB_STATUS_SUCCESS;
        break;

    default:
        /* WMI (WmiDataProvider stays TRUE as preset, but no WMI data is provided: StorPort's
         * registration gets this answer) and anything unknown; nothing transferred. */
        Srb->SrbStatus = SRB_STATUS_INVALID_REQUEST;
        Srb->DataTransferLength = 0;
        break;
    }
    AerovblkCompleteSrb(Adapter, Srb);
    return TRUE;
}
