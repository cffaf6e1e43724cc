/*
 * The port driver half of the simulated StorPort: adapter start (PnP start as Windows 7
 * does it, facts §1-§2, §6), the SRB path per the miniport's SynchronizationModel,
 * the interrupt thread (MSI-X words in guest RAM, or the INTx line), DPC threads, the
 * RequestTimerCall timer, SRB ownership tracking, SRB_STATUS_BUSY requeue, TimeOutValue
 * timeouts with HwResetBus, and teardown checks.
 * This file: the adapter list, the StorPort locks, adapter creation and start
 * (ConfigInfo, HwFindAdapter, HwInitialize), teardown and its checks, address lookup.
 * The rest: port_irq.c (interrupts, DPCs, timer), port_srb.c (SRB tracking and
 * completion checks), port_exec.c (SRB path, timeouts, resets), port_power.c
 * (HwAdapterControl, stop / power cycle, crash, hibernation, rebalance).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "port_int.h"

struct sim_adapter *sim_adapters;
pthread_mutex_t sim_adapters_lock = PTHREAD_MUTEX_INITIALIZER;

uint8_t *port_decoy_base;     /* PROT_NONE: DataBuffer of READ/WRITE SRBs */

/* ------------------------------------------------------------------------------- */
struct sim_adapter *sim_adapter_from_ext(void *ext)
{
    struct sim_adapter *a;
    if (sim_tls.adapter && sim_tls.adapter->devext == ext) return sim_tls.adapter;
    pthread_mutex_lock(&sim_adapters_lock);
    for (a = sim_adapters; a; a = a->next)
        if (a->devext == ext) break;
    pthread_mutex_unlock(&sim_adapters_lock);
    return a;
}

void port_set_ctx(struct sim_adapter *a, int irql) { sim_tls.adapter = a; sim_tls.irql = irql; }

/* The interrupt lock: one for SynchronizeAll, every message lock for PerMessage. */
void sim_acquire_interrupt_lock(struct sim_adapter *a, const char *who)
{
    if (!sim_lock_note_acquire(who, SIM_LOCK_INTERRUPT, 0)) return;
    if (a->use_msi && a->ism == InterruptSynchronizePerMessage)
        for (unsigned i = 0; i < a->pci.nmsg; i++) pthread_mutex_lock(&a->msi_lock[i]);
    else
        pthread_mutex_lock(&a->interrupt_lock);
}

void sim_release_interrupt_lock(struct sim_adapter *a, const char *who)
{
    if (!sim_lock_note_release(who, SIM_LOCK_INTERRUPT, 0)) return;
    if (a->use_msi && a->ism == InterruptSynchronizePerMessage)
        for (unsigned i = a->pci.nmsg; i-- > 0;) pthread_mutex_unlock(&a->msi_lock[i]);
    else
        pthread_mutex_unlock(&a->interrupt_lock);
}

void sim_acquire_startio_lock(struct sim_adapter *a, const char *who)
{
    if (sim_lock_note_acquire(who, SIM_LOCK_STARTIO, 0)) pthread_mutex_lock(&a->startio_lock);
}

void sim_release_startio_lock(struct sim_adapter *a, const char *who)
{
    if (sim_lock_note_release(who, SIM_LOCK_STARTIO, 0)) pthread_mutex_unlock(&a->startio_lock);
}

void port_check_locks_after(const char *cb, unsigned expect)
{
    if (sim_tls.locks != expect || sim_tls.msi_locks) {
        sim_finding("LOCK", "%s returned still holding StorPort locks (mask 0x%x, MSI 0x%llx)", cb,
                    sim_tls.locks & ~expect, (unsigned long long)sim_tls.msi_locks);
    }
}

