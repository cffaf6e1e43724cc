/*
 * Subset of the WDK's storport.h as Windows 7 SP1 defines it, for GCC builds
 * (mingw-w64 i686/x86_64 for aerovblk.sys; host gcc / gcc -m32 for the simulator).
 * Same names, values and layouts as the real header, so driver/ compiles unchanged
 * with MSVC and the WDK (which does not use this directory).
 *
 * Written from Microsoft's documentation (shared/reference/wdk-ddi/storport, srb) and
 * the Windows 7 facts sheet (shared/reference/windows7-storport-facts.md, "facts §N").
 * Structures stop where Windows 7's stop: HW_INITIALIZATION_DATA ends at HwBuildIo,
 * PORT_CONFIGURATION_INFORMATION at MaxNumberOfIO (facts §1, §2). Never hand Windows 7
 * fields it does not know.
 *
 * Calling conventions (facts §5): every export with a fixed argument list and every
 * miniport callback is NTAPI (stdcall on x86, because the WDK compiles with /Gz); the
 * variadic exports are cdecl (AV_CDECL). On x86_64 Linux both are ms_abi (ntdef.h).
 *
 * Not declared on purpose: StorPortRead/Write{Port,Register}* (the driver uses
 * driver/hwreg.h; whether Windows 7 x64 exports them is uncertain, facts §4), and every
 * Windows 8+ field, code and export.
 */
#ifndef AEROVBLK_WDK_STORPORT_H
#define AEROVBLK_WDK_STORPORT_H

#include "ntdef.h"

#if AV_WDK_X64
#  define AV_WDK_PTR64 1
#else
#  define AV_WDK_PTR64 0
#endif

/* ------------------------------------------------------------------------------------
 * Basic enums shared with ntddk.h / wdm.h (storport.h carries its own copies).
 * ---------------------------------------------------------------------------------- */
typedef PHYSICAL_ADDRESS STOR_PHYSICAL_ADDRESS, *PSTOR_PHYSICAL_ADDRESS;

typedef enum _INTERFACE_TYPE {
    InterfaceTypeUndefined = -1,
    Internal = 0,
    Isa = 1,
    Eisa = 2,
    MicroChannel = 3,
    TurboChannel = 4,
    PCIBus = 5,
    VMEBus = 6,
    NuBus = 7,
    PCMCIABus = 8,
    CBus = 9,
    MPIBus = 10,
    MPSABus = 11,
    ProcessorInternal = 12,
    InternalPowerBus = 13,
    PNPISABus = 14,
    PNPBus = 15,
    Vmcs = 16,
    MaximumInterfaceType
} INTERFACE_TYPE, *PINTERFACE_TYPE;

typedef enum _BUS_DATA_TYPE {
    ConfigurationSpaceUndefined = -1,
    Cmos = 0,
    EisaConfiguration = 1,
    Pos = 2,
    CbusConfiguration = 3,
    PCIConfiguration = 4,
    VMEConfiguration = 5,
    NuBusConfiguration = 6,
    PCMCIAConfiguration = 7,
    MPIConfiguration = 8,
    MPSAConfiguration = 9,
    PNPISAConfiguration = 10,
    SgiInternalConfiguration = 11,
    MaximumBusDataType
} BUS_DATA_TYPE, *PBUS_DATA_TYPE;

typedef enum _KINTERRUPT_MODE {
    LevelSensitive = 0,
    Latched = 1
} KINTERRUPT_MODE;

typedef enum _DMA_WIDTH {
    Width8Bits,
    Width16Bits,
    Width32Bits,
    MaximumDmaWidth
} DMA_WIDTH, *PDMA_WIDTH;

typedef enum _DMA_SPEED {
    Compatible,
    TypeA,
    TypeB,
    TypeC,
    TypeF,
    MaximumDmaSpeed
} DMA_SPEED, *PDMA_SPEED;

/* Kernel objects StorPort embeds in miniport-visible structures. The miniport never
 * looks inside them; the layouts only fix the sizes (facts §4: STOR_DPC 36/72,
 * STOR_LOCK_HANDLE 16/32). KDPC per the documented wdm.h layout. */
typedef ULONG_PTR KSPIN_LOCK, *PKSPIN_LOCK;

typedef struct _KDPC {
    UCHAR Type;
    UCHAR Importance;
    volatile USHORT Number;
    LIST_ENTRY DpcListEntry;
    PVOID DeferredRoutine;
    PVOID DeferredContext;
    PVOID SystemArgument1;
    PVOID SystemArgument2;
    volatile PVOID DpcData;
} KDPC, *PKDPC;

typedef struct _KSPIN_LOCK_QUEUE {
    struct _KSPIN_LOCK_QUEUE *volatile Next;
    PKSPIN_LOCK volatile Lock;
} KSPIN_LOCK_QUEUE, *PKSPIN_LOCK_QUEUE;

typedef struct _KLOCK_QUEUE_HANDLE {
    KSPIN_LOCK_QUEUE LockQueue;
    KIRQL OldIrql;
} KLOCK_QUEUE_HANDLE, *PKLOCK_QUEUE_HANDLE;

/* ------------------------------------------------------------------------------------
 * SCSI_REQUEST_BLOCK and its PnP / power overlays (facts §3; srb.h / storport.h).
 * ---------------------------------------------------------------------------------- */
typedef struct _SCSI_REQUEST_BLOCK {
    USHORT Length;
    UCHAR Function;
    UCHAR SrbStatus;
    UCHAR ScsiStatus;
    UCHAR PathId;
    UCHAR TargetId;
    UCHAR Lun;
    UCHAR QueueTag;
    UCHAR QueueAction;
    UCHAR CdbLength;
    UCHAR SenseInfoBufferLength;
    ULONG SrbFlags;
    ULONG DataTransferLength;
    ULONG TimeOutValue;            /* seconds */
    PVOID DataBuffer;
    PVOID SenseInfoBuffer;
    struct _SCSI_REQUEST_BLOCK *NextSrb;
    PVOID OriginalRequest;
    PVOID SrbExtension;
    union {
        ULONG InternalStatus;
        ULONG QueueSortKey;
        ULONG LinkTimeoutValue;
    };
#if AV_WDK_PTR64
    ULONG Reserved;                /* _WIN64 only: keeps Cdb pointer-aligned */
#endif
    UCHAR Cdb[16];
} SCSI_REQUEST_BLOCK, *PSCSI_REQUEST_BLOCK;

#define SCSI_REQUEST_BLOCK_SIZE sizeof(SCSI_REQUEST_BLOCK)

typedef enum _STOR_PNP_ACTION {
    StorStartDevice = 0x0,
    StorRemoveDevice = 0x2,
    StorStopDevice = 0x4,
    StorQueryCapabilities = 0x9,
    StorQueryResourceRequirements = 0xB,
    StorFilterResourceRequirements = 0xD,
    StorSurpriseRemoval = 0x17
} STOR_PNP_ACTION, *PSTOR_PNP_ACTION;

typedef enum _STOR_DEVICE_POWER_STATE {
    StorPowerDeviceUnspecified = 0,
    StorPowerDeviceD0,
    StorPowerDeviceD1,
    StorPowerDeviceD2,
    StorPowerDeviceD3,
    StorPowerDeviceMaximum
} STOR_DEVICE_POWER_STATE, *PSTOR_DEVICE_POWER_STATE;

