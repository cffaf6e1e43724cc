/*
 * Disk-class layer: a new disk as Windows 7 meets it (facts §8): StorPort's enumeration
 * and disk.sys's identity probes (INQUIRY, TEST UNIT READY, VPD pages), READ CAPACITY
 * (10/16), MODE SENSE, the SMART/WMI probes at start (sim_disk_arrive, from
 * main_session.c); re-enumeration after BusChangeDetected with the IDENTITY checks
 * (sim_disk_rescan); and the transfer limits the class driver derives from ConfigInfo
 * (sim_disk_attach, also after a restart or a new driver instance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskclass_int.h"

int sim_disk_refresh_capacity(struct sim_disk *d)
{
    uint8_t cdb[16] = { 0x25 }, buf[32];
    ULONG got;
    if (diskclass_simple_cmd(d, cdb, 10, buf, 8, true, 1, &got) || got < 8) {
        sim_log("disk: READ CAPACITY(10) failed");
        return -1;
    }
    uint32_t last = (uint32_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
    uint32_t bs = (uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 | buf[7];
    uint64_t blocks = (uint64_t)last + 1;
    if (last == 0xFFFFFFFFu) {
        /* READ CAPACITY(16): 9E/10, allocation length 12 (facts §8) */
        uint8_t c16[16] = { 0x9E, 0x10 };
        c16[13] = 12;
        if (diskclass_simple_cmd(d, c16, 16, buf, 12, true, 1, &got) || got < 12) {
            sim_log("disk: READ CAPACITY(16) failed");
            return -1;
        }
        uint64_t l = 0;
        for (int i = 0; i < 8; i++) l = l << 8 | buf[i];
        bs = (uint32_t)buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11];
        blocks = l + 1;
        d->use16 = true;
    }
    if (bs < 512 || (bs & (bs - 1))) {
        sim_log("disk: READ CAPACITY reports block size %u", bs);
        return -1;
    }
    pthread_mutex_lock(&d->lock);
    d->blocks = blocks;
    d->block_size = bs;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static void trim_copy(char *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = 0;
    for (size_t i = 0; i < n; i++) if ((unsigned char)dst[i] < 32 || (unsigned char)dst[i] > 126) dst[i] = '?';
    while (n && dst[n - 1] == ' ') dst[--n] = 0;
}

/* StorPort's enumeration and disk.sys's identity probes: standard INQUIRY, TEST UNIT
 * READY, VPD 00 and the pages it lists that Windows asks for; fills d's identity. */
