/*
 * Unit tests of driver/scsi.c (issue 5 sections 1-4): every command and every error
 * path, with exact data / SRB status / sense checks. SRBs and scatter/gather lists
 * are built by hand; buffers are heap blocks of exactly the advertised size, so ASan
 * catches any over-run of DataBuffer or SenseInfoBuffer. SUBMIT cases check the
 * produced virtio-blk request (type, 512-byte sector, data buffers, payload), then a
 * device status is fed back through ScsiCompleteRequest.
 * Links the real blk.c / virtio_pci.c / virtqueue.c; the MMIO hooks below model the
 * device config space (MODE SELECT -> CONFIG_WCE writeback).
 * Built with ASan + UBSan (mk/unit-scsi.mk); run by tests/checks/40-unit-scsi.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <stdbool.h>
#include "../../driver/scsixlat.h"

/* ---------------------------------------------------------------- device config MMIO */
static uint8_t devcfg[0x100];
static uint8_t common[0x40];
static bool writeback_sticks = true;

unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    unsigned int v = 0;
    assert_true(((uint8_t *)Register >= devcfg && (uint8_t *)Register < devcfg + sizeof(devcfg)) ||
                ((uint8_t *)Register >= common && (uint8_t *)Register < common + sizeof(common)));
    memcpy(&v, (void *)Register, Width);
    return v;
}

void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    assert_true((uint8_t *)Register >= devcfg && (uint8_t *)Register < devcfg + sizeof(devcfg));
    if (writeback_sticks) memcpy((void *)Register, &Value, Width);
}

static VPCI_DEVICE pci;

/* ---------------------------------------------------------------- disk */
#define F(b) VBLK_FEATURE(b)
#define F_BASIC  (F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE))
#define F_CACHE  (F(VIRTIO_BLK_F_FLUSH))
#define F_WCE    (F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_CONFIG_WCE))
#define F_THIN   (F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES))

static SCSI_DISK disk;

static void disk_setup(ULONGLONG features, ULONGLONG sectors, ULONG block_size)
{
    memset(&disk, 0, sizeof(disk));
    memset(devcfg, 0, sizeof(devcfg));
    memset(&pci, 0, sizeof(pci));
    writeback_sticks = true;
    pci.Common = common;
    pci.DeviceCfg = devcfg;
    pci.DeviceRegion.Present = TRUE;
    pci.DeviceRegion.Length = sizeof(devcfg);
    disk.Device = &pci;
    disk.Features = features;
    disk.Config.CapacitySectors = sectors;
    disk.Config.BlockSize = block_size;
    disk.Config.SegMax = 126;
    if (features & F(VIRTIO_BLK_F_DISCARD)) {
        disk.Config.MaxDiscardSectors = 65536;
        disk.Config.MaxDiscardSeg = 4;
        disk.Config.DiscardSectorAlignment = 8;
    }
    if (features & F(VIRTIO_BLK_F_WRITE_ZEROES)) {
        disk.Config.MaxWriteZeroesSectors = 32768;
        disk.Config.MaxWriteZeroesSeg = 2;
    }
    if (features & F(VIRTIO_BLK_F_CONFIG_WCE)) {
        disk.Config.Writeback = 1;
        devcfg[VBLK_CFG_WRITEBACK] = 1;
    }
    ScsiUpdateGeometry(&disk);
    disk.MaxDataBuffers = 126;
    disk.MaxTransferBytes = 125 * 4096;
    disk.FallbackSerial = 0x0000ABCD;
}

/* ---------------------------------------------------------------- SRB builder */
typedef struct t_srb {
    SCSI_REQUEST_BLOCK srb;
    SCSI_REQUEST_STATE st;
    PSTOR_SCATTER_GATHER_LIST sg;
    uint8_t *data;
    uint8_t *sense;
    ULONG dtl0;
} t_srb;

static t_srb T;

static void t_free(void)
{
    free(T.data); free(T.sense); free(T.sg);
    memset(&T, 0, sizeof(T));
}

/* A fresh SRB: CDB bytes, DataTransferLength (data buffer of exactly that size),
 * direction flags, 18-byte sense buffer. */
static PSCSI_REQUEST_BLOCK srb_cdb(const uint8_t *cdb, size_t cdblen, ULONG dtl, ULONG flags)
{
    t_free();
    T.srb.Length = sizeof(SCSI_REQUEST_BLOCK);
    T.srb.Function = SRB_FUNCTION_EXECUTE_SCSI;
    T.srb.CdbLength = (UCHAR)cdblen;
    memcpy(T.srb.Cdb, cdb, cdblen);
    T.srb.DataTransferLength = dtl;
    T.dtl0 = dtl;
    T.srb.SrbFlags = flags;
    if (dtl) {
        T.data = malloc(dtl);
        memset(T.data, 0xCC, dtl);
        T.srb.DataBuffer = T.data;
    }
    T.sense = malloc(18);
    memset(T.sense, 0xEE, 18);
    T.srb.SenseInfoBuffer = T.sense;
    T.srb.SenseInfoBufferLength = 18;
    T.srb.SrbStatus = SRB_STATUS_PENDING;
    return &T.srb;
}
#define CDB(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

/* SG list of n elements of len bytes each, at distinct fake physical addresses. */
static void sg_make(unsigned n, ULONG len)
{
    free(T.sg);
    T.sg = calloc(1, sizeof(STOR_SCATTER_GATHER_LIST) + n * sizeof(STOR_SCATTER_GATHER_ELEMENT));
    T.sg->NumberOfElements = n;
    for (unsigned i = 0; i < n; i++) {
        T.sg->List[i].PhysicalAddress.QuadPart = 0x100000000LL + (LONGLONG)i * 0x100000;
        T.sg->List[i].Length = len;
    }
}

static SCSI_ACTION start(void) { return ScsiStartSrb(&disk, &T.srb, T.sg, &T.st); }
static SCSI_ACTION complete_with(UCHAR status)
{
    T.st.Blk.Status = status;
    return ScsiCompleteRequest(&disk, &T.srb, &T.st);
}

static void expect_good(void)
{
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_SUCCESS);
    assert_int_equal(T.srb.ScsiStatus, SCSISTAT_GOOD);
}

static void expect_sense(UCHAR key, UCHAR asc, UCHAR ascq)
{
    assert_int_equal(T.srb.ScsiStatus, SCSISTAT_CHECK_CONDITION);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID);
    assert_int_equal(T.srb.SenseInfoBufferLength, 18);
    assert_int_equal(T.sense[0], 0x70);
    assert_int_equal(T.sense[2], key);
    assert_int_equal(T.sense[7], 10);
    assert_int_equal(T.sense[12], asc);
    assert_int_equal(T.sense[13], ascq);
    assert_int_equal(T.srb.DataTransferLength, 0);
}

