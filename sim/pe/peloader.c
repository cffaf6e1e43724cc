/*
 * PE loader (see peloader.h). The file is untrusted input: every header field, section,
 * directory, relocation block, import descriptor, thunk and string is bounds-checked
 * before use; nothing is read through a struct cast (no alignment or aliasing games).
 * Format: Microsoft PE/COFF specification ("PE Format", sections 2-3, 6.3 base
 * relocations, 6.4 import directory).
 */
#define _GNU_SOURCE
#include "peloader.h"
#include "export_gate.h"
#include "pe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PE_MAX_FILE        (64u << 20)   /* a miniport is tens of KiB; refuse silly sizes */
#define PE_MAX_IMAGE       (64u << 20)
#define PE_MAX_IMPORT_DLLS 64
#define PE_MAX_THUNKS      4096
#define PE_MAX_NAME        256

#define IMAGE_FILE_RELOCS_STRIPPED   0x0001
#define IMAGE_FILE_EXECUTABLE_IMAGE  0x0002
#define IMAGE_SCN_MEM_DISCARDABLE    0x02000000u
#define IMAGE_SCN_MEM_EXECUTE        0x20000000u
#define IMAGE_SCN_MEM_READ           0x40000000u
#define IMAGE_SCN_MEM_WRITE          0x80000000u
#define IMAGE_REL_BASED_ABSOLUTE     0
#define IMAGE_REL_BASED_HIGHLOW      3
#define IMAGE_REL_BASED_DIR64        10
#define DIR_IMPORT   1
#define DIR_BASERELOC 5

#if defined(__x86_64__)
#define HOST_MACHINE 0x8664u
#define HOST_MAGIC   0x20Bu
#define HOST_DESC    "PE32+ AMD64"
#else
#define HOST_MACHINE 0x14Cu
#define HOST_MAGIC   0x10Bu
#define HOST_DESC    "PE32 i386"
#endif

/* ---- Windows 7 SP1 storport.sys exports (windows7-storport-facts.md section 4) ---- */
static const char *const win7_storport_exports[] = {
    "ScsiPortMoveMemory", "ScsiPortNotification",
    "StorPortAllocateRegistryBuffer", "StorPortBusy", "StorPortCompleteRequest",
    "StorPortConvertUlongToPhysicalAddress", "StorPortDebugPrint", "StorPortDeviceBusy",
    "StorPortDeviceReady", "StorPortExtendedFunction", "StorPortFreeDeviceBase",
    "StorPortFreeRegistryBuffer", "StorPortGetBusData", "StorPortGetDeviceBase",
    "StorPortGetLogicalUnit", "StorPortGetPhysicalAddress", "StorPortGetScatterGatherList",
    "StorPortGetSrb", "StorPortGetUncachedExtension", "StorPortGetVirtualAddress",
    "StorPortInitialize", "StorPortLogError", "StorPortMoveMemory", "StorPortNotification",
    "StorPortPause", "StorPortPauseDevice", "StorPortQuerySystemTime", "StorPortReady",
    "StorPortReadPortBufferUchar", "StorPortReadPortBufferUlong", "StorPortReadPortBufferUshort",
    "StorPortReadPortUchar", "StorPortReadPortUlong", "StorPortReadPortUshort",
    "StorPortReadRegisterBufferUchar", "StorPortReadRegisterBufferUlong",
    "StorPortReadRegisterBufferUshort", "StorPortReadRegisterUchar",
    "StorPortReadRegisterUlong", "StorPortReadRegisterUshort", "StorPortRegistryRead",
    "StorPortRegistryWrite", "StorPortResume", "StorPortResumeDevice",
    "StorPortSetBusDataByOffset", "StorPortSetDeviceQueueDepth", "StorPortStallExecution",
    "StorPortSynchronizeAccess", "StorPortValidateRange",
    "StorPortWritePortBufferUchar", "StorPortWritePortBufferUlong",
    "StorPortWritePortBufferUshort", "StorPortWritePortUchar", "StorPortWritePortUlong",
    "StorPortWritePortUshort", "StorPortWriteRegisterBufferUchar",
    "StorPortWriteRegisterBufferUlong", "StorPortWriteRegisterBufferUshort",
    "StorPortWriteRegisterUchar", "StorPortWriteRegisterUlong", "StorPortWriteRegisterUshort",
};

