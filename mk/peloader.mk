# sim/pe: PE loader, kernel stacks and MMIO trap for running the shipped aerovblk.sys
# in the simulator (issue 8); its fixture drivers and tests. See docs/pe-loader.md.
#
#   out/pe/x64/libpeloader.a        64-bit library (runs the amd64 .sys)
#   out/pe/x86/libpeloader.a        32-bit library (gcc -m32; runs the x86 .sys)
#   out/pe/x64-asan/libpeloader.a   same as x64, ASan+UBSan, for an ASan simulator
#   out/pe-fixtures/{x86,amd64}/*.sys  mingw-built fixture drivers
#   out/pe/{x64,x86}/test_peloader  unit tests (cmocka on x64; built-in runner on x86)
PE_SRCS    := $(addprefix sim/pe/,peloader.c kstack.c mmio_trap.c x86dec.c kstack_switch.S)
PE_HDRS    := $(wildcard sim/pe/*.h) include/wdk/ntdef.h
PE_OUT     := $(OUT)/pe
PEFX_OUT   := $(OUT)/pe-fixtures
# No ASan in the default builds: the tests deliberately fault (MMIO traps, guard page)
# and run on hand-made stacks; see docs/pe-loader.md. UBSan stays on.
PE_CFLAGS_COMMON := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Iinclude/wdk -Isim/pe -Itests/pe-fixtures \
                    -fno-omit-frame-pointer -fsanitize=undefined -fno-sanitize-recover=all
PE_CFLAGS_x64      := -m64 $(PE_CFLAGS_COMMON)
PE_CFLAGS_x64-asan := -m64 $(PE_CFLAGS_COMMON) -fsanitize=address
# i386: Windows x86 code keeps ESP only 4-byte aligned; everything the driver calls
# must realign (SSE spills of -m32 code assume 16).
PE_CFLAGS_x86      := -m32 -mstackrealign $(PE_CFLAGS_COMMON)

define pe_lib_rules
$(PE_OUT)/$(1)/obj/%.o: sim/pe/%.c $(PE_HDRS)
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PE_CFLAGS_$(1)) -c $$< -o $$@
$(PE_OUT)/$(1)/obj/%.o: sim/pe/%.S
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PE_CFLAGS_$(1)) -c $$< -o $$@
$(PE_OUT)/$(1)/libpeloader.a: $(patsubst sim/pe/%,$(PE_OUT)/$(1)/obj/%.o,$(basename $(PE_SRCS)))
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach a,x64 x64-asan x86,$(eval $(call pe_lib_rules,$(a))))

# Fixture drivers: mingw-w64, linked like a miniport against a fake storport.sys.
PEFX_CFLAGS := -O2 -ffreestanding -nostdlib -fno-stack-protector -mno-stack-arg-probe \
               -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -Iinclude/wdk -Itests/pe-fixtures
PEFX_LDFLAGS := -nostdlib -Wl,--subsystem,native -Wl,--dynamicbase -Wl,--image-base,0x10000 \
                -Wl,--file-alignment,0x200 -Wl,--section-alignment,0x1000
PEFX_CC_x86      := i686-w64-mingw32-gcc
PEFX_CC_amd64    := x86_64-w64-mingw32-gcc
PEFX_TOOL_x86    := i686-w64-mingw32-dlltool
PEFX_TOOL_amd64  := x86_64-w64-mingw32-dlltool
# x64 names carry no @N decoration: strip it from the shared .def.
PEFX_DEF_x86     := cat
PEFX_DEF_amd64   := sed -E 's/@[0-9]+$$$$//'
PEFX_ENTRY_x86   := _DriverEntry@8
PEFX_ENTRY_amd64 := DriverEntry
PEFX_NAMES := fixture badimport baddll
PEFX_LIBS_fixture   := storport
PEFX_LIBS_badimport := storport
PEFX_LIBS_baddll    := hal

define pefx_rules
$(PEFX_OUT)/$(1)/lib%.a: tests/pe-fixtures/%.def
	@mkdir -p $$(dir $$@)
	$(PEFX_DEF_$(1)) $$< > $$(@:.a=.def)
	$(PEFX_TOOL_$(1)) -k -d $$(@:.a=.def) -l $$@
$(PEFX_OUT)/$(1)/%.sys: tests/pe-fixtures/%.c tests/pe-fixtures/fixture.h include/wdk/ntdef.h \
		$(PEFX_OUT)/$(1)/libstorport.a $(PEFX_OUT)/$(1)/libhal.a
	$(PEFX_CC_$(1)) $(PEFX_CFLAGS) $$< -o $$@ $(PEFX_LDFLAGS) -Wl,-e,$(PEFX_ENTRY_$(1)) \
		-L$(PEFX_OUT)/$(1) -l$$(PEFX_LIBS_$$*)
endef
$(foreach a,x86 amd64,$(eval $(call pefx_rules,$(a))))
.SECONDARY: $(foreach a,x86 amd64,$(PEFX_OUT)/$(a)/libstorport.a $(PEFX_OUT)/$(a)/libhal.a)
PEFX_ALL := $(foreach a,x86 amd64,$(foreach n,$(PEFX_NAMES),$(PEFX_OUT)/$(a)/$(n).sys))

# Unit tests: x64 with cmocka; x86 with the built-in runner (no i386 libcmocka here).
$(PE_OUT)/x64/test_peloader: tests/unit/test_peloader.c $(PE_OUT)/x64/libpeloader.a tests/pe-fixtures/fixture.h
	$(HOST_CC) $(PE_CFLAGS_x64) $< -o $@ $(PE_OUT)/x64/libpeloader.a -lcmocka -pthread
$(PE_OUT)/x86/test_peloader: tests/unit/test_peloader.c $(PE_OUT)/x86/libpeloader.a tests/pe-fixtures/fixture.h
	$(HOST_CC) $(PE_CFLAGS_x86) -DPE_TEST_BUILTIN_RUNNER=1 $< -o $@ $(PE_OUT)/x86/libpeloader.a -pthread

.PHONY: peloader
peloader: $(PE_OUT)/x64/test_peloader $(PE_OUT)/x86/test_peloader $(PE_OUT)/x64-asan/libpeloader.a $(PEFX_ALL)
CHECK_DEPS += peloader