static int probe_identity(struct sim_disk *d, char *err, size_t errlen)
{
    uint8_t cdb[16], buf[256];
    ULONG got;

    /* StorPort enumeration: standard INQUIRY */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x12; cdb[4] = 96;
    if (diskclass_simple_cmd(d, cdb, 6, buf, 96, true, OTHER_RETRIES, &got) || got < 36) {
        snprintf(err, errlen, "INQUIRY failed (or returned %u bytes < 36): Windows would not create a disk", got);
        return -1;
    }
    memcpy(d->inquiry, buf, 96);
    d->inquiry_len = got;
    if ((buf[0] & 0x1F) != 0) {
        snprintf(err, errlen, "INQUIRY: peripheral device type %u is not a disk (0)", buf[0] & 0x1F);
        return -1;
    }
    trim_copy(d->vendor, buf + 8, 8);
    trim_copy(d->product, buf + 16, 16);
    trim_copy(d->revision, buf + 32, 4);

    /* class driver start: TEST UNIT READY */
    memset(cdb, 0, sizeof(cdb));
    diskclass_simple_cmd(d, cdb, 6, NULL, 0, false, OTHER_RETRIES, NULL);

    /* VPD 00, then the pages it lists that Windows asks for */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x12; cdb[1] = 1; cdb[2] = 0x00; cdb[4] = 255;
    if (diskclass_simple_cmd(d, cdb, 6, buf, 255, true, OTHER_RETRIES, &got) == 0 && got >= 4) {
        unsigned n = buf[3];
        if (n > got - 4) n = got - 4;
        if (n > sizeof(d->vpd_pages)) n = sizeof(d->vpd_pages);
        memcpy(d->vpd_pages, buf + 4, n);
        d->nvpd = n;
    } else {
        sim_log("disk: INQUIRY VPD 00 failed");
    }
    for (unsigned i = 0; i < d->nvpd; i++) {
        uint8_t page = d->vpd_pages[i];
        if (page != 0x80 && page != 0x83 && page != 0xB0 && page != 0xB1 && page != 0xB2) continue;
        memset(cdb, 0, sizeof(cdb));
        cdb[0] = 0x12; cdb[1] = 1; cdb[2] = page; cdb[4] = 255;
        if (diskclass_simple_cmd(d, cdb, 6, buf, 255, true, OTHER_RETRIES, &got) || got < 4) {
            sim_log("disk: INQUIRY VPD %02x (listed in VPD 00) failed", page);
            continue;
        }
        if (buf[1] != page) sim_log("disk: INQUIRY VPD %02x returned page %02x", page, buf[1]);
        unsigned plen = 4u + ((unsigned)buf[2] << 8 | buf[3]);
        if (plen > got) plen = got;
        if (page == 0x80) trim_copy(d->serial, buf + 4, plen - 4 < sizeof(d->serial) - 1 ? plen - 4 : sizeof(d->serial) - 1);
        if (page == 0x83) { memcpy(d->vpd83, buf, plen); d->vpd83_len = plen; }
        if (page == 0xB0) { d->vpdb0_len = plen < sizeof(d->vpdb0) ? plen : sizeof(d->vpdb0); memcpy(d->vpdb0, buf, d->vpdb0_len); }
    }

    return 0;
}

int sim_disk_arrive(struct sim_disk *d, struct sim_adapter *a, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    d->a = a;
    uint8_t cdb[16], buf[256];
    ULONG got;

    if (probe_identity(d, err, errlen)) return -1;
    if (sim_disk_refresh_capacity(d)) { snprintf(err, errlen, "READ CAPACITY failed"); return -1; }

    /* MODE SENSE(6): all pages (media check), then caching; 192-byte allocation, DBD clear */
    memset(cdb, 0, sizeof(cdb));
    cdb[0] = 0x1A; cdb[2] = 0x3F; cdb[4] = 192;
    bool ms_ok = diskclass_simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) == 0 && got >= 4;
    if (!ms_ok) sim_log("disk: MODE SENSE(6) page 3F failed; falling back to page 08");
    cdb[2] = 0x08;
    if (diskclass_simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) == 0 && got >= 4) {
        d->write_protect = buf[2] & 0x80;
        d->fua_supported = buf[2] & 0x10;
        unsigned p = 4 + buf[3];
        while (p + 2 < got && p < 192) {
            if ((buf[p] & 0x3F) == 0x08 && p + 2 < got) { d->wce = buf[p + 2] & 0x04; break; }
            p += 2u + buf[p + 1];
        }
    } else {
        sim_log("disk: MODE SENSE(6) caching page failed");
    }
    cdb[2] = 0x1C;   /* informational exceptions: failure is fine */
    diskclass_simple_cmd(d, cdb, 6, buf, 192, true, 0, NULL);

    /* disk.sys' SMART probe and, with WmiDataProvider (preset TRUE), StorPort's WMI
     * registration (facts §11.11); a failure only means "not supported". */
    struct sim_request *pr = malloc(sizeof(*pr));
    char m[200];
    if (pr && sim_disk_class_step(d, "smart", pr, m, sizeof(m)) == 0) sim_log("disk: %s", m);
    if (pr && a->cfg->WmiDataProvider && sim_disk_class_step(d, "wmi", pr, m, sizeof(m)) == 0) sim_log("disk: %s", m);
    free(pr);

    sim_disk_attach(d, a);
    return 0;
}

/* After BusChangeDetected StorPort re-enumerates the bus and the class driver probes
 * the disk as a new one (facts §11.10): INQUIRY, VPD 00 / 80 / 83, REPORT LUNS, READ
 * CAPACITY. A disk whose identity (INQUIRY names, serial, page-83 designators) differs
 * from the first enumeration's is a different disk to Windows (a new PDO; the old one
 * is removed, the boot disk is lost): IDENTITY finding. */
