/*
 * Kernel stacks for driver code (see kstack.h). Per thread: one mapping
 * [guard page PROT_NONE][PE_KSTACK_SIZE read/write], a signal alternate stack, and the
 * state of the host <-> kernel stack switches. The stack switch itself is
 * kstack_switch.S; the call with the Windows convention is plain C here, through
 * function-pointer types declared NTAPI (include/wdk/ntdef.h), so GCC emits the stdcall
 * (callee pops) or ms_abi (rcx/rdx/r8/r9 + 32-byte home area) call sequence.
 */
#define _GNU_SOURCE
#include "kstack.h"
#include "export_gate.h"
#include "x86_tls.h"
#include "mmio_trap.h"
#include "pe_internal.h"
#include "ntdef.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define PE_ASAN 1
#else
#define PE_ASAN 0
#endif

#define KSTACK_FILL     0xA5    /* pattern for the high-water mark */
#define ALTSTACK_SIZE   (64u * 1024)
#define ALTSTACK_MIN    (16u * 1024)
#define SYSV_RED_ZONE   128     /* bytes below the stack pointer a leaf may use */

uintptr_t pe_stack_switch_call(uintptr_t stack_top, uintptr_t (*fn)(void *, uintptr_t), void *arg);

struct kstack_tls {
    uint8_t *map;               /* guard page + stack */
    size_t map_len;
    uintptr_t guard_lo, stack_lo, stack_hi;
    int on_kstack;
    uintptr_t kernel_top;       /* where the next switch onto the kernel stack starts */
    uintptr_t host_top;         /* where pe_run_on_host_stack starts on the host stack */
    void *altstack;             /* ours, if we installed one */
    const void *host_bottom;    /* ASan: bounds of the host stack */
    size_t host_size;
    pe_gate_state gate;         /* what pe_gate_state_get hands the export gate */
};
static __thread struct kstack_tls tls __attribute__((tls_model("initial-exec")));
static size_t max_high_water;  /* over all threads whose stacks were released, atomic */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *unused)
{
    (void)unused;
    pe_thread_release();
}

static void make_exit_key(void) { pthread_key_create(&exit_key, thread_exit); }

int pe_thread_init(char *err, size_t errlen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stack_t cur;
    if (tls.map)
        return 0;
    if (mmio_trap_init(err, errlen))
        return -1;
    /* Under qemu-i386 a signal return would otherwise reload another thread's TLS. */
    if (pe_x86_tls_thread_setup(err, errlen))
        return -1;
    /* The SIGSEGV handler (MMIO, guard page) must not run on the kernel stack: it is
     * small and, on an overflow, exhausted. Keep an existing alternate stack (ASan
     * installs one per thread) if it is big enough. */
    if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_DISABLE) || cur.ss_size < ALTSTACK_MIN) {
        stack_t ss = { .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
        ss.ss_sp = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0) {
            snprintf(err, errlen, "sigaltstack: %s", strerror(errno));
            if (ss.ss_sp != MAP_FAILED) munmap(ss.ss_sp, ALTSTACK_SIZE);
            return -1;
        }
        tls.altstack = ss.ss_sp;
    }
    tls.map_len = page + PE_KSTACK_SIZE;
    tls.map = mmap(NULL, tls.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tls.map == MAP_FAILED || mprotect(tls.map + page, PE_KSTACK_SIZE, PROT_READ | PROT_WRITE) != 0) {
        snprintf(err, errlen, "kernel stack: %s", strerror(errno));
        if (tls.map != MAP_FAILED) munmap(tls.map, tls.map_len);
        tls.map = NULL;
        return -1;
    }
    tls.guard_lo = (uintptr_t)tls.map;
    tls.stack_lo = tls.guard_lo + page;
    tls.stack_hi = tls.stack_lo + PE_KSTACK_SIZE;
    tls.kernel_top = tls.stack_hi;
    memset((void *)tls.stack_lo, KSTACK_FILL, PE_KSTACK_SIZE);
    pthread_once(&exit_key_once, make_exit_key);
    pthread_setspecific(exit_key, &tls);
    return 0;
}

