/*
 * Simulated storport.sys: register access. The host-built driver calls
 * AvHostMmioRead/Write (hwreg.h), a loaded .sys the StorPortRead/WriteRegister* exports
 * or, for a direct access, sim/pe/'s fault emulation (sim_mmio_emulate); all of them end
 * in mmio_access(): window lookup, D3, counters, the locked-access STALL check, the device.
 */
#include <stdio.h>
#include <string.h>

#include "storport_int.h"

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

unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    return mmio_access(Register, Width, false, 0);
}

void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    mmio_access(Register, Width, true, Value);
}

/* Entry for sim/pe/'s fault emulation of a loaded .sys: same checks and counting. */
uint32_t sim_mmio_emulate(const volatile void *va, unsigned width, bool write, uint32_t value);
uint32_t sim_mmio_emulate(const volatile void *va, unsigned width, bool write, uint32_t value)
{
    return mmio_access(va, width, write, value);
}

/* Definitions only: storport_int.h (STORPORT_REG_DECLS) declares them. */
#define REG_RW(T, W, Name)                                                                 \
    T NTAPI StorPortReadRegister##Name(PVOID HwDeviceExtension, T *Register)               \
    { (void)HwDeviceExtension; return (T)mmio_access(Register, W, false, 0); }             \
    VOID NTAPI StorPortWriteRegister##Name(PVOID HwDeviceExtension, T *Register, T Value)  \
    { (void)HwDeviceExtension; mmio_access(Register, W, true, Value); }                    \
    VOID NTAPI StorPortReadRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count)   \
    { (void)E; for (ULONG i = 0; i < Count; i++) Buffer[i] = (T)mmio_access(Register, W, false, 0); } \
    VOID NTAPI StorPortWriteRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count)  \
    { (void)E; for (ULONG i = 0; i < Count; i++) mmio_access(Register, W, true, Buffer[i]); }  \
    T NTAPI StorPortReadPort##Name(PVOID HwDeviceExtension, T *Port)                       \
    { (void)HwDeviceExtension; (void)Port; storport_unexpected("StorPortReadPort" #Name " (no I/O BARs)"); return (T)~0u; } \
    VOID NTAPI StorPortWritePort##Name(PVOID HwDeviceExtension, T *Port, T Value)          \
    { (void)HwDeviceExtension; (void)Port; (void)Value; storport_unexpected("StorPortWritePort" #Name " (no I/O BARs)"); } \
    VOID NTAPI StorPortReadPortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count)      \
    { (void)E; (void)Port; (void)Buffer; (void)Count; storport_unexpected("StorPortReadPortBuffer" #Name); } \
    VOID NTAPI StorPortWritePortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count)     \
    { (void)E; (void)Port; (void)Buffer; (void)Count; storport_unexpected("StorPortWritePortBuffer" #Name); }

REG_RW(UCHAR, 1, Uchar)
REG_RW(USHORT, 2, Ushort)
REG_RW(ULONG, 4, Ulong)
