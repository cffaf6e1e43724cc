/*
 * Internal glue between the pieces of sim/pe: the one SIGSEGV handler (mmio_trap.c)
 * asks the kernel-stack module whether a fault is a guard-page hit and the loader which
 * image a faulting instruction belongs to; all of them report fatal errors the same way.
 * Everything here is async-signal-safe.
 */
#ifndef AEROVBLK_PE_INTERNAL_H
#define AEROVBLK_PE_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

/* Fixed-buffer message builder (no malloc, no stdio: usable in a signal handler). */
typedef struct pe_msg { char buf[512]; size_t len; } pe_msg;
void pe_msg_str(pe_msg *m, const char *s);
void pe_msg_hex(pe_msg *m, uint64_t v);           /* "0x1f" */
void pe_msg_hexbyte(pe_msg *m, unsigned v);       /* "1f" */
void pe_msg_dec(pe_msg *m, uint64_t v);
/* "aerovblk.sys+0x1234 (0x7f...)" or just the address outside any image. */
void pe_msg_addr(pe_msg *m, uintptr_t addr);
/* Writes the message (plus newline) to stderr, runs the core's fatal hook, _exit(). */
void pe_fatal(pe_msg *m) __attribute__((noreturn));

/* kstack.c: is a fault at addr (with the interrupted stack pointer sp) an overflow of
 * this thread's kernel stack? Fills in the stack size for the message. */
int pe_kstack_overflow_hit(uintptr_t addr, uintptr_t sp, size_t *stack_size);

#endif
