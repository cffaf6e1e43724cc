/*
 * StorPort glue, private to its three files: aerovblk.c (DriverEntry, HwFindAdapter,
 * HwInitialize, device bring-up), aerovblk_io.c (HwStartIo, submission, the completion
 * DPC, the ISRs: the per-I/O path) and aerovblk_reset.c (reset/recovery, removal,
 * config change, PnP SRBs, HwResetBus, HwAdapterControl stop/restart).
 *
 * Entry points, device bring-up (virtio 3.1.1), the I/O path (submit under the
 * queue lock, doorbell outside it, completion in a DPC), interrupts (MSI-X without
 * MMIO, INTx with the read-to-clear ISR byte), reset/recovery, removal, power
 * (HwAdapterControl stop/restart) and crash-dump/hibernation mode.
 * Design and lock rules: docs/architecture.md; lifecycle paths: docs/lifecycle.md.
 *
 * Locks (Windows 7 StorPort, full duplex; [MS-LOCK] order StartIo -> Interrupt):
 *  - StartIo lock: held by StorPort around HwStartIo and HwResetBus; taken by the DPC
 *    around recovery and disk-geometry updates. Serialises SCSI translation state.
 *  - Interrupt lock = the queue lock: held by StorPort around HwInitialize and the
 *    ISRs; taken by HwStartIo around submission and by the DPC around draining.
 *  - The device gate (AerovblkGateEnter): ScsiStopAdapter/ScsiRestartAdapter may run
 *    holding the interrupt lock or no lock at all (facts 11.2), so they take none and
 *    exclude every other path from the device, the ring and State with this gate.
 * Dump mode: single-threaded, polled; no locks, no DPC, no MSI.
 */
#ifndef AEROVBLK_INT_H
#define AEROVBLK_INT_H
#include "adapter.h"

/* The small helpers are static (inline) in each file, not calls into another one:
 * the per-I/O path uses them (docs/performance.md counts its instructions). */
#define AEROVBLK_SHARED static __inline

/* ----------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* The dump port implements no StorPortLogError (facts §11.8): dump mode logs nothing. */
AEROVBLK_SHARED VOID AerovblkLogError(PAEROVBLK_ADAPTER Adapter, ULONG UniqueCode)
{
    if (Adapter->DumpMode) {
        return;
    }
    StorPortLogError(Adapter, NULL, 0, 0, 0, SP_INTERNAL_ADAPTER_ERROR, UniqueCode);
}

/* A transport call failed: the low byte carries its exact reason (VPCI_DETAIL_*). */
AEROVBLK_SHARED VOID AerovblkLogTransportError(PAEROVBLK_ADAPTER Adapter, ULONG UniqueCode)
{
    AerovblkLogError(Adapter, UniqueCode | (Adapter->Pci.ErrorDetail & 0xFF));
}

/* StartIo or Interrupt lock; none in dump mode (single-threaded, polled). */
AEROVBLK_SHARED VOID AerovblkLock(PAEROVBLK_ADAPTER Adapter, STOR_SPINLOCK Which, PSTOR_LOCK_HANDLE Handle)
{
    if (!Adapter->DumpMode) {
        StorPortAcquireSpinLock(Adapter, Which, NULL, Handle);
    }
}

AEROVBLK_SHARED VOID AerovblkUnlock(PAEROVBLK_ADAPTER Adapter, PSTOR_LOCK_HANDLE Handle)
{
    if (!Adapter->DumpMode) {
        StorPortReleaseSpinLock(Adapter, Handle);
    }
}

/*
 * The device gate. Windows 7 calls ScsiStopAdapter / ScsiRestartAdapter either at DIRQL
 * holding the interrupt lock [MS-ADAPTERCTL] or holding no lock while the ISR and the
 * DPC keep running [MS-LOCK] (facts 11.2); the driver cannot tell which. Taking the
 * interrupt lock there would deadlock under the first reading (a re-acquired spin lock),
 * taking none would race under the second. So Stop/Restart take no lock and close this
 * gate instead; every other path that touches the registers, the ring or State does so
 * only inside it:
 *  - enter only while holding the interrupt lock (or in dump mode, single-threaded), and
 *    never wait for a lock while inside: then under the first reading nobody is inside
 *    when Stop runs (or only a doorbell write, which ends without waiting), and Stop's
 *    wait below cannot deadlock under either reading;
 *  - Enter increments GateUsers and then reads GateClosed; Close sets GateClosed and
 *    then waits for GateUsers to drain. Both are interlocked (full barriers), so either
 *    the section sees the gate closed or Close sees the section (Dekker).
 * Sections are short (a ring drain, a config read, a reset); Close spins, as StorPort's
 * own spin locks would.
 */
