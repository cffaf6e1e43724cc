/*
 * Declarations shared by the files of the simulated storport.sys (sim/storport*.c):
 * the Windows variadic list, the checks every export makes (storport.c) and the exports
 * the export table in storport.c lists but another file defines. Internal to those
 * files; the rest of the simulator uses sim.h.
 */
#ifndef AEROVBLK_SIM_STORPORT_INT_H
#define AEROVBLK_SIM_STORPORT_INT_H
#include "sim.h"

#if defined(__x86_64__)
typedef __builtin_ms_va_list sim_va_list;
#define SIM_VA_START(ap, last) __builtin_ms_va_start(ap, last)
#define SIM_VA_END(ap) __builtin_ms_va_end(ap)
#else
typedef __builtin_va_list sim_va_list;
#define SIM_VA_START(ap, last) __builtin_va_start(ap, last)
#define SIM_VA_END(ap) __builtin_va_end(ap)
#endif
#define SIM_VA_ARG(ap, T) __builtin_va_arg(ap, T)

#define PG 4096ull

/* storport.c */
struct sim_adapter *storport_adapter_of(const char *api, void *ext);
bool storport_in_callback(const char *name);
void storport_unexpected(const char *api);
void storport_dump_unsafe(struct sim_adapter *a, const char *api);

/* storport_notify.c */
VOID AV_CDECL ScsiPortNotification(SCSI_NOTIFICATION_TYPE NotificationType, PVOID HwDeviceExtension, ...);

/* storport_queue.c */
VOID NTAPI ScsiPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length);

/* storport_regs.c: the register and port exports (REG_RW there defines them) */
#define STORPORT_REG_DECLS(T, Name)                                                        \
    T NTAPI StorPortReadRegister##Name(PVOID HwDeviceExtension, T *Register);              \
    VOID NTAPI StorPortWriteRegister##Name(PVOID HwDeviceExtension, T *Register, T Value); \
    VOID NTAPI StorPortReadRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count);  \
    VOID NTAPI StorPortWriteRegisterBuffer##Name(PVOID E, T *Register, T *Buffer, ULONG Count); \
    T NTAPI StorPortReadPort##Name(PVOID HwDeviceExtension, T *Port);                      \
    VOID NTAPI StorPortWritePort##Name(PVOID HwDeviceExtension, T *Port, T Value);         \
    VOID NTAPI StorPortReadPortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count);     \
    VOID NTAPI StorPortWritePortBuffer##Name(PVOID E, T *Port, T *Buffer, ULONG Count);
STORPORT_REG_DECLS(UCHAR, Uchar)
STORPORT_REG_DECLS(USHORT, Ushort)
STORPORT_REG_DECLS(ULONG, Ulong)

#endif
