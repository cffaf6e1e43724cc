/*
 * Unit tests of driver/virtio_pci.c against the in-process contract device
 * (sim/contract_dev.c): both layouts, malformed devices, and a full request round
 * trip through a hand-built split ring, checked against the image file.
 *
 * This file plays "firmware + Windows PCI bus driver": it sizes and assigns the
 * BARs, enables memory/bus mastering and MSI-X, and maps each BAR at a fake VA
 * window (PROT_NONE, so a direct dereference by the driver would crash) that
 * AvHostMmioRead/Write translate to the BAR's guest-physical address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>

#include "virtio_pci.h"
#include "contract_dev.h"

/* ---- MMIO hooks and fake BAR mappings -------------------------------------------- */
typedef struct window { volatile UCHAR *va; uint64_t gpa, len; } window;
static window g_win[6];
static sim_dev *g_dev;
static unsigned g_mmio_reads, g_mmio_writes;

static uint64_t va_to_gpa(volatile void *reg, unsigned width)
{
    for (int i = 0; i < 6; i++) {
        window *w = &g_win[i];
        if (w->va && (volatile UCHAR *)reg >= w->va &&
            (uint64_t)((volatile UCHAR *)reg - w->va) + width <= w->len)
            return w->gpa + (uint64_t)((volatile UCHAR *)reg - w->va);
    }
    fail_msg("MMIO access at %p (width %u) outside every mapped BAR", (void *)reg, width);
    return 0;
}

unsigned int NTAPI AvHostMmioRead(volatile void *Register, unsigned int Width)
{
    g_mmio_reads++;
    assert_true(Width == 1 || Width == 2 || Width == 4);
    return g_dev->ops->mmio_read(g_dev, va_to_gpa(Register, Width), Width);
}

void NTAPI AvHostMmioWrite(volatile void *Register, unsigned int Width, unsigned int Value)
{
    g_mmio_writes++;
    assert_true(Width == 1 || Width == 2 || Width == 4);
    g_dev->ops->mmio_write(g_dev, va_to_gpa(Register, Width), Width, Value);
}

/* ---- fixture ----------------------------------------------------------------------- */
#define RAM_SIZE   (16u << 20)
#define DISK_SIZE  (8u << 20)
#define RING_GPA   0x100000u       /* desc table */
#define AVAIL_GPA  0x102000u
#define USED_GPA   0x104000u
#define INDIR_GPA  0x106000u
#define HDR_GPA    0x108000u
#define STATUS_GPA 0x108100u
#define MSI_GPA    0x109000u       /* MSI-X targets: vector v at MSI_GPA + 4v */
#define DATA_GPA   0x200000u
#define DATA2_GPA  0x400000u

typedef struct fixture {
    sim_dev *dev;
    char path[64];
    uint64_t bar_gpa[6], bar_len[6];
    UCHAR config[256];
    VPCI_DEVICE vdev;
    unsigned stall_calls;
    unsigned long stall_total_us;
    unsigned long stall_max_us;
    /* ring (test as the driver) */
    USHORT qsize;
    USHORT avail_idx, used_seen;
} fixture;

static fixture *g_fx;

static void count_stall(ULONG us)
{
    g_fx->stall_calls++;
    g_fx->stall_total_us += us;
    if (us > g_fx->stall_max_us) g_fx->stall_max_us = us;
}

static uint32_t cfg_r(fixture *f, unsigned off, unsigned w) { return f->dev->ops->cfg_read(f->dev, off, w); }
static void cfg_w(fixture *f, unsigned off, unsigned w, uint32_t v) { f->dev->ops->cfg_write(f->dev, off, w, v); }

/* Firmware: size each BAR (write ones, read the mask), assign it above RAM. */
static void assign_bars(fixture *f)
{
    uint64_t next = f->dev->mmio_window_base;
    for (unsigned i = 0; i < 6; i++) {
        unsigned reg = 0x10 + 4 * i;
        uint32_t orig = cfg_r(f, reg, 4), lo;
        uint64_t mask, size;
        bool is64;
        if (orig & 1)
            continue;
        cfg_w(f, reg, 4, 0xFFFFFFFF);
        lo = cfg_r(f, reg, 4);
        if ((lo & ~0xFu) == 0)
            continue;                                   /* unimplemented */
        is64 = (lo & 6) == 4;
        mask = lo & ~0xFull;
        if (is64) {
            cfg_w(f, reg + 4, 4, 0xFFFFFFFF);
            mask |= (uint64_t)cfg_r(f, reg + 4, 4) << 32;
        } else {
            mask |= 0xFFFFFFFF00000000ull;
        }
        size = ~mask + 1;
        next = (next + size - 1) & ~(size - 1);
        cfg_w(f, reg, 4, (uint32_t)next);
        if (is64)
            cfg_w(f, reg + 4, 4, (uint32_t)(next >> 32));
        f->bar_gpa[i] = next;
        f->bar_len[i] = size;
        next += size;
        if (is64)
            i++;
    }
    cfg_w(f, 0x04, 2, 0x0006);                          /* memory space + bus master */
}

static fixture *fx_create(const char *opts)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256] = "";
    sim_dev_config c;
    int fd;
    assert_non_null(f);
    strcpy(f->path, "/tmp/h3-vpci-XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);                                          /* empty: the device sizes it */
    memset(&c, 0, sizeof(c));
    c.disk_path = f->path;
    c.disk_size = DISK_SIZE;
    c.device_opts = opts;
    c.ram_size = RAM_SIZE;
    f->dev = sim_contract_create(&c, err, sizeof(err));
    if (!f->dev)
        fail_msg("sim_contract_create(%s): %s", opts, err);
    g_dev = f->dev;
    g_fx = f;
    memset(g_win, 0, sizeof(g_win));
    assign_bars(f);
    for (unsigned off = 0; off < 256; off += 4) {
        uint32_t v = cfg_r(f, off, 4);
        memcpy(&f->config[off], &v, 4);
    }
    f->vdev.StallMicroseconds = count_stall;
    return f;
}

static void fx_destroy(fixture *f)
{
    for (int i = 0; i < 6; i++)
        if (g_win[i].va)
            munmap((void *)g_win[i].va, g_win[i].len);
    memset(g_win, 0, sizeof(g_win));
    f->dev->ops->destroy(f->dev);
    unlink(f->path);
    g_dev = NULL;
    if (g_fx == f)
        g_fx = NULL;
    free(f);
}

/* Runs after every test, also after a failed assertion: nothing leaks, no device
 * thread outlives its test. */
