# aerovblk top-level Makefile.
# Each area keeps its rules in mk/<area>.mk (included below), so areas never edit
# each other's rules. Targets:
#   make / make package   out/package/{x86,amd64}/aerovblk.sys + aerovblk.inf (+ tools)
#   make run              drive a QEMU virtio-blk disk with the driver (simulator)
#   make check            every test; ends with "N passed, N failed"
#   make soak             the reliability campaign (docs/reliability.md)
.DEFAULT_GOAL := package
SHELL := /bin/bash
OUT   := out
HOST  := $(OUT)/host
PKG   := $(OUT)/package

# Host (Linux) builds: the driver compiled for the simulator and the unit tests,
# always with ASan + UBSan. AEROVBLK_HOST selects the simulator's register hooks.
HOST_CC      ?= gcc
HOST_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
HOST_CFLAGS  := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Iinclude -Iinclude/wdk -Idriver \
                -DAEROVBLK_HOST=1 $(HOST_SAN)
HOST_LDFLAGS := $(HOST_SAN) -pthread

.PHONY: package run check deps clean
deps:
	@scripts/ensure-deps.sh

clean:
	rm -rf $(OUT)

-include $(sort $(wildcard mk/*.mk))

# Every build product a check needs; areas append to CHECK_DEPS in their mk file.
# The build runs one job per core (BUILD_JOBS): about half of a fresh clone's time.
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) $(CHECK_DEPS)
	@tests/run-checks.sh

run: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) $(RUN_DEPS)
	@scripts/run-demo.sh
