/*
 * Simulated storport.sys: StorPortNotification (and ScsiPortNotification), the ms_abi
 * variadic the miniport calls for request completion, RequestTimerCall, DPCs
 * (InitializeDpc/IssueDpc) and the StorPort spin locks (Acquire/ReleaseSpinLock), at any
 * IRQL up to HIGH; plus sim_stretch, the random delays inside driver callbacks
 * (--dpc-delay-us / --isr-delay-us), which the register path (storport_regs.c) also uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storport_int.h"

/* ================================================================================
 * Notification (variadic)
 * ================================================================================ */
static struct sim_dpc *dpc_lookup(struct sim_adapter *a, PSTOR_DPC obj)
{
    for (struct sim_dpc *d = a->dpcs; d; d = d->next_all)
        if (d->obj == obj) return d;
    return NULL;
}

unsigned sim_stretch_dpc_us, sim_stretch_isr_us;

/* One point in two inside the stretched callbacks sleeps a random time up to the limit. */
void sim_stretch(void)
{
    static __thread uint64_t x;
    const char *cb = sim_tls.callback;
    unsigned max = 0;
    if (!cb) return;
    if (sim_tls.ctl_overlap) {   /* keep it running past the end of Stop/Restart */
        if (!x) x = (uint64_t)(uintptr_t)&x * 0x9E3779B97F4A7C15ull | 1;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        sim_sleep_us((unsigned)((x >> 8) % 1001));
        return;
    }
    /* Stop/Restart without locks: stretched always, so the interrupts and DPCs the port
     * delivers meanwhile overlap it (--adapter-control-locks none). */
    if (sim_adapter_control_locks == SIM_ACL_NONE && !strcmp(cb, "HwAdapterControl") &&
        (sim_tls.ctl_type == ScsiStopAdapter || sim_tls.ctl_type == ScsiRestartAdapter)) max = 200;
    else if (!sim_stretch_dpc_us && !sim_stretch_isr_us) return;
    else if (!strcmp(cb, "HwDpcRoutine")) max = sim_stretch_dpc_us;
    else if (!strcmp(cb, "HwInterrupt") || !strcmp(cb, "HwMSInterruptRoutine")) max = sim_stretch_isr_us;
    if (!max) return;
    if (!x) x = (uint64_t)(uintptr_t)&x * 0x9E3779B97F4A7C15ull | 1;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    if (x & 1) return;
    sim_sleep_us((unsigned)((x >> 8) % ((uint64_t)max + 1)));
}

static void lock_acquire(struct sim_adapter *a, STOR_SPINLOCK lock, PVOID ctx, PSTOR_LOCK_HANDLE h)
{
    sim_stretch();
    if (!h) { sim_finding("ARGUMENT", "StorPortAcquireSpinLock with a NULL lock handle"); return; }
    h->Lock = lock;
    h->Context.OldIrql = (KIRQL)sim_tls.irql;
    h->Context.LockQueue.Lock = NULL;
    if (storport_in_callback("HwStartIo") && a->sync_model == StorSynchronizeHalfDuplex)
        sim_finding("LOCK", "StorPortAcquireSpinLock in half-duplex HwStartIo (facts §6: none allowed)");
    storport_dump_unsafe(a, "StorPortAcquireSpinLock");
    if (a->opts.dump_mode) return;   /* dump port: single-threaded, no locks */
    switch (lock) {
    case DpcLock: {
        sim_check_irql("StorPortAcquireSpinLock(DpcLock)", SIM_IRQL_DISPATCH);
        struct sim_dpc *d = dpc_lookup(a, (PSTOR_DPC)ctx);
        if (!d) { sim_finding("ARGUMENT", "StorPortAcquireSpinLock(DpcLock) with an uninitialised STOR_DPC %p", ctx); return; }
        if (sim_lock_note_acquire("StorPortAcquireSpinLock(DpcLock)", SIM_LOCK_DPC, 0)) {
            pthread_mutex_lock(&d->lock);
            h->Context.LockQueue.Lock = d;
        }
        if (sim_tls.irql < SIM_IRQL_DISPATCH) sim_tls.irql = SIM_IRQL_DISPATCH;
        break;
    }
    case StartIoLock:
        sim_check_irql("StorPortAcquireSpinLock(StartIoLock)", SIM_IRQL_DISPATCH);
        if (ctx) sim_finding("ARGUMENT", "StorPortAcquireSpinLock(StartIoLock): LockContext must be NULL");
        sim_acquire_startio_lock(a, "StorPortAcquireSpinLock(StartIoLock)");
        if (sim_tls.irql < SIM_IRQL_DISPATCH) sim_tls.irql = SIM_IRQL_DISPATCH;
        break;
    case InterruptLock:
        sim_check_irql("StorPortAcquireSpinLock(InterruptLock)", SIM_IRQL_DIRQL);
        if (ctx) sim_finding("ARGUMENT", "StorPortAcquireSpinLock(InterruptLock): LockContext must be NULL");
        sim_acquire_interrupt_lock(a, "StorPortAcquireSpinLock(InterruptLock)");
        sim_tls.irql = SIM_IRQL_DIRQL;
        break;
    default:
        sim_finding("ARGUMENT", "StorPortAcquireSpinLock with invalid lock type %d", (int)lock);
    }
}