const char *const *pe_win7_storport_export_names(size_t *count)
{
    *count = sizeof win7_storport_exports / sizeof win7_storport_exports[0];
    return win7_storport_exports;
}

int pe_win7_storport_exports(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof win7_storport_exports / sizeof win7_storport_exports[0]; i++)
        if (strcmp(win7_storport_exports[i], name) == 0)
            return 1;
    return 0;
}

/* ---- registry of loaded images, read by the SIGSEGV handler for fault reports ---- */
#define PE_MAX_IMAGES 8
static struct {
    volatile uintptr_t base, end;   /* end == 0: free slot */
    char name[64];
} registry[PE_MAX_IMAGES];

const char *pe_image_lookup(uintptr_t addr, uintptr_t *offset, uintptr_t *img_end)
{
    unsigned i;
    for (i = 0; i < PE_MAX_IMAGES; i++) {
        uintptr_t b = registry[i].base, e = registry[i].end;
        if (e && addr >= b && addr < e) {
            if (offset) *offset = addr - b;
            if (img_end) *img_end = e;
            return registry[i].name;
        }
    }
    return NULL;
}

static int registry_add(const pe_image *img)
{
    unsigned i;
    for (i = 0; i < PE_MAX_IMAGES; i++) {
        if (__atomic_load_n(&registry[i].end, __ATOMIC_ACQUIRE) == 0) {
            snprintf(registry[i].name, sizeof registry[i].name, "%s", img->name);
            registry[i].base = (uintptr_t)img->base;
            __atomic_store_n(&registry[i].end, (uintptr_t)img->base + img->size, __ATOMIC_RELEASE);
            return (int)i;
        }
    }
    return -1;
}

/* ---- bounds-checked little-endian readers ---- */
typedef struct span { const uint8_t *p; uint64_t len; } span;

