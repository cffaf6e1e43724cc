/*
 * Subset of the WDK's scsi.h for GCC builds: CDB opcodes and layouts, sense data,
 * inquiry / VPD / capacity / mode-sense data. Same names and values as the WDK header
 * (driver/ compiles unchanged with MSVC and the real WDK). Written from SPC-4/SBC-3
 * layouts as documented in shared/reference/wdk-ddi/scsi and the Windows 7 facts sheet
 * (§3 sense data, §8 what disk.sys sends). Multi-byte SCSI fields are big-endian byte
 * arrays; the few ULONG fields (READ_CAPACITY_DATA) hold big-endian values too.
 *
 * Structures marked "WDK 8+" are additive: the Windows 7 WDK lacks them (the WDK 10
 * used by aerovblk.vcxproj has them), so driver code that must also build with WDK 7.1
 * should fill those pages byte-wise.
 */
#ifndef AEROVBLK_WDK_SCSI_H
#define AEROVBLK_WDK_SCSI_H

#include "ntdef.h"

/* ---------------------------------------------------------------- CDB lengths/opcodes */
#define CDB6GENERIC_LENGTH   6
#define CDB10GENERIC_LENGTH  10
#define CDB12GENERIC_LENGTH  12
#define CDB16GENERIC_LENGTH  16

#define SCSIOP_TEST_UNIT_READY      0x00
#define SCSIOP_REZERO_UNIT          0x01
#define SCSIOP_REQUEST_SENSE        0x03
#define SCSIOP_FORMAT_UNIT          0x04
#define SCSIOP_REASSIGN_BLOCKS      0x07
#define SCSIOP_READ6                0x08
#define SCSIOP_WRITE6               0x0A
#define SCSIOP_SEEK6                0x0B
#define SCSIOP_INQUIRY              0x12
#define SCSIOP_VERIFY6              0x13
#define SCSIOP_MODE_SELECT          0x15
#define SCSIOP_RESERVE_UNIT         0x16
#define SCSIOP_RELEASE_UNIT         0x17
#define SCSIOP_MODE_SENSE           0x1A
#define SCSIOP_START_STOP_UNIT      0x1B
#define SCSIOP_RECEIVE_DIAGNOSTIC   0x1C
#define SCSIOP_SEND_DIAGNOSTIC      0x1D
#define SCSIOP_MEDIUM_REMOVAL       0x1E
#define SCSIOP_READ_FORMATTED_CAPACITY 0x23
#define SCSIOP_READ_CAPACITY        0x25
#define SCSIOP_READ                 0x28
#define SCSIOP_WRITE                0x2A
#define SCSIOP_SEEK                 0x2B
#define SCSIOP_WRITE_VERIFY         0x2E
#define SCSIOP_VERIFY               0x2F
#define SCSIOP_SYNCHRONIZE_CACHE    0x35
#define SCSIOP_WRITE_DATA_BUFF      0x3B
#define SCSIOP_READ_DATA_BUFF       0x3C
#define SCSIOP_WRITE_SAME           0x41
#define SCSIOP_UNMAP                0x42
#define SCSIOP_LOG_SELECT           0x4C
#define SCSIOP_LOG_SENSE            0x4D
#define SCSIOP_MODE_SELECT10        0x55
#define SCSIOP_RESERVE_UNIT10       0x56
#define SCSIOP_RELEASE_UNIT10       0x57
#define SCSIOP_MODE_SENSE10         0x5A
#define SCSIOP_PERSISTENT_RESERVE_IN  0x5E
#define SCSIOP_PERSISTENT_RESERVE_OUT 0x5F
#define SCSIOP_ATA_PASSTHROUGH16    0x85
#define SCSIOP_READ16               0x88
#define SCSIOP_COMPARE_AND_WRITE    0x89
#define SCSIOP_WRITE16              0x8A
#define SCSIOP_WRITE_VERIFY16       0x8E
#define SCSIOP_VERIFY16             0x8F
#define SCSIOP_SYNCHRONIZE_CACHE16  0x91
#define SCSIOP_WRITE_SAME16         0x93
#define SCSIOP_READ_CAPACITY16      0x9E
#define SCSIOP_SERVICE_ACTION_IN16  0x9E
#define SCSIOP_SERVICE_ACTION_OUT16 0x9F
#define SCSIOP_REPORT_LUNS          0xA0
#define SCSIOP_ATA_PASSTHROUGH12    0xA1
#define SCSIOP_SECURITY_PROTOCOL_IN 0xA2
#define SCSIOP_MAINTENANCE_IN       0xA3
#define SCSIOP_READ12               0xA8
#define SCSIOP_WRITE12              0xAA
#define SCSIOP_WRITE_VERIFY12       0xAE
#define SCSIOP_VERIFY12             0xAF
#define SCSIOP_SECURITY_PROTOCOL_OUT 0xB5