typedef enum _STOR_POWER_ACTION {
    StorPowerActionNone = 0,
    StorPowerActionReserved,
    StorPowerActionSleep,
    StorPowerActionHibernate,
    StorPowerActionShutdown,
    StorPowerActionShutdownReset,
    StorPowerActionShutdownOff,
    StorPowerActionWarmEject
} STOR_POWER_ACTION, *PSTOR_POWER_ACTION;

#define SRB_PNP_FLAGS_ADAPTER_REQUEST   0x00000001
#define SRB_POWER_FLAGS_ADAPTER_REQUEST 0x00000001

typedef struct _SCSI_PNP_REQUEST_BLOCK {
    USHORT Length;
    UCHAR Function;
    UCHAR SrbStatus;
    UCHAR PnPSubFunction;
    UCHAR PathId;
    UCHAR TargetId;
    UCHAR Lun;
    STOR_PNP_ACTION PnPAction;
    ULONG SrbFlags;
    ULONG DataTransferLength;
    ULONG TimeOutValue;
    PVOID DataBuffer;
    PVOID SenseInfoBuffer;
    struct _SCSI_REQUEST_BLOCK *NextSrb;
    PVOID OriginalRequest;
    PVOID SrbExtension;
    ULONG SrbPnPFlags;
#if AV_WDK_PTR64
    ULONG Reserved;
#endif
    UCHAR Reserved4[16];
} SCSI_PNP_REQUEST_BLOCK, *PSCSI_PNP_REQUEST_BLOCK;

typedef struct _SCSI_POWER_REQUEST_BLOCK {
    USHORT Length;
    UCHAR Function;
    UCHAR SrbStatus;
    UCHAR SrbPowerFlags;
    UCHAR PathId;
    UCHAR TargetId;
    UCHAR Lun;
    STOR_DEVICE_POWER_STATE DevicePowerState;
    ULONG SrbFlags;
    ULONG DataTransferLength;
    ULONG TimeOutValue;
    PVOID DataBuffer;
    PVOID SenseInfoBuffer;
    struct _SCSI_REQUEST_BLOCK *NextSrb;
    PVOID OriginalRequest;
    PVOID SrbExtension;
    STOR_POWER_ACTION PowerAction;
#if AV_WDK_PTR64
    ULONG Reserved;
#endif
    UCHAR Reserved5[16];
} SCSI_POWER_REQUEST_BLOCK, *PSCSI_POWER_REQUEST_BLOCK;

/* SRB functions (facts §3). 0x26 and up are Windows 8+ or virtual-miniport only. */
#define SRB_FUNCTION_EXECUTE_SCSI           0x00
#define SRB_FUNCTION_CLAIM_DEVICE           0x01
#define SRB_FUNCTION_IO_CONTROL             0x02
#define SRB_FUNCTION_RECEIVE_EVENT          0x03
#define SRB_FUNCTION_RELEASE_QUEUE          0x04
#define SRB_FUNCTION_ATTACH_DEVICE          0x05
#define SRB_FUNCTION_RELEASE_DEVICE         0x06
#define SRB_FUNCTION_SHUTDOWN               0x07
#define SRB_FUNCTION_FLUSH                  0x08
#define SRB_FUNCTION_ABORT_COMMAND          0x10
#define SRB_FUNCTION_RELEASE_RECOVERY       0x11
#define SRB_FUNCTION_RESET_BUS              0x12
#define SRB_FUNCTION_RESET_DEVICE           0x13
#define SRB_FUNCTION_TERMINATE_IO           0x14
#define SRB_FUNCTION_FLUSH_QUEUE            0x15
#define SRB_FUNCTION_REMOVE_DEVICE          0x16
#define SRB_FUNCTION_WMI                    0x17
#define SRB_FUNCTION_LOCK_QUEUE             0x18
#define SRB_FUNCTION_UNLOCK_QUEUE           0x19
#define SRB_FUNCTION_RESET_LOGICAL_UNIT     0x20
#define SRB_FUNCTION_SET_LINK_TIMEOUT       0x21
#define SRB_FUNCTION_LINK_TIMEOUT_OCCURRED  0x22
#define SRB_FUNCTION_LINK_TIMEOUT_COMPLETE  0x23
#define SRB_FUNCTION_POWER                  0x24
#define SRB_FUNCTION_PNP                    0x25
#define SRB_FUNCTION_DUMP_POINTERS          0x26

/* SRB status (facts §3). */
#define SRB_STATUS_PENDING                  0x00
#define SRB_STATUS_SUCCESS                  0x01
#define SRB_STATUS_ABORTED                  0x02
#define SRB_STATUS_ABORT_FAILED             0x03
#define SRB_STATUS_ERROR                    0x04
#define SRB_STATUS_BUSY                     0x05
#define SRB_STATUS_INVALID_REQUEST          0x06
#define SRB_STATUS_INVALID_PATH_ID          0x07
#define SRB_STATUS_NO_DEVICE                0x08
#define SRB_STATUS_TIMEOUT                  0x09
#define SRB_STATUS_SELECTION_TIMEOUT        0x0A
#define SRB_STATUS_COMMAND_TIMEOUT          0x0B
#define SRB_STATUS_MESSAGE_REJECTED         0x0D
#define SRB_STATUS_BUS_RESET                0x0E
#define SRB_STATUS_PARITY_ERROR             0x0F
#define SRB_STATUS_REQUEST_SENSE_FAILED     0x10
#define SRB_STATUS_NO_HBA                   0x11
#define SRB_STATUS_DATA_OVERRUN             0x12
#define SRB_STATUS_UNEXPECTED_BUS_FREE      0x13
#define SRB_STATUS_PHASE_SEQUENCE_FAILURE   0x14
#define SRB_STATUS_BAD_SRB_BLOCK_LENGTH     0x15
#define SRB_STATUS_REQUEST_FLUSHED          0x16
#define SRB_STATUS_INVALID_LUN              0x20
#define SRB_STATUS_INVALID_TARGET_ID        0x21
#define SRB_STATUS_BAD_FUNCTION             0x22
#define SRB_STATUS_ERROR_RECOVERY           0x23
#define SRB_STATUS_NOT_POWERED              0x24
#define SRB_STATUS_LINK_DOWN                0x25
#define SRB_STATUS_INTERNAL_ERROR           0x30
#define SRB_STATUS_QUEUE_FROZEN             0x40   /* port driver only */
#define SRB_STATUS_AUTOSENSE_VALID          0x80
#define SRB_STATUS(Status) ((Status) & ~(SRB_STATUS_AUTOSENSE_VALID | SRB_STATUS_QUEUE_FROZEN))

/* SRB flags (facts §3). */
#define SRB_FLAGS_QUEUE_ACTION_ENABLE       0x00000002
#define SRB_FLAGS_DISABLE_DISCONNECT        0x00000004
#define SRB_FLAGS_DISABLE_SYNCH_TRANSFER    0x00000008
#define SRB_FLAGS_BYPASS_FROZEN_QUEUE       0x00000010
#define SRB_FLAGS_DISABLE_AUTOSENSE         0x00000020
#define SRB_FLAGS_DATA_IN                   0x00000040
#define SRB_FLAGS_DATA_OUT                  0x00000080
#define SRB_FLAGS_NO_DATA_TRANSFER          0x00000000
#define SRB_FLAGS_UNSPECIFIED_DIRECTION     (SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT)
#define SRB_FLAGS_NO_QUEUE_FREEZE           0x00000100
#define SRB_FLAGS_ADAPTER_CACHE_ENABLE      0x00000200
#define SRB_FLAGS_FREE_SENSE_BUFFER         0x00000400
#define SRB_FLAGS_IS_ACTIVE                 0x00010000
#define SRB_FLAGS_ALLOCATED_FROM_ZONE       0x00020000
#define SRB_FLAGS_SGLIST_FROM_POOL          0x00040000
#define SRB_FLAGS_BYPASS_LOCKED_QUEUE       0x00080000
#define SRB_FLAGS_NO_KEEP_AWAKE             0x00100000
#define SRB_FLAGS_PORT_DRIVER_ALLOCSENSE    0x00200000
#define SRB_FLAGS_PORT_DRIVER_SENSEHASPORT  0x00400000
#define SRB_FLAGS_DONT_START_NEXT_PACKET    0x00800000
#define SRB_FLAGS_PORT_DRIVER_RESERVED      0x0F000000
#define SRB_FLAGS_CLASS_DRIVER_RESERVED     0xF0000000

