/*
 * A tiny StorPort miniport for testing the simulator itself (out/host/aerovblk-sim-fake):
 * a RAM-less disk that reads and writes the image file named by SIM_FAKE_DISK, found on
 * any PCI function (the contract device is used for PCI/BARs), completing reads and
 * writes from a DPC after "raising" its own MSI-X message. With SIM_FAKE_BUG set it
 * breaks one Windows rule on purpose, and the verifier must catch it:
 *
 *   double-complete        completes a READ twice
 *   never-complete         never completes the first WRITE (and HwResetBus ignores it)
 *   complete-not-owned     RequestComplete of an SRB StorPort never issued
 *   touch-after-complete   writes SrbStatus after completing an INQUIRY
 *   ilock-in-isr           StorPortAcquireSpinLock(InterruptLock) inside HwMSInterruptRoutine
 *   startio-lock-in-startio  StorPortAcquireSpinLock(StartIoLock) inside HwStartIo
 *   lock-order             InterruptLock, then StartIoLock, in HwBuildIo
 *   pool-at-dirql          StorPortAllocatePool inside HwMSInterruptRoutine
 *   registry-in-startio    StorPortRegistryRead in HwStartIo (PASSIVE only)
 *   uncached-late          StorPortGetUncachedExtension in HwInitialize
 *   uncached-overrun       writes one byte past the uncached extension
 *   pool-leak              StorPortAllocatePool in HwFindAdapter, never freed
 *   mmio-outside-bar       register read of an address that is not a mapped BAR
 *   databuffer-deref       reads a READ SRB's DataBuffer (unmapped on Windows 7)
 *   buffer-overrun         INQUIRY: writes one byte past DataTransferLength
 *   srbext-overrun         writes one byte past SrbExtensionSize in HwStartIo
 *   gpa-sense-null         StorPortGetPhysicalAddress(NULL, SenseInfoBuffer) (needs the SRB)
 *   dump-big-uncached      dump mode: asks for a 40000-byte uncached extension (> 32 KiB)
 *   dump-budget            dump mode: 32600 bytes of uncached extension (< 32 KiB alone, over
 *                          it with the SRB extension and sense buffer)
 *   dump-lock              dump mode: StorPortAcquireSpinLock(InterruptLock) in HwStartIo
 *   dump-msi-routine       dump mode: leaves ConfigInfo->HwMSInterruptRoutine set
 *   devicebase-late        StorPortGetDeviceBase in HwInitialize
 *   dpc-in-initialize      StorPortInitializeDpc in HwInitialize (not the passive routine)
 *   checkcond-no-sense     TEST UNIT READY: CHECK CONDITION without AUTOSENSE_VALID
 *   success-bad-status     TEST UNIT READY: SRB_STATUS_SUCCESS with SCSI status BUSY
 *   autosense-good         TEST UNIT READY: AUTOSENSE_VALID with SCSI status GOOD
 *   sg-modify              READ: rewrites the S/G list's first element length
 *   contig-ok / contig-leak / contig-double-free / contig-size-mismatch
 *                          StorPortAllocateContiguousMemorySpecifyCacheNode in passive
 *                          initialisation: right, never freed, freed twice, freed with
 *                          another size (FakeContiguousMemory)
 *   ctl-list-overflow      ScsiQuerySupportedControlTypes writes one entry past MaxControlType
 *   error-full-length      the first READ: SRB_STATUS_BUS_RESET with DataTransferLength kept
 *   stop-takes-interrupt-lock  ScsiStopAdapter/ScsiRestartAdapter take the interrupt lock
 *                          themselves (right only if StorPort holds no lock then)
 *   dpc-scratch-in-extension  the DPC keeps its list of completed SRBs in the device
 *                          extension (right only while StorPort serialises the DPC)
 *   sense-despite-disable  START STOP UNIT: CHECK CONDITION with sense data although the
 *                          SRB has SRB_FLAGS_DISABLE_AUTOSENSE
 *   fua-invalid            (a miniport without FUA) WRITE with FUA: CHECK CONDITION 05/24;
 *                          disk.sys must drop FUA and turn the write cache off (issue 11)
 *   held-write             (correct) holds the first WRITE until HwResetBus completes it
 *                          with BUS_RESET; fails any request StorPort sends between the
 *                          LU reset SRB and the end of HwResetBus (queue must be paused)
 *
 * SIM_FAKE_SYNC=half selects StorSynchronizeHalfDuplex, SIM_FAKE_ISM=permessage
 * InterruptSynchronizePerMessage, so the port's other locking models run too.
 * SIM_FAKE_DMA64=keep leaves Dma64BitAddresses at the port's 0x80 (then any address at or
 * above 4 GiB fails the request); SIM_FAKE_SGSTATS reports long and odd-address S/G
 * elements; SIM_FAKE_CACHES sets CachesData (and DPOFUA); SIM_FAKE_TRACE prints FLUSH,
 * SHUTDOWN, POWER, SYNCHRONIZE CACHE, START STOP UNIT and FUA writes as they arrive.
 * Every request also checks StorPortGetPhysicalAddress of its SRB extension and sense
 * buffer, and S/G lists against NumberOfPhysicalBreaks / MaximumTransferLength.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "hwreg.h"

typedef struct {
    STOR_DPC Dpc;
    PSCSI_REQUEST_BLOCK Pending[256];
    unsigned NPending;
    UCHAR *Uncached;
    volatile UCHAR *Bar;
    int Fd;
    ULONGLONG Blocks;
    ULONG MsiData;
    ULONGLONG MsiAddress;
    BOOLEAN Msi;
    BOOLEAN DoneOnce;
    BOOLEAN HalfDuplex;
    PVOID LeakedPool;
    PSCSI_REQUEST_BLOCK Held;     /* held-write */
    volatile BOOLEAN Escalating;  /* between RESET_LOGICAL_UNIT and the end of HwResetBus */
    BOOLEAN Dump;                 /* ArgumentString "dump=1": no DPC, no MSI; completes in
                                     HwStartIo, READs from a RequestTimerCall timer */
    PSCSI_REQUEST_BLOCK TimerSrb;
    PSCSI_REQUEST_BLOCK DpcScratch[256];   /* dpc-scratch-in-extension */
} FAKE;

