/* The verified workload of `aerovblk-sim run` (sim/workload.c). */
#ifndef AEROVBLK_SIM_WORKLOAD_H
#define AEROVBLK_SIM_WORKLOAD_H
#include <stdbool.h>
#include <stdint.h>

struct sim_disk;

enum sim_wl_mode { WL_READ, WL_WRITE, WL_RANDREAD, WL_RANDWRITE, WL_RANDRW };

struct sim_workload_opts {
    enum sim_wl_mode mode;
    unsigned bs;              /* bytes per I/O */
    unsigned qd;              /* submitter threads = I/Os in flight */
    uint64_t ios;             /* total I/Os (0: run for `seconds`) */
    unsigned seconds;
    uint64_t seed;
    uint64_t offset, span;    /* region of the disk (bytes); span 0 = to the end */
    unsigned write_pct;       /* randrw */
    /* percentage of writes sent with FUA set in the CDB: 0 = default (10 when MODE SENSE
     * reported DPOFUA, else none), -1 = none (`--fua-pct 0`) */
    int fua_pct;
    bool stop_on_finding;
    /* the device is expected to go away during the run (surprise removal): requests that
     * end with SRB_STATUS_NO_DEVICE are counted in no_device, not as errors */
    bool tolerate_removal;
    /* nonzero: every chunk is expected to hold this generation's pattern (written by an
     * earlier run with the same --seed and --bs, e.g. the hibernation instance) */
    uint32_t verify_gen;
    /* after the flush, every chunk this run wrote is read back through the driver and
     * checked against its pattern (default); no_readback skips that pass */
    bool no_readback;
    /* test-only negative controls (tests/checks/49a-workload-negative.sh):
     * no_image_check skips the final comparison of written chunks with the image file;
     * corrupt_image flips one byte in each of the first N written chunks of the image
     * file behind the driver's back, after the flush and before both checks */
    bool no_image_check;
    unsigned corrupt_image;
};

struct sim_workload_result {
    uint64_t ios, reads, writes, errors, mismatches;
    uint64_t bytes_read, bytes_written;
    uint64_t image_chunks_checked, image_mismatches;
    uint64_t elapsed_ns, max_latency_ns, total_latency_ns;
    uint64_t no_device;       /* tolerate_removal: requests failed with NO_DEVICE */
    uint64_t fua_writes;      /* writes sent with FUA */
    /* the read-back pass: chunks read and sectors mismatching (also in mismatches) */
    uint64_t readback_reads, readback_mismatches;
    uint64_t corrupted_chunks;  /* corrupt_image: chunks altered in the image file */
    /* what the read-back pass cost (left out of the workload's VM-exit counters) */
    uint64_t rb_mmio_reads, rb_mmio_writes, rb_doorbells, rb_interrupts, rb_dpcs, rb_busy;
};

/* Fill 512 bytes with the pattern of (sector, generation, seed). */
void sim_pattern_fill(uint8_t *p, uint64_t sector, uint32_t gen, uint64_t seed);
int sim_workload_run(struct sim_disk *d, const char *image_path, const struct sim_workload_opts *o,
                     struct sim_workload_result *res);

/* --ideal-driver run (sim/ideal.c): the same workload on a virtqueue of the simulator's
 * own, no miniport (the baseline of make bench). 0 when every I/O completed and
 * verified; sim_ideal_print prints the result (one JSON object with json). */
struct sim_dev;
struct sim_ideal_result {
    struct sim_workload_result w;
    uint64_t doorbells;
    unsigned queue_size;
};
int sim_ideal_run(struct sim_dev *d, const char *image_path, const struct sim_workload_opts *o,
                  struct sim_ideal_result *r);
void sim_ideal_print(const struct sim_workload_opts *o, const struct sim_ideal_result *r, bool json,
                     const char *backend, unsigned findings, int rc);

#endif
