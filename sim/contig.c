/* StorPortAllocateContiguousMemorySpecifyCacheNode / StorPortFreeContiguousMemorySpecifyCache:
 * StorPortExtendedFunction codes 24 and 25, present from Windows 7 (facts §11.12,
 * [MS-ACMSCN], [MS-FCMSC]; IRQL <= DISPATCH_LEVEL). The aerovblk driver does not use
 * them (docs/performance.md says why); the simulator offers them so that a miniport that
 * does is judged: physically contiguous guest memory inside [Lowest, Highest] not
 * crossing BoundaryAddressMultiple, not zeroed, refused above the contiguous limit of
 * --fragmented-memory; freeing needs the same size and cache type; a block never freed
 * is a POOL finding at unload (Windows 7 releases none of it for the miniport); none of
 * this in dump mode (facts §11.8). StorPortGetPhysicalAddress(NULL, va) resolves it. */
#include <stdlib.h>
#include <string.h>
#include "sim.h"

#define PG 4096u

struct sim_contig_block {
    struct sim_contig_block *next;
    uint8_t *va;
    uint64_t gpa, pages;
    size_t len;
    int cache;
};

ULONG sim_contig_alloc(struct sim_adapter *a, size_t bytes, uint64_t lowest, uint64_t highest,
                       uint64_t boundary, int cache, PVOID *out)
{
    const char *fn = "StorPortAllocateContiguousMemorySpecifyCacheNode";
    sim_check_irql(fn, SIM_IRQL_DISPATCH);
    if (out) *out = NULL;
    if (a->opts.dump_mode) {
        sim_finding("DUMP", "%s in dump mode (no allocations there, facts §11.8)", fn);
        return STOR_STATUS_NOT_IMPLEMENTED;
    }
    if (!out || !bytes || highest < lowest) return STOR_STATUS_INVALID_PARAMETER;
    if (cache < 0 || cache > 2) {   /* MmNonCached, MmCached, MmWriteCombined */
        sim_finding("ARGUMENT", "%s: CacheType %d is not a MEMORY_CACHING_TYPE", fn, cache);
        return STOR_STATUS_INVALID_PARAMETER;
    }
    if (!sim_contig_possible(bytes, fn)) return STOR_STATUS_SUCCESS;   /* *out NULL: not found */
    uint64_t pages = (bytes + PG - 1) / PG;
    uint64_t gpa = sim_mem_alloc_contig(&a->mem, pages);
    bool fits = gpa && gpa >= lowest && gpa + bytes - 1 <= highest &&
                (!boundary || gpa / boundary == (gpa + bytes - 1) / boundary);
    if (!fits) {
        if (gpa) sim_mem_free(&a->mem, gpa, pages);
        sim_log("%s(%zu bytes, 0x%llx..0x%llx, boundary 0x%llx): no such range", fn, bytes,
                (unsigned long long)lowest, (unsigned long long)highest, (unsigned long long)boundary);
        return STOR_STATUS_SUCCESS;   /* the documented failure: *BufferPointer stays NULL */
    }
    struct sim_contig_block *b = calloc(1, sizeof(*b));
    b->gpa = gpa;
    b->pages = pages;
    b->len = bytes;
    b->cache = cache;
    b->va = sim_gpa(a->dev, gpa);
    memset(b->va, 0xA5, bytes);   /* not zeroed */
    pthread_mutex_lock(&a->pool_mutex);
    b->next = a->contig;
    a->contig = b;
    pthread_mutex_unlock(&a->pool_mutex);
    *out = b->va;
    return STOR_STATUS_SUCCESS;
}

ULONG sim_contig_free(struct sim_adapter *a, PVOID va, size_t bytes, int cache)
{
    const char *fn = "StorPortFreeContiguousMemorySpecifyCache";
    sim_check_irql(fn, SIM_IRQL_DISPATCH);
    struct sim_contig_block *found = NULL;
    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_contig_block **pp = &a->contig; *pp; pp = &(*pp)->next)
        if ((*pp)->va == va) { found = *pp; *pp = found->next; break; }
    pthread_mutex_unlock(&a->pool_mutex);
    if (!found) {
        sim_finding("POOL", "%s(%p): not a block from StorPortAllocateContiguousMemorySpecifyCacheNode (double free?)", fn, va);
        return STOR_STATUS_INVALID_PARAMETER;
    }
    if (found->len != bytes || found->cache != cache)
        sim_finding("ARGUMENT", "%s(%p): %zu bytes / cache type %d, allocated as %zu / %d ([MS-FCMSC]: must match)",
                    fn, va, bytes, cache, found->len, found->cache);
    memset(found->va, 0xDB, found->len);   /* a use after free reads garbage */
    sim_mem_free(&a->mem, found->gpa, found->pages);
    free(found);
    return STOR_STATUS_SUCCESS;
}

bool sim_contig_phys(struct sim_adapter *a, const void *va, uint64_t *gpa, ULONG *len)
{
    const uint8_t *p = va;
    bool ok = false;
    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_contig_block *b = a->contig; b; b = b->next)
        if (p >= b->va && p < b->va + b->len) {
            *gpa = b->gpa + (uint64_t)(p - b->va);
            *len = (ULONG)(b->len - (size_t)(p - b->va));
            ok = true;
            break;
        }
    pthread_mutex_unlock(&a->pool_mutex);
    return ok;
}

void sim_contig_unload(struct sim_adapter *a, bool quietly)
{
    pthread_mutex_lock(&a->pool_mutex);
    for (struct sim_contig_block *b = a->contig; b;) {
        struct sim_contig_block *n = b->next;
        if (!quietly)
            sim_finding("POOL", "contiguous block of %zu bytes not freed at unload", b->len);
        free(b);
        b = n;
    }
    a->contig = NULL;
    pthread_mutex_unlock(&a->pool_mutex);
}