/* Queue actions and tags (facts §3). */
#define SRB_SIMPLE_TAG_REQUEST              0x20
#define SRB_HEAD_OF_QUEUE_TAG_REQUEST       0x21
#define SRB_ORDERED_QUEUE_TAG_REQUEST       0x22
#define SRB_WMI_FLAGS_ADAPTER_REQUEST       0x01

#define SP_UNTAGGED                         ((UCHAR)~0)
#define SP_UNINITIALIZED_VALUE              ((ULONG)~0)

/* SCSI status byte (ScsiStatus), facts §3. scsi.h repeats these with the same values. */
#ifndef SCSISTAT_GOOD
#define SCSISTAT_GOOD                       0x00
#define SCSISTAT_CHECK_CONDITION            0x02
#define SCSISTAT_CONDITION_MET              0x04
#define SCSISTAT_BUSY                       0x08
#define SCSISTAT_INTERMEDIATE               0x10
#define SCSISTAT_INTERMEDIATE_COND_MET      0x14
#define SCSISTAT_RESERVATION_CONFLICT       0x18
#define SCSISTAT_COMMAND_TERMINATED         0x22
#define SCSISTAT_QUEUE_FULL                 0x28
#endif

/* Limits from srb.h/storport.h. */
#define SCSI_MAXIMUM_BUSES                  8
#define SCSI_MAXIMUM_TARGETS_PER_BUS        128
#define SCSI_MAXIMUM_LOGICAL_UNITS          8
#define SCSI_MINIMUM_PHYSICAL_BREAKS        16
#define SCSI_MAXIMUM_PHYSICAL_BREAKS        255
#define SCSI_MAXIMUM_TARGETS                8
#define SCSI_MAXIMUM_LUNS_PER_TARGET        255

/* StorPortLogError error codes (srb.h). */
#define SP_BUS_PARITY_ERROR                 0x0001
#define SP_UNEXPECTED_DISCONNECT            0x0002
#define SP_INVALID_RESELECTION              0x0003
#define SP_BUS_TIME_OUT                     0x0004
#define SP_PROTOCOL_ERROR                   0x0005
#define SP_INTERNAL_ADAPTER_ERROR           0x0006
#define SP_REQUEST_TIMEOUT                  0x0007
#define SP_IRQ_NOT_RESPONDING               0x0008
#define SP_BAD_FW_WARNING                   0x0009
#define SP_BAD_FW_ERROR                     0x000a
#define SP_LOST_WMI_MINIPORT_REQUEST        0x000b

/* HwFindAdapter results (facts §2). */
#define SP_RETURN_NOT_FOUND                 0
#define SP_RETURN_FOUND                     1
#define SP_RETURN_ERROR                     2
#define SP_RETURN_BAD_CONFIG                3

/* ConfigInfo->MapBuffers (facts §2). STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE is Win8+. */
#define STOR_MAP_NO_BUFFERS                 0
#define STOR_MAP_ALL_BUFFERS                1
#define STOR_MAP_NON_READ_WRITE_BUFFERS     2

/* ConfigInfo->Dma64BitAddresses (facts §2). */
#define SCSI_DMA64_MINIPORT_SUPPORTED           0x01
#define SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED 0x02
#define SCSI_DMA64_SYSTEM_SUPPORTED             0x80

/* STOR_STATUS (StorPortExtendedFunction results), facts §4. */
#define STOR_STATUS_SUCCESS                 (0x00000000U)
#define STOR_STATUS_UNSUCCESSFUL            (0xC1000001U)
#define STOR_STATUS_NOT_IMPLEMENTED         (0xC1000002U)
#define STOR_STATUS_INSUFFICIENT_RESOURCES  (0xC1000003U)
#define STOR_STATUS_BUFFER_TOO_SMALL        (0xC1000004U)
#define STOR_STATUS_ACCESS_DENIED           (0xC1000005U)
#define STOR_STATUS_INVALID_PARAMETER       (0xC1000006U)
#define STOR_STATUS_INVALID_DEVICE_REQUEST  (0xC1000007U)
#define STOR_STATUS_INVALID_IRQL            (0xC1000008U)
#define STOR_STATUS_INVALID_DEVICE_STATE    (0xC1000009U)
#define STOR_STATUS_INVALID_BUFFER_SIZE     (0xC100000AU)
#define STOR_STATUS_UNSUPPORTED_VERSION     (0xC100000BU)

/* ------------------------------------------------------------------------------------
 * Adapter resources, scatter/gather, DPC/lock objects, MSI information.
 * ---------------------------------------------------------------------------------- */
typedef struct _ACCESS_RANGE {
    STOR_PHYSICAL_ADDRESS RangeStart;
    ULONG RangeLength;
    BOOLEAN RangeInMemory;
} ACCESS_RANGE, *PACCESS_RANGE;

typedef struct _MEMORY_REGION {
    PUCHAR VirtualBase;
    PHYSICAL_ADDRESS PhysicalBase;
    ULONG Length;
} MEMORY_REGION, *PMEMORY_REGION;

typedef struct _STOR_SCATTER_GATHER_ELEMENT {
    STOR_PHYSICAL_ADDRESS PhysicalAddress;
    ULONG Length;
    ULONG_PTR Reserved;
} STOR_SCATTER_GATHER_ELEMENT, *PSTOR_SCATTER_GATHER_ELEMENT;

typedef struct _STOR_SCATTER_GATHER_LIST {
    ULONG NumberOfElements;
    ULONG_PTR Reserved;
    STOR_SCATTER_GATHER_ELEMENT List[];
} STOR_SCATTER_GATHER_LIST, *PSTOR_SCATTER_GATHER_LIST;

typedef struct _STOR_DPC {
    KDPC Dpc;
    KSPIN_LOCK Lock;
} STOR_DPC, *PSTOR_DPC;

typedef enum _STOR_SPINLOCK {
    DpcLock = 1,
    StartIoLock,
    InterruptLock
} STOR_SPINLOCK;

typedef struct _STOR_LOCK_HANDLE {
    STOR_SPINLOCK Lock;
    struct {
        struct {
            PVOID Next;
            PVOID Lock;
        } LockQueue;
        KIRQL OldIrql;
    } Context;
} STOR_LOCK_HANDLE, *PSTOR_LOCK_HANDLE;

typedef struct _MESSAGE_INTERRUPT_INFORMATION {
    ULONG MessageId;
    ULONG MessageData;
    STOR_PHYSICAL_ADDRESS MessageAddress;
    ULONG InterruptVector;
    ULONG InterruptLevel;
    KINTERRUPT_MODE InterruptMode;
} MESSAGE_INTERRUPT_INFORMATION, *PMESSAGE_INTERRUPT_INFORMATION;

