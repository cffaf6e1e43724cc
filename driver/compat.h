/*
 * Compiler compatibility for driver/ code (GCC/mingw-w64, host GCC, MSVC).
 * The only place where compiler-specific constructs may appear in driver/.
 */
#ifndef AEROVBLK_COMPAT_H
#define AEROVBLK_COMPAT_H

#if defined(_MSC_VER)
#include <intrin.h>
#define AV_INLINE static __forceinline
#define AV_UNUSED(x) ((void)(x))
/* Compiler-only barrier: x86/x64 are TSO, so store->store and load->load order
 * between ordinary write-back memory needs no fence instruction. */
#define AvCompilerBarrier() _ReadWriteBarrier()
AV_INLINE void AvFullBarrier(void) { volatile long Dummy = 0; _InterlockedOr(&Dummy, 0); }
/* Interlocked operations (full barriers; compiler intrinsics, no import). */
#define AvInterlockedIncrement(p) _InterlockedIncrement(p)
#define AvInterlockedDecrement(p) _InterlockedDecrement(p)
#define AvInterlockedExchange(p, v) _InterlockedExchange((p), (v))
/* Spin-wait body: GCC emits PAUSE; here a compiler barrier (the loop re-reads a volatile;
 * _mm_pause needs SSE2 headers that the /arch:IA32 check build lacks). */
#define AvCpuRelax() _ReadWriteBarrier()
#else
#define AV_INLINE static inline __attribute__((always_inline))
#define AV_UNUSED(x) ((void)(x))
#define AvCompilerBarrier() __asm__ __volatile__("" ::: "memory")
/* LOCK OR / MFENCE: orders an earlier store before a later load (store->load),
 * the one reordering x86 TSO permits. */
#define AvFullBarrier() __sync_synchronize()
#define AvInterlockedIncrement(p) __atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST)
#define AvInterlockedDecrement(p) __atomic_sub_fetch((p), 1, __ATOMIC_SEQ_CST)
#define AvInterlockedExchange(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define AvCpuRelax() __asm__ __volatile__("pause" ::: "memory")
#endif

/* CONTAINING_RECORD without depending on which header defines it. */
#define AV_CONTAINING_RECORD(Address, Type, Field) \
    ((Type *)((char *)(Address) - (char *)&((Type *)0)->Field))

/* Static assertion usable at file scope in C89/C99 on every compiler. */
#define AV_STATIC_ASSERT(Cond, Name) typedef char AvStaticAssert_##Name[(Cond) ? 1 : -1]

/*
 * Virtio ordering points (spec 2.7.13 and 2.7.7): on x86/x64 the device is coherent
 * and the CPU is TSO, so publish/consume ordering only has to stop the compiler;
 * the store->load case (publish avail idx, then read used flags / avail_event) needs
 * a real fence.
 */
#define AvWriteBarrier() AvCompilerBarrier()
#define AvReadBarrier()  AvCompilerBarrier()
#define AvMemoryBarrier() AvFullBarrier()

/* Freestanding helpers: the driver imports nothing but storport.sys, so no memset/memcpy. */
AV_INLINE void AvZeroMemory(void *Dest, unsigned long Length)
{
    volatile unsigned char *D = (volatile unsigned char *)Dest; /* volatile: keep GCC from emitting memset */
    while (Length--) *D++ = 0;
}
AV_INLINE void AvCopyMemory(void *Dest, const void *Src, unsigned long Length)
{
    volatile unsigned char *D = (volatile unsigned char *)Dest;
    const unsigned char *S = (const unsigned char *)Src;
    while (Length--) *D++ = *S++;
}

#endif
