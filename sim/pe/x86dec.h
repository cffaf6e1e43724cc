/*
 * Minimal x86 / x86-64 decoder for the instructions a compiler emits for volatile
 * register accesses (see docs/pe-loader.md, "Instruction forms"). Used by the MMIO
 * trap to emulate a faulting access. Pure: no OS calls, safe in a signal handler.
 *
 * Reference: Intel SDM Vol. 2, chapter 2 (instruction format: legacy prefixes, REX,
 * ModRM, SIB, displacement, immediate) and the opcode map (Appendix A).
 */
#ifndef AEROVBLK_PE_X86DEC_H
#define AEROVBLK_PE_X86DEC_H
#include <stddef.h>
#include <stdint.h>

/* What the instruction does with its single memory operand. */
typedef enum x86_kind {
    X86_LOAD,        /* reg = ext(mem)          mov/movzx/movsx/movsxd, moffs load */
    X86_STORE,       /* mem = reg or imm        mov, moffs store */
    X86_ALU_LOAD,    /* reg = reg op mem; flags (add/or/and/sub/xor reg, [mem]) */
    X86_ALU_STORE,   /* mem = mem op src; flags (read-modify-write) */
    X86_COMPARE,     /* flags only: cmp/test, mem is not written */
} x86_kind;

typedef enum x86_alu { X86_ADD, X86_OR, X86_AND, X86_SUB, X86_XOR, X86_CMP, X86_TEST } x86_alu;

typedef struct x86_insn {
    unsigned len;           /* total length in bytes */
    x86_kind kind;
    x86_alu alu;            /* for ALU_* and COMPARE */
    unsigned mem_width;     /* bytes accessed in memory: 1, 2, 4 or 8 */
    unsigned reg_width;     /* width of the register operand (dest of a load) */
    int reg;                /* register operand 0..15 (AX,CX,DX,BX,SP,BP,SI,DI,R8..), -1: imm */
    int reg_high8;          /* reg 4..7 means AH,CH,DH,BH (8-bit, no REX) */
    int sign_extend;        /* load: movsx/movsxd */
    int mem_is_dest;        /* COMPARE: mem is the left operand (cmp [m], r) */
    uint64_t imm;           /* immediate (already sign-extended to reg/mem width) */
    /* effective address = base + index*scale + disp (+ next RIP if rip_relative) */
    int base;               /* -1: none */
    int index;              /* -1: none */
    unsigned scale;
    int64_t disp;
    int rip_relative;
    int absolute;           /* moffs or [disp32]: EA = disp */
    int seg;                /* segment override prefix byte, 0 = none */
} x86_insn;

/* Decodes the instruction at code[0..avail). mode64: 64-bit mode. Returns 0 on
 * success, or -1 with *why set to a static string naming the unsupported form. */
int x86_decode(const uint8_t *code, size_t avail, int mode64, x86_insn *out, const char **why);

/* Flags of "a op b" at the given width (1, 2, 4, 8) as the CPU computes them; returns
 * the result (masked to width) and stores the arithmetic flags (CF PF AF ZF SF OF,
 * mask X86_FLAGS_ARITH) in *flags. For logic ops (and/or/xor/test) CF=OF=0 and AF=0
 * (AF is architecturally undefined there; hardware leaves it 0 on current CPUs). */
#define X86_FLAGS_ARITH 0x8D5u
uint64_t x86_alu_exec(x86_alu op, unsigned width, uint64_t a, uint64_t b, uint32_t *flags);

#endif