static const char *bug(void)
{
    const char *b = getenv("SIM_FAKE_BUG");
    return b ? b : "";
}
static int is_bug(const char *n) { return strcmp(bug(), n) == 0; }

/* CHECK CONDITION with fixed-format sense KEY/ASC in the SRB's sense buffer (written even
 * with SRB_FLAGS_DISABLE_AUTOSENSE: the sense-despite-disable bug relies on that; the
 * correct callers never send that flag). Sets SrbStatus for complete(). */
static void fake_sense(PSCSI_REQUEST_BLOCK srb, UCHAR key, UCHAR asc)
{
    srb->ScsiStatus = SCSISTAT_CHECK_CONDITION;
    srb->SrbStatus = SRB_STATUS_ERROR;
    if (srb->SenseInfoBuffer && srb->SenseInfoBufferLength >= 14) {
        UCHAR *p = (UCHAR *)srb->SenseInfoBuffer;
        memset(p, 0, srb->SenseInfoBufferLength);
        p[0] = 0x70; p[2] = key; p[7] = 10; p[12] = asc;
        srb->SrbStatus |= SRB_STATUS_AUTOSENSE_VALID;
    }
}

static void complete(FAKE *f, PSCSI_REQUEST_BLOCK srb, UCHAR status)
{
    srb->SrbStatus = status;
    StorPortNotification(RequestComplete, f, srb);
}

static void raise_msi(FAKE *f)
{
    /* the "device" signals: a DMA write of the message data to the message address */
    struct sim_adapter *a = sim_adapter_from_ext(f);
    __atomic_store_n((ULONG *)sim_gpa(a->dev, f->MsiAddress), f->MsiData, __ATOMIC_RELEASE);
}

