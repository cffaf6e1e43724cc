/*
 * Tests of the export gates (export_gate.h), built for x64 and x86 with ASan+UBSan by
 * mk/peloader.mk and run by tests/checks/76-export-gates.sh. "Driver code" here is
 * NTAPI code of this program called through pe_kcall, so it runs on the kernel stack
 * exactly as a loaded .sys does; it calls the simulator's side through gate stubs.
 *   - registers: an assembly caller fills every register the Windows convention calls
 *     nonvolatile (x64: rbx rbp rsi rdi r12-r15 xmm6-xmm15; x86: ebx ebp esi edi) with
 *     patterns, calls a stub, and checks them, the stack pointer (x86 stdcall: N bytes
 *     popped; cdecl: none) and the argument values the export saw;
 *   - the export runs on the host stack, not the kernel stack; the kernel stack's
 *     high-water mark does not grow with the export's own stack use;
 *   - nesting: export -> pe_kcall(driver callback) -> export, as StorPortSynchronizeAccess
 *     does: the callback runs on the kernel stack below the live driver frames;
 *   - i386: an export returning a PHYSICAL_ADDRESS union (GCC: hidden pointer) reaches
 *     the driver in EDX:EAX (pe_declare_struct_return);
 *   - the argument window is clamped to the top of the kernel stack (a call from the
 *     first driver frame must not read beyond the mapping).
 * Exit 0 and "ok" on success; any failure prints FAIL and exits 1.
 */
#define _GNU_SOURCE
#include "export_gate.h"
#include "kstack.h"
#include "peloader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static uintptr_t kstack_lo_seen, kstack_hi_seen;

static int on_host_stack(void)
{
    volatile char here;
    return !pe_on_kernel_stack() && !((uintptr_t)&here >= kstack_lo_seen && (uintptr_t)&here < kstack_hi_seen);
}

/* ---- the simulator's side ---- */
static uintptr_t seen[8];
static unsigned calls;

/* x86: stdcall @16; x64: four register arguments. Returns a value with all bits used. */
static ULONGLONG NTAPI Exp_Four(ULONG_PTR a, ULONG_PTR b, ULONG_PTR c, ULONG_PTR d)
{
    seen[0] = a; seen[1] = b; seen[2] = c; seen[3] = d;
    calls++;
    CHECK(on_host_stack());
    return 0x8877665544332211ULL;
}

/* cdecl variadic on x86 (caller pops); ms_abi variadic on x64. */
static ULONG __cdecl Exp_Variadic(ULONG type, PVOID ext, ...)
{
#if defined(__x86_64__)
    __builtin_ms_va_list ap;
    __builtin_ms_va_start(ap, ext);
#else
    va_list ap;
    va_start(ap, ext);
#endif
    seen[0] = type;
    seen[1] = (uintptr_t)ext;
    seen[2] = __builtin_va_arg(ap, ULONG);
    seen[3] = __builtin_va_arg(ap, ULONG);
    seen[4] = __builtin_va_arg(ap, ULONG);
#if defined(__x86_64__)
    __builtin_ms_va_end(ap);
#else
    va_end(ap);
#endif
    calls++;
    CHECK(on_host_stack());
    return 0x5A5A5A5Au;
}

/* Seven arguments (x86 stdcall @28, like StorPortGetDeviceBase; x64: three on the stack). */
static ULONG NTAPI Exp_Seven(ULONG_PTR a, ULONG_PTR b, ULONG_PTR c, ULONG_PTR d, ULONG_PTR e, ULONG_PTR f,
                             ULONG_PTR g)
{
    return (ULONG)(a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g);
}

/* Uses a lot of stack: on the kernel stack this would blow the 12 KiB guard page. */
static ULONG NTAPI Exp_Heavy(ULONG n)
{
    volatile char big[64 * 1024];
    memset((char *)big, (int)n, sizeof big);
    CHECK(on_host_stack());
    return big[n % sizeof big] == (char)n;
}

