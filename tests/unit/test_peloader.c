/*
 * Tests of sim/pe: the x86 decoder, the MMIO trap (every supported instruction form
 * run twice, on RAM and on a trapped window, and compared: registers, flags and
 * memory must match what the CPU itself does), the PE loader with mingw-built fixture
 * drivers (tests/pe-fixtures: stdcall/ms_abi and cdecl-variadic imports, 8-byte
 * arguments and returns, MMIO, callbacks from two threads, INIT discard), refusal of
 * bad imports and malformed images, and the fatal paths (stack guard, unsupported
 * MMIO instruction, driver fault) in forked children.
 *
 * Built twice: x64 with cmocka, and gcc -m32 (the 32-bit simulator that runs the x86
 * .sys) with a small built-in runner, as no i386 libcmocka is installed.
 * Usage: test_peloader                 run the tests (fixtures from $PE_FIXTURES or
 *                                      out/pe-fixtures/{amd64,x86})
 *        test_peloader load FILE.sys   load only; print the loader's verdict
 *        test_peloader load-win7 FILE.sys  load against all 61 Windows 7 exports (stubs)
 *        test_peloader run FILE.sys MODE   load and call DriverEntry with FX_MODE_*
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "kstack.h"
#include "mmio_trap.h"
#include "peloader.h"
#include "x86dec.h"

#if PE_TEST_BUILTIN_RUNNER
/* ---- minimal stand-in for the cmocka subset used below ---- */
struct CMUnitTest { const char *name; void (*fn)(void **); };
#define cmocka_unit_test(f) { #f, f }
static const char *current_test;
#define fail_msg(...) do { fprintf(stderr, "FAIL %s:%d (%s): ", __FILE__, __LINE__, current_test); \
                           fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } while (0)
#define assert_true(c) do { if (!(c)) fail_msg("%s", #c); } while (0)
#define assert_false(c) assert_true(!(c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_null(p) assert_true((p) == NULL)
#define assert_int_equal(a, b) do { unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
                                    if (a_ != b_) fail_msg("%s == %s: 0x%llx != 0x%llx", #a, #b, a_, b_); } while (0)
#define assert_int_not_equal(a, b) assert_true((a) != (b))
#define assert_string_equal(a, b) do { if (strcmp((a), (b))) fail_msg("\"%s\" != \"%s\"", (a), (b)); } while (0)
#define assert_memory_equal(a, b, n) assert_true(memcmp((a), (b), (n)) == 0)
static int run_tests(const struct CMUnitTest *t, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        current_test = t[i].name;
        printf("[ RUN      ] %s\n", t[i].name);
        fflush(stdout);
        t[i].fn(NULL);
        printf("[       OK ] %s\n", t[i].name);
    }
    printf("[  PASSED  ] %zu test(s).\n", n);
    return 0;
}
#define cmocka_run_group_tests(t, s, d) run_tests(t, sizeof(t) / sizeof((t)[0]))
#else
#include <cmocka.h>
#endif

#if defined(__x86_64__)
#define ARCH_DIR "amd64"
#else
#define ARCH_DIR "x86"
#endif

static char fixture_dir[512];

static void fixture_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s.sys", fixture_dir, name);
}

/* ---------------------------------------------------------------------------------
 * A trivial device for the MMIO window: a register file, an access log, and a few
 * registers with behaviour (see fixture.c Mmio()).
 * --------------------------------------------------------------------------------- */
struct access { unsigned off, width, write; uint32_t value; };
struct testdev {
    uint8_t regs[FX_MMIO_BYTES];
    uint8_t *base;
    struct access log[256];
    unsigned nlog;
    unsigned countdown;
    int special;            /* 0: plain register file */
    pthread_t owner_check;  /* thread the last access came from */
};
static struct testdev dev;

static uint32_t dev_read(void *ctx, uint64_t va, unsigned width)
{
    struct testdev *d = ctx;
    unsigned off = (unsigned)(va - (uint64_t)(uintptr_t)d->base);
    uint32_t v = 0;
    if (d->special && off == 0x08 && width == 1) v = 0x80;
    else if (d->special && off == 0x14 && width == 4) v = d->countdown ? d->countdown-- : 0;
    else if (d->special && off == 0x30 && width == 2) v = 0x8001;
    else memcpy(&v, d->regs + off, width);
    if (d->nlog < 256) d->log[d->nlog++] = (struct access){ off, width, 0, v };
    d->owner_check = pthread_self();
    return v;
}

static void dev_write(void *ctx, uint64_t va, unsigned width, uint32_t value)
{
    struct testdev *d = ctx;
    unsigned off = (unsigned)(va - (uint64_t)(uintptr_t)d->base);
    memcpy(d->regs + off, &value, width);
    if (d->nlog < 256) d->log[d->nlog++] = (struct access){ off, width, 1, value };
}

static const mmio_trap_ops dev_ops = { dev_read, dev_write };

static void dev_reset(int special)
{
    char err[128];
    /* cmocka installs its own SIGSEGV handler around each test: take it back. */
    assert_int_equal(mmio_trap_init(err, sizeof err), 0);
    if (!dev.base) {
        dev.base = mmio_trap_map(FX_MMIO_BYTES, &dev_ops, &dev, "bar0");
        assert_non_null(dev.base);
    }
    memset(dev.regs, 0, sizeof dev.regs);
    dev.nlog = 0;
    dev.countdown = 3;
    dev.special = special;
}

/* ---------------------------------------------------------------------------------
 * The fake storport.sys exports the fixtures import (Windows conventions).
 * --------------------------------------------------------------------------------- */
static unsigned stall_calls, sim_arg_errors;
static const FX_CALLBACKS *registered;

static VOID NTAPI Sim_StorPortStallExecution(ULONG Microseconds)
{
    if (Microseconds != stall_calls) sim_arg_errors++;
    stall_calls++;
}

static PVOID NTAPI Sim_StorPortGetDeviceBase(PVOID Ext, ULONG BusType, ULONG Bus, PHYSICAL_ADDRESS Address,
                                             ULONG Bytes, BOOLEAN InIoSpace)
{
    (void)Ext;
    if (BusType != 5 || Bus != 7 || Address.QuadPart != (LONGLONG)FX_MAGIC_PA || Bytes != FX_MMIO_BYTES || InIoSpace) {
        sim_arg_errors++;
        return NULL;
    }
    return dev.base;
}

/* The 8-byte PHYSICAL_ADDRESS return: Windows x86 returns it in EDX:EAX. i386 Linux GCC
 * returns unions through a hidden pointer, but a 64-bit integer in EDX:EAX, so the
 * simulator declares such exports as returning LONGLONG there (docs/pe-loader.md). */
