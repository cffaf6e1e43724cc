# sim/pe: PE loader, kernel stacks and MMIO trap for running the shipped aerovblk.sys
# in the simulator (issue 8); its fixture drivers and tests. See docs/pe-loader.md.
#
#   out/peloader/x64/libpeloader.a        64-bit library (runs the amd64 .sys), ASan+UBSan
#   out/peloader/x86/libpeloader.a        32-bit library (gcc -m32; runs the x86 .sys), ASan+UBSan
#   out/peloader/{x64,x86}-noasan/libpeloader.a  the same with UBSan only (on demand)
#   out/pe-fixtures/{x86,amd64}/*.sys  mingw-built fixture drivers
#   out/peloader/{x64,x86}/test_peloader  unit tests (cmocka on x64; built-in runner on x86)
PELD_SRCS    := $(addprefix sim/pe/,peloader.c kstack.c mmio_trap.c x86dec.c export_gate.c x86_tls.c kstack_switch.S \
                  export_switch.S)
PELD_OUT     := $(OUT)/peloader
PELDFX_OUT   := $(OUT)/pe-fixtures
# The export gates take each x86 export's argument bytes (stdcall `ret N`, or cdecl)
# from the x86 .def decorations, the single source: Name@N -> PE_X86_EXPORT("Name", N),
# an undecorated (variadic, cdecl) Name -> PE_X86_EXPORT("Name", -1).
PELD_GEN     := $(PELD_OUT)/gen
PELD_X86DEF  := $(PELD_GEN)/storport_x86_def.h
PELD_HDRS    := $(wildcard sim/pe/*.h) include/wdk/ntdef.h $(PELD_X86DEF)
$(PELD_X86DEF): driver/storport-x86.def mk/peloader.mk
	@mkdir -p $(dir $@)
	{ echo "/* generated from $< by mk/peloader.mk: do not edit */"; \
	  sed -n '/^EXPORTS/,$$p' $< | tr -d '\r' | sed -E -e '/^EXPORTS/d' -e 's/;.*//' -e 's/[[:space:]]+//g' \
	    -e '/^$$/d' -e 's/^([A-Za-z_][A-Za-z0-9_]*)@([0-9]+)$$/PE_X86_EXPORT("\1", \2)/' \
	    -e 's/^([A-Za-z_][A-Za-z0-9_]*)$$/PE_X86_EXPORT("\1", -1)/'; } > $@.tmp
	@if grep -v -e '^PE_X86_EXPORT("' -e '^/\*' $@.tmp; then echo "$<: lines above not understood"; exit 1; fi
	@test $$(grep -c '^PE_X86_EXPORT' $@.tmp) -ge 1 || { echo "$<: no exports"; exit 1; }
	mv $@.tmp $@
# ASan works here despite the deliberate faults and the stack switching: the SIGSEGV
# handler chains to ASan's for faults that are not ours, and kstack.c annotates every
# stack switch for ASan (__sanitizer_start/finish_switch_fiber). See docs/pe-loader.md.
PELD_CFLAGS_COMMON := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Iinclude/wdk -Isim/pe -I$(PELD_GEN) -Itests/pe-fixtures \
                    -fno-omit-frame-pointer -fsanitize=undefined -fno-sanitize-recover=all
PELD_CFLAGS_x64-noasan := -m64 $(PELD_CFLAGS_COMMON)
PELD_CFLAGS_x64        := $(PELD_CFLAGS_x64-noasan) -fsanitize=address
# i386: Windows x86 code keeps ESP only 4-byte aligned, GCC's -m32 code assumes 16:
# -mstackrealign realigns the functions that need an aligned frame themselves (see
# docs/pe-loader.md for the exports: force_align_arg_pointer).
PELD_CFLAGS_x86-noasan := -m32 -mstackrealign $(PELD_CFLAGS_COMMON)
PELD_CFLAGS_x86        := $(PELD_CFLAGS_x86-noasan) -fsanitize=address
# Every 32-bit link: thread creation keeps TLS right under qemu-i386 (sim/pe/x86_tls.c).
PELD_LDFLAGS_x86       := -Wl,--wrap=pthread_create

define peld_lib_rules
$(PELD_OUT)/$(1)/obj/%.o: sim/pe/%.c $(PELD_HDRS)
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PELD_CFLAGS_$(1)) -c $$< -o $$@
$(PELD_OUT)/$(1)/obj/%.o: sim/pe/%.S
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PELD_CFLAGS_$(1)) -c $$< -o $$@
$(PELD_OUT)/$(1)/libpeloader.a: $(patsubst sim/pe/%,$(PELD_OUT)/$(1)/obj/%.o,$(basename $(PELD_SRCS)))
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach a,x64 x86 x64-noasan x86-noasan,$(eval $(call peld_lib_rules,$(a))))

# Fixture drivers: mingw-w64, linked like a miniport against a fake storport.sys.
PELDFX_CFLAGS := -O2 -ffreestanding -nostdlib -fno-stack-protector -mno-stack-arg-probe \
               -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -Iinclude/wdk -Itests/pe-fixtures