/* SERVICE ACTION IN(16) service actions */
#define SERVICE_ACTION_READ_CAPACITY16 0x10

/* CDB bits disk.sys uses */
#define CDB_FORCE_MEDIA_ACCESS 0x08     /* FUA bit in byte 1 of READ/WRITE(10/12/16) */

/* ---------------------------------------------------------------- CDB union */
#pragma pack(push, 1)
typedef union _CDB {
    struct _CDB6GENERIC {
        UCHAR OperationCode;
        UCHAR Immediate : 1;
        UCHAR CommandUniqueBits : 4;
        UCHAR LogicalUnitNumber : 3;
        UCHAR CommandUniqueBytes[3];
        UCHAR Link : 1;
        UCHAR Flag : 1;
        UCHAR Reserved : 4;
        UCHAR VendorUnique : 2;
    } CDB6GENERIC;
    struct _CDB6READWRITE {
        UCHAR OperationCode;
        UCHAR LogicalBlockMsb1 : 5;
        UCHAR LogicalUnitNumber : 3;
        UCHAR LogicalBlockMsb0;
        UCHAR LogicalBlockLsb;
        UCHAR TransferBlocks;
        UCHAR Control;
    } CDB6READWRITE;
    struct _CDB6INQUIRY3 {
        UCHAR OperationCode;
        UCHAR EnableVitalProductData : 1;
        UCHAR CommandSupportData : 1;
        UCHAR Reserved1 : 6;
        UCHAR PageCode;
        UCHAR Reserved2;
        UCHAR AllocationLength;
        UCHAR Control;
    } CDB6INQUIRY3;
    struct _CDB10 {
        UCHAR OperationCode;
        UCHAR RelativeAddress : 1;
        UCHAR Reserved1 : 2;
        UCHAR ForceUnitAccess : 1;
        UCHAR DisablePageOut : 1;
        UCHAR LogicalUnitNumber : 3;
        UCHAR LogicalBlockByte0;
        UCHAR LogicalBlockByte1;
        UCHAR LogicalBlockByte2;
        UCHAR LogicalBlockByte3;
        UCHAR Reserved2;
        UCHAR TransferBlocksMsb;
        UCHAR TransferBlocksLsb;
        UCHAR Control;
    } CDB10;
    struct _CDB12 {
        UCHAR OperationCode;
        UCHAR RelativeAddress : 1;
        UCHAR Reserved1 : 2;
        UCHAR ForceUnitAccess : 1;
        UCHAR DisablePageOut : 1;
        UCHAR LogicalUnitNumber : 3;
        UCHAR LogicalBlock[4];
        UCHAR TransferLength[4];
        UCHAR Reserved2;
        UCHAR Control;
    } CDB12;
    struct _CDB16 {
        UCHAR OperationCode;
        UCHAR Reserved1 : 3;
        UCHAR ForceUnitAccess : 1;
        UCHAR DisablePageOut : 1;
        UCHAR Protection : 3;
        UCHAR LogicalBlock[8];
        UCHAR TransferLength[4];
        UCHAR Reserved2;
        UCHAR Control;
    } CDB16;
    struct _MODE_SENSE {
        UCHAR OperationCode;
        UCHAR Reserved1 : 3;
        UCHAR Dbd : 1;
        UCHAR Reserved2 : 1;
        UCHAR LogicalUnitNumber : 3;
        UCHAR PageCode : 6;
        UCHAR Pc : 2;
        UCHAR Reserved3;
        UCHAR AllocationLength;
        UCHAR Control;
    } MODE_SENSE;
    struct _MODE_SENSE10 {
        UCHAR OperationCode;
        UCHAR Reserved1 : 3;
        UCHAR Dbd : 1;
        UCHAR Reserved2 : 1;
        UCHAR LogicalUnitNumber : 3;
        UCHAR PageCode : 6;
        UCHAR Pc : 2;
        UCHAR Reserved3[4];
        UCHAR AllocationLength[2];
        UCHAR Control;
    } MODE_SENSE10;
    struct _START_STOP {
        UCHAR OperationCode;
        UCHAR Immediate : 1;
        UCHAR Reserved1 : 4;
        UCHAR LogicalUnitNumber : 3;
        UCHAR Reserved2[2];
        UCHAR Start : 1;
        UCHAR LoadEject : 1;
        UCHAR Reserved3 : 6;
        UCHAR Control;
    } START_STOP;
    struct _SYNCHRONIZE_CACHE10 {
        UCHAR OperationCode;
        UCHAR RelAddr : 1;
        UCHAR Immediate : 1;
        UCHAR Reserved : 3;
        UCHAR Lun : 3;
        UCHAR LogicalBlockAddress[4];
        UCHAR Reserved2;
        UCHAR BlockCount[2];
        UCHAR Control;
    } SYNCHRONIZE_CACHE10;
    struct _SYNCHRONIZE_CACHE16 {
        UCHAR OperationCode;
        UCHAR Reserved1 : 1;
        UCHAR Immediate : 1;
        UCHAR Reserved2 : 6;
        UCHAR LogicalBlock[8];
        UCHAR BlockCount[4];
        UCHAR Reserved3;
        UCHAR Control;
    } SYNCHRONIZE_CACHE16;
    struct _READ_CAPACITY16 {
        UCHAR OperationCode;
        UCHAR ServiceAction : 5;
        UCHAR Reserved1 : 3;
        UCHAR LogicalBlock[8];
        UCHAR BlockCount[4];
        UCHAR PMI : 1;
        UCHAR Reserved2 : 7;
        UCHAR Control;
    } READ_CAPACITY16;
    struct _UNMAP {
        UCHAR OperationCode;
        UCHAR Anchor : 1;
        UCHAR Reserved1 : 7;
        UCHAR Reserved2[4];
        UCHAR GroupNumber : 5;
        UCHAR Reserved3 : 3;
        UCHAR AllocationLength[2];
        UCHAR Control;
    } UNMAP;
    struct _REPORT_LUNS {
        UCHAR OperationCode;
        UCHAR Reserved1[5];
        UCHAR AllocationLength[4];
        UCHAR Reserved2[1];
        UCHAR Control;
    } REPORT_LUNS;
    ULONG AsUlong[4];
    UCHAR AsByte[16];
} CDB, *PCDB;
#pragma pack(pop)