/* StorPortSynchronizeAccess(ext, callback, context): calls the driver back. */
typedef BOOLEAN (NTAPI *sync_cb)(PVOID, PVOID);
static void *stub_four, *stub_heavy;
static uintptr_t inner_frame, outer_frame;

static BOOLEAN NTAPI Exp_Synchronize(PVOID ext, PVOID callback, PVOID context)
{
    CHECK(on_host_stack());
    return (BOOLEAN)PE_KCALL(callback, ext, context);
}

#if defined(__i386__)
static LARGE_INTEGER NTAPI Exp_PhysicalAddress(PVOID e, PVOID s, PVOID v, PULONG len)
{
    LARGE_INTEGER pa;
    (void)e; (void)s;
    *len = 512;
    pa.QuadPart = (LONGLONG)0xFEDCBA9876543210ULL + (LONGLONG)(uintptr_t)v;
    return pa;
}
#endif

/* ---- the driver's side (runs on the kernel stack) ---- */
typedef ULONGLONG (NTAPI *four_fn)(ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR);
typedef ULONG (__cdecl *variadic_fn)(ULONG, PVOID, ...);
typedef ULONG (NTAPI *seven_fn)(ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR, ULONG_PTR);
typedef ULONG (NTAPI *heavy_fn)(ULONG);
typedef BOOLEAN (NTAPI *sync_fn)(PVOID, PVOID, PVOID);
/* How Windows x86 code receives an 8-byte struct: EDX:EAX, i.e. GCC's view of a LONGLONG
 * return (GCC itself would use a hidden pointer for LARGE_INTEGER). */
typedef LONGLONG (NTAPI *pa_fn)(PVOID, PVOID, PVOID, PULONG);

static BOOLEAN NTAPI Drv_SyncCallback(PVOID ext, PVOID context)
{
    volatile char here;
    inner_frame = (uintptr_t)&here;
    CHECK(pe_on_kernel_stack());
    CHECK((uintptr_t)ext == 0x1234 && (uintptr_t)context == 0x5678);
    /* an export again, from the nested driver call */
    return ((heavy_fn)stub_heavy)(7) == 1;
}

static ULONG_PTR NTAPI Drv_Main(PVOID sync_stub, PVOID variadic_stub, PVOID seven_stub)
{
    volatile char here;
    ULONG_PTR ok = 1;
    outer_frame = (uintptr_t)&here;
    ok &= ((four_fn)stub_four)(1, 2, 3, 4) == 0x8877665544332211ULL;
    ok &= seen[0] == 1 && seen[3] == 4;
    ok &= ((variadic_fn)variadic_stub)(9, (PVOID)0x99, 10u, 11u, 12u) == 0x5A5A5A5Au;
    ok &= seen[0] == 9 && seen[1] == 0x99 && seen[2] == 10 && seen[3] == 11 && seen[4] == 12;
    ok &= ((seven_fn)seven_stub)(1, 1, 1, 1, 1, 1, 1) == 28;
    ok &= ((heavy_fn)stub_heavy)(3) == 1;
    ok &= ((sync_fn)sync_stub)((PVOID)0x1234, (PVOID)Drv_SyncCallback, (PVOID)0x5678) == TRUE;
    return ok;
}

#if defined(__i386__)
static ULONG_PTR NTAPI Drv_PhysicalAddress(PVOID pa_stub)
{
    ULONG len = 0;
    LONGLONG pa = ((pa_fn)pa_stub)(NULL, NULL, (PVOID)0x10, &len);
    return pa == (LONGLONG)0xFEDCBA9876543220ULL && len == 512;
}
#endif

/* ---- the register probe: a hand-written caller of a gate stub ----
 * out[0] = return value, then the nonvolatile registers after the call, the stack
 * pointer before and after; the patterns are i * 0x0101010101010101 (x64: per register,
 * xmm as two qwords) / i * 0x01010101 (x86). */