static int fx_teardown(void **state)
{
    (void)state;
    if (g_fx)
        fx_destroy(g_fx);
    return 0;
}

/* The glue's job: map each needed BAR (matched by address) and hand the VA over. */
static VPCI_STATUS fx_map(fixture *f)
{
    for (int i = 0; i < 6; i++) {
        VPCI_BAR *b = &f->vdev.Bars[i];
        if (!b->Needed)
            continue;
        assert_int_equal(b->Address, f->bar_gpa[i]);
        void *va = mmap(NULL, f->bar_len[i], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(va != MAP_FAILED);
        g_win[i].va = va;
        g_win[i].gpa = f->bar_gpa[i];
        g_win[i].len = f->bar_len[i];
        b->Va = va;
        b->MappedLength = (ULONG)f->bar_len[i];
    }
    return VpciMapRegions(&f->vdev);
}

static VPCI_STATUS fx_parse(fixture *f)
{
    return VpciParseConfig(&f->vdev, f->config, sizeof(f->config));
}

static void fx_parse_map_ok(fixture *f)
{
    assert_int_equal(fx_parse(f), VPCI_OK);
    assert_int_equal(fx_map(f), VPCI_OK);
}

static void *ram(fixture *f, uint64_t gpa) { return f->dev->ram + gpa; }

/* PCI-bus-driver part of MSI-X: entries point into RAM, enable bit set. */
static void fx_enable_msix(fixture *f)
{
    unsigned cap = f->vdev.MsixCapOffset;
    uint32_t tbl = cfg_r(f, cap + 4, 4);
    uint64_t base = f->bar_gpa[tbl & 7] + (tbl & ~7u);
    assert_int_not_equal(cap, 0);
    for (unsigned v = 0; v < f->vdev.MsixTableSize; v++) {
        f->dev->ops->mmio_write(f->dev, base + 16 * v + 0, 4, MSI_GPA + 4 * v);
        f->dev->ops->mmio_write(f->dev, base + 16 * v + 4, 4, 0);
        f->dev->ops->mmio_write(f->dev, base + 16 * v + 8, 4, 0xA000 + v);
        f->dev->ops->mmio_write(f->dev, base + 16 * v + 12, 4, 0);
    }
    cfg_w(f, cap + 2, 2, 0x8000 | (cfg_r(f, cap + 2, 2) & 0x7FF));
}

static uint32_t msi_word(fixture *f, unsigned v)
{
    return __atomic_load_n((uint32_t *)ram(f, MSI_GPA + 4 * v), __ATOMIC_SEQ_CST);
}

#define WANTED_FEATURES ((1ull << 32) | (1ull << 28) | (1ull << 29) | (1ull << 2) | (1ull << 6) | (1ull << 9))

/* Spec 3.1.1 init as the adapter glue does it. Returns the negotiated features. */
static uint64_t fx_init(fixture *f, bool msix)
{
    ULONGLONG neg = 0;
    USHORT qs = 128;
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_OK);
    memset(ram(f, RING_GPA), 0, 0x8000);
    if (msix)
        fx_enable_msix(f);
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA,
                                    msix ? 1 : VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    assert_int_equal(VpciSetConfigVector(&f->vdev, msix ? 0 : VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    assert_int_equal(VpciAddStatusChecked(&f->vdev, VIRTIO_STATUS_DRIVER_OK), VPCI_OK);
    f->qsize = qs;
    f->avail_idx = f->used_seen = 0;
    return neg;
}

/* ---- ring helpers (the test acts as the virtqueue layer) --------------------------- */
typedef struct tdesc { uint64_t addr; uint32_t len; uint16_t flags, next; } tdesc;

static void put_desc(void *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    tdesc d = { addr, len, flags, next };
    memcpy((uint8_t *)table + 16 * i, &d, 16);
}

static uint16_t used_idx(fixture *f)
{
    return __atomic_load_n((uint16_t *)ram(f, USED_GPA + 2), __ATOMIC_ACQUIRE);
}

/* Publishes head 0 and rings the doorbell; waits (bounded) for the device. */
static void kick_head(fixture *f, uint16_t head, bool wait)
{
    uint16_t *avail = ram(f, AVAIL_GPA);
    avail[2 + f->avail_idx % f->qsize] = head;
    f->avail_idx++;
    __atomic_store_n(&avail[1], f->avail_idx, __ATOMIC_RELEASE);
    VpciNotifyQueue(&f->vdev, 0);
    if (wait)
        assert_int_equal(sim_contract_wait_idle(f->dev, 5000), 0);
}

/* One request: header | data (optional) | status. Returns the status byte, or 0xEE
 * when no used entry appeared. Checks used.id == head and used.len == 0. */
static uint8_t do_request(fixture *f, uint32_t type, uint64_t sector, uint64_t data_gpa,
                          uint32_t data_len, bool indirect)
{
    uint32_t hdr[4] = { type, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };
    bool in = type == 0;
    void *table = indirect ? ram(f, INDIR_GPA) : ram(f, RING_GPA);
    unsigned n = 0;
    memcpy(ram(f, HDR_GPA), hdr, 16);
    *(uint8_t *)ram(f, STATUS_GPA) = 0xEE;
    put_desc(table, n, HDR_GPA, 16, 1, (uint16_t)(n + 1)); n++;
    if (data_len) { put_desc(table, n, data_gpa, data_len, (uint16_t)(1 | (in ? 2 : 0)), (uint16_t)(n + 1)); n++; }
    put_desc(table, n, STATUS_GPA, 1, 2, 0); n++;
    if (indirect)
        put_desc(ram(f, RING_GPA), 0, INDIR_GPA, 16 * n, 4, 0);
    kick_head(f, 0, true);
    if (used_idx(f) == f->used_seen)
        return 0xEE;
    uint32_t *elem = ram(f, USED_GPA + 4 + 8 * (f->used_seen % f->qsize));
    assert_int_equal(elem[0], 0);         /* id = head */
    assert_int_equal(elem[1], 0);         /* contract: used.len = 0 */
    f->used_seen++;
    return *(uint8_t *)ram(f, STATUS_GPA);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

static uint64_t stat_bugs(fixture *f)
{
    sim_contract_stats st;
    assert_int_equal(sim_contract_get_stats(f->dev, &st), 0);
    return st.driver_bugs;
}


/* Config space of a real QEMU 7.2 `-device virtio-blk-pci,disable-legacy=on` (and
 * with vectors=0), captured over qtest (inl 0xcfc) before BAR assignment: the parser
 * must accept the real device, not just our model of it. */
static const UCHAR g_qemu72_config[256] = {
    0xf4, 0x1a, 0x42, 0x10, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x00, 0x11,
    0x00, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x09, 0x00, 0x10, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x40, 0x10, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x50, 0x10, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x60, 0x14, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x09, 0x70, 0x14, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x84, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const UCHAR g_qemu72_config_vectors0[256] = {
    0xf4, 0x1a, 0x42, 0x10, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x00, 0x11,
    0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x09, 0x00, 0x10, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x40, 0x10, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x50, 0x10, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x09, 0x60, 0x14, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x09, 0x70, 0x14, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void test_real_qemu_config(void **state)
{
    (void)state;
    VPCI_DEVICE v;
    memset(&v, 0, sizeof(v));
    assert_int_equal(VpciParseConfig(&v, g_qemu72_config, 256), VPCI_OK);
    assert_int_equal(v.Revision, 1);
    assert_int_equal(v.MsixCapOffset, 0x98);
    assert_int_equal(v.MsixTableSize, 2);
    assert_int_equal(v.NotifyOffMultiplier, 4);
    assert_true(v.Bars[4].Needed && v.Bars[4].Is64Bit);
    assert_int_equal(v.CommonRegion.Offset, 0x0000);
    assert_int_equal(v.IsrRegion.Offset, 0x1000);
    assert_int_equal(v.DeviceRegion.Offset, 0x2000);
    assert_int_equal(v.NotifyRegion.Offset, 0x3000);
    assert_int_equal(v.NotifyRegion.Length, 0x1000);
    memset(&v, 0, sizeof(v));
    assert_int_equal(VpciParseConfig(&v, g_qemu72_config_vectors0, 256), VPCI_OK);
    assert_int_equal(v.MsixCapOffset, 0);          /* vectors=0: no MSI-X capability */
    /* Our model's qemu layout presents the same capability chain byte for byte. */
    fixture *f = fx_create("layout=qemu");
    for (unsigned off = 0x40; off < 0xA4; off++)
        if (f->config[off] != g_qemu72_config[off])
            fail_msg("config byte 0x%x: model 0x%02x, QEMU 0x%02x", off, f->config[off], g_qemu72_config[off]);
    fx_destroy(f);
}

/* ---- layout tests ------------------------------------------------------------------ */
static void test_aero_layout(void **state)
{
    (void)state;
    fixture *f = fx_create("");
    fx_parse_map_ok(f);
    VPCI_DEVICE *v = &f->vdev;
    assert_int_equal(v->Revision, 1);
    assert_int_equal(v->InterruptPin, 1);
    assert_true(v->Bars[0].IsMemory && v->Bars[0].Is64Bit && v->Bars[0].Needed);
    for (int i = 1; i < 6; i++) assert_false(v->Bars[i].Needed);
    assert_int_equal(v->CommonRegion.Bar, 0); assert_int_equal(v->CommonRegion.Offset, 0x0000);
    assert_int_equal(v->NotifyRegion.Bar, 0); assert_int_equal(v->NotifyRegion.Offset, 0x1000);
    assert_int_equal(v->IsrRegion.Bar, 0);    assert_int_equal(v->IsrRegion.Offset, 0x2000);
    assert_int_equal(v->DeviceRegion.Bar, 0); assert_int_equal(v->DeviceRegion.Offset, 0x3000);
    assert_int_equal(v->NotifyOffMultiplier, 4);
    assert_int_equal(v->MsixTableSize, 2);
    assert_ptr_equal(v->Isr, v->Bars[0].Va + 0x2000);
    fx_destroy(f);
}

static void test_qemu_layout(void **state)
{
    (void)state;
    fixture *f = fx_create("layout=qemu");
    fx_parse_map_ok(f);
    VPCI_DEVICE *v = &f->vdev;
    assert_true(v->Bars[4].Is64Bit && v->Bars[4].Needed);
    assert_false(v->Bars[0].Needed);
    assert_false(v->Bars[1].Needed);         /* MSI-X table BAR: Windows programs it */
    assert_true(v->Bars[1].IsMemory && !v->Bars[1].Is64Bit);
    assert_int_equal(v->CommonRegion.Bar, 4); assert_int_equal(v->CommonRegion.Offset, 0x0000);
    assert_int_equal(v->IsrRegion.Offset, 0x1000);
    assert_int_equal(v->DeviceRegion.Offset, 0x2000);
    assert_int_equal(v->NotifyRegion.Offset, 0x3000);
    assert_int_equal(v->MsixTableSize, 2);
    fx_destroy(f);
}

static void check_init(const char *opts, bool msix)
{
    fixture *f = fx_create(opts);
    fx_parse_map_ok(f);
    uint64_t neg = fx_init(f, msix);
    /* Contract: VERSION_1, INDIRECT_DESC, SEG_MAX, BLK_SIZE, FLUSH; never EVENT_IDX. */
    assert_int_equal(neg, (1ull << 32) | (1ull << 28) | (1ull << 2) | (1ull << 6) | (1ull << 9));
    assert_int_equal(VpciReadDriverFeatures(&f->vdev), neg);
    assert_int_equal(VpciGetStatus(&f->vdev), 0x0F);
    assert_int_equal(f->qsize, 128);
    assert_int_equal(f->vdev.QueueSizeInUse, 128);
    assert_int_equal(VpciNumQueues(&f->vdev), 1);
    assert_ptr_equal(f->vdev.QueueNotify, f->vdev.Notify);   /* queue_notify_off 0 */
    UCHAR gen = VpciConfigGeneration(&f->vdev);
    assert_int_equal(VpciConfigRead64(&f->vdev, 0x00), DISK_SIZE / 512);
    assert_int_equal(VpciConfigRead32(&f->vdev, 0x0C), 126);
    assert_int_equal(VpciConfigRead32(&f->vdev, 0x14), 512);
    assert_int_equal(VpciConfigRead32(&f->vdev, 0x08), 0);           /* size_max 0 on Aero */
    assert_true(VpciConfigStable(&f->vdev, gen));
    /* Out-of-region and misaligned config reads are refused without an access. */
    unsigned before = g_mmio_reads;
    assert_int_equal(VpciConfigRead32(&f->vdev, 0x2000), 0);
    assert_int_equal(VpciConfigRead32(&f->vdev, 0x02), 0);
    assert_int_equal(g_mmio_reads, before);
    assert_int_equal(stat_bugs(f), 0);
    fx_destroy(f);
}

static void test_init_aero_intx(void **state) { (void)state; check_init("", false); }
static void test_init_aero_msix(void **state) { (void)state; check_init("", true); }
static void test_init_qemu_intx(void **state) { (void)state; check_init("layout=qemu", false); }
static void test_init_qemu_msix(void **state) { (void)state; check_init("layout=qemu", true); }
static void test_init_no_msix_cap(void **state)
{
    (void)state;
    fixture *f = fx_create("msix=off");
    fx_parse_map_ok(f);
    assert_int_equal(f->vdev.MsixCapOffset, 0);
    fx_init(f, false);
    fx_destroy(f);
}

/* ---- malformed devices: each a clean error code ------------------------------------ */
static void expect_parse(const char *opts, VPCI_STATUS want, ULONG detail)
{
    fixture *f = fx_create(opts);
    VPCI_STATUS st = fx_parse(f);
    if (st != want || f->vdev.ErrorDetail != detail)
        fail_msg("%s: got %d (%s) detail %u value 0x%x, want %d detail %u", opts, st,
                 VpciStatusName(st), f->vdev.ErrorDetail, f->vdev.ErrorValue, want, detail);
    fx_destroy(f);
}

static void test_cap_loop(void **state)
{
    (void)state;
    expect_parse("cap_loop", VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_LOOP);
    expect_parse("cap_loop,layout=qemu", VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_LOOP);
}

static void test_short_cap_len(void **state)
{
    (void)state;
    fixture *f = fx_create("short_cap_len");
    assert_int_equal(fx_parse(f), VPCI_ERR_CAPABILITIES);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_MISSING_NOTIFY);
    assert_int_equal(f->vdev.IgnoredCapDetail, VPCI_DETAIL_CAP_LEN);
    assert_int_equal(f->vdev.IgnoredCapOffset, 0x60);
    fx_destroy(f);
}

static void test_bar6(void **state)
{
    (void)state;
    fixture *f = fx_create("bar6");
    assert_int_equal(fx_parse(f), VPCI_ERR_CAPABILITIES);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_MISSING_COMMON);
    assert_int_equal(f->vdev.IgnoredCapDetail, VPCI_DETAIL_CAP_BAR);
    fx_destroy(f);
}

static void test_range_outside_bar(void **state)
{
    (void)state;
    fixture *f = fx_create("range_outside_bar");
    VPCI_STATUS st = fx_parse(f);
    if (st != VPCI_OK)
        fail_msg("parse: %s detail %u value 0x%x", VpciStatusName(st), f->vdev.ErrorDetail, f->vdev.ErrorValue);
    assert_int_equal(fx_map(f), VPCI_ERR_BAR);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_OUTSIDE_BAR);
    assert_int_equal(f->vdev.ErrorValue, 4);         /* the device cfg region */
    fx_destroy(f);
    f = fx_create("range_outside_bar,layout=qemu");
    assert_int_equal(fx_parse(f), VPCI_OK);
    assert_int_equal(fx_map(f), VPCI_ERR_BAR);
    fx_destroy(f);
}

static void test_overlapping(void **state)
{
    (void)state;
    expect_parse("overlapping", VPCI_ERR_CAPABILITIES, VPCI_DETAIL_OVERLAP);
    expect_parse("overlapping,layout=qemu", VPCI_ERR_CAPABILITIES, VPCI_DETAIL_OVERLAP);
}

static void test_revision(void **state)
{
    (void)state;
    expect_parse("revision=0", VPCI_ERR_REVISION, VPCI_DETAIL_REVISION);
    expect_parse("revision=2", VPCI_ERR_REVISION, VPCI_DETAIL_REVISION);
    expect_parse("revision=1", VPCI_OK, VPCI_DETAIL_NONE);
}

/* Hand-corrupted config bytes for what the device model has no option for. */
static void test_config_bytes(void **state)
{
    (void)state;
    fixture *f = fx_create("");
    UCHAR c[256];
    VPCI_DEVICE v;
    memset(&v, 0, sizeof(v));
#define PARSE_EXPECT(mutation, want, detail) do { \
        memcpy(c, f->config, sizeof(c)); mutation; \
        assert_int_equal(VpciParseConfig(&v, c, sizeof(c)), want); \
        assert_int_equal(v.ErrorDetail, detail); } while (0)
    PARSE_EXPECT((void)0, VPCI_OK, VPCI_DETAIL_NONE);
    PARSE_EXPECT(c[0] = 0x86, VPCI_ERR_IDENTITY, VPCI_DETAIL_VENDOR);
    PARSE_EXPECT(c[2] = 0x01, VPCI_ERR_IDENTITY, VPCI_DETAIL_DEVICE);           /* 0x1001: transitional */
    PARSE_EXPECT(memset(c, 0xFF, sizeof(c)), VPCI_ERR_DEVICE_GONE, VPCI_DETAIL_DEVICE_GONE);
    PARSE_EXPECT(c[6] &= ~0x10, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_NO_CAP_LIST);
    PARSE_EXPECT(c[0x0E] = 1, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_HEADER_TYPE);
    PARSE_EXPECT(c[0x34] = 0x42, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_PTR_ALIGN);
    PARSE_EXPECT(c[0x34] = 0x20, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_PTR_BOUNDS);
    PARSE_EXPECT(c[0x41] = 0x40, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_CAP_LOOP);   /* self loop */
    PARSE_EXPECT(c[0x41] = 0, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON); /* list cut */
    /* A reserved cfg_type is ignored (spec 4.1.4.1), and a later valid instance of a
     * type is used when the first one was malformed. */
    PARSE_EXPECT(c[0x53] = 7, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON);
    PARSE_EXPECT(c[0x58] = 2, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON); /* misaligned */
    PARSE_EXPECT((c[0x5C] = 0x10, c[0x5D] = 0), VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON); /* length < 0x38 */
    PARSE_EXPECT(c[0x52] = 200, VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON); /* cap past 256 */
    PARSE_EXPECT((c[0x10] = 0x01), VPCI_ERR_CAPABILITIES, VPCI_DETAIL_MISSING_COMMON); /* I/O BAR */
    PARSE_EXPECT((c[0x14 + 0x14] = 0), VPCI_OK, VPCI_DETAIL_NONE);  /* BAR5 contents irrelevant */
    /* A second common cap after a broken first one wins. */
    memcpy(c, f->config, sizeof(c));
    c[0x53] = 9;                                   /* first common -> vendor data type */
    c[0x84 + 1] = 0xC0;                            /* device cap -> new cap at 0xC0 */
    memcpy(&c[0xC0], &f->config[0x50], 16);
    c[0xC1] = 0;
    assert_int_equal(VpciParseConfig(&v, c, sizeof(c)), VPCI_OK);
    assert_int_equal(v.CommonRegion.Offset, 0);
    /* Too-short config buffer. */
    assert_int_equal(VpciParseConfig(&v, f->config, 0x30), VPCI_ERR_CAPABILITIES);
    assert_int_equal(v.ErrorDetail, VPCI_DETAIL_CONFIG_TOO_SHORT);
    fx_destroy(f);
}

static void test_features_ok_refused(void **state)
{
    (void)state;
    fixture *f = fx_create("refuse_features_ok");
    ULONGLONG neg = 1;
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_ERR_FEATURES_REFUSED);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_FEATURES_OK_CLEARED);
    assert_int_equal(neg, 0);
    VpciFail(&f->vdev);
    assert_true(VpciGetStatus(&f->vdev) & VIRTIO_STATUS_FAILED);
    /* Wanted without VERSION_1 is refused before touching the device. */
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, 1ull << 9, &neg), VPCI_ERR_NO_VERSION_1);
    fx_destroy(f);
}