typedef enum _STOR_SYNCHRONIZATION_MODEL {
    StorSynchronizeHalfDuplex,
    StorSynchronizeFullDuplex
} STOR_SYNCHRONIZATION_MODEL;

typedef enum _INTERRUPT_SYNCHRONIZATION_MODE {
    InterruptSupportNone,
    InterruptSynchronizeAll,
    InterruptSynchronizePerMessage
} INTERRUPT_SYNCHRONIZATION_MODE;

typedef enum _SCSI_ADAPTER_CONTROL_TYPE {
    ScsiQuerySupportedControlTypes = 0,
    ScsiStopAdapter,
    ScsiRestartAdapter,
    ScsiSetBootConfig,
    ScsiSetRunningConfig,
    ScsiAdapterControlMax,          /* 5 on Windows 7; later values are Win8+ */
    /* WDK: 0xffffffff (forces a 32-bit enum); an int value keeps ISO C happy, same size */
    MakeAdapterControlTypeSizeOfUlong = 0x7fffffff
} SCSI_ADAPTER_CONTROL_TYPE, *PSCSI_ADAPTER_CONTROL_TYPE;

typedef enum _SCSI_ADAPTER_CONTROL_STATUS {
    ScsiAdapterControlSuccess = 0,
    ScsiAdapterControlUnsuccessful
} SCSI_ADAPTER_CONTROL_STATUS, *PSCSI_ADAPTER_CONTROL_STATUS;

typedef struct _SCSI_SUPPORTED_CONTROL_TYPE_LIST {
    ULONG MaxControlType;
    BOOLEAN SupportedTypeList[];
} SCSI_SUPPORTED_CONTROL_TYPE_LIST, *PSCSI_SUPPORTED_CONTROL_TYPE_LIST;

/* ------------------------------------------------------------------------------------
 * Miniport callbacks: all NTAPI (facts §5). Function types (HW_xxx) as the WDK 8+
 * headers name them, plus the pointer types (PHW_xxx) every WDK has.
 * ---------------------------------------------------------------------------------- */
struct _PORT_CONFIGURATION_INFORMATION;

typedef BOOLEAN NTAPI HW_INITIALIZE(PVOID DeviceExtension);
typedef HW_INITIALIZE *PHW_INITIALIZE;
typedef BOOLEAN NTAPI HW_BUILDIO(PVOID DeviceExtension, PSCSI_REQUEST_BLOCK Srb);
typedef HW_BUILDIO *PHW_BUILDIO;
typedef BOOLEAN NTAPI HW_STARTIO(PVOID DeviceExtension, PSCSI_REQUEST_BLOCK Srb);
typedef HW_STARTIO *PHW_STARTIO;
typedef BOOLEAN NTAPI HW_INTERRUPT(PVOID DeviceExtension);
typedef HW_INTERRUPT *PHW_INTERRUPT;
typedef VOID NTAPI HW_TIMER(PVOID DeviceExtension);
typedef HW_TIMER *PHW_TIMER;
typedef VOID NTAPI HW_DMA_STARTED(PVOID DeviceExtension);
typedef HW_DMA_STARTED *PHW_DMA_STARTED;
typedef ULONG NTAPI HW_FIND_ADAPTER(PVOID DeviceExtension, PVOID HwContext,
                                    PVOID BusInformation, PCHAR ArgumentString,
                                    struct _PORT_CONFIGURATION_INFORMATION *ConfigInfo,
                                    PBOOLEAN Reserved3);
typedef HW_FIND_ADAPTER *PHW_FIND_ADAPTER;
typedef BOOLEAN NTAPI HW_RESET_BUS(PVOID DeviceExtension, ULONG PathId);
typedef HW_RESET_BUS *PHW_RESET_BUS;
typedef BOOLEAN NTAPI HW_ADAPTER_STATE(PVOID DeviceExtension, PVOID Context, BOOLEAN SaveState);
typedef HW_ADAPTER_STATE *PHW_ADAPTER_STATE;
typedef SCSI_ADAPTER_CONTROL_STATUS NTAPI HW_ADAPTER_CONTROL(PVOID DeviceExtension,
                                                            SCSI_ADAPTER_CONTROL_TYPE ControlType,
                                                            PVOID Parameters);
typedef HW_ADAPTER_CONTROL *PHW_ADAPTER_CONTROL;
typedef BOOLEAN NTAPI HW_PASSIVE_INITIALIZE_ROUTINE(PVOID DeviceExtension);
typedef HW_PASSIVE_INITIALIZE_ROUTINE *PHW_PASSIVE_INITIALIZE_ROUTINE;
typedef VOID NTAPI HW_DPC_ROUTINE(PSTOR_DPC Dpc, PVOID HwDeviceExtension,
                                  PVOID SystemArgument1, PVOID SystemArgument2);
typedef HW_DPC_ROUTINE *PHW_DPC_ROUTINE;
typedef BOOLEAN NTAPI HW_MESSAGE_SIGNALED_INTERRUPT_ROUTINE(PVOID HwDeviceExtension, ULONG MessageId);
typedef HW_MESSAGE_SIGNALED_INTERRUPT_ROUTINE *PHW_MESSAGE_SIGNALED_INTERRUPT_ROUTINE;
typedef BOOLEAN NTAPI STOR_SYNCHRONIZED_ACCESS(PVOID HwDeviceExtension, PVOID Context);
typedef STOR_SYNCHRONIZED_ACCESS *PSTOR_SYNCHRONIZED_ACCESS;

/* ------------------------------------------------------------------------------------
 * PORT_CONFIGURATION_INFORMATION, Windows 7 layout (facts §2): ends at MaxNumberOfIO.
 * ---------------------------------------------------------------------------------- */
typedef struct _PORT_CONFIGURATION_INFORMATION {
    ULONG Length;
    ULONG SystemIoBusNumber;
    INTERFACE_TYPE AdapterInterfaceType;
    ULONG BusInterruptLevel;
    ULONG BusInterruptVector;
    KINTERRUPT_MODE InterruptMode;
    ULONG MaximumTransferLength;
    ULONG NumberOfPhysicalBreaks;
    ULONG DmaChannel;
    ULONG DmaPort;
    DMA_WIDTH DmaWidth;
    DMA_SPEED DmaSpeed;
    ULONG AlignmentMask;
    ULONG NumberOfAccessRanges;
    ACCESS_RANGE (*AccessRanges)[];
    PVOID Reserved;                    /* Win8+ names it MiniportDumpData */
    UCHAR NumberOfBuses;
    CCHAR InitiatorBusId[8];
    BOOLEAN ScatterGather;
    BOOLEAN Master;
    BOOLEAN CachesData;
    BOOLEAN AdapterScansDown;
    BOOLEAN AtdiskPrimaryClaimed;
    BOOLEAN AtdiskSecondaryClaimed;
    BOOLEAN Dma32BitAddresses;
    BOOLEAN DemandMode;
    UCHAR MapBuffers;
    BOOLEAN NeedPhysicalAddresses;
    BOOLEAN TaggedQueuing;
    BOOLEAN AutoRequestSense;
    BOOLEAN MultipleRequestPerLu;
    BOOLEAN ReceiveEvent;
    BOOLEAN RealModeInitialized;
    BOOLEAN BufferAccessScsiPortControlled;
    UCHAR MaximumNumberOfTargets;
    UCHAR ReservedUchars[2];           /* Win8+: SrbType, AddressType */
    ULONG SlotNumber;
    ULONG BusInterruptLevel2;
    ULONG BusInterruptVector2;
    KINTERRUPT_MODE InterruptMode2;
    ULONG DmaChannel2;
    ULONG DmaPort2;
    DMA_WIDTH DmaWidth2;
    DMA_SPEED DmaSpeed2;
    ULONG DeviceExtensionSize;
    ULONG SpecificLuExtensionSize;
    ULONG SrbExtensionSize;
    UCHAR Dma64BitAddresses;
    BOOLEAN ResetTargetSupported;
    UCHAR MaximumNumberOfLogicalUnits;
    BOOLEAN WmiDataProvider;
    STOR_SYNCHRONIZATION_MODEL SynchronizationModel;
    PHW_MESSAGE_SIGNALED_INTERRUPT_ROUTINE HwMSInterruptRoutine;
    INTERRUPT_SYNCHRONIZATION_MODE InterruptSynchronizationMode;
    MEMORY_REGION DumpRegion;
    ULONG RequestedDumpBufferSize;
    BOOLEAN VirtualDevice;
    ULONG ExtendedFlags1;
    ULONG MaxNumberOfIO;
} PORT_CONFIGURATION_INFORMATION, *PPORT_CONFIGURATION_INFORMATION;

