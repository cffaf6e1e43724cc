/*
 * Client of QEMU's qtest line protocol (the -qtest chardev), used by the QEMU backend
 * (sim/qemu_backend.c) to reach PCI config space, MMIO and interrupt lines of QEMU's
 * device models without a guest CPU.
 *
 * Protocol (QEMU softmmu/qtest.c): one command per line; the reply is one line "OK",
 * "OK <hex>", "FAIL ..." or "ERR ...". Once irq_intercept_in is active, asynchronous
 * "IRQ raise N" / "IRQ lower N" lines may arrive at any time, including before a
 * reply; the client records them as pin levels and never mistakes them for replies.
 *
 * Thread safety: every call takes the client's mutex, except sim_qtest_cmd_locked(),
 * which lets the caller make several commands atomic (CF8 address + CFC data) under
 * sim_qtest_lock(). Every wait is bounded by the client's timeout; after a timeout or
 * EOF the client is "dead" (the reply stream can no longer be trusted) and every later
 * command fails immediately.
 */
#ifndef AEROVBLK_SIM_QTEST_H
#define AEROVBLK_SIM_QTEST_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simdev.h"

#define SIM_QTEST_MAX_PINS 64

typedef struct sim_qtest {
    int fd;                         /* connected stream socket, -1 when closed */
    pthread_mutex_t lock;
    int timeout_ms;                 /* per reply */
    char rx[4096];                  /* received bytes not yet consumed */
    size_t rx_len;
    /* Pin levels from "IRQ raise/lower N"; bit N of the word. Atomic so readers that
     * cannot take the lock (a busy client) still see the last known levels. */
    uint64_t irq_levels;
    uint64_t irq_raises;            /* number of "IRQ raise" lines seen */
    uint64_t round_trips;           /* commands sent and answered */
    bool dead;
    char error[256];                /* first fatal error (timeout, EOF, I/O) */
} sim_qtest;

/* Takes ownership of fd. timeout_ms bounds each reply wait. */
void sim_qtest_init(sim_qtest *q, int fd, int timeout_ms);
/* Closes the socket and releases the mutex. */
void sim_qtest_close(sim_qtest *q);

/*
 * Sends one command line (no newline) and waits for its reply. On "OK" returns 0 and,
 * when value is non-NULL, stores the hex value of "OK <hex>" (0 if none). On FAIL/ERR,
 * timeout or EOF returns -1; err (may be NULL) receives a message.
 */
int sim_qtest_cmd(sim_qtest *q, const char *cmd, uint64_t *value, char *err, size_t err_len);
void sim_qtest_lock(sim_qtest *q);
void sim_qtest_unlock(sim_qtest *q);
int sim_qtest_cmd_locked(sim_qtest *q, const char *cmd, uint64_t *value, char *err,
                         size_t err_len);

/* Level of intercepted pin N. Drains already-arrived IRQ lines without blocking when
 * the client is idle; if another thread holds the client, returns the last known
 * level (that thread records the lines as they arrive). */
bool sim_qtest_irq_level(sim_qtest *q, unsigned pin);

/* ---- QEMU backend extras (implemented in sim/qemu_backend*.c) ---- */

typedef struct sim_qemu_stats {
    uint64_t qtest_round_trips;     /* qtest commands answered (CF8 writes included) */
    uint64_t intx_raises;           /* "IRQ raise" lines for the device's INTA# pin */
    uint64_t qmp_commands;
    int qemu_pid;                   /* 0 once QEMU is gone */
    bool qtest_dead;                /* qtest stream broken (QEMU died or timed out) */
} sim_qemu_stats;

/* Fills *out for a device made by sim_qemu_create; -1 for any other device. */
int sim_qemu_get_stats(sim_dev *d, sim_qemu_stats *out);

/*
 * Async-signal-safe: SIGKILLs every live QEMU child of this process and unlinks the
 * files/sockets of instances still starting. For a simulator that installs its own
 * fatal-signal handlers after creating the backend (replacing the backend's).
 */
void sim_qemu_emergency_cleanup(void);

#endif
