/*
 * Per-thread TLS selectors for the 32-bit simulator under qemu-i386 (x86_tls.c says
 * why). No-ops on x86-64 and when not emulated (AEROVBLK_X86_EMULATED unset).
 */
#ifndef PE_X86_TLS_H
#define PE_X86_TLS_H
#include <stddef.h>

/* 1 when running under emulation with private TLS selectors. */
int pe_x86_tls_active(void);
/* Give the calling thread its own %gs descriptor (pe_thread_init calls it). */
int pe_x86_tls_thread_setup(char *err, size_t errlen);
/* Give it back (pe_thread_release). */
void pe_x86_tls_thread_release(void);

#endif
