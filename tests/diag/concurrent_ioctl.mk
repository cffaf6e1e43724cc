# Build rule of the concurrent-IOCTL harness (tests/diag/concurrent_ioctl.c), read together
# with the top Makefile by tests/checks/58-diag-concurrent.sh:
#   make -f Makefile -f tests/diag/concurrent_ioctl.mk out/diag/concurrent_ioctl
# It links the simulator's core (SIM_CORE_OBJS: every sim object but main.o) with the
# host-built driver, like out/host/aerovblk-sim. (Could move into an mk/*.mk as is.)
DIAG_CI_OBJ := $(OUT)/diag/concurrent_ioctl.o
DIAG_CI_BIN := $(OUT)/diag/concurrent_ioctl

$(DIAG_CI_OBJ): tests/diag/concurrent_ioctl.c $(SIM_HDRS) sim/workload.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(DIAG_CI_BIN): $(DIAG_CI_OBJ) $(SIM_CORE_OBJS) $(HOST_DRIVER_LIB)
	$(HOST_CC) $(DIAG_CI_OBJ) $(SIM_CORE_OBJS) -Wl,-u,DriverEntry $(HOST_DRIVER_LIB) -o $@ $(HOST_LDFLAGS)