#if defined(__x86_64__)
static PHYSICAL_ADDRESS NTAPI Sim_StorPortGetPhysicalAddress(PVOID Ext, PVOID Srb, PVOID Va, PULONG Length)
{
    PHYSICAL_ADDRESS pa;
    (void)Ext; (void)Srb;
    pa.QuadPart = (Va == (PVOID)0x1000) ? (LONGLONG)0xFEDCBA9876543210ULL : 0;
    *Length = 512;
    return pa;
}
#else
static LONGLONG NTAPI Sim_StorPortGetPhysicalAddress(PVOID Ext, PVOID Srb, PVOID Va, PULONG Length)
{
    (void)Ext; (void)Srb;
    *Length = 512;
    return (Va == (PVOID)0x1000) ? (LONGLONG)0xFEDCBA9876543210ULL : 0;
}
#endif

static ULONG NTAPI Sim_StorPortInitialize(PVOID A1, PVOID A2, PVOID HwInit, PVOID Ctx)
{
    (void)A1; (void)A2; (void)Ctx;
    registered = HwInit;
    return 0;
}

/* Variadic exports are cdecl: on x64 that is the Microsoft convention, whose va_list
 * differs from the SysV one (GCC: __builtin_ms_va_list). */
#if defined(__x86_64__)
#define SIM_VA_LIST __builtin_ms_va_list
#define SIM_VA_START __builtin_ms_va_start
#define SIM_VA_END __builtin_ms_va_end
#else
#define SIM_VA_LIST va_list
#define SIM_VA_START va_start
#define SIM_VA_END va_end
#endif

static VOID __cdecl Sim_StorPortNotification(ULONG Type, PVOID Ext, ...)
{
    SIM_VA_LIST ap;
    FX_CONTROL *c = Ext;
    ULONG sum = 0, i;
    SIM_VA_START(ap, Ext);
    if (Type == FX_NOTIFY_SUM)
        for (i = 0; i < 5; i++)
            sum += __builtin_va_arg(ap, ULONG);
    SIM_VA_END(ap);
    c->Value[0] = sum;
}

static ULONG __cdecl Sim_StorPortExtendedFunction(ULONG Code, PVOID Ext, ...)
{
    SIM_VA_LIST ap;
    ULONG a, c, r = 0;
    ULONGLONG b;
    (void)Ext;
    SIM_VA_START(ap, Ext);
    if (Code == FX_EXT_MIX) {
        a = __builtin_va_arg(ap, ULONG);
        b = __builtin_va_arg(ap, ULONGLONG);
        c = __builtin_va_arg(ap, ULONG);
        r = a * 3 + (ULONG)b + (ULONG)(b >> 32) * 5 + c * 7;
    }
    SIM_VA_END(ap);
    return r;
}

static const pe_import sim_exports[] = {
    { "storport.sys", "StorPortStallExecution", (void *)Sim_StorPortStallExecution },
    { "storport.sys", "StorPortGetDeviceBase", (void *)Sim_StorPortGetDeviceBase },
    { "storport.sys", "StorPortGetPhysicalAddress", (void *)Sim_StorPortGetPhysicalAddress },
    { "storport.sys", "StorPortInitialize", (void *)Sim_StorPortInitialize },
    { "STORPORT.SYS", "StorPortNotification", (void *)Sim_StorPortNotification },
    { "storport.sys", "StorPortExtendedFunction", (void *)Sim_StorPortExtendedFunction },
};
#define N_EXPORTS (sizeof sim_exports / sizeof sim_exports[0])

static void load_fixture(const char *name, pe_image *img)
{
    char path[600], err[256];
    fixture_path(path, sizeof path, name);
    assert_int_equal(mmio_trap_init(err, sizeof err), 0);
    if (pe_load(path, sim_exports, N_EXPORTS, img, err, sizeof err) != 0)
        fail_msg("pe_load(%s): %s", path, err);
}

static NTSTATUS run_entry(pe_image *img, FX_CONTROL *c)
{
    return (NTSTATUS)PE_KCALL(img->entry, c, NULL);
}

/* ---------------------------------------------------------------------------------
 * Forked child expected to die through pe_fatal with a message.
 * --------------------------------------------------------------------------------- */
static void expect_fatal(void (*fn)(void *), void *arg, const char *expect1, const char *expect2)
{
    int fds[2], status = 0;
    char out[4096];
    ssize_t n, got = 0;
    pid_t pid;
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        alarm(20);      /* never hang the suite */
        fn(arg);
        _exit(0);       /* returning is a failure: the fault went unnoticed */
    }
    close(fds[1]);
    while ((n = read(fds[0], out + got, sizeof out - 1 - (size_t)got)) > 0)
        got += n;
    out[got] = 0;
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    printf("    child said: %s", out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != PE_FATAL_EXIT)
        fail_msg("child status 0x%x, expected exit %d; output: %s", status, PE_FATAL_EXIT, out);
    if (!strstr(out, expect1) || (expect2 && !strstr(out, expect2)))
        fail_msg("child output lacks \"%s\"/\"%s\": %s", expect1, expect2 ? expect2 : "", out);
}

/* =================================================================================
 * Decoder
 * ================================================================================= */
static void test_decoder_refuses(void **state)
{
    static const struct { uint8_t b[8]; unsigned n; int m64; const char *why; } bad[] = {
        { { 0x87, 0x08 }, 2, 1, "unsupported opcode" },                 /* xchg [rax], ecx */
        { { 0xF3, 0xA4 }, 2, 1, "REP" },                                /* rep movsb */
        { { 0x66, 0x0F, 0xD6, 0x00 }, 4, 1, "0F" },                     /* movq [rax], xmm0 */
        { { 0x64, 0x8B, 0x00 }, 3, 0, "FS/GS" },
        { { 0x67, 0x8B, 0x00 }, 3, 1, "address-size" },
        { { 0xF0, 0x09, 0x08 }, 3, 1, "LOCK" },
        { { 0x8B, 0xC0 }, 2, 1, "register operand" },
        { { 0x8B }, 1, 1, "truncated" },
        { { 0x8B, 0x80, 0x00, 0x01 }, 4, 1, "truncated" },              /* disp32 cut short */
        { { 0xF7, 0x18 }, 2, 0, "NOT/NEG" },
        { { 0x11, 0x08 }, 2, 0, "unsupported opcode" },                 /* adc */
        { { 0x81, 0x10, 0, 0, 0, 0 }, 6, 0, "ADC/SBB" },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        x86_insn d;
        const char *why = NULL;
        if (x86_decode(bad[i].b, bad[i].n, bad[i].m64, &d, &why) == 0)
            fail_msg("entry %zu decoded", i);
        assert_non_null(why);
        if (!strstr(why, bad[i].why))
            fail_msg("entry %zu: \"%s\" lacks \"%s\"", i, why, bad[i].why);
    }
}

