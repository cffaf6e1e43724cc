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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "qtest.h"
#include "simdev.h"

#define QEMU_BINARY            "qemu-system-x86_64"
#define QEMU_APT_PACKAGE       "qemu-system-x86"
#define QEMU_PCI_SLOT          4u          /* -device ...,addr=04.0 */
#define QEMU_INTX_IOAPIC_PIN   20u         /* q35: slot 4 INTA# -> PIRQE -> GSI 20 */
#define QEMU_RAM_DEFAULT       (256ull << 20)
#define QEMU_RAM_MIN           (16ull << 20)
#define QEMU_RAM_MAX           (2048ull << 20)  /* q35 keeps up to 2 GiB below 4 GiB */
/* Below 1 MiB q35 overlays RAM with the BIOS ROM alias and SMRAM/VGA windows. */
#define QEMU_RAM_BASE_FREE     (1ull << 20)
/* In the 32-bit PCI hole: above RAM (<= 2 GiB), below the IOAPIC at 0xFEC00000. */
#define QEMU_MMIO_WINDOW_BASE  0xE0000000ull
#define QEMU_START_TIMEOUT_MS  30000
#define QEMU_REPLY_TIMEOUT_MS  15000
#define QEMU_TERM_TIMEOUT_MS   5000
#define QEMU_KILL_TIMEOUT_MS   5000
#define QEMU_MAX_INSTANCES     16
#define QEMU_PATH_LEN          108         /* sockaddr_un.sun_path */

enum { QEMU_FILE_QTEST, QEMU_FILE_QMP, QEMU_FILE_RAM, QEMU_FILE_LOG, QEMU_FILE_COUNT };
static const char *const qemu_file_names[QEMU_FILE_COUNT] = {
    "qtest.sock", "qmp.sock", "ram", "qemu.log"
};

/*
 * Registry read by the signal handlers without locks: a slot is published by setting
 * used last and retired by clearing used first; paths are fixed arrays written while
 * the slot is unpublished or files_live is 0.
 */
struct qemu_slot {
    volatile sig_atomic_t used;
    volatile pid_t owner;        /* process that created it: a fork()ed copy must not act */
    volatile sig_atomic_t files_live;
    volatile pid_t pid;
    char dir[QEMU_PATH_LEN];
    char files[QEMU_FILE_COUNT][QEMU_PATH_LEN];
};
static struct qemu_slot qemu_slots[QEMU_MAX_INSTANCES];
static pthread_mutex_t qemu_slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t qemu_handlers_once = PTHREAD_ONCE_INIT;
static struct sigaction qemu_old_actions[NSIG];

typedef struct qemu_dev {
    sim_dev pub;                 /* first: sim_dev* <-> qemu_dev* */
    int slot;
    pid_t pid;
    int log_fd;
    sim_qtest qt;
    bool qt_open;
    sim_qmp qmp;
    bool qmp_open;
    uint32_t cf8;                /* last value written to 0xCF8 (no CPU changes it) */
    bool cf8_valid;
    bool dead_reported;
    bool verbose;
    /* Counters only: BAR 4 as last written (QEMU's modern virtio-pci BAR) and the
     * qtest-level writes that reach QEMU's notify region in it. QEMU's own layout
     * (hw/virtio/virtio-pci.c: notify at 0x3000, 4 bytes per queue, VIRTIO_QUEUE_MAX
     * queues), not the core's capability parsing: an independent doorbell count. */
    uint32_t bar4_lo, bar4_hi;
    uint64_t notify_writes;
    /* Blocking reset (issue 11 item 7): queue 0's driver/device areas as the driver
     * wrote them into the common configuration (QEMU's layout: BAR 4 + 0). */
    uint16_t snoop_qsel;
    uint64_t snoop_avail, snoop_used;
} qemu_dev;

static const struct sim_dev_ops qemu_ops;

/* ------------------------------------------------------------------ helpers */

static int64_t qemu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void qemu_sleep_ms(int ms)
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

