/*
 * MMIO trapping for the shipped driver binary, which reads and writes device registers
 * with plain mov instructions. Each BAR window the simulator hands out from
 * StorPortGetDeviceBase is PROT_NONE memory; an access faults, and the SIGSEGV handler
 * decodes the instruction (x86dec.h), performs the access through the window's
 * callbacks, writes the result into the saved registers / flags and resumes after the
 * instruction - a VM exit, in effect. Unsupported forms are fatal, with the bytes and
 * the address.
 *
 * The same handler reports, fatally: a hit on a kernel-stack guard page ("driver stack
 * overflow"), and any other fault whose instruction lies inside a loaded image ("driver
 * fault": access violation, bus error, illegal instruction such as ud2, divide error -
 * SIGSEGV, SIGBUS, SIGILL, SIGFPE; Windows would bugcheck). Faults elsewhere go to the
 * previously installed handler of that signal (e.g. ASan's).
 *
 * CALLBACK CONTEXT (read this before writing read/write callbacks): they run inside
 * the SIGSEGV handler, on the faulting thread's alternate signal stack, with SIGSEGV
 * blocked. The fault is synchronous - raised by a driver instruction, never in the
 * middle of simulator or libc code - so the callback is in the position of a function
 * the driver called: it may take a mutex that the driver cannot be holding at that
 * moment (the device backend's own lock: fine; the simulator's emulation of a StorPort
 * spin lock the driver may hold around MMIO: deadlock), may call libc (the interrupted
 * code is driver code, which never is inside malloc or stdio), must not call into the
 * driver (pe_kcall) and must not fault (a fault with SIGSEGV blocked kills the process).
 */
#ifndef AEROVBLK_PE_MMIO_TRAP_H
#define AEROVBLK_PE_MMIO_TRAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct mmio_trap_ops {
    /* width 1, 2 or 4; va = the faulting virtual address inside the window. */
    uint32_t (*read)(void *ctx, uint64_t va, unsigned width);
    void (*write)(void *ctx, uint64_t va, unsigned width, uint32_t value);
} mmio_trap_ops;

#define MMIO_TRAP_MAX_WINDOWS 32
/* Exit status of the process after a fatal driver fault (stack overflow, unsupported
 * MMIO instruction, fault inside the driver image). */
#define PE_FATAL_EXIT 86

/* Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE (idempotent, thread-safe;
 * re-takes a signal someone replaced since, chaining to them). pe_thread_init calls it. */
int mmio_trap_init(char *err, size_t errlen);

/* Maps len bytes (rounded up to pages) PROT_NONE and registers them as a window.
 * NULL on failure. name appears in messages ("bar4"). */
void *mmio_trap_map(size_t len, const mmio_trap_ops *ops, void *ctx, const char *name);
/* Unregisters and unmaps a window made by mmio_trap_map. The driver must not be
 * running against it any more. */
void mmio_trap_unmap(void *va);
/* Registers caller-owned PROT_NONE memory as a window (0, or -1 if full). */
int mmio_trap_register(void *va, size_t len, const mmio_trap_ops *ops, void *ctx, const char *name);
void mmio_trap_unregister(void *va);
/* For PROT_NONE windows the caller maps and tracks itself (the simulator's
 * StorPortGetDeviceBase): faults outside the registered windows are offered to
 * claims(ctx, va) (handler context, same rules as the callbacks); nonzero makes the
 * access go to ops (the callbacks then check the extent and width themselves).
 * claims == NULL removes the fallback. */
void mmio_trap_set_fallback(int (*claims)(void *ctx, uint64_t va), const mmio_trap_ops *ops, void *ctx);

/* Number of emulated reads / writes in the window containing va (or all windows if
 * va is NULL) since it was registered. */
void mmio_trap_counts(const void *va, uint64_t *reads, uint64_t *writes);

/* Called (from signal context) before a fatal driver error ends the process, e.g. to
 * kill the QEMU child and remove its shared-memory file; must be async-signal-safe.
 * The message is also written to stderr. */
void pe_set_fatal_hook(void (*hook)(const char *message));

#endif
