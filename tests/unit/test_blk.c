/*
 * Unit tests of driver/blk.c through the REAL driver/virtqueue.c and
 * driver/virtio_pci.c: requests go through the split ring to the user-space device of
 * vq_device.c, which checks the chain shape; a minimal virtio-blk device side (below)
 * checks the header / payload / status layout of spec 5.2.6 and writes the status.
 * Config-space reads go through AvHostMmioRead (provided here) into an in-memory
 * common + device config region with a scriptable config_generation.
 * Built with ASan + UBSan (mk/unit-scsi.mk); run by tests/checks/41-unit-blk.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "vq_device.h"
#include "blk.h"

#define RAM_PA    0x0000004000000000ULL
#define RAM_BYTES (1u << 20)

/* ---------------------------------------------------------------- MMIO model */
static struct {
    uint8_t common[0x40];
    uint8_t devcfg[0x100];
    uint16_t notify;
    unsigned notifies;
    unsigned gen_bumps;        /* bump config_generation on this many device-cfg reads */
    bool gone;                 /* every read returns all ones */
    bool ignore_writes;        /* writeback byte does not stick */
    uint8_t read_map[0x100];   /* device-cfg bytes read */
} mmio;

static bool in(volatile void *r, uint8_t *base, size_t len)
{
    return (uint8_t *)r >= base && (uint8_t *)r < base + len;
}

unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    unsigned int v = 0;
    assert_true(Width == 1 || Width == 2 || Width == 4);
    if (mmio.gone) return Width == 4 ? 0xFFFFFFFFu : (1u << (8 * Width)) - 1;
    if (in(Register, mmio.devcfg, sizeof(mmio.devcfg))) {
        size_t off = (uint8_t *)Register - mmio.devcfg;
        memset(mmio.read_map + off, 1, Width);
        if (mmio.gen_bumps) { mmio.gen_bumps--; mmio.common[0x15]++; }
    } else {
        assert_true(in(Register, mmio.common, sizeof(mmio.common)));
    }
    memcpy(&v, (void *)Register, Width);
    return v;
}

void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    if (Register == (volatile void *)&mmio.notify) {
        assert_int_equal(Width, 2);
        mmio.notify = (uint16_t)Value;
        mmio.notifies++;
        return;
    }
    assert_true(in(Register, mmio.devcfg, sizeof(mmio.devcfg)));
    if (!mmio.ignore_writes) memcpy((void *)Register, &Value, Width);
}

static void dev_init(VPCI_DEVICE *dev)
{
    memset(&mmio, 0, sizeof(mmio));
    memset(dev, 0, sizeof(*dev));
    dev->Common = mmio.common;
    dev->DeviceCfg = mmio.devcfg;
    dev->DeviceRegion.Present = TRUE;
    dev->DeviceRegion.Length = sizeof(mmio.devcfg);
    dev->QueueNotify = (volatile UCHAR *)&mmio.notify;
}

static void put8(unsigned off, uint8_t v) { mmio.devcfg[off] = v; }
static void put16(unsigned off, uint16_t v) { memcpy(mmio.devcfg + off, &v, 2); }
static void put32(unsigned off, uint32_t v) { memcpy(mmio.devcfg + off, &v, 4); }
static void put64(unsigned off, uint64_t v) { memcpy(mmio.devcfg + off, &v, 8); }

static void fill_config(void)
{
    put64(VBLK_CFG_CAPACITY, 123456789ULL);
    put32(VBLK_CFG_SIZE_MAX, 65536);
    put32(VBLK_CFG_SEG_MAX, 126);
    put16(VBLK_CFG_GEOMETRY_CYLINDERS, 1000);
    put8(VBLK_CFG_GEOMETRY_HEADS, 16);
    put8(VBLK_CFG_GEOMETRY_SECTORS, 63);
    put32(VBLK_CFG_BLK_SIZE, 4096);
    put8(VBLK_CFG_PHYSICAL_BLOCK_EXP, 1);
    put8(VBLK_CFG_ALIGNMENT_OFFSET, 1);
    put16(VBLK_CFG_MIN_IO_SIZE, 2);
    put32(VBLK_CFG_OPT_IO_SIZE, 256);
    put8(VBLK_CFG_WRITEBACK, 1);
    put32(VBLK_CFG_MAX_DISCARD_SECTORS, 8192);
    put32(VBLK_CFG_MAX_DISCARD_SEG, 4);
    put32(VBLK_CFG_DISCARD_SECTOR_ALIGNMENT, 8);
    put32(VBLK_CFG_MAX_WRITE_ZEROES_SECTORS, 16384);
    put32(VBLK_CFG_MAX_WRITE_ZEROES_SEG, 2);
    put8(VBLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1);
}

