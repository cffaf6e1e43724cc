/*
 * aerovblk-sim result reporting: the JSON text builder, what Windows would see
 * (main_describe), SRB results, the workload report, in JSON or text.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

void jsf(struct js *j, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(j->p + j->len, j->cap - j->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < j->cap - j->len) { j->len += (size_t)n; return; }
        j->cap = j->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        j->p = realloc(j->p, j->cap);
    }
}
void jstr(struct js *j, const char *key, const char *val)
{
    char e[1024];
    sim_json_escape(e, sizeof(e), val ? val : "");
    jsf(j, "\"%s\":\"%s\",", key, e);
}

/* Device truth from the common configuration registers (harness access, not counted). */
struct devstate { bool ok; uint64_t offered, negotiated; unsigned queue_size, num_queues, status; };
static struct devstate device_state(struct session *s)
{
    struct devstate ds = { 0 };
    struct sim_adapter *a = s->a;
    if (!a || !a->pci.vreg[1].present || !a->pci.bar[a->pci.vreg[1].bar].present) return ds;
    sim_dev *d = s->dev;
    uint64_t c = a->pci.bar[a->pci.vreg[1].bar].gpa + a->pci.vreg[1].off;
    for (unsigned i = 0; i < 2; i++) {
        d->ops->mmio_write(d, c + 0x00, 4, i);
        ds.offered |= (uint64_t)d->ops->mmio_read(d, c + 0x04, 4) << (32 * i);
        d->ops->mmio_write(d, c + 0x08, 4, i);
        ds.negotiated |= (uint64_t)d->ops->mmio_read(d, c + 0x0C, 4) << (32 * i);
    }
    ds.num_queues = d->ops->mmio_read(d, c + 0x12, 2);
    ds.status = d->ops->mmio_read(d, c + 0x14, 1);
    d->ops->mmio_write(d, c + 0x16, 2, 0);
    ds.queue_size = d->ops->mmio_read(d, c + 0x18, 2);
    ds.ok = true;
    return ds;
}

const char *srb_status_name(unsigned st)
{
    switch (SRB_STATUS(st)) {
    case 0x00: return "PENDING"; case 0x01: return "SUCCESS"; case 0x02: return "ABORTED";
    case 0x04: return "ERROR"; case 0x05: return "BUSY"; case 0x06: return "INVALID_REQUEST";
    case 0x07: return "INVALID_PATH_ID"; case 0x08: return "NO_DEVICE"; case 0x09: return "TIMEOUT";
    case 0x0B: return "COMMAND_TIMEOUT"; case 0x0E: return "BUS_RESET"; case 0x12: return "DATA_OVERRUN";
    case 0x16: return "REQUEST_FLUSHED"; case 0x20: return "INVALID_LUN"; case 0x21: return "INVALID_TARGET_ID";
    case 0x22: return "BAD_FUNCTION"; case 0x23: return "ERROR_RECOVERY"; case 0x24: return "NOT_POWERED";
    case 0x30: return "INTERNAL_ERROR";
    default: return "?";
    }
}

void main_hexdump(FILE *f, const uint8_t *p, unsigned n)
{
    for (unsigned i = 0; i < n; i += 16) {
        fprintf(f, "  %04x:", i);
        for (unsigned k = 0; k < 16; k++) {
            if (i + k < n) fprintf(f, " %02x", p[i + k]);
            else fputs("   ", f);
        }
        fputs("  |", f);
        for (unsigned k = 0; k < 16 && i + k < n; k++) fputc(isprint(p[i + k]) ? p[i + k] : '.', f);
        fputs("|\n", f);
    }
}

