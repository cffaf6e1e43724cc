/*
 * x86 / x86-64 decoder for memory-operand instructions (see x86dec.h). Covers the
 * forms GCC and MSVC emit for volatile 8/16/32-bit accesses: mov loads/stores (also
 * with immediates and the moffs forms), movzx/movsx/movsxd, and the ALU forms a
 * compiler may fold a volatile load into (cmp/test, and add/or/and/sub/xor in both
 * directions, including the read-modify-write "or [mem], imm"). Anything else is
 * refused with a reason, so the caller can fail loudly.
 * Encoding: Intel SDM Vol. 2A 2.1 (prefixes, ModRM, SIB), 2.2.1 (REX), Table 2-2/2-3.
 */
#include "x86dec.h"

static uint64_t width_mask(unsigned width)
{
    return width >= 8 ? ~0ull : ((1ull << (width * 8)) - 1);
}

static uint64_t sign_extend(uint64_t v, unsigned from_width)
{
    unsigned shift = 64 - from_width * 8;
    return from_width >= 8 ? v : (uint64_t)((int64_t)(v << shift) >> shift);
}

/* Reads a little-endian value of n bytes at p[*pos], bounded by avail. */
static int fetch(const uint8_t *code, size_t avail, unsigned *pos, unsigned n, uint64_t *v)
{
    uint64_t r = 0;
    unsigned i;
    if (*pos + n > avail || *pos + n > 15) /* 15: architectural maximum length */
        return -1;
    for (i = 0; i < n; i++)
        r |= (uint64_t)code[*pos + i] << (8 * i);
    *pos += n;
    *v = r;
    return 0;
}

/* ModRM (+SIB, +displacement) memory operand; register forms (mod == 3) refused. */
static int decode_modrm(const uint8_t *code, size_t avail, unsigned *pos, int mode64,
                        unsigned rex, x86_insn *d, unsigned *reg_field, const char **why)
{
    uint64_t b, sib, disp;
    unsigned mod, rm;
    if (fetch(code, avail, pos, 1, &b)) { *why = "truncated ModRM"; return -1; }
    mod = (unsigned)b >> 6;
    rm = (unsigned)b & 7;
    *reg_field = (((unsigned)b >> 3) & 7) | ((rex & 4) ? 8 : 0);
    if (mod == 3) { *why = "register operand, no memory access"; return -1; }
    d->base = -1; d->index = -1; d->scale = 1; d->disp = 0;
    if (rm == 4) {
        if (fetch(code, avail, pos, 1, &sib)) { *why = "truncated SIB"; return -1; }
        d->scale = 1u << ((unsigned)sib >> 6);
        d->index = (int)((((unsigned)sib >> 3) & 7) | ((rex & 2) ? 8 : 0));
        if (d->index == 4) /* SIB index 100b without REX.X: no index */
            d->index = -1;
        if ((sib & 7) == 5 && mod == 0) {
            if (fetch(code, avail, pos, 4, &disp)) { *why = "truncated disp32"; return -1; }
            d->disp = (int64_t)sign_extend(disp, 4);
            d->absolute = (d->index < 0);
            return 0;
        }
        d->base = (int)((sib & 7) | ((rex & 1) ? 8 : 0));
    } else if (rm == 5 && mod == 0) {
        if (fetch(code, avail, pos, 4, &disp)) { *why = "truncated disp32"; return -1; }
        d->disp = (int64_t)sign_extend(disp, 4);
        if (mode64) d->rip_relative = 1; /* SDM 2.2.1.6 */
        else d->absolute = 1;
        return 0;
    } else {
        d->base = (int)(rm | ((rex & 1) ? 8 : 0));
    }
    if (mod == 1) {
        if (fetch(code, avail, pos, 1, &disp)) { *why = "truncated disp8"; return -1; }
        d->disp = (int64_t)sign_extend(disp, 1);
    } else if (mod == 2) {
        if (fetch(code, avail, pos, 4, &disp)) { *why = "truncated disp32"; return -1; }
        d->disp = (int64_t)sign_extend(disp, 4);
    }
    return 0;
}