/* ------------------------------------------------- registry, signals, atexit */

static void qemu_slot_unlink_files(struct qemu_slot *s)
{
    if (!s->files_live)
        return;
    for (int i = 0; i < QEMU_FILE_COUNT; i++)
        unlink(s->files[i]);
    rmdir(s->dir);
    s->files_live = 0;
}

void sim_qemu_emergency_cleanup(void)
{
    /* Async-signal-safe: only getpid(), kill(), unlink(), rmdir(), loads and stores. */
    pid_t self = getpid();
    for (int i = 0; i < QEMU_MAX_INSTANCES; i++) {
        struct qemu_slot *s = &qemu_slots[i];
        if (!s->used || s->owner != self)
            continue;
        pid_t pid = s->pid;
        if (pid > 0)
            kill(pid, SIGKILL);
        qemu_slot_unlink_files(s);
    }
}

static bool qemu_is_fault_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
           sig == SIGABRT;
}

static void qemu_signal_handler(int sig, siginfo_t *info, void *ctx)
{
    sim_qemu_emergency_cleanup();
    const struct sigaction *old = &qemu_old_actions[sig];
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, ctx);   /* e.g. ASan's SEGV reporter */
        return;
    }
    if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL &&
        old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* Default action: restore it and let the signal take the process down. A kernel-
     * generated fault re-executes the faulting instruction on return; anything else is
     * re-raised (blocked until this handler returns). */
    sigaction(sig, old, NULL);
    if (qemu_is_fault_signal(sig) && info && info->si_code > 0 && sig != SIGABRT)
        return;
    raise(sig);
}

static void qemu_atexit(void)
{
    pid_t self = getpid();
    for (int i = 0; i < QEMU_MAX_INSTANCES; i++) {
        struct qemu_slot *s = &qemu_slots[i];
        if (!s->used || s->owner != self)
            continue;
        pid_t pid = s->pid;
        if (pid > 0) {
            kill(pid, SIGKILL);
            int64_t deadline = qemu_now_ms() + QEMU_KILL_TIMEOUT_MS;
            while (waitpid(pid, NULL, WNOHANG) == 0 && qemu_now_ms() < deadline)
                qemu_sleep_ms(10);
            s->pid = 0;
        }
        qemu_slot_unlink_files(s);
    }
}

/*
 * Termination signals get a handler only if nobody else handles them (a simulator with
 * its own SIGINT logic calls sim_qemu_emergency_cleanup itself); fault signals are
 * always chained, in front of ASan's reporter if present.
 */
static void qemu_install_handlers(void)
{
    static const int term_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = qemu_signal_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++) {
        int sig = term_signals[i];
        if (sigaction(sig, NULL, &qemu_old_actions[sig]) == 0 &&
            !(qemu_old_actions[sig].sa_flags & SA_SIGINFO) &&
            qemu_old_actions[sig].sa_handler == SIG_DFL)
            sigaction(sig, &sa, NULL);
    }
    for (size_t i = 0; i < sizeof(fault_signals) / sizeof(fault_signals[0]); i++) {
        int sig = fault_signals[i];
        if (sigaction(sig, NULL, &qemu_old_actions[sig]) == 0)
            sigaction(sig, &sa, NULL);
    }
    atexit(qemu_atexit);
}

static int qemu_slot_alloc(void)
{
    pthread_mutex_lock(&qemu_slots_lock);
    int found = -1;
    for (int i = 0; i < QEMU_MAX_INSTANCES && found < 0; i++) {
        if (!qemu_slots[i].used) {
            memset((void *)&qemu_slots[i], 0, sizeof(qemu_slots[i]));
            qemu_slots[i].owner = getpid();
            found = i;
        }
    }
    pthread_mutex_unlock(&qemu_slots_lock);
    return found;
}

static void qemu_slot_publish(int i)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    qemu_slots[i].used = 1;
}

