# Unit test of the modern PCI transport (driver/virtio_pci.c) against the in-process
# contract device (sim/contract_dev*.c). Host build, ASan+UBSan, cmocka.
VPCI_UNIT      := $(HOST)/unit/test_virtio_pci
VPCI_UNIT_SRCS := tests/unit/test_virtio_pci.c driver/virtio_pci.c $(sort $(wildcard sim/contract_dev*.c))
VPCI_UNIT_OBJS := $(patsubst %.c,$(HOST)/unit/vpci/%.o,$(VPCI_UNIT_SRCS))

$(HOST)/unit/vpci/%.o: %.c driver/virtio_pci.h driver/hwreg.h driver/compat.h include/wdk/ntdef.h sim/simdev.h sim/contract_dev.h sim/contract_dev_int.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -Isim -c $< -o $@

$(VPCI_UNIT): $(VPCI_UNIT_OBJS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_LDFLAGS) -o $@ $^ -lcmocka

.PHONY: unit-virtio-pci
unit-virtio-pci: $(VPCI_UNIT)
CHECK_DEPS += $(VPCI_UNIT)

# For tests/checks/24-*: the exact host flags the simulator core compiles sim/*.c with.
.PHONY: print-host-cflags-vpci
print-host-cflags-vpci:
	@echo '$(HOST_CFLAGS)'
