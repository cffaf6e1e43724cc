/*
 * sim/pe glue for the simulator core (see sim_pe.h). Binds the image's imports to
 * sim_storport_exports[] (the core's Windows 7 SP1 export table), installs the call
 * hook and the MMIO fallback. The MMIO callbacks run in the SIGSEGV handler of a
 * driver instruction (mmio_trap.h, "CALLBACK CONTEXT"): sim_mmio_emulate takes only
 * sim_adapters_lock and the backend's own lock, neither of which is held while the
 * core runs driver code, so it is safe there.
 */
#define _GNU_SOURCE
#include "sim_pe.h"
#include "kstack.h"
#include "mmio_trap.h"
#include "peloader.h"
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sim/storport_regs.c: the AvHostMmio* path (checks, counters, device access). */
uint32_t sim_mmio_emulate(const volatile void *va, unsigned width, bool write, uint32_t value);

static pe_image image;

/* -v -v: how much of the kernel stack the driver used. The exports it calls run on the
 * host stack behind their gates (export_gate.h), so this is the driver's own frames plus
 * the thin entry and gate frames (docs/pe-loader.md, "Stack budget"). */
static void report_stack_use(void)
{
    if (sim_verbose > 1 && image.base) {
        fflush(stdout);     /* keep the line whole when both go to one pipe */
        fprintf(stderr, "sim: deepest kernel-stack use %zu of %u bytes (the driver's frames; threads that "
                "exited and this one)\n", pe_kstack_max_high_water(), PE_KSTACK_SIZE);
    }
}

static uintptr_t call_hook(void *fn, unsigned nargs, const uintptr_t *args)
{
    return pe_kcall(fn, nargs, args);
}

/* Is va inside any adapter's StorPortGetDeviceBase window? */
static int claims_window(void *ctx, uint64_t va)
{
    struct sim_adapter *a = sim_tls.adapter;
    uint64_t gpa;
    unsigned bar;
    int hit = 0;
    (void)ctx;
    if (a && sim_mmio_translate(a, (const volatile void *)(uintptr_t)va, 1, &gpa, &bar))
        return 1;
    pthread_mutex_lock(&sim_adapters_lock);
    for (a = sim_adapters; a && !hit; a = a->next)
        hit = sim_mmio_translate(a, (const volatile void *)(uintptr_t)va, 1, &gpa, &bar);
    pthread_mutex_unlock(&sim_adapters_lock);
    return hit;
}

static uint32_t mmio_read(void *ctx, uint64_t va, unsigned width)
{
    (void)ctx;
    return sim_mmio_emulate((const volatile void *)(uintptr_t)va, width, false, 0);
}

static void mmio_write(void *ctx, uint64_t va, unsigned width, uint32_t value)
{
    (void)ctx;
    sim_mmio_emulate((const volatile void *)(uintptr_t)va, width, true, value);
}

static const mmio_trap_ops sim_mmio_ops = { mmio_read, mmio_write };

int sim_load_sys_driver(const char *path, void **entry, char *err, size_t errlen)
{
    size_t n = 0, i;
    pe_import *table;
    int rc;
    while (sim_storport_exports[n].name)
        n++;
#if defined(__i386__)
    /* These return STOR_PHYSICAL_ADDRESS (a union): i386 GCC through a hidden pointer,
     * Windows x86 in EDX:EAX. Their gates convert (peloader.h). If the table ever binds
     * LONGLONG-returning wrappers instead, the addresses differ and nothing is converted. */
    _Static_assert(__builtin_types_compatible_p(__typeof__(StorPortGetPhysicalAddress(NULL, NULL, NULL, NULL)),
                                                STOR_PHYSICAL_ADDRESS) &&
                   __builtin_types_compatible_p(__typeof__(StorPortConvertUlongToPhysicalAddress(0)),
                                                STOR_PHYSICAL_ADDRESS), "PHYSICAL_ADDRESS returns");
    pe_declare_struct_return((const void *)StorPortGetPhysicalAddress);
    pe_declare_struct_return((const void *)StorPortConvertUlongToPhysicalAddress);
#endif
    table = calloc(n ? n : 1, sizeof *table);
    if (!table) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++)
        table[i] = (pe_import){ "storport.sys", sim_storport_exports[i].name, sim_storport_exports[i].fn };
    rc = pe_load(path, table, n, &image, err, errlen);
    free(table);
    if (rc != 0)
        return -1;
    if (sim_verbose)
        sim_log("loaded %s at %p (%zu bytes): %u imports bound to the simulator's storport.sys, "
                "%u relocations applied; kernel stack %u KiB (exports run on the host stack)", image.name,
                (void *)image.base, image.size,
                image.imports_bound, image.relocs_applied, PE_KSTACK_SIZE / 1024);
    if (pe_thread_init(err, errlen) != 0) {
        pe_unload(&image);
        return -1;
    }
    *entry = image.entry;
    mmio_trap_set_fallback(claims_window, &sim_mmio_ops, NULL);
    sim_call_hook = call_hook;
    atexit(report_stack_use);
    return 0;
}

void sim_pe_driver_entry_done(void)
{
    if (image.base)
        pe_discard_init_sections(&image);
}

void sim_pe_unload(void)
{
    sim_call_hook = NULL;
    mmio_trap_set_fallback(NULL, NULL, NULL);
    pe_unload(&image);
}
