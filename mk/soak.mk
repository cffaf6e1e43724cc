# make soak: the reliability campaign (docs/reliability.md, scripts/soak.sh, tools/soak.py).
# SOAK_ARGS overrides the default (one hour of segments, campaign seed 1), e.g.
#   make soak SOAK_ARGS="--total-ios 10000000 --seed 5"
SOAK_ARGS ?= --seconds 3600 --bad-input
.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) $(SIM_BIN) peloader-sim32 \
	    $(PKG_DIR)/amd64/aerovblk.sys $(PKG_DIR)/x86/aerovblk.sys
	@scripts/soak.sh $(SOAK_ARGS)
