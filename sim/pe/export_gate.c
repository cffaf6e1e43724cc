/*
 * Export gates (see export_gate.h): the per-import stubs, the calling-convention facts
 * per export, and the call to the simulator's function. The call is plain C through
 * function-pointer types declared NTAPI / AV_CDECL (include/wdk/ntdef.h), so GCC emits
 * the stdcall / cdecl / Microsoft x64 sequence and the host view of the return value
 * (for an i386 export returning PHYSICAL_ADDRESS: GCC's hidden pointer).
 */
#define _GNU_SOURCE
#include "export_gate.h"
#include "peloader.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(offsetof(pe_export_desc, copy_bytes) == PE_DESC_COPY_BYTES, "export_switch.S reads copy_bytes");
_Static_assert(offsetof(pe_export_desc, pop_bytes) == PE_DESC_POP_BYTES, "export_switch.S reads pop_bytes");
_Static_assert(offsetof(pe_gate_state, host_top) == PE_GATE_HOST_TOP, "export_switch.S reads host_top");
_Static_assert(offsetof(pe_gate_state, stack_hi) == PE_GATE_STACK_HI, "export_switch.S reads stack_hi");
_Static_assert(PE_GATE_SLOTS == 16, "export_switch.S copies 16 slots");

/* ---- x86 argument bytes: generated from driver/storport-x86.def (mk/peloader.mk) ---- */
static const struct { const char *name; int arg_bytes; } x86_def[] = {
#define PE_X86_EXPORT(name, bytes) { name, bytes },
#include "storport_x86_def.h"
#undef PE_X86_EXPORT
};

int pe_x86_export_arg_bytes(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof x86_def / sizeof x86_def[0]; i++)
        if (strcmp(x86_def[i].name, name) == 0)
            return x86_def[i].arg_bytes;
    return -2;
}

/* ---- functions returning an 8-byte struct in memory on i386 (peloader.h) ---- */
#define PE_MAX_STRUCT_RETURNS 8
static const void *struct_returns[PE_MAX_STRUCT_RETURNS];

int pe_declare_struct_return(const void *fn)
{
    unsigned i;
    for (i = 0; i < PE_MAX_STRUCT_RETURNS; i++)
        if (!struct_returns[i] || struct_returns[i] == fn) {
            struct_returns[i] = fn;
            return 0;
        }
    return -1;
}

static int is_struct_return(const void *fn)
{
    unsigned i;
    for (i = 0; i < PE_MAX_STRUCT_RETURNS && struct_returns[i]; i++)
        if (struct_returns[i] == fn)
            return 1;
    return 0;
}

int pe_export_describe(pe_export_desc *d, const char *name, const void *target, unsigned flags,
                       char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->target = target;
    d->name = name;
    d->flags = flags | (is_struct_return(target) ? PE_IMPORT_STRUCT_RETURN : 0);
#if defined(__x86_64__)
    /* One convention; a struct of 8 bytes comes back in RAX on both sides. */
    d->kind = PE_EXPORT_MSABI;
    d->copy_bytes = PE_GATE_WINDOW_BYTES;
    d->flags &= ~(unsigned)PE_IMPORT_STRUCT_RETURN;
    (void)err; (void)errlen;
#else
    int n = pe_x86_export_arg_bytes(name);
    if (n == -2) {
        snprintf(err, errlen, "storport.sys!%s: no x86 calling convention known (not in driver/storport-x86.def)", name);
        return -1;
    }
    if (n == -1) {              /* variadic: cdecl, the caller pops */
        if (d->flags & PE_IMPORT_STRUCT_RETURN) {
            snprintf(err, errlen, "storport.sys!%s: a cdecl export returning a struct is not supported", name);
            return -1;
        }
        d->kind = PE_EXPORT_CDECL;
        d->copy_bytes = PE_GATE_WINDOW_BYTES;
    } else {
        if (n % 4 != 0 || (size_t)n > PE_GATE_WINDOW_BYTES) {
            snprintf(err, errlen, "storport.sys!%s@%d: unsupported argument size", name, n);
            return -1;
        }
        d->kind = PE_EXPORT_STDCALL;
        d->copy_bytes = d->pop_bytes = (uintptr_t)n;
    }
#endif
    return 0;
}

/* ---- the call ---- */
#define A1 a[0]
#define A2 A1, a[1]
#define A3 A2, a[2]
#define A4 A3, a[3]
#define A5 A4, a[4]
#define A6 A5, a[5]
#define A7 A6, a[6]
#define A8 A7, a[7]
#define A9 A8, a[8]
#define A10 A9, a[9]
#define A11 A10, a[10]
#define A12 A11, a[11]
#define A13 A12, a[12]
#define A14 A13, a[13]
#define A15 A14, a[14]
#define A16 A15, a[15]
#define U uintptr_t
#define P1 U
#define P2 P1, U
#define P3 P2, U
#define P4 P3, U
#define P5 P4, U
#define P6 P5, U
#define P7 P6, U
#define P8 P7, U
#define P9 P8, U
#define P10 P9, U
#define P11 P10, U
#define P12 P11, U
#define P13 P12, U
#define P14 P13, U
#define P15 P14, U
#define P16 P15, U

