/*
 * aerovblk-sim commands (cdb, ioctl, run) and the script interpreter (expectations,
 * delayed device actions, lifecycle steps).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

static int parse_hex_bytes(const char *p, uint8_t *out, unsigned max)
{
    unsigned n = 0;
    while (p && *p) {
        while (*p && !isxdigit((unsigned char)*p)) p++;
        if (!*p) break;
        if (!isxdigit((unsigned char)p[1]) || n >= max) return -1;
        char h[3] = { p[0], p[1], 0 };
        out[n++] = (uint8_t)strtoul(h, NULL, 16);
        p += 2;
    }
    return (int)n;
}

static bool is_rw_opcode(uint8_t op)
{
    return op == 0x08 || op == 0x0A || op == 0x28 || op == 0x2A || op == 0xA8 || op == 0xAA || op == 0x88 || op == 0x8A;
}

static int cmd_cdb(struct session *s, struct opts *o)
{
    uint8_t cdb[16] = { 0 };
    int n = parse_hex_bytes(o->cdb_hex, cdb, 16);
    if (n <= 0) { fprintf(stderr, "cdb: give 1-16 hex bytes, e.g. \"12 00 00 00 24 00\"\n"); return -1; }
    uint8_t *data = NULL;
    unsigned len = 0;
    bool out = false;
    if (o->out_file) {
        FILE *f = fopen(o->out_file, "rb");
        if (!f) { fprintf(stderr, "cdb: %s: %s\n", o->out_file, strerror(errno)); return -1; }
        data = malloc(1 << 20);
        len = (unsigned)fread(data, 1, 1 << 20, f);
        fclose(f);
        out = true;
    } else if (o->in_len) {
        len = o->in_len;
        data = calloc(1, len);
    }
    struct sim_buf *b = len ? sim_buf_alloc(&s->a->mem, len, is_rw_opcode(cdb[0]), 0) : NULL;
    if (len && !b) { free(data); fprintf(stderr, "cdb: no guest memory for %u bytes\n", len); return -1; }
    if (b) sim_buf_write(s->dev, b, 0, data, len);   /* zeroes for --in */
    struct sim_request *r = &s->last;
    sim_request_init(r, cdb, (unsigned)n, b, len, len && !out, out);
    int rc = sim_port_execute(s->a, r);
    unsigned got = 0;
    if (b && !out) {
        got = r->out_transfer_len < len ? r->out_transfer_len : len;
        sim_buf_read(s->dev, b, 0, data, got);
    }
    s->last_data_len = got < sizeof(s->last_data) ? got : sizeof(s->last_data);
    if (got) memcpy(s->last_data, data, s->last_data_len);
    s->have_last = true;
    main_print_result(s, "cdb", r, data, got);
    r->buf = NULL;
    if (!r->buffer_held) sim_buf_free(&s->a->mem, b);
    free(data);
    return rc;
}

