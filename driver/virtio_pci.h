/*
 * Virtio 1.x modern PCI transport (spec 4.1). Knows only the register accessors
 * (hwreg.h); OS-free so the unit tests drive it against an in-process device model.
 *
 * Two phases, because Windows owns config space reads and BAR mapping:
 *  1. VpciParseConfig: the glue reads PCI config space (StorPortGetBusData) and hands
 *     the bytes over; identity (1AF4:1042 rev 01) is checked and the capability list
 *     walked defensively. Dev->Bars[i].Address/Needed say which BARs hold regions.
 *  2. The glue matches each needed BAR's address to an AccessRange, maps it
 *     (StorPortGetDeviceBase) and fills Bars[i].Va / MappedLength; VpciMapRegions
 *     then checks every region lies inside its mapping and resolves the pointers.
 * Nothing about either known layout (QEMU BAR4, Aero BAR0) is hard-coded.
 */
#ifndef AEROVBLK_VIRTIO_PCI_H
#define AEROVBLK_VIRTIO_PCI_H
#include <ntdef.h>
#include "compat.h"

#define VIRTIO_PCI_VENDOR_ID        0x1AF4
#define VIRTIO_PCI_DEVICE_ID_BLK    0x1042
#define VIRTIO_PCI_REVISION_AERO_V1 0x01

/* Device status bits (spec 2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE        0x01
#define VIRTIO_STATUS_DRIVER             0x02
#define VIRTIO_STATUS_DRIVER_OK          0x04
#define VIRTIO_STATUS_FEATURES_OK        0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED             0x80

#define VIRTIO_MSI_NO_VECTOR 0xFFFF
#define VIRTIO_F_VERSION_1   32

typedef enum _VPCI_STATUS {
    VPCI_OK = 0,
    VPCI_ERR_IDENTITY,          /* wrong vendor/device */
    VPCI_ERR_REVISION,          /* revision != 0x01 */
    VPCI_ERR_CAPABILITIES,      /* malformed or missing capability/region */
    VPCI_ERR_BAR,               /* a region's BAR is not mapped or too small */
    VPCI_ERR_RESET_TIMEOUT,     /* status never read back 0 */
    VPCI_ERR_NO_VERSION_1,      /* device does not offer VERSION_1 */
    VPCI_ERR_FEATURES_REFUSED,  /* FEATURES_OK did not stick */
    VPCI_ERR_QUEUE,             /* queue unavailable / size 0 / bad notify offset */
    VPCI_ERR_VECTOR,            /* MSI-X vector read back as NO_VECTOR */
    VPCI_ERR_CONFIG_UNSTABLE,   /* config_generation kept changing */
    VPCI_ERR_DEVICE_GONE,       /* reads return all ones */
    VPCI_ERR_STATUS_STUCK       /* a device_status bit the driver set did not read back */
} VPCI_STATUS;

/* Why the last VPCI_* call failed (VPCI_DEVICE.ErrorDetail), with the offending value
 * in ErrorValue (a config-space offset, a register value, ...). Stable numbers: the
 * glue puts them in the StorPortLogError entry. */