static void test_decoder_forms(void **state)
{
    x86_insn d;
    const char *why;
    (void)state;
    /* 64-bit: mov r10d, [r9 + r12*4 + 0x12345678] = 46 8B 94 A1 78 56 34 12 */
    static const uint8_t a[] = { 0x47, 0x8B, 0x94, 0xA1, 0x78, 0x56, 0x34, 0x12 };
    assert_int_equal(x86_decode(a, sizeof a, 1, &d, &why), 0);
    assert_int_equal(d.len, 8);
    assert_int_equal(d.kind, X86_LOAD);
    assert_int_equal(d.reg, 10);
    assert_int_equal(d.base, 9);
    assert_int_equal(d.index, 12);
    assert_int_equal(d.scale, 4);
    assert_int_equal(d.disp, 0x12345678);
    assert_int_equal(d.mem_width, 4);
    /* 32-bit: mov [disp32], imm16 = 66 C7 05 <disp32> <imm16> */
    static const uint8_t b[] = { 0x66, 0xC7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x34, 0x12 };
    assert_int_equal(x86_decode(b, sizeof b, 0, &d, &why), 0);
    assert_int_equal(d.len, 9);
    assert_true(d.absolute);
    assert_int_equal(d.disp, 0x1000);
    assert_int_equal(d.imm, 0x1234);
    assert_int_equal(d.mem_width, 2);
    /* same bytes in 64-bit mode: RIP-relative */
    assert_int_equal(x86_decode(b, sizeof b, 1, &d, &why), 0);
    assert_true(d.rip_relative);
    /* 64-bit: mov eax, [moffs64] = A1 <8 bytes> */
    static const uint8_t c[] = { 0xA1, 8, 7, 6, 5, 4, 3, 2, 1 };
    assert_int_equal(x86_decode(c, sizeof c, 1, &d, &why), 0);
    assert_int_equal(d.len, 9);
    assert_int_equal((uint64_t)d.disp, 0x0102030405060708ull);
    /* mov ah, [ebx] = 8A 23: high byte register without REX; with REX (40 8A 23) = spl */
    static const uint8_t e[] = { 0x8A, 0x23 }, f[] = { 0x40, 0x8A, 0x23 };
    assert_int_equal(x86_decode(e, sizeof e, 1, &d, &why), 0);
    assert_true(d.reg_high8);
    assert_int_equal(d.reg, 4);
    assert_int_equal(x86_decode(f, sizeof f, 1, &d, &why), 0);
    assert_false(d.reg_high8);
    /* cmp dword [eax], imm8 sign-extended: 83 38 FF */
    static const uint8_t g[] = { 0x83, 0x38, 0xFF };
    assert_int_equal(x86_decode(g, sizeof g, 0, &d, &why), 0);
    assert_int_equal(d.kind, X86_COMPARE);
    assert_int_equal(d.imm, 0xFFFFFFFFu);
}

/* x86_alu_exec against the CPU. */
#define ALU_ASM(insn, suffix, reg)                                                          \
    static uint32_t hw_##insn##suffix(uint64_t a, uint64_t b, uint64_t *res)                \
    {                                                                                       \
        uintptr_t x = (uintptr_t)a, y = (uintptr_t)b, fl;                                    \
        __asm__ volatile(#insn #suffix " %" reg "2, %" reg "0\n\t" PUSHF_POP                \
                         : "+q"(x), "=r"(fl) : "q"(y) : "cc");                              \
        *res = x;                                                                           \
        return (uint32_t)fl;                                                                \
    }
#if defined(__x86_64__)
#define PUSHF_POP "lea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %1\n\tlea 128(%%rsp), %%rsp"
#else
#define PUSHF_POP "pushfl\n\tpopl %1"
#endif
#define ALU_ALL(insn) ALU_ASM(insn, b, "b") ALU_ASM(insn, w, "w") ALU_ASM(insn, l, "k")
ALU_ALL(add) ALU_ALL(or) ALU_ALL(and) ALU_ALL(sub) ALU_ALL(xor) ALU_ALL(cmp) ALU_ALL(test)

