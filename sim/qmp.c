/*
 * QMP client; see qmp.h.
 */
#define _GNU_SOURCE
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SIM_QMP_RX_MAX (256 * 1024)

static int64_t qmp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void qmp_fail(sim_qmp *m, const char *what, const char *detail)
{
    if (!m->dead)
        snprintf(m->error, sizeof(m->error), "qmp: %s%s%s", what, detail ? ": " : "",
                 detail ? detail : "");
    m->dead = true;
}

/* Skips one JSON string starting at *p == '"'; returns the char after it or NULL. */
static const char *qmp_skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

bool sim_qmp_has_top_key(const char *json, const char *key)
{
    size_t key_len = strlen(key);
    const char *p = json;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p++ != '{')
        return false;
    int depth = 1;
    bool expect_key = true;
    while (*p && depth > 0) {
        char c = *p;
        if (c == '"') {
            const char *end = qmp_skip_string(p);
            if (!end)
                return false;
            if (depth == 1 && expect_key) {
                if ((size_t)(end - p - 2) == key_len && memcmp(p + 1, key, key_len) == 0)
                    return true;
                expect_key = false;
            }
            p = end;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        else if (c == ',' && depth == 1)
            expect_key = true;
        p++;
    }
    return false;
}

/* Reads the next line into line (truncated to line_len) before deadline. 0 / -1. */
static int qmp_read_line(sim_qmp *m, char *line, size_t line_len, int64_t deadline)
{
    for (;;) {
        char *nl = memchr(m->rx, '\n', m->rx_len);
        if (nl) {
            size_t n = (size_t)(nl - m->rx);
            size_t copy = n < line_len - 1 ? n : line_len - 1;
            memcpy(line, m->rx, copy);
            line[copy] = '\0';
            memmove(m->rx, nl + 1, m->rx_len - n - 1);
            m->rx_len -= n + 1;
            return 0;
        }
        if (m->rx_len == SIM_QMP_RX_MAX) {
            qmp_fail(m, "reply line longer than the receive buffer", NULL);
            return -1;
        }
        int64_t left = deadline - qmp_now_ms();
        if (left <= 0) {
            qmp_fail(m, "no reply within the timeout", NULL);
            return -1;
        }
        struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno != EINTR) {
            qmp_fail(m, "poll failed", strerror(errno));
            return -1;
        }
        if (pr <= 0)
            continue;
        ssize_t n = recv(m->fd, m->rx + m->rx_len, SIM_QMP_RX_MAX - m->rx_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            qmp_fail(m, n == 0 ? "QEMU closed the monitor connection" : "read failed",
                     n == 0 ? NULL : strerror(errno));
            return -1;
        }
        m->rx_len += (size_t)n;
    }
}

static int qmp_send_all(sim_qmp *m, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(m->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            qmp_fail(m, "write failed", strerror(errno));
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends json and returns the reply line in reply; events are skipped. Lock held. */
static int qmp_exchange(sim_qmp *m, const char *json, char *reply, size_t reply_len)
{
    if (m->dead) {
        snprintf(reply, reply_len, "%s", m->error);
        return -1;
    }
    if (qmp_send_all(m, json, strlen(json)) < 0 || qmp_send_all(m, "\n", 1) < 0) {
        snprintf(reply, reply_len, "%s", m->error);
        return -1;
    }
    m->commands++;
    int64_t deadline = qmp_now_ms() + m->timeout_ms;
    for (;;) {
        if (qmp_read_line(m, reply, reply_len, deadline) < 0) {
            snprintf(reply, reply_len, "%s", m->error);
            return -1;
        }
        if (sim_qmp_has_top_key(reply, "return"))
            return 0;
        if (sim_qmp_has_top_key(reply, "error"))
            return -1;
        m->events_skipped++;   /* "event" (or anything else asynchronous) */
    }
}

int sim_qmp_connect(sim_qmp *m, const char *path, int timeout_ms, char *err, size_t err_len)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    m->timeout_ms = timeout_ms;
    pthread_mutex_init(&m->lock, NULL);
    m->rx = malloc(SIM_QMP_RX_MAX);
    if (!m->rx) {
        snprintf(err, err_len, "qmp: out of memory");
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_len, "qmp: socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int64_t deadline = qmp_now_ms() + timeout_ms;
    for (;;) {
        m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (m->fd < 0) {
            snprintf(err, err_len, "qmp: socket: %s", strerror(errno));
            return -1;
        }
        if (connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        int e = errno;
        close(m->fd);
        m->fd = -1;
        if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || qmp_now_ms() >= deadline) {
            snprintf(err, err_len, "qmp: cannot connect to %s: %s", path, strerror(e));
            return -1;
        }
        usleep(20 * 1000);
    }
    char line[1024];
    if (qmp_read_line(m, line, sizeof(line), qmp_now_ms() + timeout_ms) < 0 ||
        !sim_qmp_has_top_key(line, "QMP")) {
        snprintf(err, err_len, "qmp: no greeting (%s)", m->dead ? m->error : line);
        return -1;
    }
    if (qmp_exchange(m, "{\"execute\":\"qmp_capabilities\"}", line, sizeof(line)) != 0) {
        snprintf(err, err_len, "qmp: qmp_capabilities failed: %s", line);
        return -1;
    }
    return 0;
}

void sim_qmp_close(sim_qmp *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->dead = true;
    free(m->rx);
    m->rx = NULL;
    pthread_mutex_destroy(&m->lock);
}

int sim_qmp_command(sim_qmp *m, const char *json, char *reply, size_t reply_len)
{
    char scratch[256];
    if (!reply || reply_len == 0) {
        reply = scratch;
        reply_len = sizeof(scratch);
    }
    if (!json || strchr(json, '\n')) {
        /* One command per line keeps replies in step with requests. */
        snprintf(reply, reply_len, "qmp: command must be one line of JSON");
        return -1;
    }
    pthread_mutex_lock(&m->lock);
    int rc = qmp_exchange(m, json, reply, reply_len);
    pthread_mutex_unlock(&m->lock);
    return rc;
}