static int in_span(const span *s, uint64_t off, uint64_t n) { return off <= s->len && n <= s->len - off; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

/* NUL-terminated string at off, at most max bytes, inside s; NULL if not. */
static const char *str_at(const span *s, uint64_t off, size_t max)
{
    uint64_t i;
    if (off >= s->len) return NULL;
    for (i = off; i < s->len && i - off < max; i++)
        if (s->p[i] == 0) return (const char *)s->p + off;
    return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

typedef struct pe_hdr {
    uint32_t e_lfanew, nsect, opt_off, opt_size, sect_off;
    uint32_t entry_rva, sect_align, file_align, size_of_image, size_of_headers;
    uint64_t image_base;
    uint32_t ndirs;
    uint32_t dir_rva[16], dir_size[16];
    int pe32plus;
    unsigned characteristics;
} pe_hdr;

static int parse_headers(const span *f, const char *name, pe_hdr *h, char *err, size_t errlen)
{
    uint16_t magic, machine;
    uint32_t dir_off, i;
    if (!in_span(f, 0, 0x40) || f->p[0] != 'M' || f->p[1] != 'Z')
        return fail(err, errlen, "%s: not a PE image (no MZ header)", name);
    h->e_lfanew = rd32(f->p + 0x3C);
    if (!in_span(f, h->e_lfanew, 24) || memcmp(f->p + h->e_lfanew, "PE\0\0", 4) != 0)
        return fail(err, errlen, "%s: not a PE image (no PE signature inside the file)", name);
    machine = rd16(f->p + h->e_lfanew + 4);
    h->nsect = rd16(f->p + h->e_lfanew + 6);
    h->opt_size = rd16(f->p + h->e_lfanew + 20);
    h->characteristics = rd16(f->p + h->e_lfanew + 22);
    h->opt_off = h->e_lfanew + 24;
    if (machine != HOST_MACHINE)
        return fail(err, errlen, "%s: machine 0x%x, but this simulator runs %s images (use the %s simulator)",
                    name, machine, HOST_DESC, machine == 0x14C ? "32-bit" : machine == 0x8664 ? "64-bit" : "matching");
    if (!(h->characteristics & IMAGE_FILE_EXECUTABLE_IMAGE))
        return fail(err, errlen, "%s: not marked executable (IMAGE_FILE_EXECUTABLE_IMAGE)", name);
    if (h->characteristics & IMAGE_FILE_RELOCS_STRIPPED)
        return fail(err, errlen, "%s: relocations stripped; a driver must be relocatable", name);
    if (!in_span(f, h->opt_off, 2))
        return fail(err, errlen, "%s: optional header outside the file", name);
    magic = rd16(f->p + h->opt_off);
    if (magic != HOST_MAGIC)
        return fail(err, errlen, "%s: optional header magic 0x%x, expected 0x%x", name, magic, HOST_MAGIC);
    h->pe32plus = (magic == 0x20B);
    dir_off = h->pe32plus ? 112 : 96;
    if (h->opt_size < dir_off || !in_span(f, h->opt_off, h->opt_size))
        return fail(err, errlen, "%s: optional header truncated (%u bytes)", name, h->opt_size);
    {
        const uint8_t *o = f->p + h->opt_off;
        h->entry_rva = rd32(o + 16);
        h->image_base = h->pe32plus ? rd64(o + 24) : rd32(o + 28);
        h->sect_align = rd32(o + 32);
        h->file_align = rd32(o + 36);
        h->size_of_image = rd32(o + 56);
        h->size_of_headers = rd32(o + 60);
        h->ndirs = rd32(o + dir_off - 4);
        if (h->ndirs > 16 || dir_off + (uint64_t)h->ndirs * 8 > h->opt_size)
            return fail(err, errlen, "%s: %u data directories do not fit the optional header", name, h->ndirs);
        for (i = 0; i < 16; i++) {
            h->dir_rva[i] = i < h->ndirs ? rd32(o + dir_off + 8 * i) : 0;
            h->dir_size[i] = i < h->ndirs ? rd32(o + dir_off + 8 * i + 4) : 0;
        }
    }
    if (h->sect_align == 0 || (h->sect_align & (h->sect_align - 1)) ||
        h->file_align == 0 || (h->file_align & (h->file_align - 1)))
        return fail(err, errlen, "%s: section/file alignment 0x%x/0x%x not a power of two", name,
                    h->sect_align, h->file_align);
    if (h->size_of_image == 0 || h->size_of_image > PE_MAX_IMAGE)
        return fail(err, errlen, "%s: SizeOfImage 0x%x out of range", name, h->size_of_image);
    if (h->size_of_headers == 0 || h->size_of_headers > h->size_of_image || h->size_of_headers > f->len)
        return fail(err, errlen, "%s: SizeOfHeaders 0x%x out of range", name, h->size_of_headers);
    if (h->nsect == 0 || h->nsect > PE_MAX_SECTIONS)
        return fail(err, errlen, "%s: %u sections (1..%d supported)", name, h->nsect, PE_MAX_SECTIONS);
    h->sect_off = h->opt_off + h->opt_size;
    if (!in_span(f, h->sect_off, (uint64_t)h->nsect * 40) ||
        h->sect_off + (uint64_t)h->nsect * 40 > h->size_of_headers)
        return fail(err, errlen, "%s: section table outside the headers", name);
    for (i = 0; i < 16; i++)
        if ((uint64_t)h->dir_rva[i] + h->dir_size[i] > h->size_of_image)
            return fail(err, errlen, "%s: data directory %u (rva 0x%x size 0x%x) outside the image",
                        name, i, h->dir_rva[i], h->dir_size[i]);
    return 0;
}

/* Copies headers and sections into the fresh mapping; fills img->sections. */
static int map_sections(const span *f, const pe_hdr *h, pe_image *img, char *err, size_t errlen)
{
    uint32_t i;
    uint64_t prev_end = h->size_of_headers;
    memcpy(img->base, f->p, h->size_of_headers);
    img->nsections = h->nsect;
    for (i = 0; i < h->nsect; i++) {
        const uint8_t *s = f->p + h->sect_off + 40 * i;
        uint32_t vsize = rd32(s + 8), rva = rd32(s + 12), rawsize = rd32(s + 16), rawptr = rd32(s + 20);
        uint32_t ch = rd32(s + 36);
        uint32_t mapped = vsize ? vsize : rawsize;
        uint32_t copy = rawsize < mapped ? rawsize : mapped;
        struct pe_section *sec = &img->sections[i];
        memcpy(sec->name, s, 8);
        sec->name[8] = 0;
        for (char *c = sec->name; *c; c++)
            if (*c < 0x20 || *c > 0x7E) *c = '?';
        sec->rva = rva; sec->vsize = mapped; sec->characteristics = ch;
        if (rva % h->sect_align != 0 || rva < prev_end)
            return fail(err, errlen, "%s: section %u (%s) at rva 0x%x overlaps or is misaligned",
                        img->name, i, sec->name, rva);
        if ((uint64_t)rva + mapped > h->size_of_image)
            return fail(err, errlen, "%s: section %s (rva 0x%x size 0x%x) beyond SizeOfImage 0x%x",
                        img->name, sec->name, rva, mapped, h->size_of_image);
        if (copy && !in_span(f, rawptr, copy))
            return fail(err, errlen, "%s: section %s raw data (0x%x+0x%x) outside the file",
                        img->name, sec->name, rawptr, copy);
        if (copy) memcpy(img->base + rva, f->p + rawptr, copy);
        prev_end = (uint64_t)rva + mapped;
    }
    {   /* DriverEntry must be inside an executable section. */
        int ok = 0;
        for (i = 0; i < h->nsect; i++) {
            const struct pe_section *sec = &img->sections[i];
            if (h->entry_rva >= sec->rva && h->entry_rva < sec->rva + sec->vsize &&
                (sec->characteristics & IMAGE_SCN_MEM_EXECUTE))
                ok = 1;
        }
        if (!ok)
            return fail(err, errlen, "%s: entry point rva 0x%x is not in an executable section",
                        img->name, h->entry_rva);
    }
    return 0;
}

static int apply_relocations(const pe_hdr *h, pe_image *img, char *err, size_t errlen)
{
    uint64_t delta = (uint64_t)(uintptr_t)img->base - h->image_base;
    uint32_t off = h->dir_rva[DIR_BASERELOC], end = off + h->dir_size[DIR_BASERELOC];
    /* No directory and IMAGE_FILE_RELOCS_STRIPPED clear (checked earlier): the image
     * has no absolute addresses, as Windows' loader concludes too. */
    if (h->dir_size[DIR_BASERELOC] == 0 || off == 0)
        return 0;
    while (off + 8 <= end) {
        uint32_t page = rd32(img->base + off), bsize = rd32(img->base + off + 4), e;
        if (bsize < 8 || bsize > end - off || (bsize & 1))
            return fail(err, errlen, "%s: bad base relocation block at rva 0x%x (size 0x%x)", img->name, off, bsize);
        for (e = off + 8; e + 2 <= off + bsize; e += 2) {
            uint16_t ent = rd16(img->base + e);
            unsigned type = ent >> 12;
            uint64_t rva = (uint64_t)page + (ent & 0xFFF);
            if (type == IMAGE_REL_BASED_ABSOLUTE)      /* padding */
                continue;
            if (type == IMAGE_REL_BASED_HIGHLOW && !h->pe32plus) {
                if (rva + 4 > h->size_of_image)
                    return fail(err, errlen, "%s: HIGHLOW fixup at rva 0x%llx outside the image", img->name, (unsigned long long)rva);
                wr32(img->base + rva, rd32(img->base + rva) + (uint32_t)delta);
            } else if (type == IMAGE_REL_BASED_DIR64 && h->pe32plus) {
                if (rva + 8 > h->size_of_image)
                    return fail(err, errlen, "%s: DIR64 fixup at rva 0x%llx outside the image", img->name, (unsigned long long)rva);
                wr64(img->base + rva, rd64(img->base + rva) + delta);
            } else {
                return fail(err, errlen, "%s: unsupported base relocation type %u at rva 0x%llx in a %s image",
                            img->name, type, (unsigned long long)rva, h->pe32plus ? "PE32+" : "PE32");
            }
            img->relocs_applied++;
        }
        off += bsize;
    }
    if (off != end)
        return fail(err, errlen, "%s: truncated base relocation block at rva 0x%x", img->name, off);
    return 0;
}

static const pe_import *find_import(const pe_import *table, size_t n, const char *dll, const char *fn)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (table[i].dll && table[i].name && strcasecmp(table[i].dll, dll) == 0 &&
            strcmp(table[i].name, fn) == 0)
            return &table[i];
    return NULL;
}

/* The IAT slots found by bind_imports, before their export gates exist. */
struct bindings;
static int bind_imports_to(const pe_hdr *h, pe_image *img, const pe_import *table, size_t n,
                           struct bindings *bs, char *err, size_t errlen);
struct binding { uint64_t iat_rva; const pe_import *imp; const char *fn; };
struct bindings { struct binding *b; unsigned n, cap; };

static int add_binding(struct bindings *bs, uint64_t iat_rva, const pe_import *imp, const char *fn)
{
    if (bs->n == bs->cap) {
        unsigned cap = bs->cap ? bs->cap * 2 : 64;
        struct binding *nb = realloc(bs->b, cap * sizeof *nb);
        if (!nb)
            return -1;
        bs->b = nb;
        bs->cap = cap;
    }
    bs->b[bs->n++] = (struct binding){ iat_rva, imp, fn };
    return 0;
}

/* One export gate per IAT slot (export_gate.h); the slot gets the gate's stub. */
static int make_gates(pe_image *img, const struct bindings *bs, unsigned entsz, char *err, size_t errlen)
{
    pe_export_stubs s = { .n = bs->n };
    char why[200];
    unsigned i;
    if (bs->n == 0)
        return 0;
    s.desc = calloc(bs->n, sizeof *s.desc);
    if (!s.desc)
        return fail(err, errlen, "%s: out of memory", img->name);
    for (i = 0; i < bs->n; i++)
        if (pe_export_describe(&s.desc[i], bs->b[i].imp->name, bs->b[i].imp->address, 0, why, sizeof why)) {
            free(s.desc);
            return fail(err, errlen, "%s imports %s", img->name, why);
        }
    if (pe_export_stubs_make(&s) != 0) {
        int e = errno;
        free(s.desc);
        return fail(err, errlen, "%s: export gates: %s", img->name, strerror(e));
    }
    for (i = 0; i < bs->n; i++) {
        uint64_t stub = (uint64_t)(uintptr_t)pe_export_stub(&s, i);
        if (entsz == 8) wr64(img->base + bs->b[i].iat_rva, stub);
        else wr32(img->base + bs->b[i].iat_rva, (uint32_t)stub);
    }
    img->gate_page = s.page;
    img->gate_page_len = s.page_len;
    img->gate_desc = s.desc;
    return 0;
}

static void free_gates(pe_image *img)
{
    pe_export_stubs s = { .page = img->gate_page, .page_len = img->gate_page_len, .desc = img->gate_desc };
    pe_export_stubs_free(&s);
    img->gate_page = img->gate_desc = NULL;
    img->gate_page_len = 0;
}

static int bind_imports(const pe_hdr *h, pe_image *img, const pe_import *table, size_t n,
                        char *err, size_t errlen)
{
    struct bindings bs = { NULL, 0, 0 };
    int rc = bind_imports_to(h, img, table, n, &bs, err, errlen);
    if (rc == 0)
        rc = make_gates(img, &bs, h->pe32plus ? 8 : 4, err, errlen);
    free(bs.b);
    return rc;
}

static int bind_imports_to(const pe_hdr *h, pe_image *img, const pe_import *table, size_t n,
                           struct bindings *bs, char *err, size_t errlen)
{
    span im = { img->base, h->size_of_image };
    uint32_t desc = h->dir_rva[DIR_IMPORT], d;
    unsigned entsz = h->pe32plus ? 8 : 4;
    uint64_t ordinal_flag = h->pe32plus ? (1ull << 63) : 0x80000000ull;
    if (h->dir_size[DIR_IMPORT] == 0 || desc == 0)
        return 0;   /* imports nothing: legal, if useless */
    for (d = 0; ; d++) {
        uint64_t at = (uint64_t)desc + 20ull * d;
        uint32_t oft, name_rva, ft, lookup, i;
        const char *dll;
        if (d >= PE_MAX_IMPORT_DLLS || !in_span(&im, at, 20))
            return fail(err, errlen, "%s: import directory not terminated inside the image", img->name);
        oft = rd32(img->base + at);
        name_rva = rd32(img->base + at + 12);
        ft = rd32(img->base + at + 16);
        if (oft == 0 && name_rva == 0 && ft == 0)
            break;
        dll = str_at(&im, name_rva, PE_MAX_NAME);
        if (!dll || !ft)
            return fail(err, errlen, "%s: import descriptor %u has a bad DLL name or IAT", img->name, d);
        lookup = oft ? oft : ft;
        for (i = 0; ; i++) {
            uint64_t la = (uint64_t)lookup + (uint64_t)entsz * i, fa = (uint64_t)ft + (uint64_t)entsz * i;
            uint64_t thunk;
            const char *fn;
            const pe_import *imp;
            if (i >= PE_MAX_THUNKS || !in_span(&im, la, entsz) || !in_span(&im, fa, entsz))
                return fail(err, errlen, "%s: import thunks of %s not terminated inside the image", img->name, dll);
            thunk = entsz == 8 ? rd64(img->base + la) : rd32(img->base + la);
            if (thunk == 0)
                break;
            if (thunk & ordinal_flag)
                return fail(err, errlen, "%s imports %s!#%u by ordinal; only imports by name are supported",
                            img->name, dll, (unsigned)(thunk & 0xFFFF));
            if (thunk > 0xFFFFFFFFull || !(fn = str_at(&im, thunk + 2, PE_MAX_NAME)))
                return fail(err, errlen, "%s: import name of %s entry %u outside the image", img->name, dll, i);
            if (strcasecmp(dll, "storport.sys") != 0)
                return fail(err, errlen, "%s imports %s!%s: a StorPort miniport may import only storport.sys",
                            img->name, dll, fn);
            imp = find_import(table, n, dll, fn);
            if (!imp || !imp->address) {
                if (pe_win7_storport_exports(fn))
                    return fail(err, errlen, "%s imports %s!%s, which the simulator does not provide",
                                img->name, dll, fn);
                return fail(err, errlen, "%s imports %s!%s, which Windows 7 SP1 does not export",
                            img->name, dll, fn);
            }
            if (add_binding(bs, fa, imp, fn) != 0)
                return fail(err, errlen, "%s: out of memory", img->name);
            img->imports_bound++;
        }
    }
    return 0;
}

static int prot_of(uint32_t ch)
{
    return ((ch & IMAGE_SCN_MEM_READ) ? PROT_READ : 0) | ((ch & IMAGE_SCN_MEM_WRITE) ? PROT_WRITE : 0) |
           ((ch & IMAGE_SCN_MEM_EXECUTE) ? PROT_EXEC | PROT_READ : 0);
}

/* Per page: the union of the protections of every section touching it (sections may be
 * smaller than a page when SectionAlignment < page size); headers read-only; gaps none. */
static int apply_protections(pe_image *img, uint32_t size_of_headers, char *err, size_t errlen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), npages = img->size / page, p, run;
    unsigned char *prot = calloc(npages ? npages : 1, 1);
    unsigned i;
    int rc = 0;
    if (!prot) return fail(err, errlen, "%s: out of memory", img->name);
    memset(prot, PROT_NONE, npages);
    for (p = 0; p * page < size_of_headers; p++) prot[p] |= PROT_READ;
    for (i = 0; i < img->nsections; i++) {
        const struct pe_section *s = &img->sections[i];
        if (!s->vsize) continue;
        for (p = s->rva / page; p <= (s->rva + s->vsize - 1) / page && p < npages; p++)
            prot[p] |= (unsigned char)prot_of(s->characteristics);
    }
    for (p = 0; p < npages; p += run) {
        for (run = 1; p + run < npages && prot[p + run] == prot[p]; run++)
            ;
        if (mprotect(img->base + p * page, run * page, prot[p]) != 0) {
            rc = fail(err, errlen, "%s: mprotect: %s", img->name, strerror(errno));
            break;
        }
    }
    free(prot);
    return rc;
}