/* A device that does not offer VERSION_1 (legacy/transitional) is refused before any
 * feature is written: the driver speaks modern virtio only (spec 6.1). */
static void test_no_version1_refused(void **state)
{
    (void)state;
    fixture *f = fx_create("version1=off");
    ULONGLONG neg = 1;
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciReadDeviceFeatures(&f->vdev) & (1ull << 32), 0);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_ERR_NO_VERSION_1);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_NO_VERSION_1);
    assert_int_equal(neg, 0);
    assert_int_equal(VpciReadDriverFeatures(&f->vdev), 0);           /* nothing accepted */
    assert_int_equal(VpciGetStatus(&f->vdev) & VIRTIO_STATUS_FEATURES_OK, 0);
    VpciFail(&f->vdev);
    assert_true(VpciGetStatus(&f->vdev) & VIRTIO_STATUS_FAILED);
    assert_int_equal(stat_bugs(f), 0);
    fx_destroy(f);
}

static void test_queue_size0(void **state)
{
    (void)state;
    fixture *f = fx_create("queue_size0");
    ULONGLONG neg;
    USHORT qs = 128;
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_OK);
    assert_int_equal(VpciQueueMaxSize(&f->vdev, 0), 0);
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_ERR_QUEUE);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_QUEUE_SIZE_ZERO);
    /* Queue 1 does not exist (num_queues = 1). */
    assert_int_equal(VpciSetupQueue(&f->vdev, 1, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_ERR_QUEUE);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_QUEUE_INDEX);
    fx_destroy(f);
}

