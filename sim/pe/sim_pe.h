/*
 * Glue between sim/pe and the simulator core (sim/sim.h): `aerovblk-sim --driver
 * PATH.sys` loads the shipped binary with sim_load_sys_driver() (sim/main_session.c declares it
 * weak; link out/peloader/<arch>/sim_pe.o + libpeloader.a to provide it) instead of
 * using the host-built driver. After it returns 0:
 *   - *entry is the image's DriverEntry; run it with sim_driver_load() as for the host
 *     build;
 *   - sim_call_hook routes every sim_call_* through pe_kcall (kernel-sized stack,
 *     stdcall / Microsoft x64 convention);
 *   - a fault on a window returned by StorPortGetDeviceBase is decoded and forwarded to
 *     the core's sim_mmio_emulate() (same checks and counters as AvHostMmioRead/Write).
 * Not thread-safe against itself: call from the main thread before any adapter starts.
 */
#ifndef AEROVBLK_SIM_PE_H
#define AEROVBLK_SIM_PE_H
#include <stddef.h>

int sim_load_sys_driver(const char *path, void **entry, char *err, size_t errlen);
/* What Windows does once DriverEntry returned: drop INIT / discardable sections. */
void sim_pe_driver_entry_done(void);
/* Restores the host-build mode (no hook, no MMIO fallback) and unmaps the image. The
 * driver must be fully unloaded (no adapter, no thread in it). */
void sim_pe_unload(void);
#endif