#define ALL_FEATURES (VblkWantedFeatures())

/* ---------------------------------------------------------------- features / config */

static void test_wanted_features(void **s)
{
    ULONGLONG f = VblkWantedFeatures();
    static const int want[] = { VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX,
        VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_TOPOLOGY,
        VIRTIO_BLK_F_GEOMETRY, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES };
    ULONGLONG expect = 0;
    (void)s;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) expect |= VBLK_FEATURE(want[i]);
    assert_true(f == expect);
    assert_false(f & VBLK_FEATURE(VIRTIO_F_RING_PACKED));
    assert_false(f & VBLK_FEATURE(VIRTIO_BLK_F_MQ));
}

static void test_config_all_fields(void **s)
{
    VPCI_DEVICE dev; VBLK_CONFIG c;
    (void)s;
    dev_init(&dev);
    fill_config();
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
    assert_true(c.CapacitySectors == 123456789ULL);
    assert_int_equal(c.SizeMax, 65536);
    assert_int_equal(c.SegMax, 126);
    assert_int_equal(c.Cylinders, 1000);
    assert_int_equal(c.Heads, 16);
    assert_int_equal(c.SectorsPerTrack, 63);
    assert_int_equal(c.BlockSize, 4096);
    assert_int_equal(c.PhysicalBlockExp, 1);
    assert_int_equal(c.AlignmentOffset, 1);
    assert_int_equal(c.MinIoSize, 2);
    assert_int_equal(c.OptIoSize, 256);
    assert_int_equal(c.Writeback, 1);
    assert_int_equal(c.MaxDiscardSectors, 8192);
    assert_int_equal(c.MaxDiscardSeg, 4);
    assert_int_equal(c.DiscardSectorAlignment, 8);
    assert_int_equal(c.MaxWriteZeroesSectors, 16384);
    assert_int_equal(c.MaxWriteZeroesSeg, 2);
    assert_int_equal(c.WriteZeroesMayUnmap, 1);
    assert_int_equal(c.Notes, 0);
}

/* Only negotiated fields are read (spec 5.2.4); the rest keep safe defaults. */
static void test_config_only_negotiated(void **s)
{
    VPCI_DEVICE dev; VBLK_CONFIG c;
    (void)s;
    dev_init(&dev);
    fill_config();
    assert_int_equal(VblkReadConfig(&dev, VBLK_FEATURE(VIRTIO_F_VERSION_1), &c), VPCI_OK);
    assert_true(c.CapacitySectors == 123456789ULL);
    assert_int_equal(c.BlockSize, 512);
    assert_int_equal(c.SegMax, 0);
    assert_int_equal(c.SizeMax, 0);
    assert_int_equal(c.Writeback, 0);
    assert_int_equal(c.MaxDiscardSeg, 0);
    for (unsigned off = 8; off < sizeof(mmio.read_map); off++)
        if (mmio.read_map[off]) fail_msg("read device cfg offset 0x%x without its feature", off);
    /* Aero's feature set: SEG_MAX + BLK_SIZE + FLUSH, writeback not read. */
    memset(mmio.read_map, 0, sizeof(mmio.read_map));
    assert_int_equal(VblkReadConfig(&dev, VBLK_FEATURE(VIRTIO_F_VERSION_1) | VBLK_FEATURE(VIRTIO_BLK_F_SEG_MAX) |
                                    VBLK_FEATURE(VIRTIO_BLK_F_BLK_SIZE) | VBLK_FEATURE(VIRTIO_BLK_F_FLUSH), &c), VPCI_OK);
    assert_int_equal(c.SegMax, 126);
    assert_int_equal(c.BlockSize, 4096);
    assert_int_equal(mmio.read_map[VBLK_CFG_WRITEBACK], 0);
    assert_int_equal(mmio.read_map[VBLK_CFG_SIZE_MAX], 0);
    assert_true(VblkHasVolatileCache(VBLK_FEATURE(VIRTIO_BLK_F_FLUSH), &c));     /* FLUSH w/o WCE: writeback */
    assert_false(VblkHasVolatileCache(0, &c));                                   /* neither: writethrough */
    c.Writeback = 0;
    assert_false(VblkHasVolatileCache(VBLK_FEATURE(VIRTIO_BLK_F_FLUSH) | VBLK_FEATURE(VIRTIO_BLK_F_CONFIG_WCE), &c));
    c.Writeback = 1;
    assert_true(VblkHasVolatileCache(VBLK_FEATURE(VIRTIO_BLK_F_FLUSH) | VBLK_FEATURE(VIRTIO_BLK_F_CONFIG_WCE), &c));
}

