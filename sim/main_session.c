/*
 * aerovblk-sim session lifecycle: device and driver bring-up, new driver instances
 * (crash dump / reload), hibernate-resume, PnP rebalance, sleep/resume cycles, the
 * watchdog, teardown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "main.h"

/* The host-built driver's entry point; weak so the simulator core can also be linked
 * with a test miniport (tests/unit/sim_fake_miniport.c) or run a loaded .sys. */
extern NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath) __attribute__((weak));
/* Provided by the PE loader glue (sim/pe/, issue 8) when linked in. */
extern int sim_load_sys_driver(const char *path, void **entry, char *err, size_t errlen) __attribute__((weak));

/* Remember what an instance asked for (the dump instance must stay in its budget). */
static void note_instance(struct session *s)
{
    if (!s->a || s->ninst >= 16) return;
    snprintf(s->inst[s->ninst].name, sizeof(s->inst[0].name), "%s", s->a->drv->name);
    s->inst[s->ninst].dump = s->a->opts.dump_mode;
    s->inst[s->ninst].uncached_bytes = s->a->unc_len;
    s->inst[s->ninst].max_transfer = s->a->cfg->MaximumTransferLength;
    s->inst[s->ninst].breaks = s->a->cfg->NumberOfPhysicalBreaks;
    s->inst[s->ninst].srbext = s->a->cfg->SrbExtensionSize;
    s->ninst++;
}

struct session *g_session;

void *main_watchdog(void *arg)
{
    struct session *s = arg;
    sim_sleep_us(s->o->timeout * 1000000u);
    fprintf(stderr, "aerovblk-sim: TIMEOUT after %u s (a hung driver or device); giving up\n", s->o->timeout);
    if (s->dev) s->dev->ops->destroy(s->dev);
    if (s->tmp_disk[0]) unlink(s->tmp_disk);
    _exit(3);
    return NULL;
}

/* A re-acquired spin lock (verifier: DEADLOCK): Windows hangs there, so the run ends:
 * the device is torn down as the watchdog does, --json gets a minimal result. */
void main_on_deadlock(void)
{
    struct session *s = g_session;
    if (s && s->o->json) {
        char *fj = sim_findings_json();
        printf("{\"deadlock\":true,\"verifier_findings\":%u,\"findings\":%s,\"exit_status\":1}\n",
               sim_findings_count(), fj);
        free(fj);
    }
    fflush(stdout);
    if (s && s->dev) s->dev->ops->destroy(s->dev);
    if (s && s->tmp_disk[0]) unlink(s->tmp_disk);
}