static void qemu_slot_release(int i)
{
    pthread_mutex_lock(&qemu_slots_lock);
    qemu_slots[i].used = 0;
    pthread_mutex_unlock(&qemu_slots_lock);
}

/* ------------------------------------------------------------- process control */

/* Waits up to timeout_ms for pid to exit, without reaping it. true if exited. */
static bool qemu_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = qemu_now_ms() + timeout_ms;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (rc < 0 && errno == ECHILD)
            return true;   /* reaped by someone else (SIGCHLD ignored) */
        if (rc == 0 && si.si_pid == pid) {
            if (status)
                *status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
            return true;
        }
        if (qemu_now_ms() >= deadline)
            return false;
        qemu_sleep_ms(10);
    }
}

/* Retires the pid from the registry before reaping, so a signal handler can never
 * kill a recycled pid. */
static void qemu_reap(qemu_dev *qd)
{
    qemu_slots[qd->slot].pid = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    waitpid(qd->pid, NULL, WNOHANG);
    qd->pid = 0;
}

static void qemu_stop_process(qemu_dev *qd)
{
    if (qd->pid <= 0)
        return;
    if (!qemu_wait_exit(qd->pid, 0, NULL)) {
        kill(qd->pid, SIGTERM);
        kill(qd->pid, SIGCONT);   /* a stopped QEMU would not act on SIGTERM */
        if (!qemu_wait_exit(qd->pid, QEMU_TERM_TIMEOUT_MS, NULL)) {
            kill(qd->pid, SIGKILL);
            if (!qemu_wait_exit(qd->pid, QEMU_KILL_TIMEOUT_MS, NULL)) {
                fprintf(stderr, "aerovblk-sim: qemu: pid %d did not die after SIGKILL\n",
                        (int)qd->pid);
                qemu_slots[qd->slot].pid = 0;
                qd->pid = 0;
                return;
            }
        }
    }
    qemu_reap(qd);
}

/* Everything create() may have set up, in reverse; safe on partial state. */
static void qemu_teardown(qemu_dev *qd)
{
    if (qd->qmp_open)
        sim_qmp_close(&qd->qmp);
    qd->qmp_open = false;
    if (qd->qt_open)
        sim_qtest_close(&qd->qt);
    qd->qt_open = false;
    qemu_stop_process(qd);
    if (qd->pub.ram)
        munmap(qd->pub.ram, qd->pub.ram_size);
    qd->pub.ram = NULL;
    if (qd->log_fd >= 0)
        close(qd->log_fd);
    qd->log_fd = -1;
    if (qd->slot >= 0) {
        qemu_slot_unlink_files(&qemu_slots[qd->slot]);
        qemu_slot_release(qd->slot);
    }
    qd->slot = -1;
    free(qd);
}

/* The child side of fork(): only async-signal-safe calls until execv. */
static void qemu_child_exec(const char *binary, char *const argv[], int log_fd,
                            pid_t parent)
{
    /* QEMU dies with the thread that forked it, whatever kills the simulator. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    setpgid(0, 0);   /* terminal ^C goes to the simulator, which then stops QEMU */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    execv(binary, argv);
    static const char msg[] = "aerovblk-sim: execv of QEMU failed\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(127);
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

/* ------------------------------------------------------------------- the ops */

static qemu_dev *to_qd(sim_dev *d) { return (qemu_dev *)d; }

static uint32_t width_mask(unsigned width)
{
    return width >= 4 ? 0xFFFFFFFFu : (1u << (8 * width)) - 1;
}

static bool valid_width(unsigned width) { return width == 1 || width == 2 || width == 4; }

/* A failed qtest command: a broken stream is reported once, single failures always. */
static void qemu_report(qemu_dev *qd, const char *what, const char *detail)
{
    if (qd->qt.dead) {
        if (qd->dead_reported)
            return;
        qd->dead_reported = true;
    }
    fprintf(stderr, "aerovblk-sim: qemu backend: %s: %s\n", what, detail);
}

/* Selects dword `off` of 00:04.0 config space through 0xCF8. Client lock held. */
static int qemu_select_cfg(qemu_dev *qd, unsigned off, char *err, size_t err_len)
{
    uint32_t addr = 0x80000000u | (QEMU_PCI_SLOT << 11) | (off & 0xFCu);
    if (qd->cf8_valid && qd->cf8 == addr)
        return 0;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "outl 0xcf8 0x%" PRIx32, addr);
    qd->cf8_valid = false;
    if (sim_qtest_cmd_locked(&qd->qt, cmd, NULL, err, err_len) != 0)
        return -1;
    qd->cf8 = addr;
    qd->cf8_valid = true;
    return 0;
}