static void test_config_validation(void **s)
{
    VPCI_DEVICE dev; VBLK_CONFIG c;
    static const uint32_t bad_sizes[] = { 0, 256, 1000, 3072, 131072, 0xFFFFFFFFu };
    (void)s;
    dev_init(&dev);
    fill_config();
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        put32(VBLK_CFG_BLK_SIZE, bad_sizes[i]);
        assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
        assert_int_equal(c.BlockSize, 512);
        assert_true(c.Notes & VBLK_NOTE_BLK_SIZE_INVALID);
    }
    put32(VBLK_CFG_BLK_SIZE, 65536);
    put32(VBLK_CFG_SEG_MAX, 0);
    put32(VBLK_CFG_SIZE_MAX, 100);
    put64(VBLK_CFG_CAPACITY, 0xFFFFFFFFFFFFFFF0ULL);
    put8(VBLK_CFG_PHYSICAL_BLOCK_EXP, 16);
    put32(VBLK_CFG_MAX_DISCARD_SEG, 0);
    put32(VBLK_CFG_MAX_DISCARD_SECTORS, 0);
    put32(VBLK_CFG_MAX_WRITE_ZEROES_SEG, 0);
    put8(VBLK_CFG_WRITEBACK, 7);
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
    assert_int_equal(c.BlockSize, 65536);
    assert_int_equal(c.SegMax, 1);
    assert_int_equal(c.SizeMax, 512);
    assert_true(c.CapacitySectors == VBLK_MAX_CAPACITY_SECTORS);
    assert_int_equal(c.PhysicalBlockExp, 0);
    assert_int_equal(c.AlignmentOffset, 0);
    assert_int_equal(c.MaxDiscardSeg, 1);
    assert_int_equal(c.MaxDiscardSectors, 0xFFFFFFFFu);
    assert_int_equal(c.MaxWriteZeroesSeg, 1);
    assert_int_equal(c.Writeback, 1);
    assert_int_equal(c.Notes, VBLK_NOTE_SEG_MAX_ZERO | VBLK_NOTE_SIZE_MAX_INVALID | VBLK_NOTE_CAPACITY_CLAMPED |
                              VBLK_NOTE_TOPOLOGY_INVALID | VBLK_NOTE_DISCARD_LIMITS);
    /* alignment offset must be inside one physical block */
    put8(VBLK_CFG_PHYSICAL_BLOCK_EXP, 3);
    put8(VBLK_CFG_ALIGNMENT_OFFSET, 8);
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
    assert_true(c.Notes & VBLK_NOTE_TOPOLOGY_INVALID);
    put8(VBLK_CFG_ALIGNMENT_OFFSET, 7);
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
    assert_false(c.Notes & VBLK_NOTE_TOPOLOGY_INVALID);
    assert_int_equal(c.PhysicalBlockExp, 3);
    assert_int_equal(c.AlignmentOffset, 7);
}

static void test_config_generation(void **s)
{
    VPCI_DEVICE dev; VBLK_CONFIG c;
    (void)s;
    dev_init(&dev);
    fill_config();
    mmio.gen_bumps = 3;              /* changes during the first pass(es): retried */
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_OK);
    assert_true(c.CapacitySectors == 123456789ULL);
    mmio.gen_bumps = 100000;         /* never stable */
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_ERR_CONFIG_UNSTABLE);
    mmio.gen_bumps = 0;
    mmio.gone = true;                /* surprise removal: all ones */
    assert_int_equal(VblkReadConfig(&dev, ALL_FEATURES, &c), VPCI_ERR_DEVICE_GONE);
}

static void test_set_writeback(void **s)
{
    VPCI_DEVICE dev;
    (void)s;
    dev_init(&dev);
    assert_true(VblkSetWriteback(&dev, 1));
    assert_int_equal(mmio.devcfg[VBLK_CFG_WRITEBACK], 1);
    assert_true(VblkSetWriteback(&dev, 0));
    assert_int_equal(mmio.devcfg[VBLK_CFG_WRITEBACK], 0);
    mmio.ignore_writes = true;
    assert_false(VblkSetWriteback(&dev, 1));
    assert_false(VblkSetWriteback(NULL, 1));
}

/* ---------------------------------------------------------------- queue environment */

typedef struct env {
    uint8_t *ram;
    VBLK_QUEUE q;
    vqd dev;
    VPCI_DEVICE pci;
    uint16_t qsize, imax, slots;
    size_t data_off;                  /* data area after the queue memory */
} env;

