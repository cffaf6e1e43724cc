/*
 * Thread-local storage that survives QEMU user-mode signal returns (i386 only; see
 * x86_tls.h and docs/pe-loader.md, "x86 under emulation").
 *
 * Why: glibc on i386 reaches a thread's TLS through %gs, a GDT selector (TLS entry 6)
 * whose descriptor the kernel switches per thread. qemu-i386 keeps ONE guest GDT for
 * all threads; every clone() rewrites entry 6 with the new thread's base. A thread's
 * cached %gs base stays right until the selector is reloaded, and rt_sigreturn reloads
 * it from the sigcontext: after each emulated MMIO fault (a SIGSEGV) the thread would
 * continue with the most recently created thread's TLS. Measured before this module:
 * a 4-thread test taking 2000 faults each saw the wrong TLS on 1848-2000 of them.
 *
 * Fix: each thread that runs driver code gets a private LDT descriptor with its own TLS
 * base and loads %gs with it; rt_sigreturn then reloads that private descriptor. The LDT
 * is made on the main thread first (a constructor): qemu-i386 aborts when threads race
 * to create it. glibc's pthread_create derives the child's TLS entry from the current
 * %gs selector, so creating a thread switches back to the GDT selector (with entry 6
 * rewritten to our own base, under a lock) for the duration of the call
 * (-Wl,--wrap=pthread_create on the 32-bit links, mk/peloader.mk).
 *
 * Active only when AEROVBLK_X86_EMULATED=1 (set by the launcher that starts the 32-bit
 * simulator under qemu-i386, sim/x86_launch.c); natively the kernel does this right.
 */
#define _GNU_SOURCE
#include "x86_tls.h"

#if defined(__i386__)
#include <asm/ldt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LDT_ENTRIES 8192
#define SEL_TI_RPL3 7u          /* table indicator LDT, requested privilege 3 */

static int active;
static unsigned short gdt_selector;             /* glibc's %gs, the same in every thread */
static unsigned char ldt_used[LDT_ENTRIES];     /* under alloc_lock */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int my_entry = -1;

static unsigned short read_gs(void)
{
    unsigned short v;
    __asm__ volatile("movw %%gs, %0" : "=r"(v));
    return v;
}
static void load_gs(unsigned short v) { __asm__ volatile("movw %0, %%gs" : : "r"(v) : "memory"); }
static unsigned long tls_base(void)
{
    unsigned long v;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(v));   /* glibc i386: tcbhead_t.tcb == base */
    return v;
}

static void flat_desc(struct user_desc *d, unsigned entry, unsigned long base)
{
    memset(d, 0, sizeof *d);
    d->entry_number = entry;
    d->base_addr = base;
    d->limit = 0xFFFFF;
    d->seg_32bit = 1;
    d->limit_in_pages = 1;
    d->useable = 1;
}

static int write_ldt(unsigned entry, unsigned long base)
{
    struct user_desc d;
    flat_desc(&d, entry, base);
    return (int)syscall(SYS_modify_ldt, 1, &d, sizeof d);
}

__attribute__((constructor))
static void x86_tls_init(void)
{
    const char *e = getenv("AEROVBLK_X86_EMULATED");
    if (!e || strcmp(e, "1") != 0)
        return;
    gdt_selector = read_gs();
    /* Entry 0: the main thread's, made here so that the LDT exists before any thread. */
    if (write_ldt(0, tls_base()) != 0) {
        static const char msg[] = "aerovblk-sim: modify_ldt failed: x86 TLS under emulation unavailable\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(70);
    }
    ldt_used[0] = 1;
    my_entry = 0;
    active = 1;
}

int pe_x86_tls_active(void) { return active; }

int pe_x86_tls_thread_setup(char *err, size_t errlen)
{
    int e;
    if (!active)
        return 0;
    if (my_entry < 0) {
        pthread_mutex_lock(&alloc_lock);
        for (e = 1; e < LDT_ENTRIES && ldt_used[e]; e++)
            ;
        if (e < LDT_ENTRIES)
            ldt_used[e] = 1;
        pthread_mutex_unlock(&alloc_lock);
        if (e >= LDT_ENTRIES) {
            snprintf(err, errlen, "x86 TLS: all %d LDT entries in use", LDT_ENTRIES);
            return -1;
        }
        if (write_ldt((unsigned)e, tls_base()) != 0) {
            snprintf(err, errlen, "x86 TLS: modify_ldt failed");
            return -1;
        }
        my_entry = e;
    }
    load_gs((unsigned short)(((unsigned)my_entry << 3) | SEL_TI_RPL3));
    return 0;
}

void pe_x86_tls_thread_release(void)
{
    if (!active || my_entry <= 0)
        return;
    /* Back to glibc's selector, with entry 6 rewritten to our base first. */
    pthread_mutex_lock(&create_lock);
    {
        struct user_desc d;
        flat_desc(&d, gdt_selector >> 3, tls_base());
        syscall(SYS_set_thread_area, &d);
        load_gs(gdt_selector);
    }
    pthread_mutex_unlock(&create_lock);
    pthread_mutex_lock(&alloc_lock);
    ldt_used[my_entry] = 0;
    pthread_mutex_unlock(&alloc_lock);
    my_entry = -1;
}

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    unsigned short cur;
    int rc;
    if (!active)
        return __real_pthread_create(t, a, fn, arg);
    pthread_mutex_lock(&create_lock);
    cur = read_gs();
    if (cur != gdt_selector) {
        struct user_desc d;
        flat_desc(&d, gdt_selector >> 3, tls_base());
        syscall(SYS_set_thread_area, &d);
        load_gs(gdt_selector);
    }
    rc = __real_pthread_create(t, a, fn, arg);
    if (cur != gdt_selector)
        load_gs(cur);
    pthread_mutex_unlock(&create_lock);
    return rc;
}
#else
int pe_x86_tls_active(void) { return 0; }
int pe_x86_tls_thread_setup(char *err, size_t errlen) { (void)err; (void)errlen; return 0; }
void pe_x86_tls_thread_release(void) {}
#endif
