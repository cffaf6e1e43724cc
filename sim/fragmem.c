/*
 * --fragmented-memory[=N] (issue 11, facts §11.12): a late PnP start on a long-running
 * x86 machine whose physical memory is fragmented. No physically contiguous run larger
 * than N bytes (default SIM_FRAG_MAX_BYTES, 128 KiB) can be found, so StorPortGetUncachedExtension fails for a larger
 * request (a smaller request in a later call of the same HwFindAdapter succeeds: a
 * failed call keeps nothing). Single pages (SRB extensions, sense buffers, the data
 * buffers' scattered pages) and the dump stack's own buffer are not affected.
 */
#include "sim.h"

bool sim_fragmented_memory;
uint64_t sim_frag_max_bytes = SIM_FRAG_MAX_BYTES;

bool sim_contig_possible(uint64_t bytes, const char *what)
{
    if (!sim_fragmented_memory || bytes <= sim_frag_max_bytes) return true;
    sim_log("%s(%llu bytes): no physically contiguous run that large (--fragmented-memory: at most %llu bytes)",
            what, (unsigned long long)bytes, (unsigned long long)sim_frag_max_bytes);
    return false;
}
