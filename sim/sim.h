/*
 * Internal interface of the StorPort simulator core (sim/): the adapter an instance of
 * the miniport drives, the thread context (IRQL, held locks, current callback), the
 * verifier, guest-memory allocation, the calls into the driver (sim_call_*), the port's
 * SRB path and the disk-class layer above it. Backends (simdev.h) are below all this.
 *
 * Windows behaviour emulated here: shared/reference/windows7-storport-facts.md
 * ("facts §N"). Overview: docs/simulator.md.
 */
#ifndef AEROVBLK_SIM_H
#define AEROVBLK_SIM_H
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ntdef.h>
#include <storport.h>
#include "simdev.h"

/* ---- IRQL model (numbers as on x64 Windows) ------------------------------------ */
#define SIM_IRQL_PASSIVE  0
#define SIM_IRQL_DISPATCH 2
#define SIM_IRQL_DIRQL    8   /* the adapter's device IRQL */
#define SIM_IRQL_HIGH     15

/* Lock bits in sim_tls.locks. */
#define SIM_LOCK_DPC       0x1u
#define SIM_LOCK_STARTIO   0x2u
#define SIM_LOCK_INTERRUPT 0x4u

struct sim_adapter;

/* Per-thread context: what Windows keeps per CPU (IRQL, held spin locks) plus which
 * driver callback this thread is running, so every StorPort call can be checked
 * against facts §6. */
struct sim_tls {
    int irql;
    unsigned locks;            /* SIM_LOCK_* held by this thread */
    uint64_t msi_locks;        /* MSI message locks held (bit = message id) */
    const char *callback;      /* driver callback being run, NULL when not in the driver */
    struct sim_adapter *adapter;
    int ctl_type;              /* HwAdapterControl control type being run, -1 otherwise */
    unsigned msi_message;      /* message id inside HwMSInterruptRoutine */
    bool isr_read_nonzero;     /* the driver read a non-zero ISR byte (a device interrupt was pending) */
    bool ctl_overlap;          /* an ISR / DPC run that began during a lock-free Stop/Restart: stretched */
    /* lock-order violations reported and not performed (a re-acquisition stops the run: DEADLOCK) */
    uint8_t reentry[3], msi_reentry[64];
};
extern __thread struct sim_tls sim_tls;

/* --dpc-delay-us / --isr-delay-us (sim/storport_notify.c): at random points inside the driver's
 * DPC / interrupt routine (its register accesses and StorPort lock calls) sleep up to
 * that many microseconds, to widen races. 0 = off. */
extern unsigned sim_stretch_dpc_us, sim_stretch_isr_us;
void sim_stretch(void);
/* --foreign-intx HZ (sim/port_irq.c): with INTx, HwInterrupt is also called HZ times a second
 * for interrupts of another device sharing the line, from HwFindAdapter on (before
 * HwInitialize returns, while stopped, in D3). Claiming one is a finding. 0 = off. */
extern unsigned sim_foreign_intx_hz;
/* --adapter-control-locks interrupt|none (sim/port_power.c, issue 11 item 2): ScsiStopAdapter /
 * ScsiRestartAdapter at DIRQL holding the interrupt lock ([MS-ADAPTERCTL]), or at
 * DISPATCH_LEVEL holding no lock ([MS-LOCK]) while interrupts and DPCs keep running (the
 * simulator delivers them during the call). Default: none (docs/simulator.md). */
enum { SIM_ACL_NONE = 0, SIM_ACL_INTERRUPT = 1 };
extern int sim_adapter_control_locks;
/* --dpc-reentrant (sim/port_irq.c, issue 11 item 3): the same STOR_DPC may run on both DPC
 * threads at once (ReactOS' KeInitializeDpc without a wrapper lock); the simulator also
 * re-queues a running DPC so that it really does. */
extern bool sim_dpc_reentrant;
/* A re-acquired spin lock hangs Windows: the verifier reports DEADLOCK and calls this
 * (sim/main_session.c main_on_deadlock: tear the device down, print the result, exit 1). NULL: exit(1). */
extern void (*sim_deadlock_hook)(void);
/* Longest time the device model held one driver register access made at DIRQL or
 * under the interrupt lock (ns; normal instances only; sim_dev_ops.held_ns). Over
 * 100 ms is a STALL finding (sim/storport_regs.c, issue 11 item 7). */
extern uint64_t sim_max_locked_mmio_ns;
/* --fragmented-memory (sim/fragmem.c): no physically contiguous run above
 * SIM_FRAG_MAX_BYTES; sim_contig_possible logs and returns false for a larger one. */
