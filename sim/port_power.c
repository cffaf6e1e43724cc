/*
 * Simulated StorPort: HwAdapterControl Stop/Restart (with or without the interrupt
 * lock), sleep/resume power cycles, the crash of an instance, hibernation
 * (quiesce / thaw) and the PnP rebalance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_int.h"

int sim_adapter_control_locks = SIM_ACL_NONE;

/* --adapter-control-locks none: what else runs while Stop/Restart holds no lock. An
 * interrupt (every MSI-X message, or HwInterrupt on the INTx line with the claim check
 * of a shared line) and every initialised DPC queued as its ISR would, again and again
 * until the call returns. */
static void *adapter_control_disturber(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    sim_tls.ctl_overlap = true;   /* its ISR calls are stretched (sim_stretch) */
    while (__atomic_load_n(&a->in_adapter_control, __ATOMIC_ACQUIRE)) {
        if (a->use_msi) {
            for (unsigned i = 0; i < a->pci.nmsg; i++) port_deliver_msi(a, i);
        } else if (a->drv->hwid.HwInterrupt) {
            port_deliver_checked_intx(a, "an interrupt during HwAdapterControl");
        }
        __atomic_fetch_add(&a->ctr.ctl_interrupts, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&a->dpc_mutex);
        for (struct sim_dpc *d = a->dpcs; d; d = d->next_all)
            if (!d->queued) { d->queued = true; d->a1 = d->a2 = NULL; sim_port_issue_dpc(a, d); }
        pthread_mutex_unlock(&a->dpc_mutex);
        sim_sleep_us(100);
    }
    return NULL;
}

SCSI_ADAPTER_CONTROL_STATUS port_adapter_control_locked(struct sim_adapter *a, int type)
{
    struct sim_tls saved = sim_tls;
    SCSI_ADAPTER_CONTROL_STATUS st;
    sim_tls.locks = 0;
    if (sim_adapter_control_locks == SIM_ACL_INTERRUPT) {
        /* Stop/Restart: DIRQL with the interrupt lock ([MS-ADAPTERCTL], facts §6). */
        port_set_ctx(a, SIM_IRQL_DIRQL);
        sim_acquire_interrupt_lock(a, "adapter control");
        st = sim_call_adapter_control((void *)a->drv->hwid.HwAdapterControl, a->devext, type, NULL);
        port_check_locks_after("HwAdapterControl", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "adapter control");
    } else {
        /* [MS-LOCK]: no lock held, and DPC, StartIo and Interrupt may be taken, so at or
         * below DISPATCH_LEVEL; the ISR, the DPCs and the timer keep running meanwhile
         * (facts §11.2). The call's register accesses and lock calls are stretched
         * (sim_stretch) so the disturbance really overlaps it. */
        uint64_t i0 = __atomic_load_n(&a->ctr.ctl_interrupts, __ATOMIC_RELAXED);
        uint64_t d0 = __atomic_load_n(&a->ctr.ctl_dpcs, __ATOMIC_RELAXED);
        uint64_t t0 = sim_now_ns();
        /* The previous call's disturber may still be inside an ISR it began before that
         * call returned (Windows does not wait for it either): joined here or at teardown. */
        if (a->ctl_thread_live) { pthread_join(a->ctl_thread, NULL); a->ctl_thread_live = false; }
        __atomic_store_n(&a->in_adapter_control, 1, __ATOMIC_RELEASE);
        bool disturb = a->threads_started && !a->opts.dump_mode &&
                       pthread_create(&a->ctl_thread, NULL, adapter_control_disturber, a) == 0;
        a->ctl_thread_live = disturb;
        if (disturb) sim_sleep_us(300);   /* let the first interrupt and DPC start first */
        port_set_ctx(a, SIM_IRQL_DISPATCH);
        st = sim_call_adapter_control((void *)a->drv->hwid.HwAdapterControl, a->devext, type, NULL);
        port_check_locks_after("HwAdapterControl", 0);
        __atomic_store_n(&a->in_adapter_control, 0, __ATOMIC_RELEASE);
        if (a->ctl_logged++ < 2)   /* the first Stop and Restart; counts in --json */
            sim_log("port: %s at DISPATCH_LEVEL without locks (--adapter-control-locks none): %.1f ms, "
                    "%llu interrupt(s) and %llu DPC run(s) meanwhile",
                    type == ScsiStopAdapter ? "ScsiStopAdapter" : "ScsiRestartAdapter",
                    (double)(sim_now_ns() - t0) / 1e6,
                    (unsigned long long)(__atomic_load_n(&a->ctr.ctl_interrupts, __ATOMIC_RELAXED) - i0),
                    (unsigned long long)(__atomic_load_n(&a->ctr.ctl_dpcs, __ATOMIC_RELAXED) - d0));
    }
    sim_tls = saved;
    return st;
}