static int cmd_ioctl(struct session *s, struct opts *o)
{
    size_t payload = sizeof(AEROVBLK_QUERY_INFO);
    size_t bufsz = o->buffer_size >= 0 ? (size_t)o->buffer_size : AVDIAG_SRBIO_SIZE + payload;
    uint8_t *buf = calloc(1, bufsz + AVDIAG_SRBIO_SIZE);
    if (o->fill_seed >= 0) {   /* random contents (soak bad input): the header goes on top */
        uint64_t x = (uint64_t)o->fill_seed * 0x9E3779B97F4A7C15ull + 1;
        for (size_t i = 0; i < bufsz; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
    }
    AVDIAG_SRBIO h;
    AvDiagSrbIoInitQuery(&h, (uint32_t)(bufsz >= AVDIAG_SRBIO_SIZE ? bufsz - AVDIAG_SRBIO_SIZE : 0));
    if (o->signature) { memset(h.Signature, 0, sizeof(h.Signature)); memcpy(h.Signature, o->signature, strnlen(o->signature, 8)); }
    if (o->code >= 0) h.ControlCode = (uint32_t)o->code;
    if (o->header_len >= 0) h.HeaderLength = (uint32_t)o->header_len;
    if (o->length >= 0) h.Length = (uint32_t)o->length;
    if (o->return_code >= 0) h.ReturnCode = (uint32_t)o->return_code;
    uint8_t hdr[AVDIAG_SRBIO_SIZE];
    AvDiagSrbIoStore(&h, hdr, sizeof(hdr));
    memcpy(buf, hdr, bufsz < sizeof(hdr) ? bufsz : sizeof(hdr));   /* a short buffer gets a cut header */
    uint8_t *sent = o->raw ? malloc(bufsz + 1) : NULL;
    if (sent) memcpy(sent, buf, bufsz);

    struct sim_buf *b = bufsz ? sim_buf_alloc(&s->a->mem, bufsz, false, 0) : NULL;
    if (b) sim_buf_write(s->dev, b, 0, buf, bufsz);
    struct sim_request *r = &s->last;
    uint8_t nocdb[1] = { 0 };
    sim_request_init(r, nocdb, 0, b, (ULONG)bufsz, true, true);
    r->function = SRB_FUNCTION_IO_CONTROL;
    r->srb_flags = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT | SRB_FLAGS_NO_QUEUE_FREEZE;
    r->queue_action = 0;
    r->timeout = 10;
    int rc = sim_port_execute(s->a, r);
    size_t got = r->out_transfer_len < bufsz ? r->out_transfer_len : bufsz;
    if (b) sim_buf_read(s->dev, b, 0, buf, bufsz);
    r->buf = NULL;
    if (!r->buffer_held) sim_buf_free(&s->a->mem, b);
    s->have_last = true;
    s->last_data_len = 0;

    AVDIAG_REPLY rep;
    AVDIAG_REPLY_STATUS rs = AvDiagParseReply(buf, got, &rep);
    s->last_return_code = rep.Header.ReturnCode;
    s->have_info = false;
    if (rs == AVDIAG_REPLY_OK) {
        AvDiagDecode(rep.Payload, rep.PayloadLength, &s->last_info);
        s->have_info = true;
    }
    const char *ntname = AvDiagNtStatusName(rep.Header.ReturnCode);
    if (s->o->json) {
        jsf(&s->out, "\"ioctl\":{\"srb_status\":%u,\"srb_status_name\":\"%s\",\"transferred\":%zu,"
                     "\"return_code\":%u,\"return_code_name\":\"%s\",\"length\":%u,\"reply\":\"%s\"",
            r->srb_status, srb_status_name(r->srb_status), got, rep.Header.ReturnCode, ntname ? ntname : "?",
            rep.Header.Length, AvDiagReplyStatusText(rs));
        if (sent) {   /* every byte of the buffer, not through the reply decoder */
            jsf(&s->out, ",\"sent\":\"");
            for (size_t i = 0; i < bufsz; i++) jsf(&s->out, "%02x", sent[i]);
            jsf(&s->out, "\",\"raw\":\"");
            for (size_t i = 0; i < bufsz; i++) jsf(&s->out, "%02x", buf[i]);
            jsf(&s->out, "\"");
        }
        if (s->have_info) {
            size_t need = AvDiagFormatJson(&s->last_info, "simulator", NULL, 0);
            char *t = malloc(need + 1);
            AvDiagFormatJson(&s->last_info, "simulator", t, need + 1);
            jsf(&s->out, ",\"query\":%s", t);
            free(t);
        }
        jsf(&s->out, "},");
    } else {
        printf("ioctl: srb_status 0x%02x (%s)  transferred %zu  ReturnCode 0x%08x (%s)  Length %u  reply: %s\n",
               r->srb_status, srb_status_name(r->srb_status), got, rep.Header.ReturnCode, ntname ? ntname : "?",
               rep.Header.Length, AvDiagReplyStatusText(rs));
        if (sent) {
            printf("ioctl sent (%zu bytes):\n", bufsz);
            main_hexdump(stdout, sent, (unsigned)bufsz);
            printf("ioctl returned buffer:\n");
            main_hexdump(stdout, buf, (unsigned)bufsz);
        }
        if (s->have_info) {
            size_t need = AvDiagFormatText(&s->last_info, "simulator", NULL, 0);
            char *t = malloc(need + 1);
            AvDiagFormatText(&s->last_info, "simulator", t, need + 1);
            fputs(t, stdout);
            free(t);
        }
    }
    free(sent);
    free(buf);
    return rc;
}
/* "remove", "surprise-removal", "stop" or a number; 0 ok */
static int parse_pnp_action(const char *words, ULONG *action)
{
    char w[32];
    snprintf(w, sizeof(w), "%s", words);
    w[strcspn(w, " \t")] = 0;
    if (!strcmp(w, "remove")) *action = StorRemoveDevice;
    else if (!strcmp(w, "surprise-removal")) *action = StorSurpriseRemoval;
    else if (!strcmp(w, "stop")) *action = StorStopDevice;
    else if (isdigit((unsigned char)w[0])) *action = (ULONG)strtoul(w, NULL, 0);
    else return -1;
    return 0;
}

/* --power-cycle-every: sleep/resume cycles on their own thread while the workload runs,
 * as a user closing the lid would (StorPort quiesces, Stop, Restart). */
struct cycler { struct session *s; unsigned ms; volatile bool done; int failures; pthread_t th; };
static void *cycler_thread(void *arg)
{
    struct cycler *c = arg;
    for (;;) {
        for (unsigned t = 0; t < c->ms && !c->done; t += 5) sim_sleep_us(5000);
        if (c->done) break;
        if (main_power_cycle(c->s)) c->failures++;
    }
    return NULL;
}

static int cmd_run(struct session *s, struct opts *o)
{
    struct sim_workload_opts wl = o->wl;
    if (!wl.ios && !wl.seconds) wl.ios = 1000;
    s->wl_before = s->a->ctr;
    s->last_wl_opts = wl;
    uint64_t cycles0 = __atomic_load_n(&s->a->power_cycles, __ATOMIC_RELAXED);
    struct cycler cyc = { .s = s, .ms = o->power_cycle_ms };
    if (cyc.ms) pthread_create(&cyc.th, NULL, cycler_thread, &cyc);
    int rc = sim_workload_run(&s->disk, o->disk, &wl, &s->last_wl);
    if (cyc.ms) {
        cyc.done = true;
        pthread_join(cyc.th, NULL);
        if (cyc.failures) { fprintf(stderr, "run: %d power cycle(s) failed\n", cyc.failures); s->failures++; }
    }
    s->last_wl_power_cycles = __atomic_load_n(&s->a->power_cycles, __ATOMIC_RELAXED) - cycles0;
    s->have_wl = true;
    struct sim_workload_result *w = &s->last_wl;
    s->sum_runs++;
    s->sum_ios += w->ios;
    s->sum_errors += w->errors;
    s->sum_mismatches += w->mismatches + w->image_mismatches;
    s->sum_readback += w->readback_reads;
    s->sum_image_chunks += w->image_chunks_checked;
    if (rc) return -1;
    if (w->errors || w->mismatches || w->image_mismatches) s->failures++;
    return 0;
}
/* ------------------------------------------------------------------------------ */
static int run_script(struct session *s, const char *path);
/* One command with per-command options (CLI or script step). */
int main_do_command(struct session *s, const char *cmd, struct opts *o, char **pos, int npos)
{
    if (!strcmp(cmd, "info")) return 0;
    if (!strcmp(cmd, "run")) return cmd_run(s, o);
    if (!strcmp(cmd, "cdb")) {
        static char joined[256];
        joined[0] = 0;
        for (int i = 0; i < npos; i++) { strncat(joined, pos[i], sizeof(joined) - strlen(joined) - 2); strcat(joined, " "); }
        o->cdb_hex = joined;
        return cmd_cdb(s, o);
    }
    if (!strcmp(cmd, "ioctl")) return cmd_ioctl(s, o);
    if (!strcmp(cmd, "script")) {
        if (npos < 1) { fprintf(stderr, "script: FILE missing\n"); return -1; }
        return run_script(s, pos[0]);
    }
    fprintf(stderr, "unknown command %s (see --help)\n", cmd);
    return -1;
}

/* ---- script ---------------------------------------------------------------------- */
static int expect_one(struct session *s, const char *kv, int line)
{
    char key[64];
    const char *eq = strchr(kv, '=');
    if (!eq || (size_t)(eq - kv) >= sizeof(key)) { fprintf(stderr, "script:%d: expect KEY=VALUE, got %s\n", line, kv); return -1; }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    const char *val = eq + 1;
    struct sim_request *r = &s->last;
    uint64_t want = strtoull(val, NULL, 0), have = 0;
    bool ok;
    if (!strcmp(key, "srb") || !strcmp(key, "srb_status")) have = SRB_STATUS(r->srb_status);
    else if (!strcmp(key, "autosense")) have = (r->srb_status & SRB_STATUS_AUTOSENSE_VALID) ? 1 : 0;
    else if (!strcmp(key, "scsi")) have = r->scsi_status;
    else if (!strcmp(key, "key")) have = r->sense[2] & 15;
    else if (!strcmp(key, "asc")) have = r->sense[12];
    else if (!strcmp(key, "ascq")) have = r->sense[13];
    else if (!strcmp(key, "sense")) {
        unsigned k, a, q;
        if (sscanf(val, "%x/%x/%x", &k, &a, &q) != 3) { fprintf(stderr, "script:%d: sense=K/ASC/ASCQ (hex)\n", line); return -1; }
        want = (uint64_t)k << 16 | a << 8 | q;
        have = (uint64_t)(r->sense[2] & 15) << 16 | (uint64_t)r->sense[12] << 8 | r->sense[13];
        if (!(r->srb_status & SRB_STATUS_AUTOSENSE_VALID)) have = 0xFFFFFF;
    }
    else if (!strcmp(key, "len") || !strcmp(key, "transferred")) have = r->out_transfer_len;
    else if (!strncmp(key, "data[", 5)) {
        unsigned idx = (unsigned)strtoul(key + 5, NULL, 0);
        have = idx < s->last_data_len ? s->last_data[idx] : 0x100;
    }
    else if (!strcmp(key, "data")) {
        uint8_t exp[256];
        int n = parse_hex_bytes(val, exp, sizeof(exp));
        ok = n >= 0 && (unsigned)n <= s->last_data_len && !memcmp(exp, s->last_data, (size_t)n);
        if (!ok) fprintf(stderr, "EXPECT FAILED (script line %d): data does not start with %s\n", line, val);
        return ok ? 0 : -1;
    }
    else if (!strcmp(key, "capacity")) have = s->disk.blocks;
    else if (!strcmp(key, "block_size")) have = s->disk.block_size;
    else if (!strcmp(key, "mismatches")) have = s->last_wl.mismatches + s->last_wl.image_mismatches;
    else if (!strcmp(key, "errors")) have = s->last_wl.errors;
    else if (!strcmp(key, "ios")) have = s->last_wl.ios;
    else if (!strcmp(key, "findings")) have = sim_findings_count();
    else if (!strcmp(key, "return_code")) have = s->last_return_code;
    else if (!strcmp(key, "outstanding")) have = sim_port_outstanding(s->a);
    else if (!strcmp(key, "interrupt_mode")) { have = s->a->use_msi; want = !strcmp(val, "msix") || !strcmp(val, "1"); }
    else if (!strcmp(key, "bus_changes")) have = s->a->ctr.bus_changes;
    else if (!strcmp(key, "resets")) have = s->a->ctr.resets;
    else if (!strcmp(key, "no_device")) have = s->last_wl.no_device;
    else if (!strcmp(key, "power_cycles")) have = s->last_wl_power_cycles;
    else if (!strcmp(key, "class_retries")) have = s->disk.retries;
    else if (!strcmp(key, "rescans")) have = s->disk.rescans;
    else if (!strcmp(key, "wce")) have = s->disk.wce ? 1 : 0;            /* write cache as disk.sys last read it */
    else if (!strcmp(key, "fua_disabled")) have = s->disk.fua_disabled;  /* FUA WRITE failed 05/24: FUA dropped */
    else if (!strcmp(key, "removed")) have = s->a->removal_noticed;
    else if (!strcmp(key, "mmio_after_removal"))   /* driver register accesses since it reported NO_DEVICE */
        have = s->a->removal_noticed ? sim_port_mmio_count(s->a) - s->a->mmio_at_notice : 0;
    else if (!strncmp(key, "field.", 6)) {
        const AVDIAG_FIELD *f = s->have_info ? AvDiagFindField(key + 6) : NULL;
        if (!f || !AvDiagGetField(&s->last_info, f, &have)) {
            fprintf(stderr, "EXPECT FAILED (script line %d): query field %s not available\n", line, key + 6);
            return -1;
        }
    }
    else { fprintf(stderr, "script:%d: unknown expectation key %s\n", line, key); return -1; }
    if (have == want) return 0;
    fprintf(stderr, "EXPECT FAILED (script line %d): %s is 0x%llx (%llu), expected %s\n", line, key,
            (unsigned long long)have, (unsigned long long)have, val);
    return -1;
}

/* `after MS control CMD` / `after MS qmp JSON`: a delayed device action on its own
 * thread, so it lands in the middle of the next step (e.g. block_resize during run). */
struct delayed { struct session *s; unsigned ms; char cmd[1024]; int line; pthread_t th; };
static void *delayed_thread(void *arg)
{
    struct delayed *d = arg;
    sim_sleep_us(d->ms * 1000u);
    sim_dev *dev = d->s->dev;
    char reply[4096] = "";
    int rc = -1;
    if (!strncmp(d->cmd, "control ", 8) && dev->ops->control) rc = dev->ops->control(dev, d->cmd + 8);
    else if (!strncmp(d->cmd, "qmp ", 4) && dev->ops->qmp) rc = dev->ops->qmp(dev, d->cmd + 4, reply, sizeof(reply));
    else if (!strcmp(d->cmd, "power-cycle")) rc = main_power_cycle(d->s);
    else if (!strcmp(d->cmd, "reset")) { sim_port_reset_bus(d->s->a, "script reset"); rc = 0; }
    else if (!strncmp(d->cmd, "class ", 6)) {   /* issue 11 item 12: class traffic mid-run */
        struct sim_request r;
        char m[256];
        rc = sim_disk_class_step(&d->s->disk, d->cmd + 6, &r, m, sizeof(m));
        if (rc == 0) sim_log("class %s: %s", d->cmd + 6, m);
        else snprintf(reply, sizeof(reply), "%s", m);
    }
    else if (!strncmp(d->cmd, "pnp ", 4)) {
        ULONG action;
        struct sim_request r;
        rc = parse_pnp_action(d->cmd + 4, &action);
        if (rc == 0) rc = send_pnp_power(d->s->a, SRB_FUNCTION_PNP, action,
                                         strstr(d->cmd, " adapter") ? SRB_PNP_FLAGS_ADAPTER_REQUEST : 0, &r);
        if (rc == 0) snprintf(reply, sizeof(reply), "(SRB status 0x%02x)", r.srb_status);
        if (rc == 0 && sim_verbose > 0) fprintf(stderr, "script:%d: delayed '%s': SRB status 0x%02x\n", d->line, d->cmd, r.srb_status);
    }
    if (rc) {
        fprintf(stderr, "script:%d: delayed '%s' failed %s\n", d->line, d->cmd, reply);
        d->s->failures++;
    } else if (sim_verbose > 0) {
        fprintf(stderr, "script:%d: delayed '%s' done\n", d->line, d->cmd);
    }
    return NULL;
}

static int run_script(struct session *s, const char *path)
{
    struct delayed *pending[32];
    int npending = 0;
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "script: %s: %s\n", path, strerror(errno)); return -1; }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        p[strcspn(p, "\r\n")] = 0;
        if (sim_verbose > 0 && !s->o->json) fprintf(stderr, "script:%d: %s\n", lineno, p);
        if (!strncmp(p, "qmp ", 4)) {
            char reply[4096] = "";
            if (!s->dev->ops->qmp) { fprintf(stderr, "script:%d: backend has no QMP\n", lineno); rc = -1; break; }
            if (s->dev->ops->qmp(s->dev, p + 4, reply, sizeof(reply))) {
                fprintf(stderr, "script:%d: QMP command failed: %s\n", lineno, reply);
                rc = -1; break;
            }
            continue;
        }
        if (!strncmp(p, "after ", 6)) {
            char *rest;
            unsigned ms = (unsigned)strtoul(p + 6, &rest, 0);
            while (isspace((unsigned char)*rest)) rest++;
            if (npending >= 32 || (strncmp(rest, "control ", 8) && strncmp(rest, "qmp ", 4) && strcmp(rest, "power-cycle") &&
                                   strcmp(rest, "reset") && strncmp(rest, "pnp ", 4) && strncmp(rest, "class ", 6))) {
                fprintf(stderr, "script:%d: after MS control CMD | qmp JSON | power-cycle | reset | pnp ACTION | class STEP\n", lineno);
                rc = -1; break;
            }
            struct delayed *d = calloc(1, sizeof(*d));
            d->s = s; d->ms = ms; d->line = lineno;
            snprintf(d->cmd, sizeof(d->cmd), "%s", rest);
            pthread_create(&d->th, NULL, delayed_thread, d);
            pending[npending++] = d;
            continue;
        }
        if (!strncmp(p, "control ", 8)) {
            if (!s->dev->ops->control || s->dev->ops->control(s->dev, p + 8)) {
                fprintf(stderr, "script:%d: control '%s' failed\n", lineno, p + 8);
                rc = -1; break;
            }
            continue;
        }
        /* tokenise (quotes group words) */
        char *argv[64];
        int argc = 0;
        argv[argc++] = (char *)"aerovblk-sim";
        for (char *q = p; *q && argc < 63;) {
            while (isspace((unsigned char)*q)) q++;
            if (!*q) break;
            char quote = (*q == '"' || *q == '\'') ? *q++ : 0;
            argv[argc++] = q;
            while (*q && (quote ? *q != quote : !isspace((unsigned char)*q))) q++;
            if (*q) *q++ = 0;
        }
        argv[argc] = NULL;
        const char *cmd = argv[1];
        if (!strcmp(cmd, "expect")) {
            for (int i = 2; i < argc; i++) if (expect_one(s, argv[i], lineno)) { rc = -1; }
            if (rc) break;
            continue;
        }
        if (!strcmp(cmd, "sleep")) { sim_sleep_us((unsigned)atoi(argc > 2 ? argv[2] : "0") * 1000u); continue; }
        if (!strcmp(cmd, "reset")) { sim_port_reset_bus(s->a, "script reset"); continue; }
        if (!strcmp(cmd, "crash")) {
            sim_port_crash(s->a, argc > 2 ? (unsigned)atoi(argv[2]) : 4);
            continue;
        }
        if (!strcmp(cmd, "dump-load") || !strcmp(cmd, "reload")) {
            char err[512] = "";
            if (session_new_instance(s, !strcmp(cmd, "dump-load"), err, sizeof(err))) {
                fprintf(stderr, "script:%d: %s: %s\n", lineno, cmd, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "power-cycle")) {
            if (main_power_cycle(s)) { fprintf(stderr, "script:%d: power cycle failed\n", lineno); rc = -1; break; }
            continue;
        }
        if (!strcmp(cmd, "hibernate")) {
            /* the system goes to S4: the disk's power SRB, StorPort stops the adapter, and
             * this instance gets no more calls (its memory is in the image; the hiber
             * instance loaded next writes it) */
            struct sim_request pr;
            if (sim_s4_adapter_control ? (send_pnp_power(s->a, SRB_FUNCTION_POWER, StorPowerDeviceD3, 0, &pr) ||
                                          sim_port_stop(s->a))
                                       : sim_port_quiesce(s->a)) {
                fprintf(stderr, "script:%d: hibernate: power down failed\n", lineno);
                rc = -1; break;
            }
            sim_log("hibernate: the adapter is %s and its instance frozen (no more calls)",
                    sim_s4_adapter_control ? "stopped" : "idle (no ScsiStopAdapter: --s4-adapter-control off)");
            sim_port_crash(s->a, 0);
            s->a->s4_hibernated = true;
            s->a->s4_frozen_ns = sim_now_ns();
            continue;
        }
        if (!strcmp(cmd, "hibernate-resume")) {
            char err[512] = "";
            if (session_s4_resume(s, err, sizeof(err))) {
                fprintf(stderr, "script:%d: hibernate-resume: %s\n", lineno, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "pnp") && argc > 2 && !strcmp(argv[2], "rebalance")) {
            char err[512] = "";
            if (session_rebalance(s, err, sizeof(err))) {
                fprintf(stderr, "script:%d: pnp rebalance: %s\n", lineno, err);
                rc = -1; break;
            }
            continue;
        }
        if (!strcmp(cmd, "pnp")) {
            ULONG action;
            if (argc < 3 || parse_pnp_action(argv[2], &action)) {
                fprintf(stderr, "script:%d: pnp remove|surprise-removal|stop|N [adapter]\n", lineno);
                rc = -1; break;
            }
            bool adapter = argc > 3 && !strcmp(argv[3], "adapter");
            if (send_pnp_power(s->a, SRB_FUNCTION_PNP, action, adapter ? SRB_PNP_FLAGS_ADAPTER_REQUEST : 0, &s->last)) {
                fprintf(stderr, "script:%d: pnp: the SRB did not come back\n", lineno);
                rc = -1; break;
            }
            s->have_last = true;
            s->last_data_len = 0;
            if (!s->o->json) printf("pnp %s: srb_status 0x%02x (%s)\n", argv[2], s->last.srb_status, srb_status_name(s->last.srb_status));
            continue;
        }
        if (!strcmp(cmd, "class")) {   /* issue 11 item 12: disk.sys / StorPort class traffic */
            char m[256];
            if (argc < 3 || sim_disk_class_step(&s->disk, argv[2], &s->last, m, sizeof(m))) {
                fprintf(stderr, "script:%d: class: %s\n", lineno, argc < 3 ? "class STEP" : m);
                rc = -1; break;
            }
            s->have_last = true;
            s->last_data_len = 0;
            sim_log("class %s: %s", argv[2], m);
            continue;
        }
        if (!strcmp(cmd, "rescan")) {
            __atomic_store_n(&s->a->bus_change_pending, 0, __ATOMIC_RELEASE);
            if (sim_disk_rescan(&s->disk)) { rc = -1; break; }
            continue;
        }
        struct opts so = *s->o;
        so.cdb_hex = NULL; so.in_len = 0; so.out_file = NULL;
        so.signature = NULL; so.code = so.header_len = so.length = so.buffer_size = so.return_code = -1;
        so.raw = false;
        char *pos[16];
        int npos;
        if (main_parse_opts(argc, argv, &so, pos, 16, &npos)) { fprintf(stderr, "script:%d: bad options\n", lineno); rc = -1; break; }
        /* getopt permutes; the command is the first positional */
        if (npos < 1) { fprintf(stderr, "script:%d: no command\n", lineno); rc = -1; break; }
        if (!strcmp(pos[0], "script")) { fprintf(stderr, "script:%d: nested scripts are not supported\n", lineno); rc = -1; break; }
        struct opts *saved = s->o;
        s->o = &so;
        int r = main_do_command(s, pos[0], &so, pos + 1, npos - 1);
        if (!strcmp(pos[0], "run") && !so.json && s->have_wl) wl_report(s);
        s->o = saved;
        if (r) { fprintf(stderr, "script:%d: '%s' failed\n", lineno, p); rc = -1; break; }
    }
    fclose(f);
    for (int i = 0; i < npending; i++) { pthread_join(pending[i]->th, NULL); free(pending[i]); }
    if (s->failures) rc = -1;
    return rc;
}