static void test_alu_flags_match_cpu(void **state)
{
    typedef uint32_t (*hwfn)(uint64_t, uint64_t, uint64_t *);
    static const struct { x86_alu op; hwfn f[3]; int writes; } ops[] = {
        { X86_ADD, { hw_addb, hw_addw, hw_addl }, 1 }, { X86_OR, { hw_orb, hw_orw, hw_orl }, 1 },
        { X86_AND, { hw_andb, hw_andw, hw_andl }, 1 }, { X86_SUB, { hw_subb, hw_subw, hw_subl }, 1 },
        { X86_XOR, { hw_xorb, hw_xorw, hw_xorl }, 1 }, { X86_CMP, { hw_cmpb, hw_cmpw, hw_cmpl }, 0 },
        { X86_TEST, { hw_testb, hw_testw, hw_testl }, 0 },
    };
    static const uint64_t vals[] = { 0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x12345678,
                                     0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x0F0F0F0F, 0xDEADBEEF };
    static const unsigned widths[3] = { 1, 2, 4 };
    size_t o, w, i, j;
    uint64_t seed = 0x1234567;
    (void)state;
    for (o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (w = 0; w < 3; w++)
            for (i = 0; i < 16 + 200; i++)
                for (j = 0; j < 16; j++) {
                    uint64_t a, b, hres, sres, mask = widths[w] == 4 ? 0xFFFFFFFFu : (1u << (8 * widths[w])) - 1;
                    uint32_t hf, sf, cmpmask = X86_FLAGS_ARITH;
                    if (i < 16) a = vals[i];
                    else { seed = seed * 6364136223846793005ull + 1442695040888963407ull; a = seed >> 20; }
                    b = vals[(j + i) % 16];
                    /* the asm is "op src=b, dst=a" (AT&T): dst = a op b */
                    hf = ops[o].f[w](a & mask, b & mask, &hres) & X86_FLAGS_ARITH;
                    sres = x86_alu_exec(ops[o].op, widths[w], a, b, &sf);
                    if (ops[o].op == X86_OR || ops[o].op == X86_AND || ops[o].op == X86_XOR || ops[o].op == X86_TEST)
                        cmpmask &= ~0x010u;     /* AF undefined for logic ops */
                    if ((hf & cmpmask) != (sf & cmpmask))
                        fail_msg("op %d width %u a=0x%llx b=0x%llx: cpu flags 0x%x, emulated 0x%x", ops[o].op,
                                 widths[w], (unsigned long long)a, (unsigned long long)b, hf, sf);
                    if (ops[o].writes && (hres & mask) != sres)
                        fail_msg("op %d width %u: result 0x%llx vs 0x%llx", ops[o].op, widths[w],
                                 (unsigned long long)(hres & mask), (unsigned long long)sres);
                }
}

/* =================================================================================
 * MMIO trap, instruction by instruction: each form runs once on RAM and once on the
 * trapped window holding the same bytes; register, flags and memory must agree.
 * ================================================================================= */
typedef struct form_out { uintptr_t v, fl; } form_out;
typedef void (*form_fn)(uint8_t *p, form_out *o);

/* v in a legacy register with a high byte (Q), p in EDI/RDI: AH..BH forms cannot be
 * encoded together with a REX prefix. */
#define FORM_(name, text, ...)                                                              \
    static void name(uint8_t *p, form_out *o)                                               \
    {                                                                                       \
        uintptr_t v = (uintptr_t)0x5A5A5A5AC3C3C3C3ull, fl, idx = 2;                        \
        __asm__ volatile("testl %k0, %k0\n\t" /* flags known before forms that keep them */  \
                         text "\n\t" PUSHF_POP : "+Q"(v), "=&r"(fl) : "D"(p), "r"(idx)       \
                         : "memory", "cc" __VA_ARGS__);                                      \
        o->v = v; o->fl = fl & X86_FLAGS_ARITH;                                             \
    }
#define FORM(name, text) FORM_(name, text)
#define FORM64(name, text) FORM_(name, text, , "r8", "r9", "r10", "r11", "r12", "rsi")
FORM(f_ld32, "movl (%2), %k0")
FORM(f_ld16, "movw 2(%2), %w0")
FORM(f_ld8, "movb 3(%2), %b0")
FORM(f_ld8h, "movb 5(%2), %h0")
FORM(f_movzbl, "movzbl 7(%2), %k0")
FORM(f_movzwl, "movzwl 6(%2), %k0")
FORM(f_movsbl, "movsbl 8(%2), %k0")
FORM(f_movswl, "movswl 8(%2), %k0")
FORM(f_movzbw, "movzbw 9(%2), %w0")
FORM(f_movsbw, "movsbw 9(%2), %w0")
FORM(f_st32, "movl %k0, 12(%2)")
FORM(f_st16, "movw %w0, 16(%2)")
FORM(f_st8, "movb %b0, 18(%2)")
FORM(f_st8h, "movb %h0, 19(%2)")
FORM(f_sti32, "movl $0x11223344, 20(%2)")
FORM(f_sti16, "movw $0x5566, 24(%2)")
FORM(f_sti8, "movb $0x77, 26(%2)")
FORM(f_sib4, "movl (%2,%3,4), %k0")
FORM(f_sib2d8, "movl 0x10(%2,%3,2), %k0")
FORM(f_disp32, "movl 0x200(%2), %k0")
FORM(f_sib8st, "movl %k0, 0x300(%2,%3,8)")
FORM(f_cmpi32, "cmpl $5, (%2)")
FORM(f_cmpi8, "cmpb $0x80, 3(%2)")
FORM(f_cmpmr, "cmpl %k0, 4(%2)")
FORM(f_cmprm, "cmpl 4(%2), %k0")
FORM(f_cmpw, "cmpw $-1, 2(%2)")
FORM(f_testb, "testb $1, 1(%2)")
FORM(f_testl, "testl %k0, (%2)")
FORM(f_testw, "testw $0x8000, 2(%2)")
FORM(f_testl_i, "testl $0x80000000, (%2)")
FORM(f_or32, "orl $0x100, 32(%2)")
FORM(f_and8, "andb $0xF0, 33(%2)")
FORM(f_add32r, "addl %k0, 36(%2)")
FORM(f_sub16, "subw $1, 40(%2)")
FORM(f_xor32r, "xorl %k0, 44(%2)")
FORM(f_add8, "addb $0x7F, 46(%2)")
FORM(f_sub32, "subl $0x7FFFFFFF, 48(%2)")
FORM(f_or16r, "orw %w0, 50(%2)")
FORM(f_addrm, "addl (%2), %k0")
FORM(f_orrm8, "orb 3(%2), %b0")
FORM(f_andrm16, "andw 2(%2), %w0")
FORM(f_subrm, "subl 4(%2), %k0")
FORM(f_xorrm8h, "xorb 5(%2), %h0")
#if defined(__x86_64__)
FORM64(f_r11, "movq %0, %%r11\n\tmovl 4(%2), %%r11d\n\tmovq %%r11, %0")
FORM64(f_r9base, "movq %2, %%r9\n\tmovl 4(%%r9,%3,4), %k0")
FORM64(f_r12index, "movq %3, %%r12\n\tmovl 8(%2,%%r12,2), %k0")
FORM64(f_sil, "movq %0, %%rsi\n\tmovb 3(%2), %%sil\n\tmovq %%rsi, %0")
FORM64(f_r10b_st, "movq %0, %%r10\n\tmovb %%r10b, 60(%2)")
FORM64(f_movslq, "movslq 4(%2), %0")
FORM64(f_movzbq, "movzbq 5(%2), %0")
FORM64(f_cmpq_i, "cmpl $-2, 12(%2)")
FORM64(f_r8w_st, "movq %0, %%r8\n\tmovw %%r8w, 64(%2)")
#endif

static void test_trap_every_form(void **state)
{
    static const struct { const char *name; form_fn fn; } forms[] = {
#define F(x) { #x, x }
        F(f_ld32), F(f_ld16), F(f_ld8), F(f_ld8h), F(f_movzbl), F(f_movzwl), F(f_movsbl), F(f_movswl),
        F(f_movzbw), F(f_movsbw), F(f_st32), F(f_st16), F(f_st8), F(f_st8h), F(f_sti32), F(f_sti16),
        F(f_sti8), F(f_sib4), F(f_sib2d8), F(f_disp32), F(f_sib8st), F(f_cmpi32), F(f_cmpi8), F(f_cmpmr),
        F(f_cmprm), F(f_cmpw), F(f_testb), F(f_testl), F(f_testw), F(f_testl_i), F(f_or32), F(f_and8),
        F(f_add32r), F(f_sub16), F(f_xor32r), F(f_add8), F(f_sub32), F(f_or16r), F(f_addrm), F(f_orrm8),
        F(f_andrm16), F(f_subrm), F(f_xorrm8h),
#if defined(__x86_64__)
        F(f_r11), F(f_r9base), F(f_r12index), F(f_sil), F(f_r10b_st), F(f_movslq), F(f_movzbq),
        F(f_cmpq_i), F(f_r8w_st),
#endif
#undef F
    };
    static uint8_t ram[FX_MMIO_BYTES];
    size_t i, k, round;
    uint64_t seed = 42;
    char err[128];
    (void)state;
    assert_int_equal(mmio_trap_init(err, sizeof err), 0);
    dev_reset(0);
    for (round = 0; round < 4; round++) {
        for (k = 0; k < sizeof ram; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            ram[k] = (uint8_t)(seed >> 56);
        }
        if (round == 1) memset(ram, 0, 64);          /* zero results, ZF */
        if (round == 2) memset(ram, 0xFF, 64);       /* carries, sign */
        for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            form_out a, b;
            uint64_t r0, w0, r1, w1;
            memcpy(dev.regs, ram, sizeof ram);
            forms[i].fn(ram, &a);
            mmio_trap_counts(dev.base, &r0, &w0);
            forms[i].fn(dev.base, &b);
            mmio_trap_counts(dev.base, &r1, &w1);
            if (a.v != b.v || a.fl != b.fl)
                fail_msg("%s round %zu: RAM gives v=0x%llx fl=0x%llx, MMIO v=0x%llx fl=0x%llx", forms[i].name,
                         round, (unsigned long long)a.v, (unsigned long long)a.fl, (unsigned long long)b.v,
                         (unsigned long long)b.fl);
            if (memcmp(ram, dev.regs, sizeof ram) != 0)
                fail_msg("%s round %zu: memory differs after the access", forms[i].name, round);
            assert_true(r1 + w1 > r0 + w0);         /* it really trapped */
        }
    }
}