#if defined(__x86_64__)
/* ms_abi: regs_probe(stub = rcx, out = rdx). out: [0] rax, [1..8] rbx rbp rsi rdi r12 r13
 * r14 r15, [9] rsp before, [10] rsp after, [11..30] xmm6..xmm15 (2 qwords each). */
__asm__(
    ".text\n.globl regs_probe\n.type regs_probe,@function\nregs_probe:\n"
    "  pushq %rbp\n pushq %rbx\n pushq %rsi\n pushq %rdi\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
    "  subq $168, %rsp\n"
    "  movdqu %xmm6, 0(%rsp)\n movdqu %xmm7, 16(%rsp)\n movdqu %xmm8, 32(%rsp)\n movdqu %xmm9, 48(%rsp)\n"
    "  movdqu %xmm10, 64(%rsp)\n movdqu %xmm11, 80(%rsp)\n movdqu %xmm12, 96(%rsp)\n movdqu %xmm13, 112(%rsp)\n"
    "  movdqu %xmm14, 128(%rsp)\n movdqu %xmm15, 144(%rsp)\n"
    "  subq $48, %rsp\n"                    /* home area + the out pointer at 40 */
    "  movq %rdx, 40(%rsp)\n movq %rcx, %r11\n"
    "  movabsq $0x0101010101010101, %rax\n"
    "  movq %rax, %rbx\n"
    "  movabsq $0x0202020202020202, %rbp\n movabsq $0x0303030303030303, %rsi\n"
    "  movabsq $0x0404040404040404, %rdi\n movabsq $0x0505050505050505, %r12\n"
    "  movabsq $0x0606060606060606, %r13\n movabsq $0x0707070707070707, %r14\n"
    "  movabsq $0x0808080808080808, %r15\n"
    "  movabsq $0x0909090909090909, %rax\n movq %rax, %xmm6\n pinsrq $1, %rax, %xmm6\n"
    "  movabsq $0x0a0a0a0a0a0a0a0a, %rax\n movq %rax, %xmm7\n pinsrq $1, %rax, %xmm7\n"
    "  movabsq $0x0b0b0b0b0b0b0b0b, %rax\n movq %rax, %xmm8\n pinsrq $1, %rax, %xmm8\n"
    "  movabsq $0x0c0c0c0c0c0c0c0c, %rax\n movq %rax, %xmm9\n pinsrq $1, %rax, %xmm9\n"
    "  movabsq $0x0d0d0d0d0d0d0d0d, %rax\n movq %rax, %xmm10\n pinsrq $1, %rax, %xmm10\n"
    "  movabsq $0x0e0e0e0e0e0e0e0e, %rax\n movq %rax, %xmm11\n pinsrq $1, %rax, %xmm11\n"
    "  movabsq $0x0f0f0f0f0f0f0f0f, %rax\n movq %rax, %xmm12\n pinsrq $1, %rax, %xmm12\n"
    "  movabsq $0x1010101010101010, %rax\n movq %rax, %xmm13\n pinsrq $1, %rax, %xmm13\n"
    "  movabsq $0x1111111111111111, %rax\n movq %rax, %xmm14\n pinsrq $1, %rax, %xmm14\n"
    "  movabsq $0x1212121212121212, %rax\n movq %rax, %xmm15\n pinsrq $1, %rax, %xmm15\n"
    "  movq 40(%rsp), %rax\n movq %rsp, 72(%rax)\n"
    "  movl $1, %ecx\n movl $2, %edx\n movl $3, %r8d\n movl $4, %r9d\n"
    "  callq *%r11\n"
    "  movq 40(%rsp), %r11\n"
    "  movq %rax, 0(%r11)\n movq %rbx, 8(%r11)\n movq %rbp, 16(%r11)\n movq %rsi, 24(%r11)\n"
    "  movq %rdi, 32(%r11)\n movq %r12, 40(%r11)\n movq %r13, 48(%r11)\n movq %r14, 56(%r11)\n"
    "  movq %r15, 64(%r11)\n movq %rsp, 80(%r11)\n"
    "  movdqu %xmm6, 88(%r11)\n movdqu %xmm7, 104(%r11)\n movdqu %xmm8, 120(%r11)\n movdqu %xmm9, 136(%r11)\n"
    "  movdqu %xmm10, 152(%r11)\n movdqu %xmm11, 168(%r11)\n movdqu %xmm12, 184(%r11)\n"
    "  movdqu %xmm13, 200(%r11)\n movdqu %xmm14, 216(%r11)\n movdqu %xmm15, 232(%r11)\n"
    "  addq $48, %rsp\n"
    "  movdqu 0(%rsp), %xmm6\n movdqu 16(%rsp), %xmm7\n movdqu 32(%rsp), %xmm8\n movdqu 48(%rsp), %xmm9\n"
    "  movdqu 64(%rsp), %xmm10\n movdqu 80(%rsp), %xmm11\n movdqu 96(%rsp), %xmm12\n movdqu 112(%rsp), %xmm13\n"
    "  movdqu 128(%rsp), %xmm14\n movdqu 144(%rsp), %xmm15\n"
    "  addq $168, %rsp\n"
    "  popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rdi\n popq %rsi\n popq %rbx\n popq %rbp\n"
    "  ret\n.size regs_probe, .-regs_probe\n");