static void test_vector_readback_ffff(void **state)
{
    (void)state;
    fixture *f = fx_create("vector_readback_ffff");
    ULONGLONG neg;
    USHORT qs = 128;
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_OK);
    fx_enable_msix(f);
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, 1), VPCI_ERR_VECTOR);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_VECTOR_READBACK);
    assert_int_equal(f->vdev.ErrorValue, 0xFFFF);
    assert_int_equal(VpciSetConfigVector(&f->vdev, 0), VPCI_ERR_VECTOR);
    /* INTx (NO_VECTOR) still works on that device. */
    assert_int_equal(VpciSetConfigVector(&f->vdev, VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    fx_destroy(f);
    /* A vector beyond the MSI-X table is refused by the driver itself. */
    f = fx_create("");
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciSetConfigVector(&f->vdev, 2), VPCI_ERR_VECTOR);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_VECTOR_RANGE);
    fx_destroy(f);
}

static void test_queue_size_choice(void **state)
{
    (void)state;
    ULONGLONG neg;
    USHORT qs = 64;
    /* Aero: fixed 128, a smaller ring is refused and the real size reported. */
    fixture *f = fx_create("");
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_OK);
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_ERR_QUEUE);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_QUEUE_SIZE_REFUSED);
    assert_int_equal(qs, 128);
    /* Wanting more than the device has gives the device maximum. */
    qs = 1024;
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    assert_int_equal(qs, 128);
    fx_destroy(f);
    /* A QEMU-like writable queue size accepts a smaller power of two. */
    f = fx_create("queue_size=256,queue_size_writable=on");
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_OK);
    qs = 3;
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_ERR_QUEUE);
    qs = 64;
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA + 8, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_ERR_QUEUE);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_QUEUE_ADDRESS);
    qs = 64;
    assert_int_equal(VpciSetupQueue(&f->vdev, 0, &qs, RING_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    assert_int_equal(qs, 64);
    assert_int_equal(VpciQueueMaxSize(&f->vdev, 0), 64);
    assert_int_equal(stat_bugs(f), 0);
    fx_destroy(f);
}

static void test_reset_timeout(void **state)
{
    (void)state;
    fixture *f = fx_create("reset_stuck");
    fx_parse_map_ok(f);
    VpciAddStatus(&f->vdev, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(VpciReset(&f->vdev), VPCI_ERR_RESET_TIMEOUT);
    assert_int_equal(f->vdev.ErrorDetail, VPCI_DETAIL_RESET_TIMEOUT);
    /* Bounded (this can run at DIRQL): 200 ms in all, each stall under 1 ms. */
    assert_int_equal(f->stall_total_us, 200000);
    assert_true(f->stall_max_us < 1000);
    fx_destroy(f);
}

static void test_surprise_remove(void **state)
{
    (void)state;
    fixture *f = fx_create("");
    ULONGLONG neg;
    fx_parse_map_ok(f);
    assert_int_equal(VpciBeginInit(&f->vdev), VPCI_OK);
    assert_false(VpciIsDeviceGone(&f->vdev));
    assert_int_equal(f->dev->ops->control(f->dev, "surprise-remove"), 0);
    assert_true(VpciIsDeviceGone(&f->vdev));
    assert_int_equal(VpciNegotiateFeatures(&f->vdev, WANTED_FEATURES, &neg), VPCI_ERR_DEVICE_GONE);
    assert_int_equal(VpciAddStatusChecked(&f->vdev, VIRTIO_STATUS_DRIVER), VPCI_ERR_DEVICE_GONE);
    assert_int_equal(VpciReset(&f->vdev), VPCI_ERR_DEVICE_GONE);
    assert_int_equal(f->dev->ops->cfg_read(f->dev, 0, 4), 0xFFFFFFFF);
    /* Re-reading config space after removal: gone, not "wrong vendor". */
    UCHAR c[256];
    for (unsigned off = 0; off < 256; off += 4) { uint32_t x = cfg_r(f, off, 4); memcpy(&c[off], &x, 4); }
    VPCI_DEVICE v; memset(&v, 0, sizeof(v));
    assert_int_equal(VpciParseConfig(&v, c, sizeof(c)), VPCI_ERR_DEVICE_GONE);
    fx_destroy(f);
}

/* ---- request round trips ----------------------------------------------------------- */
static void check_disk(fixture *f, uint64_t offset, const uint8_t *want, size_t len)
{
    uint8_t *buf = malloc(len);
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)offset), (ssize_t)len);
    close(fd);
    assert_memory_equal(buf, want, len);
    free(buf);
}

