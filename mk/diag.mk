# Build rules of the diagnostics harnesses that drive the simulator's core directly
# (SIM_CORE_OBJS: every sim object but the CLI main*.o, linked with the host-built driver like
# out/host/aerovblk-sim): tests/diag/concurrent_ioctl.c (58-diag-concurrent) and
# tests/diag/ioctl_raw.c (57-diag-malformed).
# mk/sim.mk is read after this file (alphabetical order): prerequisites that name its
# variables are expanded a second time, when the rule is used.
.SECONDEXPANSION:
DIAG_CI_OBJ := $(OUT)/diag/concurrent_ioctl.o
DIAG_CI_BIN := $(OUT)/diag/concurrent_ioctl

$(DIAG_CI_OBJ): tests/diag/concurrent_ioctl.c $$(SIM_HDRS) sim/workload.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(DIAG_CI_BIN): $(DIAG_CI_OBJ) $$(SIM_CORE_OBJS) $$(HOST_DRIVER_LIB)
	$(HOST_CC) $(DIAG_CI_OBJ) $(SIM_CORE_OBJS) -Wl,-u,DriverEntry $(HOST_DRIVER_LIB) -o $@ $(HOST_LDFLAGS)

# The byte-level IOCTL harness (tests/diag/ioctl_raw.c), run by 57-diag-malformed.sh.
DIAG_RAW_OBJ := $(OUT)/diag/ioctl_raw.o
DIAG_RAW_BIN := $(OUT)/diag/ioctl_raw

$(DIAG_RAW_OBJ): tests/diag/ioctl_raw.c $$(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(DIAG_RAW_BIN): $(DIAG_RAW_OBJ) $$(SIM_CORE_OBJS) $$(HOST_DRIVER_LIB)
	$(HOST_CC) $(DIAG_RAW_OBJ) $(SIM_CORE_OBJS) -Wl,-u,DriverEntry $(HOST_DRIVER_LIB) -o $@ $(HOST_LDFLAGS)

CHECK_DEPS += $(DIAG_CI_BIN) $(DIAG_RAW_BIN)
