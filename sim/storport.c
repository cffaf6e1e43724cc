/*
 * storport.sys as the miniport sees it: every export of Windows 7 SP1's storport.sys
 * (facts §4), with the Windows calling convention (NTAPI = ms_abi on x86_64 Linux,
 * stdcall on i386; the variadic ones are ms_abi/cdecl variadics), each checked against
 * the IRQL and context rules of facts §6 before it does what Windows would do.
 * Also the register hooks of the host-built driver (AvHostMmioRead/Write, hwreg.h).
 *
 * This file: DriverEntry / StorPortInitialize (main_session.c runs them through
 * sim_driver_load, for the host-built driver and a loaded .sys alike), the checks every
 * export shares (argument, callback context, dump-safe set) and the export table the
 * PE loader binds (sim/pe/sim_pe.c). The exports themselves, by concern: storport_notify.c
 * (StorPortNotification: completion, timer, DPCs, spin locks), storport_ext.c
 * (StorPortExtendedFunction, StorPortDebugPrint), storport_res.c (bus data, device
 * base, uncached extension, addresses, registry), storport_queue.c (queue control,
 * completion, errors, stall/time, SynchronizeAccess), storport_regs.c (register access);
 * their shared declarations in storport_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storport_int.h"

struct sim_driver *sim_loading_driver;
static bool loading_dump;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

struct sim_adapter *storport_adapter_of(const char *api, void *ext)
{
    struct sim_adapter *a = sim_adapter_from_ext(ext);
    if (!a) sim_finding("ARGUMENT", "%s: HwDeviceExtension %p is not a device extension StorPort gave out", api, ext);
    return a;
}

bool storport_in_callback(const char *name)
{
    return sim_tls.callback && strcmp(sim_tls.callback, name) == 0;
}

void storport_unexpected(const char *api)
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
    if (!drv || !storport_in_callback("DriverEntry")) {
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

/* The dump port implements only a dump-safe subset of StorPort (facts §7, §11.8:
 * vioscsi 09adb8d7 hit an NMI taking a spin lock in the dump path): a call outside it
 * from a dump instance is a DUMP finding. */
void storport_dump_unsafe(struct sim_adapter *a, const char *api)
{
    if (a && a->opts.dump_mode)
        sim_finding("DUMP", "%s in dump mode: outside the dump-safe set (no locks, DPC, timer, pool, LogError, "
                    "notifications other than RequestComplete/NextRequest; facts §11.8)", api);
}

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