static void lock_release(struct sim_adapter *a, PSTOR_LOCK_HANDLE h)
{
    if (!h) { sim_finding("ARGUMENT", "StorPortReleaseSpinLock with a NULL lock handle"); return; }
    if (a->opts.dump_mode) return;
    switch (h->Lock) {
    case DpcLock: {
        struct sim_dpc *d = h->Context.LockQueue.Lock;
        if (sim_lock_note_release("StorPortReleaseSpinLock(DpcLock)", SIM_LOCK_DPC, 0) && d)
            pthread_mutex_unlock(&d->lock);
        break;
    }
    case StartIoLock:
        sim_release_startio_lock(a, "StorPortReleaseSpinLock(StartIoLock)");
        break;
    case InterruptLock:
        sim_release_interrupt_lock(a, "StorPortReleaseSpinLock(InterruptLock)");
        break;
    default:
        sim_finding("ARGUMENT", "StorPortReleaseSpinLock with a handle that holds no lock (type %d)", (int)h->Lock);
        return;
    }
    sim_tls.irql = h->Context.OldIrql;
    sim_stretch();      /* after the release: others may take the lock meanwhile */
}

static void notification_v(const char *api, SCSI_NOTIFICATION_TYPE type, PVOID ext, sim_va_list *ap)
{
    struct sim_adapter *a = storport_adapter_of(api, ext);
    if (!a) return;
    sim_check_irql(api, SIM_IRQL_HIGH);
    if (type != RequestComplete && type != NextRequest) {
        char what[96];
        snprintf(what, sizeof(what), "%s(type %d)", api, (int)type);
        storport_dump_unsafe(a, what);
    }
    switch ((int)type) {
    case RequestComplete: {
        PSCSI_REQUEST_BLOCK srb = SIM_VA_ARG(*ap, PSCSI_REQUEST_BLOCK);
        sim_check_irql("StorPortNotification(RequestComplete)", a->opts.dump_mode ? SIM_IRQL_HIGH : SIM_IRQL_DIRQL);
        sim_port_request_complete(a, srb, "StorPortNotification(RequestComplete)");
        break;
    }
    case NextRequest:
    case NextLuRequest:
        break;   /* ignored by StorPort [MS-QUEUE] */
    case ResetDetected:
        __atomic_fetch_add(&a->ctr.reset_detected, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&a->reset_detected_pending, 1, __ATOMIC_RELEASE);
        sim_log("StorPortNotification(ResetDetected)");
        break;
    case RequestTimerCall: {
        void *routine = SIM_VA_ARG(*ap, void *);
        ULONG us = SIM_VA_ARG(*ap, ULONG);
        sim_port_set_timer(a, routine, us);
        break;
    }
    case BusChangeDetected:
        __atomic_fetch_add(&a->ctr.bus_changes, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&a->bus_change_pending, 1, __ATOMIC_RELEASE);
        sim_log("StorPortNotification(BusChangeDetected)");
        break;
    case WMIEvent:
    case WMIReregister:
    case LinkUp:
    case LinkDown:
    case TraceNotification:
        break;
    case QueryTickCount: {
        PLARGE_INTEGER t = SIM_VA_ARG(*ap, PLARGE_INTEGER);
        if (t) t->QuadPart = (LONGLONG)(sim_now_ns() / 15625000ull);   /* 15.625 ms ticks */
        break;
    }
    case BufferOverrunDetected:
        sim_finding("NOTIFY", "miniport reported BufferOverrunDetected");
        break;
    case GetExtendedFunctionTable: {
        void **out = SIM_VA_ARG(*ap, void **);
        if (out) *out = NULL;
        break;
    }
    case EnablePassiveInitialization: {
        void *routine = SIM_VA_ARG(*ap, void *);
        UCHAR *result = SIM_VA_ARG(*ap, UCHAR *);   /* BOOLEAN or preset LONG: write one byte (facts §10.8) */
        BOOLEAN ok = TRUE;
        if (!storport_in_callback("HwInitialize")) {
            sim_finding("CONTEXT", "StorPortEnablePassiveInitialization outside HwInitialize (returns FALSE, [MS-EPI])");
            ok = FALSE;
        } else if (a->opts.dump_mode) {
            ok = FALSE;
        } else if (a->rebalanced) {
            /* a second start on the same extension: ReactOS refuses (facts §11.9) */
            sim_log("StorPortEnablePassiveInitialization after a rebalance: FALSE");
            ok = FALSE;
        } else {
            a->passive_routine = routine;
        }
        if (result) *result = ok;
        break;
    }
    case InitializeDpc: {
        PSTOR_DPC obj = SIM_VA_ARG(*ap, PSTOR_DPC);
        void *routine = SIM_VA_ARG(*ap, void *);
        if (a->opts.dump_mode) sim_finding("DUMP", "StorPortInitializeDpc in dump mode ([MS-BOOT])");
        if (!storport_in_callback("HwPassiveInitializeRoutine"))
            sim_finding("CONTEXT", "StorPortInitializeDpc outside HwPassiveInitializeRoutine ([MS-IDPC], facts §6)");
        if (!obj) { sim_finding("ARGUMENT", "StorPortInitializeDpc(NULL)"); break; }
        struct sim_dpc *d = dpc_lookup(a, obj);
        if (!d) {
            d = calloc(1, sizeof(*d));
            d->obj = obj;
            pthread_mutex_init(&d->run, NULL);
            pthread_mutex_init(&d->lock, NULL);
            d->next_all = a->dpcs;
            a->dpcs = d;
        }
        d->routine = routine;
        memset(obj, 0, sizeof(*obj));
        obj->Dpc.DeferredRoutine = routine;
        obj->Dpc.DeferredContext = d;
        break;
    }
    case IssueDpc: {
        PSTOR_DPC obj = SIM_VA_ARG(*ap, PSTOR_DPC);
        void *a1 = SIM_VA_ARG(*ap, void *);
        void *a2 = SIM_VA_ARG(*ap, void *);
        UCHAR *result = SIM_VA_ARG(*ap, UCHAR *);
        BOOLEAN ok = FALSE;
        struct sim_dpc *d = dpc_lookup(a, obj);
        if (a->opts.dump_mode) sim_finding("DUMP", "StorPortIssueDpc in dump mode (no DPCs, [MS-BOOT])");
        else if (!d) sim_finding("ARGUMENT", "StorPortIssueDpc on STOR_DPC %p never initialised", (void *)obj);
        else {
            pthread_mutex_lock(&a->dpc_mutex);
            if (!d->queued) {
                d->queued = true;
                d->a1 = a1;
                d->a2 = a2;
                sim_port_issue_dpc(a, d);
                ok = TRUE;
            }
            pthread_mutex_unlock(&a->dpc_mutex);
        }
        if (result) *result = ok;
        break;
    }
    case AcquireSpinLock: {
        STOR_SPINLOCK lock = (STOR_SPINLOCK)SIM_VA_ARG(*ap, int);
        PVOID ctx = SIM_VA_ARG(*ap, PVOID);
        PSTOR_LOCK_HANDLE h = SIM_VA_ARG(*ap, PSTOR_LOCK_HANDLE);
        lock_acquire(a, lock, ctx, h);
        break;
    }
    case ReleaseSpinLock: {
        PSTOR_LOCK_HANDLE h = SIM_VA_ARG(*ap, PSTOR_LOCK_HANDLE);
        lock_release(a, h);
        break;
    }
    default:
        sim_finding("UNEXPECTED", "%s with notification type 0x%x (not in Windows 7)", api, (unsigned)type);
    }
}

VOID AV_CDECL StorPortNotification(SCSI_NOTIFICATION_TYPE NotificationType, PVOID HwDeviceExtension, ...)
{
    sim_va_list ap;
    SIM_VA_START(ap, HwDeviceExtension);
    notification_v("StorPortNotification", NotificationType, HwDeviceExtension, &ap);
    SIM_VA_END(ap);
}

VOID AV_CDECL ScsiPortNotification(SCSI_NOTIFICATION_TYPE NotificationType, PVOID HwDeviceExtension, ...)
{
    sim_va_list ap;
    SIM_VA_START(ap, HwDeviceExtension);
    notification_v("ScsiPortNotification", NotificationType, HwDeviceExtension, &ap);
    SIM_VA_END(ap);
}