static void round_trip(const char *opts, bool msix, bool indirect)
{
    fixture *f = fx_create(opts);
    fx_parse_map_ok(f);
    fx_init(f, msix);
    uint8_t *data = ram(f, DATA_GPA), *back = ram(f, DATA2_GPA);
    sim_contract_stats st;

    /* WRITE 8 KiB at sector 24 */
    fill_pattern(data, 8192, 7);
    assert_int_equal(do_request(f, 1, 24, DATA_GPA, 8192, indirect), 0);
    check_disk(f, 24 * 512, data, 8192);
    if (msix) {
        assert_int_equal(msi_word(f, 1), 0xA001);      /* queue vector 1 fired */
        assert_false(f->dev->ops->intx_level(f->dev)); /* exclusive: no INTx */
        *(uint32_t *)ram(f, MSI_GPA + 4) = 0;
    } else {
        assert_true(f->dev->ops->intx_level(f->dev));
        assert_int_equal(VpciReadIsr(&f->vdev), 1);    /* queue bit, read-to-clear */
        assert_false(f->dev->ops->intx_level(f->dev));
        assert_int_equal(VpciReadIsr(&f->vdev), 0);
    }
    /* READ it back into other memory */
    memset(back, 0, 8192);
    assert_int_equal(do_request(f, 0, 24, DATA2_GPA, 8192, indirect), 0);
    assert_memory_equal(back, data, 8192);
    /* FLUSH, then an unknown type (GET_ID is not in the contract) */
    assert_int_equal(do_request(f, 4, 0, 0, 0, indirect), 0);
    assert_int_equal(do_request(f, 8, 0, DATA2_GPA, 20, indirect), 2);
    assert_int_equal(stat_bugs(f), 0);
    /* Last sector OK; one past the end is IOERR (and a logged driver bug). */
    assert_int_equal(do_request(f, 0, DISK_SIZE / 512 - 1, DATA2_GPA, 512, indirect), 0);
    assert_int_equal(do_request(f, 0, DISK_SIZE / 512, DATA2_GPA, 512, indirect), 1);
    assert_int_equal(stat_bugs(f), 1);
    /* Data not a multiple of 512: IOERR */
    assert_int_equal(do_request(f, 1, 0, DATA_GPA, 100, indirect), 1);
    assert_int_equal(stat_bugs(f), 2);
    /* Injected device errors */
    assert_int_equal(f->dev->ops->control(f->dev, "fail-next-read"), 0);
    assert_int_equal(do_request(f, 0, 0, DATA2_GPA, 512, indirect), 1);
    assert_int_equal(do_request(f, 0, 0, DATA2_GPA, 512, indirect), 0);
    assert_int_equal(f->dev->ops->control(f->dev, "fail-next-write"), 0);
    assert_int_equal(do_request(f, 1, 0, DATA_GPA, 512, indirect), 1);
    assert_int_equal(stat_bugs(f), 2);
    assert_int_equal(sim_contract_get_stats(f->dev, &st), 0);
    assert_int_equal(st.requests, 10);
    assert_int_equal(st.faults_injected, 2);
    fx_destroy(f);
}