#if defined(__x86_64__)
/* rcx, rdx, r8, r9 and 12 stack slots: a callee reads what it declares (a variadic one
 * spills rcx..r9 into the home area GCC allocates, then walks the stack slots). */
typedef uint64_t (NTAPI *msabi16)(P16);

uint64_t pe_export_dispatch(const pe_export_desc *d, const uintptr_t *a)
{
    return ((msabi16)d->target)(A16);
}
#else
/* stdcall with exactly the declared argument bytes: the callee pops them. An 8-byte
 * integer comes back in EDX:EAX; a LARGE_INTEGER (a union) through GCC's hidden
 * pointer, converted here to what a Windows caller expects. */
#define STD(k) \
    case k: { \
        typedef uint64_t (NTAPI *f)(P##k); \
        typedef LARGE_INTEGER (NTAPI *fs)(P##k); \
        return sr ? (uint64_t)((fs)d->target)(A##k).QuadPart : ((f)d->target)(A##k); \
    }
typedef uint64_t (AV_CDECL *cdecl16)(P16);

uint64_t pe_export_dispatch(const pe_export_desc *d, const uintptr_t *a)
{
    int sr = (d->flags & PE_IMPORT_STRUCT_RETURN) != 0;
    if (d->kind == PE_EXPORT_CDECL)
        return ((cdecl16)d->target)(A16);   /* the window; the caller (here) pops */
    switch (d->pop_bytes / 4) {
    case 0: {
        typedef uint64_t (NTAPI *f)(void);
        typedef LARGE_INTEGER (NTAPI *fs)(void);
        return sr ? (uint64_t)((fs)d->target)().QuadPart : ((f)d->target)();
    }
    STD(1) STD(2) STD(3) STD(4) STD(5) STD(6) STD(7) STD(8)
    STD(9) STD(10) STD(11) STD(12) STD(13) STD(14) STD(15) STD(16)
    default:
        abort();    /* pe_export_describe refuses more than 64 bytes */
    }
}
#endif

/* ---- stubs ---- */
#if defined(__x86_64__)
/* movabs $desc, %r11; jmp *0(%rip); .quad pe_export_gate; int3 padding */
#define STUB_SIZE 32
static void write_stub(uint8_t *p, const pe_export_desc *d)
{
    uint64_t dv = (uint64_t)(uintptr_t)d, gv = (uint64_t)(uintptr_t)pe_export_gate;
    memset(p, 0xCC, STUB_SIZE);
    p[0] = 0x49; p[1] = 0xBB;
    memcpy(p + 2, &dv, 8);
    p[10] = 0xFF; p[11] = 0x25;
    memset(p + 12, 0, 4);
    memcpy(p + 16, &gv, 8);
}
#else
/* mov $desc, %eax; jmp pe_export_gate (rel32); int3 padding */
#define STUB_SIZE 16
static void write_stub(uint8_t *p, const pe_export_desc *d)
{
    uint32_t dv = (uint32_t)(uintptr_t)d;
    uint32_t rel = (uint32_t)((uintptr_t)pe_export_gate - ((uintptr_t)p + 10));
    memset(p, 0xCC, STUB_SIZE);
    p[0] = 0xB8;
    memcpy(p + 1, &dv, 4);
    p[5] = 0xE9;
    memcpy(p + 6, &rel, 4);
}
#endif

int pe_export_stubs_make(pe_export_stubs *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), i;
    s->page_len = ((size_t)s->n * STUB_SIZE + page - 1) & ~(page - 1);
    if (!s->page_len)
        s->page_len = page;
    s->page = mmap(NULL, s->page_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->page == MAP_FAILED) {
        s->page = NULL;
        return -1;
    }
    memset(s->page, 0xCC, s->page_len);
    for (i = 0; i < s->n; i++)
        write_stub((uint8_t *)s->page + i * STUB_SIZE, &s->desc[i]);
    if (mprotect(s->page, s->page_len, PROT_READ | PROT_EXEC) != 0) {
        int e = errno;
        munmap(s->page, s->page_len);
        s->page = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

void *pe_export_stub(const pe_export_stubs *s, unsigned i)
{
    return (uint8_t *)s->page + (size_t)i * STUB_SIZE;
}

void pe_export_stubs_free(pe_export_stubs *s)
{
    if (s->page)
        munmap(s->page, s->page_len);
    free(s->desc);
    memset(s, 0, sizeof *s);
}