static int prepare_disk(struct session *s, char *err, size_t el)
{
    struct opts *o = s->o;
    if (!o->disk) {
        snprintf(s->tmp_disk, sizeof(s->tmp_disk), "/tmp/aerovblk-sim-%d.img", (int)getpid());
        o->disk = s->tmp_disk;
    }
    struct stat st;
    if (stat(o->disk, &st) == 0) return 0;
    int fd = open(o->disk, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { snprintf(err, el, "create %s: %s", o->disk, strerror(errno)); return -1; }
    if (ftruncate(fd, (off_t)o->size)) { snprintf(err, el, "size %s: %s", o->disk, strerror(errno)); close(fd); return -1; }
    close(fd);
    return 0;
}

int session_start(struct session *s, char *err, size_t el)
{
    struct opts *o = s->o;
    if (prepare_disk(s, err, el)) return -1;
    char model_opts[1024];
    sim_dev_config cfg = { .disk_path = o->disk, .disk_size = o->size,
                           .device_opts = win7_model_device_opts(o->backend, o->device_opts, model_opts, sizeof(model_opts)),
                           .drive_opts = o->drive_opts, .ram_size = o->ram, .verbose = sim_verbose > 1 };
    if (!strcmp(o->backend, "qemu")) s->dev = sim_qemu_create(&cfg, err, el);
    else if (!strcmp(o->backend, "contract")) s->dev = sim_contract_create(&cfg, err, el);
    else { snprintf(err, el, "unknown backend %s", o->backend); return -1; }
    if (!s->dev) return -1;
    if (o->ideal) return 0;   /* --ideal-driver: no miniport (sim/ideal.c) */

    void *entry = (void *)DriverEntry;
    /* AEROVBLK_SIM_DRIVER is the default --driver, so whole check scripts can be rerun
     * against a shipped .sys (tests/checks/77-shipped-scenarios.sh). */
    const char *driver = o->driver ? o->driver : getenv("AEROVBLK_SIM_DRIVER");
    if (driver && !*driver) driver = NULL;
    if (driver) {
        if (!sim_load_sys_driver) { snprintf(err, el, "--driver: this build has no PE loader"); return -1; }
        if (sim_load_sys_driver(driver, &entry, err, el)) return -1;
    }
    if (!entry) { snprintf(err, el, "no driver linked into this simulator build"); return -1; }
    s->drv.driver_entry = entry;
    snprintf(s->drv.name, sizeof(s->drv.name), "%s", driver ? driver : "aerovblk (host build)");
    if (sim_driver_load(&s->drv, o->dump, err, el)) return -1;
    struct sim_adapter_opts ao = { .msi = o->msi, .msi_messages = o->msi_messages, .dump_mode = o->dump,
                                   .srb_timeout = o->srb_timeout, .seed = o->wl.seed,
                                   .reset_tiers = o->reset_tiers };
    s->a = sim_adapter_create(&s->drv, s->dev, &ao, err, el);
    if (!s->a) return -1;
    if (sim_adapter_start(s->a, err, el)) return -1;
    note_instance(s);
    if (sim_disk_arrive(&s->disk, s->a, err, el)) return -1;
    s->disk_up = true;
    return 0;
}

/* A new instance of the driver on the same device: the dump stack's copy after a crash
 * (dump-load) or a fresh boot's (reload), as Windows loads them. */
static int session_dump_close(struct session *s);
int session_new_instance(struct session *s, bool dump, char *err, size_t el)
{
    if (s->ndrv >= 8 || s->nold >= 8) { snprintf(err, el, "too many driver instances"); return -1; }
    struct sim_adapter *prev = s->a;
    if (prev && prev->opts.dump_mode && session_dump_close(s)) { snprintf(err, el, "the dump port's SYNCHRONIZE CACHE / SHUTDOWN failed"); return -1; }
    if (prev) {   /* keep its counts: the soak's evidence spans instances */
        const uint64_t *src = (const uint64_t *)&prev->ctr;
        uint64_t *dst = (uint64_t *)&s->ctr_prev;
        for (size_t i = 0; i < sizeof(prev->ctr) / sizeof(uint64_t); i++) dst[i] += src[i];
        s->power_cycles_prev += prev->power_cycles;
    }
    if (prev && !prev->crashed && !dump) {   /* orderly shutdown of the running instance first */
        if (s->disk_up && s->disk.a == prev) sim_disk_shutdown(&s->disk);
        sim_adapter_destroy(prev);
        prev = NULL;
    }
    if (prev) s->old[s->nold++] = prev;
    s->a = NULL;
    struct sim_driver *drv = &s->drv_extra[s->ndrv++];
    memset(drv, 0, sizeof(*drv));
    drv->driver_entry = s->drv.driver_entry;
    snprintf(drv->name, sizeof(drv->name), "%s%.50s", dump ? "dump_" : "", s->drv.name);
    if (sim_driver_load(drv, dump, err, el)) return -1;
    struct sim_adapter_opts ao = { .msi = s->o->msi, .msi_messages = s->o->msi_messages, .dump_mode = dump,
                                   .srb_timeout = s->o->srb_timeout, .seed = s->o->wl.seed + (uint64_t)s->ndrv,
                                   .reset_tiers = s->o->reset_tiers };
    s->a = sim_adapter_create(drv, s->dev, &ao, err, el);
    if (!s->a || sim_adapter_start(s->a, err, el)) return -1;
    note_instance(s);
    if (dump) {
        sim_disk_attach(&s->disk, s->a);
        if (sim_disk_dump_open(&s->disk)) { snprintf(err, el, "the dump port's INQUIRY failed"); return -1; }
    } else if (sim_disk_arrive(&s->disk, s->a, err, el)) return -1;
    return 0;
}

/* The dump instance's work is done (the dump was written, the hibernation image too):
 * the dump port's last requests, once. */
static int session_dump_close(struct session *s)
{
    struct sim_adapter *a = s->a;
    if (!a || !a->opts.dump_mode || a->crashed || s->disk.a != a) return 0;
    return sim_disk_dump_close(&s->disk);
}

/* `hibernate-resume`: the instance frozen by `hibernate` continues (sim/s4.c); the
 * hibernation instance (if dump-load ran) is frozen for good. */
int session_s4_resume(struct session *s, char *err, size_t el)
{
    int k = s->nold;
    while (k-- > 0 && !s->old[k]->s4_hibernated) {}
    if (k < 0) { snprintf(err, el, "no instance was hibernated (use hibernate first)"); return -1; }
    struct sim_adapter *frozen = s->old[k], *hiber = NULL;
    if (s->a && s->a->opts.dump_mode) {
        hiber = s->a;
        if (session_dump_close(s)) { snprintf(err, el, "the dump port's SYNCHRONIZE CACHE / SHUTDOWN failed"); return -1; }
        if (!hiber->crashed) sim_port_crash(hiber, 0);
        if (s->nold >= 8) { snprintf(err, el, "too many driver instances"); return -1; }
        s->old[s->nold++] = hiber;
    } else if (s->a) {
        snprintf(err, el, "a normal instance runs: hibernate-resume follows hibernate [+ dump-load]");
        return -1;
    }
    for (int i = 0; i < s->nold; i++)
        if (s->old[i] == frozen) { memmove(&s->old[i], &s->old[i + 1], sizeof(s->old[0]) * (size_t)(s->nold - i - 1)); s->nold--; break; }
    s->a = frozen;
    if (sim_s4_resume(frozen, hiber, err, el)) return -1;
    if (s->disk_up) sim_disk_attach(&s->disk, frozen);
    s->s4_resumes++;
    if (sim_s4_adapter_control) {
        struct sim_request pr;
        if (send_pnp_power(frozen, SRB_FUNCTION_POWER, StorPowerDeviceD0, 0, &pr) ||
            SRB_STATUS(pr.srb_status) != SRB_STATUS_SUCCESS) {
            snprintf(err, el, "SRB_FUNCTION_POWER (D0) failed");
            return -1;
        }
    }
    return 0;
}

/* `pnp rebalance` (issue 11 item 10): StorPort's SRB_FUNCTION_FLUSH (CachesData,
 * [MS-ACT]) and SRB_FUNCTION_PNP StorStopDevice for the adapter, then ScsiStopAdapter and
 * HwFindAdapter + HwInitialize again on the same device extension (sim/port_power.c). */
int session_rebalance(struct session *s, char *err, size_t el)
{
    struct sim_adapter *a = s->a;
    struct sim_request r;
    if (!a || a->opts.dump_mode || a->crashed) { snprintf(err, el, "no running normal instance"); return -1; }
    if (a->cfg->CachesData && s->disk_up &&
        (sim_disk_no_cdb_srb(&s->disk, SRB_FUNCTION_FLUSH, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS)) {
        snprintf(err, el, "SRB_FUNCTION_FLUSH failed (0x%02x)", r.srb_status);
        return -1;
    }
    if (send_pnp_power(a, SRB_FUNCTION_PNP, StorStopDevice, SRB_PNP_FLAGS_ADAPTER_REQUEST, &r) ||
        SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        snprintf(err, el, "SRB_FUNCTION_PNP StorStopDevice came back with 0x%02x", r.srb_status);
        return -1;
    }
    if (sim_port_rebalance(a, err, el)) return -1;
    sim_log("pnp: rebalance done: HwFindAdapter + HwInitialize ran again on the same device extension");
    s->rebalances++;
    note_instance(s);
    if (s->disk_up) sim_disk_attach(&s->disk, a);
    return 0;
}

void session_stop(struct session *s)
{
    if (session_dump_close(s)) s->failures++;
    if (s->a && s->disk_up && s->disk.a == s->a) sim_disk_shutdown(&s->disk);   /* system shutdown */
    if (s->a) { sim_adapter_destroy(s->a); s->a = NULL; }
    for (int i = s->nold; i-- > 0;) { sim_adapter_destroy(s->old[i]); s->old[i] = NULL; }
    sim_contract_stats cs;
    if (s->dev && sim_contract_get_stats(s->dev, &cs) == 0 && cs.driver_bugs)
        sim_finding("DEVICE", "the contract device saw %llu request(s) or register access(es) breaking the virtio spec "
                    "or the contract (DMA outside guest RAM, bad descriptors, ...; see \"contract-dev: DRIVER BUG\" lines)",
                    (unsigned long long)cs.driver_bugs);
    if (s->dev) { s->dev->ops->destroy(s->dev); s->dev = NULL; }
    if (s->tmp_disk[0]) unlink(s->tmp_disk);
}
/* SRB_FUNCTION_PNP / SRB_FUNCTION_POWER as StorPort sends them to the unit (flags may
 * add the ADAPTER_REQUEST bit). 0 when the SRB came back; r holds its status. */
int send_pnp_power(struct sim_adapter *a, UCHAR function, ULONG action, ULONG flags, struct sim_request *r)
{
    uint8_t nocdb[1] = { 0 };
    sim_request_init(r, nocdb, 0, NULL, 0, false, false);
    r->function = function;
    r->srb_flags = SRB_FLAGS_NO_QUEUE_FREEZE | SRB_FLAGS_BYPASS_FROZEN_QUEUE;
    r->queue_action = 0;
    r->sense_len = 0;
    r->pnp_action = action;
    r->pnp_flags = flags;
    return sim_port_execute(a, r);
}

/* Sleep/resume as Windows 7 does it for the adapter: the LUN's power SRB (D3), StorPort
 * pauses and drains, HwAdapterControl(ScsiStopAdapter) at DIRQL, the powered-off gap,
 * (ScsiRestartAdapter), the LUN's power SRB (D0). */
int main_power_cycle(struct session *s)
{
    struct sim_adapter *a = s->a;
    struct sim_request r;
    int rc = 0;
    /* classpnp's power-down: SYNCHRONIZE CACHE, START STOP UNIT (stop); after power-up
     * START STOP UNIT (start) */
    bool disk = s->disk_up && s->disk.a == a;
    if (disk && (sim_disk_flush(&s->disk) || sim_disk_start_stop(&s->disk, false))) {
        fprintf(stderr, "power cycle: SYNCHRONIZE CACHE / START STOP UNIT (stop) failed\n");
        rc = -1;
    }
    if (send_pnp_power(a, SRB_FUNCTION_POWER, StorPowerDeviceD3, 0, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        fprintf(stderr, "power cycle: SRB_FUNCTION_POWER (D3) came back with SRB status 0x%02x\n", r.srb_status);
        rc = -1;
    }
    if (sim_port_power_cycle(a)) rc = -1;
    if (send_pnp_power(a, SRB_FUNCTION_POWER, StorPowerDeviceD0, 0, &r) || SRB_STATUS(r.srb_status) != SRB_STATUS_SUCCESS) {
        fprintf(stderr, "power cycle: SRB_FUNCTION_POWER (D0) came back with SRB status 0x%02x\n", r.srb_status);
        rc = -1;
    }
    if (disk && sim_disk_start_stop(&s->disk, true)) {
        fprintf(stderr, "power cycle: START STOP UNIT (start) failed\n");
        rc = -1;
    }
    return rc;
}