/* ---------------------------------------------------------------- status and sense */
#define SCSISTAT_GOOD                     0x00
#define SCSISTAT_CHECK_CONDITION          0x02
#define SCSISTAT_CONDITION_MET            0x04
#define SCSISTAT_BUSY                     0x08
#define SCSISTAT_INTERMEDIATE             0x10
#define SCSISTAT_INTERMEDIATE_COND_MET    0x14
#define SCSISTAT_RESERVATION_CONFLICT     0x18
#define SCSISTAT_COMMAND_TERMINATED       0x22
#define SCSISTAT_QUEUE_FULL               0x28

/* Fixed-format sense data (facts §3: 18 bytes, SENSE_BUFFER_SIZE). */
typedef struct _SENSE_DATA {
    UCHAR ErrorCode : 7;
    UCHAR Valid : 1;
    UCHAR SegmentNumber;
    UCHAR SenseKey : 4;
    UCHAR Reserved : 1;
    UCHAR IncorrectLength : 1;
    UCHAR EndOfMedia : 1;
    UCHAR FileMark : 1;
    UCHAR Information[4];
    UCHAR AdditionalSenseLength;
    UCHAR CommandSpecificInformation[4];
    UCHAR AdditionalSenseCode;
    UCHAR AdditionalSenseCodeQualifier;
    UCHAR FieldReplaceableUnitCode;
    UCHAR SenseKeySpecific[3];
} SENSE_DATA, *PSENSE_DATA;

#define SENSE_BUFFER_SIZE            18
#define MAX_SENSE_BUFFER_SIZE        255
#define SCSI_SENSE_ERRORCODE_FIXED_CURRENT       0x70
#define SCSI_SENSE_ERRORCODE_FIXED_DEFERRED      0x71
#define SCSI_SENSE_ERRORCODE_DESCRIPTOR_CURRENT  0x72
#define SCSI_SENSE_ERRORCODE_DESCRIPTOR_DEFERRED 0x73