#define PROBE_WORDS 31
#else
/* stdcall regs_probe(stub, out, cdecl): out: [0] eax, [1] edx, [2..5] ebx ebp esi edi,
 * [6] esp before pushing the four arguments, [7] esp after the call. The out pointer
 * sits above the arguments, so it is found again only if the callee popped correctly. */
__asm__(
    ".text\n.globl regs_probe\n.type regs_probe,@function\nregs_probe:\n"
    "  pushl %ebp\n pushl %ebx\n pushl %esi\n pushl %edi\n"
    "  movl 20(%esp), %eax\n movl 24(%esp), %ecx\n movl 28(%esp), %edx\n"
    "  pushl %ecx\n"                       /* out */
    "  movl %esp, 24(%ecx)\n"
    "  movl $0x01010101, %ebx\n movl $0x02020202, %ebp\n movl $0x03030303, %esi\n movl $0x04040404, %edi\n"
    "  pushl $4\n pushl $3\n pushl $2\n pushl $1\n"
    "  testl %edx, %edx\n jz 1f\n"
    "  calll *%eax\n addl $16, %esp\n jmp 2f\n"   /* cdecl: the caller pops */
    "1: calll *%eax\n"                        /* stdcall: the callee popped */
    "2: movl (%esp), %ecx\n"
    "  movl %eax, 0(%ecx)\n movl %edx, 4(%ecx)\n movl %ebx, 8(%ecx)\n movl %ebp, 12(%ecx)\n"
    "  movl %esi, 16(%ecx)\n movl %edi, 20(%ecx)\n movl %esp, 28(%ecx)\n"
    "  popl %ecx\n popl %edi\n popl %esi\n popl %ebx\n popl %ebp\n"
    "  ret $12\n.size regs_probe, .-regs_probe\n");
#define PROBE_WORDS 8
#endif

extern char regs_probe[];

/* clamp_probe(stub, stack_hi): calls the stub with the stack pointer a few bytes below
 * the top of the kernel stack (after saving the 256 bytes there, which hold the live
 * entry frames, and before restoring them): the gate's argument window then reaches past
 * the end of the mapping and must be cut there. The two slots that fit hold markers. */
