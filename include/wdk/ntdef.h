/*
 * Subset of the WDK's ntdef.h: the basic types, with Windows' sizes on every target
 * (ULONG is 32 bits even on LP64 Linux, so the simulator shares this header).
 * Written from Microsoft's documentation (Windows Data Types, LARGE_INTEGER).
 */
#ifndef AEROVBLK_WDK_NTDEF_H
#define AEROVBLK_WDK_NTDEF_H

/*
 * Two compiler families: GCC (mingw-w64 for aerovblk.sys, host gcc / gcc -m32 for the
 * simulator) and MSVC-mode compilers (_MSC_VER without __GNUC__: clang-cl, used by
 * tests/checks/16a-clangcl-build.sh to compile driver/ in the MSVC dialect; cl). The
 * Visual Studio and WDK 7.1 projects use the real WDK headers, not this directory.
 * Only this header branches on the compiler; the others use what it defines:
 *   NTAPI, AV_CDECL     stdcall / cdecl on x86; nothing on x64 Windows; ms_abi on x86_64 Linux
 *   AV_WDK_X64          1 on x86_64 / x64, 0 on i386 / x86
 *   AV_WDK_ALIGNOF(T)   alignment of a type (the static assertions)
 */
#if defined(_MSC_VER) && !defined(__GNUC__)
#  define AV_WDK_MSVC 1
#elif defined(__GNUC__)
#  define AV_WDK_MSVC 0
#else
#  error "include/wdk supports GCC and MSVC-compatible compilers (cl, clang-cl)"
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#  define AV_WDK_X64 1
#elif defined(__i386__) || defined(_M_IX86)
#  define AV_WDK_X64 0
#else
#  error "unsupported architecture"
#endif

/* Calling conventions. Windows x86: stdcall for fixed-argument APIs and every
 * miniport callback (the WDK builds with /Gz), cdecl for variadic ones. x64 has one
 * convention; on x86_64 Linux it is GCC's ms_abi, so the simulator can call and be
 * called by the shipped x64 .sys. On i386 Linux (32-bit simulator) stdcall as on x86. */
#if AV_WDK_MSVC
/* As in the WDK: the __stdcall/__cdecl keywords on x86; x64 has one convention. */
#  if AV_WDK_X64
#    define NTAPI
#    define AV_CDECL
#  else
#    define NTAPI __stdcall
#    define AV_CDECL __cdecl
#  endif
#elif AV_WDK_X64
#  if defined(_WIN64)
#    define NTAPI
#    define AV_CDECL
#  else
#    define NTAPI __attribute__((ms_abi))
#    define AV_CDECL __attribute__((ms_abi))
#  endif
#else
#  define NTAPI __attribute__((stdcall))
#  define AV_CDECL __attribute__((cdecl))
#endif
#if !AV_WDK_MSVC && !defined(__cdecl)
#  define __cdecl AV_CDECL
#endif

#if AV_WDK_MSVC
/* The WDK's own headers switch these off too: nameless struct/union members (C4201)
 * and bit fields of types other than int (C4214) are what Windows' layouts use. */
#  pragma warning(disable: 4201 4214)
#  define AV_WDK_ALIGNOF(T) __alignof(T)
#  if !defined(__clang__) && !(defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L)
/* cl in its default C mode (C89 plus extensions, no /std:c11) has no _Static_assert;
 * the WDK's C_ASSERT technique, one typedef name per use. */
#    define AV_WDK_CAT2(a, b) a##b
#    define AV_WDK_CAT(a, b) AV_WDK_CAT2(a, b)
#    define _Static_assert(e, m) typedef char AV_WDK_CAT(AvWdkStaticAssert, __COUNTER__)[(e) ? 1 : -1]
#  endif
#else
#  define AV_WDK_ALIGNOF(T) _Alignof(T)
#endif
#define NTSYSAPI
#define IN
#define OUT
#define OPTIONAL
#define VOID void
#ifndef CONST
#define CONST const
#endif
#ifndef FALSE
#define FALSE 0
#define TRUE 1
#endif
#ifndef NULL
#define NULL ((void *)0)
#endif

typedef unsigned char UCHAR, *PUCHAR;
typedef signed char CHAR, *PCHAR;
typedef char CCHAR;
typedef unsigned short USHORT, *PUSHORT;
typedef short SHORT, *PSHORT;
#if AV_WDK_MSVC
typedef unsigned long ULONG, *PULONG;    /* the WDK's types: long is 32 bits on Windows */
typedef long LONG, *PLONG;
#else
typedef unsigned int ULONG, *PULONG;     /* 32 bits: never "long" (64 on LP64) */
typedef int LONG, *PLONG;
#endif
typedef unsigned long long ULONGLONG, *PULONGLONG, ULONG64, *PULONG64;
typedef long long LONGLONG, *PLONGLONG, LONG64;
typedef UCHAR BOOLEAN, *PBOOLEAN;
typedef void *PVOID;
typedef unsigned short WCHAR, *PWCHAR, *PWSTR;
typedef const char *PCSTR;
typedef char *PSTR;
#if AV_WDK_X64
typedef unsigned long long ULONG_PTR, *PULONG_PTR, SIZE_T;
typedef long long LONG_PTR;
#else
typedef unsigned long ULONG_PTR, *PULONG_PTR, SIZE_T;
typedef long LONG_PTR;
#endif
typedef ULONG_PTR KAFFINITY;
typedef LONG NTSTATUS;
typedef UCHAR KIRQL;