/* ------------------------------------------------------------------------------ */
void main_print_result(struct session *s, const char *what, const struct sim_request *r,
                         const uint8_t *data, unsigned n)
{
    bool sv = r->srb_status & SRB_STATUS_AUTOSENSE_VALID;
    if (s->o->json) {
        jsf(&s->out, "\"%s\":{\"srb_status\":%u,\"srb_status_name\":\"%s\",\"autosense_valid\":%s,"
                     "\"scsi_status\":%u,", what, r->srb_status, srb_status_name(r->srb_status),
            sv ? "true" : "false", r->scsi_status);
        if (sv) jsf(&s->out, "\"sense_key\":%u,\"asc\":%u,\"ascq\":%u,", r->sense[2] & 15, r->sense[12], r->sense[13]);
        jsf(&s->out, "\"transferred\":%u,\"data\":\"", r->out_transfer_len);
        for (unsigned i = 0; i < n; i++) jsf(&s->out, "%02x", data[i]);
        jsf(&s->out, "\"},");
        return;
    }
    printf("%s: srb_status 0x%02x (%s%s)  scsi_status 0x%02x", what, r->srb_status, srb_status_name(r->srb_status),
           sv ? ", autosense valid" : "", r->scsi_status);
    if (sv) printf("  sense key %X asc %02X ascq %02X", r->sense[2] & 15, r->sense[12], r->sense[13]);
    printf("  transferred %u\n", r->out_transfer_len);
    if (n) main_hexdump(stdout, data, n);
}

uint64_t main_sum6(const uint64_t *v) { uint64_t t = 0; for (int i = 0; i < SIM_MMIO_KINDS; i++) t += v[i]; return t; }

void wl_report(struct session *s)
{
    struct sim_workload_result *w = &s->last_wl;
    struct sim_counters *b = &s->wl_before, *c = &s->a->ctr;
    uint64_t ios = w->ios ? w->ios : 1;
    /* the read-back pass is verification, not workload: its accesses are left out */
    uint64_t mr = main_sum6(c->mmio_reads) - main_sum6(b->mmio_reads) - w->rb_mmio_reads;
    uint64_t mw = main_sum6(c->mmio_writes) - main_sum6(b->mmio_writes) - w->rb_mmio_writes;
    uint64_t db = c->doorbells - b->doorbells - w->rb_doorbells, irq = c->interrupts - b->interrupts - w->rb_interrupts;
    uint64_t dpc = c->dpcs - b->dpcs - w->rb_dpcs;
    double secs = (double)w->elapsed_ns / 1e9;
    static const char *modes[] = { "read", "write", "randread", "randwrite", "randrw" };
    if (s->o->json) {
        jsf(&s->out, "\"workload\":{\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"seed\":%llu,\"ios\":%llu,\"reads\":%llu,"
                     "\"writes\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,"
                     "\"image_chunks_checked\":%llu,\"image_mismatches\":%llu,\"seconds\":%.3f,\"iops\":%.0f,"
                     "\"avg_latency_us\":%.1f,\"max_latency_us\":%.1f,\"mmio_reads\":%llu,\"mmio_writes\":%llu,"
                     "\"doorbells\":%llu,\"interrupts\":%llu,\"dpcs\":%llu,\"busy_requeues\":%llu,"
                     "\"no_device\":%llu,\"power_cycles\":%llu,\"fua_writes\":%llu,"
                     "\"readback_reads\":%llu,\"readback_mismatches\":%llu,\"image_check\":%s,\"corrupted_chunks\":%llu,"
                     "\"per_io\":{\"mmio_reads\":%.3f,\"mmio_writes\":%.3f,\"doorbells\":%.3f,\"interrupts\":%.3f}},",
            modes[s->last_wl_opts.mode], s->last_wl_opts.bs, s->last_wl_opts.qd, (unsigned long long)s->last_wl_opts.seed,
            (unsigned long long)w->ios, (unsigned long long)w->reads, (unsigned long long)w->writes,
            (unsigned long long)w->errors, (unsigned long long)w->mismatches, (unsigned long long)w->bytes_read,
            (unsigned long long)w->bytes_written, (unsigned long long)w->image_chunks_checked,
            (unsigned long long)w->image_mismatches, secs, secs > 0 ? (double)w->ios / secs : 0.0,
            w->ios ? (double)w->total_latency_ns / (double)w->ios / 1000.0 : 0.0, (double)w->max_latency_ns / 1000.0,
            (unsigned long long)mr, (unsigned long long)mw, (unsigned long long)db, (unsigned long long)irq,
            (unsigned long long)dpc, (unsigned long long)(c->srbs_busy - b->srbs_busy - w->rb_busy),
            (unsigned long long)w->no_device, (unsigned long long)s->last_wl_power_cycles,
            (unsigned long long)w->fua_writes,
            (unsigned long long)w->readback_reads, (unsigned long long)w->readback_mismatches,
            s->last_wl_opts.no_image_check ? "false" : "true", (unsigned long long)w->corrupted_chunks,
            (double)mr / (double)ios, (double)mw / (double)ios, (double)db / (double)ios, (double)irq / (double)ios);
        return;
    }
    printf("Workload (%s, bs %u, qd %u, seed %llu):\n", modes[s->last_wl_opts.mode], s->last_wl_opts.bs, s->last_wl_opts.qd,
           (unsigned long long)s->last_wl_opts.seed);
    printf("  I/Os            %llu (%llu reads, %llu writes) in %.2f s, %.0f IOPS, avg %.0f us, max %.0f us\n",
           (unsigned long long)w->ios, (unsigned long long)w->reads, (unsigned long long)w->writes, secs,
           secs > 0 ? (double)w->ios / secs : 0.0,
           w->ios ? (double)w->total_latency_ns / (double)w->ios / 1000.0 : 0.0, (double)w->max_latency_ns / 1000.0);
    printf("  data            %.1f MiB read, %.1f MiB written\n", (double)w->bytes_read / 1048576.0,
           (double)w->bytes_written / 1048576.0);
    printf("  verification    %llu errors, %llu read-back mismatches; %llu written chunks checked in the image file: %llu mismatches\n",
           (unsigned long long)w->errors, (unsigned long long)w->mismatches, (unsigned long long)w->image_chunks_checked,
           (unsigned long long)w->image_mismatches);
    printf("  read-back pass  %llu written chunks read again through the driver: %llu sector mismatches\n",
           (unsigned long long)w->readback_reads, (unsigned long long)w->readback_mismatches);
    if (s->last_wl_opts.tolerate_removal || s->last_wl_power_cycles)
        printf("  lifecycle       %llu requests failed with NO_DEVICE (removal expected: %s); %llu sleep/resume cycles\n",
               (unsigned long long)w->no_device, s->last_wl_opts.tolerate_removal ? "yes" : "no",
               (unsigned long long)s->last_wl_power_cycles);
    printf("  VM exits        %llu MMIO reads, %llu MMIO writes (%llu doorbells); %llu interrupts, %llu DPCs\n",
           (unsigned long long)mr, (unsigned long long)mw, (unsigned long long)db, (unsigned long long)irq,
           (unsigned long long)dpc);
    printf("  per I/O         %.3f MMIO reads, %.3f MMIO writes, %.3f doorbells, %.3f interrupts\n",
           (double)mr / (double)ios, (double)mw / (double)ios, (double)db / (double)ios, (double)irq / (double)ios);
}