#if defined(__x86_64__)
__asm__(
    ".text\n.globl clamp_probe\n.type clamp_probe,@function\nclamp_probe:\n"   /* ms_abi: rcx stub, rdx stack_hi */
    "  pushq %rbp\n movq %rsp, %rbp\n pushq %rbx\n pushq %rsi\n pushq %rdi\n pushq %r12\n"
    "  subq $512, %rsp\n movq %rcx, %r12\n movq %rdx, %rbx\n"
    "  leaq -256(%rbx), %rsi\n movq %rsp, %rdi\n movl $32, %ecx\n cld\n rep movsq\n"
    "  movabsq $0xAAAAAAAAAAAAAAAA, %rax\n movq %rax, -16(%rbx)\n"
    "  movabsq $0xBBBBBBBBBBBBBBBB, %rax\n movq %rax, -8(%rbx)\n"
    "  movq %rsp, %rdi\n leaq -48(%rbx), %rsp\n"
    "  movl $1, %ecx\n movl $2, %edx\n movl $3, %r8d\n movl $4, %r9d\n"
    "  callq *%r12\n"
    "  movq %rdi, %rsp\n"
    "  movq %rsp, %rsi\n leaq -256(%rbx), %rdi\n movl $32, %ecx\n rep movsq\n"
    "  addq $512, %rsp\n popq %r12\n popq %rdi\n popq %rsi\n popq %rbx\n popq %rbp\n ret\n"
    ".size clamp_probe, .-clamp_probe\n");
#else
__asm__(
    ".text\n.globl clamp_probe\n.type clamp_probe,@function\nclamp_probe:\n"   /* stdcall (stub, stack_hi) */
    "  pushl %ebp\n movl %esp, %ebp\n pushl %ebx\n pushl %esi\n pushl %edi\n"
    "  subl $512, %esp\n movl 8(%ebp), %eax\n movl 12(%ebp), %ebx\n"
    "  leal -256(%ebx), %esi\n movl %esp, %edi\n movl $64, %ecx\n cld\n rep movsl\n"
    "  movl $0xAAAAAAAA, -8(%ebx)\n movl $0xBBBBBBBB, -4(%ebx)\n"
    "  movl %esp, %edi\n leal -8(%ebx), %esp\n"
    "  calll *%eax\n"                     /* cdecl: nothing to pop */
    "  movl %edi, %esp\n"
    "  movl %esp, %esi\n leal -256(%ebx), %edi\n movl $64, %ecx\n rep movsl\n"
    "  addl $512, %esp\n popl %edi\n popl %esi\n popl %ebx\n popl %ebp\n ret $8\n"
    ".size clamp_probe, .-clamp_probe\n");
#endif
extern char clamp_probe[];

/* Sees the whole window: 16 slots (x86 cdecl, bound to a variadic name; x64 ms_abi). */
static uintptr_t window[16];
#define W uintptr_t
static ULONG __cdecl Exp_Window(W a, W b, W c, W d, W e, W f, W g, W h, W i, W j, W k, W l, W m, W n, W o, W p)
{
    const uintptr_t v[16] = { a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p };
    memcpy(window, v, sizeof v);
    return 77;
}
#undef W

static uintptr_t NTAPI kstack_where(uintptr_t unused)
{
    volatile char here;
    (void)unused;
    return (uintptr_t)&here;
}

