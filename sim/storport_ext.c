/*
 * Simulated storport.sys: the other two variadic exports the miniport calls,
 * StorPortExtendedFunction (pool, MSI spin locks, MSI information, processors and
 * nodes, contiguous memory) and StorPortDebugPrint (a small printf over the Windows
 * variadic list).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storport_int.h"

/* ================================================================================
 * ExtendedFunction (variadic)
 * ================================================================================ */
ULONG AV_CDECL StorPortExtendedFunction(STORPORT_FUNCTION_CODE FunctionCode, PVOID HwDeviceExtension, ...)
{
    sim_va_list ap;
    ULONG rc = STOR_STATUS_NOT_IMPLEMENTED;
    struct sim_adapter *a = storport_adapter_of("StorPortExtendedFunction", HwDeviceExtension);
    if (!a) return STOR_STATUS_INVALID_PARAMETER;
    SIM_VA_START(ap, HwDeviceExtension);
    switch ((int)FunctionCode) {
    case ExtFunctionAllocatePool: {
        ULONG bytes = SIM_VA_ARG(ap, ULONG);
        ULONG tag = SIM_VA_ARG(ap, ULONG);
        PVOID *out = SIM_VA_ARG(ap, PVOID *);
        sim_check_irql("StorPortAllocatePool", SIM_IRQL_DISPATCH);
        if (a->opts.dump_mode) { sim_finding("DUMP", "StorPortAllocatePool in dump mode (not supported)"); rc = STOR_STATUS_NOT_IMPLEMENTED; break; }
        if (storport_in_callback("HwStartIo") && a->sync_model == StorSynchronizeHalfDuplex)
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
        if (storport_in_callback("HwMSInterruptRoutine"))
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
            storport_unexpected("StorPortExtendedFunction (this code)");
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