/* LARGE_INTEGER is 8-byte aligned on x86 too (Microsoft layout); i386 Linux GCC
 * would align long long to 4 inside structs, so say it explicitly. MSVC-mode compilers
 * follow the Microsoft layout already. */
#if AV_WDK_MSVC
#  define AV_WDK_ALIGN8
#else
#  define AV_WDK_ALIGN8 __attribute__((aligned(8)))
#endif
typedef union AV_WDK_ALIGN8 _LARGE_INTEGER {
    struct { ULONG LowPart; LONG HighPart; } u;
    struct { ULONG LowPart; LONG HighPart; };
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;
typedef LARGE_INTEGER PHYSICAL_ADDRESS, *PPHYSICAL_ADDRESS;

#define STATUS_SUCCESS                ((NTSTATUS)0x00000000L)
#define STATUS_UNSUCCESSFUL           ((NTSTATUS)0xC0000001L)
#define STATUS_NOT_IMPLEMENTED        ((NTSTATUS)0xC0000002L)
#define STATUS_INVALID_PARAMETER      ((NTSTATUS)0xC000000DL)
#define STATUS_NO_MEMORY              ((NTSTATUS)0xC0000017L)
#define STATUS_REVISION_MISMATCH      ((NTSTATUS)0xC0000059L)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009AL)
#define STATUS_NOT_SUPPORTED          ((NTSTATUS)0xC00000BBL)
#define STATUS_BUFFER_TOO_SMALL       ((NTSTATUS)0xC0000023L)
#define STATUS_INVALID_DEVICE_REQUEST ((NTSTATUS)0xC0000010L)
#define NT_SUCCESS(s) (((NTSTATUS)(s)) >= 0)

/* Helpers the WDK's ntdef.h provides (same names and meaning). */
typedef CCHAR *PCCHAR;
typedef const UCHAR *PCUCHAR;
typedef const void *PCVOID;
typedef ULONG *PULONG32;
#define ANYSIZE_ARRAY 1
#if AV_WDK_MSVC && !defined(__clang__)
#define FIELD_OFFSET(Type, Field) ((LONG)(LONG_PTR)&(((Type *)0)->Field))  /* the WDK's form */
#else
#define FIELD_OFFSET(Type, Field) ((LONG)__builtin_offsetof(Type, Field))
#endif
#define RTL_FIELD_SIZE(Type, Field) (sizeof(((Type *)0)->Field))
#define RTL_NUMBER_OF(A) (sizeof(A) / sizeof((A)[0]))
#define ARRAYSIZE(A) RTL_NUMBER_OF(A)
#define UNREFERENCED_PARAMETER(P) ((void)(P))
#if AV_WDK_MSVC
#define FORCEINLINE static __forceinline
#else
#define FORCEINLINE static __inline__ __attribute__((always_inline))
#endif
#define C_ASSERT(e) _Static_assert((e), #e)
#define MAXUCHAR  0xff
#define MAXUSHORT 0xffff
#define MAXULONG  0xffffffffU
#define PAGE_SIZE 0x1000
#define PAGE_SHIFT 12

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

#define STATUS_DEVICE_NOT_READY        ((NTSTATUS)0xC00000A3L)
#define STATUS_IO_DEVICE_ERROR         ((NTSTATUS)0xC0000185L)
#define STATUS_NO_SUCH_DEVICE          ((NTSTATUS)0xC000000EL)
#define STATUS_DEVICE_CONFIGURATION_ERROR ((NTSTATUS)0xC0000182L)

/* Layout facts every other header relies on (Windows data type sizes; LARGE_INTEGER
 * is 8-byte aligned on x86 too, per the Microsoft x86 struct layout rules). */
_Static_assert(sizeof(ULONG) == 4 && sizeof(LONG) == 4, "ULONG/LONG are 32-bit");
_Static_assert(sizeof(USHORT) == 2 && sizeof(UCHAR) == 1 && sizeof(BOOLEAN) == 1, "small types");
_Static_assert(sizeof(ULONG_PTR) == sizeof(void *), "ULONG_PTR is pointer-sized");
_Static_assert(sizeof(LARGE_INTEGER) == 8 && AV_WDK_ALIGNOF(LARGE_INTEGER) == 8, "LARGE_INTEGER 8/8");


#endif