static void test_registers(const pe_export_stubs *s, unsigned four, unsigned variadic)
{
    uintptr_t out[PROBE_WORDS];
    unsigned i;
    memset(out, 0, sizeof out);
    memset(seen, 0, sizeof seen);
#if defined(__x86_64__)
    (void)variadic;
    PE_KCALL(regs_probe, pe_export_stub(s, four), out);
    CHECK(out[0] == 0x8877665544332211ULL);
    for (i = 1; i <= 8; i++)
        if (out[i] != i * 0x0101010101010101ULL) {
            fprintf(stderr, "FAIL: register %u (rbx rbp rsi rdi r12-r15) 0x%lx\n", i, (unsigned long)out[i]);
            failures++;
        }
    CHECK(out[10] == out[9]);                          /* Microsoft x64: the caller pops */
    for (i = 0; i < 20; i++)
        if (out[11 + i] != (9 + i / 2) * 0x0101010101010101ULL) {
            fprintf(stderr, "FAIL: xmm%u qword %u 0x%lx\n", 6 + i / 2, i % 2, (unsigned long)out[11 + i]);
            failures++;
        }
    CHECK(seen[0] == 1 && seen[1] == 2 && seen[2] == 3 && seen[3] == 4);
#else
    /* stdcall @16: EDX:EAX is the 8-byte return, ESP back where it was */
    PE_KCALL(regs_probe, pe_export_stub(s, four), out, 0);
    CHECK(out[0] == 0x44332211u && out[1] == 0x88776655u);
    for (i = 2; i <= 5; i++)
        if (out[i] != (i - 1) * 0x01010101u) {
            fprintf(stderr, "FAIL: register %u (ebx ebp esi edi) 0x%lx\n", i, (unsigned long)out[i]);
            failures++;
        }
    CHECK(out[7] == out[6]);
    CHECK(seen[0] == 1 && seen[1] == 2 && seen[2] == 3 && seen[3] == 4);
    /* cdecl: the callee pops nothing (the probe pops 16 itself) */
    memset(out, 0, sizeof out);
    PE_KCALL(regs_probe, pe_export_stub(s, variadic), out, 1);
    CHECK(out[0] == 0x5A5A5A5Au);
    for (i = 2; i <= 5; i++)
        CHECK(out[i] == (i - 1) * 0x01010101u);
    CHECK(out[7] == out[6]);
    CHECK(seen[0] == 1 && seen[1] == 2 && seen[2] == 3 && seen[3] == 4);
#endif
}

