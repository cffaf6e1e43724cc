/*
 * Export gates (internal to sim/pe): every import the loader binds points at a small
 * stub, made at bind time, that loads the import's descriptor and jumps to the generic
 * gate (export_switch.S). The gate leaves the driver's kernel stack before any simulator
 * code runs: it copies the arguments onto the thread's host stack, switches to it, and
 * calls pe_export_host_call() (kstack.c: ASan fiber switch, bookkeeping), which calls
 * the simulator's export with the host compiler's view of the Windows convention
 * (export_gate.c: pe_export_dispatch). Back on the kernel stack it returns to the
 * driver as the export itself would: stdcall pops its argument bytes (x86), EDX:EAX /
 * RAX carry the result, the registers Windows calls nonvolatile are preserved.
 *
 * Why: Windows' storport.sys runs on the caller's kernel stack but uses little of it;
 * the simulator's export emulation (verifier, logging, device backends, ASan+UBSan)
 * needs far more than a 12 KiB x86 kernel stack has. The kernel stack therefore holds
 * only what the driver itself (plus the thin entry and gate frames) uses, which is
 * what its guard page and high-water mark are meant to measure. See docs/pe-loader.md.
 */
#ifndef AEROVBLK_PE_EXPORT_GATE_H
#define AEROVBLK_PE_EXPORT_GATE_H
#include <stddef.h>
#include <stdint.h>

#include "ntdef.h"

/* How the driver calls the export (what the gate must do on return). */
enum pe_export_kind {
    PE_EXPORT_STDCALL = 1,  /* x86 fixed-argument export: callee pops pop_bytes */
    PE_EXPORT_CDECL = 2,    /* x86 variadic export: caller pops */
    PE_EXPORT_MSABI = 3,    /* x64: one convention; rcx/rdx/r8/r9 + stack slots */
};

/* Arguments the gate hands over, in pointer-sized slots. x86: the stack argument
 * window; x64: rcx, rdx, r8, r9, then the stack slots after the 32-byte home area. */
#define PE_GATE_SLOTS 16
#if defined(__x86_64__)
#define PE_GATE_REG_SLOTS 4
#else
#define PE_GATE_REG_SLOTS 0
#endif
/* Variadic exports (x86 cdecl) and every x64 export: the number of argument bytes is not
 * known, so a fixed window is copied (clamped to the top of the kernel stack; the rest
 * reads as zero). Reading past the real arguments reads the driver's own frames. */
#define PE_GATE_WINDOW_BYTES ((PE_GATE_SLOTS - PE_GATE_REG_SLOTS) * sizeof(uintptr_t))

/* One bound import. The first two fields are read by export_switch.S: keep them first. */
typedef struct pe_export_desc {
    uintptr_t copy_bytes;   /* stack argument bytes to copy (multiple of the slot size) */
    uintptr_t pop_bytes;    /* bytes the gate pops on return (x86 stdcall: N of Name@N) */
    const void *target;     /* the simulator's function */
    unsigned kind;          /* enum pe_export_kind */
    unsigned flags;         /* PE_IMPORT_* of peloader.h */
    const char *name;       /* for messages */
} pe_export_desc;
#define PE_DESC_COPY_BYTES 0
#define PE_DESC_POP_BYTES  (__SIZEOF_POINTER__)

/* Per-thread state the gate reads (kstack.c): where to switch to and how far the
 * kernel stack goes. Both 0 when the thread is not on its kernel stack (driver code
 * called without pe_kcall): the gate then stays on the current stack. */
typedef struct pe_gate_state {
    uintptr_t host_top;     /* 16-byte aligned; the host stack below it is free */
    uintptr_t stack_hi;     /* end of the kernel stack mapping: the copy never reads past it */
} pe_gate_state;
#define PE_GATE_HOST_TOP 0
#define PE_GATE_STACK_HI (__SIZEOF_POINTER__)

/* Called by the gate on the kernel stack with the Windows convention (NTAPI), so on x64
 * it preserves rsi/rdi/xmm6-15 and on both it touches no argument the gate still needs. */
typedef const pe_gate_state *pe_gate_state_ptr;
pe_gate_state_ptr NTAPI pe_gate_state_get(void);
/* Called by the gate on the host stack (host C convention). args: PE_GATE_SLOTS slots;
 * kernel_sp: the lowest live byte of the kernel stack (driver calls made meanwhile
 * continue below it). Returns EDX:EAX / RAX for the driver. */
uint64_t pe_export_host_call(const pe_export_desc *d, const uintptr_t *args, uintptr_t kernel_sp);
/* export_gate.c: the call to the export itself. */
uint64_t pe_export_dispatch(const pe_export_desc *d, const uintptr_t *args);
/* export_switch.S: the generic gate the stubs jump to (not callable from C). */
void pe_export_gate(void);

/* The stubs of one image. */
typedef struct pe_export_stubs {
    void *page;             /* executable stubs (mmap) */
    size_t page_len;
    pe_export_desc *desc;   /* malloc'd, one per stub */
    unsigned n;
} pe_export_stubs;

/* Fills d for export `name` bound to `target` (kind and byte counts from the x86 .def
 * decorations, driver/storport-x86.def). 0, or -1 with a message in err. */
int pe_export_describe(pe_export_desc *d, const char *name, const void *target, unsigned flags,
                       char *err, size_t errlen);
/* Makes one stub per descriptor (s->desc[0..n) filled in); stub i is at
 * pe_export_stub(s, i). 0 or -1 (errno). */
int pe_export_stubs_make(pe_export_stubs *s);
void *pe_export_stub(const pe_export_stubs *s, unsigned i);
void pe_export_stubs_free(pe_export_stubs *s);

/* Arguments bytes of x86 export `name` from driver/storport-x86.def: N for Name@N
 * (stdcall), -1 for an undecorated (cdecl, variadic) name, -2 when not listed. */
int pe_x86_export_arg_bytes(const char *name);

#endif