#define SCSI_SENSE_NO_SENSE               0x00
#define SCSI_SENSE_RECOVERED_ERROR        0x01
#define SCSI_SENSE_NOT_READY              0x02
#define SCSI_SENSE_MEDIUM_ERROR           0x03
#define SCSI_SENSE_HARDWARE_ERROR         0x04
#define SCSI_SENSE_ILLEGAL_REQUEST        0x05
#define SCSI_SENSE_UNIT_ATTENTION         0x06
#define SCSI_SENSE_DATA_PROTECT           0x07
#define SCSI_SENSE_BLANK_CHECK            0x08
#define SCSI_SENSE_UNIQUE                 0x09
#define SCSI_SENSE_COPY_ABORTED           0x0A
#define SCSI_SENSE_ABORTED_COMMAND        0x0B
#define SCSI_SENSE_EQUAL                  0x0C
#define SCSI_SENSE_VOL_OVERFLOW           0x0D
#define SCSI_SENSE_MISCOMPARE             0x0E
#define SCSI_SENSE_RESERVED               0x0F

#define SCSI_ADSENSE_NO_SENSE                      0x00
#define SCSI_ADSENSE_NO_SEEK_COMPLETE              0x02
#define SCSI_ADSENSE_LUN_NOT_READY                 0x04
#define SCSI_ADSENSE_LUN_COMMUNICATION             0x08
#define SCSI_ADSENSE_WRITE_ERROR                   0x0C
#define SCSI_ADSENSE_TRACK_ERROR                   0x14
#define SCSI_ADSENSE_SEEK_ERROR                    0x15
#define SCSI_ADSENSE_REC_DATA_NOECC                0x17
#define SCSI_ADSENSE_REC_DATA_ECC                  0x18
#define SCSI_ADSENSE_PARAMETER_LIST_LENGTH         0x1A
#define SCSI_ADSENSE_ILLEGAL_COMMAND               0x20
#define SCSI_ADSENSE_ILLEGAL_BLOCK                 0x21
#define SCSI_ADSENSE_INVALID_CDB                   0x24
#define SCSI_ADSENSE_INVALID_LUN                   0x25
#define SCSI_ADSENSE_INVALID_FIELD_PARAMETER_LIST  0x26
#define SCSI_ADSENSE_WRITE_PROTECT                 0x27
#define SCSI_ADSENSE_MEDIUM_CHANGED                0x28
#define SCSI_ADSENSE_BUS_RESET                     0x29
#define SCSI_ADSENSE_PARAMETERS_CHANGED            0x2A
#define SCSI_ADSENSE_INSUFFICIENT_TIME_FOR_OPERATION 0x2E
#define SCSI_ADSENSE_INVALID_MEDIA                 0x30
#define SCSI_ADSENSE_NO_MEDIA_IN_DEVICE            0x3a
#define SCSI_ADSENSE_POSITION_ERROR                0x3b
#define SCSI_ADSENSE_OPERATING_CONDITIONS_CHANGED  0x3f
#define SCSI_ADSENSE_INTERNAL_TARGET_FAILURE       0x44
#define SCSI_ADSENSE_OPERATOR_REQUEST              0x5a
#define SCSI_ADSENSE_FAILURE_PREDICTION_THRESHOLD_EXCEEDED 0x5d
#define SCSI_ADSENSE_UNRECOVERED_ERROR             0x11
#define SCSI_ADSENSE_LOGICAL_UNIT_COMMAND_FAILED   0x67
#define SCSI_ADSENSE_VENDOR_UNIQUE                 0x80
#define SCSI_ADWRITE_PROTECT                       SCSI_ADSENSE_WRITE_PROTECT

#define SCSI_SENSEQ_CAUSE_NOT_REPORTABLE           0x00
#define SCSI_SENSEQ_BECOMING_READY                 0x01
#define SCSI_SENSEQ_INIT_COMMAND_REQUIRED          0x02
#define SCSI_SENSEQ_MANUAL_INTERVENTION_REQUIRED   0x03
#define SCSI_SENSEQ_FORMAT_IN_PROGRESS             0x04
#define SCSI_SENSEQ_OPERATION_IN_PROGRESS          0x07
#define SCSI_SENSEQ_COMM_FAILURE                   0x00
#define SCSI_SENSEQ_COMM_TIMEOUT                   0x01
#define SCSI_SENSEQ_MICROCODE_CHANGED              0x01
#define SCSI_SENSEQ_CAPACITY_DATA_CHANGED          0x09
#define SCSI_SENSEQ_INQUIRY_DATA_CHANGED           0x03

