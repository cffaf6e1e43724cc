/*
 * QEMU backend of sim_dev: QEMU's real virtio-blk-pci device model, reached through
 * the qtest protocol (PCI config, MMIO, intercepted INTx) and a QMP monitor, with
 * guest RAM shared as a memory-backend-file that this process mmaps.
 *
 * QEMU facts this file relies on are verified in docs/qemu-backend.md and by
 * tests/unit/test_qemu_backend.c. The important ones:
 *  - Debian's QEMU has no "qtest" accelerator: -qtest runs next to TCG, so the vCPU
 *    would execute SeaBIOS, which reassigns BARs and drives (resets) the virtio device.
 *    -S keeps the vCPU stopped; the device models and the block layer still run.
 *  - On q35, INTA# of 00:04.0 reaches the IOAPIC on input 20 (PIRQE).
 *  - Guest RAM (<= 2 GiB on q35) is contiguous from guest-physical 0, so guest address
 *    X is byte X of the memory-backend file.
 *
 * Teardown on every exit path: once QEMU is up, its RAM file, sockets and log are
 * unlinked and the temp dir removed, so nothing can be left on disk even by SIGKILL;
 * QEMU itself runs with PR_SET_PDEATHSIG(SIGKILL). destroy(), an atexit handler and
 * fatal-signal handlers kill any live QEMU and remove files of instances still starting.
 *
 * The files: qemu_backend.c (this one: helpers, QEMU's command line, startup:
 * sim_qemu_create), qemu_backend_proc.c (instance registry, signal/atexit cleanup,
 * stopping QEMU, teardown), qemu_backend_ops.c (the sim_dev ops, the blocking reset,
 * counters); shared declarations in qemu_backend_int.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qemu_backend_int.h"

static const char *const qemu_file_names[QEMU_FILE_COUNT] = {
    "qtest.sock", "qmp.sock", "ram", "qemu.log"
};

static pthread_once_t qemu_handlers_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------ helpers */