static void check_fail(UCHAR key, UCHAR asc, UCHAR ascq)
{
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_sense(key, asc, ascq);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

#define SK_ILLEGAL   SCSI_SENSE_ILLEGAL_REQUEST
#define ASC_INVALID_CDB   0x24
#define ASC_OPCODE        0x20
#define ASC_LBA_RANGE     0x21
#define ASC_PARAM_FIELD   0x26
#define ASC_PARAM_LENGTH  0x1A

/* ---------------------------------------------------------------- simple commands */

static void test_test_unit_ready(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0x00, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 0);
    /* PREVENT ALLOW MEDIUM REMOVAL: fixed disk, nothing to do */
    srb_cdb(CDB(0x1E, 0, 0, 0, 1, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    t_free();
}

static void test_unit_attention(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    disk.UnitAttentionPending = TRUE;
    /* INQUIRY and REPORT LUNS are not blocked and do not clear it (SPC-3 5.9.7) */
    srb_cdb(CDB(0x12, 0, 0, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0), 16, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_true(disk.UnitAttentionPending);
    /* A READ gets 06/2A/09, without I/O, once */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    check_fail(SCSI_SENSE_UNIT_ATTENTION, 0x2A, 0x09);
    assert_false(disk.UnitAttentionPending);
    assert_int_equal(disk.ErrorsInvalidRequest, 0);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    /* Unknown opcodes report it too */
    disk.UnitAttentionPending = TRUE;
    srb_cdb(CDB(0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    check_fail(SCSI_SENSE_UNIT_ATTENTION, 0x2A, 0x09);
    /* REQUEST SENSE returns it as data and clears it */
    disk.UnitAttentionPending = TRUE;
    srb_cdb(CDB(0x03, 0, 0, 0, 18, 0), 18, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 18);
    assert_int_equal(T.data[0], 0x70);
    assert_int_equal(T.data[2], SCSI_SENSE_UNIT_ATTENTION);
    assert_int_equal(T.data[12], 0x2A);
    assert_int_equal(T.data[13], 0x09);
    assert_false(disk.UnitAttentionPending);
    t_free();
}

static void test_request_sense(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0x03, 0, 0, 0, 252, 0), 252, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 18);
    assert_int_equal(T.data[0], 0x70);
    assert_int_equal(T.data[2], 0);
    assert_int_equal(T.data[7], 10);
    assert_int_equal(T.data[12], 0);
    assert_int_equal(T.data[18], 0xCC);                    /* nothing beyond */
    /* allocation length truncates */
    srb_cdb(CDB(0x03, 0, 0, 0, 8, 0), 8, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 8);
    /* descriptor format is not supported */
    srb_cdb(CDB(0x03, 1, 0, 0, 18, 0), 18, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    t_free();
}

static void test_start_stop_unit(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_CACHE, 2048, 512);
    srb_cdb(CDB(0x1B, 0, 0, 0, 1, 0), 0, 0);              /* START */
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x1B, 0, 0, 0, 0, 0), 0, 0);              /* STOP: flush the volatile cache */
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(T.st.Blk.DataBytes, 0);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    disk_setup(F_BASIC, 2048, 512);                       /* write-through: nothing to flush */
    srb_cdb(CDB(0x1B, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    t_free();
}

static void test_report_luns(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0), 256, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 16);
    assert_int_equal(be32(T.data), 8);                     /* one LUN */
    for (int i = 8; i < 16; i++) assert_int_equal(T.data[i], 0);   /* LUN 0 */
    srb_cdb(CDB(0xA0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 0), 16, SRB_FLAGS_DATA_IN);  /* well-known only */
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 8);
    assert_int_equal(be32(T.data), 0);
    srb_cdb(CDB(0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0), 15, SRB_FLAGS_DATA_IN);  /* SPC: >= 16 */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0xA0, 0, 5, 0, 0, 0, 0, 0, 0, 16, 0, 0), 16, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    t_free();
}

/* ---------------------------------------------------------------- INQUIRY */

