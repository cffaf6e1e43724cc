/*
 * Fixture driver for the PE-loader tests, built with mingw-w64 for x86 and x64 and
 * linked like a miniport (native subsystem, no CRT, entry DriverEntry, imports only
 * the fake storport.sys of storport.def). DriverEntry's first argument is the test's
 * FX_CONTROL block instead of a DRIVER_OBJECT; its Mode selects what to exercise.
 * Not a model of driver code: it deliberately overflows, faults and misuses MMIO.
 */
#include "ntdef.h"
#include "fixture.h"

#define IMPORT __declspec(dllimport)
IMPORT PVOID NTAPI StorPortGetDeviceBase(PVOID Ext, ULONG BusType, ULONG Bus, PHYSICAL_ADDRESS Address,
                                         ULONG Bytes, BOOLEAN InIoSpace);
IMPORT PHYSICAL_ADDRESS NTAPI StorPortGetPhysicalAddress(PVOID Ext, PVOID Srb, PVOID Va, PULONG Length);
IMPORT ULONG NTAPI StorPortInitialize(PVOID Argument1, PVOID Argument2, PVOID HwInitData, PVOID Context);
IMPORT VOID NTAPI StorPortStallExecution(ULONG Microseconds);
IMPORT VOID __cdecl StorPortNotification(ULONG Type, PVOID Ext, ...);
IMPORT ULONG __cdecl StorPortExtendedFunction(ULONG Code, PVOID Ext, ...);

static PVOID DeviceBase(FX_CONTROL *c)
{
    PHYSICAL_ADDRESS pa;
    pa.QuadPart = FX_MAGIC_PA;
    return StorPortGetDeviceBase(c, 5, 7, pa, FX_MMIO_BYTES, FALSE);
}

#define CHECK(n, cond) do { if (!(cond)) { c->Failed = (n); return STATUS_UNSUCCESSFUL; } } while (0)

static NTSTATUS Calls(FX_CONTROL *c)
{
    ULONG len = 0, i, r;
    PHYSICAL_ADDRESS pa;
    /* A stdcall callee that does not pop its argument would move ESP every iteration. */
    for (i = 0; i < 1000; i++)
        StorPortStallExecution(i);
    CHECK(1, DeviceBase(c) != NULL);
    pa = StorPortGetPhysicalAddress(c, NULL, (PVOID)(ULONG_PTR)0x1000, &len);
    CHECK(2, pa.QuadPart == (LONGLONG)0xFEDCBA9876543210ULL);
    CHECK(3, len == 512);
    StorPortNotification(FX_NOTIFY_SUM, c, 1, 2, 3, 4, 5);
    CHECK(4, c->Value[0] == 15);
    r = StorPortExtendedFunction(FX_EXT_MIX, c, (ULONG)7, (ULONGLONG)0x1122334455667788ULL, (ULONG)9);
    CHECK(5, r == 7u * 3 + 0x55667788u + 0x11223344u * 5 + 9u * 7);
    return STATUS_SUCCESS;
}

/* The accessors of driver/hwreg.h, verbatim in spirit: one volatile access each. */
static inline UCHAR R8(volatile UCHAR *b, ULONG o) { return *(volatile UCHAR *)(b + o); }
static inline USHORT R16(volatile UCHAR *b, ULONG o) { return *(volatile USHORT *)(b + o); }
static inline ULONG R32(volatile UCHAR *b, ULONG o) { return *(volatile ULONG *)(b + o); }
static inline void W8(volatile UCHAR *b, ULONG o, UCHAR v) { *(volatile UCHAR *)(b + o) = v; }
static inline void W16(volatile UCHAR *b, ULONG o, USHORT v) { *(volatile USHORT *)(b + o) = v; }
static inline void W32(volatile UCHAR *b, ULONG o, ULONG v) { *(volatile ULONG *)(b + o) = v; }