/* ------------------------------------------------------------------------------------
 * HW_INITIALIZATION_DATA, Windows 7 layout (facts §1): ends at HwBuildIo.
 * ---------------------------------------------------------------------------------- */
typedef struct _HW_INITIALIZATION_DATA {
    ULONG HwInitializationDataSize;
    INTERFACE_TYPE AdapterInterfaceType;
    PHW_INITIALIZE HwInitialize;
    PHW_STARTIO HwStartIo;
    PHW_INTERRUPT HwInterrupt;
    PHW_FIND_ADAPTER HwFindAdapter;
    PHW_RESET_BUS HwResetBus;
    PHW_DMA_STARTED HwDmaStarted;      /* must be NULL */
    PHW_ADAPTER_STATE HwAdapterState;  /* must be NULL */
    ULONG DeviceExtensionSize;
    ULONG SpecificLuExtensionSize;
    ULONG SrbExtensionSize;
    ULONG NumberOfAccessRanges;
    PVOID Reserved;
    UCHAR MapBuffers;
    BOOLEAN NeedPhysicalAddresses;
    BOOLEAN TaggedQueuing;
    BOOLEAN AutoRequestSense;
    BOOLEAN MultipleRequestPerLu;
    BOOLEAN ReceiveEvent;
    USHORT VendorIdLength;
    PVOID VendorId;
    union {
        USHORT ReservedUshort;
        USHORT PortVersionFlags;
    };
    USHORT DeviceIdLength;
    PVOID DeviceId;
    PHW_ADAPTER_CONTROL HwAdapterControl;
    PHW_BUILDIO HwBuildIo;
} HW_INITIALIZATION_DATA, *PHW_INITIALIZATION_DATA;

/* ------------------------------------------------------------------------------------
 * PCI configuration space (storport.h carries the ntddk.h definitions).
 * ---------------------------------------------------------------------------------- */
#define PCI_TYPE0_ADDRESSES 6
#define PCI_TYPE1_ADDRESSES 2
#define PCI_TYPE2_ADDRESSES 5

typedef struct _PCI_COMMON_CONFIG {
    USHORT VendorID;
    USHORT DeviceID;
    USHORT Command;
    USHORT Status;
    UCHAR RevisionID;
    UCHAR ProgIf;
    UCHAR SubClass;
    UCHAR BaseClass;
    UCHAR CacheLineSize;
    UCHAR LatencyTimer;
    UCHAR HeaderType;
    UCHAR BIST;
    union {
        struct _PCI_HEADER_TYPE_0 {
            ULONG BaseAddresses[PCI_TYPE0_ADDRESSES];
            ULONG CIS;
            USHORT SubVendorID;
            USHORT SubSystemID;
            ULONG ROMBaseAddress;
            UCHAR CapabilitiesPtr;
            UCHAR Reserved1[3];
            ULONG Reserved2;
            UCHAR InterruptLine;
            UCHAR InterruptPin;
            UCHAR MinimumGrant;
            UCHAR MaximumLatency;
        } type0;
        struct _PCI_HEADER_TYPE_1 {
            ULONG BaseAddresses[PCI_TYPE1_ADDRESSES];
            UCHAR PrimaryBus;
            UCHAR SecondaryBus;
            UCHAR SubordinateBus;
            UCHAR SecondaryLatency;
            UCHAR IOBase;
            UCHAR IOLimit;
            USHORT SecondaryStatus;
            USHORT MemoryBase;
            USHORT MemoryLimit;
            USHORT PrefetchBase;
            USHORT PrefetchLimit;
            ULONG PrefetchBaseUpper32;
            ULONG PrefetchLimitUpper32;
            USHORT IOBaseUpper16;
            USHORT IOLimitUpper16;
            UCHAR CapabilitiesPtr;
            UCHAR Reserved1[3];
            ULONG ROMBaseAddress;
            UCHAR InterruptLine;
            UCHAR InterruptPin;
            USHORT BridgeControl;
        } type1;
    } u;
    UCHAR DeviceSpecific[192];
} PCI_COMMON_CONFIG, *PPCI_COMMON_CONFIG;

#define PCI_COMMON_HDR_LENGTH (FIELD_OFFSET(PCI_COMMON_CONFIG, DeviceSpecific))
#define PCI_INVALID_VENDORID            0xFFFF
#define PCI_ENABLE_IO_SPACE             0x0001
#define PCI_ENABLE_MEMORY_SPACE         0x0002
#define PCI_ENABLE_BUS_MASTER           0x0004
#define PCI_DISABLE_LEVEL_INTERRUPT     0x0400
#define PCI_STATUS_CAPABILITIES_LIST    0x0010
#define PCI_ADDRESS_IO_SPACE            0x00000001
#define PCI_ADDRESS_MEMORY_TYPE_MASK    0x00000006
#define PCI_ADDRESS_MEMORY_PREFETCHABLE 0x00000008
#define PCI_ADDRESS_IO_ADDRESS_MASK     0xfffffffc
#define PCI_ADDRESS_MEMORY_ADDRESS_MASK 0xfffffff0
#define PCI_TYPE_32BIT                  0
#define PCI_TYPE_64BIT                  4
#define PCI_CAPABILITY_ID_MSI           0x05
#define PCI_CAPABILITY_ID_VENDOR_SPECIFIC 0x09
#define PCI_CAPABILITY_ID_MSIX          0x11

typedef struct _PCI_CAPABILITIES_HEADER {
    UCHAR CapabilityID;
    UCHAR Next;
} PCI_CAPABILITIES_HEADER, *PPCI_CAPABILITIES_HEADER;

/* ------------------------------------------------------------------------------------
 * storport.sys exports (Windows 7 SP1 set, facts §4). x86 link names are _Name@N;
 * driver/storport-x86.def lists them and must agree with these prototypes.
 * ---------------------------------------------------------------------------------- */
typedef enum _SCSI_NOTIFICATION_TYPE {
    RequestComplete,
    NextRequest,
    NextLuRequest,
    ResetDetected,
    _obsolete1,
    _obsolete2,
    RequestTimerCall,
    BusChangeDetected,
    WMIEvent,
    WMIReregister,
    LinkUp,
    LinkDown,
    QueryTickCount,
    BufferOverrunDetected,
    TraceNotification,
    GetExtendedFunctionTable,
    EnablePassiveInitialization = 0x1000,
    InitializeDpc,
    IssueDpc,
    AcquireSpinLock,
    ReleaseSpinLock
} SCSI_NOTIFICATION_TYPE, *PSCSI_NOTIFICATION_TYPE;