void main_describe(struct session *s)
{
    struct sim_disk *d = &s->disk;
    struct sim_adapter *a = s->a;
    struct devstate ds = device_state(s);
    char feat[512] = "";
    size_t fl = 0;
    for (unsigned bit = 0; bit < 64; bit++) {
        if (!(ds.negotiated & (1ull << bit))) continue;
        const char *nm = AvDiagFeatureName(bit);
        char tmp[32];
        if (!nm) { snprintf(tmp, sizeof(tmp), "bit%u", bit); nm = tmp; }
        fl += (size_t)snprintf(feat + fl, sizeof(feat) - fl, "%s%s", fl ? " " : "", nm);
        if (fl >= sizeof(feat)) break;
    }
    const char *imode = a->opts.dump_mode ? "polled (dump mode)" : a->use_msi ? "MSI-X" : "INTx";
    if (s->o->json) {
        const uint8_t *c = a->pci.cfg;
        jsf(&s->out, "\"pci_id\":\"PCI\\\\VEN_%02X%02X&DEV_%02X%02X&SUBSYS_%02X%02X%02X%02X&REV_%02X\",",
            c[1], c[0], c[3], c[2], c[0x2F], c[0x2E], c[0x2D], c[0x2C], c[8]);
        jsf(&s->out, "\"identity\":{");
        jstr(&s->out, "vendor", d->vendor);
        jstr(&s->out, "product", d->product);
        jstr(&s->out, "revision", d->revision);
        jstr(&s->out, "serial", d->serial);
        s->out.len--;
        jsf(&s->out, "},\"capacity_blocks\":%llu,\"capacity_bytes\":%llu,\"block_size\":%u,\"write_protect\":%s,"
                     "\"write_cache\":%s,\"read_capacity_16\":%s,\"max_transfer\":%u,\"queue_depth\":%u,",
            (unsigned long long)d->blocks, (unsigned long long)(d->blocks * d->block_size), d->block_size,
            d->write_protect ? "true" : "false", d->wce ? "true" : "false", d->use16 ? "true" : "false",
            d->max_transfer, a->queue_depth);
        jsf(&s->out, "\"features_offered\":\"0x%016llx\",\"features_negotiated\":\"0x%016llx\",\"features\":\"%s\","
                     "\"queue_size\":%u,\"num_queues\":%u,\"device_status\":%u,\"interrupt_mode\":\"%s\",\"msix_messages\":%u,"
                     "\"synchronization\":\"%s\",\"vpd_pages\":\"",
            (unsigned long long)ds.offered, (unsigned long long)ds.negotiated, feat, ds.queue_size, ds.num_queues,
            ds.status, imode, a->use_msi ? a->pci.nmsg : 0,
            a->sync_model == StorSynchronizeFullDuplex ? "full-duplex" : "half-duplex");
        for (unsigned i = 0; i < d->nvpd; i++) jsf(&s->out, "%s%02x", i ? " " : "", d->vpd_pages[i]);
        jsf(&s->out, "\",");
        return;
    }
    const uint8_t *c = a->pci.cfg;
    printf("What Windows would see:\n");
    printf("  PCI function    PCI\\VEN_%02X%02X&DEV_%02X%02X&SUBSYS_%02X%02X%02X%02X&REV_%02X, memory BARs:",
           c[1], c[0], c[3], c[2], c[0x2F], c[0x2E], c[0x2D], c[0x2C], c[8]);
    for (unsigned i = 0; i < 6; i++)
        if (a->pci.bar[i].present) printf(" BAR%u %llu KiB", i, (unsigned long long)(a->pci.bar[i].len >> 10));
    printf("\n");
    printf("  disk            \"%s %s\" rev \"%s\", serial \"%s\"\n", d->vendor, d->product, d->revision, d->serial);
    printf("  capacity        %llu blocks of %u bytes = %llu bytes (%.1f MiB)%s\n", (unsigned long long)d->blocks,
           d->block_size, (unsigned long long)(d->blocks * d->block_size),
           (double)(d->blocks * d->block_size) / 1048576.0, d->use16 ? ", READ CAPACITY(16)" : "");
    printf("  caching         write cache %s%s; VPD pages:", d->wce ? "enabled" : "disabled",
           d->write_protect ? ", WRITE PROTECTED" : "");
    for (unsigned i = 0; i < d->nvpd; i++) printf(" %02x", d->vpd_pages[i]);
    printf("\n  transfers       up to %u bytes per request (MaximumTransferLength %u, NumberOfPhysicalBreaks %u), queue depth %u\n",
           d->max_transfer, a->cfg->MaximumTransferLength, a->cfg->NumberOfPhysicalBreaks, a->queue_depth);
    printf("  virtio          features 0x%llx: %s\n", (unsigned long long)ds.negotiated, feat);
    printf("  queue           %u entries (device has %u queue%s)\n", ds.queue_size, ds.num_queues, ds.num_queues == 1 ? "" : "s");
    printf("  interrupts      %s", imode);
    if (a->use_msi) printf(" with %u message%s (table size %u)", a->pci.nmsg, a->pci.nmsg == 1 ? "" : "s", a->pci.msix_table_size);
    printf(", %s StorPort\n", a->sync_model == StorSynchronizeFullDuplex ? "full-duplex" : "half-duplex");
}

