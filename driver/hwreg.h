/*
 * Register (MMIO) accessors: the lowest layer. Like READ_REGISTER_ULONG: a volatile
 * access of exactly the given width, nothing else. Virtio (spec 4.1.3.1) requires
 * 8/16/32-bit accesses matching the field width; 64-bit fields are two 32-bit accesses.
 *
 * AEROVBLK_HOST (the Linux simulator build) routes every access through the
 * simulator, which forwards it to the device model (QEMU over qtest, or the in-process
 * contract device) and counts it: each access is a VM exit in a real guest.
 */
#ifndef AEROVBLK_HWREG_H
#define AEROVBLK_HWREG_H
#include "compat.h"

#if defined(AEROVBLK_HOST)
#include <ntdef.h>
/* Provided by the simulator (sim/) or by a unit test. Width is 1, 2 or 4. NTAPI (ms_abi
 * on x86_64 Linux) like every other call out of the driver, so a driver built with
 * -mabi=ms (the bench build: one convention, as in the x64 .sys) makes no
 * cross-convention call. */
unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width);
void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value);
AV_INLINE unsigned char  AvRead8(volatile void *R)  { return (unsigned char)AvHostMmioRead(R, 1); }
AV_INLINE unsigned short AvRead16(volatile void *R) { return (unsigned short)AvHostMmioRead(R, 2); }
AV_INLINE unsigned int   AvRead32(volatile void *R) { return AvHostMmioRead(R, 4); }
AV_INLINE void AvWrite8(volatile void *R, unsigned char V)   { AvHostMmioWrite(R, 1, V); }
AV_INLINE void AvWrite16(volatile void *R, unsigned short V) { AvHostMmioWrite(R, 2, V); }
AV_INLINE void AvWrite32(volatile void *R, unsigned int V)   { AvHostMmioWrite(R, 4, V); }
#else
AV_INLINE unsigned char  AvRead8(volatile void *R)  { return *(volatile unsigned char *)R; }
AV_INLINE unsigned short AvRead16(volatile void *R) { return *(volatile unsigned short *)R; }
AV_INLINE unsigned int   AvRead32(volatile void *R) { return *(volatile unsigned int *)R; }
AV_INLINE void AvWrite8(volatile void *R, unsigned char V)   { *(volatile unsigned char *)R = V; }
AV_INLINE void AvWrite16(volatile void *R, unsigned short V) { *(volatile unsigned short *)R = V; }
AV_INLINE void AvWrite32(volatile void *R, unsigned int V)   { *(volatile unsigned int *)R = V; }
#endif

#endif