/* StorPortExtendedFunction codes (facts §4); 0..25 exist on Windows 7. */
typedef enum _STORPORT_FUNCTION_CODE {
    ExtFunctionAllocatePool,
    ExtFunctionFreePool,
    ExtFunctionAllocateMdl,
    ExtFunctionFreeMdl,
    ExtFunctionBuildMdlForNonPagedPool,
    ExtFunctionGetSystemAddress,
    ExtFunctionGetOriginalMdl,
    ExtFunctionCompleteServiceIrp,
    ExtFunctionGetDeviceObjects,
    ExtFunctionBuildScatterGatherList,
    ExtFunctionPutScatterGatherList,
    ExtFunctionAcquireMSISpinLock,
    ExtFunctionReleaseMSISpinLock,
    ExtFunctionGetMessageInterruptInformation,
    ExtFunctionInitializePerformanceOptimizations,
    ExtFunctionGetStartIoPerformanceParameters,
    ExtFunctionLogSystemEvent,
    ExtFunctionGetCurrentProcessorNumber,
    ExtFunctionGetActiveGroupCount,
    ExtFunctionGetGroupAffinity,
    ExtFunctionGetActiveNodeCount,
    ExtFunctionGetNodeAffinity,
    ExtFunctionGetHighestNodeNumber,
    ExtFunctionGetLogicalProcessorRelationship,
    ExtFunctionAllocateContiguousMemorySpecifyCacheNode,
    ExtFunctionFreeContiguousMemorySpecifyCache
} STORPORT_FUNCTION_CODE, *PSTORPORT_FUNCTION_CODE;

#define STORPORT_API

STORPORT_API ULONG NTAPI StorPortInitialize(PVOID Argument1, PVOID Argument2,
                                            PHW_INITIALIZATION_DATA HwInitializationData,
                                            PVOID HwContext);
STORPORT_API VOID NTAPI StorPortFreeDeviceBase(PVOID HwDeviceExtension, PVOID MappedAddress);
STORPORT_API ULONG NTAPI StorPortGetBusData(PVOID DeviceExtension, ULONG BusDataType,
                                            ULONG SystemIoBusNumber, ULONG SlotNumber,
                                            PVOID Buffer, ULONG Length);
STORPORT_API ULONG NTAPI StorPortSetBusDataByOffset(PVOID DeviceExtension, ULONG BusDataType,
                                                    ULONG SystemIoBusNumber, ULONG SlotNumber,
                                                    PVOID Buffer, ULONG Offset, ULONG Length);
STORPORT_API PVOID NTAPI StorPortGetDeviceBase(PVOID HwDeviceExtension, INTERFACE_TYPE BusType,
                                               ULONG SystemIoBusNumber,
                                               STOR_PHYSICAL_ADDRESS IoAddress,
                                               ULONG NumberOfBytes, BOOLEAN InIoSpace);
STORPORT_API PVOID NTAPI StorPortGetLogicalUnit(PVOID HwDeviceExtension, UCHAR PathId,
                                                UCHAR TargetId, UCHAR Lun);
STORPORT_API PSCSI_REQUEST_BLOCK NTAPI StorPortGetSrb(PVOID DeviceExtension, UCHAR PathId,
                                                      UCHAR TargetId, UCHAR Lun, LONG QueueTag);
STORPORT_API STOR_PHYSICAL_ADDRESS NTAPI StorPortGetPhysicalAddress(PVOID HwDeviceExtension,
                                                                    PSCSI_REQUEST_BLOCK Srb,
                                                                    PVOID VirtualAddress,
                                                                    ULONG *Length);
STORPORT_API PVOID NTAPI StorPortGetVirtualAddress(PVOID HwDeviceExtension,
                                                   STOR_PHYSICAL_ADDRESS PhysicalAddress);
STORPORT_API PVOID NTAPI StorPortGetUncachedExtension(PVOID HwDeviceExtension,
                                                      PPORT_CONFIGURATION_INFORMATION ConfigInfo,
                                                      ULONG NumberOfBytes);
STORPORT_API BOOLEAN NTAPI StorPortPauseDevice(PVOID HwDeviceExtension, UCHAR PathId,
                                               UCHAR TargetId, UCHAR Lun, ULONG Timeout);
STORPORT_API BOOLEAN NTAPI StorPortResumeDevice(PVOID HwDeviceExtension, UCHAR PathId,
                                                UCHAR TargetId, UCHAR Lun);
STORPORT_API BOOLEAN NTAPI StorPortPause(PVOID HwDeviceExtension, ULONG Timeout);
STORPORT_API BOOLEAN NTAPI StorPortResume(PVOID HwDeviceExtension);
STORPORT_API BOOLEAN NTAPI StorPortDeviceBusy(PVOID HwDeviceExtension, UCHAR PathId,
                                              UCHAR TargetId, UCHAR Lun,
                                              ULONG RequestsToComplete);
STORPORT_API BOOLEAN NTAPI StorPortDeviceReady(PVOID HwDeviceExtension, UCHAR PathId,
                                               UCHAR TargetId, UCHAR Lun);
STORPORT_API BOOLEAN NTAPI StorPortBusy(PVOID HwDeviceExtension, ULONG RequestsToComplete);
STORPORT_API BOOLEAN NTAPI StorPortReady(PVOID HwDeviceExtension);
STORPORT_API BOOLEAN NTAPI StorPortSetDeviceQueueDepth(PVOID HwDeviceExtension, UCHAR PathId,
                                                       UCHAR TargetId, UCHAR Lun, ULONG Depth);
STORPORT_API VOID AV_CDECL StorPortNotification(SCSI_NOTIFICATION_TYPE NotificationType,
                                                PVOID HwDeviceExtension, ...);
STORPORT_API VOID NTAPI StorPortLogError(PVOID HwDeviceExtension, PSCSI_REQUEST_BLOCK Srb,
                                         UCHAR PathId, UCHAR TargetId, UCHAR Lun,
                                         ULONG ErrorCode, ULONG UniqueId);
STORPORT_API VOID NTAPI StorPortCompleteRequest(PVOID HwDeviceExtension, UCHAR PathId,
                                                UCHAR TargetId, UCHAR Lun, UCHAR SrbStatus);
STORPORT_API VOID NTAPI StorPortMoveMemory(PVOID WriteBuffer, PVOID ReadBuffer, ULONG Length);
STORPORT_API VOID NTAPI StorPortStallExecution(ULONG Delay);
STORPORT_API STOR_PHYSICAL_ADDRESS NTAPI StorPortConvertUlongToPhysicalAddress(ULONG_PTR UlongAddress);
STORPORT_API VOID NTAPI StorPortQuerySystemTime(PLARGE_INTEGER CurrentTime);
STORPORT_API BOOLEAN NTAPI StorPortValidateRange(PVOID HwDeviceExtension, INTERFACE_TYPE BusType,
                                                 ULONG SystemIoBusNumber,
                                                 STOR_PHYSICAL_ADDRESS IoAddress,
                                                 ULONG NumberOfBytes, BOOLEAN InIoSpace);
STORPORT_API VOID AV_CDECL StorPortDebugPrint(ULONG DebugPrintLevel, PCCHAR DebugMessage, ...);
STORPORT_API BOOLEAN NTAPI StorPortSynchronizeAccess(PVOID HwDeviceExtension,
                                                     PSTOR_SYNCHRONIZED_ACCESS SynchronizedAccessRoutine,
                                                     PVOID Context);