PELDFX_LDFLAGS := -nostdlib -Wl,--subsystem,native -Wl,--dynamicbase -Wl,--image-base,0x10000 \
                -Wl,--file-alignment,0x200 -Wl,--section-alignment,0x1000
PELDFX_CC_x86      := i686-w64-mingw32-gcc
PELDFX_CC_amd64    := x86_64-w64-mingw32-gcc
PELDFX_TOOL_x86    := i686-w64-mingw32-dlltool
PELDFX_TOOL_amd64  := x86_64-w64-mingw32-dlltool
# x64 names carry no @N decoration: strip it from the shared .def.
PELDFX_DEF_x86     := cat
PELDFX_DEF_amd64   := sed -E 's/@[0-9]+$$$$//'
PELDFX_ENTRY_x86   := _DriverEntry@8
PELDFX_ENTRY_amd64 := DriverEntry
PELDFX_NAMES := fixture badimport baddll
PELDFX_LIBS_fixture   := storport
PELDFX_LIBS_badimport := storport
PELDFX_LIBS_baddll    := hal

define peldfx_rules
$(PELDFX_OUT)/$(1)/lib%.a: tests/pe-fixtures/%.def
	@mkdir -p $$(dir $$@)
	$(PELDFX_DEF_$(1)) $$< > $$(@:.a=.def)
	$(PELDFX_TOOL_$(1)) -k -d $$(@:.a=.def) -l $$@
$(PELDFX_OUT)/$(1)/%.sys: tests/pe-fixtures/%.c tests/pe-fixtures/fixture.h include/wdk/ntdef.h \
		$(PELDFX_OUT)/$(1)/libstorport.a $(PELDFX_OUT)/$(1)/libhal.a
	$(PELDFX_CC_$(1)) $(PELDFX_CFLAGS) $$< -o $$@ $(PELDFX_LDFLAGS) -Wl,-e,$(PELDFX_ENTRY_$(1)) \
		-L$(PELDFX_OUT)/$(1) -l$$(PELDFX_LIBS_$$*)
endef
$(foreach a,x86 amd64,$(eval $(call peldfx_rules,$(a))))
.SECONDARY: $(foreach a,x86 amd64,$(PELDFX_OUT)/$(a)/libstorport.a $(PELDFX_OUT)/$(a)/libhal.a)
PELDFX_ALL := $(foreach a,x86 amd64,$(foreach n,$(PELDFX_NAMES),$(PELDFX_OUT)/$(a)/$(n).sys))

# Unit tests: x64 with cmocka; x86 with the built-in runner (no i386 libcmocka here).
$(PELD_OUT)/x64/test_peloader: tests/unit/test_peloader.c $(PELD_OUT)/x64/libpeloader.a tests/pe-fixtures/fixture.h $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x64) $< -o $@ $(PELD_OUT)/x64/libpeloader.a -lcmocka -pthread
$(PELD_OUT)/x86/test_peloader: tests/unit/test_peloader.c $(PELD_OUT)/x86/libpeloader.a tests/pe-fixtures/fixture.h $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x86) -DPE_TEST_BUILTIN_RUNNER=1 $< -o $@ $(PELD_OUT)/x86/libpeloader.a -pthread $(PELD_LDFLAGS_x86)

# The same x86 tests without ASan, for runs under qemu-i386 (tests/sim/x86.sh picks
# them there: ASan under QEMU user mode is too slow to finish them).
$(PELD_OUT)/x86-noasan/test_peloader: tests/unit/test_peloader.c $(PELD_OUT)/x86-noasan/libpeloader.a tests/pe-fixtures/fixture.h $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x86-noasan) -DPE_TEST_BUILTIN_RUNNER=1 $< -o $@ $(PELD_OUT)/x86-noasan/libpeloader.a -pthread $(PELD_LDFLAGS_x86)
$(PELD_OUT)/x86-noasan/test_export_gate: sim/pe/test_export_gate.c $(PELD_OUT)/x86-noasan/libpeloader.a $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x86-noasan) $< -o $@ $(PELD_OUT)/x86-noasan/libpeloader.a -pthread $(PELD_LDFLAGS_x86)

# Export-gate tests (sim/pe/test_export_gate.c; tests/checks/76-export-gates.sh).
$(PELD_OUT)/x64/test_export_gate: sim/pe/test_export_gate.c $(PELD_OUT)/x64/libpeloader.a $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x64) $< -o $@ $(PELD_OUT)/x64/libpeloader.a -pthread
$(PELD_OUT)/x86/test_export_gate: sim/pe/test_export_gate.c $(PELD_OUT)/x86/libpeloader.a $(PELD_HDRS)
	$(HOST_CC) $(PELD_CFLAGS_x86) $< -o $@ $(PELD_OUT)/x86/libpeloader.a -pthread $(PELD_LDFLAGS_x86)

# A 32-bit program that does nothing: tests/sim/x86.sh runs it to learn whether this
# kernel executes 32-bit code ("Exec format error" where IA32 emulation is off).
$(PELD_OUT)/x86/probe32:
	@mkdir -p $(dir $@)
	printf 'int main(void) { return 0; }\n' | $(HOST_CC) -m32 -x c - -o $@