int pe_load_memory(const void *data, size_t len, const char *name, const pe_import *table,
                   size_t n, pe_image *out, char *err, size_t errlen)
{
    span f = { data, len };
    pe_hdr h;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const char *slash = name ? strrchr(name, '/') : NULL;
    memset(out, 0, sizeof *out);
    out->registry_slot = -1;
    snprintf(out->name, sizeof out->name, "%s", slash ? slash + 1 : name ? name : "image");
    memset(&h, 0, sizeof h);
    if (parse_headers(&f, out->name, &h, err, errlen))
        return -1;
    out->size = ((size_t)h.size_of_image + page - 1) & ~(page - 1);
    out->base = mmap(NULL, out->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (out->base == MAP_FAILED) {
        out->base = NULL;
        return fail(err, errlen, "%s: mmap of %zu bytes failed: %s", out->name, out->size, strerror(errno));
    }
    out->machine = HOST_MACHINE;
    out->preferred_base = h.image_base;
    if (map_sections(&f, &h, out, err, errlen) || apply_relocations(&h, out, err, errlen) ||
        bind_imports(&h, out, table, n, err, errlen) ||
        apply_protections(out, h.size_of_headers, err, errlen)) {
        free_gates(out);
        munmap(out->base, out->size);
        out->base = NULL;
        out->entry = NULL;
        return -1;
    }
    out->entry = out->base + h.entry_rva;     /* validated by map_sections */
    out->registry_slot = registry_add(out);
    return 0;
}

int pe_load(const char *path, const pe_import *table, size_t n, pe_image *out,
            char *err, size_t errlen)
{
    int fd, rc;
    struct stat st;
    void *data;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    memset(out, 0, sizeof *out);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > PE_MAX_FILE) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file of sensible size", path);
    }
    data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED)
        return fail(err, errlen, "%s: mmap: %s", path, strerror(errno));
    rc = pe_load_memory(data, (size_t)st.st_size, name, table, n, out, err, errlen);
    munmap(data, (size_t)st.st_size);
    return rc;
}