static ULONG NTAPI FakeFindAdapter(PVOID ext, PVOID ctx, PVOID bus, PCHAR arg, PPORT_CONFIGURATION_INFORMATION cfg, PBOOLEAN again)
{
    FAKE *f = ext;
    UCHAR pci[64];
    (void)ctx; (void)bus; (void)arg; (void)again;
    if (StorPortGetBusData(ext, PCIConfiguration, 0, cfg->SlotNumber, pci, sizeof(pci)) != sizeof(pci)) return SP_RETURN_NOT_FOUND;
    if (cfg->NumberOfAccessRanges < 1) return SP_RETURN_BAD_CONFIG;
    ACCESS_RANGE *r = &(*cfg->AccessRanges)[0];
    f->Bar = StorPortGetDeviceBase(ext, PCIBus, 0, r->RangeStart, r->RangeLength, FALSE);
    if (!f->Bar) return SP_RETURN_ERROR;
    cfg->NumberOfBuses = 1;
    cfg->MaximumNumberOfTargets = 1;
    cfg->MaximumNumberOfLogicalUnits = 1;
    cfg->MaximumTransferLength = 64 * 1024;
    cfg->NumberOfPhysicalBreaks = 17;
    f->HalfDuplex = getenv("SIM_FAKE_SYNC") && !strcmp(getenv("SIM_FAKE_SYNC"), "half");
    cfg->SynchronizationModel = f->HalfDuplex ? StorSynchronizeHalfDuplex : StorSynchronizeFullDuplex;
    cfg->HwMSInterruptRoutine = NULL;
    cfg->InterruptSynchronizationMode = getenv("SIM_FAKE_ISM") && !strcmp(getenv("SIM_FAKE_ISM"), "permessage")
                                        ? InterruptSynchronizePerMessage : InterruptSynchronizeAll;
    /* SIM_FAKE_DMA64=keep: a 32-bit-only miniport (leaves the port's 0x80): every
     * address it sees must then be below 4 GiB, which do_rw checks. */
    if (!(getenv("SIM_FAKE_DMA64") && !strcmp(getenv("SIM_FAKE_DMA64"), "keep")))
        cfg->Dma64BitAddresses = SCSI_DMA64_MINIPORT_SUPPORTED;
    cfg->SrbExtensionSize = 64;
    /* SIM_FAKE_CACHES: declare a write cache, so StorPort sends FLUSH and SHUTDOWN */
    cfg->CachesData = getenv("SIM_FAKE_CACHES") != NULL;
    extern BOOLEAN NTAPI FakeMsi(PVOID, ULONG);
    f->Dump = arg && strstr((const char *)arg, "dump=1") != NULL;
    cfg->HwMSInterruptRoutine = f->Dump && !is_bug("dump-msi-routine") ? NULL : FakeMsi;   /* polled in dump mode */
    f->Uncached = StorPortGetUncachedExtension(ext, cfg, !f->Dump ? 4096 : is_bug("dump-big-uncached") ? 40000 :
                                                         is_bug("dump-budget") ? 32600 : 4096);
    if (!f->Uncached) return SP_RETURN_ERROR;
    if (is_bug("uncached-overrun")) f->Uncached[4096] = 1;
    if (is_bug("pool-leak")) StorPortAllocatePool(ext, 100, 0x6B61654Cu, &f->LeakedPool);
    const char *path = getenv("SIM_FAKE_DISK");
    f->Fd = path ? open(path, O_RDWR) : -1;
    if (f->Fd < 0) return SP_RETURN_ERROR;
    f->Blocks = (ULONGLONG)lseek(f->Fd, 0, SEEK_END) / 512;
    return SP_RETURN_FOUND;
}

/* The Windows 7 contiguous-memory functions (facts §11.12), 256 KiB below 4 GiB:
 * contig-ok uses them right (the block must be physically contiguous, then freed with
 * the same size and cache type); contig-leak never frees it, contig-double-free frees it
 * twice, contig-size-mismatch frees it with another size. A refused allocation (NULL,
 * --fragmented-memory) fails passive initialisation, as a miniport without fallback would. */
static BOOLEAN FakeContiguousMemory(PVOID ext)
{
    const SIZE_T size = 256 * 1024;
    PHYSICAL_ADDRESS lo, hi, none;
    PVOID va = NULL;
    ULONG len = 0;
    lo.QuadPart = 0; hi.QuadPart = 0xFFFFFFFFll; none.QuadPart = 0;
    if (StorPortAllocateContiguousMemorySpecifyCacheNode(ext, size, lo, hi, none, MmCached, MM_ANY_NODE_OK, &va) !=
            STOR_STATUS_SUCCESS || !va)
        return FALSE;
    STOR_PHYSICAL_ADDRESS pa = StorPortGetPhysicalAddress(ext, NULL, va, &len);
    if (len < size || pa.QuadPart + (LONGLONG)size - 1 > hi.QuadPart) return FALSE;
    memset(va, 0x5C, size);
    if (is_bug("contig-leak")) return TRUE;
    StorPortFreeContiguousMemorySpecifyCache(ext, va, is_bug("contig-size-mismatch") ? size / 2 : size, MmCached);
    if (is_bug("contig-double-free")) StorPortFreeContiguousMemorySpecifyCache(ext, va, size, MmCached);
    return TRUE;
}

