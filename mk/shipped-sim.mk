# out/peloader/x64-noasan/aerovblk-sim: the 64-bit simulator for the shipped amd64 .sys
# only (no host-built driver: --driver or AEROVBLK_SIM_DRIVER), UBSan without ASan, like
# the 32-bit out/peloader/x86-noasan one. Check 77 reruns the integration scenarios with
# it against out/package/amd64/aerovblk.sys: the .sys carries no instrumentation, and the
# same scenarios run the same simulator sources under ASan in the host build (checks 31-66)
# and in the 32-bit ASan build; without ASan's shadow memory and fault-path overhead the
# reruns take a fraction of the time (docs/testing.md, check 77).
SHIPSIM_OUT   := $(PELD_OUT)/x64-noasan
SHIPSIM_BIN   := $(SHIPSIM_OUT)/aerovblk-sim
SHIPSIM_FLAGS := $(PELD_CFLAGS_x64-noasan) $(PELD_SIM32_EXTRA)

$(SHIPSIM_OUT)/sim_pe.o: sim/pe/sim_pe.c $(PELD_HDRS) sim/sim.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SHIPSIM_FLAGS) -c $< -o $@
$(SHIPSIM_OUT)/sim/%.o: sim/%.c $(wildcard sim/*.h) $(wildcard include/wdk/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SHIPSIM_FLAGS) -c $< -o $@
$(SHIPSIM_OUT)/sim/aerovblk_diagfmt.o: tools/common/aerovblk_diagfmt.c tools/common/aerovblk_diagfmt.h include/aerovblk_ioctl.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SHIPSIM_FLAGS) -c $< -o $@
$(SHIPSIM_BIN): $(patsubst sim/%.c,$(SHIPSIM_OUT)/sim/%.o,$(sort $(wildcard sim/*.c))) \
		$(SHIPSIM_OUT)/sim/aerovblk_diagfmt.o $(SHIPSIM_OUT)/sim_pe.o $(SHIPSIM_OUT)/libpeloader.a
	$(HOST_CC) $^ -o $@ -fsanitize=undefined -pthread
CHECK_DEPS += $(SHIPSIM_BIN)