/* ---------------------------------------------------------------- INQUIRY */
/* Standard INQUIRY data. The WDK structure is 96 bytes (it carries vendor-specific and
 * reserved bytes up to 96); the first 36 bytes (INQUIRYDATABUFFERSIZE) are the
 * SPC standard part every target returns. */
typedef struct _INQUIRYDATA {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR DeviceTypeModifier : 7;
    UCHAR RemovableMedia : 1;
    union {
        UCHAR Versions;
        struct {
            UCHAR ANSIVersion : 3;
            UCHAR ECMAVersion : 3;
            UCHAR ISOVersion : 2;
        };
    };
    UCHAR ResponseDataFormat : 4;
    UCHAR HiSupport : 1;
    UCHAR NormACA : 1;
    UCHAR TerminateTask : 1;
    UCHAR AERC : 1;
    UCHAR AdditionalLength;
    UCHAR Reserved;
    UCHAR Addr16 : 1;
    UCHAR Addr32 : 1;
    UCHAR AckReqQ : 1;
    UCHAR MediumChanger : 1;
    UCHAR MultiPort : 1;
    UCHAR ReservedBit2 : 1;
    UCHAR EnclosureServices : 1;
    UCHAR ReservedBit3 : 1;
    UCHAR SoftReset : 1;
    UCHAR CommandQueue : 1;
    UCHAR TransferDisable : 1;
    UCHAR LinkedCommands : 1;
    UCHAR Synchronous : 1;
    UCHAR Wide16Bit : 1;
    UCHAR Wide32Bit : 1;
    UCHAR RelativeAddressing : 1;
    UCHAR VendorId[8];
    UCHAR ProductId[16];
    UCHAR ProductRevisionLevel[4];
    UCHAR VendorSpecific[20];
    UCHAR Reserved3[40];
} INQUIRYDATA, *PINQUIRYDATA;

#define INQUIRYDATABUFFERSIZE 36

/* INQUIRYDATA.DeviceType / DeviceTypeQualifier */
#define DIRECT_ACCESS_DEVICE            0x00
#define SEQUENTIAL_ACCESS_DEVICE        0x01
#define READ_ONLY_DIRECT_ACCESS_DEVICE  0x05
#define OPTICAL_DEVICE                  0x07
#define ARRAY_CONTROLLER_DEVICE         0x0C
#define LOGICAL_UNIT_NOT_PRESENT_DEVICE 0x7F
#define UNKNOWN_OR_NO_DEVICE            0x1F
#define DEVICE_QUALIFIER_ACTIVE         0x00
#define DEVICE_QUALIFIER_NOT_ACTIVE     0x01
#define DEVICE_QUALIFIER_NOT_SUPPORTED  0x03
#define DEVICE_CONNECTED                0x00

/* ---------------------------------------------------------------- VPD pages */
#define VPD_MAX_BUFFER_SIZE                0xff
#define VPD_SUPPORTED_PAGES                0x00
#define VPD_SERIAL_NUMBER                  0x80
#define VPD_DEVICE_IDENTIFIERS             0x83
#define VPD_MEDIA_SERIAL_NUMBER            0x84
#define VPD_EXTENDED_INQUIRY_DATA          0x86
#define VPD_ATA_INFORMATION                0x89
#define VPD_BLOCK_LIMITS                   0xB0
#define VPD_BLOCK_DEVICE_CHARACTERISTICS   0xB1
#define VPD_LOGICAL_BLOCK_PROVISIONING     0xB2

typedef struct _VPD_SUPPORTED_PAGES_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR Reserved;
    UCHAR PageLength;
    UCHAR SupportedPageList[];
} VPD_SUPPORTED_PAGES_PAGE, *PVPD_SUPPORTED_PAGES_PAGE;

typedef struct _VPD_SERIAL_NUMBER_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR Reserved;
    UCHAR PageLength;
    UCHAR SerialNumber[];
} VPD_SERIAL_NUMBER_PAGE, *PVPD_SERIAL_NUMBER_PAGE;