/* ------------------------------------------------------------------------------- */
/* Adapter start */
static void init_config_info(struct sim_adapter *a)
{
    PORT_CONFIGURATION_INFORMATION *c = a->cfg;
    const HW_INITIALIZATION_DATA *h = &a->drv->hwid;
    memset(c, 0, sizeof(*c));
    c->Length = sizeof(PORT_CONFIGURATION_INFORMATION);      /* Windows 7 size, facts §2 */
    c->SystemIoBusNumber = 0;
    c->AdapterInterfaceType = PCIBus;
    if (a->use_msi) {
        c->BusInterruptLevel = 0;
        c->BusInterruptVector = 0x60;
        c->InterruptMode = Latched;
    } else {
        c->BusInterruptLevel = 11;
        c->BusInterruptVector = 11;
        c->InterruptMode = LevelSensitive;
    }
    c->MaximumTransferLength = SP_UNINITIALIZED_VALUE;
    c->NumberOfPhysicalBreaks = 0x11;          /* documented default, facts §2 */
    c->DmaChannel = SP_UNINITIALIZED_VALUE;
    c->DmaPort = SP_UNINITIALIZED_VALUE;
    c->DmaWidth = Width32Bits;
    c->DmaSpeed = Compatible;
    c->AlignmentMask = 0;
    c->NumberOfAccessRanges = h->NumberOfAccessRanges;
    c->AccessRanges = (ACCESS_RANGE (*)[])a->ranges;
    c->NumberOfBuses = 0;
    for (int i = 0; i < 8; i++) c->InitiatorBusId[i] = (CCHAR)SP_UNTAGGED;
    c->ScatterGather = TRUE;
    c->Master = TRUE;
    c->Dma32BitAddresses = TRUE;
    c->MapBuffers = h->MapBuffers;
    c->NeedPhysicalAddresses = TRUE;
    c->TaggedQueuing = TRUE;
    c->AutoRequestSense = TRUE;
    c->MultipleRequestPerLu = TRUE;
    c->BufferAccessScsiPortControlled = TRUE;
    c->MaximumNumberOfTargets = SCSI_MAXIMUM_TARGETS_PER_BUS;
    c->SlotNumber = 4;                          /* device 4, function 0 */
    c->DeviceExtensionSize = h->DeviceExtensionSize;
    c->SpecificLuExtensionSize = h->SpecificLuExtensionSize;
    c->SrbExtensionSize = h->SrbExtensionSize;
    c->Dma64BitAddresses = SCSI_DMA64_SYSTEM_SUPPORTED;
    c->MaximumNumberOfLogicalUnits = SCSI_MAXIMUM_LOGICAL_UNITS;
    c->WmiDataProvider = TRUE;
    c->SynchronizationModel = StorSynchronizeHalfDuplex;   /* default undocumented, facts §10.2 */
    c->InterruptSynchronizationMode = InterruptSupportNone;
    c->MaxNumberOfIO = 1000;
}

static void fill_access_ranges(struct sim_adapter *a)
{
    unsigned n = a->drv->hwid.NumberOfAccessRanges, k = 0;
    a->nranges = n;
    a->ranges = calloc(n ? n : 1, sizeof(ACCESS_RANGE));
    for (unsigned i = 0; i < 6 && k < n; i++) {
        if (!a->pci.bar[i].present) continue;
        a->ranges[k].RangeStart.QuadPart = (LONGLONG)a->pci.bar[i].gpa;
        a->ranges[k].RangeLength = (ULONG)a->pci.bar[i].len;
        a->ranges[k].RangeInMemory = TRUE;
        k++;
    }
}

