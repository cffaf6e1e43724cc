/*
 * Guest-RAM page allocator of the simulator: the uncached extension, SRB extensions,
 * data buffers and MSI-X targets all live in guest RAM, so the device can DMA them.
 * Read/write data deliberately gets pages at random places (Windows hands miniports
 * physically scattered pages); mapped buffers get contiguous runs.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define PG 4096ull

int sim_mem_init(struct sim_mem *m, sim_dev *dev, uint64_t base, uint64_t end, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->dev = dev;
    m->base = (base + PG - 1) & ~(PG - 1);
    m->end = end & ~(PG - 1);
    if (m->end <= m->base) return -1;
    m->npages = (m->end - m->base) / PG;
    m->used = calloc(m->npages, 1);
    if (!m->used) return -1;
    m->free_pages = m->npages;
    m->rng = seed ? seed : 1;
    m->limit_pages = m->npages;
    return 0;
}

uint64_t sim_mem_rand(struct sim_mem *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = sim_rand_next(&m->rng);
    pthread_mutex_unlock(&m->lock);
    return v;
}

void sim_mem_set_dma64(struct sim_mem *m, bool dma64)
{
    const uint64_t four_g = 0x100000000ull;
    pthread_mutex_lock(&m->lock);
    m->limit_pages = m->npages;
    m->top_down = false;
    if (m->end > four_g) {
        if (dma64) m->top_down = true;
        else m->limit_pages = m->base < four_g ? (four_g - m->base) / PG : 0;
    }
    pthread_mutex_unlock(&m->lock);
}

void sim_mem_destroy(struct sim_mem *m)
{
    free(m->used);
    m->used = NULL;
    pthread_mutex_destroy(&m->lock);
}

uint64_t sim_mem_alloc_contig(struct sim_mem *m, uint64_t npages)
{
    uint64_t run = 0, start = 0;
    if (!npages) return 0;
    pthread_mutex_lock(&m->lock);
    for (uint64_t k = 0; k < m->limit_pages; k++) {
        /* top-down: scan from the highest page, the run ends where the scan started */
        uint64_t i = m->top_down ? m->limit_pages - 1 - k : k;
        if (m->used[i]) { run = 0; continue; }
        if (!run || m->top_down) start = i;   /* top-down: the run grows downwards */
        if (++run == npages) {
            memset(m->used + start, 1, npages);
            m->free_pages -= npages;
            pthread_mutex_unlock(&m->lock);
            return m->base + start * PG;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int sim_mem_alloc_scattered(struct sim_mem *m, uint64_t npages, uint64_t *gpas)
{
    pthread_mutex_lock(&m->lock);
    if (m->free_pages < npages + 16 || !m->limit_pages) { pthread_mutex_unlock(&m->lock); return -1; }
    for (uint64_t k = 0; k < npages; k++) {
        /* A quarter of the time a run of 1-16 physically adjacent pages, as Windows'
         * free lists often give: the S/G list then has elements longer than a page. */
        if (npages - k > 1 && sim_rand_next(&m->rng) % 4 == 0) {
            uint64_t run = 1 + sim_rand_next(&m->rng) % 16, s = 0, j = 0;
            if (run > npages - k) run = npages - k;
            for (unsigned tries = 0; tries < 4 && run <= m->limit_pages; tries++) {
                s = sim_rand_next(&m->rng) % (m->limit_pages - run + 1);
                for (j = 0; j < run && !m->used[s + j]; j++) {}
                if (j == run) break;
            }
            if (j == run) {
                for (j = 0; j < run; j++) { m->used[s + j] = 1; gpas[k + j] = m->base + (s + j) * PG; }
                m->free_pages -= run;
                k += run - 1;
                continue;
            }
        }
        uint64_t i = sim_rand_next(&m->rng) % m->limit_pages, probes = 0;
        /* random probe, then linear: the pool is mostly free, so this is quick */
        while (m->used[i] && ++probes <= m->limit_pages) i = (i + 1) % m->limit_pages;
        if (m->used[i]) {   /* nothing free below the DMA limit: undo this call */
            for (uint64_t j = 0; j < k; j++) { m->used[(gpas[j] - m->base) / PG] = 0; m->free_pages++; }
            pthread_mutex_unlock(&m->lock);
            return -1;
        }
        m->used[i] = 1;
        m->free_pages--;
        gpas[k] = m->base + i * PG;
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void sim_mem_free(struct sim_mem *m, uint64_t gpa, uint64_t npages)
{
    pthread_mutex_lock(&m->lock);
    for (uint64_t k = 0; k < npages; k++) {
        uint64_t i = (gpa - m->base) / PG + k;
        if (i < m->npages && m->used[i]) { m->used[i] = 0; m->free_pages++; }
    }
    pthread_mutex_unlock(&m->lock);
}