void pe_thread_release(void)
{
    if (tls.on_kstack)
        return;     /* never free the stack we are standing on */
    pe_x86_tls_thread_release();
    if (tls.map) {
        size_t hw = pe_kstack_high_water(), cur = __atomic_load_n(&max_high_water, __ATOMIC_RELAXED);
        while (hw > cur && !__atomic_compare_exchange_n(&max_high_water, &cur, hw, 0, __ATOMIC_RELAXED,
                                                        __ATOMIC_RELAXED))
            ;
        munmap(tls.map, tls.map_len);
        tls.map = NULL;
    }
    if (tls.altstack) {
        stack_t cur;
        if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == tls.altstack) {
            stack_t off = { .ss_flags = SS_DISABLE, .ss_size = ALTSTACK_SIZE };
            sigaltstack(&off, NULL);
            munmap(tls.altstack, ALTSTACK_SIZE);
        }   /* else someone replaced it (and owns the unmapping): leave it */
        tls.altstack = NULL;
    }
}

int pe_on_kernel_stack(void) { return tls.on_kstack; }

size_t pe_kstack_high_water(void)
{
    const uint8_t *p;
    if (!tls.map) return 0;
    for (p = (const uint8_t *)tls.stack_lo; p < (const uint8_t *)tls.stack_hi && *p == KSTACK_FILL; p++)
        ;
    return (size_t)((const uint8_t *)tls.stack_hi - p);
}

size_t pe_kstack_max_high_water(void)
{
    size_t mine = pe_kstack_high_water(), all = __atomic_load_n(&max_high_water, __ATOMIC_RELAXED);
    return mine > all ? mine : all;
}

int pe_kstack_overflow_hit(uintptr_t addr, uintptr_t sp, size_t *stack_size)
{
    if (!tls.map)
        return 0;
    *stack_size = PE_KSTACK_SIZE;
    /* The guard page itself, or (a frame larger than a page skipped it) an access or a
     * stack pointer just below the kernel stack while running on it. */
    if (addr >= tls.guard_lo && addr < tls.stack_lo)
        return 1;
    return tls.on_kstack && sp < tls.stack_lo && tls.stack_lo - sp < (1u << 20) &&
           addr < tls.stack_lo && tls.stack_lo - addr < (1u << 20);
}

/* ---- the call with the Windows convention ---- */
typedef uintptr_t (NTAPI *fn0)(void);
typedef uintptr_t (NTAPI *fn1)(uintptr_t);
typedef uintptr_t (NTAPI *fn2)(uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn3)(uintptr_t, uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn4)(uintptr_t, uintptr_t, uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn5)(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn6)(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn7)(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);
typedef uintptr_t (NTAPI *fn8)(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);

struct kcall { const void *fn; unsigned nargs; const uintptr_t *a; };

