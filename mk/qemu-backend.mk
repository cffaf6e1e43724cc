# QEMU backend of the simulator (sim/qemu_backend*.c, sim/qtest.c, sim/qmp.c) and its
# unit test against QEMU's real virtio-blk-pci. The simulator core links sim/*.c itself;
# this file only builds the backend's own test.
QEMU_BACKEND_SRCS := $(sort $(wildcard sim/qemu_backend*.c)) sim/qtest.c sim/qmp.c
QEMU_BACKEND_HDRS := sim/simdev.h sim/qtest.h sim/qmp.h sim/qemu_backend_int.h
QEMU_BACKEND_TEST := $(HOST)/unit/test_qemu_backend

$(QEMU_BACKEND_TEST): tests/unit/test_qemu_backend.c $(QEMU_BACKEND_SRCS) $(QEMU_BACKEND_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -Isim tests/unit/test_qemu_backend.c $(QEMU_BACKEND_SRCS) \
		-o $@ $(HOST_LDFLAGS) -lcmocka

CHECK_DEPS += $(QEMU_BACKEND_TEST)