static int fetch_imm(const uint8_t *code, size_t avail, unsigned *pos, unsigned imm_bytes,
                     unsigned width, x86_insn *d, const char **why)
{
    uint64_t v;
    if (fetch(code, avail, pos, imm_bytes, &v)) { *why = "truncated immediate"; return -1; }
    d->imm = sign_extend(v, imm_bytes) & width_mask(width);
    return 0;
}

static const int alu_by_opcode_row[8] = { X86_ADD, X86_OR, -1, -1, X86_AND, X86_SUB, X86_XOR, X86_CMP };

int x86_decode(const uint8_t *code, size_t avail, int mode64, x86_insn *d, const char **why)
{
    unsigned pos = 0, rex = 0, opsize16 = 0, reg_field = 0, width, op;
    uint64_t b;
    const char *dummy;
    if (!why) why = &dummy;
    *d = (x86_insn){ .base = -1, .index = -1, .scale = 1, .reg = -1 };

    /* Legacy prefixes (SDM 2.1.1), then REX immediately before the opcode. */
    for (;;) {
        if (fetch(code, avail, &pos, 1, &b)) { *why = "truncated prefixes"; return -1; }
        if (b == 0x66) { opsize16 = 1; continue; }
        if (b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E) { d->seg = (int)b; continue; }
        if (b == 0x64 || b == 0x65) { *why = "FS/GS segment override"; return -1; }
        if (b == 0x67) { *why = "address-size prefix"; return -1; }
        if (b == 0xF0) { *why = "LOCK prefix"; return -1; }
        if (b == 0xF2 || b == 0xF3) { *why = "REP/REPNE prefix (string or SSE instruction)"; return -1; }
        break;
    }
    if (mode64 && (b & 0xF0) == 0x40) {
        rex = (unsigned)b;
        if (fetch(code, avail, &pos, 1, &b)) { *why = "truncated opcode"; return -1; }
    }
    op = (unsigned)b;
    width = (rex & 8) ? 8 : opsize16 ? 2 : 4;  /* operand size of non-byte forms */

    if (op < 0x40 && (op & 7) <= 3 && alu_by_opcode_row[op >> 3] >= 0) {
        /* 00-03 add, 08-0B or, 20-23 and, 28-2B sub, 30-33 xor, 38-3B cmp */
        if (op & 1) d->mem_width = width; else d->mem_width = 1;
        d->alu = (x86_alu)alu_by_opcode_row[op >> 3];
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        d->reg = (int)reg_field;
        d->reg_width = d->mem_width;
        if (d->alu == X86_CMP) { d->kind = X86_COMPARE; d->mem_is_dest = !(op & 2); }
        else d->kind = (op & 2) ? X86_ALU_LOAD : X86_ALU_STORE;
    } else if (op == 0x84 || op == 0x85) {                          /* test r/m, r */
        d->mem_width = (op & 1) ? width : 1;
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        d->kind = X86_COMPARE; d->alu = X86_TEST; d->mem_is_dest = 1;
        d->reg = (int)reg_field; d->reg_width = d->mem_width;
    } else if (op == 0x80 || op == 0x81 || op == 0x83) {            /* alu r/m, imm */
        d->mem_width = (op == 0x80) ? 1 : width;
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        if (alu_by_opcode_row[reg_field & 7] < 0) { *why = "ADC/SBB with memory operand"; return -1; }
        d->alu = (x86_alu)alu_by_opcode_row[reg_field & 7];
        if (fetch_imm(code, avail, &pos, op == 0x81 ? (width == 2 ? 2 : 4) : 1, d->mem_width, d, why))
            return -1;
        d->kind = d->alu == X86_CMP ? X86_COMPARE : X86_ALU_STORE;
        d->mem_is_dest = 1;
    } else if (op == 0xF6 || op == 0xF7) {                          /* test r/m, imm */
        d->mem_width = (op == 0xF6) ? 1 : width;
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        if ((reg_field & 7) > 1) { *why = "NOT/NEG/MUL/DIV with memory operand"; return -1; }
        if (fetch_imm(code, avail, &pos, op == 0xF6 ? 1 : (width == 2 ? 2 : 4), d->mem_width, d, why))
            return -1;
        d->kind = X86_COMPARE; d->alu = X86_TEST; d->mem_is_dest = 1;
    } else if (op >= 0x88 && op <= 0x8B) {                          /* mov */
        d->mem_width = (op & 1) ? width : 1;
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        d->kind = (op & 2) ? X86_LOAD : X86_STORE;
        d->reg = (int)reg_field; d->reg_width = d->mem_width;
    } else if (op == 0xC6 || op == 0xC7) {                          /* mov r/m, imm */
        d->mem_width = (op == 0xC6) ? 1 : width;
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        if ((reg_field & 7) != 0) { *why = "C6/C7 with reg field != 0"; return -1; }
        if (fetch_imm(code, avail, &pos, op == 0xC6 ? 1 : (width == 2 ? 2 : 4), d->mem_width, d, why))
            return -1;
        d->kind = X86_STORE;
    } else if (op >= 0xA0 && op <= 0xA3) {                          /* mov al/eax <-> moffs */
        uint64_t moffs;
        if (fetch(code, avail, &pos, mode64 ? 8 : 4, &moffs)) { *why = "truncated moffs"; return -1; }
        d->mem_width = (op & 1) ? width : 1;
        d->kind = (op & 2) ? X86_STORE : X86_LOAD;
        d->reg = 0; d->reg_width = d->mem_width;
        d->absolute = 1; d->disp = (int64_t)moffs;
    } else if (op == 0x63 && mode64) {                              /* movsxd r, r/m32 */
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        d->kind = X86_LOAD; d->reg = (int)reg_field; d->reg_width = width;
        d->mem_width = width == 8 ? 4 : width;
        d->sign_extend = 1;
    } else if (op == 0x0F) {
        if (fetch(code, avail, &pos, 1, &b)) { *why = "truncated opcode"; return -1; }
        if (b != 0xB6 && b != 0xB7 && b != 0xBE && b != 0xBF) { *why = "unsupported 0F opcode"; return -1; }
        d->mem_width = (b & 1) ? 2 : 1;                             /* movzx/movsx */
        if (decode_modrm(code, avail, &pos, mode64, rex, d, &reg_field, why)) return -1;
        d->kind = X86_LOAD; d->reg = (int)reg_field; d->reg_width = width;
        d->sign_extend = (b >= 0xBE);
    } else {
        *why = "unsupported opcode";
        return -1;
    }
    /* An 8-bit register operand without REX: encodings 4..7 are AH, CH, DH, BH. */
    if (d->reg >= 4 && d->reg <= 7 && d->reg_width == 1 && !rex)
        d->reg_high8 = 1;
    d->len = pos;
    return 0;
}

