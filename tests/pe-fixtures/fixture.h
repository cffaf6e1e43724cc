/*
 * Shared between the fixture drivers (built with mingw-w64 as .sys) and the host test
 * (tests/unit/test_peloader.c): the control block DriverEntry receives as its first
 * argument (in place of a DRIVER_OBJECT) and the test-only codes of the fake
 * storport.sys exports. Only ULONG-sized fields, so the layout is the same on x86 and
 * x64 and under Linux and Windows compilers.
 */
#ifndef AEROVBLK_PE_FIXTURE_H
#define AEROVBLK_PE_FIXTURE_H
#include "ntdef.h"

enum {
    FX_MODE_CALLS = 1,      /* stdcall/ms_abi + cdecl variadic imports, 8-byte args/returns */
    FX_MODE_MMIO = 2,       /* compiled volatile register accesses on the device base */
    FX_MODE_RECURSE = 3,    /* unbounded recursion: must hit the kernel-stack guard */
    FX_MODE_CALLBACKS = 4,  /* registers callbacks (1..6 args) via StorPortInitialize */
    FX_MODE_BAD_MMIO = 5,   /* an instruction the MMIO emulator refuses (xchg) */
    FX_MODE_NULL = 6,       /* null dereference inside the driver */
    FX_MODE_TRAP = 7,       /* ud2 (__builtin_trap) */
    FX_MODE_DIVIDE = 8,     /* integer division by zero */
};

#define FX_MAGIC_PA        0x123456789AULL   /* PHYSICAL_ADDRESS passed to GetDeviceBase */
#define FX_MMIO_BYTES      0x1000u
#define FX_NOTIFY_SUM      0x4000            /* StorPortNotification code: sum the 5 ULONGs */
#define FX_EXT_MIX         0x4001            /* StorPortExtendedFunction code: mix (ULONG, ULONGLONG, ULONG) */
#define FX_RESULT_OK       0x600DF00Du

typedef struct FX_CONTROL {
    ULONG Mode;
    ULONG Failed;           /* first failing check number in the driver, 0 = none */
    ULONG Value[32];        /* values read by the driver (MMIO mode) */
    ULONG Depth;            /* recursion depth reached */
} FX_CONTROL;

/* Passed to StorPortInitialize in FX_MODE_CALLBACKS: NTAPI callbacks taking 1..6
 * pointer-sized arguments; callback i returns a combination of its arguments, and the
 * BOOLEAN one returns TRUE with garbage in the upper bits of EAX/RAX. */
typedef struct FX_CALLBACKS {
    ULONG Count;
    PVOID Fn[8];
} FX_CALLBACKS;

#endif
