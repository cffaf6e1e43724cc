/*
 * Minimal QMP (QEMU Machine Protocol) client for the QEMU backend: connect to the
 * -qmp unix socket, read the greeting, negotiate capabilities, then run one command
 * at a time and return its reply, skipping asynchronous events.
 *
 * QMP messages are single-line JSON objects; a reply has a top-level "return" or
 * "error" key, an event an "event" key (QEMU docs/interop/qmp-spec.txt). Every wait is
 * bounded; after a timeout the stream is out of step and the client is closed.
 */
#ifndef AEROVBLK_SIM_QMP_H
#define AEROVBLK_SIM_QMP_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim_qmp {
    int fd;
    pthread_mutex_t lock;   /* one command in flight at a time */
    int timeout_ms;
    char *rx;               /* SIM_QMP_RX_MAX bytes */
    size_t rx_len;
    bool dead;
    uint64_t commands;
    uint64_t events_skipped;
    char error[256];
} sim_qmp;

/* Connects (retrying until timeout_ms while QEMU creates the socket), reads the
 * greeting and sends qmp_capabilities. 0 on success; -1 with err filled. Call
 * sim_qmp_close() afterwards in both cases. */
int sim_qmp_connect(sim_qmp *m, const char *path, int timeout_ms, char *err, size_t err_len);
void sim_qmp_close(sim_qmp *m);

/*
 * Sends one JSON command and copies the reply line into reply (truncated to fit,
 * always NUL-terminated). Returns 0 for a "return" reply, -1 for an "error" reply or a
 * transport failure (reply then holds the error text).
 */
int sim_qmp_command(sim_qmp *m, const char *json, char *reply, size_t reply_len);

/* True if the single-line JSON object has the top-level key (exposed for tests). */
bool sim_qmp_has_top_key(const char *json, const char *key);

#endif