static BOOLEAN NTAPI FakePassive(PVOID ext)
{
    extern VOID NTAPI FakeDpc(PSTOR_DPC, PVOID, PVOID, PVOID);
    StorPortInitializeDpc(ext, &((FAKE *)ext)->Dpc, FakeDpc);
    if (is_bug("contig-ok") || is_bug("contig-leak") || is_bug("contig-double-free") || is_bug("contig-size-mismatch"))
        return FakeContiguousMemory(ext);
    return TRUE;
}

static BOOLEAN NTAPI FakeInitialize(PVOID ext)
{
    FAKE *f = ext;
    MESSAGE_INTERRUPT_INFORMATION mi;
    if (StorPortGetMSIInfo(ext, 0, &mi) == STOR_STATUS_SUCCESS) {
        f->Msi = TRUE;
        f->MsiData = mi.MessageData;
        f->MsiAddress = (ULONGLONG)mi.MessageAddress.QuadPart;
    }
    if (is_bug("uncached-late")) {
        struct sim_adapter *a = sim_adapter_from_ext(ext);
        StorPortGetUncachedExtension(ext, a->cfg, 4096);
    }
    if (is_bug("devicebase-late")) {
        struct sim_adapter *a = sim_adapter_from_ext(ext);
        ACCESS_RANGE *r = &(*a->cfg->AccessRanges)[0];
        StorPortGetDeviceBase(ext, PCIBus, 0, r->RangeStart, r->RangeLength, FALSE);
    }
    if (is_bug("dpc-in-initialize")) {
        extern VOID NTAPI FakeDpc(PSTOR_DPC, PVOID, PVOID, PVOID);
        StorPortInitializeDpc(ext, &f->Dpc, FakeDpc);
    }
    if (f->Dump) return TRUE;
    return StorPortEnablePassiveInitialization(ext, FakePassive);
}

/* Dump mode's timer: completes the READ HwStartIo left for it. */
static VOID NTAPI FakeTimer(PVOID ext)
{
    FAKE *f = ext;
    PSCSI_REQUEST_BLOCK srb = f->TimerSrb;
    f->TimerSrb = NULL;
    if (srb) complete(f, srb, SRB_STATUS_SUCCESS);
}

BOOLEAN NTAPI FakeMsi(PVOID ext, ULONG msg)
{
    FAKE *f = ext;
    (void)msg;
    if (is_bug("ilock-in-isr")) {
        STOR_LOCK_HANDLE h;
        StorPortAcquireSpinLock(ext, InterruptLock, NULL, &h);
        StorPortReleaseSpinLock(ext, &h);
    }
    if (is_bug("pool-at-dirql") && !f->DoneOnce) {
        PVOID p = NULL;
        f->DoneOnce = TRUE;
        if (StorPortAllocatePool(ext, 16, 0x656B6146u, &p) == STOR_STATUS_SUCCESS) StorPortFreePool(ext, p);
    }
    StorPortIssueDpc(ext, &f->Dpc, NULL, NULL);
    return TRUE;
}

VOID NTAPI FakeDpc(PSTOR_DPC dpc, PVOID ext, PVOID a1, PVOID a2)
{
    FAKE *f = ext;
    PSCSI_REQUEST_BLOCK local[256], *done = is_bug("dpc-scratch-in-extension") ? f->DpcScratch : local;
    unsigned n;
    STOR_LOCK_HANDLE h;
    (void)dpc; (void)a1; (void)a2;
    StorPortAcquireSpinLock(ext, InterruptLock, NULL, &h);
    n = f->NPending;
    memcpy(done, f->Pending, n * sizeof(done[0]));
    f->NPending = 0;
    StorPortReleaseSpinLock(ext, &h);
    for (unsigned i = 0; i < n; i++) {
        PSCSI_REQUEST_BLOCK srb = done[i];
        UCHAR op = srb->Cdb[0];
        complete(f, srb, SRB_STATUS_SUCCESS);
        if (is_bug("double-complete") && op == 0x28 && !f->DoneOnce) {
            f->DoneOnce = TRUE;
            StorPortNotification(RequestComplete, ext, srb);
        }
    }
}