static env *env_new(uint16_t qsize, bool ei, uint16_t imax, uint16_t slots)
{
    env *e = calloc(1, sizeof(*e));
    ULONG bytes = VblkQueueMemoryBytes(qsize, ei, imax, slots);
    assert_true(bytes > 0 && bytes < RAM_BYTES / 2);
    e->ram = aligned_alloc(4096, RAM_BYTES);
    memset(e->ram, 0xA5, RAM_BYTES);  /* the init must zero what it uses */
    e->qsize = qsize; e->imax = imax; e->slots = slots;
    e->data_off = (bytes + 4095) & ~4095u;
    assert_int_equal(VblkQueueInit(&e->q, qsize, ei, imax, slots, e->ram, RAM_PA), VQ_OK);
    assert_int_equal(e->q.SlotCount, slots);
    assert_int_equal(e->q.FreeSlotCount, slots);
    /* Parts inside the block, 16-byte aligned, not overlapping the ring. */
    assert_true((uint8_t *)e->q.Slots >= e->ram && (uint8_t *)(e->q.Slots + slots) <= e->ram + bytes);
    assert_int_equal((uintptr_t)e->q.Slots & 15, 0);
    assert_true(e->q.SlotsPa == RAM_PA + ((uint8_t *)e->q.Slots - e->ram));
    assert_true(e->q.SlotsPa >= e->q.Vq.UsedPa);
    vqd_init(&e->dev, e->ram, RAM_PA, RAM_BYTES, qsize, ei, imax != 0,
             e->q.Vq.DescPa, e->q.Vq.AvailPa, e->q.Vq.UsedPa);
    dev_init(&e->pci);
    return e;
}

static void env_free(env *e)
{
    vqd_fini(&e->dev);
    free(e->ram);
    free(e);
}

static uint64_t data_pa(env *e, size_t off) { return RAM_PA + e->data_off + off; }
static uint8_t *data_va(env *e, size_t off) { return e->ram + e->data_off + off; }

/* The request's data: n scatter/gather elements of len bytes, 8 KiB apart. The list
 * is read by VblkSubmit only, so a small rotating pool outlives every use. */
static VBLK_SG_ELEMENT sg_pool[16][VBLK_MAX_DATA_BUFFERS];
static unsigned sg_next;
static VBLK_SG_ELEMENT *set_data(VBLK_REQUEST *r, unsigned n, uint64_t pa0, uint32_t len)
{
    VBLK_SG_ELEMENT *sg = sg_pool[sg_next++ % 16];
    assert_true(n <= VBLK_MAX_DATA_BUFFERS);
    for (unsigned i = 0; i < n; i++) {
        sg[i].PhysicalAddress = pa0 + (uint64_t)i * 8192;
        sg[i].Length = len;
        sg[i].Reserved = 0;
    }
    r->Data = sg;
    r->DataElements = n;
    r->DataBytes = n * len;
    return sg;
}

typedef struct hdr { uint32_t type, ioprio; uint64_t sector; } hdr;

/* Device side of spec 5.2.6: checks the layout of pending[i], fills IN data with
 * `fill`, copies GET_ID, writes `status` (unless `status` < 0), completes. */
static void blk_device_complete(env *e, size_t i, int status, uint8_t fill, hdr *seen,
                                uint8_t *payload_seen, size_t *payload_len)
{
    vqd_req *r = &e->dev.pending[i];
    hdr h;
    assert_true(r->nelem >= 2);
    assert_false(r->elem[0].write);
    assert_int_equal(r->elem[0].len, 16);
    memcpy(&h, vqd_ptr(&e->dev, r->elem[0].pa, 16), 16);
    assert_int_equal(h.ioprio, 0);
    vqd_elem *st = &r->elem[r->nelem - 1];
    assert_true(st->write);
    assert_int_equal(st->len, 1);
    uint8_t *stp = vqd_ptr(&e->dev, st->pa, 1);
    assert_int_equal(*stp, VBLK_STATUS_SENTINEL);       /* pre-set by the driver */
    for (unsigned k = 1; k + 1 < r->nelem; k++) {
        vqd_elem *el = &r->elem[k];
        uint8_t *p = vqd_ptr(&e->dev, el->pa, el->len);
        if (h.type == VIRTIO_BLK_T_IN) { assert_true(el->write); memset(p, fill, el->len); }
        else if (h.type == VIRTIO_BLK_T_GET_ID) {
            assert_true(el->write);
            assert_int_equal(el->len, VIRTIO_BLK_ID_BYTES);
            memcpy(p, "SERIAL-0123456789ABC", 20);
        } else {
            assert_false(el->write);
            if (payload_seen) { memcpy(payload_seen, p, el->len); *payload_len = el->len; }
        }
    }
    if (seen) *seen = h;
    if (status >= 0) *stp = (uint8_t)status;
    vqd_complete(&e->dev, i, 0);                         /* used.len 0, like Aero */
}

static void init_req(VBLK_REQUEST *r, uint32_t type)
{
    memset(r, 0, sizeof(*r));
    r->Type = type;
}

/* ---------------------------------------------------------------- queue tests */

