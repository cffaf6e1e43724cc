/*
 * libFuzzer harness of the SCSI translation (driver/scsi.c over the real blk.c /
 * virtqueue.c / virtio_pci.c). Each input describes a disk (features, capacity,
 * block size, limits, cache mode, pending unit attention), one SRB (function,
 * address, CDB and CdbLength, flags, DataTransferLength, sense buffer size, SG list
 * shape) and the device statuses / GET_ID bytes fed back at completion.
 *
 * Invariants (abort() on violation, besides ASan/UBSan reports):
 *  - DataTransferLength never grows; SenseInfoBufferLength never grows;
 *  - every completed SRB has a valid, non-PENDING SRB status; CHECK CONDITION comes
 *    with SRB_STATUS_ERROR; AUTOSENSE_VALID only with a sense buffer, fixed format;
 *  - READ/WRITE never touch DataBuffer (it points at an unmapped guard address);
 *    other commands stay inside buffers of exactly DataTransferLength /
 *    SenseInfoBufferLength bytes (ASan);
 *  - a submitted request is one VblkSubmit accepts (never VQ_INVALID), its data
 *    buffers lie inside the SG elements, total exactly DataTransferLength for
 *    READ/WRITE, respect size_max and MaxDataBuffers, and every sector range
 *    (data or discard/write-zeroes segment) lies inside the capacity;
 *  - at most two device stages per SRB (FUA: write + flush).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "../../driver/scsixlat.h"

/* ---------------------------------------------------------------- MMIO (config space) */
static uint8_t devcfg[0x100];
static uint8_t common[0x40];

unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    unsigned int v = 0;
    memcpy(&v, (void *)Register, Width);
    return v;
}

void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    uint8_t *r = (uint8_t *)Register;
    if (r >= devcfg && r + Width <= devcfg + sizeof(devcfg)) memcpy(r, &Value, Width);
}

/* ---------------------------------------------------------------- input reader */
typedef struct rd { const uint8_t *p; size_t n; } rd;
static uint8_t u8(rd *r) { if (!r->n) return 0; r->n--; return *r->p++; }
static uint16_t u16(rd *r) { return (uint16_t)(u8(r) | u8(r) << 8); }
static uint32_t u32(rd *r) { return (uint32_t)u16(r) | (uint32_t)u16(r) << 16; }
static uint64_t u64(rd *r) { return (uint64_t)u32(r) | (uint64_t)u32(r) << 32; }

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static const ULONG feature_bits[] = {
    VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_GEOMETRY, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_F_INDIRECT_DESC,
};

/* One virtqueue to prove blk.c accepts every request the SCSI layer builds. */
#define QSIZE 256
static uint8_t qmem[1 << 21] __attribute__((aligned(4096)));   /* 256 heads x 256-entry tables + the rest */
static VBLK_QUEUE queue;

static BOOLEAN is_read_write(UCHAR op)
{
    switch (op) {
    case 0x08: case 0x0A: case 0x28: case 0x2A: case 0xA8: case 0xAA: case 0x88: case 0x8A:
    case 0x2E: case 0xAE: case 0x8E:
        return TRUE;
    default:
        return FALSE;
    }
}

static void check_segments(const SCSI_DISK *disk, const VBLK_REQUEST *blk)
{
    CHECK(blk->PayloadLength % 16 == 0 && blk->PayloadLength >= 16 && blk->PayloadLength <= VBLK_PAYLOAD_BYTES);
    for (ULONG i = 0; i < blk->PayloadLength; i += 16) {
        uint64_t sector; uint32_t n;
        memcpy(&sector, blk->Payload + i, 8);
        memcpy(&n, blk->Payload + i + 8, 4);
        CHECK(n != 0);
        CHECK(sector < disk->Config.CapacitySectors && n <= disk->Config.CapacitySectors - sector);
        CHECK(sector % (disk->BlockSize / 512) == 0 && n % (disk->BlockSize / 512) == 0);
    }
}

/* Oracle for blk.c: the data buffers it must build from the first `bytes` of the SG
 * list (zero-length elements skipped, each element cut at size_max), 0 when it must
 * refuse the request (the list is short, or more buffers than the device takes). */
