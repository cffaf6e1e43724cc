# Unit tests of the split virtqueue (driver/virtqueue.c) against a user-space device
# model (tests/unit/vq_device.c), cmocka, ASan + UBSan. virtqueue.c is compiled
# directly (not via libaerovblk.a) so this test depends on no other driver file.
VQ_UNIT_TEST := $(HOST)/unit/test_virtqueue
VQ_UNIT_SRCS := tests/unit/test_virtqueue.c tests/unit/vq_device.c driver/virtqueue.c
VQ_UNIT_HDRS := tests/unit/vq_device.h driver/virtqueue.h driver/compat.h include/wdk/ntdef.h

$(VQ_UNIT_TEST): $(VQ_UNIT_SRCS) $(VQ_UNIT_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -Itests/unit -o $@ $(VQ_UNIT_SRCS) $(HOST_LDFLAGS) -lcmocka

CHECK_DEPS += $(VQ_UNIT_TEST)

# Optional micro-benchmark (not a check): instructions per add+complete under
# callgrind; -O2 without sanitizers. See docs/virtqueue.md.
VQ_BENCH := $(HOST)/unit/vq_bench
$(VQ_BENCH): tests/unit/vq_bench.c driver/virtqueue.c $(VQ_UNIT_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -Iinclude -Iinclude/wdk -Idriver \
	  -DAEROVBLK_HOST=1 -o $@ tests/unit/vq_bench.c driver/virtqueue.c