typedef enum _VPD_CODE_SET {
    VpdCodeSetReserved = 0,
    VpdCodeSetBinary = 1,
    VpdCodeSetAscii = 2,
    VpdCodeSetUTF8 = 3
} VPD_CODE_SET, *PVPD_CODE_SET;

typedef enum _VPD_ASSOCIATION {
    VpdAssocDevice = 0,
    VpdAssocPort = 1,
    VpdAssocTarget = 2,
    VpdAssocReserved1 = 3,
    VpdAssocReserved2 = 4
} VPD_ASSOCIATION, *PVPD_ASSOCIATION;

typedef enum _VPD_IDENTIFIER_TYPE {
    VpdIdentifierTypeVendorSpecific = 0,
    VpdIdentifierTypeVendorId = 1,
    VpdIdentifierTypeEUI64 = 2,
    VpdIdentifierTypeFCPHName = 3,
    VpdIdentifierTypePortRelative = 4,
    VpdIdentifierTypeTargetPortGroup = 5,
    VpdIdentifierTypeLogicalUnitGroup = 6,
    VpdIdentifierTypeMD5LogicalUnitId = 7,
    VpdIdentifierTypeSCSINameString = 8
} VPD_IDENTIFIER_TYPE, *PVPD_IDENTIFIER_TYPE;

typedef struct _VPD_IDENTIFICATION_DESCRIPTOR {
    UCHAR CodeSet : 4;
    UCHAR Reserved : 4;
    UCHAR IdentifierType : 4;
    UCHAR Association : 2;
    UCHAR Reserved2 : 2;
    UCHAR Reserved3;
    UCHAR IdentifierLength;
    UCHAR Identifier[];
} VPD_IDENTIFICATION_DESCRIPTOR, *PVPD_IDENTIFICATION_DESCRIPTOR;

typedef struct _VPD_IDENTIFICATION_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR Reserved;
    UCHAR PageLength;
    UCHAR Descriptors[];
} VPD_IDENTIFICATION_PAGE, *PVPD_IDENTIFICATION_PAGE;

/* Block Limits (0xB0), SBC-3 6.5.3; page length 0x3C. WDK 8+ name, flat layout. */
typedef struct _VPD_BLOCK_LIMITS_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR PageLength[2];
    UCHAR Reserved0;
    UCHAR MaximumCompareAndWriteLength;
    UCHAR OptimalTransferLengthGranularity[2];
    UCHAR MaximumTransferLength[4];
    UCHAR OptimalTransferLength[4];
    UCHAR MaxPrefetchXDReadXDWriteTransferLength[4];
    UCHAR MaximumUnmapLBACount[4];
    UCHAR MaximumUnmapBlockDescriptorCount[4];
    UCHAR OptimalUnmapGranularity[4];
    UCHAR UnmapGranularityAlignment[4];   /* bit 7 of byte 0 is UGAVALID */
    UCHAR MaximumWriteSameLength[8];
    UCHAR Reserved4[20];
} VPD_BLOCK_LIMITS_PAGE, *PVPD_BLOCK_LIMITS_PAGE;

/* Block Device Characteristics (0xB1), SBC-3 6.5.2; rotation rate 1 = non-rotating. */
typedef struct _VPD_BLOCK_DEVICE_CHARACTERISTICS_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR Reserved0;
    UCHAR PageLength;
    UCHAR MediumRotationRateMsb;
    UCHAR MediumRotationRateLsb;
    UCHAR MediumProductType;
    UCHAR NominalFormFactor : 4;
    UCHAR Reserved1 : 4;
    UCHAR Reserved2[56];
} VPD_BLOCK_DEVICE_CHARACTERISTICS_PAGE, *PVPD_BLOCK_DEVICE_CHARACTERISTICS_PAGE;

/* Logical Block Provisioning (0xB2), SBC-3 6.5.4. WDK 8+. */
typedef struct _VPD_LOGICAL_BLOCK_PROVISIONING_PAGE {
    UCHAR DeviceType : 5;
    UCHAR DeviceTypeQualifier : 3;
    UCHAR PageCode;
    UCHAR PageLength[2];
    UCHAR ThresholdExponent;
    UCHAR DP : 1;
    UCHAR ANC_SUP : 1;
    UCHAR LBPRZ : 1;
    UCHAR Reserved0 : 2;
    UCHAR LBPWS10 : 1;
    UCHAR LBPWS : 1;
    UCHAR LBPU : 1;
    UCHAR ProvisioningType : 3;
    UCHAR Reserved1 : 5;
    UCHAR Reserved2;
    UCHAR ProvisioningGroupDescr[];
} VPD_LOGICAL_BLOCK_PROVISIONING_PAGE, *PVPD_LOGICAL_BLOCK_PROVISIONING_PAGE;

