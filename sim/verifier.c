/*
 * The verifier: Windows rules (facts §6) checked on every StorPort call and at
 * teardown. A violation on real Windows is a bug check or silent corruption; here it
 * is a finding: printed at once with the callback and IRQL it happened in, counted,
 * listed in --json, and it makes the run fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

__thread struct sim_tls sim_tls = { .ctl_type = -1 };
int sim_verbose = 1;

#define MAX_KEPT 256
static pthread_mutex_t vlock = PTHREAD_MUTEX_INITIALIZER;
static unsigned nfindings;
static char *kept[MAX_KEPT];
static unsigned nkept;
static char *logs[MAX_KEPT];
static unsigned nlogs;

const char *sim_irql_name(int irql)
{
    switch (irql) {
    case SIM_IRQL_PASSIVE: return "PASSIVE_LEVEL";
    case 1: return "APC_LEVEL";
    case SIM_IRQL_DISPATCH: return "DISPATCH_LEVEL";
    case SIM_IRQL_DIRQL: return "DIRQL";
    case SIM_IRQL_HIGH: return "HIGH_LEVEL";
    default: return "IRQL?";
    }
}

void sim_finding(const char *kind, const char *fmt, ...)
{
    char msg[768], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s [in %s at %s]", kind, msg,
             sim_tls.callback ? sim_tls.callback : "simulator", sim_irql_name(sim_tls.irql));
    bool repeat = false;
    pthread_mutex_lock(&vlock);
    nfindings++;
    for (unsigned i = 0; i < nkept && !repeat; i++) repeat = !strcmp(kept[i], line);
    if (!repeat && nkept < MAX_KEPT) kept[nkept++] = strdup(line);
    pthread_mutex_unlock(&vlock);
    if (!repeat) fprintf(stderr, "VERIFIER: %s\n", line);   /* each distinct finding once; all counted */
}

unsigned sim_findings_count(void)
{
    pthread_mutex_lock(&vlock);
    unsigned n = nfindings;
    pthread_mutex_unlock(&vlock);
    return n;
}

static char *json_list(char **v, unsigned n)
{
    size_t cap = 16, len = 0;
    for (unsigned i = 0; i < n; i++) cap += strlen(v[i]) * 6 + 4;
    char *out = malloc(cap), *esc = malloc(cap);
    if (!out || !esc) { free(out); free(esc); return strdup("[]"); }
    out[len++] = '[';
    for (unsigned i = 0; i < n; i++) {
        sim_json_escape(esc, cap, v[i]);
        len += (size_t)snprintf(out + len, cap - len, "%s\"%s\"", i ? "," : "", esc);
    }
    snprintf(out + len, cap - len, "]");
    free(esc);
    return out;
}

char *sim_findings_json(void)
{
    pthread_mutex_lock(&vlock);
    char *s = json_list(kept, nkept);
    pthread_mutex_unlock(&vlock);
    return s;
}

void sim_log(const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&vlock);
    if (nlogs < MAX_KEPT) logs[nlogs++] = strdup(msg);
    pthread_mutex_unlock(&vlock);
    if (sim_verbose > 0) fprintf(stderr, "sim: %s\n", msg);
}

char *sim_log_json(void)
{
    pthread_mutex_lock(&vlock);
    char *s = json_list(logs, nlogs);
    pthread_mutex_unlock(&vlock);
    return s;
}

void sim_check_irql(const char *api, int max_irql)
{
    if (sim_tls.irql > max_irql)
        sim_finding("IRQL", "%s called at %s; allowed at or below %s (facts §6)", api,
                    sim_irql_name(sim_tls.irql), sim_irql_name(max_irql));
}

static const char *lock_name(unsigned bit)
{
    return bit == SIM_LOCK_DPC ? "DpcLock" : bit == SIM_LOCK_STARTIO ? "StartIoLock"
         : bit == SIM_LOCK_INTERRUPT ? "InterruptLock" : "MSI lock";
}

static int lock_index(unsigned bit) { return bit == SIM_LOCK_DPC ? 0 : bit == SIM_LOCK_STARTIO ? 1 : 2; }
static int msi_index(uint64_t msibit) { return msibit ? __builtin_ctzll(msibit) : 0; }

/* Lock rules (facts §6, [MS-LOCK]): never re-acquire a held lock; acquire DPC or
 * StartIo before Interrupt (never the other way round); StartIo before DPC. */
void (*sim_deadlock_hook)(void);

/* A spin lock re-acquired by the thread that holds it spins for ever on Windows (the
 * CPU hangs; with the interrupt lock, every CPU that takes an interrupt of this device
 * follows): the run stops here, with exit status 1, instead of carrying on as if the
 * acquisition had been skipped (issue 11 item 13). */
static void __attribute__((noreturn)) deadlock(const char *what, const char *lock)
{
    sim_finding("DEADLOCK", "%s: %s is already held by this thread: Windows would spin here for ever "
                "(the run stops)", what, lock);
    if (sim_deadlock_hook) sim_deadlock_hook();
    fflush(NULL);
    _exit(1);
}

bool sim_lock_note_acquire(const char *what, unsigned bit, uint64_t msibit)
{
    char msi[40];
    if (bit && (sim_tls.locks & bit)) deadlock(what, lock_name(bit));
    if (msibit && (sim_tls.msi_locks & msibit)) {
        snprintf(msi, sizeof(msi), "the lock of MSI message %d", msi_index(msibit));
        deadlock(what, msi);
    }
    /* An order violation deadlocks sooner or later: report it and do not take the lock,
     * so the run ends (failed) instead of hanging. */
    if ((bit & (SIM_LOCK_DPC | SIM_LOCK_STARTIO)) &&
        ((sim_tls.locks & SIM_LOCK_INTERRUPT) || sim_tls.msi_locks)) {
        sim_finding("LOCK", "%s: %s acquired while holding the interrupt lock (order is DPC/StartIo, then Interrupt)",
                    what, lock_name(bit));
        sim_tls.reentry[lock_index(bit)]++;
        return false;
    }
    if (bit == SIM_LOCK_STARTIO && (sim_tls.locks & SIM_LOCK_DPC)) {
        sim_finding("LOCK", "%s: StartIoLock acquired while holding a DpcLock (order is StartIo, then DPC)", what);
        sim_tls.reentry[lock_index(bit)]++;
        return false;
    }
    sim_tls.locks |= bit;
    sim_tls.msi_locks |= msibit;
    return true;
}

bool sim_lock_note_release(const char *what, unsigned bit, uint64_t msibit)
{
    if (bit && sim_tls.reentry[lock_index(bit)]) { sim_tls.reentry[lock_index(bit)]--; return false; }
    if (msibit && sim_tls.msi_reentry[msi_index(msibit)]) { sim_tls.msi_reentry[msi_index(msibit)]--; return false; }
    if (bit && !(sim_tls.locks & bit)) {
        sim_finding("LOCK", "%s: releasing %s which this thread does not hold", what, lock_name(bit));
        return false;
    }
    if (msibit && !(sim_tls.msi_locks & msibit)) {
        sim_finding("LOCK", "%s: releasing an MSI lock this thread does not hold", what);
        return false;
    }
    sim_tls.locks &= ~bit;
    sim_tls.msi_locks &= ~msibit;
    return true;
}
