/*
 * Subset of the WDK's ntddscsi.h for GCC builds: the miniport IOCTL header.
 * Same names and values as the WDK header (facts §3 "SRB_IO_CONTROL", "IOCTL values").
 */
#ifndef AEROVBLK_WDK_NTDDSCSI_H
#define AEROVBLK_WDK_NTDDSCSI_H

#include "ntdef.h"

#ifndef CTL_CODE
#define CTL_CODE(DeviceType, Function, Method, Access) \
    (((DeviceType) << 16) | ((Access) << 14) | ((Function) << 2) | (Method))
#endif
#ifndef METHOD_BUFFERED
#define METHOD_BUFFERED     0
#define METHOD_IN_DIRECT    1
#define METHOD_OUT_DIRECT   2
#define METHOD_NEITHER      3
#endif
#ifndef FILE_ANY_ACCESS
#define FILE_ANY_ACCESS     0
#define FILE_READ_ACCESS    0x0001
#define FILE_WRITE_ACCESS   0x0002
#endif
#ifndef FILE_DEVICE_CONTROLLER
#define FILE_DEVICE_CONTROLLER 0x00000004
#endif

#define IOCTL_SCSI_BASE FILE_DEVICE_CONTROLLER

#define IOCTL_SCSI_PASS_THROUGH        CTL_CODE(IOCTL_SCSI_BASE, 0x0401, METHOD_BUFFERED, FILE_READ_ACCESS | FILE_WRITE_ACCESS)
#define IOCTL_SCSI_MINIPORT            CTL_CODE(IOCTL_SCSI_BASE, 0x0402, METHOD_BUFFERED, FILE_READ_ACCESS | FILE_WRITE_ACCESS)
#define IOCTL_SCSI_GET_INQUIRY_DATA    CTL_CODE(IOCTL_SCSI_BASE, 0x0403, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SCSI_GET_CAPABILITIES    CTL_CODE(IOCTL_SCSI_BASE, 0x0404, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SCSI_PASS_THROUGH_DIRECT CTL_CODE(IOCTL_SCSI_BASE, 0x0405, METHOD_BUFFERED, FILE_READ_ACCESS | FILE_WRITE_ACCESS)
#define IOCTL_SCSI_GET_ADDRESS         CTL_CODE(IOCTL_SCSI_BASE, 0x0406, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SCSI_RESCAN_BUS          CTL_CODE(IOCTL_SCSI_BASE, 0x0407, METHOD_BUFFERED, FILE_ANY_ACCESS)

/* Header of an IOCTL_SCSI_MINIPORT buffer; the payload follows at HeaderLength. */
typedef struct _SRB_IO_CONTROL {
    ULONG HeaderLength;
    UCHAR Signature[8];
    ULONG Timeout;
    ULONG ControlCode;
    ULONG ReturnCode;
    ULONG Length;
} SRB_IO_CONTROL, *PSRB_IO_CONTROL;

/* facts §3: 28 bytes on both architectures; facts §3 "IOCTL values" */
_Static_assert(sizeof(SRB_IO_CONTROL) == 28, "SRB_IO_CONTROL is 28 bytes");
_Static_assert(FIELD_OFFSET(SRB_IO_CONTROL, Timeout) == 12 &&
               FIELD_OFFSET(SRB_IO_CONTROL, ControlCode) == 16 &&
               FIELD_OFFSET(SRB_IO_CONTROL, ReturnCode) == 20 &&
               FIELD_OFFSET(SRB_IO_CONTROL, Length) == 24, "SRB_IO_CONTROL offsets");
_Static_assert(IOCTL_SCSI_MINIPORT == 0x0004D008 && IOCTL_SCSI_PASS_THROUGH == 0x0004D004 &&
               IOCTL_SCSI_PASS_THROUGH_DIRECT == 0x0004D014 &&
               IOCTL_SCSI_GET_ADDRESS == 0x00041018, "IOCTL codes");

#endif