/* queue_notify_off 3 with multiplier 4: the doorbell is notify + 12 (spec 4.1.4.4);
 * the device takes a doorbell only there (anywhere else: driver bug, ignored). */
static void check_notify_off(const char *opts)
{
    fixture *f = fx_create(opts);
    uint8_t *data = ram(f, DATA_GPA), *back = ram(f, DATA2_GPA);
    sim_contract_stats st;
    fx_parse_map_ok(f);
    assert_int_equal(f->vdev.NotifyOffMultiplier, 4);
    fx_init(f, true);
    assert_int_equal(f->vdev.QueueNotify - f->vdev.Notify, 3 * 4);
    fill_pattern(data, 4096, 11);
    assert_int_equal(do_request(f, 1, 8, DATA_GPA, 4096, false), 0);
    check_disk(f, 8 * 512, data, 4096);
    memset(back, 0, 4096);
    assert_int_equal(do_request(f, 0, 8, DATA2_GPA, 4096, false), 0);
    assert_memory_equal(back, data, 4096);
    assert_int_equal(sim_contract_get_stats(f->dev, &st), 0);
    assert_int_equal(st.doorbells, 2);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.driver_bugs, 0);
    fx_destroy(f);
}

static void test_notify_off_aero(void **state) { (void)state; check_notify_off("notify_off=3"); }
static void test_notify_off_qemu(void **state) { (void)state; check_notify_off("layout=qemu,notify_off=3"); }

static int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* Destroying a device (after real I/O, device thread running) closes everything it
 * opened: the image file and the guest-RAM memfd. */
static void test_destroy_closes_fds(void **state)
{
    (void)state;
    int before = count_open_fds();
    fixture *f = fx_create("");
    fx_parse_map_ok(f);
    fx_init(f, true);
    fill_pattern(ram(f, DATA_GPA), 512, 3);
    assert_int_equal(do_request(f, 1, 0, DATA_GPA, 512, false), 0);
    assert_int_equal(do_request(f, 4, 0, 0, 0, false), 0);
    assert_true(count_open_fds() > before);
    fx_destroy(f);
    assert_int_equal(count_open_fds(), before);
}

static void test_rt_aero_intx(void **state) { (void)state; round_trip("mode=sync", false, false); }
static void test_rt_aero_msix(void **state) { (void)state; round_trip("", true, false); }
static void test_rt_aero_indirect(void **state) { (void)state; round_trip("", true, true); }
static void test_rt_qemu_msix(void **state) { (void)state; round_trip("layout=qemu", true, false); }
static void test_rt_qemu_intx_indirect(void **state) { (void)state; round_trip("layout=qemu,mode=sync", false, true); }

