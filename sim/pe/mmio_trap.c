/*
 * The SIGSEGV handler of sim/pe (see mmio_trap.h): MMIO emulation, kernel-stack guard
 * hits, driver faults. Async-signal context: no malloc, no stdio, no locks of our own;
 * the window table is a fixed array published with atomics.
 */
#define _GNU_SOURCE
#include "mmio_trap.h"
#include "peloader.h"
#include "pe_internal.h"
#include "x86dec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

struct window {
    uintptr_t lo, hi;               /* hi == 0: free slot */
    const mmio_trap_ops *ops;
    void *ctx;
    int mapped_here;                /* made by mmio_trap_map */
    uint64_t reads, writes;         /* atomic */
    char name[32];
};
static struct window windows[MMIO_TRAP_MAX_WINDOWS];
/* Fallback for windows mapped by the caller (mmio_trap_set_fallback). */
static struct window fallback_window = { .name = "device base" };
static int (*fallback_claims)(void *ctx, uint64_t va);
static pthread_mutex_t windows_lock = PTHREAD_MUTEX_INITIALIZER;   /* writers only */
/* The signals a faulting driver instruction raises; a previous handler per signal. */
static const int trapped_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
#define N_TRAPPED (sizeof trapped_signals / sizeof trapped_signals[0])
static struct sigaction previous[N_TRAPPED];

static const char *fault_name(int sig)
{
    switch (sig) {
    case SIGBUS: return "bus error";
    case SIGILL: return "illegal instruction";
    case SIGFPE: return "divide error";
    default: return "access violation";
    }
}
static void (*fatal_hook)(const char *);

void pe_set_fatal_hook(void (*hook)(const char *message))
{
    __atomic_store_n(&fatal_hook, hook, __ATOMIC_RELEASE);
}

void pe_fatal(pe_msg *m)
{
    void (*hook)(const char *) = __atomic_load_n(&fatal_hook, __ATOMIC_ACQUIRE);
    ssize_t w;
    pe_msg_str(m, "\n");
    w = write(2, m->buf, m->len);
    (void)w;
    if (hook) {
        m->buf[m->len ? m->len - 1 : 0] = 0;    /* without the newline */
        hook(m->buf);
    }
    _exit(PE_FATAL_EXIT);
}

/* ---- window table ---- */
int mmio_trap_register(void *va, size_t len, const mmio_trap_ops *ops, void *ctx, const char *name)
{
    unsigned i;
    int rc = -1;
    pthread_mutex_lock(&windows_lock);
    for (i = 0; i < MMIO_TRAP_MAX_WINDOWS; i++) {
        struct window *w = &windows[i];
        if (__atomic_load_n(&w->hi, __ATOMIC_ACQUIRE) != 0)
            continue;
        w->lo = (uintptr_t)va;
        w->ops = ops;
        w->ctx = ctx;
        w->mapped_here = 0;
        w->reads = w->writes = 0;
        snprintf(w->name, sizeof w->name, "%s", name ? name : "mmio");
        __atomic_store_n(&w->hi, (uintptr_t)va + len, __ATOMIC_RELEASE);
        rc = (int)i;
        break;
    }
    pthread_mutex_unlock(&windows_lock);
    return rc < 0 ? -1 : rc;
}

static struct window *find_window(uintptr_t addr)
{
    unsigned i;
    for (i = 0; i < MMIO_TRAP_MAX_WINDOWS; i++) {
        struct window *w = &windows[i];
        uintptr_t hi = __atomic_load_n(&w->hi, __ATOMIC_ACQUIRE);
        if (hi && addr >= w->lo && addr < hi)
            return w;
    }
    return NULL;
}

void mmio_trap_unregister(void *va)
{
    struct window *w;
    pthread_mutex_lock(&windows_lock);
    if ((w = find_window((uintptr_t)va)) != NULL)
        __atomic_store_n(&w->hi, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&windows_lock);
}

void *mmio_trap_map(size_t len, const mmio_trap_ops *ops, void *ctx, const char *name)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p;
    int slot;
    char err[128];
    if (len == 0 || mmio_trap_init(err, sizeof err) != 0)
        return NULL;
    len = (len + page - 1) & ~(page - 1);
    p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    slot = mmio_trap_register(p, len, ops, ctx, name);
    if (slot < 0) {
        munmap(p, len);
        return NULL;
    }
    windows[slot].mapped_here = 1;
    return p;
}

