/*
 * Simulated storport.sys: queue control the miniport calls while running (queue depth,
 * pause/resume, busy/ready, StorPortCompleteRequest), StorPortLogError, and the small
 * services: move memory, StallExecution, QuerySystemTime, SynchronizeAccess.
 */
#include <string.h>
#include <time.h>

#include "storport_int.h"

/* ================================================================================
 * Queue control, completion, errors
 * ================================================================================ */
BOOLEAN NTAPI StorPortSetDeviceQueueDepth(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun, ULONG Depth)
{
    struct sim_adapter *a = storport_adapter_of("StorPortSetDeviceQueueDepth", HwDeviceExtension);
    sim_check_irql("StorPortSetDeviceQueueDepth", SIM_IRQL_DIRQL);
    if (!a || PathId || TargetId || Lun || Depth == 0) return FALSE;
    pthread_mutex_lock(&a->srb_mutex);
    a->queue_depth = a->opts.dump_mode ? 1 : Depth > 254 ? 254 : Depth;
    a->queue_depth_set = true;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortPause(PVOID HwDeviceExtension, ULONG Timeout)
{
    struct sim_adapter *a = storport_adapter_of("StorPortPause", HwDeviceExtension);
    if (!a) return FALSE;
    storport_dump_unsafe(a, "StorPortPause");
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = sim_now_ns() + (uint64_t)Timeout * 1000000000ull;
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortResume(PVOID HwDeviceExtension)
{
    struct sim_adapter *a = storport_adapter_of("StorPortResume", HwDeviceExtension);
    if (!a) return FALSE;
    storport_dump_unsafe(a, "StorPortResume");
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortPauseDevice(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun, ULONG Timeout)
{
    (void)PathId; (void)TargetId; (void)Lun;
    return StorPortPause(HwDeviceExtension, Timeout);
}

BOOLEAN NTAPI StorPortResumeDevice(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun)
{
    (void)PathId; (void)TargetId; (void)Lun;
    return StorPortResume(HwDeviceExtension);
}

BOOLEAN NTAPI StorPortBusy(PVOID HwDeviceExtension, ULONG RequestsToComplete)
{
    struct sim_adapter *a = storport_adapter_of("StorPortBusy", HwDeviceExtension);
    if (!a) return FALSE;
    storport_dump_unsafe(a, "StorPortBusy");
    pthread_mutex_lock(&a->srb_mutex);
    a->busy_count = RequestsToComplete;
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortReady(PVOID HwDeviceExtension)
{
    struct sim_adapter *a = storport_adapter_of("StorPortReady", HwDeviceExtension);
    if (!a) return FALSE;
    storport_dump_unsafe(a, "StorPortReady");
    pthread_mutex_lock(&a->srb_mutex);
    a->busy_count = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortDeviceBusy(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun,
                                 ULONG RequestsToComplete)
{
    (void)PathId; (void)TargetId; (void)Lun;
    return StorPortBusy(HwDeviceExtension, RequestsToComplete);
}

BOOLEAN NTAPI StorPortDeviceReady(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun)
{
    (void)PathId; (void)TargetId; (void)Lun;
    return StorPortReady(HwDeviceExtension);
}

VOID NTAPI StorPortCompleteRequest(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun, UCHAR SrbStatus)
{
    struct sim_adapter *a = storport_adapter_of("StorPortCompleteRequest", HwDeviceExtension);
    (void)PathId; (void)TargetId; (void)Lun;
    if (!a) return;
    sim_port_complete_all(a, SrbStatus);
}

VOID NTAPI StorPortLogError(PVOID HwDeviceExtension, PSCSI_REQUEST_BLOCK Srb, UCHAR PathId, UCHAR TargetId,
                            UCHAR Lun, ULONG ErrorCode, ULONG UniqueId)
{
    struct sim_adapter *a = storport_adapter_of("StorPortLogError", HwDeviceExtension);
    (void)Srb;
    storport_dump_unsafe(a, "StorPortLogError");
    if (a) __atomic_fetch_add(&a->nlog, 1, __ATOMIC_RELAXED);
    sim_log("StorPortLogError: ErrorCode 0x%x UniqueId 0x%08x (path %u target %u lun %u)",
            ErrorCode, UniqueId, PathId, TargetId, Lun);
}

VOID NTAPI StorPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length)
{
    memmove(WriteBuffer, ReadBuffer, Length);
}

VOID NTAPI ScsiPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length)
{
    memmove(WriteBuffer, ReadBuffer, Length);
}

VOID NTAPI StorPortStallExecution(ULONG Delay)
{
    if (Delay > 1000)
        sim_finding("STALL", "StorPortStallExecution(%u us): each call must be under 1 ms ([MS-NF])", Delay);
    uint64_t end = sim_now_ns() + (uint64_t)Delay * 1000ull;
    if (Delay >= 50) sim_sleep_us(Delay);
    while (sim_now_ns() < end) __builtin_ia32_pause();
}

VOID NTAPI StorPortQuerySystemTime(PLARGE_INTEGER CurrentTime)
{
    struct sim_adapter *a = sim_tls.adapter;
    if (a && a->opts.dump_mode) sim_finding("DUMP", "StorPortQuerySystemTime in dump mode ([MS-BOOT]: no time routines)");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (CurrentTime)   /* 100 ns units since 1601-01-01 */
        CurrentTime->QuadPart = (LONGLONG)((uint64_t)ts.tv_sec * 10000000ull + (uint64_t)ts.tv_nsec / 100 +
                                           116444736000000000ull) +
                                sim_s4_time_offset;   /* hibernations so far (sim/s4.c) */
}

BOOLEAN NTAPI StorPortSynchronizeAccess(PVOID HwDeviceExtension, PSTOR_SYNCHRONIZED_ACCESS SynchronizedAccessRoutine,
                                        PVOID Context)
{
    struct sim_adapter *a = storport_adapter_of("StorPortSynchronizeAccess", HwDeviceExtension);
    if (!a || !SynchronizedAccessRoutine) return FALSE;
    storport_dump_unsafe(a, "StorPortSynchronizeAccess");
    int old = sim_tls.irql;
    if (!a->opts.dump_mode) sim_acquire_interrupt_lock(a, "StorPortSynchronizeAccess");
    sim_tls.irql = SIM_IRQL_DIRQL;
    sim_call_sync((void *)SynchronizedAccessRoutine, HwDeviceExtension, Context);
    if (!a->opts.dump_mode) sim_release_interrupt_lock(a, "StorPortSynchronizeAccess");
    sim_tls.irql = old;
    return TRUE;
}
