# Host (Linux x86_64) build of driver/*.c for the simulator and unit tests, ASan+UBSan.
HOST_DRIVER_SRCS := $(sort $(wildcard driver/*.c))
HOST_DRIVER_OBJS := $(patsubst driver/%.c,$(HOST)/driver/%.o,$(HOST_DRIVER_SRCS))
HOST_DRIVER_LIB  := $(HOST)/libaerovblk.a

$(HOST)/driver/%.o: driver/%.c $(wildcard driver/*.h include/wdk/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -c $< -o $@

$(HOST_DRIVER_LIB): $(HOST_DRIVER_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
