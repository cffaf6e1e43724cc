/*
 * `aerovblk-sim --driver x86/aerovblk.sys ...` on any x86-64 Linux (docs/pe-loader.md,
 * "x86 under emulation"). The x86 .sys runs in the 32-bit simulator
 * (out/peloader/x86/aerovblk-sim, gcc -m32): stdcall/cdecl boundaries for real. The
 * 64-bit simulator re-executes that binary with the same arguments:
 *
 *   AEROVBLK_X86_MODE=native     execve it; a kernel without IA32 emulation refuses
 *                                (ENOEXEC, "Exec format error"): that is an error.
 *   AEROVBLK_X86_MODE=emulated   run it under QEMU user mode (qemu-i386 -L /), with
 *                                AEROVBLK_X86_EMULATED=1 (sim/pe/x86_tls.c needs it).
 *   AEROVBLK_X86_MODE=auto       (default) native when the kernel can, else emulated.
 *
 * QEMU user mode was chosen over an emulator library (Unicorn) because it runs the whole
 * 32-bit simulator unchanged: with a library, every StorPort structure would have to be
 * translated between the driver's 32-bit layout and a 64-bit simulator's. Its cost is
 * measured in docs/pe-loader.md. AEROVBLK_SIM32 and AEROVBLK_QEMU_I386 override the two
 * binaries' paths. The child is told which mode ran (AEROVBLK_X86_RAN) and says it.
 */
#define _GNU_SOURCE
#include "sim.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PE_MACHINE_I386 0x014C

#if defined(__x86_64__)
/* 1 if path is a PE image for i386, 0 if not (or unreadable: the loader says why). */
static int is_x86_pe(const char *path)
{
    unsigned char hdr[64], pe[6];
    uint32_t off;
    FILE *f = fopen(path, "rb");
    int r = 0;
    if (!f)
        return 0;
    if (fread(hdr, 1, sizeof hdr, f) == sizeof hdr && hdr[0] == 'M' && hdr[1] == 'Z') {
        off = (uint32_t)hdr[60] | (uint32_t)hdr[61] << 8 | (uint32_t)hdr[62] << 16 | (uint32_t)hdr[63] << 24;
        if (fseek(f, (long)off, SEEK_SET) == 0 && fread(pe, 1, sizeof pe, f) == sizeof pe &&
            !memcmp(pe, "PE\0\0", 4))
            r = ((unsigned)pe[4] | (unsigned)pe[5] << 8) == PE_MACHINE_I386;
    }
    fclose(f);
    return r;
}

/* emulated: the UBSan-only build (mk/peloader.mk says why) */
static void sim32_path(char *buf, size_t len, int emulated)
{
    const char *env = getenv("AEROVBLK_SIM32");
    char self[PATH_MAX - 64];   /* room for the suffix below */
    ssize_t n;
    char *slash;
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(buf, len, "out/peloader/%s/aerovblk-sim", emulated ? "x86-noasan" : "x86");
        return;
    }
    self[n] = 0;
    slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    /* out/host/aerovblk-sim -> out/peloader/x86{,-noasan}/aerovblk-sim */
    snprintf(buf, len, "%s/../peloader/%s/aerovblk-sim", self, emulated ? "x86-noasan" : "x86");
}

static int sim32_missing(const char *driver, const char *sim32)
{
    fprintf(stderr, "aerovblk-sim: %s is an x86 driver; the 32-bit simulator %s is missing "
            "(make peloader-sim32)\n", driver, sim32);
    return 2;
}

int sim_x86_relaunch(int argc, char **argv, const char *driver)
{
    const char *mode = getenv("AEROVBLK_X86_MODE");
    const char *qemu = getenv("AEROVBLK_QEMU_I386");
    char sim32[PATH_MAX];
    char **qargv;
    int i, err;
    if (!driver || !*driver || !is_x86_pe(driver))
        return 0;
    if (!mode || !*mode)
        mode = "auto";
    if (strcmp(mode, "auto") && strcmp(mode, "native") && strcmp(mode, "emulated")) {
        fprintf(stderr, "aerovblk-sim: AEROVBLK_X86_MODE must be native, emulated or auto, not '%s'\n", mode);
        return 2;
    }
    fflush(NULL);
    if (strcmp(mode, "emulated") != 0) {
        sim32_path(sim32, sizeof sim32, 0);
        if (access(sim32, X_OK) != 0)
            return sim32_missing(driver, sim32);
        setenv("AEROVBLK_X86_RAN", "native", 1);
        unsetenv("AEROVBLK_X86_EMULATED");
        execv(sim32, argv);
        err = errno;
        if (!strcmp(mode, "native") || err != ENOEXEC) {
            fprintf(stderr, "aerovblk-sim: cannot run the 32-bit simulator %s natively: %s%s\n", sim32,
                    strerror(err), err == ENOEXEC ? " (this kernel cannot execute 32-bit programs; "
                    "AEROVBLK_X86_MODE=emulated runs it under qemu-i386)" : "");
            return 2;
        }
    }
    sim32_path(sim32, sizeof sim32, 1);
    if (access(sim32, X_OK) != 0)
        return sim32_missing(driver, sim32);
    /* qemu-i386 -L / SIM32 ARGS...: argv[0] is replaced by the two binaries. */
    qargv = calloc((size_t)argc + 5, sizeof *qargv);
    if (!qargv)
        return 2;
    qargv[0] = (char *)(qemu && *qemu ? qemu : "qemu-i386");
    qargv[1] = (char *)"-L";
    qargv[2] = (char *)"/";
    qargv[3] = sim32;
    for (i = 1; i < argc; i++)
        qargv[3 + i] = argv[i];
    setenv("AEROVBLK_X86_RAN", "emulated", 1);
    setenv("AEROVBLK_X86_EMULATED", "1", 1);
    execvp(qargv[0], qargv);
    err = errno;
    fprintf(stderr, "aerovblk-sim: cannot start %s for the x86 driver: %s%s\n", qargv[0], strerror(err),
            err == ENOENT ? " (apt-get install -y qemu-user)" : "");
    free(qargv);
    return 2;
}
#else
int sim_x86_relaunch(int argc, char **argv, const char *driver)
{
    (void)argc; (void)argv; (void)driver;
    return 0;   /* this is the 32-bit simulator */
}
#endif

const char *sim_x86_mode(void)
{
#if defined(__i386__)
    const char *ran = getenv("AEROVBLK_X86_RAN");
    if (ran && !strcmp(ran, "emulated"))
        return "emulated (qemu-i386 user mode)";
    if (getenv("AEROVBLK_X86_EMULATED"))
        return "emulated (qemu-i386 user mode)";
    return "native (32-bit process)";
#else
    return NULL;
#endif
}

/* One line per x86 driver run in AEROVBLK_X86_LOG, if set (tests/run-checks.sh counts
 * them for its summary). O_APPEND writes of one short line do not interleave. */
void sim_x86_note_run(void)
{
    const char *log = getenv("AEROVBLK_X86_LOG");
    const char *mode = sim_x86_mode();
    FILE *f;
    if (!mode || !log || !*log)
        return;
    f = fopen(log, "a");
    if (!f)
        return;
    fprintf(f, "%s\n", strncmp(mode, "emulated", 8) ? "native" : "emulated");
    fclose(f);
}
