/*
 * The only way the simulator calls driver code. Each wrapper records which callback
 * runs (for verifier messages and the "only inside HwFindAdapter" style rules), then
 * calls either directly through an NTAPI pointer (the host-built driver) or through
 * sim_call_hook, which the PE loader (sim/pe/) sets to run a loaded .sys on a
 * kernel-sized stack with the right calling convention.
 * IRQL and locks are set by the caller (the port), not here.
 */
#include "sim.h"

sim_call_hook_fn sim_call_hook;

#define ENTER(name) const char *saved_cb_ = sim_tls.callback; sim_tls.callback = (name)
#define LEAVE() sim_tls.callback = saved_cb_
#define HOOK(fn, ...) do { \
        uintptr_t args_[] = { __VA_ARGS__ }; \
        rv_ = sim_call_hook((fn), sizeof(args_) / sizeof(args_[0]), args_); \
    } while (0)

typedef NTSTATUS NTAPI driver_entry_fn(PVOID, PVOID);

NTSTATUS sim_call_driver_entry(void *fn, void *a1, void *a2)
{
    uintptr_t rv_;
    ENTER("DriverEntry");
    if (sim_call_hook) HOOK(fn, (uintptr_t)a1, (uintptr_t)a2);
    else rv_ = (uintptr_t)(ULONG)((driver_entry_fn *)fn)(a1, a2);
    LEAVE();
    return (NTSTATUS)(ULONG)rv_;
}

ULONG sim_call_find_adapter(void *fn, void *ext, void *ctx, void *bus, char *arg,
                            PORT_CONFIGURATION_INFORMATION *cfg, BOOLEAN *again)
{
    uintptr_t rv_;
    ENTER("HwFindAdapter");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)ctx, (uintptr_t)bus, (uintptr_t)arg,
                            (uintptr_t)cfg, (uintptr_t)again);
    else rv_ = ((PHW_FIND_ADAPTER)fn)(ext, ctx, bus, (PCHAR)arg, cfg, again);
    LEAVE();
    return (ULONG)rv_;
}

BOOLEAN sim_call_bool_ext(const char *name, void *fn, void *ext)
{
    uintptr_t rv_;
    ENTER(name);
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext);
    else rv_ = ((PHW_INITIALIZE)fn)(ext);
    LEAVE();
    return (BOOLEAN)(rv_ & 0xFF);
}

BOOLEAN sim_call_bool_ext_srb(const char *name, void *fn, void *ext, void *srb)
{
    uintptr_t rv_;
    ENTER(name);
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)srb);
    else rv_ = ((PHW_STARTIO)fn)(ext, srb);
    LEAVE();
    return (BOOLEAN)(rv_ & 0xFF);
}

BOOLEAN sim_call_reset_bus(void *fn, void *ext, ULONG path)
{
    uintptr_t rv_;
    ENTER("HwResetBus");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)path);
    else rv_ = ((PHW_RESET_BUS)fn)(ext, path);
    LEAVE();
    return (BOOLEAN)(rv_ & 0xFF);
}

SCSI_ADAPTER_CONTROL_STATUS sim_call_adapter_control(void *fn, void *ext, int type, void *params)
{
    uintptr_t rv_;
    int saved = sim_tls.ctl_type;
    sim_tls.ctl_type = type;
    ENTER("HwAdapterControl");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)type, (uintptr_t)params);
    else rv_ = ((PHW_ADAPTER_CONTROL)fn)(ext, (SCSI_ADAPTER_CONTROL_TYPE)type, params);
    LEAVE();
    sim_tls.ctl_type = saved;
    return (SCSI_ADAPTER_CONTROL_STATUS)(ULONG)rv_;
}

BOOLEAN sim_call_msi(void *fn, void *ext, ULONG msg)
{
    uintptr_t rv_;
    unsigned saved = sim_tls.msi_message;
    sim_tls.msi_message = msg;
    ENTER("HwMSInterruptRoutine");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)msg);
    else rv_ = ((PHW_MESSAGE_SIGNALED_INTERRUPT_ROUTINE)fn)(ext, msg);
    LEAVE();
    sim_tls.msi_message = saved;
    return (BOOLEAN)(rv_ & 0xFF);
}

void sim_call_dpc(void *fn, void *dpc, void *ext, void *a1, void *a2)
{
    uintptr_t rv_;
    ENTER("HwDpcRoutine");
    if (sim_call_hook) HOOK(fn, (uintptr_t)dpc, (uintptr_t)ext, (uintptr_t)a1, (uintptr_t)a2);
    else ((PHW_DPC_ROUTINE)fn)(dpc, ext, a1, a2);
    (void)rv_;
    LEAVE();
}

void sim_call_timer(void *fn, void *ext)
{
    uintptr_t rv_;
    ENTER("HwTimer");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext);
    else ((PHW_TIMER)fn)(ext);
    (void)rv_;
    LEAVE();
}

BOOLEAN sim_call_sync(void *fn, void *ext, void *ctx)
{
    uintptr_t rv_;
    ENTER("StorPortSynchronizeAccess callback");
    if (sim_call_hook) HOOK(fn, (uintptr_t)ext, (uintptr_t)ctx);
    else rv_ = ((PSTOR_SYNCHRONIZED_ACCESS)fn)(ext, ctx);
    LEAVE();
    return (BOOLEAN)(rv_ & 0xFF);
}
