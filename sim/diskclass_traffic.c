/*
 * Disk-class layer: class traffic beyond reads, writes and flushes (issue 11 item 12):
 * disk.sys' SMART probe, StorPort's WMI registration, classpnp's RESET_BUS, START STOP
 * UNIT with IMMED and autosense disabled (sim_disk_class_step: the script command
 * `class`, and the probes at arrival), and disk.sys' DisableWriteCache (MODE SENSE /
 * MODE SELECT of the caching page; after a FUA write the disk refused, diskclass_io.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskclass_int.h"

/* ---- issue 11 item 12: class traffic beyond reads, writes and flushes ---------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* MODE SENSE(6) caching page (current values); 0 and the 20-byte page in page[]. */
static int caching_page(struct sim_disk *d, uint8_t *page, uint8_t *dsp)
{
    uint8_t cdb[16] = { 0x1A, 0, 0x08, 0, 192 }, buf[192];
    ULONG got;
    if (diskclass_simple_cmd(d, cdb, 6, buf, 192, true, 1, &got) || got < 4) return -1;
    unsigned p = 4u + buf[3];
    if (dsp) *dsp = buf[2];
    while (p + 2 < got) {
        if ((buf[p] & 0x3F) == 0x08 && p + 20 <= got) { memcpy(page, buf + p, 20); return 0; }
        p += 2u + buf[p + 1];
    }
    return -1;
}

int sim_disk_disable_write_cache(struct sim_disk *d)
{
    /* disk.sys DisableWriteCache -> DiskGetCacheInformation (MODE SENSE 08) ->
     * DiskSetCacheInformation (MODE SELECT(6), PF, the caching page with WCE clear). */
    uint8_t page[20], list[24], cdb[16] = { 0x15, 0x10 };
    __atomic_fetch_add(&d->wce_disable_attempts, 1, __ATOMIC_RELAXED);
    if (caching_page(d, page, NULL)) { sim_log("disk: DisableWriteCache: caching page unreadable"); return -1; }
    if (page[2] & 0x04) {
        memset(list, 0, 4);                   /* header: no block descriptor */
        memcpy(list + 4, page, 20);
        list[4] &= 0x3F;                      /* PS is reserved in MODE SELECT */
        list[6] &= (uint8_t)~0x04;            /* WCE off */
        cdb[4] = sizeof(list);
        if (diskclass_simple_cmd(d, cdb, 6, list, sizeof(list), false, OTHER_RETRIES, NULL))
            sim_log("disk: DisableWriteCache: MODE SELECT failed (the write cache stays on)");
    }
    uint8_t dsp = 0;
    if (caching_page(d, page, &dsp)) return -1;
    pthread_mutex_lock(&d->lock);
    d->wce = (page[2] & 0x04) != 0;
    pthread_mutex_unlock(&d->lock);
    sim_log("disk: DisableWriteCache: write cache now %s", d->wce ? "ON" : "off");
    return d->wce ? -1 : 0;
}

/* One SRB without retries (the probes: disk.sys judges the first answer). */
static int once(struct sim_disk *d, struct sim_request *r)
{
    int rc = sim_port_execute(d->a, r);
    if (rc == 0) diskclass_count_completion(d, r);
    return rc;
}