static unsigned expected_pieces(const SCSI_DISK *disk, const STOR_SCATTER_GATHER_LIST *sg, uint64_t bytes,
                                uint64_t *pa, uint32_t *len, unsigned max_out)
{
    uint32_t size_max = ((disk->Features & VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX)) && disk->Config.SizeMax)
                            ? disk->Config.SizeMax : 0xFFFFFFFFu;
    unsigned max = disk->MaxDataBuffers && disk->MaxDataBuffers < VBLK_MAX_DATA_BUFFERS
                       ? disk->MaxDataBuffers : VBLK_MAX_DATA_BUFFERS;
    unsigned n = 0;
    for (ULONG i = 0; i < sg->NumberOfElements && bytes; i++) {
        uint64_t a = (uint64_t)sg->List[i].PhysicalAddress.QuadPart;
        uint64_t l = sg->List[i].Length < bytes ? sg->List[i].Length : bytes;
        bytes -= l;
        while (l) {
            uint32_t piece = l < size_max ? (uint32_t)l : size_max;
            if (n >= max) return 0;
            if (n < max_out) { pa[n] = a; len[n] = piece; }
            n++; a += piece; l -= piece;
        }
    }
    return bytes ? 0 : n;
}

static void check_request(const SCSI_DISK *disk, const SCSI_REQUEST_BLOCK *srb,
                          const STOR_SCATTER_GATHER_LIST *sg, const VBLK_REQUEST *blk)
{
    switch (blk->Type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        /* StorPort's own list, handed down as it is: its first DataTransferLength bytes */
        CHECK(sg != NULL);
        CHECK(blk->Data == (const VBLK_SG_ELEMENT *)sg->List);
        CHECK(blk->DataElements == sg->NumberOfElements);
        CHECK(blk->DataBytes == srb->DataTransferLength);
        CHECK(blk->DataBytes != 0 && blk->DataBytes % disk->BlockSize == 0);
        CHECK(blk->Sector < disk->Config.CapacitySectors &&
              blk->DataBytes / 512 <= disk->Config.CapacitySectors - blk->Sector);
        CHECK(blk->PayloadLength == 0);
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        CHECK(blk->DataBytes == 0 && blk->PayloadLength == 0);
        break;
    case VIRTIO_BLK_T_GET_ID:
        CHECK(blk->DataBytes == 0 && blk->PayloadLength == VIRTIO_BLK_ID_BYTES);
        break;
    case VIRTIO_BLK_T_DISCARD:
        CHECK(disk->Features & VBLK_FEATURE(VIRTIO_BLK_F_DISCARD));
        CHECK(blk->DataBytes == 0);
        CHECK(blk->PayloadLength / 16 <= disk->Config.MaxDiscardSeg);
        check_segments(disk, blk);
        break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
        CHECK(disk->Features & VBLK_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES));
        CHECK(blk->DataBytes == 0);
        CHECK(blk->PayloadLength / 16 <= disk->Config.MaxWriteZeroesSeg);
        check_segments(disk, blk);
        break;
    default:
        CHECK(!"unknown request type");
    }
    if (blk->Type == VIRTIO_BLK_T_OUT || blk->Type == VIRTIO_BLK_T_DISCARD ||
        blk->Type == VIRTIO_BLK_T_WRITE_ZEROES)
        CHECK(!(disk->Features & VBLK_FEATURE(VIRTIO_BLK_F_RO)));
}