static unsigned parity_even(uint64_t v)
{
    uint8_t b = (uint8_t)v;
    b ^= b >> 4; b ^= b >> 2; b ^= b >> 1;
    return !(b & 1);
}

uint64_t x86_alu_exec(x86_alu op, unsigned width, uint64_t a, uint64_t b, uint32_t *flags)
{
    uint64_t m = width_mask(width), r;
    uint64_t top = 1ull << (width * 8 - 1);
    uint32_t f = 0;
    a &= m; b &= m;
    switch (op) {
    case X86_ADD:
        r = (a + b) & m;
        if (r < a) f |= 0x001;                                   /* CF */
        if ((a ^ r) & (b ^ r) & top) f |= 0x800;                 /* OF */
        if ((a ^ b ^ r) & 0x10) f |= 0x010;                      /* AF */
        break;
    case X86_SUB:
    case X86_CMP:
        r = (a - b) & m;
        if (a < b) f |= 0x001;
        if ((a ^ b) & (a ^ r) & top) f |= 0x800;
        if ((a ^ b ^ r) & 0x10) f |= 0x010;
        break;
    case X86_OR:  r = a | b; break;
    case X86_XOR: r = a ^ b; break;
    case X86_AND:
    case X86_TEST:
    default:      r = a & b; break;
    }
    if (r == 0) f |= 0x040;                                      /* ZF */
    if (r & top) f |= 0x080;                                     /* SF */
    if (parity_even(r)) f |= 0x004;                              /* PF: low byte only */
    *flags = f;
    return r;
}