#define VPCI_DETAIL_NONE                 0
#define VPCI_DETAIL_CONFIG_TOO_SHORT     1   /* value: ConfigLength */
#define VPCI_DETAIL_VENDOR               2   /* value: vendor id */
#define VPCI_DETAIL_DEVICE               3   /* value: device id */
#define VPCI_DETAIL_REVISION             4   /* value: revision */
#define VPCI_DETAIL_HEADER_TYPE          5   /* value: header type */
#define VPCI_DETAIL_NO_CAP_LIST          6   /* value: PCI status */
#define VPCI_DETAIL_CAP_PTR_BOUNDS       7   /* value: pointer */
#define VPCI_DETAIL_CAP_PTR_ALIGN        8   /* value: pointer */
#define VPCI_DETAIL_CAP_LOOP             9   /* value: pointer seen twice */
#define VPCI_DETAIL_CAP_LEN             10   /* value: cap offset (cap ignored) */
#define VPCI_DETAIL_CAP_BAR             11   /* value: cap offset (reserved/unusable BAR, ignored) */
#define VPCI_DETAIL_CAP_ALIGN           12   /* value: cap offset (misaligned offset, ignored) */
#define VPCI_DETAIL_CAP_LENGTH          13   /* value: cap offset (length too small/overflows, ignored) */
#define VPCI_DETAIL_MISSING_COMMON      14
#define VPCI_DETAIL_MISSING_NOTIFY      15
#define VPCI_DETAIL_MISSING_ISR         16
#define VPCI_DETAIL_MISSING_DEVICE      17
#define VPCI_DETAIL_OVERLAP             18   /* value: (typeA << 8) | typeB */
#define VPCI_DETAIL_BAR_NOT_MAPPED      19   /* value: BAR index */
#define VPCI_DETAIL_OUTSIDE_BAR         20   /* value: cfg_type of the region */
#define VPCI_DETAIL_RESET_TIMEOUT       21   /* value: last status read */
#define VPCI_DETAIL_STATUS_STUCK        22   /* value: status read back */
#define VPCI_DETAIL_NO_VERSION_1        23   /* value: device features 32..63 */
#define VPCI_DETAIL_FEATURES_READBACK   24   /* value: half (0/1) that read back differently */
#define VPCI_DETAIL_FEATURES_OK_CLEARED 25   /* value: status read back */
#define VPCI_DETAIL_QUEUE_INDEX         26   /* value: num_queues */
#define VPCI_DETAIL_QUEUE_SIZE_ZERO     27
#define VPCI_DETAIL_QUEUE_SIZE_INVALID  28   /* value: size (not a power of two) */
#define VPCI_DETAIL_QUEUE_SIZE_REFUSED  29   /* value: size read back after writing a smaller one */
#define VPCI_DETAIL_QUEUE_ENABLED       30   /* queue_enable was already 1 before setup */
#define VPCI_DETAIL_QUEUE_ADDRESS       31   /* value: 0 desc, 1 driver, 2 device (misaligned or read back wrong) */
#define VPCI_DETAIL_QUEUE_NOTIFY        32   /* value: queue_notify_off (doorbell outside notify region) */
#define VPCI_DETAIL_QUEUE_ENABLE        33   /* value: queue_enable read back */
#define VPCI_DETAIL_VECTOR_RANGE        34   /* value: vector beyond the MSI-X table */
#define VPCI_DETAIL_VECTOR_READBACK     35   /* value: vector read back */
#define VPCI_DETAIL_DEVICE_GONE         36
#define VPCI_DETAIL_BAD_ARGUMENT        37   /* caller passed an invalid argument */

typedef struct _VPCI_BAR {
    ULONGLONG Address;          /* decoded from config space */
    BOOLEAN IsMemory;
    BOOLEAN Is64Bit;
    BOOLEAN Needed;             /* some region lives in it */
    volatile UCHAR *Va;         /* mapped by the caller */
    ULONG MappedLength;         /* filled by the caller */
} VPCI_BAR;

typedef struct _VPCI_REGION {   /* one virtio_pci_cap (spec 4.1.4) */
    BOOLEAN Present;
    UCHAR Bar;
    ULONG Offset;
    ULONG Length;
} VPCI_REGION;

typedef struct _VPCI_DEVICE {
    USHORT VendorId, DeviceId;
    UCHAR Revision;
    UCHAR InterruptPin;
    VPCI_BAR Bars[6];
    VPCI_REGION CommonRegion, NotifyRegion, IsrRegion, DeviceRegion;
    ULONG NotifyOffMultiplier;
    UCHAR MsixCapOffset;        /* 0 = no MSI-X capability */
    USHORT MsixTableSize;       /* entries */
    /* Resolved by VpciMapRegions */
    volatile UCHAR *Common, *Notify, *Isr, *DeviceCfg;
    volatile UCHAR *QueueNotify;  /* doorbell of queue 0, resolved by VpciSetupQueue */
    /* Busy-wait used while waiting for reset; supplied by the glue (StorPortStallExecution). */
    void (*StallMicroseconds)(ULONG Microseconds);
    /* Diagnostics of the last failure (VPCI_DETAIL_*), for the glue's log entry. */
    ULONG ErrorDetail;
    ULONG ErrorValue;
    /* First virtio capability that was ignored as malformed (VPCI_DETAIL_CAP_*), if any:
     * explains a later "missing region" failure. */
    ULONG IgnoredCapDetail;
    ULONG IgnoredCapOffset;
    USHORT QueueSizeInUse;      /* queue 0, set by VpciSetupQueue */
} VPCI_DEVICE;

VPCI_STATUS VpciParseConfig(VPCI_DEVICE *Dev, const UCHAR *Config, ULONG ConfigLength);
VPCI_STATUS VpciMapRegions(VPCI_DEVICE *Dev);

