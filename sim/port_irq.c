/*
 * Simulated StorPort: the interrupt thread (MSI-X messages, INTx line, foreign
 * interrupts on a shared line), the DPC threads and the RequestTimerCall timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_int.h"

/* ------------------------------------------------------------------------------- */
/* Interrupt thread: MSI-X messages are DMA writes of the marker into guest RAM; INTx is
 * the line level. Delivery runs under the interrupt lock at DIRQL, as on Windows. */
void port_deliver_msi(struct sim_adapter *a, unsigned msg)
{
    __atomic_fetch_add(&a->ctr.interrupts, 1, __ATOMIC_RELAXED);
    if (msg < 64) __atomic_fetch_add(&a->ctr.msi_interrupts[msg], 1, __ATOMIC_RELAXED);
    port_set_ctx(a, SIM_IRQL_DIRQL);
    if (a->ism == InterruptSynchronizePerMessage) {
        sim_lock_note_acquire("interrupt dispatch", 0, 1ull << msg);
        pthread_mutex_lock(&a->msi_lock[msg]);
        sim_call_msi(a->msi_routine, a->devext, msg);
        pthread_mutex_unlock(&a->msi_lock[msg]);
        sim_lock_note_release("interrupt dispatch", 0, 1ull << msg);
        port_check_locks_after("HwMSInterruptRoutine", 0);
    } else {
        sim_acquire_interrupt_lock(a, "interrupt dispatch");
        sim_call_msi(a->msi_routine, a->devext, msg);
        port_check_locks_after("HwMSInterruptRoutine", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "interrupt dispatch");
    }
    port_set_ctx(a, SIM_IRQL_PASSIVE);
}

static bool deliver_intx(struct sim_adapter *a)
{
    BOOLEAN claimed;
    __atomic_fetch_add(&a->ctr.interrupts, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->ctr.intx_interrupts, 1, __ATOMIC_RELAXED);
    port_set_ctx(a, SIM_IRQL_DIRQL);
    sim_acquire_interrupt_lock(a, "interrupt dispatch");
    claimed = sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    port_check_locks_after("HwInterrupt", SIM_LOCK_INTERRUPT);
    sim_release_interrupt_lock(a, "interrupt dispatch");
    port_set_ctx(a, SIM_IRQL_PASSIVE);
    if (!claimed) __atomic_fetch_add(&a->ctr.intx_unclaimed, 1, __ATOMIC_RELAXED);
    return claimed;
}

unsigned sim_foreign_intx_hz;

/* HwInterrupt called for an interrupt that may not be ours (shared INTx line): claiming
 * it is right only if the driver found its own device's ISR bit set meanwhile. */
void port_deliver_checked_intx(struct sim_adapter *a, const char *what)
{
    BOOLEAN claimed;
    port_set_ctx(a, SIM_IRQL_DIRQL);
    sim_acquire_interrupt_lock(a, "interrupt dispatch");
    sim_tls.isr_read_nonzero = false;
    claimed = sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    port_check_locks_after("HwInterrupt", SIM_LOCK_INTERRUPT);
    if (claimed && !sim_tls.isr_read_nonzero)
        sim_finding("INTERRUPT", "HwInterrupt claimed %s (its ISR byte was not set)", what);
    sim_release_interrupt_lock(a, "interrupt dispatch");
    port_set_ctx(a, SIM_IRQL_PASSIVE);
}

/* Another device's interrupt on our INTx line: HwInterrupt must decline it (its ISR byte
 * reads 0) and, while stopped or removed, must not even look (D3). */
static void deliver_foreign_intx(struct sim_adapter *a)
{
    __atomic_fetch_add(&a->ctr.foreign_intx, 1, __ATOMIC_RELAXED);
    port_deliver_checked_intx(a, "another device's interrupt on the shared INTx line: the other device's "
                            "handler would never run");
}

