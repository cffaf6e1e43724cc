/*
 * Simulated StorPort: the SRB path (queue gate, HwBuildIo / HwStartIo, BUSY requeue),
 * TimeOutValue timeouts and the multi-tier reset (LU, device, HwResetBus), and the
 * dump port's polling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_int.h"

static void dump_poll(struct sim_adapter *a);

/* The LU queue is paused while a reset escalation runs: no new request (nor BUSY
 * reissue) reaches the miniport until it is over (facts §6: HwResetBus is called
 * "after every LU queue is paused"). Nests. */
static void reset_pause(struct sim_adapter *a, bool on)
{
    pthread_mutex_lock(&a->srb_mutex);
    if (on) a->reset_pause++;
    else if (a->reset_pause) a->reset_pause--;
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
}

void sim_port_reset_bus(struct sim_adapter *a, const char *why)
{
    __atomic_fetch_add(&a->ctr.resets, 1, __ATOMIC_RELAXED);
    sim_log("port: %s: calling HwResetBus", why);
    reset_pause(a, true);
    /* HwResetBus must complete every outstanding SRB with SRB_STATUS_BUS_RESET before
     * it returns (facts §6, [MS-RESET]): remember which ones it owns now. */
    pthread_mutex_lock(&a->srb_mutex);
    unsigned nsnap = 0;
    struct sim_tracked **snap = calloc(a->noutstanding + 1, sizeof(*snap));
    for (struct sim_tracked *t = a->outstanding; t && snap; t = t->next) snap[nsnap++] = t;
    pthread_mutex_unlock(&a->srb_mutex);
    struct sim_tls saved = sim_tls;
    port_set_ctx(a, SIM_IRQL_DISPATCH);
    sim_tls.locks = 0;
    sim_acquire_startio_lock(a, "bus reset");
    bool half = a->sync_model == StorSynchronizeHalfDuplex;
    if (half) { sim_acquire_interrupt_lock(a, "bus reset"); sim_tls.irql = SIM_IRQL_DIRQL; }
    BOOLEAN ok = sim_call_reset_bus((void *)a->drv->hwid.HwResetBus, a->devext, 0);
    port_check_locks_after("HwResetBus", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
    if (half) sim_release_interrupt_lock(a, "bus reset");
    sim_release_startio_lock(a, "bus reset");
    if (!ok) sim_log("port: HwResetBus returned FALSE");
    a->reset_gen++;
    sim_tls = saved;
    /* A completion already on its way (a DPC that took the SRB off the miniport's list
     * just before the reset) may land a little later: allow 2 s, queue still paused. */
    uint64_t grace = sim_now_ns() + 2000000000ull;
    pthread_mutex_lock(&a->srb_mutex);
    for (;;) {
        unsigned left = 0;
        for (unsigned i = 0; i < nsnap; i++)
            for (struct sim_tracked *t = a->outstanding; t; t = t->next)
                if (t == snap[i]) { left++; break; }
        if (!left || sim_now_ns() > grace || a->stopping) break;
        if (a->opts.dump_mode) {
            pthread_mutex_unlock(&a->srb_mutex);
            dump_poll(a);
            sim_sleep_us(20);
            pthread_mutex_lock(&a->srb_mutex);
        } else {
            struct timespec ts;
            port_abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
        }
    }
    /* What StorPort does with SRBs HwResetBus left outstanding is undocumented
     * ([MS-RESET]: complete them "if necessary"). Modelled on the evidence: viostor's
     * HwResetBus completed nothing for years (virtio-win #135) and Windows kept the
     * requests, timed them again and re-issued the reset (event 129 repeated), so they
     * stay outstanding here too; one never completed is a finding once its timeout
     * has run out again after a second round of resets (sim_port_execute). */
    unsigned left = 0;
    for (unsigned i = 0; i < nsnap; i++)
        for (struct sim_tracked *t = a->outstanding; t; t = t->next)
            if (t == snap[i]) { left++; break; }
    if (left) __atomic_fetch_add(&a->ctr.reset_left_outstanding, left, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&a->srb_mutex);
    if (left) sim_log("port: HwResetBus left %u SRB(s) outstanding: StorPort keeps timing them", left);
    free(snap);
    reset_pause(a, false);
}

/* Dump mode has no interrupts, DPCs or timers: the dump port polls HwInterrupt and
 * runs a due RequestTimerCall routine from the same loop (facts §7). */
static void dump_poll(struct sim_adapter *a)
{
    struct sim_tls saved = sim_tls;
    port_set_ctx(a, SIM_IRQL_HIGH);
    sim_call_bool_ext("HwInterrupt", (void *)a->drv->hwid.HwInterrupt, a->devext);
    pthread_mutex_lock(&a->timer_mutex);
    void *routine = a->timer_due_ns && sim_now_ns() >= a->timer_due_ns ? a->timer_routine : NULL;
    if (routine) a->timer_due_ns = 0;
    pthread_mutex_unlock(&a->timer_mutex);
    if (routine) {
        __atomic_fetch_add(&a->ctr.timers, 1, __ATOMIC_RELAXED);
        sim_call_timer(routine, a->devext);
    }
    sim_tls = saved;
}

void port_start_srb(struct sim_adapter *a, struct sim_tracked *t, struct sim_request *r)
{
    PSCSI_REQUEST_BLOCK srb = t->srb;   /* not dereferenced here: it may complete any time */
    struct sim_tls saved = sim_tls;
    bool dump = a->opts.dump_mode;
    port_set_ctx(a, dump ? SIM_IRQL_HIGH : SIM_IRQL_DISPATCH);
    sim_tls.locks = 0;
    if (a->drv->hwid.HwBuildIo) {
        BOOLEAN go = sim_call_bool_ext_srb("HwBuildIo", (void *)a->drv->hwid.HwBuildIo, a->devext, srb);
        port_check_locks_after("HwBuildIo", 0);
        if (!go) {
            pthread_mutex_lock(&a->srb_mutex);
            bool done = r->port_done;
            pthread_mutex_unlock(&a->srb_mutex);
            if (!done)
                sim_finding("SRB", "HwBuildIo returned FALSE without completing the SRB (CDB %02x)", r->cdb[0]);
            sim_tls = saved;
            return;
        }
    }
    bool half = a->sync_model == StorSynchronizeHalfDuplex;
    if (!dump) {
        sim_acquire_startio_lock(a, "StartIo dispatch");
        if (half) { sim_acquire_interrupt_lock(a, "StartIo dispatch"); sim_tls.irql = SIM_IRQL_DIRQL; }
    }
    BOOLEAN ok = sim_call_bool_ext_srb("HwStartIo", (void *)a->drv->hwid.HwStartIo, a->devext, srb);
    if (!dump) {
        port_check_locks_after("HwStartIo", SIM_LOCK_STARTIO | (half ? SIM_LOCK_INTERRUPT : 0));
        if (half) sim_release_interrupt_lock(a, "StartIo dispatch");
        sim_release_startio_lock(a, "StartIo dispatch");
    }
    if (!ok) sim_log("port: HwStartIo returned FALSE (CDB %02x)", r->cdb[0]);
    sim_tls = saved;
}

/* A reset SRB of StorPort's own (multi-tier reset): bypasses the queue gate, waits at
 * most tmo seconds. Returns true when it came back (any status). */
static bool internal_reset_srb(struct sim_adapter *a, UCHAR function, unsigned tmo)
{
    struct sim_request *rr = calloc(1, sizeof(*rr));
    rr->function = function;
    rr->srb_flags = SRB_FLAGS_BYPASS_FROZEN_QUEUE | SRB_FLAGS_BYPASS_LOCKED_QUEUE | SRB_FLAGS_NO_QUEUE_FREEZE;
    rr->timeout = tmo;
    pthread_mutex_lock(&a->srb_mutex);
    struct sim_tracked *t = port_tracked_new(a, rr);
    if (!t) { pthread_mutex_unlock(&a->srb_mutex); free(rr); return false; }
    t->srb->QueueTag = SP_UNTAGGED;
    t->reset_gen = a->reset_gen;
    t->next = a->outstanding;
    a->outstanding = t;
    a->noutstanding++;
    pthread_mutex_unlock(&a->srb_mutex);
    __atomic_fetch_add(&a->ctr.srbs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);
    port_start_srb(a, t, rr);
    uint64_t deadline = sim_now_ns() + (uint64_t)tmo * 1000000000ull;
    pthread_mutex_lock(&a->srb_mutex);
    while (!rr->port_done && sim_now_ns() < deadline) {
        struct timespec ts;
        port_abstime_in(&ts, 20000000ull);
        pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
    }
    bool done = rr->port_done;
    if (done) free(rr);
    else t->orphan = rr;   /* still the miniport's: freed with the tracker */
    pthread_mutex_unlock(&a->srb_mutex);
    if (!done) sim_log("port: reset SRB (function 0x%02x) not completed in %u s", function, tmo);
    return done;
}

static void escalate_tiers(struct sim_adapter *a, struct sim_request *r, unsigned tiers, unsigned short_tmo,
                           const char *why);

/* A request timed out: StorPort's multi-tier reset [MS-RESETTIER]: reset the logical
 * unit, then the device (target), then the bus, stopping as soon as the timed-out SRB
 * has come back. Called with reset_mutex held. */
static void escalate_reset(struct sim_adapter *a, struct sim_request *r, unsigned tmo, const char *why)
{
    unsigned tiers = a->opts.reset_tiers ? a->opts.reset_tiers : SIM_RESET_LU | SIM_RESET_DEVICE | SIM_RESET_BUS;
    unsigned short_tmo = tmo < 5 ? tmo : 5;
    reset_pause(a, true);
    escalate_tiers(a, r, tiers, short_tmo, why);
    reset_pause(a, false);
}

static void escalate_tiers(struct sim_adapter *a, struct sim_request *r, unsigned tiers, unsigned short_tmo,
                           const char *why)
{
    if (!a->opts.dump_mode && (tiers & SIM_RESET_LU)) {
        sim_log("port: %s: SRB_FUNCTION_RESET_LOGICAL_UNIT", why);
        __atomic_fetch_add(&a->ctr.lu_resets, 1, __ATOMIC_RELAXED);
        internal_reset_srb(a, SRB_FUNCTION_RESET_LOGICAL_UNIT, short_tmo);
        if (__atomic_load_n(&r->port_done, __ATOMIC_ACQUIRE)) { a->reset_gen++; return; }
    }
    if (!a->opts.dump_mode && (tiers & SIM_RESET_DEVICE)) {
        sim_log("port: %s: SRB_FUNCTION_RESET_DEVICE", why);
        __atomic_fetch_add(&a->ctr.device_resets, 1, __ATOMIC_RELAXED);
        internal_reset_srb(a, SRB_FUNCTION_RESET_DEVICE, short_tmo);
        if (__atomic_load_n(&r->port_done, __ATOMIC_ACQUIRE)) { a->reset_gen++; return; }
    }
    if (tiers & SIM_RESET_BUS) sim_port_reset_bus(a, why);
}

int sim_port_execute(struct sim_adapter *a, struct sim_request *r)
{
    unsigned busy_limit = 100000;
    for (;;) {
        pthread_mutex_lock(&a->srb_mutex);
        /* queue depth / StorPortBusy / StorPortPause gate new requests */
        uint64_t gate_deadline = sim_now_ns() + 60ull * 1000000000ull;
        while (!a->stopping && (a->noutstanding >= a->queue_depth || a->busy_count || a->reset_pause ||
                                (a->pause_deadline_ns && sim_now_ns() < a->pause_deadline_ns))) {
            if (a->busy_count && a->noutstanding == 0) a->busy_count = 0;
            struct timespec ts;
            port_abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
            if (sim_now_ns() > gate_deadline) {
                pthread_mutex_unlock(&a->srb_mutex);
                sim_finding("HANG", "no SRB slot became free in 60 s (%u outstanding, depth %u)",
                            a->noutstanding, a->queue_depth);
                return -1;
            }
        }
        if (a->stopping || a->crashed) { pthread_mutex_unlock(&a->srb_mutex); return -1; }
        r->port_done = false;
        struct sim_tracked *t = port_tracked_new(a, r);
        if (!t) { pthread_mutex_unlock(&a->srb_mutex); sim_log("port: out of guest memory for an SRB"); return -1; }
        t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0xFF);
        if (t->srb->QueueTag == SP_UNTAGGED) t->srb->QueueTag = (UCHAR)(a->tag_next++ & 0xFF);
        if (r->function == SRB_FUNCTION_PNP) {
            if (r->pnp_action == StorRemoveDevice || r->pnp_action == StorSurpriseRemoval) a->pnp_removed = true;
            /* SCSI_PNP_REQUEST_BLOCK: the action overlays QueueTag..SenseInfoBufferLength (facts §3) */
            PSCSI_PNP_REQUEST_BLOCK p = (PSCSI_PNP_REQUEST_BLOCK)t->srb;
            p->PnPAction = (STOR_PNP_ACTION)r->pnp_action;
            p->PnPSubFunction = 0;
            p->SrbPnPFlags = r->pnp_flags;
        } else if (r->function == SRB_FUNCTION_WMI) {
            /* SCSI_WMI_REQUEST_BLOCK: WMISubFunction over ScsiStatus, WMIFlags over
             * QueueAction, DataPath over SenseInfoBuffer (NULL: no sense buffer) */
            t->srb->ScsiStatus = (UCHAR)r->pnp_action;
            t->srb->QueueAction = (UCHAR)r->pnp_flags;
        } else if (r->function == SRB_FUNCTION_POWER) {
            PSCSI_POWER_REQUEST_BLOCK p = (PSCSI_POWER_REQUEST_BLOCK)t->srb;
            p->DevicePowerState = (STOR_DEVICE_POWER_STATE)r->pnp_action;
            p->SrbPowerFlags = (UCHAR)r->pnp_flags;
        }
        t->reset_gen = a->reset_gen;
        t->next = a->outstanding;
        a->outstanding = t;
        a->noutstanding++;
        if (a->noutstanding > a->max_outstanding) a->max_outstanding = a->noutstanding;
        pthread_mutex_unlock(&a->srb_mutex);
        __atomic_fetch_add(&a->ctr.srbs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&sim_srb_acct.issued, 1, __ATOMIC_RELAXED);

        uint64_t start_ns = t->start_ns;
        uint64_t my_reset_gen = t->reset_gen;
        port_start_srb(a, t, r);

        /* wait for completion; TimeOutValue -> HwResetBus (StorPort's last tier) */
        unsigned tmo = a->opts.srb_timeout ? a->opts.srb_timeout : (r->timeout ? r->timeout : 10);
        uint64_t deadline = start_ns + (uint64_t)tmo * 1000000000ull;
        unsigned rounds = 0;            /* timeout + reset escalations so far */
        pthread_mutex_lock(&a->srb_mutex);
        while (!r->port_done) {
            if (a->opts.dump_mode) {
                pthread_mutex_unlock(&a->srb_mutex);
                dump_poll(a);
                sim_sleep_us(20);
                pthread_mutex_lock(&a->srb_mutex);
            } else {
                struct timespec ts;
                port_abstime_in(&ts, 20000000ull);
                pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
            }
            if (r->port_done || sim_now_ns() < deadline) continue;
            if (rounds < 2) {
                /* StorPort times the request again after its resets and resets again if
                 * it is still outstanding (event 129 once per round). */
                rounds++;
                if (rounds > 1) my_reset_gen = a->reset_gen;
                r->timed_out = true;
                __atomic_fetch_add(&a->ctr.srb_timeouts, 1, __ATOMIC_RELAXED);
                bool need_reset = a->reset_gen == my_reset_gen;
                pthread_mutex_unlock(&a->srb_mutex);
                pthread_mutex_lock(&a->reset_mutex);
                if (need_reset && a->reset_gen == my_reset_gen) {
                    char why[96];
                    snprintf(why, sizeof(why), "SRB (CDB %02x) timed out after %u s", r->cdb[0], tmo);
                    escalate_reset(a, r, tmo, why);
                }
                pthread_mutex_unlock(&a->reset_mutex);
                pthread_mutex_lock(&a->srb_mutex);
                deadline = sim_now_ns() + (uint64_t)(tmo > 5 ? tmo : 5) * 1000000000ull;
                continue;
            }
            UCHAR tag = t->srb->QueueTag;
            t->orphan = malloc(sizeof(*t->orphan));   /* completion may still come: not into r */
            *t->orphan = *r;
            t->req = t->orphan;
            t->lost_counted = true;
            __atomic_fetch_add(&sim_srb_acct.lost, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&a->srb_mutex);
            sim_finding("SRB", "SRB (CDB %02x, tag %u) still not completed after two rounds of StorPort's resets "
                               "(LU, device, HwResetBus; %u s each)",
                        r->cdb[0], tag, tmo > 5 ? tmo : 5);
            r->srb_status = SRB_STATUS_TIMEOUT;
            r->buffer_held = true;
            return -1;   /* left outstanding: reported again at teardown */
        }
        uint64_t seen = a->completions;
        pthread_mutex_unlock(&a->srb_mutex);

        if (SRB_STATUS(r->srb_status) != SRB_STATUS_BUSY) return 0;
        /* SRB_STATUS_BUSY: StorPort requeues with a fresh SRB extension (facts §6) and
         * retries once the adapter completes something, or after a short pause. */
        __atomic_fetch_add(&a->ctr.srbs_busy, 1, __ATOMIC_RELAXED);
        if (++r->busy_retries > busy_limit) {
            sim_log("port: SRB (CDB %02x) still BUSY after %u retries", r->cdb[0], busy_limit);
            return 0;
        }
        pthread_mutex_lock(&a->srb_mutex);
        if (a->completions == seen && a->noutstanding) {
            struct timespec ts;
            port_abstime_in(&ts, 10000000ull);
            pthread_cond_timedwait(&a->srb_cond, &a->srb_mutex, &ts);
        }
        pthread_mutex_unlock(&a->srb_mutex);
        if (!a->noutstanding) sim_sleep_us(1000);
    }
}