AEROVBLK_SHARED BOOLEAN AerovblkGateEnter(PAEROVBLK_ADAPTER Adapter)
{
    (void)AvInterlockedIncrement(&Adapter->GateUsers);
    if (Adapter->GateClosed != 0) {
        (void)AvInterlockedDecrement(&Adapter->GateUsers);
        return FALSE;
    }
    return TRUE;
}

AEROVBLK_SHARED VOID AerovblkGateLeave(PAEROVBLK_ADAPTER Adapter)
{
    (void)AvInterlockedDecrement(&Adapter->GateUsers);
}

/* Stop: no section is inside, and none will enter, once this returns. */
AEROVBLK_SHARED VOID AerovblkGateClose(PAEROVBLK_ADAPTER Adapter)
{
    (void)AvInterlockedExchange(&Adapter->GateClosed, 1);
    while (Adapter->GateUsers != 0) {
        AvCpuRelax();
    }
}

/* Restart, once the device runs again. */
AEROVBLK_SHARED VOID AerovblkGateOpen(PAEROVBLK_ADAPTER Adapter)
{
    (void)AvInterlockedExchange(&Adapter->GateClosed, 0);
}

AEROVBLK_SHARED VOID AerovblkCompleteSrb(PAEROVBLK_ADAPTER Adapter, PSCSI_REQUEST_BLOCK Srb)
{
    StorPortNotification(RequestComplete, Adapter, Srb);
}

AEROVBLK_SHARED PAEROVBLK_SRB_EXTENSION AerovblkSrbExtensionFromRequest(VBLK_REQUEST *Request)
{
    SCSI_REQUEST_STATE *State = AV_CONTAINING_RECORD(Request, SCSI_REQUEST_STATE, Blk);
    return AV_CONTAINING_RECORD(State, AEROVBLK_SRB_EXTENSION, Scsi);
}

/* aerovblk.c: device bring-up, shared with reset recovery and restart. */
BOOLEAN AerovblkApplyConfig(PAEROVBLK_ADAPTER Adapter, const VBLK_CONFIG *Config,
                            BOOLEAN Initial);
BOOLEAN AerovblkStartDevice(PAEROVBLK_ADAPTER Adapter, BOOLEAN Initial, BOOLEAN *DiskChanged);

/* aerovblk_io.c: entry points (installed by DriverEntry / HwFindAdapter / passive init). */
BOOLEAN NTAPI AerovblkHwStartIo(PVOID DeviceExtension, PSCSI_REQUEST_BLOCK Srb);
BOOLEAN NTAPI AerovblkHwInterrupt(PVOID DeviceExtension);
BOOLEAN NTAPI AerovblkHwMsInterrupt(PVOID DeviceExtension, ULONG MessageId);
VOID NTAPI AerovblkCompletionDpc(PSTOR_DPC Dpc, PVOID DeviceExtension, PVOID Argument1, PVOID Argument2);

/* aerovblk_reset.c: entry points, and what the I/O path calls on failure, reset,
 * config change and PnP. */
BOOLEAN NTAPI AerovblkHwResetBus(PVOID DeviceExtension, ULONG PathId);
SCSI_ADAPTER_CONTROL_STATUS NTAPI AerovblkHwAdapterControl(PVOID DeviceExtension,
                                                            SCSI_ADAPTER_CONTROL_TYPE ControlType,
                                                            PVOID Parameters);
VOID AerovblkFailList(PAEROVBLK_ADAPTER Adapter, PAEROVBLK_SRB_EXTENSION List, UCHAR BlkStatus);
VOID AerovblkResetDevice(PAEROVBLK_ADAPTER Adapter, ULONG Reason, BOOLEAN NotifyPort);
VOID AerovblkResetRequested(PAEROVBLK_ADAPTER Adapter);
VOID AerovblkRecoverBrokenRing(PAEROVBLK_ADAPTER Adapter);
VOID AerovblkHandleConfigChange(PAEROVBLK_ADAPTER Adapter);
UCHAR AerovblkHandlePnp(PAEROVBLK_ADAPTER Adapter, PSCSI_REQUEST_BLOCK Srb);

#endif
