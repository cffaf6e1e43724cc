/*
 * Declarations shared by the files of the aerovblk-sim command line (sim/main*.c):
 * the options, the JSON text builder and the session (device, driver instances,
 * results of the last command). Not part of the simulator core: the diagnostics
 * tools link every sim object but these (mk/sim.mk SIM_CORE_OBJS).
 */
#ifndef AEROVBLK_SIM_MAIN_H
#define AEROVBLK_SIM_MAIN_H
#include <stdio.h>

#include "sim.h"
#include "contract_dev.h"
#include "workload.h"
#include "aerovblk_diagfmt.h"

/* ------------------------------------------------------------------------------ */
struct opts {
    const char *disk;
    uint64_t size;
    const char *device_opts, *drive_opts;
    const char *backend;
    const char *driver;
    bool json, msi, dump;
    bool ideal;   /* --ideal-driver: run without a miniport (sim/ideal.c) */
    int msi_messages;
    unsigned srb_timeout;
    unsigned reset_tiers;
    uint64_t ram;
    unsigned timeout;
    /* run */
    struct sim_workload_opts wl;
    unsigned power_cycle_ms;   /* run: a sleep/resume cycle every N ms while the workload runs */
    /* cdb */
    const char *cdb_hex;
    unsigned in_len;
    const char *out_file;
    /* ioctl */
    const char *signature;
    long long code, header_len, length, buffer_size, return_code;
    long long fill_seed;   /* ioctl --fill-seed: the buffer's bytes pseudo-random before the header */
    bool raw;   /* ioctl --raw: the buffer as sent and as the driver left it, in hex */
};

/* JSON text builder (main_report.c) */
struct js { char *p; size_t len, cap; };
void jsf(struct js *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------ */
struct session {
    struct opts *o;
    sim_dev *dev;
    struct sim_driver drv;
    struct sim_adapter *a;
    struct sim_disk disk;
    bool disk_up;
    char tmp_disk[256];
    int failures;              /* errors, mismatches, failed expectations */
    struct js out;             /* JSON members collected by commands */
    /* last cdb/ioctl for `expect` */
    struct sim_request last;
    bool have_last;
    uint8_t last_data[4096];
    unsigned last_data_len;
    AVDIAG_INFO last_info;
    bool have_info;
    uint32_t last_return_code;
    struct sim_adapter *old[8];    /* crashed or replaced instances (crash / dump-load / reload) */
    struct sim_counters ctr_prev;  /* counters of the instances replaced so far (--json "all_instances") */
    uint64_t power_cycles_prev;
    int nold;
    struct sim_driver drv_extra[8];
    int ndrv;
    struct sim_workload_result last_wl;
    struct sim_workload_opts last_wl_opts;
    bool have_wl;
    /* every `run` of the session (a script may have several): verified I/Os etc. */
    uint64_t sum_runs, sum_ios, sum_errors, sum_mismatches, sum_readback, sum_image_chunks;
    struct sim_counters wl_before;
    uint64_t last_wl_power_cycles;
    uint64_t rebalances, s4_resumes;   /* `pnp rebalance` / `hibernate-resume` done (--json) */
    /* every driver instance started (for --json "instances") */
    struct { char name[72]; bool dump; unsigned uncached_bytes, max_transfer, breaks, srbext; } inst[16];
    int ninst;
};

/* main_opts.c */
extern bool win7_pessimistic;
void main_usage(FILE *f);
int win7_model_apply(int argc, char **argv);
const char *win7_model_device_opts(const char *backend, const char *user, char *buf, size_t len);
int main_parse_opts(int argc, char **argv, struct opts *o, char **pos, int maxpos, int *npos);
void main_opts_defaults(struct opts *o);

/* main_report.c */
void jstr(struct js *j, const char *key, const char *val);
const char *srb_status_name(unsigned st);
void main_hexdump(FILE *f, const uint8_t *p, unsigned n);
void main_print_result(struct session *s, const char *what, const struct sim_request *r, const uint8_t *data, unsigned n);
uint64_t main_sum6(const uint64_t *v);
void wl_report(struct session *s);
void main_describe(struct session *s);

/* main_session.c */
extern struct session *g_session;
void *main_watchdog(void *arg);
void main_on_deadlock(void);
int session_start(struct session *s, char *err, size_t el);
int session_new_instance(struct session *s, bool dump, char *err, size_t el);
int session_s4_resume(struct session *s, char *err, size_t el);
int session_rebalance(struct session *s, char *err, size_t el);
void session_stop(struct session *s);
int send_pnp_power(struct sim_adapter *a, UCHAR function, ULONG action, ULONG flags, struct sim_request *r);
int main_power_cycle(struct session *s);

/* main_script.c */
int main_do_command(struct session *s, const char *cmd, struct opts *o, char **pos, int npos);

#endif