int sim_disk_rescan(struct sim_disk *d)
{
    struct sim_disk t;
    char err[256] = "";
    memcpy(&t, d, sizeof(t));
    pthread_mutex_init(&t.lock, NULL);
    memset(t.srb_status_count, 0, sizeof(t.srb_status_count));
    memset(t.sense_key_count, 0, sizeof(t.sense_key_count));
    t.errors = t.retries = t.unit_attentions = 0;
    int rc = probe_identity(&t, err, sizeof(err));
    if (rc == 0) {
        uint8_t cdb[16] = { 0xA0 }, buf[64];   /* REPORT LUNS, select report 0, 64 bytes */
        ULONG got;
        cdb[9] = sizeof(buf);
        if (diskclass_simple_cmd(&t, cdb, 12, buf, sizeof(buf), true, OTHER_RETRIES, &got) == 0 && got >= 16) {
            uint32_t len = (uint32_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
            static const uint8_t lun0[8];
            if (len != 8 || memcmp(buf + 8, lun0, 8))
                sim_finding("IDENTITY", "REPORT LUNS after a bus change lists %u byte(s) of LUNs, not LUN 0 alone", len);
        } else {
            sim_log("disk: REPORT LUNS failed (StorPort then scans LUNs itself)");
        }
        rc = sim_disk_refresh_capacity(&t);
    }
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < 64; i++) d->srb_status_count[i] += t.srb_status_count[i];
    for (unsigned i = 0; i < 16; i++) d->sense_key_count[i] += t.sense_key_count[i];
    d->errors += t.errors; d->retries += t.retries; d->unit_attentions += t.unit_attentions;
    if (rc == 0) { d->blocks = t.blocks; d->block_size = t.block_size; d->use16 = t.use16; }
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_destroy(&t.lock);
    if (rc) { sim_log("disk: re-enumeration failed: %s", err[0] ? err : "READ CAPACITY failed"); return -1; }
    __atomic_fetch_add(&d->rescans, 1, __ATOMIC_RELAXED);
    if (strcmp(t.vendor, d->vendor) || strcmp(t.product, d->product) || strcmp(t.revision, d->revision))
        sim_finding("IDENTITY", "re-enumeration: INQUIRY says '%s' '%s' '%s', first enumeration '%s' '%s' '%s'",
                    t.vendor, t.product, t.revision, d->vendor, d->product, d->revision);
    if (strcmp(t.serial, d->serial))
        sim_finding("IDENTITY", "re-enumeration: serial (VPD 80) '%s', first enumeration '%s': Windows sees another disk",
                    t.serial, d->serial);
    if (t.vpd83_len != d->vpd83_len || memcmp(t.vpd83, d->vpd83, d->vpd83_len))
        sim_finding("IDENTITY", "re-enumeration: the VPD 83 designators changed (%u bytes, first enumeration %u)",
                    t.vpd83_len, d->vpd83_len);
    return 0;
}

void sim_disk_attach(struct sim_disk *d, struct sim_adapter *a)
{
    d->a = a;
    /* transfer limits as the class driver derives them (facts §2 NumberOfPhysicalBreaks
     * note): ScsiPort meaning, breaks = elements - 1, so a buffer of `breaks` pages may
     * start unaligned and use breaks + 1 elements. */
    ULONG mtl = a->cfg->MaximumTransferLength, breaks = a->cfg->NumberOfPhysicalBreaks;
    uint64_t lim = (uint64_t)breaks * PG;
    if (mtl < lim) lim = mtl;
    if (a->opts.dump_mode) lim = mtl;   /* the dump port follows MaximumTransferLength alone (facts §11.8) */
    if (lim > (1u << 20)) lim = 1u << 20;
    lim &= ~(uint64_t)(d->block_size - 1);
    if (lim < d->block_size) lim = d->block_size;
    d->max_transfer = (unsigned)lim;
    d->max_pages = a->opts.dump_mode ? (unsigned)(lim / PG) + 1 : breaks + 1;
}