STORPORT_API PSTOR_SCATTER_GATHER_LIST NTAPI StorPortGetScatterGatherList(PVOID DeviceExtension,
                                                                          PSCSI_REQUEST_BLOCK Srb);
STORPORT_API PUCHAR NTAPI StorPortAllocateRegistryBuffer(PVOID HwDeviceExtension, PULONG Length);
STORPORT_API VOID NTAPI StorPortFreeRegistryBuffer(PVOID HwDeviceExtension, PUCHAR Buffer);
STORPORT_API BOOLEAN NTAPI StorPortRegistryRead(PVOID HwDeviceExtension, PUCHAR ValueName,
                                                ULONG Global, ULONG Type, PUCHAR Buffer,
                                                PULONG BufferLength);
STORPORT_API BOOLEAN NTAPI StorPortRegistryWrite(PVOID HwDeviceExtension, PUCHAR ValueName,
                                                 ULONG Global, ULONG Type, PUCHAR Buffer,
                                                 ULONG BufferLength);
STORPORT_API ULONG AV_CDECL StorPortExtendedFunction(STORPORT_FUNCTION_CODE FunctionCode,
                                                     PVOID HwDeviceExtension, ...);

/* Registry value types for StorPortRegistryRead/Write (winnt.h numbering). */
#define MINIPORT_REG_SZ       1
#define MINIPORT_REG_BINARY   3
#define MINIPORT_REG_DWORD    4

/* ------------------------------------------------------------------------------------
 * Inline wrappers: expand to StorPortNotification / StorPortExtendedFunction with the
 * documented codes, as the real header does, so the image imports only real exports.
 * Results written through pointers are a LONG preset to FALSE (facts §4, §10.8).
 * ---------------------------------------------------------------------------------- */
FORCEINLINE BOOLEAN StorPortEnablePassiveInitialization(PVOID DeviceExtension,
                                                        PHW_PASSIVE_INITIALIZE_ROUTINE HwPassiveInitializeRoutine)
{
    LONG Succ = FALSE;
    StorPortNotification(EnablePassiveInitialization, DeviceExtension,
                         HwPassiveInitializeRoutine, &Succ);
    return (BOOLEAN)Succ;
}

FORCEINLINE VOID StorPortInitializeDpc(PVOID DeviceExtension, PSTOR_DPC Dpc,
                                       PHW_DPC_ROUTINE HwDpcRoutine)
{
    StorPortNotification(InitializeDpc, DeviceExtension, Dpc, HwDpcRoutine);
}

FORCEINLINE BOOLEAN StorPortIssueDpc(PVOID DeviceExtension, PSTOR_DPC Dpc,
                                     PVOID SystemArgument1, PVOID SystemArgument2)
{
    LONG Succ = FALSE;
    StorPortNotification(IssueDpc, DeviceExtension, Dpc, SystemArgument1, SystemArgument2, &Succ);
    return (BOOLEAN)Succ;
}

FORCEINLINE VOID StorPortAcquireSpinLock(PVOID DeviceExtension, STOR_SPINLOCK SpinLock,
                                         PVOID LockContext, PSTOR_LOCK_HANDLE LockHandle)
{
    StorPortNotification(AcquireSpinLock, DeviceExtension, SpinLock, LockContext, LockHandle);
}

FORCEINLINE VOID StorPortReleaseSpinLock(PVOID DeviceExtension, PSTOR_LOCK_HANDLE LockHandle)
{
    StorPortNotification(ReleaseSpinLock, DeviceExtension, LockHandle);
}

/* Windows 7 contiguous memory (facts §11.12, [MS-ACMSCN], [MS-FCMSC]); IRQL <= DISPATCH. */
typedef enum _MEMORY_CACHING_TYPE { MmNonCached = 0, MmCached = 1, MmWriteCombined = 2 } MEMORY_CACHING_TYPE;
typedef ULONG NODE_REQUIREMENT;
#define MM_ANY_NODE_OK 0x80000000u

FORCEINLINE ULONG StorPortAllocateContiguousMemorySpecifyCacheNode(
    PVOID HwDeviceExtension, SIZE_T NumberOfBytes, PHYSICAL_ADDRESS LowestAcceptableAddress,
    PHYSICAL_ADDRESS HighestAcceptableAddress, PHYSICAL_ADDRESS BoundaryAddressMultiple,
    MEMORY_CACHING_TYPE CacheType, NODE_REQUIREMENT PreferredNode, PVOID *BufferPointer)
{
    return StorPortExtendedFunction(ExtFunctionAllocateContiguousMemorySpecifyCacheNode, HwDeviceExtension,
                                    NumberOfBytes, LowestAcceptableAddress, HighestAcceptableAddress,
                                    BoundaryAddressMultiple, CacheType, PreferredNode, BufferPointer);
}

FORCEINLINE ULONG StorPortFreeContiguousMemorySpecifyCache(PVOID HwDeviceExtension, PVOID BaseAddress,
                                                          SIZE_T NumberOfBytes, MEMORY_CACHING_TYPE CacheType)
{
    return StorPortExtendedFunction(ExtFunctionFreeContiguousMemorySpecifyCache, HwDeviceExtension,
                                    BaseAddress, NumberOfBytes, CacheType);
}

FORCEINLINE ULONG StorPortAllocatePool(PVOID HwDeviceExtension, ULONG NumberOfBytes, ULONG Tag,
                                       PVOID *BufferPointer)
{
    return StorPortExtendedFunction(ExtFunctionAllocatePool, HwDeviceExtension,
                                    NumberOfBytes, Tag, BufferPointer);
}

FORCEINLINE ULONG StorPortFreePool(PVOID HwDeviceExtension, PVOID BufferPointer)
{
    return StorPortExtendedFunction(ExtFunctionFreePool, HwDeviceExtension, BufferPointer);
}

FORCEINLINE ULONG StorPortGetSystemAddress(PVOID HwDeviceExtension, PSCSI_REQUEST_BLOCK Srb,
                                           PVOID *SystemAddress)
{
    return StorPortExtendedFunction(ExtFunctionGetSystemAddress, HwDeviceExtension,
                                    Srb, SystemAddress);
}

FORCEINLINE ULONG StorPortGetMSIInfo(PVOID HwDeviceExtension, ULONG MessageId,
                                     PMESSAGE_INTERRUPT_INFORMATION InterruptInfo)
{
    return StorPortExtendedFunction(ExtFunctionGetMessageInterruptInformation,
                                    HwDeviceExtension, MessageId, InterruptInfo);
}

FORCEINLINE ULONG StorPortAcquireMSISpinLock(PVOID HwDeviceExtension, ULONG MessageId,
                                             PULONG OldIrql)
{
    return StorPortExtendedFunction(ExtFunctionAcquireMSISpinLock, HwDeviceExtension,
                                    MessageId, OldIrql);
}

FORCEINLINE ULONG StorPortReleaseMSISpinLock(PVOID HwDeviceExtension, ULONG MessageId,
                                             ULONG OldIrql)
{
    return StorPortExtendedFunction(ExtFunctionReleaseMSISpinLock, HwDeviceExtension,
                                    MessageId, OldIrql);
}

/* Header-level conversions (not exports on Windows 7, facts §4). */
#define StorPortConvertPhysicalAddressToUlong64(Address) ((ULONG64)(Address).QuadPart)