static void test_inquiry_standard(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0x12, 0, 0, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 36);
    assert_int_equal(T.data[0], 0x00);                     /* direct access, connected */
    assert_int_equal(T.data[1], 0x00);                     /* not removable */
    assert_int_equal(T.data[2], 0x05);                     /* SPC-3 */
    assert_int_equal(T.data[3] & 0x0F, 2);
    assert_int_equal(T.data[4], 91);                       /* 96 - 5 */
    assert_int_equal(T.data[7] & 0x02, 0x02);              /* CmdQue */
    assert_memory_equal(T.data + 8, "AERO    VIRTIO BLOCK    0001", 28);
    /* bigger buffer: the whole 96 bytes, DataTransferLength = 96 (underrun) */
    srb_cdb(CDB(0x12, 0, 0, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, SCSI_INQUIRY_STD_BYTES);
    assert_int_equal(be16(T.data + 58), 0x0060);
    assert_int_equal(T.data[96], 0xCC);
    /* allocation length smaller than the buffer: only that much */
    srb_cdb(CDB(0x12, 0, 0, 0, 5, 0), 64, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 5);
    assert_int_equal(T.data[5], 0xCC);
    /* buffer smaller than the allocation length: never over-run (ASan checks) */
    srb_cdb(CDB(0x12, 0, 0, 0, 96, 0), 10, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 10);
    /* page code without EVPD, CMDDT */
    srb_cdb(CDB(0x12, 0, 0x80, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x12, 2, 0, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* no data buffer behind a non-zero length */
    srb_cdb(CDB(0x12, 0, 0, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    T.srb.DataBuffer = NULL;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_REQUEST);
    assert_int_equal(T.srb.DataTransferLength, 0);
    t_free();
}

static void test_vpd_supported_pages(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0x12, 1, 0x00, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.data[1], 0x00);
    assert_int_equal(be16(T.data + 2), 5);
    assert_memory_equal(T.data + 4, ((uint8_t[]){ 0x00, 0x80, 0x83, 0xB0, 0xB1 }), 5);
    assert_int_equal(T.srb.DataTransferLength, 9);
    /* B2 is not supported without DISCARD / WRITE_ZEROES */
    srb_cdb(CDB(0x12, 1, 0xB2, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x12, 1, 0x89, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);   /* ATA info: no */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    disk_setup(F_BASIC | F_THIN, 2048, 512);
    srb_cdb(CDB(0x12, 1, 0x00, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be16(T.data + 2), 6);
    assert_int_equal(T.data[9], 0xB2);
    t_free();
}

/* Starts INQUIRY VPD page; checks the GET_ID request; completes it. */
static void vpd_get_id(UCHAR page, UCHAR status, const char id[20])
{
    srb_cdb(CDB(0x12, 1, page, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_GET_ID);
    assert_int_equal(T.st.Blk.PayloadLength, 20);
    assert_int_equal(T.st.Blk.DataBytes, 0);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_PENDING);
    if (id) memcpy(T.st.Blk.Payload, id, 20);
    assert_int_equal(complete_with(status), SCSI_ACTION_COMPLETE);
}

static void test_vpd_serial(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    vpd_get_id(0x80, VIRTIO_BLK_S_OK, "  QEMU-DISK-7\0\0\0\0\0\0\0");
    expect_good();
    assert_int_equal(T.data[1], 0x80);
    assert_int_equal(be16(T.data + 2), 11);
    assert_memory_equal(T.data + 4, "QEMU-DISK-7", 11);
    assert_int_equal(T.srb.DataTransferLength, 15);
    /* 20 bytes, no terminator; a control byte becomes '_' */
    vpd_get_id(0x80, VIRTIO_BLK_S_OK, "ABCDEFGHIJ\x01LMNOPQRST");
    assert_int_equal(be16(T.data + 2), 20);
    assert_memory_equal(T.data + 4, "ABCDEFGHIJ_LMNOPQRST", 20);
    /* the device has none (Aero: UNSUPP; or IOERR; or all blanks): stable fallback */
    vpd_get_id(0x80, VIRTIO_BLK_S_UNSUPP, NULL);
    expect_good();
    assert_int_equal(be16(T.data + 2), 17);
    assert_memory_equal(T.data + 4, "AEROVBLK-0000ABCD", 17);
    vpd_get_id(0x80, VIRTIO_BLK_S_IOERR, NULL);
    expect_good();
    assert_memory_equal(T.data + 4, "AEROVBLK-0000ABCD", 17);
    vpd_get_id(0x80, VIRTIO_BLK_S_OK, "                    ");
    assert_memory_equal(T.data + 4, "AEROVBLK-0000ABCD", 17);
    /* reset while GET_ID was in flight: the SRB is not answered with a made-up page */
    vpd_get_id(0x80, VBLK_STATUS_RESET, NULL);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_BUS_RESET);
    assert_int_equal(T.srb.DataTransferLength, 0);
    /* allocation length 6: header + 2 serial bytes */
    srb_cdb(CDB(0x12, 1, 0x80, 0, 6, 0), 6, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    memcpy(T.st.Blk.Payload, "SERIAL", 7);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 6);
    assert_memory_equal(T.data + 4, "SE", 2);
    t_free();
}

static uint64_t vpd83_naa(const char *id)
{
    vpd_get_id(0x83, VIRTIO_BLK_S_OK, id);
    expect_good();
    uint8_t *d = T.data + 4;
    size_t len = strnlen(id, 20);
    assert_int_equal(T.data[1], 0x83);
    assert_int_equal(d[0], 0x02);                         /* ASCII */
    assert_int_equal(d[1], 0x01);                         /* LU, T10 vendor id */
    assert_int_equal(d[3], 8 + len);
    assert_memory_equal(d + 4, "AERO    ", 8);
    assert_memory_equal(d + 12, id, len);
    d += 4 + d[3];
    assert_int_equal(d[0], 0x01);                         /* binary */
    assert_int_equal(d[1], 0x03);                         /* LU, NAA */
    assert_int_equal(d[3], 8);
    assert_int_equal(d[4] >> 4, 3);                       /* NAA locally assigned */
    assert_int_equal(be16(T.data + 2), (d + 12) - (T.data + 4));
    assert_int_equal(T.srb.DataTransferLength, (ULONG)((d + 12) - T.data));
    return be64(d + 4);
}

static void test_vpd_device_identification(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    char a[20] = "disk-a", b[20] = "disk-b";
    uint64_t na = vpd83_naa(a), na2 = vpd83_naa(a), nb = vpd83_naa(b);
    assert_true(na == na2);                               /* stable */
    assert_true(na != nb);                                /* distinct disks differ */
    t_free();
}

static void test_vpd_limits_pages(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_THIN | F(VIRTIO_BLK_F_TOPOLOGY), 1 << 20, 4096);
    disk.Config.PhysicalBlockExp = 0;
    disk.Config.MinIoSize = 1;
    disk.Config.OptIoSize = 64;
    srb_cdb(CDB(0x12, 1, 0xB0, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 64);
    assert_int_equal(be16(T.data + 2), 0x3C);
    assert_int_equal(T.data[4] & 1, 1);                   /* WSNZ */
    assert_int_equal(be16(T.data + 6), 1);                /* granularity (min_io_size) */
    assert_int_equal(be32(T.data + 8), 125);              /* 125 * 4 KiB / 4 KiB blocks */
    assert_int_equal(be32(T.data + 12), 64);              /* opt_io_size */
    assert_int_equal(be32(T.data + 20), 65536 / 8);       /* max unmap LBA count (blocks) */
    assert_int_equal(be32(T.data + 24), 4);               /* descriptors */
    assert_int_equal(be32(T.data + 28), 1);               /* alignment 8 sectors = 1 block */
    assert_true(be64(T.data + 36) == (uint64_t)(32768 / 8) * 2);   /* write zeroes x segs */
    srb_cdb(CDB(0x12, 1, 0xB1, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 64);
    assert_int_equal(be16(T.data + 4), 1);                /* non-rotating */
    srb_cdb(CDB(0x12, 1, 0xB2, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 8);
    assert_int_equal(T.data[5] & 0xE0, 0xE0);             /* LBPU, LBPWS, LBPWS10 */
    assert_int_equal(T.data[6] & 7, 2);                   /* thin */
    /* without DISCARD: no unmap limits, no LBPU, write same still via WRITE_ZEROES */
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_WRITE_ZEROES), 1 << 20, 512);
    srb_cdb(CDB(0x12, 1, 0xB0, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be32(T.data + 20), 0);
    assert_int_equal(be32(T.data + 24), 0);
    assert_true(be64(T.data + 36) == 32768 * 2);
    srb_cdb(CDB(0x12, 1, 0xB2, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[5] & 0x80, 0);
    t_free();
}

/* ---------------------------------------------------------------- capacity */

static void test_read_capacity(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 2048, 512);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 8);
    assert_int_equal(be32(T.data), 2047);
    assert_int_equal(be32(T.data + 4), 512);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);   /* LBA without PMI */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* 4096-byte blocks: capacity is in 512-byte sectors */
    disk_setup(F_BASIC, 8 * 1000 + 7, 4096);
    assert_int_equal(disk.BlockSize, 4096);
    assert_true(disk.BlockCount == 1000);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be32(T.data), 999);
    assert_int_equal(be32(T.data + 4), 4096);
    /* > 2 TiB with 512-byte blocks: 0xFFFFFFFF, then READ CAPACITY (16) */
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_TOPOLOGY) | F(VIRTIO_BLK_F_DISCARD), (3ULL << 32) + 100, 512);
    disk.Config.PhysicalBlockExp = 3;
    disk.Config.AlignmentOffset = 7;
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be32(T.data), 0xFFFFFFFFu);
    srb_cdb(CDB(0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), 32, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 32);
    assert_true(be64(T.data) == (3ULL << 32) + 99);
    assert_int_equal(be32(T.data + 8), 512);
    assert_int_equal(T.data[13] & 0x0F, 3);               /* logical per physical exponent */
    assert_int_equal(T.data[14] & 0x80, 0x80);            /* LBPME */
    assert_int_equal(((T.data[14] & 0x3F) << 8) | T.data[15], 7);
    /* classpnp asks for 12 bytes */
    srb_cdb(CDB(0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0), 12, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 12);
    /* other service actions of 0x9E */
    srb_cdb(CDB(0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), 32, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* exactly 2^32 blocks: last LBA 0xFFFFFFFF must also go to (16) */
    disk_setup(F_BASIC, 1ULL << 32, 512);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be32(T.data), 0xFFFFFFFFu);
    t_free();
}

/* ---------------------------------------------------------------- READ / WRITE */

/* A read/write goes down with StorPort's own SG list (no copy): the first nbuf * buflen
 * bytes of it (blk.c cuts and checks it, test_blk). */