UCHAR VpciGetStatus(VPCI_DEVICE *Dev);
void VpciAddStatus(VPCI_DEVICE *Dev, UCHAR Bits);      /* read-modify-write, spec 3.1.1 */
VPCI_STATUS VpciReset(VPCI_DEVICE *Dev);               /* write 0, wait (bounded) for 0 */
void VpciFail(VPCI_DEVICE *Dev);                       /* set FAILED */
/* Spec 3.1.1 steps 1-3: reset, ACKNOWLEDGE, DRIVER, each read back. */
VPCI_STATUS VpciBeginInit(VPCI_DEVICE *Dev);
/* Add status bits and read them back (DRIVER_OK: spec 3.1.1 step 8). A read of 0xFF
 * means the device is gone; a DEVICE_NEEDS_RESET bit is reported as STATUS_STUCK. */
VPCI_STATUS VpciAddStatusChecked(VPCI_DEVICE *Dev, UCHAR Bits);
/* TRUE when device_status reads all ones (surprise removal; spec 4.1.4.3 has no
 * valid 0xFF status). One MMIO read. */
BOOLEAN VpciIsDeviceGone(VPCI_DEVICE *Dev);
/* Short English name of a status code, for logs. */
const char *VpciStatusName(VPCI_STATUS Status);

/* Feature negotiation (spec 3.1.1 steps 4-6): offered & Wanted (must contain
 * VERSION_1), written, FEATURES_OK set and re-read. */
VPCI_STATUS VpciNegotiateFeatures(VPCI_DEVICE *Dev, ULONGLONG Wanted, ULONGLONG *Negotiated);
ULONGLONG VpciReadDeviceFeatures(VPCI_DEVICE *Dev);
ULONGLONG VpciReadDriverFeatures(VPCI_DEVICE *Dev);

/* Queue setup (spec 4.1.5.1.3). *QueueSize: in = largest size wanted (power of two),
 * out = size in use (device max if smaller; written back to queue_size if the driver
 * wants less, and read back). Vector: VIRTIO_MSI_NO_VECTOR for INTx. */
USHORT VpciQueueMaxSize(VPCI_DEVICE *Dev, USHORT QueueIndex);
VPCI_STATUS VpciSetupQueue(VPCI_DEVICE *Dev, USHORT QueueIndex, USHORT *QueueSize,
                           ULONGLONG DescPa, ULONGLONG AvailPa, ULONGLONG UsedPa,
                           USHORT MsixVector);
VPCI_STATUS VpciSetConfigVector(VPCI_DEVICE *Dev, USHORT MsixVector);
USHORT VpciNumQueues(VPCI_DEVICE *Dev);
/* TRUE when the device still runs the queue as we programmed it: DRIVER_OK without
 * NEEDS_RESET, QueueIndex enabled at DescPa. FALSE when someone else (the hibernation
 * instance, firmware) reset or reprogrammed it meanwhile. One write, four reads. */
BOOLEAN VpciQueueStillOurs(VPCI_DEVICE *Dev, USHORT QueueIndex, ULONGLONG DescPa);

/* Doorbell of queue 0 (16-bit write of the queue index, spec 4.1.5.2). */
void VpciNotifyQueue(VPCI_DEVICE *Dev, USHORT QueueIndex);
/* ISR status byte, read-to-clear (spec 4.1.4.5): bit 0 queue, bit 1 config. */
UCHAR VpciReadIsr(VPCI_DEVICE *Dev);

/* Device-specific config reads inside a config_generation loop (spec 4.1.4.3.1):
 *   do { Gen = VpciConfigGeneration(Dev); ...VpciConfigRead8/16/32...; }
 *   while (!VpciConfigStable(Dev, Gen) && ++Tries < N);
 * Offsets are checked against the device region; out-of-range reads return 0. */
UCHAR VpciConfigGeneration(VPCI_DEVICE *Dev);
BOOLEAN VpciConfigStable(VPCI_DEVICE *Dev, UCHAR Generation);
UCHAR VpciConfigRead8(VPCI_DEVICE *Dev, ULONG Offset);
USHORT VpciConfigRead16(VPCI_DEVICE *Dev, ULONG Offset);
ULONG VpciConfigRead32(VPCI_DEVICE *Dev, ULONG Offset);
ULONGLONG VpciConfigRead64(VPCI_DEVICE *Dev, ULONG Offset);   /* two 32-bit reads */
void VpciConfigWrite8(VPCI_DEVICE *Dev, ULONG Offset, UCHAR Value);

#endif