/* ------------------------------------------------------------------------------------
 * Layout assertions, per architecture. Numbers: facts §1 (HW_INITIALIZATION_DATA),
 * §2 (PORT_CONFIGURATION_INFORMATION), §3 (SRB, scatter/gather), §4 (STOR_DPC,
 * STOR_LOCK_HANDLE, MESSAGE_INTERRUPT_INFORMATION), all [CALC] there and re-checked
 * against mingw-w64's own ddk/srb.h by tests/abi (where mingw agrees with Microsoft).
 * The x64 column also holds on x86_64 Linux (the simulator), the x86 one on i386 Linux.
 * ---------------------------------------------------------------------------------- */
#define AV_WDK_ASSERT_OFF(T, F, X86, X64) \
    _Static_assert(FIELD_OFFSET(T, F) == (AV_WDK_PTR64 ? (X64) : (X86)), #T "." #F " offset")
#define AV_WDK_ASSERT_SIZE(T, X86, X64) \
    _Static_assert(sizeof(T) == (AV_WDK_PTR64 ? (X64) : (X86)), "sizeof " #T)

/* facts §3 table: SCSI_REQUEST_BLOCK 0x40 / 0x58 */
AV_WDK_ASSERT_SIZE(SCSI_REQUEST_BLOCK, 0x40, 0x58);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, SrbFlags, 0x0C, 0x0C);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, DataTransferLength, 0x10, 0x10);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, TimeOutValue, 0x14, 0x14);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, DataBuffer, 0x18, 0x18);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, SenseInfoBuffer, 0x1C, 0x20);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, OriginalRequest, 0x24, 0x30);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, SrbExtension, 0x28, 0x38);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, InternalStatus, 0x2C, 0x40);
AV_WDK_ASSERT_OFF(SCSI_REQUEST_BLOCK, Cdb, 0x30, 0x48);
/* facts §3: the PnP and power blocks overlay the same size and slots */
AV_WDK_ASSERT_SIZE(SCSI_PNP_REQUEST_BLOCK, 0x40, 0x58);
AV_WDK_ASSERT_SIZE(SCSI_POWER_REQUEST_BLOCK, 0x40, 0x58);
AV_WDK_ASSERT_OFF(SCSI_PNP_REQUEST_BLOCK, PnPSubFunction, 0x04, 0x04);
AV_WDK_ASSERT_OFF(SCSI_PNP_REQUEST_BLOCK, PnPAction, 0x08, 0x08);
AV_WDK_ASSERT_OFF(SCSI_PNP_REQUEST_BLOCK, SrbPnPFlags, 0x2C, 0x40);
AV_WDK_ASSERT_OFF(SCSI_POWER_REQUEST_BLOCK, SrbPowerFlags, 0x04, 0x04);
AV_WDK_ASSERT_OFF(SCSI_POWER_REQUEST_BLOCK, DevicePowerState, 0x08, 0x08);
AV_WDK_ASSERT_OFF(SCSI_POWER_REQUEST_BLOCK, PowerAction, 0x2C, 0x40);

/* facts §2 table: PORT_CONFIGURATION_INFORMATION 0xC0 / 0xD0 (Windows 7) */
AV_WDK_ASSERT_SIZE(PORT_CONFIGURATION_INFORMATION, 0xC0, 0xD0);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, MaximumTransferLength, 0x18, 0x18);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, NumberOfPhysicalBreaks, 0x1C, 0x1C);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, AlignmentMask, 0x30, 0x30);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, AccessRanges, 0x38, 0x38);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, NumberOfBuses, 0x40, 0x48);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, ScatterGather, 0x49, 0x51);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, MapBuffers, 0x51, 0x59);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, MaximumNumberOfTargets, 0x59, 0x61);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, SlotNumber, 0x5C, 0x64);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, DeviceExtensionSize, 0x7C, 0x84);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, SrbExtensionSize, 0x84, 0x8C);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, Dma64BitAddresses, 0x88, 0x90);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, WmiDataProvider, 0x8B, 0x93);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, SynchronizationModel, 0x8C, 0x94);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, HwMSInterruptRoutine, 0x90, 0x98);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, InterruptSynchronizationMode, 0x94, 0xA0);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, DumpRegion, 0x98, 0xA8);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, RequestedDumpBufferSize, 0xB0, 0xC0);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, VirtualDevice, 0xB4, 0xC4);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, ExtendedFlags1, 0xB8, 0xC8);
AV_WDK_ASSERT_OFF(PORT_CONFIGURATION_INFORMATION, MaxNumberOfIO, 0xBC, 0xCC);
/* facts §2: MEMORY_REGION is 24 bytes on both */
AV_WDK_ASSERT_SIZE(MEMORY_REGION, 24, 24);

/* facts §1 table: HW_INITIALIZATION_DATA 0x54 / 0x88 (Windows 7) */
AV_WDK_ASSERT_SIZE(HW_INITIALIZATION_DATA, 0x54, 0x88);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, HwInitialize, 0x08, 0x08);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, HwAdapterState, 0x20, 0x38);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, DeviceExtensionSize, 0x24, 0x40);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, NumberOfAccessRanges, 0x30, 0x4C);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, MapBuffers, 0x38, 0x58);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, VendorIdLength, 0x3E, 0x5E);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, VendorId, 0x40, 0x60);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, ReservedUshort, 0x44, 0x68);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, DeviceIdLength, 0x46, 0x6A);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, DeviceId, 0x48, 0x70);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, HwAdapterControl, 0x4C, 0x78);
AV_WDK_ASSERT_OFF(HW_INITIALIZATION_DATA, HwBuildIo, 0x50, 0x80);

/* ACCESS_RANGE: PHYSICAL_ADDRESS + ULONG + BOOLEAN, 8-aligned: 16 on both ([CALC]) */
AV_WDK_ASSERT_SIZE(ACCESS_RANGE, 16, 16);
AV_WDK_ASSERT_OFF(ACCESS_RANGE, RangeLength, 8, 8);
AV_WDK_ASSERT_OFF(ACCESS_RANGE, RangeInMemory, 12, 12);
/* facts §3 "Scatter/gather": element 16 / 24, list header 8 / 16 */
AV_WDK_ASSERT_SIZE(STOR_SCATTER_GATHER_ELEMENT, 16, 24);
AV_WDK_ASSERT_OFF(STOR_SCATTER_GATHER_ELEMENT, Length, 8, 8);
AV_WDK_ASSERT_OFF(STOR_SCATTER_GATHER_ELEMENT, Reserved, 12, 16);
AV_WDK_ASSERT_OFF(STOR_SCATTER_GATHER_LIST, List, 8, 16);
AV_WDK_ASSERT_SIZE(STOR_SCATTER_GATHER_LIST, 8, 16);
/* facts §4: STOR_DPC 36 / 72, STOR_LOCK_HANDLE 16 / 32, MESSAGE_INTERRUPT_INFORMATION 32 */
AV_WDK_ASSERT_SIZE(STOR_DPC, 36, 72);
AV_WDK_ASSERT_SIZE(STOR_LOCK_HANDLE, 16, 32);
AV_WDK_ASSERT_SIZE(MESSAGE_INTERRUPT_INFORMATION, 32, 32);
/* PCI 3.0 configuration header: 64 bytes, 256 with the device-specific part */
_Static_assert(PCI_COMMON_HDR_LENGTH == 64 && sizeof(PCI_COMMON_CONFIG) == 256, "PCI_COMMON_CONFIG");
/* enums are 4 bytes in every ABI we target */
_Static_assert(sizeof(INTERFACE_TYPE) == 4 && sizeof(SCSI_ADAPTER_CONTROL_TYPE) == 4, "enum size");

#endif