static BOOLEAN NTAPI FakeBuildIo(PVOID ext, PSCSI_REQUEST_BLOCK srb)
{
    (void)srb;
    if (is_bug("lock-order")) {
        STOR_LOCK_HANDLE i, s;
        StorPortAcquireSpinLock(ext, InterruptLock, NULL, &i);
        StorPortAcquireSpinLock(ext, StartIoLock, NULL, &s);
        StorPortReleaseSpinLock(ext, &s);
        StorPortReleaseSpinLock(ext, &i);
    }
    return TRUE;
}

static ULONG be32(const UCHAR *p) { return (ULONG)p[0] << 24 | (ULONG)p[1] << 16 | (ULONG)p[2] << 8 | p[3]; }

static BOOLEAN do_rw(FAKE *f, PSCSI_REQUEST_BLOCK srb, BOOLEAN write)
{
    struct sim_adapter *a = sim_adapter_from_ext(f);
    PSTOR_SCATTER_GATHER_LIST sg = StorPortGetScatterGatherList(f, srb);
    ULONGLONG lba = srb->Cdb[0] == 0x28 || srb->Cdb[0] == 0x2A ? be32(srb->Cdb + 2)
                  : ((ULONGLONG)be32(srb->Cdb + 2) << 32 | be32(srb->Cdb + 6));
    ULONGLONG off = lba * 512;
    if (is_bug("databuffer-deref")) {
        volatile UCHAR *p = srb->DataBuffer;
        (void)*p;
    }
    if (getenv("SIM_FAKE_DMA64") && !strcmp(getenv("SIM_FAKE_DMA64"), "keep")) {
        ULONG len = 0;
        STOR_PHYSICAL_ADDRESS e = StorPortGetPhysicalAddress(f, srb, srb->SrbExtension, &len);
        if ((ULONGLONG)e.QuadPart + len > 0x100000000ull) return FALSE;
        for (ULONG i = 0; sg && i < sg->NumberOfElements; i++)
            if ((ULONGLONG)sg->List[i].PhysicalAddress.QuadPart + sg->List[i].Length > 0x100000000ull) return FALSE;
    }
    /* the port must honour NumberOfPhysicalBreaks (17: at most 18 elements) and
     * MaximumTransferLength (64 KiB); SIM_FAKE_SGSTATS reports what the lists look like */
    if (!sg || sg->NumberOfElements > 18 || srb->DataTransferLength > 64 * 1024) return FALSE;
    if (getenv("SIM_FAKE_SGSTATS")) {
        static int long_seen, odd_seen;
        for (ULONG i = 0; i < sg->NumberOfElements; i++) {
            if (sg->List[i].Length > 4096 && !__atomic_exchange_n(&long_seen, 1, __ATOMIC_RELAXED))
                fprintf(stderr, "fake: S/G element of %u bytes\n", (unsigned)sg->List[i].Length);
            if ((sg->List[i].PhysicalAddress.QuadPart & 1) && !__atomic_exchange_n(&odd_seen, 1, __ATOMIC_RELAXED))
                fprintf(stderr, "fake: S/G element at odd address 0x%llx\n",
                        (unsigned long long)sg->List[i].PhysicalAddress.QuadPart);
        }
    }
    for (ULONG i = 0; sg && i < sg->NumberOfElements; i++) {
        void *g = sim_gpa(a->dev, (uint64_t)sg->List[i].PhysicalAddress.QuadPart);
        ssize_t n = write ? pwrite(f->Fd, g, sg->List[i].Length, (off_t)off)
                          : pread(f->Fd, g, sg->List[i].Length, (off_t)off);
        if (n != (ssize_t)sg->List[i].Length) return FALSE;
        off += sg->List[i].Length;
    }
    return TRUE;
}

/* StorPortGetPhysicalAddress as documented: SRB extension with Srb NULL (contiguous to
 * its page end only), the sense buffer with the SRB. */