int64_t qemu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qemu_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Appends s to a QEMU option value, doubling commas (QEMU's escape for ','). */
static void append_escaped(char *out, size_t out_len, const char *s)
{
    size_t n = strlen(out);
    for (; *s && n + 2 < out_len; s++) {
        out[n++] = *s;
        if (*s == ',')
            out[n++] = ',';
    }
    out[n] = '\0';
}

/* Finds QEMU: $AEROVBLK_QEMU if set, else qemu-system-x86_64 on PATH. */
static int qemu_find_binary(char *out, size_t out_len, char *err, size_t err_len)
{
    const char *override = getenv("AEROVBLK_QEMU");
    if (override && *override) {
        if (access(override, X_OK) != 0) {
            set_err(err, err_len, "QEMU binary %s (from AEROVBLK_QEMU) is not executable: %s",
                    override, strerror(errno));
            return -1;
        }
        snprintf(out, out_len, "%s", override);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/bin:/bin";
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && len + sizeof(QEMU_BINARY) + 1 < out_len) {
            snprintf(out, out_len, "%.*s/%s", (int)len, p, QEMU_BINARY);
            if (access(out, X_OK) == 0)
                return 0;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    set_err(err, err_len,
            QEMU_BINARY " not found on PATH; install it with: apt-get install "
            QEMU_APT_PACKAGE " (or set AEROVBLK_QEMU to the binary)");
    return -1;
}

/* Reply timeout: AEROVBLK_QEMU_TIMEOUT_MS (100..600000) or the default. */
static int qemu_reply_timeout_ms(void)
{
    const char *s = getenv("AEROVBLK_QEMU_TIMEOUT_MS");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v >= 100 && v <= 600000 ? (int)v : QEMU_REPLY_TIMEOUT_MS;
}

/* Creates the disk image sparse if it does not exist. */
static int qemu_prepare_disk(const sim_dev_config *cfg, char *err, size_t err_len)
{
    struct stat st;
    if (stat(cfg->disk_path, &st) == 0)
        return 0;
    if (errno != ENOENT) {
        set_err(err, err_len, "disk image %s: %s", cfg->disk_path, strerror(errno));
        return -1;
    }
    if (cfg->disk_size == 0) {
        set_err(err, err_len, "disk image %s does not exist and no size was given",
                cfg->disk_path);
        return -1;
    }
    int fd = open(cfg->disk_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_err(err, err_len, "cannot create disk image %s: %s", cfg->disk_path,
                strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)cfg->disk_size) != 0) {
        set_err(err, err_len, "cannot size disk image %s to %" PRIu64 " bytes: %s",
                cfg->disk_path, cfg->disk_size, strerror(errno));
        close(fd);
        unlink(cfg->disk_path);
        return -1;
    }
    close(fd);
    return 0;
}

/* Last lines of QEMU's stderr (the log file), for error messages. */
static void qemu_stderr_tail(int log_fd, char *out, size_t out_len)
{
    out[0] = '\0';
    if (log_fd < 0 || out_len < 2)
        return;
    off_t size = lseek(log_fd, 0, SEEK_END);
    if (size <= 0) {
        snprintf(out, out_len, "(QEMU printed nothing)");
        return;
    }
    size_t want = out_len - 1;
    off_t start = size > (off_t)want ? size - (off_t)want : 0;
    ssize_t n = pread(log_fd, out, (size_t)(size - start), start);
    if (n < 0)
        n = 0;
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
}

/* Builds QEMU's argv into argv/storage. Returns argc, or -1 if a string overflowed. */
#define QEMU_MAX_ARGS 40
#define QEMU_ARG_STORAGE 4096
static int qemu_build_argv(const struct qemu_slot *s, const char *binary,
                           const sim_dev_config *cfg, uint64_t ram_mib,
                           char *argv[QEMU_MAX_ARGS], char *storage)
{
    size_t used = 0;
    int argc = 0;
    char tmp[1536];
#define ARG(...)                                                                       \
    do {                                                                               \
        int n_ = snprintf(storage + used, QEMU_ARG_STORAGE - used, __VA_ARGS__);       \
        if (n_ < 0 || (size_t)n_ >= QEMU_ARG_STORAGE - used || argc >= QEMU_MAX_ARGS - 1) \
            return -1;                                                                 \
        argv[argc++] = storage + used;                                                 \
        used += (size_t)n_ + 1;                                                        \
    } while (0)
    ARG("%s", binary);
    ARG("-machine");
    ARG("q35,memory-backend=m");
    /* No qtest accelerator in Debian's build: keep TCG's vCPU stopped (-S) so SeaBIOS
     * never runs; tb-size keeps the unused translation buffer small. */
    ARG("-accel");
    ARG("tcg,tb-size=16");
    ARG("-S");
    ARG("-object");
    tmp[0] = '\0';
    append_escaped(tmp, sizeof(tmp), s->files[QEMU_FILE_RAM]);
    ARG("memory-backend-file,id=m,size=%" PRIu64 "M,mem-path=%s,share=on", ram_mib, tmp);
    ARG("-m");
    ARG("%" PRIu64 "M", ram_mib);
    ARG("-qtest");
    ARG("unix:%s", s->files[QEMU_FILE_QTEST]);
    ARG("-qtest-log");
    ARG("/dev/null");
    ARG("-qmp");
    ARG("unix:%s,server=on,wait=off", s->files[QEMU_FILE_QMP]);
    ARG("-display");
    ARG("none");
    ARG("-nodefaults");
    ARG("-drive");
    tmp[0] = '\0';
    append_escaped(tmp, sizeof(tmp), cfg->disk_path);
    ARG("if=none,id=d0,file=%s,format=raw%s%s", tmp,
        cfg->drive_opts && *cfg->drive_opts ? "," : "",
        cfg->drive_opts ? cfg->drive_opts : "");
    ARG("-device");
    ARG("virtio-blk-pci,drive=d0,disable-legacy=on,addr=%02x.0%s%s", QEMU_PCI_SLOT,
        cfg->device_opts && *cfg->device_opts ? "," : "",
        cfg->device_opts ? cfg->device_opts : "");
#undef ARG
    argv[argc] = NULL;
    return argc;
}

/* ------------------------------------------------------------------ startup */

/* Accepts QEMU's qtest connection, watching for an early exit. Returns fd or -1. */
static int qemu_accept(qemu_dev *qd, int listen_fd, char *err, size_t err_len)
{
    int64_t deadline = qemu_now_ms() + QEMU_START_TIMEOUT_MS;
    for (;;) {
        struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
        int pr = poll(&pfd, 1, 100);
        if (pr > 0) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                return fd;
        }
        int status = 0;
        if (qemu_wait_exit(qd->pid, 0, &status)) {
            char tail[1024];
            qemu_stderr_tail(qd->log_fd, tail, sizeof(tail));
            set_err(err, err_len, "QEMU exited during startup (status %d): %s", status, tail);
            return -1;
        }
        if (qemu_now_ms() >= deadline) {
            set_err(err, err_len, "QEMU did not connect to the qtest socket within %d s",
                    QEMU_START_TIMEOUT_MS / 1000);
            return -1;
        }
    }
}