unsigned pe_discard_init_sections(pe_image *img)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned i, dropped = 0;
    for (i = 0; i < img->nsections; i++) {
        const struct pe_section *s = &img->sections[i];
        int init = strcmp(s->name, "INIT") == 0;
        uintptr_t lo, hi;
        if (!(init || (s->characteristics & IMAGE_SCN_MEM_DISCARDABLE)) || !s->vsize)
            continue;
        /* Only whole pages that belong to this section alone. */
        lo = ((uintptr_t)img->base + s->rva + page - 1) & ~(uintptr_t)(page - 1);
        hi = ((uintptr_t)img->base + s->rva + s->vsize + page - 1) & ~(uintptr_t)(page - 1);
        if (i + 1 < img->nsections && hi > (uintptr_t)img->base + img->sections[i + 1].rva)
            hi = ((uintptr_t)img->base + img->sections[i + 1].rva) & ~(uintptr_t)(page - 1);
        if (hi > lo && mprotect((void *)lo, hi - lo, PROT_NONE) == 0)
            dropped++;
    }
    return dropped;
}

void pe_unload(pe_image *img)
{
    if (!img || !img->base)
        return;
    if (img->registry_slot >= 0)
        __atomic_store_n(&registry[img->registry_slot].end, 0, __ATOMIC_RELEASE);
    free_gates(img);
    munmap(img->base, img->size);
    memset(img, 0, sizeof *img);
    img->registry_slot = -1;
}