static BOOLEAN gpa_ok(FAKE *f, PSCSI_REQUEST_BLOCK srb)
{
    ULONG len = 0;
    STOR_PHYSICAL_ADDRESS pa = StorPortGetPhysicalAddress(f, NULL, (UCHAR *)srb->SrbExtension + 8, &len);
    if (!pa.QuadPart || len != 4096 - ((ULONG)pa.QuadPart & 4095)) {
        fprintf(stderr, "fake: SRB extension: pa 0x%llx len %u\n", (unsigned long long)pa.QuadPart, (unsigned)len);
        return FALSE;
    }
    if (srb->SenseInfoBuffer) {
        pa = StorPortGetPhysicalAddress(f, is_bug("gpa-sense-null") ? NULL : srb, srb->SenseInfoBuffer, &len);
        if (!pa.QuadPart || len < srb->SenseInfoBufferLength ||
            sim_gpa(sim_adapter_from_ext(f)->dev, (uint64_t)pa.QuadPart) != srb->SenseInfoBuffer) {
            fprintf(stderr, "fake: sense buffer: pa 0x%llx len %u\n", (unsigned long long)pa.QuadPart, (unsigned)len);
            return FALSE;
        }
    }
    return TRUE;
}

static BOOLEAN NTAPI FakeStartIo(PVOID ext, PSCSI_REQUEST_BLOCK srb)
{
    FAKE *f = ext;
    UCHAR *d = srb->DataBuffer;
    if (is_bug("startio-lock-in-startio")) {
        STOR_LOCK_HANDLE h;
        StorPortAcquireSpinLock(ext, StartIoLock, NULL, &h);
        StorPortReleaseSpinLock(ext, &h);
    }
    if (is_bug("registry-in-startio")) {
        UCHAR v[4];
        ULONG l = sizeof(v);
        StorPortRegistryRead(ext, (PUCHAR)"X", 0, MINIPORT_REG_DWORD, v, &l);
    }
    if (is_bug("srbext-overrun")) ((UCHAR *)srb->SrbExtension)[64] = 0x11;
    if (is_bug("mmio-outside-bar")) AvRead32((volatile void *)&f->Blocks);
    else (void)AvRead32(f->Bar);
    if (is_bug("complete-not-owned") && !f->DoneOnce) {
        static SCSI_REQUEST_BLOCK stray;
        f->DoneOnce = TRUE;
        StorPortNotification(RequestComplete, ext, &stray);
    }
    if (srb->Function == SRB_FUNCTION_RESET_LOGICAL_UNIT && f->Held) f->Escalating = TRUE;
    if (getenv("SIM_FAKE_TRACE")) {   /* what Windows sends besides reads and writes */
        if (srb->Function != SRB_FUNCTION_EXECUTE_SCSI)
            fprintf(stderr, "fake: SRB function 0x%02x\n", srb->Function);
        else if (srb->Cdb[0] == 0x35 || srb->Cdb[0] == 0x1B)
            fprintf(stderr, "fake: CDB %02x %02x %02x %02x %02x\n", srb->Cdb[0], srb->Cdb[1], srb->Cdb[2], srb->Cdb[3], srb->Cdb[4]);
        else if ((srb->Cdb[0] == 0x2A || srb->Cdb[0] == 0x8A) && (srb->Cdb[1] & 0x08))
            fprintf(stderr, "fake: FUA write\n");
    }
    if (srb->Function != SRB_FUNCTION_EXECUTE_SCSI) { complete(f, srb, SRB_STATUS_SUCCESS); return TRUE; }
    if (!gpa_ok(f, srb)) { complete(f, srb, SRB_STATUS_ERROR); return TRUE; }
    if (f->Escalating) {
        fprintf(stderr, "fake: CDB %02x started during the reset escalation\n", srb->Cdb[0]);
        complete(f, srb, SRB_STATUS_ERROR);
        return TRUE;
    }
    switch (srb->Cdb[0]) {
    case 0x12:   /* INQUIRY */
        if (is_bug("buffer-overrun")) d[srb->DataTransferLength] = 0x11;
        memset(d, 0, srb->DataTransferLength);
        if (srb->Cdb[1] & 1) {
            srb->DataTransferLength = srb->DataTransferLength < 4 ? srb->DataTransferLength : 4;
            d[1] = srb->Cdb[2];
        } else if (srb->DataTransferLength >= 36) {
            d[2] = 5; d[3] = 2; d[4] = 31; d[7] = 0x02;
            memcpy(d + 8, "FAKE    SIMULATOR TEST  0001", 28);
            srb->DataTransferLength = 36;
        }
        complete(f, srb, SRB_STATUS_SUCCESS);
        if (is_bug("touch-after-complete")) srb->SrbStatus = SRB_STATUS_ERROR;
        return TRUE;
    case 0x25:   /* READ CAPACITY(10) */
        d[0] = (UCHAR)((f->Blocks - 1) >> 24); d[1] = (UCHAR)((f->Blocks - 1) >> 16);
        d[2] = (UCHAR)((f->Blocks - 1) >> 8); d[3] = (UCHAR)(f->Blocks - 1);
        d[4] = 0; d[5] = 0; d[6] = 2; d[7] = 0;
        complete(f, srb, SRB_STATUS_SUCCESS);
        return TRUE;
    case 0x1A:   /* MODE SENSE(6): header only (DPOFUA with SIM_FAKE_CACHES) */
        memset(d, 0, 4);
        d[0] = 3;
        if (getenv("SIM_FAKE_CACHES")) d[2] = 0x10;
        srb->DataTransferLength = 4;
        if (getenv("SIM_FAKE_CACHES") && (srb->Cdb[2] & 0x3F) == 0x08 && srb->DataTransferLength >= 4 &&
            srb->Cdb[4] >= 24) {   /* caching page, WCE on (disk.sys then sets FUA) */
            memset(d + 4, 0, 20);
            d[0] = 23; d[4] = 0x08; d[5] = 0x12; d[6] = 0x04;
            srb->DataTransferLength = 24;
        }
        complete(f, srb, SRB_STATUS_SUCCESS);
        return TRUE;
    case 0x00:   /* TEST UNIT READY */
        if (is_bug("checkcond-no-sense")) {
            srb->ScsiStatus = SCSISTAT_CHECK_CONDITION;
            complete(f, srb, SRB_STATUS_ERROR);
            return TRUE;
        }
        if (is_bug("success-bad-status")) srb->ScsiStatus = SCSISTAT_BUSY;
        if (is_bug("autosense-good")) { complete(f, srb, SRB_STATUS_SUCCESS | SRB_STATUS_AUTOSENSE_VALID); return TRUE; }
        complete(f, srb, SRB_STATUS_SUCCESS);
        return TRUE;
    case 0x35: case 0x1B:
        if (srb->Cdb[0] == 0x1B && is_bug("sense-despite-disable") && (srb->SrbFlags & SRB_FLAGS_DISABLE_AUTOSENSE)) {
            fake_sense(srb, 0x05, 0x24);
            complete(f, srb, srb->SrbStatus);
            return TRUE;
        }
        complete(f, srb, SRB_STATUS_SUCCESS);
        return TRUE;
    case 0x28: case 0x2A: case 0x88: case 0x8A: {
        BOOLEAN write = srb->Cdb[0] == 0x2A || srb->Cdb[0] == 0x8A;
        if (write && (srb->Cdb[1] & 0x08) && is_bug("fua-invalid")) {
            fake_sense(srb, 0x05, 0x24);      /* ILLEGAL REQUEST, INVALID FIELD IN CDB */
            srb->DataTransferLength = 0;
            complete(f, srb, srb->SrbStatus);
            return TRUE;
        }
        if (!do_rw(f, srb, write)) { srb->DataTransferLength = 0; complete(f, srb, SRB_STATUS_ERROR); return TRUE; }
        if (!write && is_bug("error-full-length") && !f->DoneOnce) {
            f->DoneOnce = TRUE;
            complete(f, srb, SRB_STATUS_BUS_RESET);   /* the length still claims everything */
            return TRUE;
        }
        if (!write && is_bug("sg-modify")) {
            PSTOR_SCATTER_GATHER_LIST sg = StorPortGetScatterGatherList(f, srb);
            if (sg && sg->NumberOfElements) sg->List[0].Length ^= 0x200;
        }
        if (write && is_bug("never-complete") && !f->DoneOnce) { f->DoneOnce = TRUE; return TRUE; }
        if (write && is_bug("held-write") && !f->DoneOnce) { f->DoneOnce = TRUE; f->Held = srb; return TRUE; }
        if (f->Dump) {   /* one request at a time: reads wait for the timer */
            if (is_bug("dump-lock")) {
                STOR_LOCK_HANDLE dl;
                StorPortAcquireSpinLock(ext, InterruptLock, NULL, &dl);
                StorPortReleaseSpinLock(ext, &dl);
            }
            if (write) { complete(f, srb, SRB_STATUS_SUCCESS); return TRUE; }
            f->TimerSrb = srb;
            StorPortNotification(RequestTimerCall, ext, FakeTimer, (ULONG)1000);
            return TRUE;
        }
        STOR_LOCK_HANDLE h;
        if (f->HalfDuplex) {        /* half duplex: StartIo already runs under the interrupt lock */
            f->Pending[f->NPending++] = srb;
        } else {
            StorPortAcquireSpinLock(ext, InterruptLock, NULL, &h);
            f->Pending[f->NPending++] = srb;
            StorPortReleaseSpinLock(ext, &h);
        }
        raise_msi(f);
        return TRUE;
    }
    default:
        srb->DataTransferLength = 0;   /* an error completion claims no data (facts §11.14) */
        complete(f, srb, SRB_STATUS_INVALID_REQUEST);
        return TRUE;
    }
}