.PHONY: peloader
peloader: $(PELD_OUT)/x86/probe32 $(PELD_OUT)/x64/test_peloader $(PELD_OUT)/x86/test_peloader $(PELDFX_ALL) \
          $(PELD_OUT)/x64/test_export_gate $(PELD_OUT)/x86/test_export_gate \
          $(PELD_OUT)/x86-noasan/test_peloader $(PELD_OUT)/x86-noasan/test_export_gate
CHECK_DEPS += peloader

# Glue for the simulator core (sim/pe/sim_pe.c: sim_load_sys_driver, which sim/main_session.c
# declares weak): link $(PELD_OUT)/<arch>/sim_pe.o together with libpeloader.a into
# aerovblk-sim. Built with the core's flags (it includes sim/sim.h).
$(PELD_OUT)/x64/sim_pe.o: sim/pe/sim_pe.c $(PELD_HDRS) sim/sim.h
	@mkdir -p $(dir $@)
	$(HOST_CC) $(PELD_CFLAGS_x64) -Iinclude -Idriver -Isim -DAEROVBLK_HOST=1 -c $< -o $@
.PHONY: peloader-sim
peloader-sim: $(PELD_OUT)/x64/sim_pe.o $(PELD_OUT)/x64/libpeloader.a $(PELD_OUT)/x86/sim_pe.o $(PELD_OUT)/x86/libpeloader.a

# The 64-bit simulator (mk/sim.mk) links the glue, so `aerovblk-sim --driver X.sys` works.
# An object, not an archive member: main_session.c's weak reference would not pull it.
SIM_EXTRA_LIBS += $(PELD_OUT)/x64/sim_pe.o $(PELD_OUT)/x64/libpeloader.a

# The 32-bit simulator that runs the x86 .sys: every sim/*.c built with -m32, no
# host-built driver (only --driver). The x86 flags realign the stack in functions that
# need it (Windows x86 code keeps ESP 4-byte aligned). Two builds:
#   out/peloader/x86/aerovblk-sim         ASan+UBSan, run natively (a kernel with IA32)
#   out/peloader/x86-noasan/aerovblk-sim  UBSan only, run under qemu-i386: ASan's shadow
#     memory under QEMU user mode makes every fault path so slow that a 20-I/O run does not
#     finish in 5 minutes (docs/pe-loader.md); the same sources run under ASan in the
#     64-bit simulator and, where the kernel allows, in the native 32-bit one.
PELD_SIM32_SRCS := $(sort $(wildcard sim/*.c))
define peld_sim32_rules
$(PELD_OUT)/$(1)/sim_pe.o: sim/pe/sim_pe.c $(PELD_HDRS) sim/sim.h
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PELD_CFLAGS_$(1)) -Iinclude -Idriver -Isim -DAEROVBLK_HOST=1 -c $$< -o $$@
$(PELD_OUT)/$(1)/sim/%.o: sim/%.c $(wildcard sim/*.h) $(wildcard include/wdk/*.h include/*.h)
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PELD_CFLAGS_$(1)) $(PELD_SIM32_EXTRA) -c $$< -o $$@
$(PELD_OUT)/$(1)/sim/aerovblk_diagfmt.o: tools/common/aerovblk_diagfmt.c tools/common/aerovblk_diagfmt.h include/aerovblk_ioctl.h
	@mkdir -p $$(dir $$@)
	$(HOST_CC) $(PELD_CFLAGS_$(1)) $(PELD_SIM32_EXTRA) -c $$< -o $$@
$(PELD_OUT)/$(1)/aerovblk-sim: $(patsubst sim/%.c,$(PELD_OUT)/$(1)/sim/%.o,$(PELD_SIM32_SRCS)) \
		$(PELD_OUT)/$(1)/sim/aerovblk_diagfmt.o $(PELD_OUT)/$(1)/sim_pe.o $(PELD_OUT)/$(1)/libpeloader.a
	$(HOST_CC) -m32 $$^ -o $$@ $(PELD_SIM32_SAN_$(1)) -pthread $(PELD_LDFLAGS_x86)
endef
PELD_SIM32_EXTRA := -Iinclude -Idriver -Isim -Itools/common -DAEROVBLK_HOST=1 \
                    -D_FILE_OFFSET_BITS=64  # sparse images beyond 2 GiB (the 3 TiB disk test)
PELD_SIM32_SAN_x86        := -fsanitize=address,undefined
PELD_SIM32_SAN_x86-noasan := -fsanitize=undefined
$(foreach v,x86 x86-noasan,$(eval $(call peld_sim32_rules,$(v))))
PELD_SIM32_BIN := $(PELD_OUT)/x86/aerovblk-sim $(PELD_OUT)/x86-noasan/aerovblk-sim
# A build product of `make check` like any other: a compile error in the 32-bit build
# fails the build (it is never turned into a skipped check).
.PHONY: peloader-sim32
peloader-sim32: $(PELD_SIM32_BIN)
CHECK_DEPS += peloader-sim32