/* seg_max counts data segments: 127 x 512 bytes is one too many. */
static void test_seg_max(void **state)
{
    (void)state;
    fixture *f = fx_create("mode=sync");
    fx_parse_map_ok(f);
    fx_init(f, false);
    for (unsigned segs = 126; segs <= 127; segs++) {
        uint8_t *tbl = ram(f, INDIR_GPA);
        uint32_t hdr[4] = { 0, 0, 0, 0 };
        memcpy(ram(f, HDR_GPA), hdr, 16);
        put_desc(tbl, 0, HDR_GPA, 16, 1, 1);
        for (unsigned i = 0; i < segs; i++)
            put_desc(tbl, 1 + i, DATA_GPA + 512 * i, 512, 3, (uint16_t)(2 + i));
        put_desc(tbl, 1 + segs, STATUS_GPA, 1, 2, 0);
        put_desc(ram(f, RING_GPA), 0, INDIR_GPA, 16 * (segs + 2), 4, 0);
        *(uint8_t *)ram(f, STATUS_GPA) = 0xEE;
        kick_head(f, 0, true);
        f->used_seen++;
        assert_int_equal(*(uint8_t *)ram(f, STATUS_GPA), segs == 126 ? 0 : 1);
    }
    assert_int_equal(stat_bugs(f), 1);
    fx_destroy(f);
}