static NTSTATUS Mmio(FX_CONTROL *c)
{
    volatile UCHAR *b = DeviceBase(c);
    ULONG i, spins = 0;
    CHECK(1, b != NULL);
    W32(b, 0x00, 0xA1B2C3D4u);
    W16(b, 0x04, 0xBEEF);
    W8(b, 0x06, 0x5A);
    c->Value[0] = R32(b, 0x00);
    c->Value[1] = R16(b, 0x04);                         /* movzwl */
    c->Value[2] = R8(b, 0x06);                          /* movzbl */
    c->Value[3] = (ULONG)(LONG)(signed char)R8(b, 0x08); /* device returns 0x80: movsbl */
    c->Value[4] = (R8(b, 0x0C) & 1) ? 1 : 2;            /* may fold into testb */
    W8(b, 0x10, (UCHAR)(R8(b, 0x10) | 0x04));           /* read-modify-write */
    while (R32(b, 0x14) != 0 && spins < 100)             /* device counts down 3,2,1,0 */
        spins++;
    c->Value[5] = spins;
    W32(b, 0x18, 0x12345678u);                          /* mov $imm, mem */
    for (i = 0; i < 4; i++)                             /* base + index*4 addressing */
        W32(b, 0x20 + 4 * i, i * 0x11111111u);
    c->Value[6] = (ULONG)(LONG)(SHORT)R16(b, 0x30);      /* device returns 0x8001: movswl */
    return STATUS_SUCCESS;
}

static ULONG __attribute__((noinline)) Recurse(FX_CONTROL *c, ULONG depth)
{
    volatile UCHAR pad[200];
    pad[0] = (UCHAR)depth;
    pad[199] = pad[0];
    c->Depth = depth;
    if (depth > 100000000u)
        return 0;
    return Recurse(c, depth + 1) + pad[199];
}

/* Callbacks with 1..6 arguments, called back by the simulator through pe_kcall. */
static ULONG_PTR NTAPI Cb1(ULONG_PTR a) { return a + 1; }
static ULONG_PTR NTAPI Cb2(ULONG_PTR a, ULONG_PTR b) { return a - b; }
static ULONG_PTR NTAPI Cb3(ULONG_PTR a, ULONG_PTR b, ULONG_PTR c) { return a * b + c; }
static ULONG_PTR NTAPI Cb4(ULONG_PTR a, ULONG_PTR b, ULONG_PTR c, ULONG_PTR d) { return a + 2 * b + 3 * c + 4 * d; }
static ULONG_PTR NTAPI Cb6(ULONG_PTR a, ULONG_PTR b, ULONG_PTR c, ULONG_PTR d, ULONG_PTR e, ULONG_PTR f)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
static BOOLEAN NTAPI CbBoolean(PVOID Ext)
{
    volatile ULONG noise = 0x12345600u;     /* leaves garbage above AL */
    (void)Ext;
    return (BOOLEAN)(noise | 1);
}
/* An "interrupt routine": reads a register (MMIO trap on the caller's thread). */
static BOOLEAN NTAPI CbMmio(PVOID Ext)
{
    volatile UCHAR *b = DeviceBase((FX_CONTROL *)Ext);
    return (BOOLEAN)(R8(b, 0x06) == 0x5A);
}
/* Code in INIT, which Windows frees after DriverEntry: calling it later must fault. */
__attribute__((section("INIT"), noinline)) static ULONG_PTR InitOnly(ULONG_PTR a) { return a * 7; }
static ULONG_PTR NTAPI CbCallsInit(ULONG_PTR a) { return InitOnly(a); }

static const FX_CALLBACKS Callbacks = {
    8, { (PVOID)Cb1, (PVOID)Cb2, (PVOID)Cb3, (PVOID)Cb4, (PVOID)Cb6, (PVOID)CbBoolean, (PVOID)CbMmio,
         (PVOID)CbCallsInit }
};

NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath)
{
    FX_CONTROL *c = (FX_CONTROL *)DriverObject;
    switch (c->Mode) {
    case FX_MODE_CALLS:
        return Calls(c);
    case FX_MODE_MMIO:
        return Mmio(c);
    case FX_MODE_RECURSE:
        return (NTSTATUS)Recurse(c, 0);
    case FX_MODE_CALLBACKS:
        CHECK(1, InitOnly(1) == 7);
        return (NTSTATUS)StorPortInitialize(DriverObject, RegistryPath, (PVOID)&Callbacks, NULL);
    case FX_MODE_BAD_MMIO: {
        volatile ULONG *r = (volatile ULONG *)DeviceBase(c);
        return (NTSTATUS)__atomic_exchange_n(r, 1u, __ATOMIC_SEQ_CST);    /* xchg: refused */
    }
    case FX_MODE_TRAP:
        __builtin_trap();
    case FX_MODE_DIVIDE: {
        volatile ULONG zero = 0;
        return (NTSTATUS)(c->Mode / zero);
    }
    case FX_MODE_NULL: {
        volatile ULONG_PTR where = 16;
        *(volatile ULONG *)where = 1;
        return STATUS_UNSUCCESSFUL;
    }
    }
    return STATUS_NOT_SUPPORTED;
}
