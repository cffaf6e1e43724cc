/*
 * aerovblk-sim: runs the aerovblk miniport in a user-space StorPort with Windows 7
 * semantics against QEMU's virtio-blk device or the in-process Aero-contract device.
 * Commands: info, run, cdb, ioctl, script. `aerovblk-sim --help`; docs/simulator.md.
 * This file: main() and the end-of-run summary; the rest of the command line is in
 * main_opts.c (options), main_session.c (lifecycle), main_script.c (commands, scripts),
 * main_report.c (JSON / text results); shared declarations in main.h.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "main.h"

/* ------------------------------------------------------------------------------ */
/* A fault on a READ/WRITE SRB's DataBuffer gets a precise message before ASan's (or the
 * default) handler reports the crash. */
static struct sigaction old_segv;
#if defined(__i386__)
__attribute__((force_align_arg_pointer))   /* qemu-i386 aligns signal frames to 8 only */
#endif
static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
    if (si && sim_addr_is_databuffer_decoy(si->si_addr)) {
        static const char msg[] = "VERIFIER: DATABUFFER: the driver dereferenced the DataBuffer of a READ/WRITE SRB; "
                                  "Windows 7 does not map it (facts §10 item 13): use the scatter/gather list\n";
        ssize_t rc = write(2, msg, sizeof(msg) - 1);
        (void)rc;
    }
    if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) { old_segv.sa_sigaction(sig, si, ctx); return; }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) { old_segv.sa_handler(sig); return; }
    signal(sig, SIG_DFL);   /* re-fault with the default action */
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &old_segv);

    struct opts o;
    main_opts_defaults(&o);
    char *pos[32];
    int npos;
    if (win7_model_apply(argc, argv)) return 2;
    if (main_parse_opts(argc, argv, &o, pos, 32, &npos)) { main_usage(stderr); return 2; }
    {   /* an x86 .sys runs in the 32-bit simulator, natively or emulated (x86_launch.c) */
        const char *drv = o.driver ? o.driver : getenv("AEROVBLK_SIM_DRIVER");
        int lr = sim_x86_relaunch(argc, argv, drv);
        if (lr) return lr;
        if (sim_x86_mode() && drv && *drv) {
            sim_log("x86 driver, %s", sim_x86_mode());
            sim_x86_note_run();
        }
    }
    const char *cmd = npos ? pos[0] : "run";
    if (strcmp(cmd, "run") && strcmp(cmd, "info") && strcmp(cmd, "cdb") && strcmp(cmd, "ioctl") && strcmp(cmd, "script")) {
        fprintf(stderr, "unknown command %s\n", cmd);
        main_usage(stderr);
        return 2;
    }
    if (o.json && sim_verbose == 1) sim_verbose = 1;   /* stderr stays human-readable */

    struct session s;
    memset(&s, 0, sizeof(s));
    s.o = &o;
    g_session = &s;
    sim_deadlock_hook = main_on_deadlock;
    pthread_t wd;
    pthread_create(&wd, NULL, main_watchdog, &s);
    pthread_detach(wd);

    char err[512] = "";
    int rc = 0;
    sim_contract_stats cstats;
    bool have_cstats = false, have_qnotify = false;
    uint64_t qnotify = 0, cirq[2] = { 0, 0 };
    if (o.ideal && strcmp(cmd, "run")) {
        fprintf(stderr, "aerovblk-sim: --ideal-driver is for run only\n");
        return 2;
    }
    if (session_start(&s, err, sizeof(err))) {
        fprintf(stderr, "aerovblk-sim: %s\n", err);
        rc = 1;
    } else if (o.ideal) {
        struct sim_workload_opts wl = o.wl;
        struct sim_ideal_result ir;
        if (!wl.ios && !wl.seconds) wl.ios = 1000;
        rc = sim_ideal_run(s.dev, o.disk, &wl, &ir);
        session_stop(&s);   /* the contract device's DRIVER BUG count: a finding */
        if (sim_findings_count()) rc = 1;
        sim_ideal_print(&wl, &ir, o.json, o.backend, sim_findings_count(), rc);
        return rc;
    } else {
        if (!o.json && (!strcmp(cmd, "run") || !strcmp(cmd, "info") || !strcmp(cmd, "script"))) main_describe(&s);
        if (main_do_command(&s, cmd, &o, pos + 1, npos ? npos - 1 : 0)) rc = 1;
        /* before main_describe(): its register reads are the harness's, not the driver's */
        have_cstats = sim_contract_get_stats(s.dev, &cstats) == 0;
        have_qnotify = sim_qemu_notify_writes(s.dev, &qnotify) == 0;
        sim_contract_irq_counts(s.dev, &cirq[0], &cirq[1]);
        if (!strcmp(cmd, "run") && s.have_wl && !o.json) wl_report(&s);
        if (o.json) { main_describe(&s); if (s.have_wl) wl_report(&s); }
    }
    struct sim_counters ctr = s.a ? s.a->ctr : (struct sim_counters){ 0 };
    unsigned maxout = s.a ? s.a->max_outstanding : 0;
    uint64_t pcycles_all = (s.a ? s.a->power_cycles : 0) + s.power_cycles_prev;
    if (o.json && s.a) {
        /* class-layer completions by SRB status and sense key; the device's own counts */
        static const char *keys[16] = { "NO_SENSE", "RECOVERED_ERROR", "NOT_READY", "MEDIUM_ERROR", "HARDWARE_ERROR",
                                        "ILLEGAL_REQUEST", "UNIT_ATTENTION", "DATA_PROTECT", "BLANK_CHECK", "0x9",
                                        "COPY_ABORTED", "ABORTED_COMMAND", "0xc", "VOLUME_OVERFLOW", "MISCOMPARE", "0xf" };
        jsf(&s.out, "\"class_completions\":{");
        for (unsigned i = 0, n = 0; i < 64; i++) {
            if (!s.disk.srb_status_count[i]) continue;
            const char *nm = srb_status_name(i);
            if (!strcmp(nm, "?")) jsf(&s.out, "%s\"0x%02x\":%llu", n++ ? "," : "", i, (unsigned long long)s.disk.srb_status_count[i]);
            else jsf(&s.out, "%s\"%s\":%llu", n++ ? "," : "", nm, (unsigned long long)s.disk.srb_status_count[i]);
        }
        jsf(&s.out, "},\"class_sense_keys\":{");
        for (unsigned i = 0, n = 0; i < 16; i++)
            if (s.disk.sense_key_count[i]) jsf(&s.out, "%s\"%s\":%llu", n++ ? "," : "", keys[i], (unsigned long long)s.disk.sense_key_count[i]);
        jsf(&s.out, "},");
        jsf(&s.out, "\"class_fua_disabled\":%llu,\"class_wce_disable_attempts\":%llu,",
            (unsigned long long)s.disk.fua_disabled, (unsigned long long)s.disk.wce_disable_attempts);
        if (have_cstats)
            jsf(&s.out, "\"device_flushes_delayed\":%llu,\"device_reset_blocked_us\":%llu,\"device_status_resets\":%llu,",
                (unsigned long long)cstats.flushes_delayed, (unsigned long long)(cstats.reset_blocked_ns_max / 1000),
                (unsigned long long)cstats.resets);
        if (have_cstats)
            jsf(&s.out, "\"device\":{\"doorbells\":%llu,\"requests\":%llu,\"msix_messages\":%llu,\"intx_raises\":%llu,\"faults_injected\":%llu,"
                        "\"irq_passes\":%llu,\"irq_suppressed\":%llu},",
                (unsigned long long)cstats.doorbells, (unsigned long long)cstats.requests, (unsigned long long)cstats.msix_messages,
                (unsigned long long)cstats.intx_raises, (unsigned long long)cstats.faults_injected,
                (unsigned long long)cirq[0], (unsigned long long)cirq[1]);
        else if (have_qnotify)
            jsf(&s.out, "\"device\":{\"doorbells\":%llu,\"requests\":-1},", (unsigned long long)qnotify);
    }
    if (o.json && s.a) {
        struct sim_adapter *a = s.a;
        jsf(&s.out, "\"rescans\":%llu,", (unsigned long long)s.disk.rescans);
        jsf(&s.out, "\"power_cycles\":%llu,\"class_retries\":%llu,\"removal\":{\"noticed\":%s,\"no_device_completions\":%llu,"
                    "\"driver_mmio_after_notice\":%llu,\"device_mmio_after_removal_at_notice\":%lld,\"device_mmio_after_removal\":%lld},",
            (unsigned long long)a->power_cycles, (unsigned long long)s.disk.retries, a->removal_noticed ? "true" : "false",
            (unsigned long long)a->no_device_completions,
            (unsigned long long)(a->removal_noticed ? sim_port_mmio_count(a) - a->mmio_at_notice : 0),
            (long long)a->dev_removed_mmio_at_notice, have_cstats ? (long long)cstats.mmio_after_removal : -1ll);
    }
    if (o.json) {
        jsf(&s.out, "\"instances\":[");
        for (int i = 0; i < s.ninst; i++) {
            char e[160];
            sim_json_escape(e, sizeof(e), s.inst[i].name);
            jsf(&s.out, "%s{\"name\":\"%s\",\"dump_mode\":%s,\"uncached_extension_bytes\":%u,\"max_transfer\":%u,"
                        "\"physical_breaks\":%u,\"srb_extension_bytes\":%u}", i ? "," : "", e, s.inst[i].dump ? "true" : "false",
                s.inst[i].uncached_bytes, s.inst[i].max_transfer, s.inst[i].breaks, s.inst[i].srbext);
        }
        jsf(&s.out, "],");
    }
    session_stop(&s);   /* teardown checks may add findings */
    unsigned findings = sim_findings_count();
    if (s.failures) rc = 1;
    if (findings) rc = 1;

    if (o.json) {
        struct js *j = &s.out;
        uint64_t mr = main_sum6(ctr.mmio_reads), mw = main_sum6(ctr.mmio_writes);
        char *fj = sim_findings_json(), *lj = sim_log_json();
        jsf(j, "\"backend\":\"%s\",\"command\":\"%s\",\"mmio_reads\":%llu,\"mmio_writes\":%llu,"
               "\"mmio_by_region\":{\"common\":[%llu,%llu],\"notify\":[%llu,%llu],\"isr\":[%llu,%llu],\"device\":[%llu,%llu],\"other\":[%llu,%llu]},"
               "\"doorbells\":%llu,\"interrupts\":%llu,\"intx_unclaimed\":%llu,\"dpcs\":%llu,\"timers\":%llu,\"srbs\":%llu,"
               "\"busy_requeues\":%llu,\"srb_timeouts\":%llu,\"lu_resets\":%llu,\"device_resets\":%llu,\"bus_resets\":%llu,\"bus_changes\":%llu,\"reset_detected\":%llu,"
               "\"max_outstanding\":%u,",
            o.backend, cmd, (unsigned long long)mr, (unsigned long long)mw,
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_COMMON], (unsigned long long)ctr.mmio_writes[SIM_MMIO_COMMON],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_NOTIFY], (unsigned long long)ctr.mmio_writes[SIM_MMIO_NOTIFY],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_ISR], (unsigned long long)ctr.mmio_writes[SIM_MMIO_ISR],
            (unsigned long long)ctr.mmio_reads[SIM_MMIO_DEVICE], (unsigned long long)ctr.mmio_writes[SIM_MMIO_DEVICE],
            (unsigned long long)(ctr.mmio_reads[0] + ctr.mmio_reads[5]), (unsigned long long)(ctr.mmio_writes[0] + ctr.mmio_writes[5]),
            (unsigned long long)ctr.doorbells, (unsigned long long)ctr.interrupts, (unsigned long long)ctr.intx_unclaimed,
            (unsigned long long)ctr.dpcs, (unsigned long long)ctr.timers, (unsigned long long)ctr.srbs,
            (unsigned long long)ctr.srbs_busy, (unsigned long long)ctr.srb_timeouts, (unsigned long long)ctr.lu_resets,
            (unsigned long long)ctr.device_resets, (unsigned long long)ctr.resets,
            (unsigned long long)ctr.bus_changes, (unsigned long long)ctr.reset_detected, maxout);
        jsf(j, "\"foreign_interrupts\":%llu,\"d3_accesses\":%llu,", (unsigned long long)ctr.foreign_intx,
            (unsigned long long)ctr.d3_accesses);
        jsf(j, "\"win7_model\":\"%s\",", win7_pessimistic ? "pessimistic" : "default");
        jsf(j, "\"dpc_concurrent\":%llu,\"ctl_interrupts\":%llu,\"ctl_dpcs\":%llu,",
            (unsigned long long)ctr.dpc_concurrent, (unsigned long long)ctr.ctl_interrupts,
            (unsigned long long)ctr.ctl_dpcs);
        jsf(j, "\"pnp_rebalances\":%llu,\"s4_resumes\":%llu,", (unsigned long long)s.rebalances,
            (unsigned long long)s.s4_resumes);
        jsf(j, "\"max_locked_mmio_us\":%llu,\"reset_left_outstanding\":%llu,",
            (unsigned long long)(sim_max_locked_mmio_ns / 1000), (unsigned long long)ctr.reset_left_outstanding);
        if (s.have_wl)
            jsf(j, "\"ios\":%llu,\"errors\":%llu,\"mismatches\":%llu,",
                (unsigned long long)s.last_wl.ios, (unsigned long long)s.last_wl.errors,
                (unsigned long long)(s.last_wl.mismatches + s.last_wl.image_mismatches));
        jsf(j, "\"all_instances\":{\"bus_resets\":%llu,\"lu_resets\":%llu,\"device_resets\":%llu,\"srb_timeouts\":%llu,"
               "\"reset_detected\":%llu,\"bus_changes\":%llu,\"power_cycles\":%llu},",
            (unsigned long long)(ctr.resets + s.ctr_prev.resets), (unsigned long long)(ctr.lu_resets + s.ctr_prev.lu_resets),
            (unsigned long long)(ctr.device_resets + s.ctr_prev.device_resets),
            (unsigned long long)(ctr.srb_timeouts + s.ctr_prev.srb_timeouts),
            (unsigned long long)(ctr.reset_detected + s.ctr_prev.reset_detected),
            (unsigned long long)(ctr.bus_changes + s.ctr_prev.bus_changes),
            (unsigned long long)pcycles_all);
        jsf(j, "\"runs_total\":{\"runs\":%llu,\"ios\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"readback_reads\":%llu,"
               "\"image_chunks_checked\":%llu},",
            (unsigned long long)s.sum_runs, (unsigned long long)s.sum_ios, (unsigned long long)s.sum_errors,
            (unsigned long long)s.sum_mismatches, (unsigned long long)s.sum_readback, (unsigned long long)s.sum_image_chunks);
        jsf(j, "\"srb_accounting\":{\"issued\":%llu,\"completed\":%llu,\"lost\":%llu,\"abandoned\":%llu,\"duplicates\":%llu,"
               "\"late\":%llu,\"test_dropped\":%llu},",
            (unsigned long long)sim_srb_acct.issued, (unsigned long long)sim_srb_acct.completed,
            (unsigned long long)sim_srb_acct.lost, (unsigned long long)sim_srb_acct.abandoned,
            (unsigned long long)sim_srb_acct.duplicates, (unsigned long long)sim_srb_acct.late,
            (unsigned long long)sim_srb_acct.test_dropped);
        if (err[0]) jstr(j, "error", err);
        jsf(j, "\"verifier_findings\":%u,\"findings\":%s,\"log\":%s,\"exit_status\":%d}", findings, fj, lj, rc);
        printf("{%s\n", j->p ? j->p : "}");
        fflush(stdout);   /* before LeakSanitizer's exit, which does not flush stdio */
        free(fj);
        free(lj);
    } else {
        printf("Longest register access held by the device at DIRQL / under the interrupt lock: %.3f ms (limit 100 ms)\n",
               sim_max_locked_mmio_ns / 1e6);
        printf("Verifier: %u finding%s%s\n", findings, findings == 1 ? "" : "s", findings ? " (see VERIFIER lines above)" : "");
        printf("Result: %s\n", rc ? "FAIL" : "PASS");
    }
    free(s.out.p);
    return rc;
}