static void expect_rw(ULONG type, ULONGLONG sector, unsigned nbuf, ULONG buflen)
{
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, type);
    assert_true(T.st.Blk.Sector == sector);
    assert_int_equal(T.st.Blk.PayloadLength, 0);
    assert_non_null(T.sg);
    assert_ptr_equal(T.st.Blk.Data, (const VBLK_SG_ELEMENT *)T.sg->List);
    assert_int_equal(T.st.Blk.DataElements, T.sg->NumberOfElements);
    assert_int_equal(T.st.Blk.DataBytes, nbuf * buflen);
}

static void test_read_write_all_sizes(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1 << 20, 512);
    /* READ(6): 21-bit LBA, 0 = 256 blocks */
    srb_cdb(CDB(0x08, 0x01, 0x02, 0x03, 0, 0), 256 * 512, SRB_FLAGS_DATA_IN);
    sg_make(32, 4096);
    expect_rw(VIRTIO_BLK_T_IN, 0x010203, 32, 4096);
    srb_cdb(CDB(0x0A, 0, 0, 9, 2, 0), 1024, SRB_FLAGS_DATA_OUT);
    sg_make(1, 1024);
    expect_rw(VIRTIO_BLK_T_OUT, 9, 1, 1024);
    /* READ(10) / WRITE(10) */
    srb_cdb(CDB(0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0), 4096, SRB_FLAGS_DATA_IN);
    sg_make(2, 2048);
    expect_rw(VIRTIO_BLK_T_IN, 0x1000, 2, 2048);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 4096);     /* unchanged on success */
    srb_cdb(CDB(0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_OUT, 1, 1, 512);
    /* READ(12) / WRITE(12) */
    srb_cdb(CDB(0xA8, 0, 0, 0, 1, 0, 0, 0, 0, 4, 0, 0), 2048, SRB_FLAGS_DATA_IN);
    sg_make(1, 2048);
    expect_rw(VIRTIO_BLK_T_IN, 256, 1, 2048);
    srb_cdb(CDB(0xAA, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_OUT, 2, 1, 512);
    /* READ(16) / WRITE(16) */
    srb_cdb(CDB(0x88, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_IN, 5, 1, 512);
    srb_cdb(CDB(0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0), 512, 0);  /* no direction flags: ok */
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_OUT, 6, 1, 512);
    t_free();
}

static void test_read_write_4k_and_huge(void **s)
{
    (void)s;
    /* 4096-byte logical blocks: sectors are still 512-byte units */
    disk_setup(F_BASIC, 8ULL * 1000, 4096);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 100, 0, 0, 2, 0), 8192, SRB_FLAGS_DATA_IN);
    sg_make(2, 4096);
    expect_rw(VIRTIO_BLK_T_IN, 800, 2, 4096);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 100, 0, 0, 2, 0), 1024, SRB_FLAGS_DATA_IN);  /* 512-byte sized buffer */
    sg_make(1, 1024);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x28, 0, 0, 0, 0x03, 0xE7, 0, 0, 2, 0), 8192, SRB_FLAGS_DATA_IN);  /* 999 + 2 > 1000 */
    sg_make(2, 4096);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    /* > 2 TiB sparse disk with 16-byte CDBs */
    disk_setup(F_BASIC, 5ULL << 32, 512);               /* 10 TiB */
    srb_cdb(CDB(0x88, 0, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_IN, 0x4FFFFFFFFULL, 1, 512);
    srb_cdb(CDB(0x88, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0), 512, SRB_FLAGS_DATA_IN);  /* == capacity */
    sg_make(1, 512);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    t_free();
}

static void test_range_and_length_errors(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1000, 512);
    srb_cdb(CDB(0x28, 0, 0, 0, 0x03, 0xE7, 0, 0, 2, 0), 1024, SRB_FLAGS_DATA_IN);   /* 999+2 */
    sg_make(1, 1024);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    assert_int_equal(disk.ErrorsOutOfRange, 1);
    /* LBA + length overflowing 64 bits */
    srb_cdb(CDB(0x88, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2, 0, 0), 1024, SRB_FLAGS_DATA_IN);
    sg_make(1, 1024);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    /* zero blocks: fine inside, out of range at the end */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 5, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x28, 0, 0, 0, 0x03, 0xE8, 0, 0, 0, 0), 0, 0);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    assert_int_equal(disk.ErrorsOutOfRange, 3);
    /* DataTransferLength smaller / larger than the CDB: refused, never over/under-run */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 1024, SRB_FLAGS_DATA_IN);
    sg_make(1, 1024);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* wrong direction */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* beyond MaximumTransferLength */
    disk.MaxTransferBytes = 64 * 1024;
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 129, 0), 129 * 512, SRB_FLAGS_DATA_IN);
    sg_make(17, 4096);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* RD/WRPROTECT */
    srb_cdb(CDB(0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    assert_true(disk.ErrorsInvalidRequest >= 5);
    t_free();
}

static void test_sg_limits(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1 << 20, 512);
    /* StorPort's SG list is handed down as it is, whatever its shape: blk.c cuts it at
     * size_max and refuses one that is short or needs more than seg_max buffers (the
     * glue completes those SRB_STATUS_INVALID_REQUEST; test_blk, check 39a). */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 4, 0), 2048, SRB_FLAGS_DATA_IN);
    sg_make(3, 512);                                     /* shorter than the transfer */
    expect_rw(VIRTIO_BLK_T_IN, 0, 4, 512);
    /* no SG list at all: refused here */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    free(T.sg); T.sg = NULL;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_REQUEST);
    assert_int_equal(T.srb.DataTransferLength, 0);
    /* SG list longer than needed: only DataTransferLength bytes */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 3, 0), 1536, SRB_FLAGS_DATA_IN);
    sg_make(2, 1024);
    expect_rw(VIRTIO_BLK_T_IN, 0, 3, 512);
    t_free();
}

static void test_device_errors(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1 << 20, 512);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_IOERR), SCSI_ACTION_COMPLETE);
    expect_sense(SCSI_SENSE_MEDIUM_ERROR, 0x11, 0);
    srb_cdb(CDB(0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_IOERR), SCSI_ACTION_COMPLETE);
    expect_sense(SCSI_SENSE_MEDIUM_ERROR, 0x0C, 0);
    srb_cdb(CDB(0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_UNSUPP), SCSI_ACTION_COMPLETE);
    expect_sense(SK_ILLEGAL, ASC_OPCODE, 0);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VBLK_STATUS_RESET), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_BUS_RESET);
    assert_int_equal(T.srb.DataTransferLength, 0);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VBLK_STATUS_DEVICE_GONE), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_NO_DEVICE);
    t_free();
}

