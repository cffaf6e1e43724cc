/*
 * QEMU backend: the QEMU process. A registry of live instances (read lock-free by the
 * signal handlers), the atexit and fatal-signal cleanup that kills QEMU and removes its
 * files on every exit path (sim_qemu_emergency_cleanup for a simulator with its own
 * SIGINT logic), waiting for and stopping QEMU, teardown of an instance, and the child
 * side of fork(). Called by startup (qemu_backend.c) and destroy (qemu_backend_ops.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu_backend_int.h"

struct qemu_slot qemu_slots[QEMU_MAX_INSTANCES];
static pthread_mutex_t qemu_slots_lock = PTHREAD_MUTEX_INITIALIZER;

static struct sigaction qemu_old_actions[NSIG];

/* ------------------------------------------------- registry, signals, atexit */

void qemu_slot_unlink_files(struct qemu_slot *s)
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
void qemu_install_handlers(void)
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

int qemu_slot_alloc(void)
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

void qemu_slot_publish(int i)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    qemu_slots[i].used = 1;
}

void qemu_slot_release(int i)
{
    pthread_mutex_lock(&qemu_slots_lock);
    qemu_slots[i].used = 0;
    pthread_mutex_unlock(&qemu_slots_lock);
}

/* ------------------------------------------------------------- process control */

/* Waits up to timeout_ms for pid to exit, without reaping it. true if exited. */
bool qemu_wait_exit(pid_t pid, int timeout_ms, int *status)
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
void qemu_teardown(qemu_dev *qd)
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
void qemu_child_exec(const char *binary, char *const argv[], int log_fd,
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
