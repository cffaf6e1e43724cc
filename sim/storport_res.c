/*
 * Simulated storport.sys: the resources a miniport asks for, mostly from HwFindAdapter:
 * PCI bus data, device base (register windows), the uncached extension, physical <->
 * virtual addresses, S/G lists, the logical unit; and the (empty) registry, PASSIVE only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "storport_int.h"

/* ================================================================================
 * Resources: bus data, device base, uncached extension, addresses
 * ================================================================================ */
static bool bus_data_allowed(void)
{
    return storport_in_callback("HwFindAdapter") ||
           (storport_in_callback("HwAdapterControl") && (sim_tls.ctl_type == ScsiSetRunningConfig ||
                                                sim_tls.ctl_type == ScsiSetBootConfig));
}

ULONG NTAPI StorPortGetBusData(PVOID DeviceExtension, ULONG BusDataType, ULONG SystemIoBusNumber,
                               ULONG SlotNumber, PVOID Buffer, ULONG Length)
{
    struct sim_adapter *a = storport_adapter_of("StorPortGetBusData", DeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortSetBusDataByOffset", DeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetDeviceBase", HwDeviceExtension);
    (void)BusType; (void)SystemIoBusNumber;
    if (!a) return NULL;
    /* Only HwFindAdapter maps the access ranges StorPort assigned (a restart without
     * ScsiRestartAdapter calls HwFindAdapter again, [MS-ADAPTERCTL]) */
    if (!storport_in_callback("HwFindAdapter"))
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
    struct sim_adapter *a = storport_adapter_of("StorPortFreeDeviceBase", HwDeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetUncachedExtension", HwDeviceExtension);
    if (!a) return NULL;
    if (!storport_in_callback("HwFindAdapter")) {
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetPhysicalAddress", HwDeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetVirtualAddress", HwDeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetLogicalUnit", HwDeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortGetScatterGatherList", DeviceExtension);
    if (!a) return NULL;
    return sim_port_sglist(a, Srb);
}

BOOLEAN NTAPI StorPortValidateRange(PVOID HwDeviceExtension, INTERFACE_TYPE BusType, ULONG SystemIoBusNumber,
                                    STOR_PHYSICAL_ADDRESS IoAddress, ULONG NumberOfBytes, BOOLEAN InIoSpace)
{
    struct sim_adapter *a = storport_adapter_of("StorPortValidateRange", HwDeviceExtension);
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
 * Registry: PASSIVE only; the simulated registry is empty.
 * ================================================================================ */
PUCHAR NTAPI StorPortAllocateRegistryBuffer(PVOID HwDeviceExtension, PULONG Length)
{
    struct sim_adapter *a = storport_adapter_of("StorPortAllocateRegistryBuffer", HwDeviceExtension);
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
    struct sim_adapter *a = storport_adapter_of("StorPortFreeRegistryBuffer", HwDeviceExtension);
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