static void test_memory_layout(void **s)
{
    (void)s;
    ULONG a = VblkQueueMemoryBytes(128, FALSE, 0, 128);
    ULONG b = VblkQueueMemoryBytes(128, FALSE, 131, 128);
    ULONG c = VblkQueueMemoryBytes(128, FALSE, 0, 2);
    assert_true(a >= VqRingBytes(128, FALSE) + VqStateBytes(128) + 128 * sizeof(VBLK_REQUEST_DMA));
    assert_true(b >= a + VqIndirectBytes(128, 131));
    assert_true(c < a);
    assert_true(c >= VqRingBytes(128, FALSE) + 2 * sizeof(VBLK_REQUEST_DMA));
    assert_int_equal(VblkQueueMemoryBytes(100, FALSE, 0, 100), 0);   /* not a power of two */
    assert_int_equal(VblkQueueMemoryBytes(128, FALSE, 0, 0), 0);
    assert_int_equal(VblkQueueMemoryBytes(128, FALSE, 0, 129), 0);
    VBLK_QUEUE q;
    uint8_t *mem = aligned_alloc(4096, 1 << 20);
    assert_int_equal(VblkQueueInit(&q, 128, FALSE, 0, 128, mem + 8, RAM_PA + 8), VQ_INVALID);
    assert_int_equal(VblkQueueInit(&q, 128, FALSE, 0, 0, mem, RAM_PA), VQ_INVALID);
    assert_int_equal(VblkQueueInit(&q, 128, TRUE, 131, 64, mem, RAM_PA), VQ_OK);
    free(mem);
}

static void test_read_write_roundtrip(void **s)
{
    (void)s;
    for (int indirect = 0; indirect < 2; indirect++) {
        env *e = env_new(16, indirect, indirect ? 8 : 0, 16);
        VBLK_REQUEST rd, wr;
        hdr h;
        init_req(&rd, VIRTIO_BLK_T_IN);
        rd.Sector = 0x123456789AULL;
        set_data(&rd, 3, data_pa(e, 0), 4096);
        assert_int_equal(VblkSubmit(&e->q, &rd), VQ_OK);
        init_req(&wr, VIRTIO_BLK_T_OUT);
        wr.Sector = 8;
        set_data(&wr, 2, data_pa(e, 64 * 1024), 512);
        memset(data_va(e, 64 * 1024), 0x5C, 512);
        assert_int_equal(VblkSubmit(&e->q, &wr), VQ_OK);
        assert_int_equal(e->q.Stats.InFlight, 2);
        assert_true(VblkKickPrepare(&e->q));
        VblkNotify(&e->q, &e->pci);
        assert_int_equal(mmio.notifies, 1);
        assert_int_equal(mmio.notify, 0);
        assert_int_equal(vqd_fetch(&e->dev), 2);
        assert_int_equal(e->dev.pending[0].nelem, 5);     /* hdr + 3 data + status */
        assert_int_equal(e->dev.pending[0].indirect, indirect);
        blk_device_complete(e, 0, VIRTIO_BLK_S_OK, 0x77, &h, NULL, NULL);
        assert_int_equal(h.type, VIRTIO_BLK_T_IN);
        assert_true(h.sector == 0x123456789AULL);
        blk_device_complete(e, 0, VIRTIO_BLK_S_OK, 0, &h, NULL, NULL);
        assert_int_equal(h.type, VIRTIO_BLK_T_OUT);
        assert_true(h.sector == 8);
        vqd_publish(&e->dev);
        VBLK_REQUEST *c1 = VblkNextCompleted(&e->q);
        VBLK_REQUEST *c2 = VblkNextCompleted(&e->q);
        assert_ptr_equal(c1, &rd);
        assert_ptr_equal(c2, &wr);
        assert_null(VblkNextCompleted(&e->q));
        assert_int_equal(rd.Status, VIRTIO_BLK_S_OK);
        assert_int_equal(wr.Status, VIRTIO_BLK_S_OK);
        assert_int_equal(data_va(e, 0)[0], 0x77);
        assert_int_equal(data_va(e, 2 * 8192 + 4095)[0], 0x77);
        assert_true(e->q.Stats.Submitted[0] == 1 && e->q.Stats.Submitted[1] == 1);
        assert_true(e->q.Stats.Completed[0] == 1 && e->q.Stats.Completed[1] == 1);
        assert_true(e->q.Stats.BytesRead == 3 * 4096);
        assert_true(e->q.Stats.BytesWritten == 2 * 512);
        assert_int_equal(e->q.Stats.InFlight, 0);
        assert_int_equal(e->q.Stats.MaxInFlight, 2);
        assert_int_equal(e->q.FreeSlotCount, 16);
        env_free(e);
    }
}