/* moffs and RIP-relative forms, from generated code (no assembler syntax reaches an
 * absolute runtime address). */
static void test_trap_moffs_and_riprel(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *code = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *win = code + page, *c = code;
    uintptr_t addr = (uintptr_t)win + 0x40;
    uint32_t (*load)(void), v;
    void (*store)(uint32_t);
    size_t i;
    char err[128];
    (void)state;
    assert_true(code != MAP_FAILED);
    assert_int_equal(mmio_trap_init(err, sizeof err), 0);
    assert_int_equal(mprotect(win, page, PROT_NONE), 0);
    assert_true(mmio_trap_register(win, page, &dev_ops, &dev, "riprel") >= 0);
    {   /* dev_read/write compute offsets from dev.base: point it at this window */
        uint8_t *saved = dev.base;
        dev.base = win;
        memset(dev.regs, 0, sizeof dev.regs);
        dev.special = 0;
        memcpy(dev.regs + 0x40, "\x78\x56\x34\x12", 4);
        /* load: A1 moffs; ret */
        load = (uint32_t (*)(void))(void *)c;
        *c++ = 0xA1;
        for (i = 0; i < sizeof(uintptr_t); i++) *c++ = (uint8_t)(addr >> (8 * i));
        *c++ = 0xC3;
        store = (void (*)(uint32_t))(void *)c;
#if defined(__x86_64__)
        *c++ = 0x89; *c++ = 0xF8;                                   /* mov eax, edi */
#else
        *c++ = 0x8B; *c++ = 0x44; *c++ = 0x24; *c++ = 0x04;         /* mov eax, [esp+4] */
#endif
        *c++ = 0xA3;                                                /* mov moffs, eax */
        for (i = 0; i < sizeof(uintptr_t); i++) *c++ = (uint8_t)((addr + 4) >> (8 * i));
        *c++ = 0xC3;
#if defined(__x86_64__)
        uint32_t (*rip_load)(void) = (uint32_t (*)(void))(void *)c;
        *c++ = 0x8B; *c++ = 0x05;                                   /* mov eax, [rip+disp32] */
        { int32_t disp = (int32_t)(addr - ((uintptr_t)c + 4)); memcpy(c, &disp, 4); c += 4; }
        *c++ = 0xC3;
        void (*rip_store)(void) = (void (*)(void))(void *)c;
        *c++ = 0xC7; *c++ = 0x05;                                   /* mov dword [rip+disp32], imm32 */
        { int32_t disp = (int32_t)(addr + 8 - ((uintptr_t)c + 8)); memcpy(c, &disp, 4); c += 4; }
        memcpy(c, "\xEF\xBE\xAD\xDE", 4); c += 4;
        *c++ = 0xC3;
#endif
        assert_int_equal(mprotect(code, page, PROT_READ | PROT_EXEC), 0);
        v = load();
        assert_int_equal(v, 0x12345678);
        store(0xCAFEF00D);
        assert_memory_equal(dev.regs + 0x44, "\x0D\xF0\xFE\xCA", 4);
#if defined(__x86_64__)
        assert_int_equal(rip_load(), 0x12345678);
        rip_store();
        assert_memory_equal(dev.regs + 0x48, "\xEF\xBE\xAD\xDE", 4);
#endif
        dev.base = saved;
    }
    mmio_trap_unregister(win);
    munmap(code, 2 * page);
}

/* Windows the caller maps and tracks itself reach the trap through the fallback. */
static uint8_t *fallback_page;
static int fallback_claims(void *ctx, uint64_t va)
{
    (void)ctx;
    return va >= (uint64_t)(uintptr_t)fallback_page && va < (uint64_t)(uintptr_t)fallback_page + 4096;
}

static void test_trap_fallback_windows(void **state)
{
    uint64_t r0, w0, r1, w1;
    uint32_t v;
    uint8_t *saved = dev.base;
    (void)state;
    dev_reset(0);
    fallback_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(fallback_page != MAP_FAILED);
    mmio_trap_set_fallback(fallback_claims, &dev_ops, &dev);
    mmio_trap_counts(NULL, &r0, &w0);
    dev.base = fallback_page;
    memcpy(dev.regs + 0x10, "\x11\x22\x33\x44", 4);
    v = *(volatile uint32_t *)(fallback_page + 0x10);
    *(volatile uint16_t *)(fallback_page + 0x20) = 0xABCD;
    dev.base = saved;
    mmio_trap_counts(NULL, &r1, &w1);
    assert_int_equal(v, 0x44332211u);
    assert_memory_equal(dev.regs + 0x20, "\xCD\xAB", 2);
    assert_int_equal(r1 - r0, 1);
    assert_int_equal(w1 - w0, 1);
    mmio_trap_set_fallback(NULL, NULL, NULL);
    munmap(fallback_page, 4096);
}

static void do_bad_form(void *arg)
{
    uint8_t *p = arg;
    uint32_t v = 1;
    char err[128];
    mmio_trap_init(err, sizeof err);
    __asm__ volatile("xchgl %0, 4(%1)" : "+r"(v) : "r"(p) : "memory");
}

static void test_trap_refuses_unsupported_form(void **state)
{
    (void)state;
    dev_reset(0);
    expect_fatal(do_bad_form, dev.base, "mmio_trap: unsupported instruction", "bar0+0x4");
}

/* =================================================================================
 * Loader with the fixture drivers
 * ================================================================================= */