static BOOLEAN NTAPI FakeInterrupt(PVOID ext) { (void)ext; return FALSE; }

static BOOLEAN NTAPI FakeResetBus(PVOID ext, ULONG path)
{
    FAKE *f = ext;
    STOR_LOCK_HANDLE h;
    (void)path;
    StorPortAcquireSpinLock(ext, InterruptLock, NULL, &h);
    unsigned n = f->NPending;
    PSCSI_REQUEST_BLOCK done[256];
    memcpy(done, f->Pending, n * sizeof(done[0]));
    f->NPending = 0;
    StorPortReleaseSpinLock(ext, &h);
    /* nothing was transferred: DataTransferLength 0 (facts 11.14) */
    for (unsigned i = 0; i < n; i++) { done[i]->DataTransferLength = 0; complete(f, done[i], SRB_STATUS_BUS_RESET); }
    if (f->Held) { f->Held->DataTransferLength = 0; complete(f, f->Held, SRB_STATUS_BUS_RESET); f->Held = NULL; }
    f->Escalating = FALSE;
    return TRUE;
}

static SCSI_ADAPTER_CONTROL_STATUS NTAPI FakeAdapterControl(PVOID ext, SCSI_ADAPTER_CONTROL_TYPE t, PVOID p)
{
    if (t == ScsiQuerySupportedControlTypes) {
        PSCSI_SUPPORTED_CONTROL_TYPE_LIST l = p;
        if (l->MaxControlType > ScsiStopAdapter) l->SupportedTypeList[ScsiStopAdapter] = TRUE;
        if (l->MaxControlType > ScsiRestartAdapter) l->SupportedTypeList[ScsiRestartAdapter] = TRUE;
        if (is_bug("ctl-list-overflow")) l->SupportedTypeList[l->MaxControlType] = TRUE;
    } else if (t == ScsiStopAdapter || t == ScsiRestartAdapter) {
        /* nothing in flight to stop */
        if (is_bug("stop-takes-interrupt-lock")) {
            STOR_LOCK_HANDLE h;
            StorPortAcquireSpinLock(ext, InterruptLock, NULL, &h);
            StorPortReleaseSpinLock(ext, &h);
        }
    }
    return ScsiAdapterControlSuccess;
}

NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath);
NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath)
{
    HW_INITIALIZATION_DATA h;
    memset(&h, 0, sizeof(h));
    h.HwInitializationDataSize = sizeof(h);
    h.AdapterInterfaceType = PCIBus;
    h.HwInitialize = FakeInitialize;
    h.HwStartIo = FakeStartIo;
    h.HwInterrupt = FakeInterrupt;
    h.HwFindAdapter = FakeFindAdapter;
    h.HwResetBus = FakeResetBus;
    h.HwAdapterControl = FakeAdapterControl;
    h.HwBuildIo = FakeBuildIo;
    h.DeviceExtensionSize = sizeof(FAKE);
    h.SrbExtensionSize = 64;
    h.NumberOfAccessRanges = 2;
    h.MapBuffers = STOR_MAP_NON_READ_WRITE_BUFFERS;
    h.NeedPhysicalAddresses = h.TaggedQueuing = h.AutoRequestSense = h.MultipleRequestPerLu = TRUE;
    return (NTSTATUS)StorPortInitialize(DriverObject, RegistryPath, &h, NULL);
}
