/*
 * PE loader for the shipped aerovblk.sys: maps a driver image (PE32 i386 in the 32-bit
 * simulator, PE32+ AMD64 in the 64-bit one) at an address of mmap's choosing, applies
 * base relocations, binds its imports by name to the simulator's StorPort exports and
 * applies the section protections, as Windows' MmLoadSystemImage would.
 * See docs/pe-loader.md for the design and how the simulator core uses it.
 *
 * Companions: kstack.h (run driver code on a Windows-sized kernel stack) and
 * mmio_trap.h (emulate the driver's plain-mov register accesses).
 * Thread safety: pe_load/pe_unload from one thread at a time (the core's PnP thread).
 */
#ifndef AEROVBLK_PE_PELOADER_H
#define AEROVBLK_PE_PELOADER_H
#include <stddef.h>
#include <stdint.h>

/* One export the simulator provides. dll is matched case-insensitively ("storport.sys"),
 * name exactly (PE import names are undecorated: "StorPortInitialize", not
 * "_StorPortInitialize@16"). address is an NTAPI (stdcall / ms_abi) function, or a
 * cdecl one for the variadic exports. */
typedef struct pe_import {
    const char *dll;
    const char *name;
    void *address;
} pe_import;

/* i386 only: the host function at address returns an 8-byte struct or union
 * (PHYSICAL_ADDRESS) the way i386 Linux GCC does, through a hidden pointer, while a
 * Windows x86 caller expects it in EDX:EAX; its export gate converts. Declare such
 * functions before pe_load (sim_pe.c does for the core's StorPortGetPhysicalAddress and
 * StorPortConvertUlongToPhysicalAddress). A function returning LONGLONG needs nothing.
 * Ignored on x86-64 (Microsoft x64 and GCC's ms_abi both return it in RAX). 0 or -1
 * (table full). */
int pe_declare_struct_return(const void *address);
#define PE_IMPORT_STRUCT_RETURN 0x1u

#define PE_MAX_SECTIONS 32

typedef struct pe_image {
    uint8_t *base;          /* mapped image: [base, base + size) */
    size_t size;            /* SizeOfImage rounded up to the page size */
    void *entry;            /* DriverEntry (NTSTATUS NTAPI (PVOID DriverObject, PVOID RegistryPath)) */
    uint64_t preferred_base;/* ImageBase from the optional header (never used: always relocated) */
    unsigned machine;       /* 0x14C (i386) or 0x8664 (AMD64) */
    unsigned imports_bound; /* number of IAT slots filled */
    unsigned relocs_applied;/* number of HIGHLOW/DIR64 fixups */
    unsigned nsections;
    struct pe_section {
        char name[9];
        uint32_t rva, vsize, characteristics;
    } sections[PE_MAX_SECTIONS];
    char name[64];          /* file name without directories, for messages ("aerovblk.sys") */
    int registry_slot;      /* internal: slot in the fault-report registry */
    /* internal: the export gates the IAT points at (export_gate.h), one per import */
    void *gate_page;
    size_t gate_page_len;
    void *gate_desc;
} pe_image;

/* Loads the driver at path. table[0..n) are the exports it may import; every import
 * must be from "storport.sys" and be in the table. Each import is bound not to the
 * table's address itself but to an export gate (export_gate.h) that runs the function
 * on the thread's host stack rather than the driver's kernel stack (kstack.h), with
 * the Windows calling convention on the driver's side (x86: the argument bytes of
 * driver/storport-x86.def decide stdcall `ret N` or cdecl). On failure returns -1 and puts one
 * line into err, e.g. "aerovblk.sys imports storport.sys!StorPortFoo, which Windows 7
 * SP1 does not export" (Windows: Code 39). Nothing stays mapped on failure. */
int pe_load(const char *path, const pe_import *table, size_t n, pe_image *out,
            char *err, size_t errlen);
/* Same from a file image in memory (name only for messages). The data is copied. */
int pe_load_memory(const void *data, size_t len, const char *name, const pe_import *table,
                   size_t n, pe_image *out, char *err, size_t errlen);
/* Unmaps the image. The driver must not run any more (no thread inside it). */
void pe_unload(pe_image *img);

/* What Windows does after DriverEntry returns: frees the INIT / discardable sections.
 * Here they become PROT_NONE, so a driver calling INIT code later faults (reported
 * as a driver fault with the image offset). Returns the number of sections dropped. */
unsigned pe_discard_init_sections(pe_image *img);

/* Windows 7 SP1 storport.sys exports (both architectures, undecorated): for messages
 * ("which Windows 7 SP1 does not export" vs "which the simulator does not provide"). */
int pe_win7_storport_exports(const char *name);
/* The whole list (61 names), e.g. to check that an image binds against Windows 7. */
const char *const *pe_win7_storport_export_names(size_t *count);

/* Finds the loaded image containing addr (signal-safe). Returns its name and sets
 * *offset, or NULL. Used for fault reports ("aerovblk.sys+0x1234"). */
const char *pe_image_lookup(uintptr_t addr, uintptr_t *offset, uintptr_t *img_end);

#endif
