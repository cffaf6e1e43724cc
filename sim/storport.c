/*
 * storport.sys as the miniport sees it: every export of Windows 7 SP1's storport.sys
 * (facts §4), with the Windows calling convention (NTAPI = ms_abi on x86_64 Linux,
 * stdcall on i386; the variadic ones are ms_abi/cdecl variadics), each checked against
 * the IRQL and context rules of facts §6 before it does what Windows would do.
 * Also the register hooks of the host-built driver (AvHostMmioRead/Write, hwreg.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sim.h"

#if defined(__x86_64__)
typedef __builtin_ms_va_list sim_va_list;
#define SIM_VA_START(ap, last) __builtin_ms_va_start(ap, last)
#define SIM_VA_END(ap) __builtin_ms_va_end(ap)
#else
typedef __builtin_va_list sim_va_list;
#define SIM_VA_START(ap, last) __builtin_va_start(ap, last)
#define SIM_VA_END(ap) __builtin_va_end(ap)
#endif
#define SIM_VA_ARG(ap, T) __builtin_va_arg(ap, T)

#define PG 4096ull

struct sim_driver *sim_loading_driver;
static bool loading_dump;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static struct sim_adapter *adapter_of(const char *api, void *ext)
{
    struct sim_adapter *a = sim_adapter_from_ext(ext);
    if (!a) sim_finding("ARGUMENT", "%s: HwDeviceExtension %p is not a device extension StorPort gave out", api, ext);
    return a;
}

static bool in_callback(const char *name)
{
    return sim_tls.callback && strcmp(sim_tls.callback, name) == 0;
}

static void unexpected(const char *api)
{
    sim_finding("UNEXPECTED", "%s: the simulator does not expect a miniport for this device to call it", api);
}

/* ================================================================================
 * DriverEntry / StorPortInitialize
 * ================================================================================ */
int sim_driver_load(struct sim_driver *drv, bool dump_mode, char *err, size_t errlen)
{
    static struct { USHORT Length, MaximumLength; PWSTR Buffer; } regpath;
    static WCHAR path[80];
    static uint8_t driver_object[0x150];
    const char *p = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\aerovblk";
    size_t n = strlen(p);
    for (size_t i = 0; i < n; i++) path[i] = (WCHAR)p[i];
    regpath.Length = (USHORT)(n * 2);
    regpath.MaximumLength = (USHORT)(n * 2 + 2);
    regpath.Buffer = path;

    pthread_mutex_lock(&load_lock);
    sim_loading_driver = drv;
    loading_dump = dump_mode;
    drv->initialized = false;
    struct sim_tls saved = sim_tls;
    sim_tls.irql = SIM_IRQL_PASSIVE;
    NTSTATUS st = dump_mode ? sim_call_driver_entry(drv->driver_entry, NULL, NULL)
                            : sim_call_driver_entry(drv->driver_entry, driver_object, &regpath);
    sim_tls = saved;
    sim_loading_driver = NULL;
    pthread_mutex_unlock(&load_lock);
    if (!NT_SUCCESS(st)) { snprintf(err, errlen, "DriverEntry returned 0x%08x", (unsigned)st); return -1; }
    if (!drv->initialized) { snprintf(err, errlen, "DriverEntry succeeded without a successful StorPortInitialize"); return -1; }
    return 0;
}

ULONG NTAPI StorPortInitialize(PVOID Argument1, PVOID Argument2,
                               PHW_INITIALIZATION_DATA HwInitializationData, PVOID HwContext)
{
    struct sim_driver *drv = sim_loading_driver;
    (void)HwContext;
    sim_check_irql("StorPortInitialize", SIM_IRQL_PASSIVE);
    if (!drv || !in_callback("DriverEntry")) {
        sim_finding("CONTEXT", "StorPortInitialize called outside DriverEntry");
        return (ULONG)STATUS_UNSUCCESSFUL;
    }
    if (!HwInitializationData || (!loading_dump && (!Argument1 || !Argument2)))
        return (ULONG)STATUS_INVALID_PARAMETER;
    const HW_INITIALIZATION_DATA *h = HwInitializationData;
    /* facts §1: ReactOS rejects a smaller structure and missing core callbacks */
    if (h->HwInitializationDataSize < sizeof(HW_INITIALIZATION_DATA)) {
        sim_log("StorPortInitialize: HwInitializationDataSize %u < Windows 7 size %zu: STATUS_REVISION_MISMATCH",
                h->HwInitializationDataSize, sizeof(HW_INITIALIZATION_DATA));
        return (ULONG)STATUS_REVISION_MISMATCH;
    }
    if (!h->HwInitialize || !h->HwStartIo || !h->HwFindAdapter || !h->HwResetBus) {
        sim_log("StorPortInitialize: a required callback (HwInitialize/HwStartIo/HwFindAdapter/HwResetBus) is NULL");
        return (ULONG)STATUS_REVISION_MISMATCH;
    }
    if (!h->HwInterrupt || !h->HwAdapterControl)
        sim_finding("HWINIT", "HwInterrupt and HwAdapterControl are required ([MS-HWID])");
    if (h->HwDmaStarted || h->HwAdapterState)
        sim_finding("HWINIT", "HwDmaStarted and HwAdapterState must be NULL ([MS-HWID])");
    if (!h->NeedPhysicalAddresses || !h->TaggedQueuing || !h->AutoRequestSense || !h->MultipleRequestPerLu)
        sim_finding("HWINIT", "NeedPhysicalAddresses, TaggedQueuing, AutoRequestSense, MultipleRequestPerLu must be TRUE ([MS-HWID])");
    if (h->AdapterInterfaceType != PCIBus)
        sim_finding("HWINIT", "AdapterInterfaceType is %d, expected PCIBus (5) for a PCI device", (int)h->AdapterInterfaceType);
    memcpy(&drv->hwid, h, sizeof(HW_INITIALIZATION_DATA));
    drv->initialized = true;
    return STATUS_SUCCESS;
}

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

/* The dump port implements only a dump-safe subset of StorPort (facts §7, §11.8:
 * vioscsi 09adb8d7 hit an NMI taking a spin lock in the dump path): a call outside it
 * from a dump instance is a DUMP finding. */
static void dump_unsafe(struct sim_adapter *a, const char *api)
{
    if (a && a->opts.dump_mode)
        sim_finding("DUMP", "%s in dump mode: outside the dump-safe set (no locks, DPC, timer, pool, LogError, "
                    "notifications other than RequestComplete/NextRequest; facts §11.8)", api);
}