/*
 * Who calls: the simulator core (firmware/bus-driver emulation, StorPort config reads),
 * any thread. Config space is 256 bytes (conventional PCI on the q35 root bus).
 */
static uint32_t qemu_cfg_read(sim_dev *d, unsigned off, unsigned width)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width) || off + width > 256 || (off & (width - 1))) {
        snprintf(err, sizeof(err), "offset 0x%x width %u", off, width);
        qemu_report(qd, "invalid config read", err);
        return width_mask(valid_width(width) ? width : 4);
    }
    uint64_t v = 0;
    sim_qtest_lock(&qd->qt);
    int rc = qemu_select_cfg(qd, off, err, sizeof(err));
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "%s 0x%x", width == 1 ? "inb" : width == 2 ? "inw" : "inl",
                 0xCFCu + (off & 3));
        rc = sim_qtest_cmd_locked(&qd->qt, cmd, &v, err, sizeof(err));
    }
    sim_qtest_unlock(&qd->qt);
    if (rc != 0) {
        qemu_report(qd, "config read failed", err);
        return width_mask(width);   /* what a vanished PCI function returns */
    }
    return (uint32_t)v & width_mask(width);
}

static void qemu_cfg_write(sim_dev *d, unsigned off, unsigned width, uint32_t val)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width) || off + width > 256 || (off & (width - 1))) {
        snprintf(err, sizeof(err), "offset 0x%x width %u", off, width);
        qemu_report(qd, "invalid config write", err);
        return;
    }
    sim_qtest_lock(&qd->qt);
    int rc = qemu_select_cfg(qd, off, err, sizeof(err));
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "%s 0x%x 0x%" PRIx32,
                 width == 1 ? "outb" : width == 2 ? "outw" : "outl", 0xCFCu + (off & 3),
                 val & width_mask(width));
        rc = sim_qtest_cmd_locked(&qd->qt, cmd, NULL, err, sizeof(err));
    }
    if (rc == 0 && width == 4 && off == 0x20) __atomic_store_n(&qd->bar4_lo, val, __ATOMIC_RELAXED);
    if (rc == 0 && width == 4 && off == 0x24) __atomic_store_n(&qd->bar4_hi, val, __ATOMIC_RELAXED);
    sim_qtest_unlock(&qd->qt);
    if (rc != 0)
        qemu_report(qd, "config write failed", err);
}

static uint32_t qemu_mmio_read(sim_dev *d, uint64_t gpa, unsigned width)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[64];
    if (!valid_width(width)) {
        snprintf(err, sizeof(err), "gpa 0x%" PRIx64 " width %u", gpa, width);
        qemu_report(qd, "invalid MMIO read", err);
        return 0xFFFFFFFFu;
    }
    snprintf(cmd, sizeof(cmd), "read%c 0x%" PRIx64, width == 1 ? 'b' : width == 2 ? 'w' : 'l',
             gpa);
    uint64_t v = 0;
    if (sim_qtest_cmd(&qd->qt, cmd, &v, err, sizeof(err)) != 0) {
        qemu_report(qd, "MMIO read failed", err);
        return width_mask(width);
    }
    return (uint32_t)v & width_mask(width);
}