#define PROVISIONING_TYPE_UNKNOWN     0x0
#define PROVISIONING_TYPE_RESOURCED   0x1
#define PROVISIONING_TYPE_THIN        0x2

/* UNMAP parameter list (SBC-3 5.28). WDK 8+. */
typedef struct _UNMAP_BLOCK_DESCRIPTOR {
    UCHAR StartingLba[8];
    UCHAR LbaCount[4];
    UCHAR Reserved[4];
} UNMAP_BLOCK_DESCRIPTOR, *PUNMAP_BLOCK_DESCRIPTOR;

typedef struct _UNMAP_LIST_HEADER {
    UCHAR DataLength[2];
    UCHAR BlockDescrDataLength[2];
    UCHAR Reserved[4];
    UNMAP_BLOCK_DESCRIPTOR Descriptors[];
} UNMAP_LIST_HEADER, *PUNMAP_LIST_HEADER;

/* ---------------------------------------------------------------- capacity */
/* READ CAPACITY(10): two big-endian ULONGs. */
typedef struct _READ_CAPACITY_DATA {
    ULONG LogicalBlockAddress;
    ULONG BytesPerBlock;
} READ_CAPACITY_DATA, *PREAD_CAPACITY_DATA;

/* READ CAPACITY(16) first 12 bytes. sizeof is 16 (LARGE_INTEGER alignment) as in the
 * WDK; the wire format is 12 bytes (facts §8: return the full 8 or 12 bytes). */
typedef struct _READ_CAPACITY_DATA_EX {
    LARGE_INTEGER LogicalBlockAddress;
    ULONG BytesPerBlock;
} READ_CAPACITY_DATA_EX, *PREAD_CAPACITY_DATA_EX;

/* ---------------------------------------------------------------- MODE SENSE */
#define MODE_PAGE_ERROR_RECOVERY        0x01
#define MODE_PAGE_DISCONNECT            0x02
#define MODE_PAGE_FORMAT_DEVICE         0x03
#define MODE_PAGE_RIGID_GEOMETRY        0x04
#define MODE_PAGE_CACHING               0x08
#define MODE_PAGE_CONTROL               0x0A
#define MODE_PAGE_POWER_CONDITION       0x1A
#define MODE_PAGE_FAULT_REPORTING       0x1C
#define MODE_SENSE_RETURN_ALL           0x3f
#define MODE_SENSE_CURRENT_VALUES       0x00
#define MODE_SENSE_CHANGEABLE_VALUES    0x40
#define MODE_SENSE_DEFAULT_VAULES       0x80
#define MODE_SENSE_SAVED_VALUES         0xc0

/* DeviceSpecificParameter bits (facts §8) */
#define MODE_DSP_FUA_SUPPORTED  0x10
#define MODE_DSP_WRITE_PROTECT  0x80

typedef struct _MODE_PARAMETER_HEADER {
    UCHAR ModeDataLength;
    UCHAR MediumType;
    UCHAR DeviceSpecificParameter;
    UCHAR BlockDescriptorLength;
} MODE_PARAMETER_HEADER, *PMODE_PARAMETER_HEADER;

typedef struct _MODE_PARAMETER_HEADER10 {
    UCHAR ModeDataLength[2];
    UCHAR MediumType;
    UCHAR DeviceSpecificParameter;
    UCHAR Reserved[2];
    UCHAR BlockDescriptorLength[2];
} MODE_PARAMETER_HEADER10, *PMODE_PARAMETER_HEADER10;

typedef struct _MODE_PARAMETER_BLOCK {
    UCHAR DensityCode;
    UCHAR NumberOfBlocks[3];
    UCHAR Reserved;
    UCHAR BlockLength[3];
} MODE_PARAMETER_BLOCK, *PMODE_PARAMETER_BLOCK;