static void test_read_only(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_RO) | F_THIN, 1 << 20, 512);
    static const uint8_t writes[][16] = {
        { 0x0A, 0, 0, 0, 1, 0 }, { 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, { 0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
        { 0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, { 0x2E, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
        { 0x41, 0x08, 0, 0, 0, 0, 0, 0, 1, 0 }, { 0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
        { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 },
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        srb_cdb(writes[i], 16, 512, SRB_FLAGS_DATA_OUT);
        sg_make(1, 512);
        check_fail(SCSI_SENSE_DATA_PROTECT, 0x27, 0);
    }
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    /* MODE SENSE shows write protection */
    srb_cdb(CDB(0x1A, 0, 0x08, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[2] & 0x80, 0x80);
    t_free();
}

/* ---------------------------------------------------------------- cache: FUA, flush */

static void fua_write(ULONG dtl)
{
    srb_cdb(CDB(0x2A, 0x08, 0, 0, 0, 7, 0, 0, 1, 0), dtl, SRB_FLAGS_DATA_OUT);
    sg_make(1, dtl);
}

static void test_fua(void **s)
{
    (void)s;
    /* volatile cache (FLUSH without CONFIG_WCE): write, then FLUSH, then complete */
    disk_setup(F_BASIC | F_CACHE, 1 << 20, 512);
    fua_write(512);
    expect_rw(VIRTIO_BLK_T_OUT, 7, 1, 512);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(T.st.Blk.DataBytes, 0);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_PENDING);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 512);
    /* the FLUSH fails: the write is not durable -> write error */
    fua_write(512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_IOERR), SCSI_ACTION_COMPLETE);
    expect_sense(SCSI_SENSE_MEDIUM_ERROR, 0x0C, 0);
    /* the write fails: no FLUSH */
    fua_write(512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_IOERR), SCSI_ACTION_COMPLETE);
    expect_sense(SCSI_SENSE_MEDIUM_ERROR, 0x0C, 0);
    /* WRITE AND VERIFY behaves as FUA */
    srb_cdb(CDB(0x2E, 0x02, 0, 0, 0, 7, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);
    sg_make(1, 512);
    expect_rw(VIRTIO_BLK_T_OUT, 7, 1, 512);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    /* write-through devices: one stage */
    disk_setup(F_BASIC, 1 << 20, 512);                   /* no FLUSH: writethrough */
    fua_write(512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    disk_setup(F_BASIC | F_WCE, 1 << 20, 512);
    disk.Config.Writeback = 0;                           /* CONFIG_WCE, writethrough now */
    fua_write(512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    disk.Config.Writeback = 1;
    fua_write(512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_SUBMIT);
    t_free();
}

static void test_synchronize_cache_and_flush_srbs(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_CACHE, 1000, 512);
    srb_cdb(CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_IOERR), SCSI_ACTION_COMPLETE);
    expect_sense(SCSI_SENSE_MEDIUM_ERROR, 0x0C, 0);
    srb_cdb(CDB(0x35, 0, 0, 0, 0x03, 0xE8, 0, 0, 1, 0), 0, 0);   /* LBA 1000 */
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    /* SRB_FUNCTION_FLUSH / SHUTDOWN */
    srb_cdb(CDB(0), 0, 0);
    T.srb.Function = SRB_FUNCTION_FLUSH;
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0), 0, 0);
    T.srb.Function = SRB_FUNCTION_SHUTDOWN;
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    /* no volatile cache: immediate success, no I/O */
    disk_setup(F_BASIC, 1000, 512);
    srb_cdb(CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0), 0, 0);
    T.srb.Function = SRB_FUNCTION_SHUTDOWN;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    /* other functions belong to the glue */
    srb_cdb(CDB(0), 0, 0);
    T.srb.Function = SRB_FUNCTION_IO_CONTROL;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_REQUEST);
    t_free();
}

static void test_verify(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1000, 512);
    srb_cdb(CDB(0x2F, 0, 0, 0, 0, 10, 0, 0, 100, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0x03, 0xE0, 0, 0), 0, 0);  /* 10 + 992 > 1000 */
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    srb_cdb(CDB(0x2F, 0x02, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_OUT);      /* BYTCHK */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0xAF, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    t_free();
}

/* ---------------------------------------------------------------- MODE SENSE / SELECT */