static void lock_acquire(struct sim_adapter *a, STOR_SPINLOCK lock, PVOID ctx, PSTOR_LOCK_HANDLE h)
{
    sim_stretch();
    if (!h) { sim_finding("ARGUMENT", "StorPortAcquireSpinLock with a NULL lock handle"); return; }
    h->Lock = lock;
    h->Context.OldIrql = (KIRQL)sim_tls.irql;
    h->Context.LockQueue.Lock = NULL;
    if (in_callback("HwStartIo") && a->sync_model == StorSynchronizeHalfDuplex)
        sim_finding("LOCK", "StorPortAcquireSpinLock in half-duplex HwStartIo (facts §6: none allowed)");
    dump_unsafe(a, "StorPortAcquireSpinLock");
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
    struct sim_adapter *a = adapter_of(api, ext);
    if (!a) return;
    sim_check_irql(api, SIM_IRQL_HIGH);
    if (type != RequestComplete && type != NextRequest) {
        char what[96];
        snprintf(what, sizeof(what), "%s(type %d)", api, (int)type);
        dump_unsafe(a, what);
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
        if (!in_callback("HwInitialize")) {
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
        if (!in_callback("HwPassiveInitializeRoutine"))
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

VOID AV_CDECL ScsiPortNotification(SCSI_NOTIFICATION_TYPE NotificationType, PVOID HwDeviceExtension, ...);
VOID AV_CDECL ScsiPortNotification(SCSI_NOTIFICATION_TYPE NotificationType, PVOID HwDeviceExtension, ...)
{
    sim_va_list ap;
    SIM_VA_START(ap, HwDeviceExtension);
    notification_v("ScsiPortNotification", NotificationType, HwDeviceExtension, &ap);
    SIM_VA_END(ap);
}

/* ================================================================================
 * ExtendedFunction (variadic)
 * ================================================================================ */
ULONG AV_CDECL StorPortExtendedFunction(STORPORT_FUNCTION_CODE FunctionCode, PVOID HwDeviceExtension, ...)
{
    sim_va_list ap;
    ULONG rc = STOR_STATUS_NOT_IMPLEMENTED;
    struct sim_adapter *a = adapter_of("StorPortExtendedFunction", HwDeviceExtension);
    if (!a) return STOR_STATUS_INVALID_PARAMETER;
    SIM_VA_START(ap, HwDeviceExtension);
    switch ((int)FunctionCode) {
    case ExtFunctionAllocatePool: {
        ULONG bytes = SIM_VA_ARG(ap, ULONG);
        ULONG tag = SIM_VA_ARG(ap, ULONG);
        PVOID *out = SIM_VA_ARG(ap, PVOID *);
        sim_check_irql("StorPortAllocatePool", SIM_IRQL_DISPATCH);
        if (a->opts.dump_mode) { sim_finding("DUMP", "StorPortAllocatePool in dump mode (not supported)"); rc = STOR_STATUS_NOT_IMPLEMENTED; break; }
        if (in_callback("HwStartIo") && a->sync_model == StorSynchronizeHalfDuplex)
            sim_finding("IRQL", "StorPortAllocatePool in half-duplex HwStartIo (DIRQL)");
        if (!out || !bytes) { rc = STOR_STATUS_INVALID_PARAMETER; break; }
        struct sim_pool_block *b = calloc(1, sizeof(*b));
        b->p = malloc(bytes);
        memset(b->p, 0xA5, bytes);   /* pool is not zeroed */
        b->len = bytes;
        b->tag = tag;
        pthread_mutex_lock(&a->pool_mutex);
        b->next = a->pool;
        a->pool = b;
        pthread_mutex_unlock(&a->pool_mutex);
        *out = b->p;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionFreePool: {
        PVOID p = SIM_VA_ARG(ap, PVOID);
        sim_check_irql("StorPortFreePool", SIM_IRQL_DISPATCH);
        struct sim_pool_block *found = NULL;
        pthread_mutex_lock(&a->pool_mutex);
        for (struct sim_pool_block **pp = &a->pool; *pp; pp = &(*pp)->next)
            if ((*pp)->p == p) { found = *pp; *pp = found->next; break; }
        pthread_mutex_unlock(&a->pool_mutex);
        if (!found) { sim_finding("POOL", "StorPortFreePool(%p): not a block from StorPortAllocatePool (double free?)", p); rc = STOR_STATUS_INVALID_PARAMETER; break; }
        free(found->p);
        free(found);
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetSystemAddress: {
        PSCSI_REQUEST_BLOCK srb = SIM_VA_ARG(ap, PSCSI_REQUEST_BLOCK);
        PVOID *out = SIM_VA_ARG(ap, PVOID *);
        (void)srb;
        if (out) *out = NULL;
        sim_log("StorPortGetSystemAddress: not simulated");
        rc = STOR_STATUS_UNSUCCESSFUL;
        break;
    }
    case ExtFunctionAcquireMSISpinLock: {
        ULONG msg = SIM_VA_ARG(ap, ULONG);
        PULONG old = SIM_VA_ARG(ap, PULONG);
        if (!a->use_msi || msg >= a->pci.nmsg) { rc = STOR_STATUS_INVALID_PARAMETER; break; }
        if (old) *old = (ULONG)sim_tls.irql;
        if (a->ism == InterruptSynchronizePerMessage) {
            if (sim_lock_note_acquire("StorPortAcquireMSISpinLock", 0, 1ull << msg))
                pthread_mutex_lock(&a->msi_lock[msg]);
        } else {
            sim_acquire_interrupt_lock(a, "StorPortAcquireMSISpinLock");
        }
        sim_tls.irql = SIM_IRQL_DIRQL;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionReleaseMSISpinLock: {
        ULONG msg = SIM_VA_ARG(ap, ULONG);
        ULONG old = SIM_VA_ARG(ap, ULONG);
        if (!a->use_msi || msg >= a->pci.nmsg) { rc = STOR_STATUS_INVALID_PARAMETER; break; }
        if (a->ism == InterruptSynchronizePerMessage) {
            if (sim_lock_note_release("StorPortReleaseMSISpinLock", 0, 1ull << msg))
                pthread_mutex_unlock(&a->msi_lock[msg]);
        } else {
            sim_release_interrupt_lock(a, "StorPortReleaseMSISpinLock");
        }
        sim_tls.irql = (int)old;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetMessageInterruptInformation: {
        ULONG msg = SIM_VA_ARG(ap, ULONG);
        PMESSAGE_INTERRUPT_INFORMATION info = SIM_VA_ARG(ap, PMESSAGE_INTERRUPT_INFORMATION);
        if (in_callback("HwMSInterruptRoutine"))
            sim_finding("CONTEXT", "StorPortGetMSIInfo inside HwMSInterruptRoutine ([MS-MSIINFO])");
        if (!a->use_msi) { rc = STOR_STATUS_INVALID_DEVICE_REQUEST; break; }
        if (msg >= a->pci.nmsg || !info) { rc = STOR_STATUS_INVALID_PARAMETER; break; }
        memset(info, 0, sizeof(*info));
        info->MessageId = msg;
        info->MessageData = SIM_MSI_DATA(msg);
        info->MessageAddress.QuadPart = (LONGLONG)(a->pci.msi_target_gpa + SIM_MSI_STRIDE * msg);
        info->InterruptVector = 0x60 + msg;
        info->InterruptLevel = SIM_IRQL_DIRQL;
        info->InterruptMode = Latched;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetCurrentProcessorNumber: {
        UCHAR *pn = SIM_VA_ARG(ap, UCHAR *);   /* PROCESSOR_NUMBER: USHORT Group, UCHAR Number, UCHAR Reserved */
        if (pn) memset(pn, 0, 4);
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetActiveGroupCount: {
        USHORT *n = SIM_VA_ARG(ap, USHORT *);
        if (n) *n = 1;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetGroupAffinity: {
        USHORT g = (USHORT)SIM_VA_ARG(ap, int);
        KAFFINITY *aff = SIM_VA_ARG(ap, KAFFINITY *);
        if (aff) *aff = g == 0 ? 3 : 0;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionGetActiveNodeCount:
    case ExtFunctionGetHighestNodeNumber: {
        ULONG *n = SIM_VA_ARG(ap, ULONG *);
        if (n) *n = FunctionCode == ExtFunctionGetActiveNodeCount ? 1 : 0;
        rc = STOR_STATUS_SUCCESS;
        break;
    }
    case ExtFunctionAllocateContiguousMemorySpecifyCacheNode: {
        SIZE_T bytes = SIM_VA_ARG(ap, SIZE_T);
        LONGLONG lowest = SIM_VA_ARG(ap, LONGLONG);    /* PHYSICAL_ADDRESS by value */
        LONGLONG highest = SIM_VA_ARG(ap, LONGLONG);
        LONGLONG boundary = SIM_VA_ARG(ap, LONGLONG);
        int cache = SIM_VA_ARG(ap, int);               /* MEMORY_CACHING_TYPE */
        ULONG node = SIM_VA_ARG(ap, ULONG);            /* NODE_REQUIREMENT */
        PVOID *out = SIM_VA_ARG(ap, PVOID *);
        (void)node;
        rc = sim_contig_alloc(a, bytes, (uint64_t)lowest, (uint64_t)highest, (uint64_t)boundary, cache, out);
        break;
    }
    case ExtFunctionFreeContiguousMemorySpecifyCache: {
        PVOID va = SIM_VA_ARG(ap, PVOID);
        SIZE_T bytes = SIM_VA_ARG(ap, SIZE_T);
        int cache = SIM_VA_ARG(ap, int);
        rc = sim_contig_free(a, va, bytes, cache);
        break;
    }
    case ExtFunctionInitializePerformanceOptimizations:
    case ExtFunctionGetStartIoPerformanceParameters:
        rc = STOR_STATUS_NOT_IMPLEMENTED;   /* legitimately probed by miniports */
        break;
    default:
        if ((int)FunctionCode > ExtFunctionFreeContiguousMemorySpecifyCache)
            sim_finding("UNEXPECTED", "StorPortExtendedFunction code %d does not exist on Windows 7", (int)FunctionCode);
        else
            unexpected("StorPortExtendedFunction (this code)");
        rc = STOR_STATUS_NOT_IMPLEMENTED;
    }
    SIM_VA_END(ap);
    return rc;
}

/* ================================================================================
 * DebugPrint: a small printf over the Windows variadic list.
 * ================================================================================ */
VOID AV_CDECL StorPortDebugPrint(ULONG DebugPrintLevel, PCCHAR DebugMessage, ...)
{
    sim_va_list ap;
    char out[512];
    size_t o = 0;
    if (sim_verbose < 2 || !DebugMessage) return;
    SIM_VA_START(ap, DebugMessage);
    for (const char *f = DebugMessage; *f && o + 40 < sizeof(out); f++) {
        if (*f != '%') { out[o++] = *f; continue; }
        char spec[16] = "%";
        int sl = 1, longness = 0;
        f++;
        while (*f && strchr("-0123456789.#", *f) && sl < 10) spec[sl++] = *f++;
        while (*f == 'l' || *f == 'h' || *f == 'z' || *f == 'I') {
            if (*f == 'I' && f[1] == '6' && f[2] == '4') { longness = 2; f += 3; continue; }
            if (*f == 'l') longness++;
            if (*f == 'z' || *f == 'I') longness = 2;
            f++;
        }
        char c = *f;
        if (!c) break;
        char buf[64];
        switch (c) {
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
            if (longness >= 2) { spec[sl++] = 'l'; spec[sl++] = 'l'; spec[sl++] = c; spec[sl] = 0;
                                 snprintf(buf, sizeof(buf), spec, SIM_VA_ARG(ap, unsigned long long)); }
            else { spec[sl++] = c; spec[sl] = 0; snprintf(buf, sizeof(buf), spec, SIM_VA_ARG(ap, unsigned int)); }
            break;
        }
        case 'p': snprintf(buf, sizeof(buf), "%p", SIM_VA_ARG(ap, void *)); break;
        case 'c': snprintf(buf, sizeof(buf), "%c", (char)SIM_VA_ARG(ap, int)); break;
        case 's': { const char *s = SIM_VA_ARG(ap, const char *); snprintf(buf, sizeof(buf), "%.60s", s ? s : "(null)"); break; }
        case '%': snprintf(buf, sizeof(buf), "%%"); break;
        default: snprintf(buf, sizeof(buf), "%%%c", c);
        }
        size_t bl = strlen(buf);
        if (o + bl >= sizeof(out)) break;
        memcpy(out + o, buf, bl);
        o += bl;
    }
    out[o] = 0;
    SIM_VA_END(ap);
    fprintf(stderr, "driver[%u]: %s%s", DebugPrintLevel, out, (o && out[o - 1] == '\n') ? "" : "\n");
}

/* ================================================================================
 * Resources: bus data, device base, uncached extension, addresses
 * ================================================================================ */
static bool bus_data_allowed(void)
{
    return in_callback("HwFindAdapter") ||
           (in_callback("HwAdapterControl") && (sim_tls.ctl_type == ScsiSetRunningConfig ||
                                                sim_tls.ctl_type == ScsiSetBootConfig));
}

ULONG NTAPI StorPortGetBusData(PVOID DeviceExtension, ULONG BusDataType, ULONG SystemIoBusNumber,
                               ULONG SlotNumber, PVOID Buffer, ULONG Length)
{
    struct sim_adapter *a = adapter_of("StorPortGetBusData", DeviceExtension);
    (void)SystemIoBusNumber; (void)SlotNumber;
    if (!a) return 0;
    if (!bus_data_allowed())
        sim_finding("CONTEXT", "StorPortGetBusData outside HwFindAdapter / HwAdapterControl(SetRunningConfig) ([MS-BUSDATA])");
    if (BusDataType != PCIConfiguration || !Buffer) return 0;
    if (Length > 256) Length = 256;
    for (ULONG i = 0; i < Length;) {
        if (!(i & 3) && Length - i >= 4) {   /* dword reads: one config cycle each */
            uint32_t v = a->dev->ops->cfg_read(a->dev, i, 4);
            memcpy((UCHAR *)Buffer + i, &v, 4);
            i += 4;
        } else {
            ((UCHAR *)Buffer)[i] = (UCHAR)a->dev->ops->cfg_read(a->dev, i, 1);
            i++;
        }
    }
    return Length;
}

ULONG NTAPI StorPortSetBusDataByOffset(PVOID DeviceExtension, ULONG BusDataType, ULONG SystemIoBusNumber,
                                       ULONG SlotNumber, PVOID Buffer, ULONG Offset, ULONG Length)
{
    struct sim_adapter *a = adapter_of("StorPortSetBusDataByOffset", DeviceExtension);
    (void)SystemIoBusNumber; (void)SlotNumber;
    if (!a) return 0;
    if (!bus_data_allowed())
        sim_finding("CONTEXT", "StorPortSetBusDataByOffset outside HwFindAdapter / HwAdapterControl(SetRunningConfig)");
    if (BusDataType != PCIConfiguration || !Buffer || Offset >= 256) return 0;
    if (Offset + Length > 256) Length = 256 - Offset;
    for (ULONG i = 0; i < Length; i++)
        a->dev->ops->cfg_write(a->dev, Offset + i, 1, ((UCHAR *)Buffer)[i]);
    return Length;
}

static int bar_of_range(struct sim_adapter *a, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < 6; i++)
        if (a->pci.bar[i].present && gpa >= a->pci.bar[i].gpa && gpa + len <= a->pci.bar[i].gpa + a->pci.bar[i].len)
            return (int)i;
    return -1;
}

PVOID NTAPI StorPortGetDeviceBase(PVOID HwDeviceExtension, INTERFACE_TYPE BusType, ULONG SystemIoBusNumber,
                                  STOR_PHYSICAL_ADDRESS IoAddress, ULONG NumberOfBytes, BOOLEAN InIoSpace)
{
    struct sim_adapter *a = adapter_of("StorPortGetDeviceBase", HwDeviceExtension);
    (void)BusType; (void)SystemIoBusNumber;
    if (!a) return NULL;
    /* Only HwFindAdapter maps the access ranges StorPort assigned (a restart without
     * ScsiRestartAdapter calls HwFindAdapter again, [MS-ADAPTERCTL]) */
    if (!in_callback("HwFindAdapter"))
        sim_finding("CONTEXT", "StorPortGetDeviceBase outside HwFindAdapter");
    uint64_t gpa = (uint64_t)IoAddress.QuadPart;
    int bar = bar_of_range(a, gpa, NumberOfBytes);
    if (InIoSpace || bar < 0 || !NumberOfBytes || a->nwin >= 8) {
        sim_log("StorPortGetDeviceBase(0x%llx, %u, %s): not inside an assigned memory BAR: NULL",
                (unsigned long long)gpa, NumberOfBytes, InIoSpace ? "I/O" : "memory");
        return NULL;
    }
    uint64_t pgoff = gpa & (PG - 1);
    size_t maplen = (size_t)((pgoff + NumberOfBytes + PG - 1) & ~(PG - 1));
    /* Inaccessible on purpose: the host build reaches registers through AvHostMmio*,
     * a loaded .sys faults and sim/pe/ emulates the access. */
    void *m = mmap(NULL, maplen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return NULL;
    struct sim_window *w = &a->win[a->nwin];
    w->va = (uint8_t *)m + pgoff;
    w->len = NumberOfBytes;
    w->gpa = gpa;
    w->bar = (unsigned)bar;
    __atomic_store_n(&w->active, true, __ATOMIC_RELEASE);
    __atomic_store_n(&a->nwin, a->nwin + 1, __ATOMIC_RELEASE);
    return w->va;
}

VOID NTAPI StorPortFreeDeviceBase(PVOID HwDeviceExtension, PVOID MappedAddress)
{
    struct sim_adapter *a = adapter_of("StorPortFreeDeviceBase", HwDeviceExtension);
    if (!a) return;
    for (unsigned i = 0; i < a->nwin; i++)
        if (a->win[i].active && a->win[i].va == MappedAddress) {
            a->win[i].active = false;
            uint8_t *base = a->win[i].va - ((uintptr_t)a->win[i].va & (PG - 1));
            munmap(base, (size_t)(((uintptr_t)a->win[i].va & (PG - 1)) + a->win[i].len + PG - 1) & ~(PG - 1));
            return;
        }
    sim_finding("ARGUMENT", "StorPortFreeDeviceBase(%p): not a mapped device base", MappedAddress);
}

PVOID NTAPI StorPortGetUncachedExtension(PVOID HwDeviceExtension, PPORT_CONFIGURATION_INFORMATION ConfigInfo,
                                         ULONG NumberOfBytes)
{
    struct sim_adapter *a = adapter_of("StorPortGetUncachedExtension", HwDeviceExtension);
    if (!a) return NULL;
    if (!in_callback("HwFindAdapter")) {
        sim_finding("CONTEXT", "StorPortGetUncachedExtension outside HwFindAdapter ([MS-UNC]): NULL");
        return NULL;
    }
    if (ConfigInfo != a->cfg)
        sim_finding("ARGUMENT", "StorPortGetUncachedExtension: ConfigInfo is not the one passed to HwFindAdapter");
    if (a->unc_va && a->rebalanced && sim_second_uncached_null) {
        sim_log("StorPortGetUncachedExtension: second call on this device extension (rebalance): NULL, as ReactOS "
                "(--second-uncached null)");
        return NULL;
    }
    /* A call after a failed one allocates afresh: a failure leaves nothing behind (ReactOS
     * keeps the buffer only on success; Windows: undocumented). Logged, so a test can see
     * the driver's fallback. */
    if (a->unc_failed && !a->unc_va)
        sim_log("StorPortGetUncachedExtension(%u): called again after a failure", NumberOfBytes);
    if (a->unc_va) {
        if (NumberOfBytes > a->unc_len)
            sim_log("StorPortGetUncachedExtension: second call asks %u bytes > first %u: same buffer returned",
                    NumberOfBytes, a->unc_len);
        return a->unc_va;
    }
    if (!NumberOfBytes) return NULL;
    /* The dump stack's common buffer is small: 32 KiB is all a dump/hibernation
     * miniport may count on (facts §7). */
    if (a->opts.dump_mode && NumberOfBytes > 32768)
        sim_finding("DUMP", "StorPortGetUncachedExtension(%u bytes) in dump mode: more than the 32 KiB the dump stack provides ([MS-BOOT], facts §7)",
                    NumberOfBytes);
    /* dump mode: the address is not even 1 KiB aligned ([AHCI]) */
    uint64_t lead = a->opts.dump_mode ? 0x200 : 0;
    uint64_t need = lead + NumberOfBytes + 64;
    uint64_t pages = (need + PG - 1) / PG;
    /* The DMA adapter is made from ConfigInfo as it stands now: 64-bit capable only when
     * the miniport said so (SCSI_DMA64_MINIPORT_*), else below 4 GiB (facts §2). */
    sim_mem_set_dma64(&a->mem, (a->cfg->Dma64BitAddresses & (SCSI_DMA64_MINIPORT_SUPPORTED |
                                                             SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED)) != 0);
    if (!a->opts.dump_mode && !sim_contig_possible(need, "StorPortGetUncachedExtension")) {
        a->unc_failed = true;
        return NULL;
    }
    uint64_t gpa = sim_mem_alloc_contig(&a->mem, pages + 1);
    if (!gpa) { sim_log("StorPortGetUncachedExtension(%u): out of guest memory", NumberOfBytes); return NULL; }
    if (sim_verbose > 1 || a->mem.end > 0x100000000ull)
        sim_log("port: uncached extension of %u bytes at physical 0x%llx (Dma64BitAddresses 0x%02x)",
                NumberOfBytes, (unsigned long long)(gpa + lead), a->cfg->Dma64BitAddresses);
    a->unc_gpa = gpa + lead;
    a->unc_va = sim_gpa(a->dev, a->unc_gpa);
    a->unc_len = NumberOfBytes;
    a->unc_pages = pages + 1;
    a->unc_canary_len = (size_t)(pages * PG - lead - NumberOfBytes);
    memset(a->unc_va, 0xA5, NumberOfBytes);                 /* not promised to be zero */
    memset(a->unc_va + NumberOfBytes, 0xC5, a->unc_canary_len);
    uint8_t *guard = sim_gpa(a->dev, gpa + pages * PG);
    if (((uintptr_t)guard & (PG - 1)) == 0) mprotect(guard, PG, PROT_NONE);
    a->unc_done = true;
    a->unc_srbext = a->cfg->SrbExtensionSize;
    a->unc_breaks = a->cfg->NumberOfPhysicalBreaks;
    a->unc_maxxfer = a->cfg->MaximumTransferLength;
    return a->unc_va;
}

STOR_PHYSICAL_ADDRESS NTAPI StorPortGetPhysicalAddress(PVOID HwDeviceExtension, PSCSI_REQUEST_BLOCK Srb,
                                                       PVOID VirtualAddress, ULONG *Length)
{
    STOR_PHYSICAL_ADDRESS pa;
    pa.QuadPart = 0;
    struct sim_adapter *a = adapter_of("StorPortGetPhysicalAddress", HwDeviceExtension);
    if (!a) return pa;
    uint64_t gpa;
    ULONG len;
    if (sim_port_phys_of(a, Srb, VirtualAddress, &gpa, &len)) {
        pa.QuadPart = (LONGLONG)gpa;
        if (Length) *Length = len;
    } else {
        sim_finding("ARGUMENT", "StorPortGetPhysicalAddress(%p): not in the uncached extension, the SRB extension or the SRB's data buffer",
                    VirtualAddress);
        if (Length) *Length = 0;
    }
    return pa;
}

PVOID NTAPI StorPortGetVirtualAddress(PVOID HwDeviceExtension, STOR_PHYSICAL_ADDRESS PhysicalAddress)
{
    struct sim_adapter *a = adapter_of("StorPortGetVirtualAddress", HwDeviceExtension);
    uint64_t gpa = (uint64_t)PhysicalAddress.QuadPart;
    if (!a) return NULL;
    if (a->unc_va && gpa >= a->unc_gpa && gpa < a->unc_gpa + a->unc_len)
        return a->unc_va + (gpa - a->unc_gpa);
    sim_finding("ARGUMENT", "StorPortGetVirtualAddress(0x%llx): only uncached-extension addresses are valid",
                (unsigned long long)gpa);
    return NULL;
}

PVOID NTAPI StorPortGetLogicalUnit(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun)
{
    struct sim_adapter *a = adapter_of("StorPortGetLogicalUnit", HwDeviceExtension);
    if (!a || PathId || TargetId || Lun) return NULL;
    return a->luext;
}

PSCSI_REQUEST_BLOCK NTAPI StorPortGetSrb(PVOID DeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun, LONG QueueTag)
{
    (void)DeviceExtension; (void)PathId; (void)TargetId; (void)Lun; (void)QueueTag;
    return NULL;   /* StorPort does not support it */
}

PSTOR_SCATTER_GATHER_LIST NTAPI StorPortGetScatterGatherList(PVOID DeviceExtension, PSCSI_REQUEST_BLOCK Srb)
{
    struct sim_adapter *a = adapter_of("StorPortGetScatterGatherList", DeviceExtension);
    if (!a) return NULL;
    return sim_port_sglist(a, Srb);
}

BOOLEAN NTAPI StorPortValidateRange(PVOID HwDeviceExtension, INTERFACE_TYPE BusType, ULONG SystemIoBusNumber,
                                    STOR_PHYSICAL_ADDRESS IoAddress, ULONG NumberOfBytes, BOOLEAN InIoSpace)
{
    struct sim_adapter *a = adapter_of("StorPortValidateRange", HwDeviceExtension);
    (void)BusType; (void)SystemIoBusNumber;
    if (!a || InIoSpace) return FALSE;
    return bar_of_range(a, (uint64_t)IoAddress.QuadPart, NumberOfBytes) >= 0;
}

STOR_PHYSICAL_ADDRESS NTAPI StorPortConvertUlongToPhysicalAddress(ULONG_PTR UlongAddress)
{
    STOR_PHYSICAL_ADDRESS pa;
    pa.QuadPart = (LONGLONG)UlongAddress;
    return pa;
}

/* ================================================================================
 * Queue control, completion, errors
 * ================================================================================ */
BOOLEAN NTAPI StorPortSetDeviceQueueDepth(PVOID HwDeviceExtension, UCHAR PathId, UCHAR TargetId, UCHAR Lun, ULONG Depth)
{
    struct sim_adapter *a = adapter_of("StorPortSetDeviceQueueDepth", HwDeviceExtension);
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
    struct sim_adapter *a = adapter_of("StorPortPause", HwDeviceExtension);
    if (!a) return FALSE;
    dump_unsafe(a, "StorPortPause");
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = sim_now_ns() + (uint64_t)Timeout * 1000000000ull;
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortResume(PVOID HwDeviceExtension)
{
    struct sim_adapter *a = adapter_of("StorPortResume", HwDeviceExtension);
    if (!a) return FALSE;
    dump_unsafe(a, "StorPortResume");
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
    struct sim_adapter *a = adapter_of("StorPortBusy", HwDeviceExtension);
    if (!a) return FALSE;
    dump_unsafe(a, "StorPortBusy");
    pthread_mutex_lock(&a->srb_mutex);
    a->busy_count = RequestsToComplete;
    pthread_mutex_unlock(&a->srb_mutex);
    return TRUE;
}

BOOLEAN NTAPI StorPortReady(PVOID HwDeviceExtension)
{
    struct sim_adapter *a = adapter_of("StorPortReady", HwDeviceExtension);
    if (!a) return FALSE;
    dump_unsafe(a, "StorPortReady");
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
    struct sim_adapter *a = adapter_of("StorPortCompleteRequest", HwDeviceExtension);
    (void)PathId; (void)TargetId; (void)Lun;
    if (!a) return;
    sim_port_complete_all(a, SrbStatus);
}

VOID NTAPI StorPortLogError(PVOID HwDeviceExtension, PSCSI_REQUEST_BLOCK Srb, UCHAR PathId, UCHAR TargetId,
                            UCHAR Lun, ULONG ErrorCode, ULONG UniqueId)
{
    struct sim_adapter *a = adapter_of("StorPortLogError", HwDeviceExtension);
    (void)Srb;
    dump_unsafe(a, "StorPortLogError");
    if (a) __atomic_fetch_add(&a->nlog, 1, __ATOMIC_RELAXED);
    sim_log("StorPortLogError: ErrorCode 0x%x UniqueId 0x%08x (path %u target %u lun %u)",
            ErrorCode, UniqueId, PathId, TargetId, Lun);
}

VOID NTAPI StorPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length)
{
    memmove(WriteBuffer, ReadBuffer, Length);
}

VOID NTAPI ScsiPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length);
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
    struct sim_adapter *a = adapter_of("StorPortSynchronizeAccess", HwDeviceExtension);
    if (!a || !SynchronizedAccessRoutine) return FALSE;
    dump_unsafe(a, "StorPortSynchronizeAccess");
    int old = sim_tls.irql;
    if (!a->opts.dump_mode) sim_acquire_interrupt_lock(a, "StorPortSynchronizeAccess");
    sim_tls.irql = SIM_IRQL_DIRQL;
    sim_call_sync((void *)SynchronizedAccessRoutine, HwDeviceExtension, Context);
    if (!a->opts.dump_mode) sim_release_interrupt_lock(a, "StorPortSynchronizeAccess");
    sim_tls.irql = old;
    return TRUE;
}

/* ================================================================================
 * Registry: PASSIVE only; the simulated registry is empty.
 * ================================================================================ */
PUCHAR NTAPI StorPortAllocateRegistryBuffer(PVOID HwDeviceExtension, PULONG Length)
{
    struct sim_adapter *a = adapter_of("StorPortAllocateRegistryBuffer", HwDeviceExtension);
    sim_check_irql("StorPortAllocateRegistryBuffer", SIM_IRQL_PASSIVE);
    if (!a || !Length || !*Length) return NULL;
    struct sim_pool_block *b = calloc(1, sizeof(*b));
    b->p = calloc(1, *Length);
    b->len = *Length;
    memcpy(&b->tag, "Rreg", 4);
    pthread_mutex_lock(&a->pool_mutex);
    b->next = a->pool;
    a->pool = b;
    pthread_mutex_unlock(&a->pool_mutex);
    return b->p;
}

VOID NTAPI StorPortFreeRegistryBuffer(PVOID HwDeviceExtension, PUCHAR Buffer)
{
    struct sim_adapter *a = adapter_of("StorPortFreeRegistryBuffer", HwDeviceExtension);
    sim_check_irql("StorPortFreeRegistryBuffer", SIM_IRQL_PASSIVE);
    if (!a) return;
    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_pool_block **pp = &a->pool; *pp; pp = &(*pp)->next)
        if ((*pp)->p == Buffer) {
            struct sim_pool_block *b = *pp;
            *pp = b->next;
            pthread_mutex_unlock(&a->pool_mutex);
            free(b->p);
            free(b);
            return;
        }
    pthread_mutex_unlock(&a->pool_mutex);
    sim_finding("POOL", "StorPortFreeRegistryBuffer(%p): not a registry buffer", (void *)Buffer);
}

BOOLEAN NTAPI StorPortRegistryRead(PVOID HwDeviceExtension, PUCHAR ValueName, ULONG Global, ULONG Type,
                                   PUCHAR Buffer, PULONG BufferLength)
{
    (void)HwDeviceExtension; (void)ValueName; (void)Global; (void)Type; (void)Buffer;
    sim_check_irql("StorPortRegistryRead", SIM_IRQL_PASSIVE);
    if (BufferLength) *BufferLength = 0;
    return FALSE;
}

BOOLEAN NTAPI StorPortRegistryWrite(PVOID HwDeviceExtension, PUCHAR ValueName, ULONG Global, ULONG Type,
                                    PUCHAR Buffer, ULONG BufferLength)
{
    (void)HwDeviceExtension; (void)ValueName; (void)Global; (void)Type; (void)Buffer; (void)BufferLength;
    sim_check_irql("StorPortRegistryWrite", SIM_IRQL_PASSIVE);
    return TRUE;
}

/* ================================================================================
 * Registers. The host build calls AvHostMmioRead/Write (hwreg.h); a loaded .sys may
 * import the StorPortRead/WriteRegister* exports. Both end in mmio_access().
 * ================================================================================ */
bool sim_mmio_translate(struct sim_adapter *a, const volatile void *va, unsigned width, uint64_t *gpa, unsigned *bar)
{
    const uint8_t *p = (const uint8_t *)va;
    unsigned n = __atomic_load_n(&a->nwin, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct sim_window *w = &a->win[i];
        if (!__atomic_load_n(&w->active, __ATOMIC_ACQUIRE)) continue;
        if (p >= w->va && p + width <= w->va + w->len) {
            *gpa = w->gpa + (uint64_t)(p - w->va);
            *bar = w->bar;
            return true;
        }
    }
    return false;
}

static struct sim_adapter *mmio_adapter(const volatile void *va, unsigned width, uint64_t *gpa, unsigned *bar)
{
    struct sim_adapter *a = sim_tls.adapter;
    if (a && sim_mmio_translate(a, va, width, gpa, bar)) return a;
    pthread_mutex_lock(&sim_adapters_lock);
    for (a = sim_adapters; a; a = a->next)
        if (sim_mmio_translate(a, va, width, gpa, bar)) break;
    pthread_mutex_unlock(&sim_adapters_lock);
    return a;
}

/* Out of line: the common path of mmio_access runs on the driver's (small, for a loaded
 * .sys: 12/24 KiB kernel) stack and must stay light. */
static __attribute__((noinline)) void mmio_outside(const volatile void *va, unsigned width, bool write)
{
    char d[256];
    sim_describe_address((const void *)va, d, sizeof(d));
    sim_finding("MMIO", "%s of %u bytes at %p outside a mapped BAR (%s)", write ? "write" : "read", width,
                (const void *)va, d);
}

/* issue 11 item 7: the longest time the device model held a single register access made
 * at DIRQL or holding the interrupt lock (normal instances; a dump instance runs with the
 * other CPUs frozen). Host scheduling and qtest round trips are not counted: only what
 * the device itself made the access wait for (sim_dev_ops.held_ns).
 * In a VM each access is a VM exit; a device reset that drains the host's requests
 * (QEMU virtio_blk_reset -> blk_drain) keeps the vCPU inside the write, and other CPUs
 * waiting for the lock or for an IPI to it are stuck with it: over 100 ms is a finding
 * (SMP Windows 7: CLOCK_WATCHDOG_TIMEOUT 0x101 or a frozen VM; facts §11.4). */
uint64_t sim_max_locked_mmio_ns;
#define SIM_LOCKED_MMIO_LIMIT_NS (100ull * 1000000ull)

static __attribute__((noinline)) void note_locked_mmio(struct sim_adapter *a, bool write, unsigned bar, uint64_t off)
{
    /* the time the device model held the access (not host scheduling or qtest latency) */
    uint64_t dt = a->dev->ops->held_ns ? a->dev->ops->held_ns(a->dev) : 0, cur = __atomic_load_n(&sim_max_locked_mmio_ns, __ATOMIC_RELAXED);
    while (dt > cur && !__atomic_compare_exchange_n(&sim_max_locked_mmio_ns, &cur, dt, false,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    if (dt > SIM_LOCKED_MMIO_LIMIT_NS) {
        sim_log("port: register %s at BAR%u+0x%llx held %.1f ms by the device at %s%s", write ? "write" : "read", bar,
                (unsigned long long)off, dt / 1e6, sim_irql_name(sim_tls.irql),
                (sim_tls.locks & SIM_LOCK_INTERRUPT) || sim_tls.msi_locks ? " holding the interrupt lock" : "");
        sim_finding("STALL", "a register access took over 100 ms at DIRQL or holding the interrupt lock "
                             "(SMP Windows 7: CLOCK_WATCHDOG_TIMEOUT 0x101 or a frozen VM; a device reset "
                             "that waits for the host's requests)");
    }
}

static uint32_t mmio_access(const volatile void *va, unsigned width, bool write, uint32_t value)
{
    uint64_t gpa;
    unsigned bar;
    if (width != 1 && width != 2 && width != 4) {
        sim_finding("MMIO", "register access of width %u at %p", width, (const void *)va);
        return 0xFFFFFFFFu;
    }
    struct sim_adapter *a = mmio_adapter(va, width, &gpa, &bar);
    if (!a) {
        mmio_outside(va, width, write);
        return 0xFFFFFFFFu;
    }
    if (gpa & (width - 1))
        sim_finding("MMIO", "misaligned %u-byte register %s at BAR%u+0x%llx (virtio 4.1.3.1)", width,
                    write ? "write" : "read", bar, (unsigned long long)(gpa - a->pci.bar[bar].gpa));
    int kind = sim_pci_region_kind(&a->pci, bar, gpa - a->pci.bar[bar].gpa);
    sim_stretch();
    if (__atomic_load_n(&a->d3, __ATOMIC_ACQUIRE)) {
        /* D3: the device never sees it; reads float to all ones. Counted as before, so
         * the "access while stopped" finding still fires. */
        __atomic_fetch_add(&a->ctr.d3_accesses, 1, __ATOMIC_RELAXED);
        if (write) { __atomic_fetch_add(&a->ctr.mmio_writes[kind], 1, __ATOMIC_RELAXED); return 0; }
        __atomic_fetch_add(&a->ctr.mmio_reads[kind], 1, __ATOMIC_RELAXED);
        return width == 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
    }
    bool locked = !a->opts.dump_mode &&
                  (sim_tls.irql >= SIM_IRQL_DIRQL || (sim_tls.locks & SIM_LOCK_INTERRUPT) || sim_tls.msi_locks);
    if (locked && a->dev->ops->held_ns) (void)a->dev->ops->held_ns(a->dev);   /* clear stale */
    if (write) {
        __atomic_fetch_add(&a->ctr.mmio_writes[kind], 1, __ATOMIC_RELAXED);
        if (kind == SIM_MMIO_NOTIFY) __atomic_fetch_add(&a->ctr.doorbells, 1, __ATOMIC_RELAXED);
        if (kind == SIM_MMIO_NOTIFY && a->s4_watch) sim_s4_doorbell(a);   /* resumed: whose queue? */
        a->dev->ops->mmio_write(a->dev, gpa, width, value);
        if (locked) note_locked_mmio(a, true, bar, gpa - a->pci.bar[bar].gpa);
        return 0;
    }
    __atomic_fetch_add(&a->ctr.mmio_reads[kind], 1, __ATOMIC_RELAXED);
    uint32_t v = a->dev->ops->mmio_read(a->dev, gpa, width);
    if (locked) note_locked_mmio(a, false, bar, gpa - a->pci.bar[bar].gpa);
    if (kind == SIM_MMIO_ISR && v) sim_tls.isr_read_nonzero = true;
    return v;
}

unsigned int AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    return mmio_access(Register, Width, false, 0);
}

void AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    mmio_access(Register, Width, true, Value);
}

/* Entry for sim/pe/'s fault emulation of a loaded .sys: same checks and counting. */
uint32_t sim_mmio_emulate(const volatile void *va, unsigned width, bool write, uint32_t value);
uint32_t sim_mmio_emulate(const volatile void *va, unsigned width, bool write, uint32_t value)
{
    return mmio_access(va, width, write, value);
}

#define REG_RW(T, W, Name)                                                                 \
    T NTAPI StorPortReadRegister##Name(PVOID HwDeviceExtension, T *Register);              \
    T NTAPI StorPortReadRegister##Name(PVOID HwDeviceExtension, T *Register)               \
    { (void)HwDeviceExtension; return (T)mmio_access(Register, W, false, 0); }             \
    VOID NTAPI StorPortWriteRegister##Name(PVOID HwDeviceExtension, T *Register, T Value); \
    VOID NTAPI StorPortWriteRegister##Name(PVOID HwDeviceExtension, T *Register, T Value)  \
    { (void)HwDeviceExtension; mmio_access(Register, W, true, Value); }                    \
    VOID NTAPI StorPortReadRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count);  \
    VOID NTAPI StorPortReadRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count)   \
    { (void)E; for (ULONG i = 0; i < Count; i++) Buffer[i] = (T)mmio_access(Register, W, false, 0); } \
    VOID NTAPI StorPortWriteRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count); \
    VOID NTAPI StorPortWriteRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count)  \
    { (void)E; for (ULONG i = 0; i < Count; i++) mmio_access(Register, W, true, Buffer[i]); }  \
    T NTAPI StorPortReadPort##Name(PVOID HwDeviceExtension, T *Port);                      \
    T NTAPI StorPortReadPort##Name(PVOID HwDeviceExtension, T *Port)                       \
    { (void)HwDeviceExtension; (void)Port; unexpected("StorPortReadPort" #Name " (no I/O BARs)"); return (T)~0u; } \
    VOID NTAPI StorPortWritePort##Name(PVOID HwDeviceExtension, T *Port, T Value);         \
    VOID NTAPI StorPortWritePort##Name(PVOID HwDeviceExtension, T *Port, T Value)          \
    { (void)HwDeviceExtension; (void)Port; (void)Value; unexpected("StorPortWritePort" #Name " (no I/O BARs)"); } \
    VOID NTAPI StorPortReadPortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count);     \
    VOID NTAPI StorPortReadPortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count)      \
    { (void)E; (void)Port; (void)Buffer; (void)Count; unexpected("StorPortReadPortBuffer" #Name); } \
    VOID NTAPI StorPortWritePortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count);    \
    VOID NTAPI StorPortWritePortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count)     \
    { (void)E; (void)Port; (void)Buffer; (void)Count; unexpected("StorPortWritePortBuffer" #Name); }

REG_RW(UCHAR, 1, Uchar)
REG_RW(USHORT, 2, Ushort)
REG_RW(ULONG, 4, Ulong)

/* ================================================================================
 * Export table (Windows 7 SP1 storport.sys, facts §4): what the PE loader binds.
 * ================================================================================ */
#define X(n) { #n, (void *)n }
#define XR(n) X(StorPortRead##n), X(StorPortWrite##n)
const struct sim_export sim_storport_exports[] = {
    X(ScsiPortMoveMemory), X(ScsiPortNotification),
    X(StorPortAllocateRegistryBuffer), X(StorPortBusy), X(StorPortCompleteRequest),
    X(StorPortConvertUlongToPhysicalAddress), X(StorPortDebugPrint), X(StorPortDeviceBusy),
    X(StorPortDeviceReady), X(StorPortExtendedFunction), X(StorPortFreeDeviceBase),
    X(StorPortFreeRegistryBuffer), X(StorPortGetBusData), X(StorPortGetDeviceBase),
    X(StorPortGetLogicalUnit), X(StorPortGetPhysicalAddress), X(StorPortGetScatterGatherList),
    X(StorPortGetSrb), X(StorPortGetUncachedExtension), X(StorPortGetVirtualAddress),
    X(StorPortInitialize), X(StorPortLogError), X(StorPortMoveMemory), X(StorPortNotification),
    X(StorPortPause), X(StorPortPauseDevice), X(StorPortQuerySystemTime), X(StorPortReady),
    X(StorPortRegistryRead), X(StorPortRegistryWrite), X(StorPortResume), X(StorPortResumeDevice),
    X(StorPortSetBusDataByOffset), X(StorPortSetDeviceQueueDepth), X(StorPortStallExecution),
    X(StorPortSynchronizeAccess), X(StorPortValidateRange),
    XR(PortUchar), XR(PortUshort), XR(PortUlong), XR(RegisterUchar), XR(RegisterUshort), XR(RegisterUlong),
    XR(PortBufferUchar), XR(PortBufferUshort), XR(PortBufferUlong),
    XR(RegisterBufferUchar), XR(RegisterBufferUshort), XR(RegisterBufferUlong),
    { NULL, NULL }
};
_Static_assert(sizeof(sim_storport_exports) / sizeof(sim_storport_exports[0]) == 61 + 1,
               "Windows 7 SP1 storport.sys exports 61 names (facts §4)");
