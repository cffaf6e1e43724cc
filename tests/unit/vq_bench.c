/*
 * Micro-benchmark of the virtqueue hot path: instructions per request for
 * VqAdd + VqKickPrepare + VqGetUsed (+ the Disable/Enable pair once per batch).
 * Meant for callgrind, counting only the Vq* functions:
 *
 *   make out/host/unit/vq_bench
 *   valgrind --tool=callgrind --toggle-collect='Vq*' --callgrind-out-file=/dev/null \
 *            out/host/unit/vq_bench
 *   (total "Collected" Ir / requests printed by the program = instructions per request)
 *
 * Built -O2 without sanitizers (an ASan build would count instrumentation). The
 * "device" here is the minimum: it echoes every available head into the used ring.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "virtqueue.h"

#define QSIZE 128
#define BATCH 16

static uint8_t ram[1 << 20] __attribute__((aligned(4096)));

static void device_echo(VIRTQUEUE *vq, uint16_t *last_avail, uint16_t *used_idx)
{
    uint16_t avail = vq->Avail[1];
    while (*last_avail != avail) {
        uint16_t head = vq->Avail[2 + (*last_avail & (QSIZE - 1))];
        volatile uint32_t *el = (volatile uint32_t *)(vq->Used + 4 + 8 * (*used_idx & (QSIZE - 1)));
        el[0] = head;
        el[1] = 1;
        (*last_avail)++;
        (*used_idx)++;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *(volatile uint16_t *)(vq->Used + 2) = *used_idx;
}

static unsigned run(int indirect, unsigned requests, uint16_t nbuf)
{
    static VIRTQUEUE vq;
    static uint8_t state[QSIZE * 16] __attribute__((aligned(16)));
    static int cookies[QSIZE];
    VQ_BUFFER b[4];
    uint16_t last_avail = 0, used_idx = 0;
    unsigned done = 0, i, sum = 0;
    ULONG ring = VqRingBytes(QSIZE, TRUE);
    ULONG ringpad = (ring + 4095) & ~4095u;
    if (VqInit(&vq, QSIZE, TRUE, ram, 0x100000000ULL, indirect ? ram + ringpad : NULL,
               0x100000000ULL + ringpad, indirect ? 8 : 0, state) != VQ_OK) abort();
    VQ_REQUEST req;
    for (i = 0; i < 4; i++) {
        b[i].PhysicalAddress = 0x200000000ULL + 4096 * i;
        b[i].Length = i == 0 ? 16 : 4096;
    }
    memset(&req, 0, sizeof(req));
    req.Out = b;                        /* nbuf - 1 readable buffers, the last one writable */
    req.OutCount = (USHORT)(nbuf - 1);
    req.In = b + nbuf - 1;
    req.InCount = 1;
    while (done < requests) {
        void *c;
        ULONG len;
        for (i = 0; i < BATCH; i++)
            if (VqAdd(&vq, &req, &cookies[i]) != VQ_OK) abort();
        (void)VqKickPrepare(&vq);
        device_echo(&vq, &last_avail, &used_idx);
        do {
            VqDisableInterrupts(&vq);
            while ((c = VqGetUsed(&vq, &len)) != NULL) { sum += len; done++; }
        } while (VqEnableInterrupts(&vq));
    }
    return sum;
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 100000;
    n -= n % BATCH;
    /* Two runs so each mode can be read from callgrind's per-call output too. */
    if (run(1, n, 3) != n || run(0, n, 3) != n) return 1;
    printf("vq_bench: %u requests indirect (3 buffers) + %u direct (3 buffers), batches of %d\n",
           n, n, BATCH);
    printf("instructions per request = callgrind Collected Ir / %u\n", 2 * n);
    return 0;
}
