# The StorPort simulator out/host/aerovblk-sim (issue 4): every sim/*.c (wildcard, so
# new backend files are picked up; sim/pe/ has its own rules) + the host-built driver
# (libaerovblk.a, ASan+UBSan) + the diagnostics formatter shared with the query tool.
# (-u DriverEntry: main_session.c refers to it weakly, which alone pulls nothing from an archive.)
# SIM_EXTRA_LIBS lets other areas (the PE loader) link more in.
SIM_SRCS     := $(sort $(wildcard sim/*.c))
SIM_HDRS     := $(wildcard sim/*.h) $(wildcard include/wdk/*.h include/*.h) tools/common/aerovblk_diagfmt.h
SIM_OBJDIR   := $(HOST)/sim
SIM_OBJS     := $(patsubst sim/%.c,$(SIM_OBJDIR)/%.o,$(SIM_SRCS)) $(SIM_OBJDIR)/aerovblk_diagfmt.o
SIM_CORE_OBJS := $(filter-out $(SIM_OBJDIR)/main.o $(SIM_OBJDIR)/main_%.o,$(SIM_OBJS))
SIM_BIN      := $(HOST)/aerovblk-sim
SIM_FAKE_BIN := $(HOST)/aerovblk-sim-fake
SIM_CFLAGS   := $(HOST_CFLAGS) -Isim -Itools/common
SIM_EXTRA_LIBS ?=

$(SIM_OBJDIR)/%.o: sim/%.c $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(SIM_OBJDIR)/aerovblk_diagfmt.o: tools/common/aerovblk_diagfmt.c tools/common/aerovblk_diagfmt.h include/aerovblk_ioctl.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(SIM_BIN): $(SIM_OBJS) $(HOST_DRIVER_LIB) $(SIM_EXTRA_LIBS)
	$(HOST_CC) $(SIM_OBJS) -Wl,-u,DriverEntry $(HOST_DRIVER_LIB) $(SIM_EXTRA_LIBS) -o $@ $(HOST_LDFLAGS)

# The same simulator with a deliberately misbehaving test miniport instead of the
# driver: the verifier's own tests (tests/checks/3x-verifier*.sh).
$(SIM_OBJDIR)/sim_fake_miniport.o: tests/unit/sim_fake_miniport.c $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(SIM_CFLAGS) -c $< -o $@

$(SIM_FAKE_BIN): $(SIM_OBJS) $(SIM_OBJDIR)/sim_fake_miniport.o
	$(HOST_CC) $(SIM_OBJS) $(SIM_OBJDIR)/sim_fake_miniport.o -o $@ $(HOST_LDFLAGS)

.PHONY: sim
sim: $(SIM_BIN)
CHECK_DEPS += $(SIM_BIN) $(SIM_FAKE_BIN)
RUN_DEPS   += $(SIM_BIN)