/* QEMU's virtio_blk_reset drains every request inside the status-0 write (blk_drain,
 * hw/block/virtio-blk.c), and that drain also lifts a block_set_io_throttle stall:
 * QEMU disables I/O limits while draining. A hung host backend is not lifted by a
 * reset, so the harsh model holds the write back here until every request the driver
 * made available is used (the stall ends on its own, e.g. a scripted QMP), bounded by
 * 60 s. The writer stays inside the register write meanwhile, as a vCPU would. */
static __thread uint64_t tls_held_ns;     /* this thread's last drain (qemu_held_ns) */

static uint64_t qemu_held_ns(sim_dev *d) { (void)d; return sim_dev_take_held(&tls_held_ns); }

static void qemu_reset_drain(qemu_dev *qd)
{
    uint64_t av = __atomic_load_n(&qd->snoop_avail, __ATOMIC_RELAXED);
    uint64_t us = __atomic_load_n(&qd->snoop_used, __ATOMIC_RELAXED);
    uint8_t *ram = qd->pub.ram;
    if (!ram || !av || !us || av + 4 > qd->pub.ram_size || us + 4 > qd->pub.ram_size)
        return;
    int64_t t0 = qemu_now_ms(), last_probe = t0;
    bool waited = false;
    for (;;) {
        uint16_t a = __atomic_load_n((uint16_t *)(ram + av + 2), __ATOMIC_ACQUIRE);
        uint16_t u = __atomic_load_n((uint16_t *)(ram + us + 2), __ATOMIC_ACQUIRE);
        if (a == u || qd->dead_reported || qemu_now_ms() - t0 > 60000)
            break;
        if (qemu_now_ms() - last_probe >= 100) {       /* QEMU still there? */
            char err[320];
            uint64_t v = 0;
            last_probe = qemu_now_ms();
            if (sim_qtest_cmd(&qd->qt, "readb 0x0", &v, err, sizeof(err)) != 0)
                break;
        }
        waited = true;
        qemu_sleep_ms(1);
    }
    if (waited)
        tls_held_ns = (uint64_t)(qemu_now_ms() - t0) * 1000000ull;
    if (waited)
        fprintf(stderr, "qemu: reset held %lld ms until the device's requests completed (blocking reset)\n",
                (long long)(qemu_now_ms() - t0));
}

/* Queue 0's ring areas as the driver programs them (common cfg: queue_select 0x16,
 * queue_driver 0x28/0x2C, queue_device 0x30/0x34; virtio 4.1.4.3), and the status-0
 * write (0x14). */
static void qemu_snoop_common(qemu_dev *qd, uint64_t off, unsigned width, uint32_t val)
{
    if (off == 0x16 && width == 2) qd->snoop_qsel = (uint16_t)val;
    if (qd->snoop_qsel != 0 || width != 4) return;
    if (off == 0x28) qd->snoop_avail = (qd->snoop_avail & ~0xFFFFFFFFull) | val;
    if (off == 0x2C) qd->snoop_avail = (qd->snoop_avail & 0xFFFFFFFFull) | ((uint64_t)val << 32);
    if (off == 0x30) qd->snoop_used = (qd->snoop_used & ~0xFFFFFFFFull) | val;
    if (off == 0x34) qd->snoop_used = (qd->snoop_used & 0xFFFFFFFFull) | ((uint64_t)val << 32);
}

