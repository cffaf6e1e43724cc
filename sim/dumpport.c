/*
 * The crash-dump port, pessimistic (issue 11 item 9, facts §7, §11.8): what the dump
 * stack hands the dump instance and what it holds it to, beyond sim/port.c's dump-mode
 * start (DriverEntry(NULL, NULL), "dump=1", HIGH_LEVEL, polled, one request at a time)
 * and sim/storport.c's dump-safe call set (storport_dump_unsafe).
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

bool sim_dump_config_saved = true;
bool sim_second_uncached_null = true;

/* DUMP_POINTERS / PortConfiguration: crashdmp keeps the normal instance's ConfigInfo
 * and the dump port starts the dump instance from it (medium confidence, facts §11.8),
 * so Dma64BitAddresses, HwMSInterruptRoutine, the synchronisation fields and transfer
 * limits may arrive as the normal instance left them. */
static PORT_CONFIGURATION_INFORMATION saved;
static bool have_saved;

void sim_dump_save_config(struct sim_adapter *a)
{
    if (a->opts.dump_mode) return;
    saved = *a->cfg;
    have_saved = true;
}

const PORT_CONFIGURATION_INFORMATION *sim_dump_saved_config(void)
{
    return sim_dump_config_saved && have_saved ? &saved : NULL;
}

/* Windows' 32 KB of noncached memory for the dump stack also holds the SRB extension
 * and the sense buffer (vioscsi 7184e711; storahci keeps under 30 KB): the uncached
 * extension + one SRB extension (one request at a time) + a 255-byte sense buffer
 * (the largest SenseInfoBufferLength) must fit. */
#define DUMP_BUDGET 32768u
#define DUMP_SENSE 255u

void sim_dump_budget_check(struct sim_adapter *a)
{
    uint64_t total = (uint64_t)a->unc_len + a->cfg->SrbExtensionSize + DUMP_SENSE;
    sim_log("port: dump budget: uncached extension %u + SRB extension %u + sense %u = %llu of %u bytes",
            a->unc_len, (unsigned)a->cfg->SrbExtensionSize, DUMP_SENSE, (unsigned long long)total, DUMP_BUDGET);
    if (total > DUMP_BUDGET)
        sim_finding("DUMP", "dump instance needs %llu bytes of noncached memory (uncached extension %u + SRB extension %u "
                    "+ sense %u) > the dump port's %u ([MS-BOOT], facts §11.8)", (unsigned long long)total,
                    a->unc_len, (unsigned)a->cfg->SrbExtensionSize, DUMP_SENSE, DUMP_BUDGET);
    if (a->cfg->HwMSInterruptRoutine)
        sim_finding("DUMP", "dump instance left ConfigInfo->HwMSInterruptRoutine set (e.g. from the saved configuration): "
                    "the dump port has no message interrupts and polls HwInterrupt (facts §7, §11.8)");
}