/* StorPort's power-down of the adapter: no new requests, outstanding ones complete
 * (bounded), then HwAdapterControl(ScsiStopAdapter). New requests stay paused. */
int sim_port_stop(struct sim_adapter *a)
{
    (void)sim_port_quiesce(a);   /* what is still outstanding after 30 s is Stop's to complete */
    if (!(a->supported_ctl & (1u << ScsiStopAdapter))) {
        sim_log("port: power down skipped: ScsiStopAdapter unsupported");
        return -1;
    }
    if (port_adapter_control_locked(a, ScsiStopAdapter) != ScsiAdapterControlSuccess) return -1;
    __atomic_store_n(&a->d3, 1, __ATOMIC_RELEASE);   /* the power IRP follows Stop: D3 */
    return 0;
}

int sim_port_power_cycle(struct sim_adapter *a)
{
    int rc = sim_port_stop(a);
    if (rc == 0) {
        /* The adapter is in D3 now: "no DMA after return", and nothing may touch its
         * registers until Restart (MMIO decoding is off in D3hot; reads give all ones). */
        uint64_t before = sim_port_mmio_count(a);
        sim_sleep_us(2000);
        uint64_t during = sim_port_mmio_count(a) - before;
        if (during)
            sim_finding("POWER", "%llu register access(es) while the adapter was stopped (after ScsiStopAdapter, "
                        "before ScsiRestartAdapter)", (unsigned long long)during);
        if (a->supported_ctl & (1u << ScsiRestartAdapter)) {
            __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);   /* D0 first, then Restart */
            if (port_adapter_control_locked(a, ScsiRestartAdapter) != ScsiAdapterControlSuccess) rc = -1;
        } else {
            sim_log("port: ScsiRestartAdapter unsupported: Windows would call HwFindAdapter+HwInitialize again (not simulated)");
            rc = -1;
        }
    }
    if (rc == 0) __atomic_fetch_add(&a->power_cycles, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

void sim_port_crash(struct sim_adapter *a, unsigned inflight_writes)
{
    /* requests in flight at the crash: started, never waited for */
    for (unsigned i = 0; i < inflight_writes; i++) {
        struct sim_request *r = calloc(1, sizeof(*r));
        struct sim_buf *b = sim_buf_alloc(&a->mem, 4096, true, 0);
        uint8_t cdb[16] = { 0x2A };
        uint64_t lba = 8ull * i;
        for (int k = 0; k < 4; k++) cdb[2 + k] = (uint8_t)(lba >> (24 - 8 * k));
        cdb[8] = (uint8_t)(4096 / 512);   /* assumes 512-byte blocks; only the crash's noise */
        if (!b) { free(r); break; }
        sim_request_init(r, cdb, 10, b, 4096, false, true);
        pthread_mutex_lock(&a->srb_mutex);
        struct sim_tracked *t = port_tracked_new(a, r);
        if (!t) { pthread_mutex_unlock(&a->srb_mutex); free(r); break; }
        t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0x7F);
        t->orphan = r;                       /* r and b are freed with the tracker */
        t->owns_buf = true;
        t->next = a->outstanding;
        a->outstanding = t;
        a->noutstanding++;
        pthread_mutex_unlock(&a->srb_mutex);
        __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);
        port_start_srb(a, t, r);
    }
    port_stop_threads(a);
    a->crashed = true;
    sim_log("port: instance crashed with %u SRB(s) in flight: no more calls into it", sim_port_outstanding(a));
}

/* Hibernation without HwAdapterControl (--s4-adapter-control off): StorPort pauses new
 * requests and the system waits for the outstanding ones; nothing is called. */
