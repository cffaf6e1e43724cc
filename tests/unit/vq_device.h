/*
 * User-space DEVICE side of a split virtqueue, for the unit tests of
 * driver/virtqueue.c. Written from the spec (virtio 1.x 2.7) independently of the
 * driver code: it reads the rings only through guest-physical addresses, as a device
 * does, and checks every rule a device may rely on (chain shape, flags, indirect
 * tables, readable-before-writable, no descriptor reused while in flight). Any
 * violation fails the running cmocka test.
 *
 * Guest RAM is one host buffer seen at a fake guest-physical base (above 4 GiB).
 */
#ifndef VQ_DEVICE_H
#define VQ_DEVICE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VQD_MAX_ELEMS 256

typedef struct vqd_elem {
    uint64_t pa;
    uint32_t len;
    bool write;
} vqd_elem;

typedef struct vqd_req {
    uint16_t head;
    bool indirect;
    uint16_t ring_descs;           /* descriptors of the ring table it occupies */
    uint16_t nelem;
    uint16_t ring_idx[VQD_MAX_ELEMS];  /* ring descriptors it occupies */
    vqd_elem elem[VQD_MAX_ELEMS];
} vqd_req;

typedef struct vqd {
    uint8_t *ram;
    uint64_t ram_pa;
    size_t ram_len;
    uint16_t qsize;
    bool event_idx;                /* VIRTIO_F_EVENT_IDX negotiated */
    bool indirect_ok;              /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool ignore_suppression;       /* interrupt after every publish regardless of flags/used_event */
    uint64_t desc_pa, avail_pa, used_pa;
    uint16_t last_avail;           /* next avail entry to consume */
    uint16_t used_idx;             /* device's used idx (published at vqd_publish) */
    uint16_t published_used;
    uint8_t *desc_busy;            /* per ring descriptor: part of a request in flight */
    vqd_req *pending;              /* fetched, not completed (unordered) */
    size_t npending;
    /* counters */
    uint64_t notifies;             /* doorbells the driver wrote */
    uint64_t interrupts;           /* used buffer notifications sent */
    uint64_t interrupts_suppressed;
    uint64_t fetched, completed;
} vqd;

void vqd_init(vqd *d, uint8_t *ram, uint64_t ram_pa, size_t ram_len, uint16_t qsize,
              bool event_idx, bool indirect_ok, uint64_t desc_pa, uint64_t avail_pa,
              uint64_t used_pa);
void vqd_fini(vqd *d);
/* Host pointer for [pa, pa+len) of guest RAM; fails the test if outside. */
void *vqd_ptr(vqd *d, uint64_t pa, size_t len);
/* Consume every newly available entry into pending[]; returns how many. */
size_t vqd_fetch(vqd *d);
/* Device-side available buffer notification control (spec 2.7.10, device part):
 * enable: flags 0 / avail_event = last_avail; disable: NO_NOTIFY / avail_event left
 * stale (like QEMU). Returns true when, after enabling, new entries are already
 * there (the device's own re-check). */
bool vqd_set_notify(vqd *d, bool enable);
/* Write the used element for pending[i] (len as given), unpublished; removes it. */
void vqd_complete(vqd *d, size_t i, uint32_t len);
/* Raw used element at the device's used idx (any id/len), unpublished. */
void vqd_push_raw(vqd *d, uint32_t id, uint32_t len);
/* Publish used idx (write barrier first), then decide on a used buffer
 * notification per spec 2.7.7 (device part). Returns true when it interrupts. */
bool vqd_publish(vqd *d);
/* Publish an arbitrary used idx value (hostile device). */
void vqd_publish_raw_idx(vqd *d, uint16_t idx);
/* Reset: forget everything in flight (ring memory untouched). */
void vqd_reset(vqd *d);

#endif
