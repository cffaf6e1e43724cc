/*
 * Declarations shared by the files of the simulated StorPort's port driver half
 * (sim/port*.c): the SRB tracker, memory patterns and the helpers more than one of
 * them calls. Internal to those files; the rest of the simulator uses sim.h.
 */
#ifndef AEROVBLK_SIM_PORT_INT_H
#define AEROVBLK_SIM_PORT_INT_H
#include "sim.h"

/* Sense buffer fill of an SRB with SRB_FLAGS_DISABLE_AUTOSENSE (must stay so). */
#define SIM_SENSE_UNTOUCHED 0xA5

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PG 4096ull
#define POISON_BYTE 0xDB
#define GARBAGE_BYTE 0xA5
#define CANARY_BYTE 0x5C
#define QUARANTINE 512
#if UINTPTR_MAX > 0xFFFFFFFFu
#define DECOY_SLOTS 1024
#else
#define DECOY_SLOTS 48          /* 32-bit simulator: keep the address space */
#endif
#define DECOY_SLOT_BYTES ((size_t)2 << 20)

struct sim_tracked {
    PSCSI_REQUEST_BLOCK srb;
    uint8_t *ext; uint64_t ext_gpa, ext_pages; ULONG ext_len;
    PSTOR_SCATTER_GATHER_LIST sg;
    uint8_t *sense; uint64_t sense_gpa;   /* in guest RAM: StorPortGetPhysicalAddress works on it */
    struct sim_request *req;
    bool mapped, done;
    uint64_t start_ns;
    uint64_t reset_gen;
    const char *completed_by;
    struct sim_request *orphan;   /* own copy of req after the port gave up */
    bool owns_buf;                /* orphan->buf belongs to the tracker (crash writes) */
    bool lost_counted;            /* already counted in sim_srb_acct.lost (port gave up) */
    /* canaries: [DataTransferLength, page end) of a mapped buffer, [SrbExtensionSize,
     * page end) of the SRB extension; checked at completion */
    uint8_t *buf_canary, *buf_canary_saved; size_t buf_canary_len;
    void *sg_copy; size_t sg_bytes;   /* the S/G list as handed out (compared at completion) */
    size_t ext_canary_len;
    struct sim_tracked *next;
};

/* port.c */
extern uint8_t *port_decoy_base;     /* PROT_NONE: DataBuffer of READ/WRITE SRBs */
void port_set_ctx(struct sim_adapter *a, int irql);
void port_check_locks_after(const char *cb, unsigned expect);
int port_start_threads(struct sim_adapter *a);
void port_stop_threads(struct sim_adapter *a);

/* port_irq.c */
void port_deliver_msi(struct sim_adapter *a, unsigned msg);
void port_deliver_checked_intx(struct sim_adapter *a, const char *what);
void *port_irq_thread(void *arg);
void *port_dpc_thread(void *arg);
void *port_timer_thread(void *arg);

/* port_srb.c */
void port_sense_free(struct sim_adapter *a, struct sim_tracked *t);
void port_tracked_free(struct sim_adapter *a, struct sim_tracked *t);
struct sim_tracked *port_tracked_new(struct sim_adapter *a, struct sim_request *r);
void port_abstime_in(struct timespec *ts, uint64_t ns);

/* port_exec.c */
void port_start_srb(struct sim_adapter *a, struct sim_tracked *t, struct sim_request *r);

/* port_power.c */
SCSI_ADAPTER_CONTROL_STATUS port_adapter_control_locked(struct sim_adapter *a, int type);

#endif