static void test_load_maps_relocates_binds(void **state)
{
    pe_image img;
    uintptr_t off;
    unsigned i;
    (void)state;
    load_fixture("fixture", &img);
    assert_non_null(img.base);
    assert_true((uint64_t)(uintptr_t)img.base != img.preferred_base);   /* really relocated */
    assert_true(img.relocs_applied > 0);
    assert_int_equal(img.imports_bound, 6);
    assert_true((uint8_t *)img.entry > img.base && (uint8_t *)img.entry < img.base + img.size);
    assert_string_equal(pe_image_lookup((uintptr_t)img.entry, &off, NULL), "fixture.sys");
    assert_int_equal(off, (uintptr_t)((uint8_t *)img.entry - img.base));
    /* protections: .text executable and not writable; headers read-only. Under qemu-i386
     * /proc/self/maps shows the host mappings QEMU made (guest code is never host-executable,
     * neighbouring guest pages share host protections): nothing to observe there. The same
     * loader code is checked by the x64 build and by native x86 runs. */
    for (i = 0; i < img.nsections && !getenv("AEROVBLK_X86_EMULATED"); i++)
        if (strcmp(img.sections[i].name, ".text") == 0) {
            FILE *maps = fopen("/proc/self/maps", "r");
            char line[512];
            int found = 0;
            uintptr_t text = (uintptr_t)img.base + img.sections[i].rva;
            assert_non_null(maps);
            while (fgets(line, sizeof line, maps)) {
                unsigned long lo, hi;
                char perms[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && text >= lo && text < hi) {
                    assert_string_equal(perms, "r-xp");
                    found = 1;
                }
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && (uintptr_t)img.base >= lo &&
                    (uintptr_t)img.base < hi)
                    assert_string_equal(perms, "r--p");
            }
            fclose(maps);
            assert_true(found);
        }
    {
        void *entry = img.entry;
        pe_unload(&img);
        assert_null(img.base);
        assert_null(pe_image_lookup((uintptr_t)entry, NULL, NULL));
    }
}

static void test_calls_with_windows_conventions(void **state)
{
    pe_image img;
    FX_CONTROL c;
    NTSTATUS st;
    (void)state;
    dev_reset(1);
    load_fixture("fixture", &img);
    memset(&c, 0, sizeof c);
    c.Mode = FX_MODE_CALLS;
    stall_calls = sim_arg_errors = 0;
    st = run_entry(&img, &c);
    if (st != STATUS_SUCCESS)
        fail_msg("DriverEntry returned 0x%x, failed check %u", (unsigned)st, c.Failed);
    assert_int_equal(stall_calls, 1000);
    assert_int_equal(sim_arg_errors, 0);
    assert_true(pe_kstack_high_water() > 0 && pe_kstack_high_water() < PE_KSTACK_SIZE);
    pe_unload(&img);
}

static void test_mmio_from_driver_code(void **state)
{
    pe_image img;
    FX_CONTROL c;
    NTSTATUS st;
    unsigned i, writes = 0;
    uint64_t reads_n, writes_n;
    (void)state;
    dev_reset(1);
    load_fixture("fixture", &img);
    memset(&c, 0, sizeof c);
    c.Mode = FX_MODE_MMIO;
    st = run_entry(&img, &c);
    if (st != STATUS_SUCCESS)
        fail_msg("DriverEntry returned 0x%x, failed check %u", (unsigned)st, c.Failed);
    assert_int_equal(c.Value[0], 0xA1B2C3D4u);
    assert_int_equal(c.Value[1], 0xBEEF);
    assert_int_equal(c.Value[2], 0x5A);
    assert_int_equal(c.Value[3], 0xFFFFFF80u);
    assert_int_equal(c.Value[4], 2);
    assert_int_equal(c.Value[5], 3);
    assert_int_equal(c.Value[6], 0xFFFF8001u);
    /* The exact access sequence, widths included: what the device sees. */
    static const struct access expect[] = {
        { 0x00, 4, 1, 0xA1B2C3D4u }, { 0x04, 2, 1, 0xBEEF }, { 0x06, 1, 1, 0x5A },
        { 0x00, 4, 0, 0xA1B2C3D4u }, { 0x04, 2, 0, 0xBEEF }, { 0x06, 1, 0, 0x5A }, { 0x08, 1, 0, 0x80 },
        { 0x0C, 1, 0, 0 }, { 0x10, 1, 0, 0 }, { 0x10, 1, 1, 0x04 },
        { 0x14, 4, 0, 3 }, { 0x14, 4, 0, 2 }, { 0x14, 4, 0, 1 }, { 0x14, 4, 0, 0 },
        { 0x18, 4, 1, 0x12345678u }, { 0x20, 4, 1, 0 }, { 0x24, 4, 1, 0x11111111u },
        { 0x28, 4, 1, 0x22222222u }, { 0x2C, 4, 1, 0x33333333u }, { 0x30, 2, 0, 0x8001 },
    };
    if (dev.nlog != sizeof expect / sizeof expect[0]) {
        for (i = 0; i < dev.nlog; i++)
            fprintf(stderr, "  access %u: off 0x%x w%u %s 0x%x\n", i, dev.log[i].off, dev.log[i].width,
                    dev.log[i].write ? "W" : "R", dev.log[i].value);
        fail_msg("%u accesses, expected %zu", dev.nlog, sizeof expect / sizeof expect[0]);
    }
    for (i = 0; i < dev.nlog; i++) {
        if (memcmp(&dev.log[i], &expect[i], sizeof expect[i]) != 0)
            fail_msg("access %u: off 0x%x w%u %c 0x%x, expected off 0x%x w%u %c 0x%x", i, dev.log[i].off,
                     dev.log[i].width, dev.log[i].write ? 'W' : 'R', dev.log[i].value, expect[i].off,
                     expect[i].width, expect[i].write ? 'W' : 'R', expect[i].value);
        writes += dev.log[i].write;
    }
    mmio_trap_counts(dev.base, &reads_n, &writes_n);
    assert_true(writes_n >= writes);
    pe_unload(&img);
}

struct thread_call { pe_image *img; FX_CONTROL *c; uintptr_t r; pthread_t self; };

static void *interrupt_thread(void *arg)
{
    struct thread_call *t = arg;
    t->r = PE_KCALL(registered->Fn[6], t->c);     /* CbMmio: MMIO trap on this thread */
    t->self = dev.owner_check;
    return NULL;
}

static void nested_from_host(void *arg)
{
    uintptr_t *r = arg;
    /* Back on the host stack, inside a driver call: calling the driver again continues
     * on the kernel stack below the live frames. */
    assert_false(pe_on_kernel_stack());
    *r = PE_KCALL(registered->Fn[0], 41);
}

static ULONG_PTR NTAPI nesting_export(ULONG_PTR a)
{
    uintptr_t r = 0;
    assert_true(pe_on_kernel_stack());
    pe_run_on_host_stack(nested_from_host, &r);
    assert_true(pe_on_kernel_stack());
    return a + r + PE_KCALL(registered->Fn[1], 10, 3);  /* nested on the same stack */
}