struct sim_adapter *sim_adapter_create(struct sim_driver *drv, sim_dev *dev,
                                       const struct sim_adapter_opts *o, char *err, size_t errlen)
{
    if (!drv->initialized) { snprintf(err, errlen, "driver did not call StorPortInitialize"); return NULL; }
    if (!port_decoy_base) {
        void *p = mmap(NULL, DECOY_SLOTS * DECOY_SLOT_BYTES, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) { snprintf(err, errlen, "mmap decoy: %s", strerror(errno)); return NULL; }
        port_decoy_base = p;
    }
    struct sim_adapter *a = calloc(1, sizeof(*a));
    a->drv = drv;
    a->dev = dev;
    a->opts = *o;
    pthread_mutex_init(&a->startio_lock, NULL);
    pthread_mutex_init(&a->interrupt_lock, NULL);
    for (int i = 0; i < 64; i++) pthread_mutex_init(&a->msi_lock[i], NULL);
    pthread_mutex_init(&a->dpc_mutex, NULL);
    pthread_cond_init(&a->dpc_cond, NULL);
    pthread_mutex_init(&a->timer_mutex, NULL);
    pthread_cond_init(&a->timer_cond, NULL);
    pthread_mutex_init(&a->srb_mutex, NULL);
    pthread_cond_init(&a->srb_cond, NULL);
    pthread_mutex_init(&a->pool_mutex, NULL);
    pthread_mutex_init(&a->reset_mutex, NULL);
    a->quarantine = calloc(QUARANTINE, sizeof(*a->quarantine));
    a->queue_depth = o->default_qdepth ? o->default_qdepth : 250;
    a->dev_removed_mmio_at_notice = -1;
    if (o->dump_mode) a->queue_depth = 1;   /* the dump port sends one request at a time (facts §7) */
    if (sim_mem_init(&a->mem, dev, dev->ram_base_free, dev->ram_size, o->seed ^ 0x5EED)) {
        snprintf(err, errlen, "guest RAM too small");
        free(a);
        return NULL;
    }
    pthread_mutex_lock(&sim_adapters_lock);
    /* A second instance on the same device (the dump stack after a crash, or a fresh
     * instance after hibernation) must not hand out RAM an earlier one still uses: the
     * device may still DMA into the crashed instance's ring until it is reset. */
    for (struct sim_adapter *o2 = sim_adapters; o2; o2 = o2->next)
        if (o2->dev == dev && o2->mem.npages == a->mem.npages) {
            pthread_mutex_lock(&o2->mem.lock);
            for (uint64_t i = 0; i < a->mem.npages; i++)
                if (o2->mem.used[i] && !a->mem.used[i]) { a->mem.used[i] = 1; a->mem.free_pages--; }
            pthread_mutex_unlock(&o2->mem.lock);
        }
    a->next = sim_adapters;
    sim_adapters = a;
    pthread_mutex_unlock(&sim_adapters_lock);
    return a;
}

int port_start_threads(struct sim_adapter *a)
{
    a->stopping = false;
    if (!a->opts.dump_mode) {
        if (pthread_create(&a->irq_thread, NULL, port_irq_thread, a)) return -1;
        a->ndpc_threads = 2;
        for (unsigned i = 0; i < a->ndpc_threads; i++)
            if (pthread_create(&a->dpc_threads[i], NULL, port_dpc_thread, a)) return -1;
    }
    /* dump mode has no timer DPC either: RequestTimerCall runs from the poll loop */
    if (!a->opts.dump_mode && pthread_create(&a->timer_thread, NULL, port_timer_thread, a)) return -1;
    a->threads_started = true;
    return 0;
}

void port_stop_threads(struct sim_adapter *a)
{
    if (!a->threads_started) return;
    a->stopping = true;
    pthread_mutex_lock(&a->dpc_mutex);
    pthread_cond_broadcast(&a->dpc_cond);
    pthread_mutex_unlock(&a->dpc_mutex);
    pthread_mutex_lock(&a->timer_mutex);
    pthread_cond_broadcast(&a->timer_cond);
    pthread_mutex_unlock(&a->timer_mutex);
    pthread_mutex_lock(&a->srb_mutex);
    pthread_cond_broadcast(&a->srb_cond);
    pthread_mutex_unlock(&a->srb_mutex);
    if (a->ctl_thread_live) { pthread_join(a->ctl_thread, NULL); a->ctl_thread_live = false; }
    if (!a->opts.dump_mode) {
        pthread_join(a->irq_thread, NULL);
        for (unsigned i = 0; i < a->ndpc_threads; i++) pthread_join(a->dpc_threads[i], NULL);
        pthread_join(a->timer_thread, NULL);
    }
    a->threads_started = false;
}

