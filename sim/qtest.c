/*
 * qtest line-protocol client; see qtest.h for the protocol and the locking rules.
 */
#define _GNU_SOURCE
#include "qtest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t qtest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records the first fatal error; the stream is unusable from here on. */
static void qtest_fail(sim_qtest *q, const char *fmt, const char *detail)
{
    if (!q->dead) {
        snprintf(q->error, sizeof(q->error), fmt, detail);
        q->dead = true;
    }
}

void sim_qtest_init(sim_qtest *q, int fd, int timeout_ms)
{
    memset(q, 0, sizeof(*q));
    q->fd = fd;
    q->timeout_ms = timeout_ms;
    pthread_mutex_init(&q->lock, NULL);
}

void sim_qtest_close(sim_qtest *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    q->dead = true;
    pthread_mutex_destroy(&q->lock);
}

void sim_qtest_lock(sim_qtest *q) { pthread_mutex_lock(&q->lock); }
void sim_qtest_unlock(sim_qtest *q) { pthread_mutex_unlock(&q->lock); }

/* "IRQ raise N" / "IRQ lower N": updates the pin level; returns false for other lines. */
static bool qtest_take_irq_line(sim_qtest *q, const char *line)
{
    bool raise;
    if (strncmp(line, "IRQ raise ", 10) == 0)
        raise = true;
    else if (strncmp(line, "IRQ lower ", 10) == 0)
        raise = false;
    else
        return false;
    char *end;
    unsigned long pin = strtoul(line + 10, &end, 10);
    if (end == line + 10 || pin >= SIM_QTEST_MAX_PINS)
        return true;   /* an IRQ line, but not one we can track: ignore it */
    uint64_t bit = (uint64_t)1 << pin;
    if (raise) {
        __atomic_fetch_or(&q->irq_levels, bit, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&q->irq_raises, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_and(&q->irq_levels, ~bit, __ATOMIC_SEQ_CST);
    }
    return true;
}

/*
 * Extracts the next complete line from rx into line (NUL-terminated, without '\n').
 * Returns false if no complete line is buffered.
 */
static bool qtest_pop_line(sim_qtest *q, char *line, size_t line_len)
{
    char *nl = memchr(q->rx, '\n', q->rx_len);
    if (!nl)
        return false;
    size_t n = (size_t)(nl - q->rx);
    size_t copy = n < line_len - 1 ? n : line_len - 1;
    memcpy(line, q->rx, copy);
    line[copy] = '\0';
    memmove(q->rx, nl + 1, q->rx_len - n - 1);
    q->rx_len -= n + 1;
    return true;
}

/* One recv into rx. wait_ms < 0: no waiting. Returns 1 data, 0 nothing yet, -1 dead. */
static int qtest_fill(sim_qtest *q, int wait_ms)
{
    if (q->rx_len == sizeof(q->rx)) {
        qtest_fail(q, "qtest: %s", "line longer than the receive buffer");
        return -1;
    }
    struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
    int pr = poll(&pfd, 1, wait_ms < 0 ? 0 : wait_ms);
    if (pr < 0 && errno == EINTR)
        return 0;
    if (pr < 0) {
        qtest_fail(q, "qtest: poll failed: %s", strerror(errno));
        return -1;
    }
    if (pr == 0)
        return 0;
    ssize_t n = recv(q->fd, q->rx + q->rx_len, sizeof(q->rx) - q->rx_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0) {
        qtest_fail(q, "qtest: read failed: %s", strerror(errno));
        return -1;
    }
    if (n == 0) {
        qtest_fail(q, "qtest: %s", "QEMU closed the connection (exited?)");
        return -1;
    }
    q->rx_len += (size_t)n;
    return 1;
}

/* Consumes every complete IRQ line already received, without blocking. */
static void qtest_drain_async(sim_qtest *q)
{
    char line[128];
    if (q->dead)
        return;
    /* Only IRQ lines can be pending when no command is outstanding. Pop before each
     * refill so a burst of lines never overflows rx. */
    do {
        while (qtest_pop_line(q, line, sizeof(line)))
            qtest_take_irq_line(q, line);
    } while (qtest_fill(q, -1) > 0);
}

static void qtest_set_err(char *err, size_t err_len, const char *msg)
{
    if (err && err_len)
        snprintf(err, err_len, "%s", msg);
}

int sim_qtest_cmd_locked(sim_qtest *q, const char *cmd, uint64_t *value, char *err,
                         size_t err_len)
{
    char line[512];
    if (q->dead) {
        qtest_set_err(err, err_len, q->error);
        return -1;
    }
    int len = snprintf(line, sizeof(line), "%s\n", cmd);
    if (len <= 0 || (size_t)len >= sizeof(line)) {
        qtest_set_err(err, err_len, "qtest: command too long");
        return -1;
    }
    size_t sent = 0;
    while (sent < (size_t)len) {
        /* MSG_NOSIGNAL: a dead QEMU must give EPIPE, not kill the simulator. */
        ssize_t n = send(q->fd, line + sent, (size_t)len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            qtest_fail(q, "qtest: write failed: %s (QEMU exited?)", strerror(errno));
            qtest_set_err(err, err_len, q->error);
            return -1;
        }
        sent += (size_t)n;
    }
    int64_t deadline = qtest_now_ms() + q->timeout_ms;
    for (;;) {
        while (qtest_pop_line(q, line, sizeof(line))) {
            if (qtest_take_irq_line(q, line))
                continue;
            q->round_trips++;
            if (strcmp(line, "OK") == 0 || strncmp(line, "OK ", 3) == 0) {
                if (value)
                    *value = line[2] ? strtoull(line + 3, NULL, 16) : 0;
                return 0;
            }
            /* FAIL/ERR: the stream is still in step, only this command failed. */
            if (err && err_len)
                snprintf(err, err_len, "qtest: '%s' answered '%s'", cmd, line);
            return -1;
        }
        int64_t left = deadline - qtest_now_ms();
        if (left <= 0) {
            qtest_fail(q, "qtest: no reply to '%s' within the timeout (QEMU hung?)", cmd);
            qtest_set_err(err, err_len, q->error);
            return -1;
        }
        if (qtest_fill(q, (int)left) < 0) {
            qtest_set_err(err, err_len, q->error);
            return -1;
        }
    }
}

int sim_qtest_cmd(sim_qtest *q, const char *cmd, uint64_t *value, char *err, size_t err_len)
{
    sim_qtest_lock(q);
    int rc = sim_qtest_cmd_locked(q, cmd, value, err, err_len);
    sim_qtest_unlock(q);
    return rc;
}

bool sim_qtest_irq_level(sim_qtest *q, unsigned pin)
{
    if (pin >= SIM_QTEST_MAX_PINS)
        return false;
    if (pthread_mutex_trylock(&q->lock) == 0) {
        qtest_drain_async(q);
        pthread_mutex_unlock(&q->lock);
    }
    return (__atomic_load_n(&q->irq_levels, __ATOMIC_SEQ_CST) >> pin) & 1;
}