int sim_disk_class_step(struct sim_disk *d, const char *name, struct sim_request *r, char *msg, size_t msglen)
{
    static const uint8_t none[16];
    msg[0] = 0;
    if (!strcmp(name, "smart")) {
        /* disk.sys DiskGetIdentifyInfo (diskwmi.c, the SMART probe at start):
         * IOCTL_SCSI_MINIPORT through SRB_FUNCTION_IO_CONTROL, SRB_IO_CONTROL signature
         * "SCSIDISK", ControlCode IOCTL_SCSI_MINIPORT_IDENTIFY (0x1B0501), then
         * SENDCMDINPARAMS {cBufferSize 512, bCommandReg ID_CMD 0xEC, bDriveNumber};
         * buffer: header + max(SENDCMDINPARAMS 33, SENDCMDOUTPARAMS 16 - 1 + 512). */
        enum { HDR = 28, BODY = 16 - 1 + 512, LEN = HDR + BODY };
        uint8_t b[LEN], after[LEN];
        memset(b, 0, sizeof(b));
        put_le32(b, HDR);                               /* HeaderLength */
        memcpy(b + 4, "SCSIDISK", 8);
        put_le32(b + 12, 2 * DISK_TIMEOUT);             /* Timeout */
        put_le32(b + 16, 0x1B0501);                     /* ControlCode */
        put_le32(b + 24, BODY);                         /* Length */
        put_le32(b + HDR, 512);                         /* cBufferSize */
        b[HDR + 4 + 6] = 0xEC;                          /* irDriveRegs.bCommandReg = ID_CMD */
        b[HDR + 12] = 0;                                /* bDriveNumber = TargetId */
        struct sim_buf *buf = sim_buf_alloc(&d->a->mem, LEN, false, 0);
        if (!buf) return -1;
        sim_buf_write(d->a->dev, buf, 0, b, LEN);
        sim_request_init(r, none, 0, buf, LEN, true, true);
        r->function = SRB_FUNCTION_IO_CONTROL;
        r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
        r->queue_action = 0;
        r->sense_len = 0;
        int rc = once(d, r);
        sim_buf_read(d->a->dev, buf, 0, after, LEN);
        bool touched = memcmp(b, after, LEN) != 0;
        snprintf(msg, msglen, "SMART probe (SCSIDISK, IOCTL_SCSI_MINIPORT_IDENTIFY): SRB status 0x%02x, buffer %s",
                 r->srb_status, touched ? "CHANGED" : "untouched");
        if (touched && SRB_STATUS(r->srb_status) != SRB_STATUS_SUCCESS)
            sim_finding("SRB", "SMART probe failed (SRB status 0x%02x) but the miniport wrote into its buffer", r->srb_status);
        r->buf = NULL;
        if (!r->buffer_held) sim_buf_free(&d->a->mem, buf);
        return rc;
    }
    if (!strcmp(name, "wmi")) {
        /* StorPort's WMI registration for a miniport that left WmiDataProvider TRUE:
         * SCSI_WMI_REQUEST_BLOCK, WMISubFunction IRP_MN_REGINFO (8, over ScsiStatus),
         * WMIFlags SRB_WMI_FLAGS_ADAPTER_REQUEST (over QueueAction), DataPath NULL. */
        struct sim_buf *buf = sim_buf_alloc(&d->a->mem, 4096, false, 0);
        if (!buf) return -1;
        uint8_t z[4096] = { 0 };
        sim_buf_write(d->a->dev, buf, 0, z, sizeof(z));
        sim_request_init(r, none, 0, buf, 4096, true, false);
        r->function = SRB_FUNCTION_WMI;
        r->pnp_action = 8;                              /* IRP_MN_REGINFO */
        r->pnp_flags = SRB_WMI_FLAGS_ADAPTER_REQUEST;
        r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_NO_QUEUE_FREEZE;
        r->sense_len = 0;
        int rc = once(d, r);
        snprintf(msg, msglen, "WMI SRB (IRP_MN_REGINFO, WmiDataProvider %s): SRB status 0x%02x, %u bytes",
                 d->a->cfg->WmiDataProvider ? "TRUE" : "FALSE", r->srb_status, r->out_transfer_len);
        r->buf = NULL;
        if (!r->buffer_held) sim_buf_free(&d->a->mem, buf);
        return rc;
    }
    if (!strcmp(name, "reset-bus")) {
        /* classpnp ResetBus (a disk that stays BUSY): SRB_FUNCTION_RESET_BUS through
         * IRP_MJ_SCSI, which StorPort hands to HwStartIo (viostor b54b88d5). */
        sim_request_init(r, none, 0, NULL, 0, false, false);
        r->function = SRB_FUNCTION_RESET_BUS;
        r->srb_flags = 0;
        r->sense_len = 0;
        int rc = once(d, r);
        snprintf(msg, msglen, "SRB_FUNCTION_RESET_BUS: SRB status 0x%02x", r->srb_status);
        return rc;
    }
    if (!strcmp(name, "stop-immed") || !strcmp(name, "start-immed") || !strcmp(name, "immed-invalid")) {
        /* classpnp ClassSendStartUnit / power: START STOP UNIT with IMMED and
         * SRB_FLAGS_DISABLE_AUTOSENSE. A sense buffer is still given (pessimistic): the
         * port checks it is left alone. immed-invalid: a 5-byte CDB (refused). */
        uint8_t cdb[16] = { 0x1B, 0x01, 0, 0, (uint8_t)(!strcmp(name, "start-immed") ? 0x01 : 0x00) };
        sim_request_init(r, cdb, !strcmp(name, "immed-invalid") ? 5 : 6, NULL, 0, false, false);
        r->srb_flags = SRB_FLAGS_NO_DATA_TRANSFER | SRB_FLAGS_DISABLE_AUTOSENSE | SRB_FLAGS_DISABLE_SYNCH_TRANSFER |
                       SRB_FLAGS_NO_QUEUE_FREEZE;
        int rc = once(d, r);
        snprintf(msg, msglen, "START STOP UNIT (IMMED, autosense disabled): SRB status 0x%02x, SCSI status 0x%02x",
                 r->srb_status, r->scsi_status);
        return rc;
    }
    if (!strcmp(name, "disable-write-cache")) {
        int rc = sim_disk_disable_write_cache(d);
        memset(r, 0, sizeof(*r));
        r->srb_status = rc == 0 ? SRB_STATUS_SUCCESS : SRB_STATUS_ERROR;
        snprintf(msg, msglen, "DisableWriteCache: write cache %s", d->wce ? "still ON" : "off");
        return 0;
    }
    snprintf(msg, msglen, "unknown class step '%s' (smart, wmi, reset-bus, stop-immed, start-immed, "
                          "immed-invalid, disable-write-cache)", name);
    return -1;
}