int sim_port_quiesce(struct sim_adapter *a)
{
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = UINT64_MAX;
    uint64_t dl = sim_now_ns() + 30ull * 1000000000ull;
    while (a->noutstanding && sim_now_ns() < dl) {
        struct timespec ts;
        port_abstime_in(&ts, 10000000ull);
        pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
    }
    int rc = a->noutstanding ? -1 : 0;
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

/* The frozen (hibernated) instance continues: its interrupt, DPC and timer threads run
 * again; with restart, D0 and HwAdapterControl(ScsiRestartAdapter) first, as after a
 * sleep; then StorPort lets requests through. */
int sim_port_thaw(struct sim_adapter *a, bool restart)
{
    int rc = 0;
    a->crashed = false;
    if (port_start_threads(a)) return -1;
    if (restart) {
        __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);
        if (!(a->supported_ctl & (1u << ScsiRestartAdapter)) ||
            port_adapter_control_locked(a, ScsiRestartAdapter) != ScsiAdapterControlSuccess) rc = -1;
    }
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}

/* `pnp rebalance` (issue 11 item 10, facts §11.9, [MS-ACT] ScsiStopAdapter): after the
 * caller's SRB_FUNCTION_FLUSH and SRB_FUNCTION_PNP StorStopDevice, StorPort pauses and
 * drains, calls ScsiStopAdapter, releases the resources (interrupt disconnected, BAR
 * mappings invalid, decoding off: reads all ones), and at the new start runs
 * HwFindAdapter + HwInitialize again on the same device extension with other BARs. */
int sim_port_rebalance(struct sim_adapter *a, char *err, size_t errlen)
{
    if (sim_port_quiesce(a)) { snprintf(err, errlen, "requests still outstanding"); return -1; }
    if (!(a->supported_ctl & (1u << ScsiStopAdapter)) ||
        port_adapter_control_locked(a, ScsiStopAdapter) != ScsiAdapterControlSuccess) {
        snprintf(err, errlen, "ScsiStopAdapter failed");
        return -1;
    }
    __atomic_store_n(&a->d3, 1, __ATOMIC_RELEASE);      /* resources released: no decoding */
    port_stop_threads(a);
    /* A DPC the last interrupt before the disconnect queued may still be pending: nothing
     * says StorPort flushes (KeRemoveQueueDpc / KeFlushQueuedDpcs) the miniport's DPCs at
     * a PnP stop, and a delayed DPC on a busy (virtual) CPU can lag by the whole stop.
     * Harshest variant, always: every initialised DPC is left queued, so it runs as soon
     * as the interrupt is connected again, i.e. after HwFindAdapter re-ran on the
     * extension and racing HwInitialize (docs/simulator.md). */
    unsigned late = 0;
    pthread_mutex_lock(&a->dpc_mutex);
    for (struct sim_dpc *d = a->dpcs; d; d = d->next_all, late++)
        if (!d->queued) { d->queued = true; d->a1 = d->a2 = NULL; sim_port_issue_dpc(a, d); }
    pthread_mutex_unlock(&a->dpc_mutex);
    if (late) sim_log("port: rebalance: %u DPC(s) queued before the stop still pending: they run once the interrupt is reconnected", late);
    for (unsigned i = 0; i < a->nwin; i++) a->win[i].active = false;   /* mappings invalid */
    if (a->use_msi) sim_pci_disable_msix(a->dev, &a->pci);
    a->started = false;
    a->rebalanced = true;
    a->rebalances++;
    __atomic_store_n(&a->d3, 0, __ATOMIC_RELEASE);
    uint64_t old_bar = 0;
    for (unsigned i = 0; i < 6 && !old_bar; i++) if (a->pci.bar[i].present) old_bar = a->pci.bar[i].gpa;
    int rc = sim_adapter_start(a, err, errlen);
    for (unsigned i = 0; i < 6; i++)
        if (a->pci.bar[i].present) {
            sim_log("port: rebalance: BAR%u moved from 0x%llx to 0x%llx", i, (unsigned long long)old_bar,
                    (unsigned long long)a->pci.bar[i].gpa);
            break;
        }
    pthread_mutex_lock(&a->srb_mutex);
    a->pause_deadline_ns = 0;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    return rc;
}
