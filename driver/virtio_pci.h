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
    VPCI_ERR_DEVICE_GONE        /* reads return all ones */
} VPCI_STATUS;

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
} VPCI_DEVICE;

VPCI_STATUS VpciParseConfig(VPCI_DEVICE *Dev, const UCHAR *Config, ULONG ConfigLength);
VPCI_STATUS VpciMapRegions(VPCI_DEVICE *Dev);

UCHAR VpciGetStatus(VPCI_DEVICE *Dev);
void VpciAddStatus(VPCI_DEVICE *Dev, UCHAR Bits);      /* read-modify-write, spec 3.1.1 */
VPCI_STATUS VpciReset(VPCI_DEVICE *Dev);               /* write 0, wait (bounded) for 0 */
void VpciFail(VPCI_DEVICE *Dev);                       /* set FAILED */

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
