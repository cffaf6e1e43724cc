# `make bench` (issue 16): the benchmark suite. out/bench/aerovblk-sim is the simulator
# and the driver built -O2 without sanitizers (callgrind counts the driver's instructions
# in it; an ASan build would count the sanitizer); scripts/bench.sh runs it and writes
# out/bench/bench.json and the table of docs/performance.md. The gate against
# tests/bench/baseline.json is tests/checks/90-bench-gate.sh (part of make check).
BENCH        := $(OUT)/bench
BENCH_CFLAGS := -std=gnu11 -g -O2 -Wall -Wextra -Werror -Iinclude -Iinclude/wdk -Idriver -Isim -Itools/common \
                -DAEROVBLK_HOST=1
BENCH_SIM    := $(BENCH)/aerovblk-sim
BENCH_OBJS   := $(patsubst driver/%.c,$(BENCH)/driver/%.o,$(sort $(wildcard driver/*.c))) \
                $(patsubst sim/%.c,$(BENCH)/sim/%.o,$(sort $(wildcard sim/*.c))) $(BENCH)/sim/aerovblk_diagfmt.o
BENCH_HDRS   := $(wildcard driver/*.h sim/*.h include/wdk/*.h include/*.h) tools/common/aerovblk_diagfmt.h

# The driver with -mabi=ms: one calling convention throughout, as in the x64 .sys (with
# the host's SysV inside and ms_abi at the StorPort boundary, every ms_abi function that
# calls a SysV one saves xmm6-xmm15: ~40 instructions per I/O no Windows build executes).
$(BENCH)/driver/%.o: driver/%.c $(BENCH_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(BENCH_CFLAGS) -mabi=ms -c $< -o $@
$(BENCH)/sim/%.o: sim/%.c $(BENCH_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(BENCH_CFLAGS) -c $< -o $@
$(BENCH)/sim/aerovblk_diagfmt.o: tools/common/aerovblk_diagfmt.c tools/common/aerovblk_diagfmt.h include/aerovblk_ioctl.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(BENCH_CFLAGS) -c $< -o $@
$(BENCH_SIM): $(BENCH_OBJS)
	$(HOST_CC) $(BENCH_OBJS) -o $@ -pthread

.PHONY: bench
bench: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) $(BENCH_SIM) $(SIM_BIN)
	@scripts/bench.py --update-doc docs/performance.md
CHECK_DEPS += $(BENCH_SIM)