static void test_status_mapping(void **s)
{
    (void)s;
    env *e = env_new(8, false, 4, 8);
    static const struct { int dev; UCHAR want; } cases[] = {
        { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK }, { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR },
        { VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_UNSUPP }, { -1, VIRTIO_BLK_S_IOERR },  /* sentinel left */
        { 7, VIRTIO_BLK_S_IOERR }, { 0xFE, VIRTIO_BLK_S_IOERR },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VBLK_REQUEST r;
        init_req(&r, VIRTIO_BLK_T_FLUSH);
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_OK);
        VblkKickPrepare(&e->q);
        assert_int_equal(vqd_fetch(&e->dev), 1);
        assert_int_equal(e->dev.pending[0].nelem, 2);    /* header + status */
        blk_device_complete(e, 0, cases[i].dev, 0, NULL, NULL, NULL);
        vqd_publish(&e->dev);
        assert_ptr_equal(VblkNextCompleted(&e->q), &r);
        assert_int_equal(r.Status, cases[i].want);
    }
    assert_int_equal(e->q.Stats.ErrorsIoErr, 1);
    assert_int_equal(e->q.Stats.ErrorsUnsupported, 1);
    assert_int_equal(e->q.Stats.ErrorsNoStatus, 1);
    assert_int_equal(e->q.Stats.ErrorsBadStatus, 2);
    assert_true(e->q.Stats.Completed[2] == 6);
    env_free(e);
}

static void test_slots_exhaustion(void **s)
{
    (void)s;
    env *e = env_new(8, false, 4, 2);          /* dump-mode shape: 2 slots */
    VBLK_REQUEST r[3];
    for (int i = 0; i < 3; i++) init_req(&r[i], VIRTIO_BLK_T_FLUSH);
    assert_int_equal(VblkSubmit(&e->q, &r[0]), VQ_OK);
    assert_int_equal(VblkSubmit(&e->q, &r[1]), VQ_OK);
    assert_int_equal(VblkSubmit(&e->q, &r[2]), VQ_FULL);
    assert_true(r[0].Slot != r[1].Slot);
    VblkKickPrepare(&e->q);
    assert_int_equal(vqd_fetch(&e->dev), 2);
    blk_device_complete(e, 0, 0, 0, NULL, NULL, NULL);
    vqd_publish(&e->dev);
    assert_ptr_equal(VblkNextCompleted(&e->q), &r[0]);
    assert_int_equal(VblkSubmit(&e->q, &r[2]), VQ_OK);
    assert_int_equal(r[2].Slot, r[0].Slot);
    env_free(e);

    /* Ring exhaustion with direct chains: 4 descriptors, 3 per request. */
    e = env_new(4, false, 0, 4);
    VBLK_REQUEST a, b;
    init_req(&a, VIRTIO_BLK_T_IN); set_data(&a, 1, data_pa(e, 0), 512);
    init_req(&b, VIRTIO_BLK_T_IN); set_data(&b, 1, data_pa(e, 4096), 512);
    assert_int_equal(VblkSubmit(&e->q, &a), VQ_OK);
    assert_int_equal(VblkSubmit(&e->q, &b), VQ_FULL);
    assert_int_equal(e->q.FreeSlotCount, 3);          /* failed submit keeps its slot free */
    assert_int_equal(e->q.Stats.InFlight, 1);
    assert_true(e->q.Stats.Submitted[0] == 1);
    env_free(e);
}