/* After a failed first exchange: prefer QEMU's own explanation if it exited. */
static void qemu_explain_failure(qemu_dev *qd, const char *what, const char *detail,
                                 char *err, size_t err_len)
{
    int status = 0;
    char tail[1024];
    if (qemu_wait_exit(qd->pid, 3000, &status)) {
        qemu_stderr_tail(qd->log_fd, tail, sizeof(tail));
        set_err(err, err_len, "QEMU failed to start (exit status %d): %s", status, tail);
    } else {
        qemu_stderr_tail(qd->log_fd, tail, sizeof(tail));
        set_err(err, err_len, "%s: %s; QEMU stderr: %s", what, detail, tail);
    }
}

sim_dev *sim_qemu_create(const sim_dev_config *cfg, char *err, size_t err_len)
{
    char binary[PATH_MAX];
    char msg[512];
    if (err && err_len) err[0] = '\0';     /* no error (yet) */
    if (!cfg || !cfg->disk_path || !*cfg->disk_path) {
        set_err(err, err_len, "QEMU backend: no disk image path given");
        return NULL;
    }
    uint64_t ram_size = cfg->ram_size ? cfg->ram_size : QEMU_RAM_DEFAULT;
    if (ram_size < QEMU_RAM_MIN || ram_size > QEMU_RAM_MAX || (ram_size & ((1u << 20) - 1))) {
        set_err(err, err_len,
                "QEMU backend: guest RAM size %" PRIu64 " must be a multiple of 1 MiB "
                "between 16 MiB and 2 GiB", ram_size);
        return NULL;
    }
    if (qemu_find_binary(binary, sizeof(binary), err, err_len) != 0)
        return NULL;
    if (qemu_prepare_disk(cfg, err, err_len) != 0)
        return NULL;

    pthread_once(&qemu_handlers_once, qemu_install_handlers);
    qemu_dev *qd = calloc(1, sizeof(*qd));
    if (!qd) {
        set_err(err, err_len, "QEMU backend: out of memory");
        return NULL;
    }
    qd->log_fd = -1;
    qd->verbose = cfg->verbose;
    qd->slot = qemu_slot_alloc();
    if (qd->slot < 0) {
        set_err(err, err_len, "QEMU backend: more than %d instances", QEMU_MAX_INSTANCES);
        free(qd);
        return NULL;
    }
    struct qemu_slot *s = &qemu_slots[qd->slot];

    /* Private temp dir; socket paths must fit sockaddr_un. */
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    int n = snprintf(s->dir, sizeof(s->dir), "%s/aerovblk-qemu-XXXXXX", tmpdir);
    if (n < 0 || (size_t)n + 1 + sizeof("qtest.sock") > sizeof(s->dir)) {
        set_err(err, err_len, "QEMU backend: TMPDIR %s is too long for a unix socket path",
                tmpdir);
        qemu_slot_release(qd->slot);
        free(qd);
        return NULL;
    }
    if (!mkdtemp(s->dir)) {
        set_err(err, err_len, "QEMU backend: cannot create a temp dir in %s: %s", tmpdir,
                strerror(errno));
        qemu_slot_release(qd->slot);
        free(qd);
        return NULL;
    }
    char dir[QEMU_PATH_LEN];
    memcpy(dir, s->dir, sizeof(dir));
    for (int i = 0; i < QEMU_FILE_COUNT; i++)
        if (snprintf(s->files[i], sizeof(s->files[i]), "%s/%s", dir, qemu_file_names[i]) >=
            (int)sizeof(s->files[i]))
            abort();   /* excluded by the length check above */
    s->files_live = 1;
    qemu_slot_publish(qd->slot);

    int listen_fd = -1;
    /* Shared guest RAM: QEMU maps the same file, so guest-physical X is ram[X]. */
    int ram_fd = open(s->files[QEMU_FILE_RAM], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (ram_fd < 0 || ftruncate(ram_fd, (off_t)ram_size) != 0) {
        set_err(err, err_len, "QEMU backend: cannot create guest RAM file %s: %s",
                s->files[QEMU_FILE_RAM], strerror(errno));
        if (ram_fd >= 0)
            close(ram_fd);
        goto fail;
    }
    void *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    close(ram_fd);
    if (ram == MAP_FAILED) {
        set_err(err, err_len, "QEMU backend: mmap of guest RAM failed: %s", strerror(errno));
        goto fail;
    }
    qd->pub.ram = ram;
    qd->pub.ram_size = ram_size;

    qd->log_fd = open(s->files[QEMU_FILE_LOG], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (qd->log_fd < 0) {
        set_err(err, err_len, "QEMU backend: cannot create %s: %s", s->files[QEMU_FILE_LOG],
                strerror(errno));
        goto fail;
    }

    /* We listen, QEMU connects (-qtest unix:PATH is a client socket). */
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->files[QEMU_FILE_QTEST]);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(listen_fd, 1) != 0) {
        set_err(err, err_len, "QEMU backend: cannot listen on %s: %s",
                s->files[QEMU_FILE_QTEST], strerror(errno));
        goto fail;
    }

    char *argv[QEMU_MAX_ARGS];
    char *storage = malloc(QEMU_ARG_STORAGE);
    if (!storage || qemu_build_argv(s, binary, cfg, ram_size >> 20, argv, storage) < 0) {
        set_err(err, err_len, "QEMU backend: command line too long (options/paths)");
        free(storage);
        goto fail;
    }
    if (cfg->verbose) {
        fprintf(stderr, "aerovblk-sim: starting");
        for (int i = 0; argv[i]; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        qemu_child_exec(binary, argv, qd->log_fd, parent);
    free(storage);
    if (pid < 0) {
        set_err(err, err_len, "QEMU backend: fork failed: %s", strerror(errno));
        goto fail;
    }
    qd->pid = pid;
    s->pid = pid;

    int qt_fd = qemu_accept(qd, listen_fd, err, err_len);
    close(listen_fd);
    listen_fd = -1;
    if (qt_fd < 0)
        goto fail;
    /* QEMU creates the device after connecting qtest and answers once its main loop
     * runs, so the first reply doubles as "device creation succeeded". */
    sim_qtest_init(&qd->qt, qt_fd, QEMU_START_TIMEOUT_MS);
    qd->qt_open = true;
    if (sim_qtest_cmd(&qd->qt, "irq_intercept_in ioapic", NULL, msg, sizeof(msg)) != 0) {
        qemu_explain_failure(qd, "qtest irq_intercept_in ioapic failed", msg, err, err_len);
        goto fail;
    }
    qd->qt.timeout_ms = qemu_reply_timeout_ms();
    qd->pub.ops = &qemu_ops;
    uint32_t id = qemu_cfg_read(&qd->pub, 0, 4);
    if ((id & 0xFFFF) != 0x1AF4) {
        set_err(err, err_len,
                "QEMU backend: no virtio device at 00:%02x.0 (vendor/device 0x%08" PRIx32
                "); check --device-opts", QEMU_PCI_SLOT, id);
        goto fail;
    }
    if (sim_qmp_connect(&qd->qmp, s->files[QEMU_FILE_QMP], qemu_reply_timeout_ms(), msg,
                        sizeof(msg)) != 0) {
        sim_qmp_close(&qd->qmp);
        qemu_explain_failure(qd, "QMP connection failed", msg, err, err_len);
        goto fail;
    }
    qd->qmp_open = true;

    /* QEMU holds the RAM file mapped and both sockets connected: drop every name now,
     * so no exit path (even SIGKILL of the simulator) can leave files behind. */
    qemu_slot_unlink_files(s);

    qd->pub.ram_base_free = QEMU_RAM_BASE_FREE;
    qd->pub.mmio_window_base = QEMU_MMIO_WINDOW_BASE;
    snprintf(qd->pub.name, sizeof(qd->pub.name), "qemu");
    if (cfg->verbose)
        fprintf(stderr, "aerovblk-sim: QEMU pid %d up, device %04" PRIx32 ":%04" PRIx32 "\n",
                (int)qd->pid, id & 0xFFFF, id >> 16);
    return &qd->pub;

fail:
    if (listen_fd >= 0)
        close(listen_fd);
    qemu_teardown(qd);
    return NULL;
}