static BOOLEAN valid_srb_status(UCHAR s)
{
    switch (SRB_STATUS(s)) {
    case SRB_STATUS_SUCCESS: case SRB_STATUS_ERROR: case SRB_STATUS_INVALID_REQUEST:
    case SRB_STATUS_INVALID_PATH_ID: case SRB_STATUS_INVALID_TARGET_ID: case SRB_STATUS_INVALID_LUN:
    case SRB_STATUS_NO_DEVICE: case SRB_STATUS_BUS_RESET: case SRB_STATUS_DATA_OVERRUN:
    case SRB_STATUS_INTERNAL_ERROR:
        return TRUE;
    default:
        return FALSE;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size)
{
    rd r = { Data, Size };
    SCSI_DISK disk;
    SCSI_REQUEST_BLOCK srb;
    static SCSI_REQUEST_STATE state;
    uint8_t *buffer = NULL, *sense = NULL;
    PSTOR_SCATTER_GATHER_LIST sg = NULL;

    /* ---- disk */
    memset(&disk, 0, sizeof(disk));
    memset(devcfg, 0, sizeof(devcfg));
    static VPCI_DEVICE pci;
    memset(&pci, 0, sizeof(pci));
    pci.Common = common;
    pci.DeviceCfg = devcfg;
    pci.DeviceRegion.Present = TRUE;
    pci.DeviceRegion.Length = sizeof(devcfg);
    disk.Device = &pci;
    uint16_t fmask = u16(&r);
    for (size_t i = 0; i < sizeof(feature_bits) / sizeof(feature_bits[0]); i++)
        if (fmask & (1u << i)) disk.Features |= VBLK_FEATURE(feature_bits[i]);
    disk.Features |= VBLK_FEATURE(VIRTIO_F_VERSION_1);
    uint8_t shape = u8(&r);
    disk.Config.CapacitySectors = (shape & 1) ? u64(&r) % (VBLK_MAX_CAPACITY_SECTORS + 1) : u32(&r);
    disk.Config.BlockSize = 512u << (u8(&r) % 8);                    /* 512 .. 65536 */
    disk.Config.SizeMax = (disk.Features & VBLK_FEATURE(VIRTIO_BLK_F_SIZE_MAX)) ? 512 + u16(&r) : 0;
    disk.Config.SegMax = u8(&r);
    disk.Config.PhysicalBlockExp = u8(&r) % 16;
    disk.Config.AlignmentOffset = (UCHAR)(u8(&r) % (1u << disk.Config.PhysicalBlockExp));
    disk.Config.MinIoSize = u16(&r);
    disk.Config.OptIoSize = u32(&r);
    disk.Config.Writeback = u8(&r) & 1;
    devcfg[VBLK_CFG_WRITEBACK] = disk.Config.Writeback;
    if (disk.Features & VBLK_FEATURE(VIRTIO_BLK_F_DISCARD)) {
        disk.Config.MaxDiscardSectors = u32(&r) | 1;
        disk.Config.MaxDiscardSeg = 1 + u8(&r) % 32;
        disk.Config.DiscardSectorAlignment = u16(&r);
    }
    if (disk.Features & VBLK_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES)) {
        disk.Config.MaxWriteZeroesSectors = u32(&r) | 1;
        disk.Config.MaxWriteZeroesSeg = 1 + u8(&r) % 32;
    }
    ScsiUpdateGeometry(&disk);
    disk.MaxDataBuffers = (USHORT)(u8(&r) % (VBLK_MAX_DATA_BUFFERS + 1));      /* 0 = default */
    disk.MaxTransferBytes = (shape & 2) ? u32(&r) : (ULONG)(u8(&r) + 1) * 4096;
    disk.UnitAttentionPending = (shape & 4) != 0;
    disk.FallbackSerial = u32(&r);

    /* ---- SRB */
    memset(&srb, 0, sizeof(srb));
    memset(&state, 0x5A, sizeof(state));             /* stale state from an earlier SRB */
    uint8_t sflags = u8(&r);
    srb.Length = sizeof(srb);
    srb.Function = (sflags & 0x07) == 0 ? (UCHAR)(u8(&r) % 0x28)
                 : (sflags & 0x07) == 1 ? SRB_FUNCTION_FLUSH : SRB_FUNCTION_EXECUTE_SCSI;
    if (sflags & 0x08) { srb.PathId = u8(&r) % 2; srb.TargetId = u8(&r) % 2; srb.Lun = u8(&r) % 2; }
    srb.CdbLength = u8(&r) % 18;
    for (int i = 0; i < 16; i++) srb.Cdb[i] = u8(&r);
    srb.SrbFlags = u32(&r);
    BOOLEAN rw = is_read_write(srb.Cdb[0]) && srb.Function == SRB_FUNCTION_EXECUTE_SCSI;
    ULONG dtl;
    if (sflags & 0x10) dtl = u32(&r);                                /* anything, incl. huge */
    else dtl = (ULONG)u16(&r) % 70000;
    if (!rw && dtl > 300000) dtl %= 300000;                          /* buffers are real */
    srb.DataTransferLength = dtl;
    if (rw) {
        srb.DataBuffer = (void *)(uintptr_t)0x10;                    /* never dereferenced */
    } else if (dtl) {
        /* parameter data (UNMAP list, MODE SELECT page, WRITE SAME pattern): zeroes, or
         * the next input bytes */
        buffer = calloc(1, dtl);
        if (!(sflags & 0x20)) {
            size_t n = dtl < r.n ? dtl : r.n;
            memcpy(buffer, r.p, n);
            r.p += n;
            r.n -= n;
        }
        srb.DataBuffer = (sflags & 0x40) ? NULL : buffer;
    }
    UCHAR sense_len = u8(&r);
    if (sense_len) {
        sense = malloc(sense_len);
        memset(sense, 0xEE, sense_len);
        srb.SenseInfoBuffer = sense;
    }
    srb.SenseInfoBufferLength = sense_len;

    /* ---- SG list */
    if (!(sflags & 0x80)) {
        ULONG n = u8(&r);
        sg = malloc(sizeof(*sg) + (size_t)n * sizeof(sg->List[0]));
        sg->NumberOfElements = n;
        uint64_t remaining = dtl;
        for (ULONG i = 0; i < n; i++) {
            uint8_t kind = u8(&r);
            ULONG len;
            if (kind < 128 && remaining) {                           /* plausible shape */
                len = (ULONG)(remaining < 4096 ? remaining : 512u * (1 + kind % 16));
                if (len > remaining) len = (ULONG)remaining;
            } else {
                len = u32(&r) % (1u << 21);
            }
            remaining = remaining > len ? remaining - len : 0;
            sg->List[i].PhysicalAddress.QuadPart = (LONGLONG)(((uint64_t)(i + 1) << 32) | (u16(&r) & ~1u));
            sg->List[i].Length = len;
        }
    }

    const ULONG dtl0 = srb.DataTransferLength;
    const UCHAR sense0 = srb.SenseInfoBufferLength;
    const ULONG features_ro = (disk.Features & VBLK_FEATURE(VIRTIO_BLK_F_RO)) != 0;
    (void)features_ro;

    SCSI_ACTION action = ScsiStartSrb(&disk, &srb, sg, &state);
    int stages = 0;
    while (action == SCSI_ACTION_SUBMIT) {
        CHECK(++stages <= 2);
        check_request(&disk, &srb, sg, &state.Blk);
        /* blk.c must accept it (a real queue; indirect tables of MaxDataBuffers + 2 as the
         * glue sizes them: header + data + status). */
        USHORT imax = (USHORT)((disk.MaxDataBuffers ? disk.MaxDataBuffers : VBLK_MAX_DATA_BUFFERS) + 2);
        if (VblkQueueInit(&queue, QSIZE, FALSE, imax, QSIZE, qmem, 0x100000000ULL) != VQ_OK) abort();
        VblkQueueSetLimits(&queue, disk.MaxDataBuffers,
                           VblkBufferBytesMax(disk.Features, &disk.Config));
        VQ_STATUS vs = VblkSubmit(&queue, &state.Blk);
        if (state.Blk.DataBytes != 0) {
            /* blk.c refuses exactly what the oracle refuses; what it accepts reaches the
             * ring as the oracle's buffers, between the header and the status */
            static uint64_t pa[VBLK_MAX_DATA_BUFFERS];
            static uint32_t len[VBLK_MAX_DATA_BUFFERS];
            unsigned n = expected_pieces(&disk, sg, state.Blk.DataBytes, pa, len, VBLK_MAX_DATA_BUFFERS);
            if (n == 0) {
                CHECK(vs == VQ_INVALID);
                /* the glue's answer (AerovblkSubmit): refused, nothing transferred */
                srb.SrbStatus = SRB_STATUS_INVALID_REQUEST;
                srb.DataTransferLength = 0;
                break;
            }
            CHECK(vs == VQ_OK);
            {
                const VQ_DESC *ring = (const VQ_DESC *)queue.Vq.Desc;
                USHORT head = queue.Vq.Avail[2];
                const VQ_DESC *d = ring;
                unsigned k = 0, idx = head;
                if (ring[head].Flags & VQ_DESC_F_INDIRECT) {
                    d = queue.Vq.Indirect + (size_t)head * queue.Vq.IndirectMax;
                    CHECK(ring[head].Length == (n + 2) * sizeof(VQ_DESC));
                    idx = 0;
                }
                for (k = 0; k < n + 2; k++) {
                    int in = k == n + 1 || (k > 0 && state.Blk.Type == VIRTIO_BLK_T_IN);
                    CHECK(((d[idx].Flags & VQ_DESC_F_WRITE) != 0) == in);
                    CHECK(((d[idx].Flags & VQ_DESC_F_NEXT) != 0) == (k + 1 < n + 2));
                    if (k > 0 && k <= n) CHECK(d[idx].Address == pa[k - 1] && d[idx].Length == len[k - 1]);
                    idx = d[idx].Next;
                }
            }
        }
        CHECK(vs == VQ_OK);
        CHECK(VblkDetachNext(&queue) == &state.Blk);
        /* the device's answer */
        uint8_t pick = u8(&r);
        static const UCHAR statuses[] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP,
                                          VBLK_STATUS_RESET, VBLK_STATUS_DEVICE_GONE };
        state.Blk.Status = (pick & 0x80) ? u8(&r) : statuses[pick % 5];
        if (state.Blk.Type == VIRTIO_BLK_T_GET_ID)
            for (int i = 0; i < VIRTIO_BLK_ID_BYTES; i++) state.Blk.Payload[i] = u8(&r);
        action = ScsiCompleteRequest(&disk, &srb, &state);
    }

    /* ---- invariants of the completed SRB */
    CHECK(srb.DataTransferLength <= dtl0);
    CHECK(srb.SenseInfoBufferLength <= sense0);
    CHECK(srb.SrbStatus != SRB_STATUS_PENDING);
    CHECK(valid_srb_status(srb.SrbStatus));
    CHECK(!(srb.SrbStatus & SRB_STATUS_QUEUE_FROZEN));
    if (srb.ScsiStatus == SCSISTAT_CHECK_CONDITION) {
        CHECK(SRB_STATUS(srb.SrbStatus) == SRB_STATUS_ERROR);
        CHECK(srb.DataTransferLength == 0);
    } else {
        CHECK(srb.ScsiStatus == SCSISTAT_GOOD);
    }
    if (srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID) {
        CHECK(srb.ScsiStatus == SCSISTAT_CHECK_CONDITION);
        CHECK(sense != NULL && srb.SenseInfoBufferLength > 0);
        CHECK(sense[0] == 0x70);
    } else if (sense) {
        CHECK(sense[0] == 0xEE);                       /* untouched */
    }
    if (SRB_STATUS(srb.SrbStatus) != SRB_STATUS_SUCCESS && SRB_STATUS(srb.SrbStatus) != SRB_STATUS_DATA_OVERRUN)
        CHECK(srb.DataTransferLength == 0);

    if (getenv("FUZZ_SCSI_TRACE"))      /* seed check: what each input exercised */
        fprintf(stderr, "fn %02x op %02x cdblen %u stages %d types %u srb %02x scsi %02x "
                "sense %x/%02x/%02x dtl %u->%u\n", srb.Function, srb.Cdb[0], srb.CdbLength, stages,
                stages ? state.Blk.Type : 99, srb.SrbStatus, srb.ScsiStatus,
                (srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID) ? sense[2] : 0,
                (srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID) && srb.SenseInfoBufferLength > 12 ? sense[12] : 0,
                (srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID) && srb.SenseInfoBufferLength > 13 ? sense[13] : 0,
                dtl0, srb.DataTransferLength);
    free(buffer);
    free(sense);
    free(sg);
    return 0;
}