static void test_callbacks_and_threads(void **state)
{
    pe_image img;
    FX_CONTROL c;
    struct thread_call t;
    pthread_t th;
    uintptr_t r;
    (void)state;
    dev_reset(1);
    load_fixture("fixture", &img);
    memset(&c, 0, sizeof c);
    c.Mode = FX_MODE_CALLBACKS;
    registered = NULL;
    assert_int_equal((NTSTATUS)run_entry(&img, &c), 0);
    assert_non_null(registered);
    assert_int_equal(registered->Count, 8);
    assert_int_equal(PE_KCALL(registered->Fn[0], 41), 42);
    assert_int_equal(PE_KCALL(registered->Fn[1], 50, 8), 42);
    assert_int_equal(PE_KCALL(registered->Fn[2], 5, 8, 2), 42);
    assert_int_equal(PE_KCALL(registered->Fn[3], 1, 2, 3, 4), 1 + 4 + 9 + 16);
    assert_int_equal(PE_KCALL(registered->Fn[4], 1, 2, 3, 4, 5, 6), 1 + 4 + 9 + 16 + 25 + 36);
    assert_int_equal((BOOLEAN)PE_KCALL(registered->Fn[5], &c), TRUE);
    /* MMIO from the driver on this thread, then on another one (own kernel stack). */
    dev.regs[6] = 0x5A;
    assert_int_equal((BOOLEAN)PE_KCALL(registered->Fn[6], &c), TRUE);
    t = (struct thread_call){ &img, &c, 0, 0 };
    assert_int_equal(pthread_create(&th, NULL, interrupt_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal((BOOLEAN)t.r, TRUE);
    assert_false(pthread_equal(t.self, pthread_self()));
    /* Nesting: host -> kernel stack (our NTAPI function) -> host stack -> driver. */
    r = PE_KCALL(nesting_export, 1000);
    assert_int_equal(r, 1000 + 42 + 7);
    assert_false(pe_on_kernel_stack());
    pe_unload(&img);
}

/* =================================================================================
 * Refusals and malformed input
 * ================================================================================= */
static void test_refuses_unknown_import(void **state)
{
    pe_image img;
    char path[600], err[256];
    (void)state;
    fixture_path(path, sizeof path, "badimport");
    assert_int_equal(pe_load(path, sim_exports, N_EXPORTS, &img, err, sizeof err), -1);
    assert_string_equal(err, "badimport.sys imports storport.sys!StorPortFoo, which Windows 7 SP1 does not export");
    assert_null(img.base);
    /* A Windows 7 export the simulator lacks is named differently. */
    fixture_path(path, sizeof path, "fixture");
    assert_int_equal(pe_load(path, sim_exports, N_EXPORTS - 1, &img, err, sizeof err), -1);
    assert_string_equal(err, "fixture.sys imports storport.sys!StorPortExtendedFunction, which the simulator does not provide");
}

static void test_refuses_other_dll(void **state)
{
    pe_image img;
    char path[600], err[256];
    (void)state;
    fixture_path(path, sizeof path, "baddll");
    assert_int_equal(pe_load(path, sim_exports, N_EXPORTS, &img, err, sizeof err), -1);
    assert_string_equal(err, "baddll.sys imports hal.dll!KeStallExecutionProcessor: a StorPort miniport may import only storport.sys");
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void wr32le(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t rd32le(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

#define expect_refusal(img, len, expect) expect_refusal_(img, len, expect, __LINE__)
static void expect_refusal_(const uint8_t *img, size_t len, const char *expect, int line)
{
    pe_image out;
    char err[256] = "";
    if (pe_load_memory(img, len, "m.sys", sim_exports, N_EXPORTS, &out, err, sizeof err) == 0)
        fail_msg("line %d (len %zu): loaded, expected \"%s\"", line, len, expect);
    if (!strstr(err, expect))
        fail_msg("line %d: \"%s\" lacks \"%s\"", line, err, expect);
}

static void test_malformed_images(void **state)
{
    char path[600];
    size_t len, i, v, raw_end;
    uint8_t *orig, *m;
    uint32_t pe, opt, sect, dirs;
    pe_image out;
    char err[256];
    unsigned loaded = 0;
    (void)state;
    fixture_path(path, sizeof path, "fixture");
    orig = read_file(path, &len);
    m = malloc(len);
    assert_non_null(m);
    pe = rd32le(orig + 0x3C);
    opt = pe + 24;
    sect = opt + (orig[pe + 20] | orig[pe + 21] << 8);
    dirs = opt + (sizeof(void *) == 8 ? 112 : 96);

#define MUTATE(stmt, expect) do { memcpy(m, orig, len); stmt; expect_refusal(m, len, expect); } while (0)
    MUTATE(m[0] = 'X', "no MZ");
    MUTATE(wr32le(m + 0x3C, (uint32_t)len), "no PE signature");
    MUTATE(wr32le(m + 0x3C, 0xFFFFFFF0u), "no PE signature");
    MUTATE(m[pe + 4] ^= 0x01, "machine");
    MUTATE(m[pe + 22] |= 0x01, "relocations stripped");
    MUTATE(m[pe + 6] = 200, "sections");
    MUTATE((m[pe + 20] = 0xFF, m[pe + 21] = 0xFF), "optional header truncated");
    MUTATE(m[pe + 6] = 30, "");
    MUTATE(wr32le(m + opt + 56, 0x7FFFFFFF), "SizeOfImage");
    MUTATE(wr32le(m + opt + 60, 0x7FFFFFF0), "SizeOfHeaders");
    MUTATE(wr32le(m + opt + 32, 0x1001), "alignment");
    MUTATE(wr32le(m + dirs - 4, 17), "data directories");
    MUTATE(wr32le(m + dirs + 8 * 1, 0xFFFFF000u), "outside the image");          /* import rva */
    MUTATE(wr32le(m + dirs + 8 * 5 + 4, 4), "truncated base relocation");
    MUTATE(wr32le(m + sect + 20, 0xFFFFFF00u), "outside the file");               /* .text raw ptr */
    MUTATE(wr32le(m + sect + 12, 0x0FFFF000u), "beyond SizeOfImage");             /* .text rva */
    MUTATE(wr32le(m + sect + 40 + 12, 0x1000), "overlaps");                        /* 2nd section on 1st */
    MUTATE(wr32le(m + opt + 16, 0x3000), "not in an executable section");          /* entry in .rdata */
    /* The last section's raw data (.reloc) ends what the loader needs; COFF symbols follow. */
    {
        const uint8_t *last = orig + sect + 40u * (orig[pe + 6] - 1u);
        /* only min(SizeOfRawData, VirtualSize) bytes of it are loaded */
        raw_end = rd32le(last + 20) + (rd32le(last + 16) < rd32le(last + 8) ? rd32le(last + 16) : rd32le(last + 8));
        assert_true(raw_end <= len);
        MUTATE(memset(m + rd32le(last + 20), 0, rd32le(last + 16)), "relocation");
    }
    for (i = 0; i < 0x40; i++) { /* truncations of the file */
        size_t cut = i * raw_end / 0x40;
        expect_refusal(orig, cut, "");
    }
    /* Every header byte through several values: must never crash (ASan/UBSan would
     * tell) and may load only when the byte did not matter. */
    for (i = 0; i < sect + 40u * orig[pe + 6] && i < len; i++)
        for (v = 0; v < 4; v++) {
            static const uint8_t vals[4] = { 0x00, 0xFF, 0x80, 0x7F };
            memcpy(m, orig, len);
            m[i] = vals[v];
            if (pe_load_memory(m, len, "m.sys", sim_exports, N_EXPORTS, &out, err, sizeof err) == 0) {
                loaded++;
                pe_unload(&out);
            }
        }
    assert_true(loaded > 0);
#undef MUTATE
    free(m);
    free(orig);
}

/* =================================================================================
 * Fatal paths (forked)
 * ================================================================================= */
struct fatal_arg { int mode; int discard; };

static void run_mode_child(void *arg)
{
    const struct fatal_arg *a = arg;
    pe_image img;
    FX_CONTROL c;
    char err[128];
    mmio_trap_init(err, sizeof err);
    load_fixture("fixture", &img);
    memset(&c, 0, sizeof c);
    c.Mode = (ULONG)a->mode;
    if (a->discard) {
        run_entry(&img, &c);
        pe_discard_init_sections(&img);
        PE_KCALL(registered->Fn[7], 3);
        return;
    }
    run_entry(&img, &c);
}

static void test_stack_guard(void **state)
{
    struct fatal_arg a = { FX_MODE_RECURSE, 0 };
    (void)state;
    expect_fatal(run_mode_child, &a, "driver stack overflow", PE_KSTACK_SIZE == 24576 ? "24 KiB" : "12 KiB");
}

static void test_driver_bad_mmio(void **state)
{
    struct fatal_arg a = { FX_MODE_BAD_MMIO, 0 };
    (void)state;
    expect_fatal(run_mode_child, &a, "mmio_trap: unsupported instruction (unsupported opcode) at fixture.sys+0x", "bar0+0x0");
}

static void test_driver_fault(void **state)
{
    struct fatal_arg a = { FX_MODE_NULL, 0 };
    (void)state;
    expect_fatal(run_mode_child, &a, "driver fault: access violation at fixture.sys+0x", "accessing 0x10");
}

static void test_driver_trap_and_divide(void **state)
{
    struct fatal_arg a = { FX_MODE_TRAP, 0 }, b = { FX_MODE_DIVIDE, 0 };
    (void)state;
    expect_fatal(run_mode_child, &a, "driver fault: illegal instruction at fixture.sys+0x", NULL);
    expect_fatal(run_mode_child, &b, "driver fault: divide error at fixture.sys+0x", NULL);
}

static void test_init_discarded(void **state)
{
    struct fatal_arg a = { FX_MODE_CALLBACKS, 1 };
    pe_image img;
    FX_CONTROL c;
    (void)state;
    /* Before the discard, INIT code runs (DriverEntry itself checks it). */
    load_fixture("fixture", &img);
    memset(&c, 0, sizeof c);
    c.Mode = FX_MODE_CALLBACKS;
    assert_int_equal((NTSTATUS)run_entry(&img, &c), 0);
    assert_int_equal(PE_KCALL(registered->Fn[7], 3), 21);
    pe_unload(&img);
    expect_fatal(run_mode_child, &a, "driver fault: access violation at fixture.sys+0x", NULL);
}

/* ---------------------------------------------------------------------------------
 * CLI for the shell checks
 * --------------------------------------------------------------------------------- */
/* Bound to every Windows 7 export for "load-win7": loading must succeed, calling not. */
static void unexpected_call(void)
{
    static const char msg[] = "test_peloader: a Windows 7 export stub was called\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

static int cli(int argc, char **argv)
{
    pe_image img;
    char err[256];
    if (argc >= 3 && strcmp(argv[1], "load-win7") == 0) {
        size_t n, i;
        const char *const *names = pe_win7_storport_export_names(&n);
        pe_import *table = calloc(n, sizeof *table);
        assert_non_null(table);
        for (i = 0; i < n; i++)
            table[i] = (pe_import){ "storport.sys", names[i], (void *)unexpected_call };
        if (pe_load(argv[2], table, n, &img, err, sizeof err) != 0) {
            printf("refused: %s\n", err);
            free(table);
            return 1;
        }
        printf("loaded %s against the %zu Windows 7 SP1 storport.sys exports: %u imports bound, "
               "%u relocations applied\n", img.name, n, img.imports_bound, img.relocs_applied);
        pe_unload(&img);
        free(table);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "load") == 0) {
        if (pe_load(argv[2], sim_exports, N_EXPORTS, &img, err, sizeof err) != 0) {
            printf("refused: %s\n", err);
            return 1;
        }
        printf("loaded %s at %p (%zu bytes), %u imports bound, %u relocations applied\n", img.name,
               (void *)img.base, img.size, img.imports_bound, img.relocs_applied);
        pe_unload(&img);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "run") == 0) {
        FX_CONTROL c;
        NTSTATUS st;
        if (pe_load(argv[2], sim_exports, N_EXPORTS, &img, err, sizeof err) != 0) {
            printf("refused: %s\n", err);
            return 1;
        }
        dev_reset(1);
        memset(&c, 0, sizeof c);
        c.Mode = (ULONG)atoi(argv[3]);
        st = (NTSTATUS)PE_KCALL(img.entry, &c, NULL);
        printf("DriverEntry returned 0x%08x (failed check %u), kernel stack used %zu of %u bytes\n",
               (unsigned)st, c.Failed, pe_kstack_high_water(), PE_KSTACK_SIZE);
        pe_unload(&img);
        return st == 0 ? 0 : 2;
    }
    fprintf(stderr, "usage: %s [load FILE.sys | load-win7 FILE.sys | run FILE.sys MODE]\n", argv[0]);
    return 64;
}

int main(int argc, char **argv)
{
    const char *env = getenv("PE_FIXTURES");
    snprintf(fixture_dir, sizeof fixture_dir, "%s", env ? env : "out/pe-fixtures/" ARCH_DIR);
    if (argc > 1)
        return cli(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoder_refuses),
        cmocka_unit_test(test_decoder_forms),
        cmocka_unit_test(test_alu_flags_match_cpu),
        cmocka_unit_test(test_trap_every_form),
        cmocka_unit_test(test_trap_moffs_and_riprel),
        cmocka_unit_test(test_trap_refuses_unsupported_form),
        cmocka_unit_test(test_trap_fallback_windows),
        cmocka_unit_test(test_load_maps_relocates_binds),
        cmocka_unit_test(test_calls_with_windows_conventions),
        cmocka_unit_test(test_mmio_from_driver_code),
        cmocka_unit_test(test_callbacks_and_threads),
        cmocka_unit_test(test_refuses_unknown_import),
        cmocka_unit_test(test_refuses_other_dll),
        cmocka_unit_test(test_malformed_images),
        cmocka_unit_test(test_stack_guard),
        cmocka_unit_test(test_driver_bad_mmio),
        cmocka_unit_test(test_driver_fault),
        cmocka_unit_test(test_driver_trap_and_divide),
        cmocka_unit_test(test_init_discarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
