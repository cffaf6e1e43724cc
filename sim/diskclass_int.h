/*
 * Declarations shared by the files of the disk-class layer (sim/diskclass*.c): the
 * class driver's constants and the helpers one file calls in another. Internal to those
 * files; the rest of the simulator uses sim.h.
 */
#ifndef AEROVBLK_SIM_DISKCLASS_INT_H
#define AEROVBLK_SIM_DISKCLASS_INT_H
#include "sim.h"

#define PG 4096u
#define SENSE_LEN 18              /* SENSE_BUFFER_SIZE */
#define DISK_TIMEOUT 10           /* SCSI_DISK_TIMEOUT, facts §8 */
#define RW_RETRIES 8              /* reads/writes before Windows 8.1 */
#define OTHER_RETRIES 4           /* MAXIMUM_RETRIES */

/* diskclass.c */
struct sim_buf *diskclass_buf_view(const struct sim_buf *b, uint64_t off, uint64_t len);
void diskclass_buf_view_free(struct sim_buf *v);
void diskclass_count_completion(struct sim_disk *d, const struct sim_request *r);
int diskclass_simple_cmd(struct sim_disk *d, const uint8_t *cdb, unsigned cdb_len, void *data, unsigned len,
                         bool in, unsigned retries, ULONG *got);

#endif