static void test_get_id_and_discard_payload(void **s)
{
    (void)s;
    env *e = env_new(8, false, 8, 8);
    VBLK_REQUEST id, dz;
    uint8_t seen[VBLK_PAYLOAD_BYTES]; size_t seen_len = 0;
    hdr h;
    init_req(&id, VIRTIO_BLK_T_GET_ID);
    id.PayloadLength = VIRTIO_BLK_ID_BYTES;
    memset(id.Payload, 0xEE, sizeof(id.Payload));
    assert_int_equal(VblkSubmit(&e->q, &id), VQ_OK);
    init_req(&dz, VIRTIO_BLK_T_DISCARD);
    dz.Sector = 99;                                   /* unused for discard: sent as 0 */
    dz.PayloadLength = 32;
    for (int i = 0; i < 32; i++) dz.Payload[i] = (UCHAR)(i * 3 + 1);
    assert_int_equal(VblkSubmit(&e->q, &dz), VQ_OK);
    VblkKickPrepare(&e->q);
    assert_int_equal(vqd_fetch(&e->dev), 2);
    assert_int_equal(e->dev.pending[0].nelem, 3);
    blk_device_complete(e, 0, 0, 0, &h, NULL, NULL);
    assert_int_equal(h.type, VIRTIO_BLK_T_GET_ID);
    blk_device_complete(e, 0, 0, 0, &h, seen, &seen_len);
    assert_int_equal(h.type, VIRTIO_BLK_T_DISCARD);
    assert_true(h.sector == 0);
    assert_int_equal(seen_len, 32);
    assert_memory_equal(seen, dz.Payload, 32);
    vqd_publish(&e->dev);
    assert_ptr_equal(VblkNextCompleted(&e->q), &id);
    assert_memory_equal(id.Payload, "SERIAL-0123456789ABC", 20);
    assert_ptr_equal(VblkNextCompleted(&e->q), &dz);
    assert_true(e->q.Stats.Completed[5] == 1 && e->q.Stats.Completed[3] == 1);

    /* GET_ID failing: the payload is not copied back. */
    init_req(&id, VIRTIO_BLK_T_GET_ID);
    id.PayloadLength = VIRTIO_BLK_ID_BYTES;
    assert_int_equal(VblkSubmit(&e->q, &id), VQ_OK);
    VblkKickPrepare(&e->q);
    vqd_fetch(&e->dev);
    blk_device_complete(e, 0, VIRTIO_BLK_S_UNSUPP, 0, NULL, NULL, NULL);
    vqd_publish(&e->dev);
    assert_ptr_equal(VblkNextCompleted(&e->q), &id);
    assert_int_equal(id.Status, VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(id.Payload[0], 0);
    env_free(e);
}

/* Payload blocks are a pool of VBLK_PAYLOAD_SLOTS, apart from the per-slot header
 * blocks: one more payload request than that is VQ_FULL (nothing taken), and a
 * completion frees its block for the next one; each request's segments are its own. */
static void test_payload_pool(void **s)
{
    (void)s;
    env *e = env_new(32, false, 8, 32);
    VBLK_REQUEST r[VBLK_PAYLOAD_SLOTS + 1];
    uint8_t seen[VBLK_PAYLOAD_BYTES]; size_t seen_len = 0;
    hdr h;
    for (int i = 0; i <= VBLK_PAYLOAD_SLOTS; i++) {
        init_req(&r[i], VIRTIO_BLK_T_DISCARD);
        r[i].PayloadLength = 16;
        memset(r[i].Payload, 0x10 + i, 16);
    }
    for (int i = 0; i < VBLK_PAYLOAD_SLOTS; i++) assert_int_equal(VblkSubmit(&e->q, &r[i]), VQ_OK);
    assert_int_equal(VblkSubmit(&e->q, &r[VBLK_PAYLOAD_SLOTS]), VQ_FULL);
    assert_int_equal(e->q.FreeSlotCount, 32 - VBLK_PAYLOAD_SLOTS);   /* the refused one took nothing */
    VblkKickPrepare(&e->q);
    assert_int_equal(vqd_fetch(&e->dev), VBLK_PAYLOAD_SLOTS);
    unsigned mask = 0;
    for (int i = 0; i < VBLK_PAYLOAD_SLOTS; i++) {
        blk_device_complete(e, 0, 0, 0, &h, seen, &seen_len);
        assert_int_equal(seen_len, 16);
        assert_true(seen[0] >= 0x10 && seen[0] < 0x10 + VBLK_PAYLOAD_SLOTS);
        for (int k = 1; k < 16; k++) assert_int_equal(seen[k], seen[0]);   /* one request's segments */
        mask |= 1u << (seen[0] - 0x10);
    }
    assert_int_equal(mask, (1u << VBLK_PAYLOAD_SLOTS) - 1);             /* each its own block */
    vqd_publish(&e->dev);
    VBLK_REQUEST *done = VblkNextCompleted(&e->q);
    assert_true(done >= &r[0] && done < &r[VBLK_PAYLOAD_SLOTS]);
    assert_int_equal(VblkSubmit(&e->q, &r[VBLK_PAYLOAD_SLOTS]), VQ_OK);
    VblkKickPrepare(&e->q);
    assert_int_equal(vqd_fetch(&e->dev), 1);
    blk_device_complete(e, 0, 0, 0, &h, seen, &seen_len);
    assert_int_equal(seen[0], 0x10 + VBLK_PAYLOAD_SLOTS);
    env_free(e);
}

static void test_invalid_shapes(void **s)
{
    (void)s;
    env *e = env_new(8, false, 8, 8);
    VBLK_REQUEST r;
    VBLK_SG_ELEMENT *sg;
    init_req(&r, VIRTIO_BLK_T_IN);                                              /* no data */
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_OUT); set_data(&r, 1, data_pa(e, 0), 512);
    r.Data = NULL;                                                              /* bytes, no list */
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_IN); set_data(&r, 2, data_pa(e, 0), 512);
    r.DataBytes = 1025;                                                         /* list too short */
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_IN); sg = set_data(&r, 2, data_pa(e, 0), 512);
    sg[0].Length = 0; r.DataBytes = 512;                                        /* 0-length element: */
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_OK);                            /* skipped, not refused */
    init_req(&r, VIRTIO_BLK_T_FLUSH); set_data(&r, 1, data_pa(e, 0), 512);
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_GET_ID); r.PayloadLength = 19;
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_DISCARD); r.PayloadLength = 24;
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_DISCARD); r.PayloadLength = VBLK_PAYLOAD_BYTES + 16;
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    init_req(&r, VIRTIO_BLK_T_DISCARD); r.PayloadLength = 16; set_data(&r, 1, data_pa(e, 0), 512);
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);                       /* data on a discard */
    init_req(&r, 77);
    assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);
    assert_int_equal(e->q.FreeSlotCount, 7);
    assert_int_equal(VqInFlight(&e->q.Vq), 1);
    env_free(e);
}