static uintptr_t invoke(const struct kcall *c)
{
    const uintptr_t *a = c->a;
    switch (c->nargs) {
    case 0: return ((fn0)c->fn)();
    case 1: return ((fn1)c->fn)(a[0]);
    case 2: return ((fn2)c->fn)(a[0], a[1]);
    case 3: return ((fn3)c->fn)(a[0], a[1], a[2]);
    case 4: return ((fn4)c->fn)(a[0], a[1], a[2], a[3]);
    case 5: return ((fn5)c->fn)(a[0], a[1], a[2], a[3], a[4]);
    case 6: return ((fn6)c->fn)(a[0], a[1], a[2], a[3], a[4], a[5]);
    case 7: return ((fn7)c->fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    default: return ((fn8)c->fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    }
}

/* ASan bookkeeping of the stack switches (__sanitizer_start/finish_switch_fiber). Both
 * halves of each annotation are made on the host stack, before switching to the kernel
 * stack and after coming back, so that no sanitizer runtime frame (over 1 KiB on x64)
 * lands on the kernel stack and its high-water mark is the driver's. The functions that
 * run between an annotation and the actual switch are not instrumented
 * (no_sanitize_address): nothing consults the stack bounds in that window. */
#if PE_ASAN
static void asan_to_kernel(void **fake)
{
    __sanitizer_start_switch_fiber(fake, (const void *)tls.stack_lo, tls.kernel_top - tls.stack_lo);
    __sanitizer_finish_switch_fiber(NULL, &tls.host_bottom, &tls.host_size);
}
static void asan_from_kernel(void *fake)
{
    __sanitizer_start_switch_fiber(NULL, tls.host_bottom, tls.host_size);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
}
/* From the kernel stack back to the host stack, inside a driver call (pe_run_on_host_stack,
 * the export gates): made on the host stack after the switch, and before switching back. */
static void asan_visit_host(void **fake)
{
    __sanitizer_start_switch_fiber(fake, tls.host_bottom, tls.host_size);
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
}
static void asan_back_to_kernel(void *fake)
{
    __sanitizer_start_switch_fiber(NULL, (const void *)tls.stack_lo, tls.stack_hi - tls.stack_lo);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
}
#endif

/* First frame on the kernel stack. */
__attribute__((no_sanitize_address))
static uintptr_t kernel_entry(void *arg, uintptr_t host_sp)
{
    const struct kcall *c = arg;
    uintptr_t saved_host_top = tls.host_top, r;
    tls.host_top = (host_sp - SYSV_RED_ZONE) & ~(uintptr_t)15;
    tls.on_kstack = 1;
    r = invoke(c);
    tls.on_kstack = 0;
    tls.host_top = saved_host_top;
    return r;
}

__attribute__((no_sanitize_address))
uintptr_t pe_kcall(const void *fn, unsigned nargs, const uintptr_t *args)
{
    struct kcall c = { fn, nargs, args };
    char err[160];
    uintptr_t r;
#if PE_ASAN
    void *fake = NULL;
#endif
    if (nargs > PE_KCALL_MAX_ARGS) {
        pe_msg m = { .len = 0 };
        pe_msg_str(&m, "pe_kcall: too many arguments");
        pe_fatal(&m);
    }
    if (tls.on_kstack)
        return invoke(&c);          /* nested: Windows runs it on the same stack */
    if (!tls.map && pe_thread_init(err, sizeof err) != 0) {
        pe_msg m = { .len = 0 };
        pe_msg_str(&m, "pe_kcall: ");
        pe_msg_str(&m, err);
        pe_fatal(&m);
    }
#if PE_ASAN
    asan_to_kernel(&fake);
#endif
    r = pe_stack_switch_call(tls.kernel_top, kernel_entry, &c);
#if PE_ASAN
    asan_from_kernel(fake);
#endif
    return r;
}

struct hostcall { void (*fn)(void *); void *arg; };

/* Back on the host stack (from pe_run_on_host_stack or an export gate), inside a driver
 * call; kernel_sp is the lowest live byte of the kernel stack. */
__attribute__((no_sanitize_address))
static void visit_host(void (*fn)(void *), void *arg, uintptr_t kernel_sp)
{
    uintptr_t saved_kernel_top = tls.kernel_top;
#if PE_ASAN
    void *fake = NULL;
    asan_visit_host(&fake);
#endif
    /* A driver call made from here continues below the frames still live on the
     * kernel stack. */
    tls.kernel_top = kernel_sp & ~(uintptr_t)15;
    tls.on_kstack = 0;
    fn(arg);
    tls.on_kstack = 1;
    tls.kernel_top = saved_kernel_top;
#if PE_ASAN
    asan_back_to_kernel(fake);
#endif
}

__attribute__((no_sanitize_address))
static uintptr_t host_entry(void *arg, uintptr_t kernel_sp)
{
    const struct hostcall *h = arg;
    /* C code on the kernel stack may use the red zone below its stack pointer. */
    visit_host(h->fn, h->arg, kernel_sp - SYSV_RED_ZONE);
    return 0;
}

__attribute__((no_sanitize_address))
void pe_run_on_host_stack(void (*fn)(void *), void *arg)
{
    struct hostcall h = { fn, arg };
    if (!tls.on_kstack) {
        fn(arg);
        return;
    }
    pe_stack_switch_call(tls.host_top, host_entry, &h);
}

/* ---- export gates (export_gate.h): simulator code reached from the driver runs on the
 * host stack ---- */

/* Called by export_switch.S on the kernel stack, as an NTAPI function so that it keeps
 * every register the gate still needs; a leaf without instrumentation. */
__attribute__((no_sanitize_address, no_sanitize("undefined")))
pe_gate_state_ptr NTAPI pe_gate_state_get(void)
{
    tls.gate.host_top = tls.on_kstack ? tls.host_top : 0;
    tls.gate.stack_hi = tls.on_kstack ? tls.stack_hi : 0;
    return &tls.gate;
}

/* Called by export_switch.S right after it switched to the host stack, with the
 * arguments copied there. A driver call made by the export (StorPortSynchronizeAccess's
 * callback, a completion) goes through pe_kcall and continues on the kernel stack below
 * the driver's live frames (kernel_sp: the gate's saved registers). */
struct export_call { const pe_export_desc *d; const uintptr_t *args; uint64_t r; };

static void export_call(void *arg)
{
    struct export_call *e = arg;
    e->r = pe_export_dispatch(e->d, e->args);
}

__attribute__((no_sanitize_address))
uint64_t pe_export_host_call(const pe_export_desc *d, const uintptr_t *args, uintptr_t kernel_sp)
{
    struct export_call e = { d, args, 0 };
    if (!tls.on_kstack)
        return pe_export_dispatch(d, args);     /* the gate did not switch */
    visit_host(export_call, &e, kernel_sp);
    return e.r;
}
