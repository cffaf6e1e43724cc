# Disk semantics (issue 5): unit tests of driver/blk.c and driver/scsi.c (cmocka,
# ASan + UBSan), the libFuzzer harness of the SCSI translation, and the freestanding
# mingw compile check. Owner: SCSI/blk (H5). Checks: tests/checks/40-43.
# The driver files are compiled directly (not via libaerovblk.a) so these tests link
# only the layers they exercise: scsi.c -> blk.c -> virtqueue.c + virtio_pci.c, with
# the MMIO hooks (AvHostMmioRead/Write) provided by each test.
SCSI_DRIVER_SRCS := driver/scsi.c driver/scsi_info.c driver/scsi_medium.c driver/blk.c driver/virtqueue.c driver/virtio_pci.c
SCSI_DRIVER_HDRS := $(wildcard driver/*.h include/wdk/*.h)

BLK_UNIT_TEST := $(HOST)/unit/test_blk
$(BLK_UNIT_TEST): tests/unit/test_blk.c tests/unit/vq_device.c tests/unit/vq_device.h \
                  driver/blk.c driver/virtqueue.c driver/virtio_pci.c $(SCSI_DRIVER_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -Itests/unit -o $@ tests/unit/test_blk.c tests/unit/vq_device.c \
	    driver/blk.c driver/virtqueue.c driver/virtio_pci.c $(HOST_LDFLAGS) -lcmocka

SCSI_UNIT_TEST := $(HOST)/unit/test_scsi
$(SCSI_UNIT_TEST): tests/unit/test_scsi.c $(wildcard tests/unit/scsi_*.h) $(SCSI_DRIVER_SRCS) $(SCSI_DRIVER_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -Itests/unit -o $@ tests/unit/test_scsi.c $(SCSI_DRIVER_SRCS) \
	    $(HOST_LDFLAGS) -lcmocka

# libFuzzer harness (clang): random CDBs / lengths / SG shapes / disk geometry /
# completion statuses against the invariants in tests/fuzz/fuzz_scsi.c.
FUZZ_CC := clang
FUZZ_SCSI := $(HOST)/fuzz/fuzz_scsi
$(FUZZ_SCSI): tests/fuzz/fuzz_scsi.c $(SCSI_DRIVER_SRCS) $(SCSI_DRIVER_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -g -O1 -Wall -Wextra -Werror -Iinclude -Iinclude/wdk -Idriver \
	    -DAEROVBLK_HOST=1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ tests/fuzz/fuzz_scsi.c $(SCSI_DRIVER_SRCS)

CHECK_DEPS += $(BLK_UNIT_TEST) $(SCSI_UNIT_TEST) $(FUZZ_SCSI)