static void test_mode_sense(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_WCE, 1 << 20, 512);
    /* what disk.sys sends: MODE SENSE(6), page 08, 192 bytes */
    srb_cdb(CDB(0x1A, 0, 0x08, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 4 + 8 + 20);
    assert_int_equal(T.data[0], 31);                      /* mode data length */
    assert_int_equal(T.data[2], 0x10);                    /* DPOFUA, not WP */
    assert_int_equal(T.data[3], 8);
    assert_int_equal(be32(T.data + 4), 1 << 20);          /* blocks */
    assert_int_equal(be32(T.data + 8) & 0xFFFFFF, 512);
    assert_int_equal(T.data[12], 0x08);
    assert_int_equal(T.data[13], 0x12);
    assert_int_equal(T.data[14] & 0x04, 0x04);            /* WCE */
    /* DBD, page 3F */
    srb_cdb(CDB(0x1A, 0x08, 0x3F, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 24);
    assert_int_equal(T.data[3], 0);
    assert_int_equal(T.data[4], 0x08);
    /* changeable values: WCE changeable with CONFIG_WCE */
    srb_cdb(CDB(0x1A, 0x08, 0x48, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[6], 0x04);
    /* default values */
    srb_cdb(CDB(0x1A, 0x08, 0x88, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    /* saved values: not supported */
    srb_cdb(CDB(0x1A, 0, 0xC8, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, 0x39, 0);
    /* unsupported page / subpage */
    srb_cdb(CDB(0x1A, 0, 0x1C, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x1A, 0, 0x08, 1, 192, 0), 192, SRB_FLAGS_DATA_IN);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* allocation length truncation */
    srb_cdb(CDB(0x1A, 0, 0x08, 0, 4, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(T.srb.DataTransferLength, 4);
    assert_int_equal(T.data[0], 31);
    /* MODE SENSE(10) with LLBAA: 16-byte block descriptor */
    disk_setup(F_BASIC | F_CACHE, 5ULL << 32, 512);
    srb_cdb(CDB(0x5A, 0x10, 0x08, 0, 0, 0, 0, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.DataTransferLength, 8 + 16 + 20);
    assert_int_equal(be16(T.data), 42);
    assert_int_equal(T.data[4] & 1, 1);                   /* LONGLBA */
    assert_int_equal(be16(T.data + 6), 16);
    assert_true(be64(T.data + 8) == 5ULL << 32);
    assert_int_equal(be32(T.data + 20), 512);
    assert_int_equal(T.data[26] & 0x04, 0x04);            /* FLUSH without WCE: writeback */
    /* short descriptor on a > 2 TiB disk: 0xFFFFFFFF */
    srb_cdb(CDB(0x5A, 0, 0x08, 0, 0, 0, 0, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(be32(T.data + 8), 0xFFFFFFFFu);
    /* changeable without CONFIG_WCE: nothing */
    srb_cdb(CDB(0x1A, 0x08, 0x48, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[6], 0x00);
    /* no cache at all: WCE 0 */
    disk_setup(F_BASIC, 1000, 512);
    srb_cdb(CDB(0x1A, 0x08, 0x08, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[6], 0x00);
    t_free();
}

static PSCSI_REQUEST_BLOCK mode_select6(UCHAR cdb1, uint8_t wce_byte, bool bd, ULONG bd_block_len)
{
    uint8_t p[32];
    ULONG len = 0;
    memset(p, 0, sizeof(p));
    p[3] = bd ? 8 : 0;
    len = 4;
    if (bd) { p[len + 5] = (uint8_t)(bd_block_len >> 16); p[len + 6] = (uint8_t)(bd_block_len >> 8); p[len + 7] = (uint8_t)bd_block_len; len += 8; }
    p[len] = 0x08; p[len + 1] = 0x12; p[len + 2] = wce_byte;
    len += 20;
    srb_cdb(CDB(0x15, cdb1, 0, 0, (UCHAR)len, 0), len, SRB_FLAGS_DATA_OUT);
    T.srb.Cdb[4] = (UCHAR)len;
    memcpy(T.data, p, len);
    return &T.srb;
}

static void test_mode_select(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_WCE, 1 << 20, 512);
    /* WCE 1 -> 0: writeback written through CONFIG_WCE, then cached writes flushed */
    mode_select6(0x10, 0x00, true, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(devcfg[VBLK_CFG_WRITEBACK], 0);
    assert_int_equal(disk.Config.Writeback, 0);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    /* MODE SENSE now shows WCE 0 */
    srb_cdb(CDB(0x1A, 0x08, 0x08, 0, 192, 0), 192, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[6] & 0x04, 0);
    /* WCE 0 -> 1 (SP set: accepted), no flush needed */
    mode_select6(0x11, 0x04, false, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    assert_int_equal(devcfg[VBLK_CFG_WRITEBACK], 1);
    /* same value: nothing to do */
    mode_select6(0x10, 0x04, false, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    /* the device does not take the write */
    writeback_sticks = false;
    mode_select6(0x10, 0x00, false, 0);
    check_fail(SCSI_SENSE_HARDWARE_ERROR, 0x44, 0);
    assert_int_equal(disk.Config.Writeback, 1);
    writeback_sticks = true;
    /* errors */
    mode_select6(0x00, 0x00, false, 0);                   /* PF = 0 */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    mode_select6(0x10, 0x05, false, 0);                   /* RCD: not changeable */
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    mode_select6(0x10, 0x00, true, 4096);                 /* other block length */
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    mode_select6(0x10, 0x00, false, 0);
    T.data[4] = 0x0A;                                     /* control page: not supported */
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    mode_select6(0x10, 0x00, false, 0);
    T.srb.DataTransferLength = 10;                        /* buffer shorter than the list */
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    mode_select6(0x10, 0x00, false, 0);
    T.data[3] = 40;                                       /* block descriptors beyond the list */
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    srb_cdb(CDB(0x15, 0x10, 0, 0, 0, 0), 0, 0);          /* empty list: fine */
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x15, 0x10, 0, 0, 2, 0), 2, SRB_FLAGS_DATA_OUT);
    check_fail(SK_ILLEGAL, ASC_PARAM_LENGTH, 0);
    /* without CONFIG_WCE a change is refused, restating it is fine */
    disk_setup(F_BASIC | F_CACHE, 1 << 20, 512);
    mode_select6(0x10, 0x00, false, 0);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    mode_select6(0x10, 0x04, false, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    /* MODE SELECT(10) */
    disk_setup(F_BASIC | F_WCE, 1 << 20, 512);
    {
        uint8_t p[28] = { 0 };
        p[8] = 0x08; p[9] = 0x12; p[10] = 0x04;
        srb_cdb(CDB(0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0), 28, SRB_FLAGS_DATA_OUT);
        memcpy(T.data, p, 28);
        assert_int_equal(start(), SCSI_ACTION_COMPLETE);
        expect_good();
        T.data[10] = 0;
        srb_cdb(CDB(0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0), 28, SRB_FLAGS_DATA_OUT);
        memcpy(T.data, p, 28);
        T.data[10] = 0;
        assert_int_equal(start(), SCSI_ACTION_SUBMIT);
        assert_int_equal(devcfg[VBLK_CFG_WRITEBACK], 0);
    }
    t_free();
}

/* ---------------------------------------------------------------- UNMAP / WRITE SAME */

static void unmap_srb(const uint64_t *lba, const uint32_t *n, unsigned count)
{
    ULONG len = 8 + 16 * count;
    srb_cdb(CDB(0x42, 0, 0, 0, 0, 0, 0, (UCHAR)(len >> 8), (UCHAR)len, 0), len, SRB_FLAGS_DATA_OUT);
    memset(T.data, 0, len);
    T.data[1] = (uint8_t)(len - 2);
    T.data[3] = (uint8_t)(16 * count);
    for (unsigned i = 0; i < count; i++) {
        uint8_t *d = T.data + 8 + 16 * i;
        for (int b = 0; b < 8; b++) d[b] = (uint8_t)(lba[i] >> (56 - 8 * b));
        for (int b = 0; b < 4; b++) d[8 + b] = (uint8_t)(n[i] >> (24 - 8 * b));
    }
}

static void expect_segment(unsigned i, uint64_t sector, uint32_t n, uint32_t flags)
{
    const uint8_t *seg = T.st.Blk.Payload + 16 * i;
    assert_true(le64(seg) == sector);
    assert_int_equal(le32(seg + 8), n);
    assert_int_equal(le32(seg + 12), flags);
}

static void test_unmap(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_DISCARD), 8ULL * 100000, 4096);
    uint64_t lba[5] = { 10, 5000, 0, 99999, 1 };
    uint32_t n[5] = { 3, 1000, 0, 1, 1 };
    unmap_srb(lba, n, 3);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_DISCARD);
    assert_true(T.st.Blk.Sector == 0);
    assert_int_equal(T.st.Blk.DataBytes, 0);
    assert_int_equal(T.st.Blk.PayloadLength, 32);          /* zero-length descriptor skipped */
    expect_segment(0, 80, 24, 0);
    expect_segment(1, 40000, 8000, 0);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    /* last block */
    unmap_srb(lba + 3, n + 3, 1);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    expect_segment(0, 799992, 8, 0);
    /* more descriptors than max_discard_seg (4) */
    uint64_t l5[5] = { 1, 2, 3, 4, 5 }; uint32_t n5[5] = { 1, 1, 1, 1, 1 };
    unmap_srb(l5, n5, 5);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    /* out of range */
    uint64_t lo = 99999; uint32_t no = 2;
    unmap_srb(&lo, &no, 1);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    uint64_t lx = ~0ULL; uint32_t nx = 2;
    unmap_srb(&lx, &nx, 1);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    /* beyond MAXIMUM UNMAP LBA COUNT (65536 sectors = 8192 blocks) */
    uint64_t lb = 0; uint32_t nb = 8193;
    unmap_srb(&lb, &nb, 1);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    /* descriptor length beyond the parameter list */
    unmap_srb(lba, n, 1);
    T.data[3] = 32;
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    /* only zero-length descriptors: nothing to do */
    unmap_srb(lba + 2, n + 2, 1);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    /* parameter list length 0: no-op; 1..7: length error; DataTransferLength mismatch */
    srb_cdb(CDB(0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();
    srb_cdb(CDB(0x42, 0, 0, 0, 0, 0, 0, 0, 6, 0), 6, SRB_FLAGS_DATA_OUT);
    check_fail(SK_ILLEGAL, ASC_PARAM_LENGTH, 0);
    unmap_srb(lba, n, 1);
    T.srb.DataTransferLength = 16;
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* ANCHOR */
    unmap_srb(lba, n, 1);
    T.srb.Cdb[1] = 1;
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* no DISCARD: opcode not supported */
    disk_setup(F_BASIC, 8ULL * 100000, 4096);
    unmap_srb(lba, n, 1);
    check_fail(SK_ILLEGAL, ASC_OPCODE, 0);
    t_free();
}

static void write_same(bool is16, UCHAR flags, uint64_t lba, uint32_t blocks, ULONG block_size, uint8_t fill)
{
    if (is16)
        srb_cdb(CDB(0x93, flags, (UCHAR)(lba >> 56), (UCHAR)(lba >> 48), (UCHAR)(lba >> 40), (UCHAR)(lba >> 32),
                    (UCHAR)(lba >> 24), (UCHAR)(lba >> 16), (UCHAR)(lba >> 8), (UCHAR)lba,
                    (UCHAR)(blocks >> 24), (UCHAR)(blocks >> 16), (UCHAR)(blocks >> 8), (UCHAR)blocks, 0, 0),
                (flags & 1) ? 0 : block_size, SRB_FLAGS_DATA_OUT);
    else
        srb_cdb(CDB(0x41, flags, (UCHAR)(lba >> 24), (UCHAR)(lba >> 16), (UCHAR)(lba >> 8), (UCHAR)lba, 0,
                    (UCHAR)(blocks >> 8), (UCHAR)blocks, 0), block_size, SRB_FLAGS_DATA_OUT);
    if (T.data) memset(T.data, fill, block_size);
}

static void test_write_same(void **s)
{
    (void)s;
    disk_setup(F_BASIC | F_THIN, 1 << 20, 512);
    /* UNMAP + WRITE_ZEROES: write-zeroes with the unmap flag */
    write_same(true, 0x08, 100, 64, 512, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_WRITE_ZEROES);
    assert_int_equal(T.st.Blk.PayloadLength, 16);
    expect_segment(0, 100, 64, 1);
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    expect_good();
    /* no UNMAP, zero pattern: plain write-zeroes; split at max_write_zeroes_sectors */
    write_same(false, 0x00, 0, 40000, 512, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.PayloadLength, 32);
    expect_segment(0, 0, 32768, 0);
    expect_segment(1, 32768, 40000 - 32768, 0);
    /* more than max_write_zeroes_seg (2) segments */
    write_same(true, 0x00, 0, 70000, 512, 0);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* non-zero pattern */
    write_same(true, 0x00, 0, 8, 512, 0x5A);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);
    /* NDOB (16 only): zeroes without a data buffer */
    write_same(true, 0x09, 8, 8, 512, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    expect_segment(0, 8, 8, 1);
    /* zero blocks (WSNZ), range, ANCHOR, protection, buffer size */
    write_same(true, 0x08, 0, 0, 512, 0);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    write_same(true, 0x08, (1 << 20) - 4, 8, 512, 0);
    check_fail(SK_ILLEGAL, ASC_LBA_RANGE, 0);
    write_same(true, 0x18, 0, 8, 512, 0);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    write_same(false, 0x20, 0, 8, 512, 0);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    write_same(false, 0x00, 0, 8, 512, 0);
    T.srb.DataTransferLength = 256;
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* DISCARD only: UNMAP -> discard; without UNMAP refused */
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_DISCARD), 8ULL << 20, 4096);
    write_same(true, 0x08, 3, 2, 4096, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_DISCARD);
    expect_segment(0, 24, 16, 0);
    write_same(true, 0x00, 3, 2, 4096, 0);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    /* neither: not supported */
    disk_setup(F_BASIC, 1 << 20, 512);
    write_same(false, 0x08, 0, 8, 512, 0);
    check_fail(SK_ILLEGAL, ASC_OPCODE, 0);
    t_free();
}

/* ---------------------------------------------------------------- SRB-level rules */

static void test_unknown_and_addressing(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1000, 512);
    static const uint8_t unknown[] = { 0x4D, 0x01, 0x04, 0x07, 0xA2, 0x85, 0xA1, 0x5E, 0x3B, 0xFF };
    for (size_t i = 0; i < sizeof(unknown); i++) {
        srb_cdb(CDB(unknown[i], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
        check_fail(SK_ILLEGAL, ASC_OPCODE, 0);
    }
    assert_int_equal(disk.ErrorsInvalidRequest, sizeof(unknown));
    /* PathId / TargetId / Lun: SRB status, no I/O, no sense */
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    T.srb.Lun = 1;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_LUN);
    assert_int_equal(T.srb.DataTransferLength, 0);
    assert_int_equal(T.sense[0], 0xEE);
    T.srb.Lun = 0; T.srb.TargetId = 3;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_TARGET_ID);
    T.srb.TargetId = 0; T.srb.PathId = 1;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_PATH_ID);
    /* CDB shorter than the opcode needs, absurd CDB lengths */
    srb_cdb(CDB(0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0), 512, SRB_FLAGS_DATA_IN);
    sg_make(1, 512);
    check_fail(SK_ILLEGAL, ASC_INVALID_CDB, 0);
    srb_cdb(CDB(0x00, 0, 0, 0, 0, 0), 0, 0);
    T.srb.CdbLength = 0;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_REQUEST);
    T.srb.CdbLength = 17;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INVALID_REQUEST);
    t_free();
}

static void test_sense_buffer_rules(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1000, 512);
    /* short sense buffer: exactly that many bytes (ASan: buffer of 8) */
    srb_cdb(CDB(0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    free(T.sense);
    T.sense = malloc(8);
    T.srb.SenseInfoBuffer = T.sense;
    T.srb.SenseInfoBufferLength = 8;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID);
    assert_int_equal(T.srb.SenseInfoBufferLength, 8);
    assert_int_equal(T.sense[0], 0x70);
    assert_int_equal(T.sense[2], SK_ILLEGAL);
    /* no sense buffer: CHECK CONDITION without AUTOSENSE_VALID */
    srb_cdb(CDB(0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    T.srb.SenseInfoBufferLength = 0;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_ERROR);
    assert_int_equal(T.srb.ScsiStatus, SCSISTAT_CHECK_CONDITION);
    assert_int_equal(T.sense[0], 0xEE);
    srb_cdb(CDB(0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    T.srb.SenseInfoBuffer = NULL;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_ERROR);
    srb_cdb(CDB(0x4D, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, SRB_FLAGS_DISABLE_AUTOSENSE);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_ERROR);
    assert_int_equal(T.sense[0], 0xEE);
    /* per-SRB sense: two failing SRBs do not share anything */
    {
        SCSI_REQUEST_BLOCK a, b;
        uint8_t sa[18], sb[18];
        memset(&a, 0, sizeof(a)); memset(&b, 0, sizeof(b));
        memset(sa, 0, sizeof(sa)); memset(sb, 0, sizeof(sb));
        a.SenseInfoBuffer = sa; a.SenseInfoBufferLength = 18;
        b.SenseInfoBuffer = sb; b.SenseInfoBufferLength = 18;
        ScsiSetCheckCondition(&a, SCSI_SENSE_MEDIUM_ERROR, 0x11, 0);
        ScsiSetCheckCondition(&b, SK_ILLEGAL, 0x24, 0);
        assert_int_equal(sa[2], SCSI_SENSE_MEDIUM_ERROR);
        assert_int_equal(sa[12], 0x11);
        assert_int_equal(sb[12], 0x24);
    }
    t_free();
}

static void test_completion_bad_stage(void **s)
{
    (void)s;
    disk_setup(F_BASIC, 1000, 512);
    srb_cdb(CDB(0x00, 0, 0, 0, 0, 0), 0, 0);
    T.st.Stage = 0x77;
    assert_int_equal(complete_with(VIRTIO_BLK_S_OK), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.SrbStatus, SRB_STATUS_INTERNAL_ERROR);
    t_free();
}

static void test_update_geometry(void **s)
{
    (void)s;
    static const struct { ULONG bs; ULONGLONG sectors; ULONG want_bs; ULONGLONG want_blocks; } g[] = {
        { 512, 1000, 512, 1000 }, { 4096, 8007, 4096, 1000 }, { 65536, 128 * 3 + 5, 65536, 3 },
        { 4096, 7, 4096, 0 },     /* less than one block: nothing addressable */
        { 0, 100, 512, 100 }, { 1000, 100, 512, 100 }, { 131072, 1024, 512, 1024 },
        { 512, 1ULL << 40, 512, 1ULL << 40 },
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        memset(&disk, 0, sizeof(disk));
        disk.Config.BlockSize = g[i].bs;
        disk.Config.CapacitySectors = g[i].sectors;
        disk.MaxTransferBytes = 12345;
        disk.MaxDataBuffers = 7;
        ScsiUpdateGeometry(&disk);
        assert_int_equal(disk.BlockSize, g[i].want_bs);
        assert_true(disk.BlockCount == g[i].want_blocks);
        assert_int_equal(disk.MaxTransferBytes, 12345);      /* the glue's, untouched */
        assert_int_equal(disk.MaxDataBuffers, 7);
    }
    /* an empty disk (less than one 4 KiB block): no medium to address, so READ(10)
     * and READ CAPACITY are NOT READY / MEDIUM NOT PRESENT rather than "one block" */
    disk_setup(F_BASIC, 7, 4096);
    srb_cdb(CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    check_fail(SCSI_SENSE_NOT_READY, 0x3A, 0);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    check_fail(SCSI_SENSE_NOT_READY, 0x3A, 0);
    t_free();
}

/* Review fixes: each assertion fails on the earlier behaviour. */
static void test_review_semantics(void **s)
{
    (void)s;
    /* A unit attention that could not be reported (no autosense) stays pending for the
     * REQUEST SENSE that follows (SPC-3 5.9.7). */
    disk_setup(F_BASIC, 2048, 512);
    disk.UnitAttentionPending = TRUE;
    srb_cdb(CDB(0x00, 0, 0, 0, 0, 0), 0, 0);
    T.srb.SrbFlags |= SRB_FLAGS_DISABLE_AUTOSENSE;
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.srb.ScsiStatus, SCSISTAT_CHECK_CONDITION);
    assert_int_equal(T.srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID, 0);
    assert_true(disk.UnitAttentionPending);
    srb_cdb(CDB(0x03, 0, 0, 0, 18, 0), 18, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[2], SCSI_SENSE_UNIT_ATTENTION);
    assert_false(disk.UnitAttentionPending);

    /* MODE SELECT from NT-lineage disk.sys on a 4 KiB-block disk: a 512-byte block
     * descriptor is accepted (it cannot reformat), other lengths are refused. */
    disk_setup(F_BASIC | F_WCE, 8 * 4096, 4096);
    mode_select6(0x10, 0x00, true, 512);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);              /* WCE 1 -> 0: flush */
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);
    assert_int_equal(devcfg[VBLK_CFG_WRITEBACK], 0);
    mode_select6(0x10, 0x00, true, 1024);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);

    /* With the write cache off, SYNCHRONIZE CACHE still flushes: writes cached before
     * the switch are only stable after a later FLUSH (virtio 5.2.6.3). */
    assert_int_equal(disk.Config.Writeback, 0);
    srb_cdb(CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(T.st.Blk.Type, VIRTIO_BLK_T_FLUSH);

    /* CONFIG_WCE without FLUSH (a device breaking 5.2.5): WCE is not changeable. */
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_CONFIG_WCE), 2048, 512);
    mode_select6(0x10, 0x04, false, 0);
    check_fail(SK_ILLEGAL, ASC_PARAM_FIELD, 0);

    /* VPD B2: LBPWS only when WRITE SAME with UNMAP reads back zeroes (WRITE_ZEROES). */
    disk_setup(F_BASIC | F(VIRTIO_BLK_F_DISCARD), 2048, 512);
    srb_cdb(CDB(0x12, 1, 0xB2, 0, 255, 0), 255, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    assert_int_equal(T.data[5] & 0xE0, 0x80);                   /* LBPU only */

    /* A zero-capacity disk: medium commands are NOT READY / MEDIUM NOT PRESENT (not a
     * one-block disk), identification still answers. */
    disk_setup(F_BASIC, 0, 512);
    srb_cdb(CDB(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8, SRB_FLAGS_DATA_IN);
    check_fail(SCSI_SENSE_NOT_READY, 0x3A, 0);
    srb_cdb(CDB(0x00, 0, 0, 0, 0, 0), 0, 0);
    check_fail(SCSI_SENSE_NOT_READY, 0x3A, 0);
    srb_cdb(CDB(0x12, 0, 0, 0, 36, 0), 36, SRB_FLAGS_DATA_IN);
    assert_int_equal(start(), SCSI_ACTION_COMPLETE);
    expect_good();

    /* A device UNSUPP is the device's refusal, not one of the driver's. */
    disk_setup(F_BASIC | F_CACHE, 1000, 512);
    srb_cdb(CDB(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0);
    assert_int_equal(start(), SCSI_ACTION_SUBMIT);
    assert_int_equal(complete_with(VIRTIO_BLK_S_UNSUPP), SCSI_ACTION_COMPLETE);
    expect_sense(SK_ILLEGAL, ASC_OPCODE, 0);
    assert_int_equal(disk.ErrorsInvalidRequest, 0);
    t_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_test_unit_ready),
        cmocka_unit_test(test_unit_attention),
        cmocka_unit_test(test_request_sense),
        cmocka_unit_test(test_start_stop_unit),
        cmocka_unit_test(test_report_luns),
        cmocka_unit_test(test_inquiry_standard),
        cmocka_unit_test(test_vpd_supported_pages),
        cmocka_unit_test(test_vpd_serial),
        cmocka_unit_test(test_vpd_device_identification),
        cmocka_unit_test(test_vpd_limits_pages),
        cmocka_unit_test(test_read_capacity),
        cmocka_unit_test(test_read_write_all_sizes),
        cmocka_unit_test(test_read_write_4k_and_huge),
        cmocka_unit_test(test_range_and_length_errors),
        cmocka_unit_test(test_sg_limits),
        cmocka_unit_test(test_device_errors),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_fua),
        cmocka_unit_test(test_synchronize_cache_and_flush_srbs),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_mode_sense),
        cmocka_unit_test(test_mode_select),
        cmocka_unit_test(test_review_semantics),
        cmocka_unit_test(test_unmap),
        cmocka_unit_test(test_write_same),
        cmocka_unit_test(test_unknown_and_addressing),
        cmocka_unit_test(test_sense_buffer_rules),
        cmocka_unit_test(test_completion_bad_stage),
        cmocka_unit_test(test_update_geometry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