int main(void)
{
    static const struct { const char *name; void *fn; } exports[] = {
        { "StorPortDeviceReady", (void *)Exp_Four },            /* @16 */
        { "StorPortNotification", (void *)Exp_Variadic },       /* cdecl */
        { "StorPortGetDeviceBase", (void *)Exp_Seven },         /* @28 */
        { "StorPortStallExecution", (void *)Exp_Heavy },        /* @4 */
        { "StorPortSynchronizeAccess", (void *)Exp_Synchronize }, /* @12 */
        { "StorPortDebugPrint", (void *)Exp_Window },            /* cdecl */
#if defined(__i386__)
        { "StorPortGetPhysicalAddress", (void *)Exp_PhysicalAddress }, /* @16, returns a union */
#endif
    };
    const unsigned n = sizeof exports / sizeof exports[0];
    pe_export_stubs s = { .n = n };
    char err[200];
    unsigned i;
    size_t hw_before, hw_after;
#if defined(__i386__)
    CHECK(pe_declare_struct_return((const void *)Exp_PhysicalAddress) == 0);
#endif
    s.desc = calloc(n, sizeof *s.desc);
    CHECK(s.desc != NULL);
    for (i = 0; i < n; i++)
        if (pe_export_describe(&s.desc[i], exports[i].name, exports[i].fn, 0, err, sizeof err) != 0) {
            fprintf(stderr, "FAIL: describe %s: %s\n", exports[i].name, err);
            return 1;
        }
    /* x86 conventions from driver/storport-x86.def */
    CHECK(pe_x86_export_arg_bytes("StorPortGetDeviceBase") == 28);
    CHECK(pe_x86_export_arg_bytes("StorPortNotification") == -1);
    CHECK(pe_x86_export_arg_bytes("StorPortFoo") == -2);
#if defined(__i386__)
    CHECK(s.desc[2].kind == PE_EXPORT_STDCALL && s.desc[2].pop_bytes == 28);
    CHECK(s.desc[1].kind == PE_EXPORT_CDECL && s.desc[1].pop_bytes == 0);
    CHECK(s.desc[6].flags & PE_IMPORT_STRUCT_RETURN);
    CHECK(pe_export_describe(&s.desc[0], "StorPortFoo", (void *)Exp_Four, 0, err, sizeof err) == -1);
    CHECK(strstr(err, "no x86 calling convention known") != NULL);
    CHECK(pe_export_describe(&s.desc[0], "StorPortDeviceReady", (void *)Exp_Four, 0, err, sizeof err) == 0);
#endif
    if (pe_export_stubs_make(&s) != 0) {
        perror("pe_export_stubs_make");
        return 1;
    }
    stub_four = pe_export_stub(&s, 0);
    stub_heavy = pe_export_stub(&s, 3);
    if (pe_thread_init(err, sizeof err) != 0) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    /* Where the kernel stack is: a driver frame tells. */
    {
        uintptr_t probe = PE_KCALL(kstack_where, 0);
        kstack_hi_seen = (probe + 4095) & ~(uintptr_t)4095;    /* the first frame: in the top page */
        kstack_lo_seen = kstack_hi_seen - PE_KSTACK_SIZE;
    }

    /* 1. registers, stack pointer, arguments, return values */
    test_registers(&s, 0, 1);
    /* 2. the stubs called straight from the first driver frame (argument window clamped
     * at the top of the kernel stack), more arguments than registers, variadic */
    CHECK(PE_KCALL(pe_export_stub(&s, 2), 1, 2, 3, 4, 5, 6, 7) == 1 + 4 + 9 + 16 + 25 + 36 + 49);
    /* 2b. a call 8 (x86) / 48 (x64) bytes below the top of the kernel stack: the window
     * is cut at the end of the mapping, the slots past it read as 0 */
    memset(window, 0xEE, sizeof window);
    CHECK(PE_KCALL(clamp_probe, pe_export_stub(&s, 5), kstack_hi_seen) == 77);
    for (i = 0; i < 16; i++) {
#if defined(__x86_64__)
        uintptr_t want = i < 4 ? i + 1 : i == 4 ? 0xAAAAAAAAAAAAAAAAULL : i == 5 ? 0xBBBBBBBBBBBBBBBBULL : 0;
#else
        uintptr_t want = i == 0 ? 0xAAAAAAAAu : i == 1 ? 0xBBBBBBBBu : 0;
#endif
        if (window[i] != want) {
            fprintf(stderr, "FAIL: window slot %u: 0x%lx, expected 0x%lx\n", i, (unsigned long)window[i],
                    (unsigned long)want);
            failures++;
        }
    }
    /* 3. a driver routine using every kind, a heavy export and a nested callback */
    hw_before = pe_kstack_high_water();
    CHECK(PE_KCALL(Drv_Main, pe_export_stub(&s, 4), pe_export_stub(&s, 1), pe_export_stub(&s, 2)) == 1);
    hw_after = pe_kstack_high_water();
    CHECK(hw_after < 4096);            /* the 64 KiB export frame stayed on the host stack */
    CHECK(inner_frame < outer_frame && inner_frame >= kstack_lo_seen && outer_frame < kstack_hi_seen);
    CHECK(!pe_on_kernel_stack());
#if defined(__i386__)
    /* 4. PHYSICAL_ADDRESS return: GCC's hidden pointer to EDX:EAX */
    CHECK(PE_KCALL(Drv_PhysicalAddress, pe_export_stub(&s, 6)) == 1);
#endif
    printf("kernel stack: %zu bytes used before the nested test, %zu after (of %u); export calls: %u\n",
           hw_before, hw_after, PE_KSTACK_SIZE, calls);
    pe_export_stubs_free(&s);
    pe_thread_release();
    if (failures) {
        printf("FAIL: %d export-gate checks failed\n", failures);
        return 1;
    }
    printf("ok: export gates (%s): registers, stack pointer, arguments, return values, host stack, nesting%s\n",
#if defined(__x86_64__)
           "x64", ""
#else
           "x86", ", PHYSICAL_ADDRESS in EDX:EAX"
#endif
    );
    return 0;
}