void mmio_trap_unmap(void *va)
{
    struct window *w;
    uintptr_t lo = 0, hi = 0;
    int mine = 0;
    pthread_mutex_lock(&windows_lock);
    if ((w = find_window((uintptr_t)va)) != NULL) {
        lo = w->lo; hi = w->hi; mine = w->mapped_here;
        __atomic_store_n(&w->hi, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&windows_lock);
    if (mine)
        munmap((void *)lo, hi - lo);
}

void mmio_trap_set_fallback(int (*claims)(void *ctx, uint64_t va), const mmio_trap_ops *ops, void *ctx)
{
    pthread_mutex_lock(&windows_lock);
    __atomic_store_n(&fallback_claims, NULL, __ATOMIC_RELEASE);
    fallback_window.ops = ops;
    fallback_window.ctx = ctx;
    fallback_window.lo = 0;
    fallback_window.hi = UINTPTR_MAX;   /* the caller checks the extent */
    if (claims && ops)
        __atomic_store_n(&fallback_claims, claims, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&windows_lock);
}

void mmio_trap_counts(const void *va, uint64_t *reads, uint64_t *writes)
{
    unsigned i;
    uint64_t r = 0, w = 0;
    for (i = 0; i < MMIO_TRAP_MAX_WINDOWS; i++) {
        struct window *win = &windows[i];
        if (!__atomic_load_n(&win->hi, __ATOMIC_ACQUIRE))
            continue;
        if (va && !((uintptr_t)va >= win->lo && (uintptr_t)va < win->hi))
            continue;
        r += __atomic_load_n(&win->reads, __ATOMIC_RELAXED);
        w += __atomic_load_n(&win->writes, __ATOMIC_RELAXED);
    }
    if (!va) {
        r += __atomic_load_n(&fallback_window.reads, __ATOMIC_RELAXED);
        w += __atomic_load_n(&fallback_window.writes, __ATOMIC_RELAXED);
    }
    if (reads) *reads = r;
    if (writes) *writes = w;
}

/* ---- saved register context ---- */
#if defined(__x86_64__)
#define MODE64 1
static const int greg_index[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                    REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15 };
#define REG_IP REG_RIP
#define REG_FLAGS REG_EFL
#define REG_SP REG_RSP
#else
#define MODE64 0
static const int greg_index[16] = { REG_EAX, REG_ECX, REG_EDX, REG_EBX, REG_ESP, REG_EBP, REG_ESI, REG_EDI,
                                    -1, -1, -1, -1, -1, -1, -1, -1 };
#define REG_IP REG_EIP
#define REG_FLAGS REG_EFL
#define REG_SP REG_ESP
#endif

static uint64_t get_greg(ucontext_t *uc, int r) { return (uint64_t)(uintptr_t)uc->uc_mcontext.gregs[greg_index[r]]; }
static void set_greg(ucontext_t *uc, int r, uint64_t v) { uc->uc_mcontext.gregs[greg_index[r]] = (greg_t)v; }

static uint64_t reg_read(ucontext_t *uc, const x86_insn *d, unsigned width)
{
    if (d->reg_high8)
        return (get_greg(uc, d->reg - 4) >> 8) & 0xFF;
    switch (width) {
    case 1: return get_greg(uc, d->reg) & 0xFF;
    case 2: return get_greg(uc, d->reg) & 0xFFFF;
    case 4: return get_greg(uc, d->reg) & 0xFFFFFFFFu;
    default: return get_greg(uc, d->reg);
    }
}

/* Architectural register-write rules: 8/16-bit writes keep the other bits; a 32-bit
 * write zero-extends into the 64-bit register (SDM 3.4.1.1). */
static void reg_write(ucontext_t *uc, const x86_insn *d, unsigned width, uint64_t v)
{
    uint64_t old;
    if (d->reg_high8) {
        old = get_greg(uc, d->reg - 4);
        set_greg(uc, d->reg - 4, (old & ~0xFF00ull) | ((v & 0xFF) << 8));
        return;
    }
    old = get_greg(uc, d->reg);
    switch (width) {
    case 1: set_greg(uc, d->reg, (old & ~0xFFull) | (v & 0xFF)); break;
    case 2: set_greg(uc, d->reg, (old & ~0xFFFFull) | (v & 0xFFFF)); break;
    case 4: set_greg(uc, d->reg, v & 0xFFFFFFFFu); break;
    default: set_greg(uc, d->reg, v); break;
    }
}

static uint64_t effective_address(ucontext_t *uc, const x86_insn *d, uintptr_t ip)
{
    uint64_t ea;
    if (d->absolute)
        ea = (uint64_t)d->disp + (d->index >= 0 ? get_greg(uc, d->index) * d->scale : 0);
    else if (d->rip_relative)
        ea = (uint64_t)ip + d->len + (uint64_t)d->disp;
    else
        ea = (d->base >= 0 ? get_greg(uc, d->base) : 0) +
             (d->index >= 0 ? get_greg(uc, d->index) * d->scale : 0) + (uint64_t)d->disp;
    return MODE64 ? ea : (ea & 0xFFFFFFFFu);
}

static uint64_t sext(uint64_t v, unsigned from)
{
    unsigned shift = 64 - from * 8;
    return (uint64_t)((int64_t)(v << shift) >> shift);
}

static void __attribute__((noreturn))
mmio_fail(const char *what, const char *why, uintptr_t ip, const uint8_t *code, size_t avail,
          uintptr_t addr, const struct window *w)
{
    pe_msg m = { .len = 0 };
    size_t i;
    pe_msg_str(&m, "mmio_trap: ");
    pe_msg_str(&m, what);
    if (why) { pe_msg_str(&m, " ("); pe_msg_str(&m, why); pe_msg_str(&m, ")"); }
    pe_msg_str(&m, " at ");
    pe_msg_addr(&m, ip);
    pe_msg_str(&m, ", bytes");
    for (i = 0; i < avail && i < 15; i++) { pe_msg_str(&m, " "); pe_msg_hexbyte(&m, code[i]); }
    pe_msg_str(&m, ", accessing ");
    pe_msg_hex(&m, addr);
    if (w) {
        pe_msg_str(&m, " (");
        pe_msg_str(&m, w->name);
        pe_msg_str(&m, "+");
        pe_msg_hex(&m, addr - w->lo);
        pe_msg_str(&m, ")");
    }
    pe_fatal(&m);
}

static void emulate(ucontext_t *uc, uintptr_t addr, struct window *w)
{
    uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_IP], img_end = 0;
    const uint8_t *code = (const uint8_t *)ip;
    size_t avail = 15;
    const char *why = NULL;
    x86_insn d;
    uint64_t ea, m, v, res;
    uint32_t flags;
    unsigned width;

    /* Never read past the end of the image holding the instruction. */
    if (pe_image_lookup(ip, NULL, &img_end) && img_end - ip < avail)
        avail = img_end - ip;
    if (x86_decode(code, avail, MODE64, &d, &why) != 0)
        mmio_fail("unsupported instruction", why, ip, code, avail, addr, w);
    ea = effective_address(uc, &d, ip);
    width = d.mem_width;
    if (ea != addr)
        mmio_fail("decoded address differs from the fault address", NULL, ip, code, d.len, addr, w);
    if (width > 4)
        mmio_fail("64-bit register access (virtio 4.1.3.1: use two 32-bit accesses)", NULL, ip, code, d.len, addr, w);
    if (addr + width > __atomic_load_n(&w->hi, __ATOMIC_ACQUIRE))
        mmio_fail("access crosses the end of the window", NULL, ip, code, d.len, addr, w);

    switch (d.kind) {
    case X86_LOAD:
        __atomic_fetch_add(&w->reads, 1, __ATOMIC_RELAXED);
        v = w->ops->read(w->ctx, addr, width);
        if (d.sign_extend) v = sext(v, width);
        reg_write(uc, &d, d.reg_width, v);
        break;
    case X86_STORE:
        v = d.reg < 0 ? d.imm : reg_read(uc, &d, width);
        __atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
        w->ops->write(w->ctx, addr, width, (uint32_t)v);
        break;
    case X86_ALU_LOAD:
        __atomic_fetch_add(&w->reads, 1, __ATOMIC_RELAXED);
        m = w->ops->read(w->ctx, addr, width);
        res = x86_alu_exec(d.alu, width, reg_read(uc, &d, width), m, &flags);
        reg_write(uc, &d, width, res);
        goto set_flags;
    case X86_ALU_STORE:
        __atomic_fetch_add(&w->reads, 1, __ATOMIC_RELAXED);
        m = w->ops->read(w->ctx, addr, width);
        v = d.reg < 0 ? d.imm : reg_read(uc, &d, width);
        res = x86_alu_exec(d.alu, width, m, v, &flags);
        __atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
        w->ops->write(w->ctx, addr, width, (uint32_t)res);
        goto set_flags;
    case X86_COMPARE:
        __atomic_fetch_add(&w->reads, 1, __ATOMIC_RELAXED);
        m = w->ops->read(w->ctx, addr, width);
        v = d.reg < 0 ? d.imm : reg_read(uc, &d, width);
        if (d.mem_is_dest) x86_alu_exec(d.alu, width, m, v, &flags);
        else x86_alu_exec(d.alu, width, v, m, &flags);
    set_flags:
        uc->uc_mcontext.gregs[REG_FLAGS] =
            (greg_t)(((uint64_t)uc->uc_mcontext.gregs[REG_FLAGS] & ~(uint64_t)X86_FLAGS_ARITH) | flags);
        break;
    }
    uc->uc_mcontext.gregs[REG_IP] = (greg_t)(ip + d.len);
}