typedef struct _MODE_CACHING_PAGE {
    UCHAR PageCode : 6;
    UCHAR Reserved : 1;
    UCHAR PageSavable : 1;
    UCHAR PageLength;
    UCHAR ReadDisableCache : 1;
    UCHAR MultiplicationFactor : 1;
    UCHAR WriteCacheEnable : 1;
    UCHAR Reserved2 : 5;
    UCHAR WriteRetensionPriority : 4;
    UCHAR ReadRetensionPriority : 4;
    UCHAR DisablePrefetchTransfer[2];
    UCHAR MinimumPrefetch[2];
    UCHAR MaximumPrefetch[2];
    UCHAR MaximumPrefetchCeiling[2];
} MODE_CACHING_PAGE, *PMODE_CACHING_PAGE;

typedef struct _MODE_INFO_EXCEPTIONS {
    UCHAR PageCode : 6;
    UCHAR Reserved1 : 1;
    UCHAR PSBit : 1;
    UCHAR PageLength;
    union {
        UCHAR Flags;
        struct {
            UCHAR LogErr : 1;
            UCHAR Reserved2 : 1;
            UCHAR Test : 1;
            UCHAR Dexcpt : 1;
            UCHAR Reserved3 : 3;
            UCHAR Perf : 1;
        };
    };
    UCHAR ReportMethod : 4;
    UCHAR Reserved4 : 4;
    UCHAR IntervalTimer[4];
    UCHAR ReportCount[4];
} MODE_INFO_EXCEPTIONS, *PMODE_INFO_EXCEPTIONS;

/* ---------------------------------------------------------------- layout assertions */
/* Sizes follow from the SCSI wire formats (SPC-4 / SBC-3) and match the WDK's sizeof. */
_Static_assert(sizeof(CDB) == 16, "CDB is 16 bytes");
_Static_assert(sizeof(SENSE_DATA) == 18 && SENSE_BUFFER_SIZE == 18,
               "fixed sense data is 18 bytes (facts 3)");
_Static_assert(FIELD_OFFSET(SENSE_DATA, AdditionalSenseLength) == 7 &&
               FIELD_OFFSET(SENSE_DATA, AdditionalSenseCode) == 12 &&
               FIELD_OFFSET(SENSE_DATA, SenseKeySpecific) == 15, "SENSE_DATA offsets (facts 3)");
_Static_assert(FIELD_OFFSET(INQUIRYDATA, VendorId) == 8 &&
               FIELD_OFFSET(INQUIRYDATA, ProductId) == 16 &&
               FIELD_OFFSET(INQUIRYDATA, ProductRevisionLevel) == 32 &&
               FIELD_OFFSET(INQUIRYDATA, VendorSpecific) == INQUIRYDATABUFFERSIZE,
               "INQUIRYDATA standard part is 36 bytes (SPC-4 6.4.2)");
_Static_assert(sizeof(INQUIRYDATA) == 96, "WDK INQUIRYDATA is 96 bytes");
_Static_assert(sizeof(READ_CAPACITY_DATA) == 8, "READ CAPACITY(10) data");
_Static_assert(FIELD_OFFSET(READ_CAPACITY_DATA_EX, BytesPerBlock) == 8, "READ CAPACITY(16) data");
_Static_assert(sizeof(MODE_PARAMETER_HEADER) == 4 && sizeof(MODE_PARAMETER_HEADER10) == 8,
               "mode parameter headers");
_Static_assert(sizeof(MODE_PARAMETER_BLOCK) == 8, "mode block descriptor");
_Static_assert(sizeof(MODE_CACHING_PAGE) == 12 && sizeof(MODE_INFO_EXCEPTIONS) == 12,
               "caching page (SBC-3 6.4.5) and IE page (SPC-4 7.5.8)");
_Static_assert(sizeof(VPD_BLOCK_LIMITS_PAGE) == 64, "block limits page: 4 + 0x3C");
_Static_assert(sizeof(VPD_BLOCK_DEVICE_CHARACTERISTICS_PAGE) == 64, "B1 page: 4 + 0x3C");
_Static_assert(sizeof(VPD_LOGICAL_BLOCK_PROVISIONING_PAGE) == 8, "B2 page header");
_Static_assert(sizeof(UNMAP_BLOCK_DESCRIPTOR) == 16 && sizeof(UNMAP_LIST_HEADER) == 8,
               "UNMAP parameter list");

#endif