/* A looping chain cannot be completed: DEVICE_NEEDS_RESET + config interrupt. */
static void test_chain_loop_needs_reset(void **state)
{
    (void)state;
    fixture *f = fx_create("mode=sync");
    fx_parse_map_ok(f);
    fx_init(f, false);
    put_desc(ram(f, RING_GPA), 0, HDR_GPA, 16, 1, 1);
    put_desc(ram(f, RING_GPA), 1, DATA_GPA, 512, 3, 0);    /* 1 -> 0 -> 1 ... */
    kick_head(f, 0, true);
    assert_int_equal(used_idx(f), 0);
    assert_true(VpciGetStatus(&f->vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    assert_int_equal(VpciReadIsr(&f->vdev) & 2, 2);
    assert_true(stat_bugs(f) >= 1);
    /* Recovery: reset and re-init works, NEEDS_RESET is gone. */
    fx_init(f, false);
    assert_int_equal(VpciGetStatus(&f->vdev), 0x0F);
    assert_int_equal(do_request(f, 0, 0, DATA2_GPA, 512, false), 0);
    fx_destroy(f);
}

static void test_stall_and_faults(void **state)
{
    (void)state;
    fixture *f = fx_create("");
    fx_parse_map_ok(f);
    fx_init(f, true);
    /* stall: the doorbell is taken but nothing completes until unstall */
    assert_int_equal(f->dev->ops->control(f->dev, "stall"), 0);
    fill_pattern(ram(f, DATA_GPA), 4096, 3);
    uint32_t hdr[4] = { 1, 0, 100, 0 };
    memcpy(ram(f, HDR_GPA), hdr, 16);
    put_desc(ram(f, RING_GPA), 0, HDR_GPA, 16, 1, 1);
    put_desc(ram(f, RING_GPA), 1, DATA_GPA, 4096, 1, 2);
    put_desc(ram(f, RING_GPA), 2, STATUS_GPA, 1, 2, 0);
    kick_head(f, 0, false);
    usleep(50000);
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(sim_contract_wait_idle(f->dev, 10), -1);
    assert_int_equal(f->dev->ops->control(f->dev, "unstall"), 0);
    assert_int_equal(sim_contract_wait_idle(f->dev, 5000), 0);
    assert_int_equal(used_idx(f), 1);
    f->used_seen = 1;
    check_disk(f, 100 * 512, ram(f, DATA_GPA), 4096);
    /* bad-used-id: the next used element names an id no request has */
    assert_int_equal(f->dev->ops->control(f->dev, "bad-used-id"), 0);
    kick_head(f, 0, true);
    assert_int_equal(used_idx(f), 2);
    assert_true(((uint32_t *)ram(f, USED_GPA + 4 + 8))[0] >= f->qsize);
    /* needs-reset: status bit + config vector 0 */
    assert_int_equal(f->dev->ops->control(f->dev, "needs-reset"), 0);
    assert_true(VpciGetStatus(&f->vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    assert_int_equal(msi_word(f, 0), 0xA000);
    /* capacity change: generation bump, config interrupt, new capacity */
    fx_init(f, true);
    *(uint32_t *)ram(f, MSI_GPA) = 0;
    UCHAR gen = VpciConfigGeneration(&f->vdev);
    assert_int_equal(f->dev->ops->control(f->dev, "capacity=32768"), 0);
    assert_false(VpciConfigStable(&f->vdev, gen));
    assert_int_equal(msi_word(f, 0), 0xA000);
    assert_int_equal(VpciConfigRead64(&f->vdev, 0), 32768);
    assert_int_equal(do_request(f, 0, 32767, DATA2_GPA, 512, false), 0);
    assert_int_equal(f->dev->ops->control(f->dev, "no-such-command"), -1);
    assert_int_equal(f->dev->ops->control(f->dev, "stats"), 0);     /* 0 driver bugs */
    fx_destroy(f);
}

/* MSI-X with the config vector set to NO_VECTOR: the config change stays silent. */
static void test_msix_no_vector_silences(void **state)
{
    (void)state;
    fixture *f = fx_create("mode=sync");
    fx_parse_map_ok(f);
    fx_init(f, true);
    assert_int_equal(VpciSetConfigVector(&f->vdev, VIRTIO_MSI_NO_VECTOR), VPCI_OK);
    assert_int_equal(f->dev->ops->control(f->dev, "config-interrupt"), 0);
    assert_int_equal(msi_word(f, 0), 0);
    assert_false(f->dev->ops->intx_level(f->dev));
    sim_contract_stats st;
    sim_contract_get_stats(f->dev, &st);
    assert_int_equal(st.msix_suppressed, 1);
    fx_destroy(f);
}

/* Issue 3 target: with MSI-X, submitting a request costs the driver exactly one MMIO
 * access (the doorbell write) and completion costs none. */
static void test_mmio_cost_per_request(void **state)
{
    (void)state;
    fixture *f = fx_create("mode=sync");
    fx_parse_map_ok(f);
    fx_init(f, true);
    uint32_t hdr[4] = { 0, 0, 0, 0 };
    memcpy(ram(f, HDR_GPA), hdr, 16);
    put_desc(ram(f, RING_GPA), 0, HDR_GPA, 16, 1, 1);
    put_desc(ram(f, RING_GPA), 1, DATA_GPA, 4096, 3, 2);
    put_desc(ram(f, RING_GPA), 2, STATUS_GPA, 1, 2, 0);
    unsigned r0 = g_mmio_reads, w0 = g_mmio_writes;
    kick_head(f, 0, true);
    assert_int_equal(g_mmio_writes - w0, 1);
    assert_int_equal(g_mmio_reads - r0, 0);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(msi_word(f, 1), 0xA001);
    fx_destroy(f);
}

/* event_idx=on: the device publishes avail_event and honours used_event. */
static void test_event_idx(void **state)
{
    (void)state;
    fixture *f = fx_create("event_idx=on,mode=sync");
    fx_parse_map_ok(f);
    uint64_t neg = fx_init(f, true);
    assert_true(neg & (1ull << 29));
    uint16_t *avail = ram(f, AVAIL_GPA);
    avail[2 + f->qsize] = 5;                      /* used_event: interrupt at idx 6 */
    uint32_t hdr[4] = { 0, 0, 0, 0 };
    memcpy(ram(f, HDR_GPA), hdr, 16);
    put_desc(ram(f, RING_GPA), 0, HDR_GPA, 16, 1, 1);
    put_desc(ram(f, RING_GPA), 1, DATA_GPA, 512, 3, 2);
    put_desc(ram(f, RING_GPA), 2, STATUS_GPA, 1, 2, 0);
    sim_contract_stats st;
    for (unsigned i = 1; i <= 6; i++) {
        kick_head(f, 0, true);
        assert_int_equal(used_idx(f), i);
        assert_int_equal(*(uint16_t *)ram(f, USED_GPA + 4 + 8 * f->qsize), i);   /* avail_event */
        sim_contract_get_stats(f->dev, &st);
        assert_int_equal(st.msix_messages, i == 6 ? 1 : 0);
    }
    fx_destroy(f);
}

/* Device thread with latency: several requests in flight at once, taken in batches,
 * completed in order with their own ids and data. */
static void test_batch_thread(void **state)
{
    (void)state;
    fixture *f = fx_create("latency_us=20000");
    fx_parse_map_ok(f);
    fx_init(f, true);
    uint16_t *avail = ram(f, AVAIL_GPA);
    for (unsigned h = 0; h < 8; h++) {
        uint64_t hdr_gpa = HDR_GPA + 32 * h, st_gpa = STATUS_GPA + h, tbl = INDIR_GPA + 64 * h;
        uint32_t hdr[4] = { 1, 0, 8 * h, 0 };
        memcpy(ram(f, hdr_gpa), hdr, 16);
        fill_pattern(ram(f, DATA_GPA + 4096 * h), 4096, h);
        *(uint8_t *)ram(f, st_gpa) = 0xEE;
        put_desc(ram(f, tbl), 0, hdr_gpa, 16, 1, 1);
        put_desc(ram(f, tbl), 1, DATA_GPA + 4096 * h, 4096, 1, 2);
        put_desc(ram(f, tbl), 2, st_gpa, 1, 2, 0);
        put_desc(ram(f, RING_GPA), h, tbl, 48, 4, 0);
        avail[2 + h] = (uint16_t)h;
        __atomic_store_n(&avail[1], (uint16_t)(h + 1), __ATOMIC_RELEASE);
        VpciNotifyQueue(&f->vdev, 0);
    }
    assert_int_equal(sim_contract_wait_idle(f->dev, 5000), 0);
    assert_int_equal(used_idx(f), 8);
    for (unsigned h = 0; h < 8; h++) {
        assert_int_equal(((uint32_t *)ram(f, USED_GPA + 4))[2 * h], h);
        assert_int_equal(*(uint8_t *)ram(f, STATUS_GPA + h), 0);
        check_disk(f, 8 * h * 512, ram(f, DATA_GPA + 4096 * h), 4096);
    }
    sim_contract_stats st;
    sim_contract_get_stats(f->dev, &st);
    assert_true(st.max_batch > 1);
    assert_true(st.msix_messages < 8);          /* one interrupt per batch */
    assert_int_equal(st.driver_bugs, 0);
    fx_destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_real_qemu_config, fx_teardown),
        cmocka_unit_test_teardown(test_aero_layout, fx_teardown),
        cmocka_unit_test_teardown(test_qemu_layout, fx_teardown),
        cmocka_unit_test_teardown(test_init_aero_intx, fx_teardown),
        cmocka_unit_test_teardown(test_init_aero_msix, fx_teardown),
        cmocka_unit_test_teardown(test_init_qemu_intx, fx_teardown),
        cmocka_unit_test_teardown(test_init_qemu_msix, fx_teardown),
        cmocka_unit_test_teardown(test_init_no_msix_cap, fx_teardown),
        cmocka_unit_test_teardown(test_cap_loop, fx_teardown),
        cmocka_unit_test_teardown(test_short_cap_len, fx_teardown),
        cmocka_unit_test_teardown(test_bar6, fx_teardown),
        cmocka_unit_test_teardown(test_range_outside_bar, fx_teardown),
        cmocka_unit_test_teardown(test_overlapping, fx_teardown),
        cmocka_unit_test_teardown(test_revision, fx_teardown),
        cmocka_unit_test_teardown(test_config_bytes, fx_teardown),
        cmocka_unit_test_teardown(test_features_ok_refused, fx_teardown),
        cmocka_unit_test_teardown(test_no_version1_refused, fx_teardown),
        cmocka_unit_test_teardown(test_queue_size0, fx_teardown),
        cmocka_unit_test_teardown(test_vector_readback_ffff, fx_teardown),
        cmocka_unit_test_teardown(test_queue_size_choice, fx_teardown),
        cmocka_unit_test_teardown(test_reset_timeout, fx_teardown),
        cmocka_unit_test_teardown(test_surprise_remove, fx_teardown),
        cmocka_unit_test_teardown(test_rt_aero_intx, fx_teardown),
        cmocka_unit_test_teardown(test_rt_aero_msix, fx_teardown),
        cmocka_unit_test_teardown(test_rt_aero_indirect, fx_teardown),
        cmocka_unit_test_teardown(test_rt_qemu_msix, fx_teardown),
        cmocka_unit_test_teardown(test_rt_qemu_intx_indirect, fx_teardown),
        cmocka_unit_test_teardown(test_notify_off_aero, fx_teardown),
        cmocka_unit_test_teardown(test_notify_off_qemu, fx_teardown),
        cmocka_unit_test_teardown(test_destroy_closes_fds, fx_teardown),
        cmocka_unit_test_teardown(test_seg_max, fx_teardown),
        cmocka_unit_test_teardown(test_chain_loop_needs_reset, fx_teardown),
        cmocka_unit_test_teardown(test_stall_and_faults, fx_teardown),
        cmocka_unit_test_teardown(test_msix_no_vector_silences, fx_teardown),
        cmocka_unit_test_teardown(test_mmio_cost_per_request, fx_teardown),
        cmocka_unit_test_teardown(test_event_idx, fx_teardown),
        cmocka_unit_test_teardown(test_batch_thread, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