/* i386: QEMU user mode enters signal handlers with the stack only 8-byte aligned (the
 * kernel gives the ABI's 16); force_align_arg_pointer realigns it, else GCC's code below
 * (ASan's frame layout included) would run misaligned. */
#if defined(__i386__)
__attribute__((force_align_arg_pointer))
#endif
static void handler(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    uintptr_t addr = (uintptr_t)si->si_addr;
    uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_IP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_SP];
    struct window *w;
    size_t stack_size = 0;
    int saved_errno = errno;
    unsigned k;

    if (sig == SIGSEGV && (w = find_window(addr)) != NULL) {
        emulate(uc, addr, w);
        errno = saved_errno;
        return;
    }
    {
        int (*claims)(void *, uint64_t) = __atomic_load_n(&fallback_claims, __ATOMIC_ACQUIRE);
        if (sig == SIGSEGV && claims && claims(fallback_window.ctx, addr)) {
            emulate(uc, addr, &fallback_window);
            errno = saved_errno;
            return;
        }
    }
    if ((sig == SIGSEGV || sig == SIGBUS) && pe_kstack_overflow_hit(addr, sp, &stack_size)) {
        pe_msg m = { .len = 0 };
        pe_msg_str(&m, "driver stack overflow: the ");
        pe_msg_dec(&m, stack_size / 1024);
        pe_msg_str(&m, " KiB kernel stack is exhausted (guard page hit at ");
        pe_msg_hex(&m, addr);
        pe_msg_str(&m, ", instruction at ");
        pe_msg_addr(&m, ip);
        if (!pe_image_lookup(ip, NULL, NULL))
            pe_msg_str(&m, " in simulator code called by the driver");
        pe_msg_str(&m, ")");
        pe_fatal(&m);
    }
    if (pe_image_lookup(ip, NULL, NULL)) {
        pe_msg m = { .len = 0 };
        pe_msg_str(&m, "driver fault: ");
        pe_msg_str(&m, fault_name(sig));
        pe_msg_str(&m, " at ");
        pe_msg_addr(&m, ip);
        if (sig == SIGSEGV || sig == SIGBUS) {
            pe_msg_str(&m, " accessing ");
            pe_msg_addr(&m, addr);
        }
        pe_fatal(&m);
    }
    /* Not ours: hand over to whoever was installed before (ASan's report), or die. */
    for (k = 0; k < N_TRAPPED && trapped_signals[k] != sig; k++)
        ;
    if (k < N_TRAPPED && (previous[k].sa_flags & SA_SIGINFO) && previous[k].sa_sigaction) {
        previous[k].sa_sigaction(sig, si, ctx);
        return;
    }
    if (k < N_TRAPPED && previous[k].sa_handler != SIG_DFL && previous[k].sa_handler != SIG_IGN &&
        previous[k].sa_handler) {
        previous[k].sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);   /* re-executing the instruction faults again, fatally */
}

/* Installs the handler unless it is already the current one. Someone else (a test
 * framework, a sanitizer initialised late) may have replaced it since: take it back and
 * chain to theirs for faults that are not ours. */
int mmio_trap_init(char *err, size_t errlen)
{
    static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
    struct sigaction sa, cur;
    unsigned k;
    int rc = 0;
    pthread_mutex_lock(&install_lock);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (k = 0; k < N_TRAPPED; k++) {
        if (sigaction(trapped_signals[k], NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
            cur.sa_sigaction == handler)
            continue;
        if (sigaction(trapped_signals[k], &sa, &cur) != 0) {
            snprintf(err, errlen, "sigaction(%d): %s", trapped_signals[k], strerror(errno));
            rc = -1;
            break;
        }
        previous[k] = cur;
    }
    pthread_mutex_unlock(&install_lock);
    return rc;
}