#define SIM_FRAG_MAX_BYTES (128u * 1024u)
extern bool sim_fragmented_memory;
extern uint64_t sim_frag_max_bytes;   /* --fragmented-memory=N; default SIM_FRAG_MAX_BYTES */
bool sim_contig_possible(uint64_t bytes, const char *what);

/* ---- verifier (sim/verifier.c) ---------------------------------------------------- */
/* Record a finding: printed at once ("VERIFIER: kind: message [in X at IRQL n]"),
 * counted, kept for --json; any finding makes the exit status non-zero. */
void sim_finding(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
unsigned sim_findings_count(void);
/* Findings as a JSON array (caller frees). */
char *sim_findings_json(void);
/* Require irql <= max for a StorPort API (facts §6). */
void sim_check_irql(const char *api, int max_irql);
/* Lock bookkeeping + order checks (re-acquire, Interrupt before StartIo/DPC, ...). */
/* acquire: a lock this thread already holds is a DEADLOCK finding and ends the run
 * (sim_deadlock_hook, exit 1: Windows would spin for ever); false on an order violation
 * (finding; the caller must not take the lock); release: false when it pairs with such
 * a skipped acquisition (the caller must not unlock). */
bool sim_lock_note_acquire(const char *what, unsigned lockbit, uint64_t msibit);
bool sim_lock_note_release(const char *what, unsigned lockbit, uint64_t msibit);
const char *sim_irql_name(int irql);
/* Print a line to stderr unless quiet; also keep it for --json "log". */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sim_log_json(void);
extern int sim_verbose;   /* 0 quiet, 1 normal, 2 debug (StorPortDebugPrint shown) */
/* Describe an address for a crash message (BAR window, DataBuffer decoy, ...). */
void sim_describe_address(const void *addr, char *buf, size_t len);
/* Async-signal-safe: is addr inside the DataBuffer stand-ins of READ/WRITE SRBs? */
bool sim_addr_is_databuffer_decoy(const void *addr);

/* ---- guest RAM allocator (sim/mem.c) ---------------------------------------------- */
struct sim_mem {
    pthread_mutex_t lock;
    sim_dev *dev;
    uint64_t base, end;       /* managed [base, end), page aligned */
    uint64_t npages;
    uint8_t *used;            /* one byte per page */
    uint64_t free_pages;
    uint64_t rng;
    /* DMA policy (sim_mem_set_dma64): allocations stay below page index limit_pages
     * (4 GiB for a 32-bit-only miniport); contiguous runs come from the top of RAM when
     * the miniport is 64-bit capable and RAM reaches above 4 GiB. */
    uint64_t limit_pages;
    bool top_down;
};
int sim_mem_init(struct sim_mem *m, sim_dev *dev, uint64_t base, uint64_t end, uint64_t seed);
void sim_mem_destroy(struct sim_mem *m);
/* Physically contiguous run of npages; returns gpa or 0. */
uint64_t sim_mem_alloc_contig(struct sim_mem *m, uint64_t npages);
/* npages pages at random places (deliberately not contiguous); 0 ok, -1 none left. */
int sim_mem_alloc_scattered(struct sim_mem *m, uint64_t npages, uint64_t *gpas);
void sim_mem_free(struct sim_mem *m, uint64_t gpa, uint64_t npages);
/* As Windows does per ConfigInfo->Dma64BitAddresses: dma64 (the miniport set
 * SCSI_DMA64_MINIPORT_[FULL64BIT_]SUPPORTED) lets everything be anywhere and puts
 * contiguous runs (uncached extension, SRB extensions) at the top of RAM; otherwise
 * every allocation stays below 4 GiB. */
void sim_mem_set_dma64(struct sim_mem *m, bool dma64);
/* The allocator's seeded random stream (buffer placement). */
uint64_t sim_mem_rand(struct sim_mem *m);
static inline void *sim_gpa(sim_dev *d, uint64_t gpa) { return d->ram + gpa; }

/* ---- calls into the driver (sim/sim_call.c) ----------------------------------------
 * EVERY call from the simulator into driver code goes through these, so a loaded .sys
 * can be run on its own kernel-sized stack (sim/pe/ installs sim_call_hook). Each
 * wrapper sets the thread's callback name and IRQL for the verifier and restores them. */
typedef uintptr_t (*sim_call_hook_fn)(void *fn, unsigned nargs, const uintptr_t *args);
extern sim_call_hook_fn sim_call_hook;   /* NULL: direct NTAPI call */

NTSTATUS sim_call_driver_entry(void *fn, void *a1, void *a2);
ULONG sim_call_find_adapter(void *fn, void *ext, void *ctx, void *bus, char *arg,
                            PORT_CONFIGURATION_INFORMATION *cfg, BOOLEAN *again);
BOOLEAN sim_call_bool_ext(const char *name, void *fn, void *ext);            /* HwInitialize, HwInterrupt, passive */
BOOLEAN sim_call_bool_ext_srb(const char *name, void *fn, void *ext, void *srb); /* HwBuildIo, HwStartIo */
BOOLEAN sim_call_reset_bus(void *fn, void *ext, ULONG path);
SCSI_ADAPTER_CONTROL_STATUS sim_call_adapter_control(void *fn, void *ext, int type, void *params);
BOOLEAN sim_call_msi(void *fn, void *ext, ULONG msg);
void sim_call_dpc(void *fn, void *dpc, void *ext, void *a1, void *a2);
void sim_call_timer(void *fn, void *ext);
BOOLEAN sim_call_sync(void *fn, void *ext, void *ctx);

/* ---- the driver (one DriverEntry = one driver image) ----------------------------- */
struct sim_driver {
    void *driver_entry;             /* NTAPI NTSTATUS (PVOID, PVOID) */
    HW_INITIALIZATION_DATA hwid;    /* copy, Windows 7 size */
    bool initialized;
    char name[64];
};
/* Calls DriverEntry (normal: fake DRIVER_OBJECT + registry path; dump: NULL, NULL). */
int sim_driver_load(struct sim_driver *drv, bool dump_mode, char *err, size_t errlen);

/* ---- PCI (sim/pci.c): firmware + bus driver -------------------------------------- */
struct sim_bar {
    uint64_t gpa, len;
    bool present, mem, is64;
};
struct sim_pci {
    uint8_t cfg[256];              /* snapshot after configuration */
    struct sim_bar bar[6];
    unsigned msix_cap;             /* 0 = none */
    unsigned msix_table_size;
    unsigned msix_table_bar; uint32_t msix_table_off;
    bool msix_enabled;
    unsigned nmsg;                 /* messages granted */
    uint64_t msi_target_gpa;       /* messages write data at target + 64*i */
    /* virtio regions (for counting MMIO per kind), from the vendor capabilities */
    struct { bool present; unsigned bar; uint32_t off, len; } vreg[6]; /* index = cfg_type */
};
#define SIM_MSI_STRIDE 64
#define SIM_MSI_DATA(i) (0x4D500000u | (unsigned)(i))
int sim_pci_configure(sim_dev *dev, struct sim_pci *p, char *err, size_t errlen);
/* Program and enable MSI-X with nmsg entries pointing at target_gpa. */
int sim_pci_enable_msix(sim_dev *dev, struct sim_pci *p, unsigned nmsg, uint64_t target_gpa);
void sim_pci_disable_msix(sim_dev *dev, struct sim_pci *p);
/* Kind of a BAR offset: virtio cfg_type 1..5 (common, notify, isr, device, pci) or 0. */
int sim_pci_region_kind(const struct sim_pci *p, unsigned bar, uint64_t off);

/* ---- counters -------------------------------------------------------------------- */
enum { SIM_MMIO_OTHER, SIM_MMIO_COMMON, SIM_MMIO_NOTIFY, SIM_MMIO_ISR, SIM_MMIO_DEVICE,
       SIM_MMIO_PCICFG, SIM_MMIO_KINDS };
struct sim_counters {
    uint64_t mmio_reads[SIM_MMIO_KINDS], mmio_writes[SIM_MMIO_KINDS];
    uint64_t doorbells;
    uint64_t interrupts, msi_interrupts[64], intx_interrupts, intx_unclaimed;
    uint64_t dpcs, timers;
    uint64_t srbs, srbs_busy, srb_timeouts, resets, lu_resets, device_resets;
    uint64_t bus_changes, reset_detected;
    uint64_t foreign_intx;      /* --foreign-intx calls made */
    uint64_t d3_accesses;       /* driver register accesses that met D3 (all ones / dropped) */
    uint64_t dpc_concurrent;    /* --dpc-reentrant: DPC runs that started while the same DPC ran */
    uint64_t ctl_interrupts, ctl_dpcs;  /* --adapter-control-locks none: delivered during Stop/Restart */
    uint64_t reset_left_outstanding; /* SRBs HwResetBus left outstanding (issue 11 item 7) */
};

/* ---- SRB tracking (sim/port_srb.c) ----------------------------------------------- */
/* One data buffer of a request: fragments in guest RAM. */
struct sim_buf {
    uint64_t len;
    unsigned nfrag;
    uint64_t *gpa;        /* fragment start */
    uint32_t *flen;       /* fragment length */
    uint64_t contig_gpa;  /* for a contiguous buffer: its gpa (also gpa[0]) */
    uint64_t pages;       /* pages owned (contig) */
    bool contig;
};

/* A request of the class layer: one SRB execution (the port makes a fresh SRB and
 * SRB extension for each attempt, as StorPort does after SRB_STATUS_BUSY). */
struct sim_request {
    /* in */
    UCHAR function;           /* SRB_FUNCTION_* */
    UCHAR cdb[16], cdb_len;
    ULONG srb_flags;
    ULONG timeout;            /* seconds */
    UCHAR queue_action;
    UCHAR sense_len;
    struct sim_buf *buf;      /* NULL: no data */
    ULONG transfer_len;       /* DataTransferLength (may differ from buf->len for tests) */
    UCHAR path, target, lun;
    /* out */
    UCHAR srb_status, scsi_status;
    ULONG out_transfer_len;
    UCHAR sense[255];
    unsigned busy_retries;
    bool timed_out;
    /* The port gave up on the SRB (never completed after HwResetBus): the miniport still
     * owns it and the device may still DMA into its buffer, so the caller must not free
     * or reuse the buffer (it is leaked on purpose). */
    bool buffer_held;
    bool port_done;           /* set under the port's lock when the SRB came back */
    /* SRB_FUNCTION_PNP / POWER: the value at offset 8 (STOR_PNP_ACTION or
     * STOR_DEVICE_POWER_STATE) and SrbPnPFlags / SrbPowerFlags (byte 4 for POWER). */
    ULONG pnp_action, pnp_flags;
};

struct sim_tracked;   /* port_int.h: private to sim/port*.c */

/* Process-wide SRB accounting (port_srb.c; --json "srb_accounting"): every SRB handed to a
 * miniport instance is completed once (completed), given up on / never completed (lost),
 * or left in flight by a `crash`/`hibernate` (abandoned). duplicates: completions of
 * an SRB the miniport did not own (completed twice, or never issued). test_dropped:
 * completions swallowed by --test-drop-completion (test only); late: completions of
 * lost SRBs after the port gave up (still counted in lost only). */
struct sim_srb_acct {
    uint64_t issued, completed, lost, abandoned, duplicates, test_dropped, late;
};
extern struct sim_srb_acct sim_srb_acct;
extern uint64_t sim_test_drop_completion;

/* ---- the adapter ------------------------------------------------------------------ */
struct sim_adapter_opts {
    bool msi;               /* use MSI(-X) when the device has it */
    int msi_messages;       /* 0 = all table entries (MessageNumberLimit) */
    bool dump_mode;
    unsigned srb_timeout;   /* 0: use the request's TimeOutValue */
    unsigned default_qdepth;
    uint64_t seed;
    unsigned reset_tiers;   /* SIM_RESET_*: StorPort's escalation on a timeout; 0 = all */
};
#define SIM_RESET_LU     1u   /* SRB_FUNCTION_RESET_LOGICAL_UNIT */
#define SIM_RESET_DEVICE 2u   /* SRB_FUNCTION_RESET_DEVICE */
#define SIM_RESET_BUS    4u   /* HwResetBus */

struct sim_dpc {
    PSTOR_DPC obj;
    void *routine;
    void *a1, *a2;
    bool queued;
    pthread_mutex_t run;     /* "each DPC serialized with itself" (not with --dpc-reentrant) */
    int running;             /* threads inside the routine now (dpc_mutex) */
    pthread_mutex_t lock;    /* the DpcLock of StorPortAcquireSpinLock */
    struct sim_dpc *next_q;  /* DPC queue link */
    struct sim_dpc *next_all;
};

struct sim_window {          /* a StorPortGetDeviceBase mapping */
    uint8_t *va;
    uint64_t len, gpa;
    unsigned bar;
    bool active;
};

struct sim_pool_block {
    void *p; size_t len; ULONG tag;
    struct sim_pool_block *next;
};

struct sim_adapter {
    struct sim_driver *drv;
    sim_dev *dev;
    struct sim_adapter_opts opts;
    struct sim_mem mem;
    struct sim_pci pci;
    struct sim_counters ctr;

    void *devext; size_t devext_size;
    void *luext;
    PORT_CONFIGURATION_INFORMATION *cfg;
    ACCESS_RANGE *ranges;
    unsigned nranges;
    char *argument_string;

    /* uncached extension */
    uint64_t unc_gpa; uint8_t *unc_va; ULONG unc_len; uint64_t unc_pages; bool unc_done;
    bool unc_failed;                  /* a call failed (--fragmented-memory) */
    size_t unc_canary_len;

    struct sim_window win[8];
    unsigned nwin;

    /* configuration the miniport chose */
    int sync_model, ism;
    void *msi_routine;
    bool use_msi;
    unsigned srbext_size;

    /* locks (real mutexes) */
    pthread_mutex_t startio_lock, interrupt_lock;
    pthread_mutex_t msi_lock[64];

    /* passive init, DPCs, timer */
    void *passive_routine;
    struct sim_dpc *dpcs;             /* all initialised DPCs */
    struct sim_dpc *dpcq_head, *dpcq_tail;
    pthread_mutex_t dpc_mutex; pthread_cond_t dpc_cond;
    pthread_t dpc_threads[2]; unsigned ndpc_threads;
    void *timer_routine; uint64_t timer_due_ns; uint64_t timer_gen;
    pthread_mutex_t timer_mutex; pthread_cond_t timer_cond; pthread_t timer_thread;
    pthread_t irq_thread;
    volatile bool stopping;
    bool threads_started;

    /* SRB tracking */
    pthread_mutex_t srb_mutex; pthread_cond_t srb_cond;
    struct sim_tracked *outstanding;  /* list */
    unsigned noutstanding, max_outstanding;
    struct sim_tracked **quarantine; unsigned quar_n, quar_pos;
    uint64_t completions;             /* monotonic, wakes BUSY retries */
    unsigned queue_depth;             /* StorPortSetDeviceQueueDepth, else default */
    unsigned tag_next;
    uint64_t decoy_next;
    int paused_until_ms;              /* StorPortPause */
    uint64_t pause_deadline_ns;
    unsigned busy_count;              /* StorPortBusy: requests to complete */
    pthread_mutex_t reset_mutex;
    uint64_t reset_gen;
    unsigned reset_pause;             /* >0: a reset escalation runs, the LU queue is paused */

    /* pool */
    pthread_mutex_t pool_mutex;
    struct sim_pool_block *pool;
    struct sim_contig_block *contig;   /* sim/contig.c, under pool_mutex */

    /* events the class layer looks at */
    volatile uint32_t bus_change_pending;
    volatile uint32_t reset_detected_pending;

    /* StorPortLogError entries */
    unsigned nlog;

    bool queue_depth_set;
    unsigned supported_ctl;           /* bit per SCSI_ADAPTER_CONTROL_TYPE */
    ULONG unc_srbext, unc_breaks, unc_maxxfer;  /* ConfigInfo when the uncached extension was taken */

    bool started;
    volatile int in_adapter_control;  /* Stop/Restart running (--adapter-control-locks none) */
    unsigned ctl_logged;
    pthread_t ctl_thread; bool ctl_thread_live;   /* the disturber of the last Stop/Restart */
    /* From a successful ScsiStopAdapter until ScsiRestartAdapter the function is in D3:
     * register reads return all ones and writes are dropped (PCI PM 1.2: D3hot decodes
     * config space only), whatever the backend (docs/simulator.md, "D3 reads all ones"). */
    int d3;
    bool in_teardown;
    bool crashed;                     /* sim_port_crash: frozen, its SRBs abandoned */
    struct sim_adapter *next;

    /* lifecycle evidence (docs/lifecycle.md tests) */
    uint64_t power_cycles;            /* completed Stop -> Restart cycles */
    uint64_t no_device_completions;   /* SRBs the miniport completed with NO_DEVICE */
    bool removal_noticed;             /* first NO_DEVICE completion seen */
    bool pnp_removed;                 /* SRB_FUNCTION_PNP remove / surprise removal sent */
    uint64_t mmio_at_notice;          /* driver MMIO count at that moment */
    int64_t dev_removed_mmio_at_notice; /* contract device's after-removal count then, -1 unknown */

    /* hibernation resume of this instance (sim/s4.c) */
    bool s4_hibernated;               /* frozen by `hibernate`, may be resumed */
    bool s4_watch;                    /* resumed: check the device's queue at its doorbells */
    uint64_t s4_frozen_ns;            /* when `hibernate` froze it (sim_now_ns) */
    unsigned s4_nstale;
    struct { uint64_t gpa, len; const char *who; bool reported; } s4_stale[4]; /* rings left behind */

    /* PnP rebalance (sim_port_rebalance) */
    bool rebalanced;                  /* started again on the same device extension */
    uint64_t rebalances;
    uint64_t msi_page;                /* MSI-X message target page (kept across a rebalance) */
};

/* Adapter lifecycle (sim/port.c; power and crash: sim/port_power.c). */
struct sim_adapter *sim_adapter_create(struct sim_driver *drv, sim_dev *dev,
                                       const struct sim_adapter_opts *o, char *err, size_t errlen);
/* PnP start: PCI, ConfigInfo, HwFindAdapter, HwInitialize, passive init, adapter control. */
int sim_adapter_start(struct sim_adapter *a, char *err, size_t errlen);
/* Stop threads, report never-completed SRBs, leaks, canary damage; frees everything. */
void sim_adapter_destroy(struct sim_adapter *a);
struct sim_adapter *sim_adapter_from_ext(void *ext);
/* Execute one request synchronously (BUSY requeue, timeouts + HwResetBus inside).
 * Returns 0 when the SRB completed (any status), -1 when the port gave up. */
int sim_port_execute(struct sim_adapter *a, struct sim_request *r);
/* Called from StorPortNotification(RequestComplete) / StorPortCompleteRequest. */
void sim_port_request_complete(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb, const char *how);
void sim_port_complete_all(struct sim_adapter *a, UCHAR status);
PSTOR_SCATTER_GATHER_LIST sim_port_sglist(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb);
/* ---- contiguous memory extended functions (sim/contig.c, facts §11.12) ---------- */
struct sim_contig_block;
ULONG sim_contig_alloc(struct sim_adapter *a, size_t bytes, uint64_t lowest, uint64_t highest,
                       uint64_t boundary, int cache, PVOID *out);
ULONG sim_contig_free(struct sim_adapter *a, PVOID va, size_t bytes, int cache);
bool sim_contig_phys(struct sim_adapter *a, const void *va, uint64_t *gpa, ULONG *len);
/* At unload: every block left is a POOL finding (quietly: a crashed instance). */
void sim_contig_unload(struct sim_adapter *a, bool quietly);
bool sim_port_phys_of(struct sim_adapter *a, PSCSI_REQUEST_BLOCK srb, const void *va,
                      uint64_t *gpa, ULONG *len);
void sim_port_issue_dpc(struct sim_adapter *a, struct sim_dpc *d);
void sim_port_set_timer(struct sim_adapter *a, void *routine, ULONG us);
/* Call HwResetBus as StorPort does (StartIo lock, DISPATCH). */
void sim_port_reset_bus(struct sim_adapter *a, const char *why);
/* HwAdapterControl(Stop) then (Restart), as for a sleep/resume cycle: StorPort pauses
 * new requests, waits for the outstanding ones, Stop at DIRQL holding the interrupt
 * lock, a powered-off gap (any driver MMIO in it is a finding), Restart. */
int sim_port_power_cycle(struct sim_adapter *a);
/* The first half alone (hibernation: the instance stays stopped and paused). */
int sim_port_stop(struct sim_adapter *a);
/* Sum of the driver's MMIO reads and writes so far. */
uint64_t sim_port_mmio_count(struct sim_adapter *a);
/* "Crash" the instance as a bug check does: N writes are started and never waited for,
 * then no more interrupts, DPCs, timers or calls reach it; the device is left as is. */
void sim_port_crash(struct sim_adapter *a, unsigned inflight_writes);
/* Hibernation without adapter control: pause and drain, call nothing (sim/port_power.c). */
int sim_port_quiesce(struct sim_adapter *a);
/* Resume a frozen instance (threads again; restart: D0 + ScsiRestartAdapter). */
int sim_port_thaw(struct sim_adapter *a, bool restart);

/* ---- hibernation resume (sim/s4.c, docs/simulator.md "Pessimistic Windows 7 model") -- */
extern bool sim_s4_adapter_control;   /* --s4-adapter-control on|off (default off) */
extern bool sim_s4_firmware;          /* --s4-firmware on|off (default on) */
extern unsigned sim_s4_gap_ms;        /* --s4-gap-ms: wall-clock time the hibernation took */
/* The firmware stand-in's minimal virtio bring-up, also the ideal driver's (sim/ideal.c):
 * reset + VERSION_1 only + queue 0 (size <= max_qsz); then rings, no vector, DRIVER_OK,
 * returning the queue's doorbell address. */
int sim_fw_queue_open(sim_dev *d, const struct sim_pci *p, unsigned max_qsz, unsigned *qsz, char *err, size_t el);
uint64_t sim_fw_queue_start(sim_dev *d, const struct sim_pci *p, uint64_t desc, uint64_t avail, uint64_t used);
uint64_t sim_fw_region_gpa(const struct sim_pci *p, unsigned type);
extern int64_t sim_s4_time_offset;    /* added to StorPortQuerySystemTime (100 ns units) */
/* The hibernated instance `frozen` continues after `hiber` (the hibernation instance,
 * may be NULL) and, with --s4-firmware, a firmware stand-in used the device. */
int sim_s4_resume(struct sim_adapter *frozen, struct sim_adapter *hiber, char *err, size_t el);
/* A resumed instance rings a doorbell: the device must run this instance's queue. */
void sim_s4_doorbell(struct sim_adapter *a);
/* Device writes into the rings left behind (canary damage): findings. */
void sim_s4_check(struct sim_adapter *a);

/* --dump-config saved|fresh (sim/dumpport.c): the dump instance gets the normal
 * instance's saved ConfigInfo (default) or fresh defaults. */
extern bool sim_dump_config_saved;
/* --second-uncached same|null: a second StorPortGetUncachedExtension on one device
 * extension (PnP rebalance) returns the first address or NULL (default, ReactOS). */
extern bool sim_second_uncached_null;
/* After the dump instance's HwFindAdapter: its uncached extension, one SRB extension and
 * one sense buffer together within the dump port's 32 KiB (facts §7, §11.8). */
void sim_dump_budget_check(struct sim_adapter *a);
/* The saved ConfigInfo of the last normal instance on dev (--dump-config saved). */
void sim_dump_save_config(struct sim_adapter *a);
const PORT_CONFIGURATION_INFORMATION *sim_dump_saved_config(void);

/* `pnp rebalance`: ScsiStopAdapter, resources released, HwFindAdapter + HwInitialize
 * again on the same device extension (sim/port_power.c). */
int sim_port_rebalance(struct sim_adapter *a, char *err, size_t errlen);

/* Number of SRBs the miniport owns now. */
unsigned sim_port_outstanding(struct sim_adapter *a);
/* Is va inside a window returned by StorPortGetDeviceBase? Returns gpa. */
bool sim_mmio_translate(struct sim_adapter *a, const volatile void *va, unsigned width,
                        uint64_t *gpa, unsigned *bar);

/* Lock helpers shared by StorPort exports and the port (set IRQL + verifier state). */
void sim_acquire_interrupt_lock(struct sim_adapter *a, const char *who);
void sim_release_interrupt_lock(struct sim_adapter *a, const char *who);
void sim_acquire_startio_lock(struct sim_adapter *a, const char *who);
void sim_release_startio_lock(struct sim_adapter *a, const char *who);

extern struct sim_adapter *sim_adapters;      /* all live adapters */
extern pthread_mutex_t sim_adapters_lock;
extern struct sim_driver *sim_loading_driver;  /* DriverEntry in progress */

/* ---- StorPort export table for the PE loader (sim/storport.c) -------------------- */
struct sim_export { const char *name; void *fn; };
extern const struct sim_export sim_storport_exports[];

/* ---- disk-class layer (sim/diskclass*.c) ----------------------------------------- */
struct sim_disk {
    struct sim_adapter *a;
    char vendor[9], product[17], revision[5], serial[64];
    uint8_t inquiry[96]; unsigned inquiry_len;
    uint8_t vpd_pages[64]; unsigned nvpd;
    uint8_t vpd83[256]; unsigned vpd83_len;
    uint8_t vpdb0[64]; unsigned vpdb0_len;
    uint32_t block_size;
    uint64_t blocks;           /* capacity in logical blocks */
    bool use16;
    bool wce, write_protect, fua_supported;
    /* disk.sys after a FUA WRITE failed with 05/24 (issue 11 item 12): FUA no longer
     * set (CLASS_SPECIAL_FUA_NOT_SUPPORTED), the write cache turned off once */
    bool fua_not_supported, wce_disable_pending;
    uint64_t fua_disabled, wce_disable_attempts;
    unsigned max_transfer;     /* bytes per SRB the class layer sends */
    unsigned max_pages;
    uint32_t capacity_generation;
    uint64_t errors, retries, unit_attentions;
    /* every completion the class layer saw (each attempt): by SRB status (flag bits
     * stripped), and by sense key when it came with valid autosense data */
    uint64_t srb_status_count[64];
    uint64_t sense_key_count[16];
    uint64_t rescans;          /* re-enumerations after BusChangeDetected (sim_disk_rescan) */
    pthread_mutex_t lock;
};
int sim_disk_arrive(struct sim_disk *d, struct sim_adapter *a, char *err, size_t errlen);
/* Use a known disk through another adapter instance (the dump stack knows the disk
 * already): recompute the transfer limits from its ConfigInfo. */
void sim_disk_attach(struct sim_disk *d, struct sim_adapter *a);
/* READ/WRITE of count blocks at lba through buf (pattern already in buf for writes).
 * Splits by max_transfer, retries like classpnp. 0 ok, else -1 (r holds last status). */
int sim_disk_rw(struct sim_disk *d, bool write, uint64_t lba, uint32_t count,
                struct sim_buf *buf, struct sim_request *last);
/* SYNCHRONIZE CACHE, then (CachesData) SRB_FUNCTION_FLUSH. */
int sim_disk_flush(struct sim_disk *d);
/* The same as sim_disk_rw with FUA set in write CDBs when fua. */
int sim_disk_rw_fua(struct sim_disk *d, bool write, bool fua, uint64_t lba, uint32_t count,
                    struct sim_buf *buf, struct sim_request *last);
/* An SRB without a CDB (SRB_FUNCTION_FLUSH / SHUTDOWN) through r, with retries. */
int sim_disk_no_cdb_srb(struct sim_disk *d, UCHAR function, struct sim_request *r);
/* Teardown with a caching adapter: SRB_FUNCTION_SHUTDOWN twice (nothing otherwise). */
int sim_disk_shutdown(struct sim_disk *d);
/* START STOP UNIT: stop (before a power-down) or start (after power-up). */
int sim_disk_start_stop(struct sim_disk *d, bool start);
/* Class traffic of issue 11 item 12 ("smart", "wmi", "reset-bus", "stop-immed",
 * "start-immed", "immed-invalid", "disable-write-cache"), the result in r. 0 when the SRB
 * came back (any status), -1 on an unknown name or a lost SRB; msg says what happened. */
int sim_disk_class_step(struct sim_disk *d, const char *name, struct sim_request *r, char *msg, size_t msglen);
/* disk.sys's DisableWriteCache: MODE SENSE caching page, MODE SELECT with WCE clear,
 * MODE SENSE again (d->wce updated). 0 when the write cache reads back off. */
int sim_disk_disable_write_cache(struct sim_disk *d);
/* Re-read capacity after BusChangeDetected / a unit attention. */
int sim_disk_refresh_capacity(struct sim_disk *d);
/* Re-enumeration after BusChangeDetected: identity probes + REPORT LUNS + capacity;
 * an identity other than the first enumeration's is an IDENTITY finding. */
int sim_disk_rescan(struct sim_disk *d);
/* The dump port's first request (INQUIRY) and last ones (SYNCHRONIZE CACHE, SHUTDOWN). */
int sim_disk_dump_open(struct sim_disk *d);
int sim_disk_dump_close(struct sim_disk *d);
/* One request with classpnp's retry policy (used by rw, flush and bring-up). */
int sim_disk_execute_retry(struct sim_disk *d, struct sim_request *r, unsigned retries);
/* Build a sim_buf: scattered pages (read/write) or contiguous (mapped commands). */
struct sim_buf *sim_buf_alloc(struct sim_mem *m, uint64_t len, bool scattered, unsigned start_off);
void sim_buf_free(struct sim_mem *m, struct sim_buf *b);
void sim_buf_write(sim_dev *d, const struct sim_buf *b, uint64_t off, const void *src, uint64_t len);
void sim_buf_read(sim_dev *d, const struct sim_buf *b, uint64_t off, void *dst, uint64_t len);
/* Fill a request for a CDB as classpnp would (flags, tag, timeout, sense). */
void sim_request_init(struct sim_request *r, const uint8_t *cdb, unsigned cdb_len,
                      struct sim_buf *buf, ULONG len, bool data_in, bool data_out);

/* QEMU backend (sim/qemu_backend_ops.c): qtest-level writes to QEMU's notify region
 * (BAR 4 + 0x3000, QEMU's own layout), counted independently of the core's region
 * accounting. 0 and *out set for a QEMU device, else -1. */
int sim_qemu_notify_writes(sim_dev *d, uint64_t *out);
/* Contract device (sim/contract_dev.c): of its passes that published used entries, how
 * many sent an interrupt and how many the driver's NO_INTERRUPT flag / used_event held
 * back. 0 for a contract device, -1 otherwise. */
int sim_contract_irq_counts(sim_dev *d, uint64_t *interrupting, uint64_t *suppressed);

/* ---- small utilities (sim/util.c) ------------------------------------------------ */
uint64_t sim_now_ns(void);
void sim_sleep_us(unsigned us);
uint64_t sim_rand_next(uint64_t *state);
/* JSON string escaping into out (always NUL-terminated). */
void sim_json_escape(char *out, size_t outlen, const char *in);
uint32_t sim_crc32(uint32_t crc, const void *p, size_t n);

/* x86_launch.c: an x86 .sys given to the 64-bit simulator re-executes the 32-bit one
 * (AEROVBLK_X86_MODE=native|emulated|auto); returns only on error (exit status) or when
 * nothing needs relaunching (0). In the 32-bit simulator: how it runs, for the output. */
int sim_x86_relaunch(int argc, char **argv, const char *driver);
const char *sim_x86_mode(void);     /* NULL in the 64-bit simulator */
void sim_x86_note_run(void);

#endif
