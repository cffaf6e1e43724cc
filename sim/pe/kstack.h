/*
 * Running loaded driver code on a Windows-sized kernel stack (12 KiB x86, 24 KiB x64,
 * KERNEL_STACK_SIZE) with a PROT_NONE guard page below it: an overflow faults on the
 * guard page and is reported as "driver stack overflow" (fatal), where an unguarded
 * Linux stack (8 MiB) would hide it.
 *
 * Each thread that calls into the driver gets its own kernel stack and a signal
 * alternate stack (the SIGSEGV handler must not run on the overflowing stack).
 * The exports the driver calls run on the thread's host stack behind export gates
 * (export_gate.h, bound by pe_load), so the kernel stack holds the driver's frames.
 * Calls nest: a driver call made by such an export (the driver's
 * StorPortSynchronizeAccess callback, a completion) continues on the kernel stack below
 * the driver frames still live there, as on Windows; a call made while already on the
 * kernel stack runs on it directly.
 */
#ifndef AEROVBLK_PE_KSTACK_H
#define AEROVBLK_PE_KSTACK_H
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#define PE_KSTACK_SIZE (24u * 1024)
#else
#define PE_KSTACK_SIZE (12u * 1024)
#endif
#define PE_KCALL_MAX_ARGS 8

/* Prepares the calling thread (kernel stack, sigaltstack, SIGSEGV handler). Called
 * implicitly by pe_kcall; call it explicitly to fail early. 0 or -1 with err. */
int pe_thread_init(char *err, size_t errlen);
/* Frees the calling thread's kernel stack (also done automatically at thread exit). */
void pe_thread_release(void);

/* Calls the driver function fn (NTAPI: stdcall on x86, Microsoft x64 on x64) with
 * nargs (0..8) arguments, each passed as one pointer-sized slot: pointers, ULONG,
 * BOOLEAN and enums (on x86 each is one 4-byte stack slot, as stdcall pushes them; a
 * PHYSICAL_ADDRESS argument would need two slots and is not supported here - no
 * miniport callback takes one). Returns the raw EAX/RAX: truncate to the callee's
 * return type, e.g. (BOOLEAN)pe_kcall(...) - the upper bits are garbage for BOOLEAN.
 * Runs on this thread's kernel stack (switching to it unless already on it). */
uintptr_t pe_kcall(const void *fn, unsigned nargs, const uintptr_t *args);

/* PE_KCALL(fn, a, b, ...): pe_kcall with each argument cast to uintptr_t. */
#define PE__N(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define PE__NARGS(...) PE__N(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define PE__C1(a) (uintptr_t)(a)
#define PE__C2(a, ...) (uintptr_t)(a), PE__C1(__VA_ARGS__)
#define PE__C3(a, ...) (uintptr_t)(a), PE__C2(__VA_ARGS__)
#define PE__C4(a, ...) (uintptr_t)(a), PE__C3(__VA_ARGS__)
#define PE__C5(a, ...) (uintptr_t)(a), PE__C4(__VA_ARGS__)
#define PE__C6(a, ...) (uintptr_t)(a), PE__C5(__VA_ARGS__)
#define PE__C7(a, ...) (uintptr_t)(a), PE__C6(__VA_ARGS__)
#define PE__C8(a, ...) (uintptr_t)(a), PE__C7(__VA_ARGS__)
#define PE__CAT(a, b) a##b
#define PE__XCAT(a, b) PE__CAT(a, b)
#define PE_KCALL(fn, ...) \
    pe_kcall((const void *)(fn), PE__NARGS(__VA_ARGS__), \
             (const uintptr_t[]){ PE__XCAT(PE__C, PE__NARGS(__VA_ARGS__))(__VA_ARGS__) })

/* From simulator code that runs on the kernel stack without an export gate (code
 * called through pe_kcall directly): runs fn(arg) back on the thread's original stack.
 * Runs fn directly when not on the kernel stack - which includes every export bound by
 * pe_load, since their gates already run them on the host stack. */
void pe_run_on_host_stack(void (*fn)(void *), void *arg);

/* 1 while the calling thread is executing on its kernel stack. */
int pe_on_kernel_stack(void);
/* Deepest kernel-stack use of this thread so far, in bytes (0 before any call). */
size_t pe_kstack_high_water(void);
/* The deepest use seen by any thread: this one, or one whose stack was released
 * (thread exit). */
size_t pe_kstack_max_high_water(void);

#endif