/* ---- signal-safe message helpers (pe_internal.h) ---- */
void pe_msg_str(pe_msg *m, const char *s)
{
    while (*s && m->len + 1 < sizeof m->buf)
        m->buf[m->len++] = *s++;
    m->buf[m->len] = 0;
}

void pe_msg_hex(pe_msg *m, uint64_t v)
{
    char t[19];
    int i = 18;
    t[i] = 0;
    do { t[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    t[--i] = 'x'; t[--i] = '0';
    pe_msg_str(m, t + i);
}

void pe_msg_hexbyte(pe_msg *m, unsigned v)
{
    char t[3] = { "0123456789abcdef"[(v >> 4) & 15], "0123456789abcdef"[v & 15], 0 };
    pe_msg_str(m, t);
}

void pe_msg_dec(pe_msg *m, uint64_t v)
{
    char t[21];
    int i = 20;
    t[i] = 0;
    do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    pe_msg_str(m, t + i);
}

void pe_msg_addr(pe_msg *m, uintptr_t addr)
{
    uintptr_t off;
    const char *img = pe_image_lookup(addr, &off, NULL);
    if (img) {
        pe_msg_str(m, img);
        pe_msg_str(m, "+");
        pe_msg_hex(m, off);
        pe_msg_str(m, " (");
        pe_msg_hex(m, addr);
        pe_msg_str(m, ")");
    } else {
        pe_msg_hex(m, addr);
    }
}