/* The device's data limits (spec 5.2.4): seg_max (DataBuffersMax) refuses a request
 * needing more buffers, size_max (BufferBytesMax) cuts each element; the device sees
 * exactly the cut pieces, in order, device-writable for a read. */
static void test_data_limits(void **s)
{
    (void)s;
    for (int indirect = 0; indirect < 2; indirect++) {
        env *e = env_new(64, indirect, indirect ? 16 : 0, 16);
        VBLK_REQUEST r;
        VblkQueueSetLimits(&e->q, 4, VQ_NO_BUFFER_LIMIT);
        init_req(&r, VIRTIO_BLK_T_IN); set_data(&r, 5, data_pa(e, 0), 512);
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);                   /* 5 > seg_max 4 */
        init_req(&r, VIRTIO_BLK_T_IN); set_data(&r, 4, data_pa(e, 0), 512);
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_OK);
        VblkQueueSetLimits(&e->q, 11, 1024);
        init_req(&r, VIRTIO_BLK_T_IN); set_data(&r, 3, data_pa(e, 0), 4096);  /* 12 pieces of 1 KiB */
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_INVALID);                   /* > 11 */
        VblkQueueSetLimits(&e->q, 12, 1024);
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_OK);
        init_req(&r, VIRTIO_BLK_T_OUT); set_data(&r, 2, data_pa(e, 0), 3000);  /* 3 + 3 pieces */
        assert_int_equal(VblkSubmit(&e->q, &r), VQ_OK);
        assert_true(VblkKickPrepare(&e->q));
        assert_int_equal(vqd_fetch(&e->dev), 3);
        assert_int_equal(e->dev.pending[1].nelem, 14);
        {
            vqd_req *d = &e->dev.pending[2];
            static const uint32_t want[] = { 1024, 1024, 952, 1024, 1024, 952 };
            assert_int_equal(d->nelem, 8);
            assert_int_equal(d->indirect, indirect);
            for (unsigned k = 0; k < 6; k++) {
                assert_int_equal(d->elem[1 + k].len, want[k]);
                assert_false(d->elem[1 + k].write);
                assert_true(d->elem[1 + k].pa == data_pa(e, (k / 3) * 8192 + (k % 3) * 1024));
            }
            assert_true(d->elem[7].write && d->elem[7].len == 1);
        }
        env_free(e);
    }
}

static void test_detach_after_reset(void **s)
{
    (void)s;
    env *e = env_new(8, false, 8, 4);
    VBLK_REQUEST r[3];
    for (int i = 0; i < 3; i++) {
        init_req(&r[i], VIRTIO_BLK_T_FLUSH);
        assert_int_equal(VblkSubmit(&e->q, &r[i]), VQ_OK);
    }
    int seen = 0;
    VBLK_REQUEST *d;
    while ((d = VblkDetachNext(&e->q)) != NULL) {
        assert_true(d >= r && d < r + 3);
        assert_int_equal(d->Status, VBLK_STATUS_RESET);
        seen++;
    }
    assert_int_equal(seen, 3);
    assert_int_equal(e->q.FreeSlotCount, 4);
    assert_int_equal(e->q.Stats.InFlight, 0);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wanted_features),
        cmocka_unit_test(test_config_all_fields),
        cmocka_unit_test(test_config_only_negotiated),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_config_generation),
        cmocka_unit_test(test_set_writeback),
        cmocka_unit_test(test_memory_layout),
        cmocka_unit_test(test_read_write_roundtrip),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_slots_exhaustion),
        cmocka_unit_test(test_get_id_and_discard_payload),
        cmocka_unit_test(test_payload_pool),
        cmocka_unit_test(test_invalid_shapes),
        cmocka_unit_test(test_data_limits),
        cmocka_unit_test(test_detach_after_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