static void qemu_mmio_write(sim_dev *d, uint64_t gpa, unsigned width, uint32_t val)
{
    qemu_dev *qd = to_qd(d);
    char err[320], cmd[80];
    if (!valid_width(width)) {
        snprintf(err, sizeof(err), "gpa 0x%" PRIx64 " width %u", gpa, width);
        qemu_report(qd, "invalid MMIO write", err);
        return;
    }
    {
        uint64_t b4 = ((uint64_t)__atomic_load_n(&qd->bar4_hi, __ATOMIC_RELAXED) << 32) |
                      (__atomic_load_n(&qd->bar4_lo, __ATOMIC_RELAXED) & ~0xFull);
        if (b4 && gpa >= b4 && gpa < b4 + 0x1000) {
            qemu_snoop_common(qd, gpa - b4, width, val);
            if (gpa - b4 == 0x14 && width == 1 && (val & 0xFF) == 0)
                qemu_reset_drain(qd);
        }
    }
    snprintf(cmd, sizeof(cmd), "write%c 0x%" PRIx64 " 0x%" PRIx32,
             width == 1 ? 'b' : width == 2 ? 'w' : 'l', gpa, val & width_mask(width));
    if (sim_qtest_cmd(&qd->qt, cmd, NULL, err, sizeof(err)) != 0) {
        qemu_report(qd, "MMIO write failed", err);
        return;
    }
    uint64_t bar4 = ((uint64_t)__atomic_load_n(&qd->bar4_hi, __ATOMIC_RELAXED) << 32) |
                    (__atomic_load_n(&qd->bar4_lo, __ATOMIC_RELAXED) & ~0xFull);
    if (bar4 && gpa >= bar4 + 0x3000 && gpa < bar4 + 0x4000)
        __atomic_fetch_add(&qd->notify_writes, 1, __ATOMIC_RELAXED);
}

int sim_qemu_notify_writes(sim_dev *d, uint64_t *out)
{
    if (!d || d->ops != &qemu_ops || !out)
        return -1;
    *out = __atomic_load_n(&to_qd(d)->notify_writes, __ATOMIC_RELAXED);
    return 0;
}

/* Called by the core's interrupt thread, polling; never blocks on a busy client. */
static bool qemu_intx_level(sim_dev *d)
{
    qemu_dev *qd = to_qd(d);
    bool level = sim_qtest_irq_level(&qd->qt, QEMU_INTX_IOAPIC_PIN);
    /* A vanished device drives no line, whatever level was last reported. */
    return level && !__atomic_load_n(&qd->qt.dead, __ATOMIC_SEQ_CST);
}

static int qemu_qmp(sim_dev *d, const char *json, char *reply, size_t reply_len)
{
    qemu_dev *qd = to_qd(d);
    if (!qd->qmp_open) {
        if (reply && reply_len)
            snprintf(reply, reply_len, "qmp: monitor not connected");
        return -1;
    }
    /* Starting the vCPU would run SeaBIOS against the device (see -S above). */
    if (json && strstr(json, "\"cont\"")) {
        if (reply && reply_len)
            snprintf(reply, reply_len,
                     "qmp: 'cont' refused: the vCPU must stay stopped (firmware would run)");
        return -1;
    }
    return sim_qmp_command(&qd->qmp, json, reply, reply_len);
}

static void qemu_destroy(sim_dev *d)
{
    if (d)
        qemu_teardown(to_qd(d));
}

static const struct sim_dev_ops qemu_ops = {
    .cfg_read = qemu_cfg_read,
    .cfg_write = qemu_cfg_write,
    .mmio_read = qemu_mmio_read,
    .mmio_write = qemu_mmio_write,
    .intx_level = qemu_intx_level,
    .qmp = qemu_qmp,
    .control = NULL,
    .destroy = qemu_destroy,
    .held_ns = qemu_held_ns,
};

int sim_qemu_get_stats(sim_dev *d, sim_qemu_stats *out)
{
    if (!d || d->ops != &qemu_ops || !out)
        return -1;
    qemu_dev *qd = to_qd(d);
    memset(out, 0, sizeof(*out));
    sim_qtest_lock(&qd->qt);
    out->qtest_round_trips = qd->qt.round_trips;
    out->qtest_dead = qd->qt.dead;
    sim_qtest_unlock(&qd->qt);
    out->intx_raises = __atomic_load_n(&qd->qt.irq_raises, __ATOMIC_RELAXED);
    pthread_mutex_lock(&qd->qmp.lock);
    out->qmp_commands = qd->qmp.commands;
    pthread_mutex_unlock(&qd->qmp.lock);
    out->qemu_pid = (int)qd->pid;
    return 0;
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