int sim_adapter_start(struct sim_adapter *a, char *err, size_t errlen)
{
    const HW_INITIALIZATION_DATA *h = &a->drv->hwid;
    /* The crash-dump / hibernation stack after a bug check: nobody reconfigures PCI; the
     * function keeps the BARs and MSI-X state the crashed instance left ([MS-BOOT]). */
    struct sim_adapter *frozen = NULL;
    if (a->opts.dump_mode) {
        pthread_mutex_lock(&sim_adapters_lock);
        /* the newest crashed normal instance (the list is newest first): an older one
         * may have had other BARs (a PnP rebalance before a reboot; found by the soak) */
        for (struct sim_adapter *o2 = sim_adapters; o2 && !frozen; o2 = o2->next)
            if (o2 != a && o2->dev == a->dev && o2->crashed && !o2->opts.dump_mode) frozen = o2;
        pthread_mutex_unlock(&sim_adapters_lock);
    }
    if (frozen) {
        a->pci = frozen->pci;
        sim_log("port: dump stack: PCI configuration left as the crashed instance had it (MSI-X %s)",
                a->pci.msix_enabled ? "still enabled" : "disabled");
    } else if (a->rebalanced) {
        /* PnP rebalance: the PCI bus driver hands out other memory ranges (16 MiB up) */
        uint64_t base = a->dev->mmio_window_base;
        a->dev->mmio_window_base = base + 0x1000000ull;
        int rc = sim_pci_configure(a->dev, &a->pci, err, errlen);
        a->dev->mmio_window_base = base;
        if (rc) return -1;
    } else if (sim_pci_configure(a->dev, &a->pci, err, errlen)) {
        return -1;
    }

    /* Interrupt resources: message interrupts when the INF asks for them (--msi) and
     * the function has MSI-X; else the INTx line. */
    uint64_t msi_page = a->rebalanced && a->msi_page ? a->msi_page : sim_mem_alloc_contig(&a->mem, 1);
    a->msi_page = msi_page;
    memset(sim_gpa(a->dev, msi_page), 0, PG);
    a->use_msi = false;
    if (!a->opts.dump_mode && a->opts.msi && a->pci.msix_cap) {
        if (sim_pci_enable_msix(a->dev, &a->pci, (unsigned)a->opts.msi_messages, msi_page) == 0)
            a->use_msi = true;
    } else if (a->pci.msix_cap && !frozen) {
        sim_pci_disable_msix(a->dev, &a->pci);
    }

    if (!a->rebalanced) {   /* a rebalance runs HwFindAdapter again on the same extension */
        a->devext_size = h->DeviceExtensionSize;
        a->devext = calloc(1, a->devext_size ? a->devext_size : 1);   /* StorPort zeroes it */
        if (h->SpecificLuExtensionSize) a->luext = calloc(1, h->SpecificLuExtensionSize);
    } else {
        free(a->cfg); free(a->ranges); free(a->argument_string);
        a->passive_routine = NULL;
    }
    a->cfg = calloc(1, sizeof(PORT_CONFIGURATION_INFORMATION));
    fill_access_ranges(a);
    init_config_info(a);
    const PORT_CONFIGURATION_INFORMATION *sv = a->opts.dump_mode ? sim_dump_saved_config() : NULL;
    if (sv) {   /* --dump-config saved: the normal instance's ConfigInfo (sim/dumpport.c) */
        PORT_CONFIGURATION_INFORMATION fresh = *a->cfg;
        *a->cfg = *sv;
        a->cfg->Length = fresh.Length;
        a->cfg->AccessRanges = fresh.AccessRanges;
        a->cfg->NumberOfAccessRanges = fresh.NumberOfAccessRanges;
        sim_log("port: dump stack: the dump instance gets the normal instance's saved ConfigInfo "
                "(Dma64BitAddresses 0x%02x, HwMSInterruptRoutine %s)", a->cfg->Dma64BitAddresses,
                a->cfg->HwMSInterruptRoutine ? "set" : "NULL");
    }
    PORT_CONFIGURATION_INFORMATION before = *a->cfg;

    a->argument_string = a->opts.dump_mode ? strdup("dump=1") : NULL;
    BOOLEAN again = FALSE;
    port_set_ctx(a, a->opts.dump_mode ? SIM_IRQL_HIGH : SIM_IRQL_PASSIVE);
    ULONG fr = sim_call_find_adapter((void *)h->HwFindAdapter, a->devext, NULL, NULL,
                                     a->argument_string, a->cfg, &again);
    port_check_locks_after("HwFindAdapter", 0);
    port_set_ctx(a, SIM_IRQL_PASSIVE);
    if (fr != SP_RETURN_FOUND) {
        snprintf(err, errlen, "HwFindAdapter returned %u (%s): Windows would show Code 10 and not start the disk",
                 fr, fr == SP_RETURN_NOT_FOUND ? "NOT_FOUND" : fr == SP_RETURN_ERROR ? "ERROR" :
                 fr == SP_RETURN_BAD_CONFIG ? "BAD_CONFIG" : "invalid");
        return -1;
    }
    PORT_CONFIGURATION_INFORMATION *c = a->cfg;
#define MUST_NOT_TOUCH(f) if (memcmp(&c->f, &before.f, sizeof(c->f))) \
        sim_finding("CONFIG", "HwFindAdapter modified ConfigInfo->" #f " (must not touch, facts §2)")
    MUST_NOT_TOUCH(SystemIoBusNumber); MUST_NOT_TOUCH(AdapterInterfaceType);
    MUST_NOT_TOUCH(BusInterruptLevel); MUST_NOT_TOUCH(BusInterruptVector); MUST_NOT_TOUCH(InterruptMode);
    MUST_NOT_TOUCH(DmaChannel); MUST_NOT_TOUCH(DmaPort); MUST_NOT_TOUCH(DmaWidth); MUST_NOT_TOUCH(DmaSpeed);
    MUST_NOT_TOUCH(AccessRanges); MUST_NOT_TOUCH(SlotNumber); MUST_NOT_TOUCH(BusInterruptLevel2);
    MUST_NOT_TOUCH(BusInterruptVector2); MUST_NOT_TOUCH(InterruptMode2); MUST_NOT_TOUCH(DmaChannel2);
    MUST_NOT_TOUCH(DmaPort2); MUST_NOT_TOUCH(Length);
#undef MUST_NOT_TOUCH
    if (!c->NeedPhysicalAddresses || !c->TaggedQueuing || !c->AutoRequestSense || !c->MultipleRequestPerLu)
        sim_finding("CONFIG", "HwFindAdapter cleared NeedPhysicalAddresses/TaggedQueuing/AutoRequestSense/MultipleRequestPerLu (must stay TRUE)");
    if (c->NumberOfBuses == 0) {
        snprintf(err, errlen, "ConfigInfo->NumberOfBuses is 0 after HwFindAdapter: StorPort would enumerate nothing, Windows would see no disk");
        return -1;
    }
    if (c->MaximumTransferLength == 0 || c->NumberOfPhysicalBreaks == 0) {
        snprintf(err, errlen, "MaximumTransferLength/NumberOfPhysicalBreaks is 0: no request could ever be sent");
        return -1;
    }
    sim_mem_set_dma64(&a->mem, (c->Dma64BitAddresses & (SCSI_DMA64_MINIPORT_SUPPORTED |
                                                         SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED)) != 0);
    a->sync_model = c->SynchronizationModel;
    a->ism = c->InterruptSynchronizationMode;
    a->msi_routine = (void *)c->HwMSInterruptRoutine;
    a->srbext_size = c->SrbExtensionSize;
    if (a->use_msi && !a->msi_routine) {
        sim_log("port: message interrupts granted but HwFindAdapter set no HwMSInterruptRoutine: using INTx");
        sim_pci_disable_msix(a->dev, &a->pci);
        a->use_msi = false;
    }
    if (a->use_msi && a->ism == InterruptSupportNone) a->ism = InterruptSynchronizeAll;
    if (a->unc_done && (a->unc_srbext != c->SrbExtensionSize || a->unc_breaks != c->NumberOfPhysicalBreaks ||
                        a->unc_maxxfer != c->MaximumTransferLength))
        sim_finding("CONFIG", "SrbExtensionSize/NumberOfPhysicalBreaks/MaximumTransferLength changed after StorPortGetUncachedExtension (set them first, [MS-UNC])");

    if (a->opts.dump_mode) sim_dump_budget_check(a);
    if (port_start_threads(a)) { snprintf(err, errlen, "cannot start threads"); return -1; }

    /* HwInitialize: DIRQL, interrupt lock held (facts §6). */
    port_set_ctx(a, a->opts.dump_mode ? SIM_IRQL_HIGH : SIM_IRQL_DIRQL);
    if (!a->opts.dump_mode) sim_acquire_interrupt_lock(a, "HwInitialize dispatch");
    BOOLEAN ok = sim_call_bool_ext("HwInitialize", (void *)h->HwInitialize, a->devext);
    if (!a->opts.dump_mode) {
        port_check_locks_after("HwInitialize", SIM_LOCK_INTERRUPT);
        sim_release_interrupt_lock(a, "HwInitialize dispatch");
    }
    port_set_ctx(a, SIM_IRQL_PASSIVE);
    if (!ok) { snprintf(err, errlen, "HwInitialize returned FALSE"); return -1; }

    if (a->passive_routine) {
        ok = sim_call_bool_ext("HwPassiveInitializeRoutine", a->passive_routine, a->devext);
        port_check_locks_after("HwPassiveInitializeRoutine", 0);
        if (!ok) { snprintf(err, errlen, "HwPassiveInitializeRoutine returned FALSE"); return -1; }
    }

    if (h->HwAdapterControl && !a->opts.dump_mode) {
        /* SCSI_SUPPORTED_CONTROL_TYPE_LIST: MaxControlType BOOLEANs, then a canary: the
         * miniport fills entries 0..MaxControlType-1 only ([MS-CTLTYPE]); Windows 7's list
         * is ScsiAdapterControlMax (5) long and whatever follows it is StorPort's. */
        struct { ULONG Max; BOOLEAN List[ScsiAdapterControlMax]; uint8_t canary[27]; } q;
        memset(&q, 0, sizeof(q));
        memset(q.canary, 0xA5, sizeof(q.canary));
        q.Max = ScsiAdapterControlMax;
        sim_call_adapter_control((void *)h->HwAdapterControl, a->devext, ScsiQuerySupportedControlTypes, &q);
        port_check_locks_after("HwAdapterControl", 0);
        for (size_t i = 0; i < sizeof(q.canary); i++)
            if (q.canary[i] != 0xA5) {
                sim_finding("ADAPTERCONTROL", "ScsiQuerySupportedControlTypes wrote beyond the %u-entry "
                            "SupportedTypeList (byte %zu after it): MaxControlType bounds the list ([MS-CTLTYPE])",
                            (unsigned)ScsiAdapterControlMax, i);
                break;
            }
        if (!q.List[ScsiStopAdapter])
            sim_log("port: HwAdapterControl does not support ScsiStopAdapter (mandatory per [MS-ADAPTERCTL])");
        a->supported_ctl = 0;
        for (int i = 0; i < ScsiAdapterControlMax; i++) if (q.List[i]) a->supported_ctl |= 1u << i;
    }
    a->started = true;
    sim_dump_save_config(a);
    return 0;
}
void sim_adapter_destroy(struct sim_adapter *a)
{
    if (!a) return;
    sim_s4_check(a);   /* device DMA into rings a resumed instance left behind */
    a->in_teardown = true;
    /* Never-completed SRBs are the miniport's bug (every SRB completed exactly once),
     * except on a crashed instance, whose requests were abandoned by the "bug check". */
    pthread_mutex_lock(&a->srb_mutex);
    for (struct sim_tracked *t = a->outstanding; t; t = t->next) {
        if (a->crashed) {   /* abandoned by the "bug check", not lost by the miniport */
            if (!t->lost_counted) __atomic_fetch_add(&sim_srb_acct.abandoned, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (!t->lost_counted) __atomic_fetch_add(&sim_srb_acct.lost, 1, __ATOMIC_RELAXED);
        sim_finding("SRB", "SRB %p (CDB %02x, tag %u) never completed (outstanding %.1f s at teardown)",
                    (void *)t->srb, t->req ? t->req->cdb[0] : 0, t->srb->QueueTag,
                    (double)(sim_now_ns() - t->start_ns) / 1e9);
    }
    pthread_mutex_unlock(&a->srb_mutex);
    if (a->crashed) {   /* nothing of it is released on Windows either; forget it quietly */
        pthread_mutex_lock(&a->srb_mutex);
        for (struct sim_tracked *t = a->outstanding; t;) {
            struct sim_tracked *n = t->next;
            if (t->ext) sim_mem_free(&a->mem, t->ext_gpa, t->ext_pages);
            if (t->owns_buf && t->orphan) sim_buf_free(&a->mem, t->orphan->buf);
            free(t->srb); free(t->sg); free(t->sg_copy); free(t->buf_canary_saved); port_sense_free(a, t); free(t->orphan); free(t);
            t = n;
        }
        a->outstanding = NULL;
        pthread_mutex_unlock(&a->srb_mutex);
        pthread_mutex_lock(&a->pool_mutex);
        for (struct sim_pool_block *b = a->pool; b;) { struct sim_pool_block *n = b->next; free(b->p); free(b); b = n; }
        a->pool = NULL;
        pthread_mutex_unlock(&a->pool_mutex);
        sim_contig_unload(a, true);
    }
    if (a->started && !a->crashed && !a->opts.dump_mode && a->drv->hwid.HwAdapterControl &&
        (a->supported_ctl & (1u << ScsiStopAdapter)) && !a->outstanding)
        port_adapter_control_locked(a, ScsiStopAdapter);   /* what removal does: stop, no DMA after */
    port_stop_threads(a);

    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_pool_block *b = a->pool; b;) {
        struct sim_pool_block *n = b->next;
        char tag[5];
        memcpy(tag, &b->tag, 4); tag[4] = 0;
        for (int i = 0; i < 4; i++) if (tag[i] < 32 || tag[i] > 126) tag[i] = '.';
        sim_finding("POOL", "pool block of %zu bytes (tag '%s') not freed at unload", b->len, tag);
        free(b->p);
        free(b);
        b = n;
    }
    a->pool = NULL;
    pthread_mutex_unlock(&a->pool_mutex);
    sim_contig_unload(a, false);

    if (a->unc_va) {
        uint8_t *slack = a->unc_va + a->unc_len;
        for (size_t i = 0; i < a->unc_canary_len; i++)
            if (slack[i] != 0xC5) {
                sim_finding("UNCACHED", "uncached extension overrun: byte %u past its end (%u bytes) was written",
                            (unsigned)i, a->unc_len);
                break;
            }
        uint8_t *guard = a->unc_va + a->unc_len + a->unc_canary_len;
        if (((uintptr_t)guard & (PG - 1)) == 0) mprotect(guard, PG, PROT_READ | PROT_WRITE);
    }
    pthread_mutex_lock(&a->srb_mutex);
    for (unsigned i = 0; i < QUARANTINE; i++)
        if (a->quarantine[i]) { port_tracked_free(a, a->quarantine[i]); a->quarantine[i] = NULL; }
    pthread_mutex_unlock(&a->srb_mutex);
    for (unsigned i = 0; i < a->nwin; i++)
        if (a->win[i].active) {
            uintptr_t pgoff = (uintptr_t)a->win[i].va & (PG - 1);
            a->win[i].active = false;
            munmap(a->win[i].va - pgoff, (size_t)((pgoff + a->win[i].len + PG - 1) & ~(PG - 1)));
        }

    pthread_mutex_lock(&sim_adapters_lock);
    for (struct sim_adapter **pp = &sim_adapters; *pp; pp = &(*pp)->next)
        if (*pp == a) { *pp = a->next; break; }
    pthread_mutex_unlock(&sim_adapters_lock);
    for (struct sim_dpc *d = a->dpcs; d;) { struct sim_dpc *n = d->next_all; free(d); d = n; }
    free(a->quarantine);
    free(a->devext);
    free(a->luext);
    free(a->cfg);
    free(a->ranges);
    free(a->argument_string);
    sim_mem_destroy(&a->mem);
    free(a);
}

bool sim_addr_is_databuffer_decoy(const void *addr)
{
    const uint8_t *p = addr;
    return port_decoy_base && p >= port_decoy_base && p < port_decoy_base + DECOY_SLOTS * DECOY_SLOT_BYTES;
}

void sim_describe_address(const void *addr, char *buf, size_t len)
{
    const uint8_t *p = addr;
    if (port_decoy_base && p >= port_decoy_base && p < port_decoy_base + DECOY_SLOTS * DECOY_SLOT_BYTES) {
        snprintf(buf, len, "%p is the DataBuffer of a READ/WRITE SRB: not mapped on Windows 7, never dereference it (facts §10.13); use the scatter/gather list", addr);
        return;
    }
    pthread_mutex_lock(&sim_adapters_lock);
    for (struct sim_adapter *a = sim_adapters; a; a = a->next) {
        for (unsigned i = 0; i < a->nwin; i++)
            if (a->win[i].active && p >= a->win[i].va && p < a->win[i].va + a->win[i].len) {
                snprintf(buf, len, "%p is inside the mapped BAR%u window (offset 0x%llx)", addr, a->win[i].bar,
                         (unsigned long long)(p - a->win[i].va));
                pthread_mutex_unlock(&sim_adapters_lock);
                return;
            }
        if (a->unc_va && p >= a->unc_va + a->unc_len && p < a->unc_va + a->unc_len + a->unc_canary_len + PG) {
            snprintf(buf, len, "%p is past the end of the uncached extension (%u bytes): overrun", addr, a->unc_len);
            pthread_mutex_unlock(&sim_adapters_lock);
            return;
        }
    }
    pthread_mutex_unlock(&sim_adapters_lock);
    snprintf(buf, len, "%p: not a simulator-managed address", addr);
}