void *port_irq_thread(void *arg)
{
    struct sim_adapter *a = arg;
    unsigned idle = 0, unclaimed_run = 0;
    bool storm_reported = false;
    uint64_t next_foreign = 0;
    sim_tls.adapter = a;
    while (!a->stopping) {
        bool did = false;
        if (sim_foreign_intx_hz && !a->use_msi && a->drv->hwid.HwInterrupt) {
            uint64_t now = sim_now_ns();
            if (now >= next_foreign) {
                next_foreign = now + 1000000000ull / sim_foreign_intx_hz;
                deliver_foreign_intx(a);
            }
        }
        if (a->use_msi) {
            for (unsigned i = 0; i < a->pci.nmsg; i++) {
                uint32_t *w = (uint32_t *)sim_gpa(a->dev, a->pci.msi_target_gpa + SIM_MSI_STRIDE * i);
                uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
                if (!v) continue;
                __atomic_store_n(w, 0, __ATOMIC_RELEASE);
                if (v != SIM_MSI_DATA(i))
                    sim_log("interrupt: message %u wrote 0x%08x, expected 0x%08x", i, v, SIM_MSI_DATA(i));
                port_deliver_msi(a, i);
                did = true;
            }
        } else if (a->drv->hwid.HwInterrupt && a->dev->ops->intx_level(a->dev)) {
            if (deliver_intx(a)) unclaimed_run = 0;
            else if (++unclaimed_run > 20000 && !storm_reported) {
                storm_reported = true;
                sim_finding("INTERRUPT", "INTx stays asserted but HwInterrupt keeps returning FALSE (interrupt storm)");
            }
            if (unclaimed_run > 100) sim_sleep_us(100);
            did = true;
        }
        if (did) { idle = 0; continue; }
        if (++idle < 200) { __builtin_ia32_pause(); continue; }
        sim_sleep_us(idle < 2000 ? 20 : 100);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------- */
/* DPCs: two DPC "CPUs"; each STOR_DPC queued at most once and serialized with itself
 * ([MS-ISSUEDPC]), or, with --dpc-reentrant, not (ReactOS: KeInitializeDpc on the
 * miniport's routine, no wrapper lock; facts §11.6). */
bool sim_dpc_reentrant;
void sim_port_issue_dpc(struct sim_adapter *a, struct sim_dpc *d)
{
    d->next_q = NULL;
    if (a->dpcq_tail) a->dpcq_tail->next_q = d; else a->dpcq_head = d;
    a->dpcq_tail = d;
    pthread_cond_signal(&a->dpc_cond);
}

void *port_dpc_thread(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    pthread_mutex_lock(&a->dpc_mutex);
    while (!a->stopping) {
        struct sim_dpc *d = a->dpcq_head;
        if (!d) { pthread_cond_wait(&a->dpc_cond, &a->dpc_mutex); continue; }
        a->dpcq_head = d->next_q;
        if (!a->dpcq_head) a->dpcq_tail = NULL;
        d->queued = false;
        void *a1 = d->a1, *a2 = d->a2;
        bool overlap = __atomic_load_n(&a->in_adapter_control, __ATOMIC_ACQUIRE) != 0;
        if (overlap) a->ctr.ctl_dpcs++;
        /* --dpc-reentrant: as if its interrupt came again at once, so the other DPC
         * thread runs the same DPC while this one does (one run in two). */
        if (sim_dpc_reentrant && !d->queued && (__atomic_load_n(&a->ctr.dpcs, __ATOMIC_RELAXED) & 1)) {
            d->queued = true;
            sim_port_issue_dpc(a, d);
        }
        pthread_mutex_unlock(&a->dpc_mutex);

        if (!sim_dpc_reentrant) pthread_mutex_lock(&d->run);
        pthread_mutex_lock(&a->dpc_mutex);
        if (d->running++) a->ctr.dpc_concurrent++;   /* another thread is inside it now */
        pthread_mutex_unlock(&a->dpc_mutex);
        __atomic_fetch_add(&a->ctr.dpcs, 1, __ATOMIC_RELAXED);
        port_set_ctx(a, SIM_IRQL_DISPATCH);
        sim_tls.ctl_overlap = overlap;
        sim_call_dpc(d->routine, d->obj, a->devext, a1, a2);
        sim_tls.ctl_overlap = false;
        port_check_locks_after("HwDpcRoutine", 0);
        sim_tls.locks = 0; sim_tls.msi_locks = 0;
        port_set_ctx(a, SIM_IRQL_PASSIVE);
        pthread_mutex_lock(&a->dpc_mutex);
        d->running--;
        if (!sim_dpc_reentrant) pthread_mutex_unlock(&d->run);
    }
    pthread_mutex_unlock(&a->dpc_mutex);
    return NULL;
}

/* ------------------------------------------------------------------------------- */
/* RequestTimerCall: one timer per adapter; HwTimer runs under the StartIo lock at
 * DISPATCH (half duplex: also the interrupt lock), facts §6. */
void sim_port_set_timer(struct sim_adapter *a, void *routine, ULONG us)
{
    pthread_mutex_lock(&a->timer_mutex);
    a->timer_routine = routine;
    a->timer_due_ns = (us && routine) ? sim_now_ns() + (uint64_t)us * 1000ull : 0;
    a->timer_gen++;
    pthread_cond_signal(&a->timer_cond);
    pthread_mutex_unlock(&a->timer_mutex);
}

void *port_timer_thread(void *arg)
{
    struct sim_adapter *a = arg;
    sim_tls.adapter = a;
    pthread_mutex_lock(&a->timer_mutex);
    while (!a->stopping) {
        uint64_t now = sim_now_ns();
        if (!a->timer_due_ns || a->timer_due_ns > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = a->timer_due_ns ? a->timer_due_ns - now : 50000000ull;
            if (wait > 50000000ull) wait = 50000000ull;
            uint64_t ns = (uint64_t)ts.tv_nsec + wait;
            ts.tv_sec += (time_t)(ns / 1000000000ull);
            ts.tv_nsec = (long)(ns % 1000000000ull);
            pthread_cond_timedwait(&a->timer_cond, &a->timer_mutex, &ts);
            continue;
        }
        void *routine = a->timer_routine;
        a->timer_due_ns = 0;
        pthread_mutex_unlock(&a->timer_mutex);
        __atomic_fetch_add(&a->ctr.timers, 1, __ATOMIC_RELAXED);
        port_set_ctx(a, SIM_IRQL_DISPATCH);
        sim_acquire_startio_lock(a, "timer dispatch");
        bool half = a->sync_model == StorSynchronizeHalfDuplex;
        if (half) { sim_acquire_interrupt_lock(a, "timer dispatch"); sim_tls.irql = SIM_IRQL_DIRQL; }
        sim_call_timer(routine, a->devext);
        port_check_locks_after("HwTimer", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
        if (half) sim_release_interrupt_lock(a, "timer dispatch");
        sim_release_startio_lock(a, "timer dispatch");
        port_set_ctx(a, SIM_IRQL_PASSIVE);
        pthread_mutex_lock(&a->timer_mutex);
    }
    pthread_mutex_unlock(&a->timer_mutex);
    return NULL;
}

