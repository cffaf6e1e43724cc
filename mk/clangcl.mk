# MSVC-dialect check build (issue 12): driver/*.c compiled by clang-cl in MSVC mode and
# linked by lld-link, for x86 and amd64, with the warning and code-generation settings of
# driver/aerovblk.vcxproj. A check only (tests/checks/16a-clangcl-build.sh); it is NOT
# what ships (out/package is the mingw-w64 build, mk/package.mk). Why each flag:
# docs/build.md, "MSVC dialect check".
#
#   out/clangcl/<arch>/obj/*.obj   clang-cl /c
#   out/clangcl/<arch>/storport.lib   llvm-dlltool, from driver/storport-<arch>.def
#   out/clangcl/<arch>/aerovblk.sys (+ aerovblk.map)   lld-link, then pecheck set-checksum
#                                                       and check (with the lld-link map)
#
# Tools (Debian bookworm): clang-tools-14 (clang-cl-14), lld-14 (lld-link-14),
# llvm-14 (llvm-dlltool-14); the check names whichever is missing.
CLANGCL         ?= clang-cl-14
CLANGCL_LINK    ?= lld-link-14
CLANGCL_DLLTOOL ?= llvm-dlltool-14
CLANGCL_OUT     := $(OUT)/clangcl
# (mk/package.mk, which defines PECHECK, is read after this file)
CLANGCL_PECHECK := /usr/bin/python3 tools/pecheck.py
CLANGCL_ARCHES  := x86 amd64
CLANGCL_SRCS    := $(sort $(wildcard driver/*.c))
CLANGCL_HDRS    := $(wildcard driver/*.h include/*.h include/wdk/*.h)

CLANGCL_TARGET_x86    := i686-pc-windows-msvc
CLANGCL_TARGET_amd64  := x86_64-pc-windows-msvc
CLANGCL_MACHINE_x86   := X86
CLANGCL_MACHINE_amd64 := X64
CLANGCL_DLLMACH_x86   := i386
CLANGCL_DLLMACH_amd64 := i386:x86-64
# x86: the .def carries Name@N; -k imports the plain Name (as dlltool --kill-at does).
CLANGCL_DLLFLAGS_x86   := -k
CLANGCL_DLLFLAGS_amd64 :=

# The project's settings: /W4 /WX (WarningLevel, TreatWarningAsError), /GS-
# (BufferSecurityCheck false), /O2 (Release), /Gy (function-level linking, WDK default),
# /Zl (no default-library directives), /X + -ffreestanding (no SDK headers, no hosted
# library). MSVC's C4244 (narrowing without a cast) is -Wshorten-64-to-32 (64 to 32 bits)
# and -Wimplicit-int-conversion (to 16/8 bits) in clang. clang-cl ignores /kernel, so what it
# implies is spelled out: x86 /Gz (CallingConvention StdCall) and /arch:IA32 (the only
# /arch /kernel accepts on x86: no SSE/x87 state touched); x64 keeps its unwind tables,
# which -ffreestanding would otherwise drop in clang 14.
CLANGCL_CFLAGS := /nologo /c /W4 /WX /GS- /O2 /Gy /Zl /X /clang:-ffreestanding \
                  /clang:-Wshorten-64-to-32 /clang:-Wimplicit-int-conversion -Iinclude -Iinclude/wdk
CLANGCL_ARCH_CFLAGS_x86   := /Gz /arch:IA32
CLANGCL_ARCH_CFLAGS_amd64 := /clang:-fasynchronous-unwind-tables
# Same image as the mingw link (mk/package.mk): native subsystem 6.1, standard driver
# alignment and bases, relocatable, NX-compatible, no timestamp, no default libraries.
CLANGCL_LDFLAGS := /nologo /driver /subsystem:native,6.01 /entry:DriverEntry /nodefaultlib \
                   /dynamicbase /nxcompat /filealign:0x200 /align:0x1000 /Brepro /opt:ref /tsaware:no
CLANGCL_ARCH_LDFLAGS_x86   := /base:0x10000
CLANGCL_ARCH_LDFLAGS_amd64 := /base:0x140000000 /highentropyva:no

.PHONY: clangcl
clangcl: $(foreach a,$(CLANGCL_ARCHES),$(CLANGCL_OUT)/$(a)/aerovblk.sys)

# $(1) = arch
define CLANGCL_ARCH_RULES
CLANGCL_OBJS_$(1) := $$(patsubst driver/%.c,$(CLANGCL_OUT)/$(1)/obj/%.obj,$$(CLANGCL_SRCS))

$$(CLANGCL_OBJS_$(1)): $(CLANGCL_OUT)/$(1)/obj/%.obj: driver/%.c $$(CLANGCL_HDRS) mk/clangcl.mk
	@mkdir -p $$(dir $$@)
	$(CLANGCL) --target=$(CLANGCL_TARGET_$(1)) $(CLANGCL_CFLAGS) $(CLANGCL_ARCH_CFLAGS_$(1)) $$< /Fo$$@

$(CLANGCL_OUT)/$(1)/storport.lib: driver/storport-$(1).def
	@mkdir -p $$(dir $$@)
	$(CLANGCL_DLLTOOL) -m $(CLANGCL_DLLMACH_$(1)) $(CLANGCL_DLLFLAGS_$(1)) -d $$< -l $$@ -D storport.sys

# lld-link 14 has no /release: pecheck writes the checksum, as for the mingw image.
$(CLANGCL_OUT)/$(1)/aerovblk.sys: $$(CLANGCL_OBJS_$(1)) $(CLANGCL_OUT)/$(1)/storport.lib tools/pecheck.py
	$(CLANGCL_PECHECK) no-writable-data $$(CLANGCL_OBJS_$(1))
	$(CLANGCL_LINK) $(CLANGCL_LDFLAGS) /machine:$(CLANGCL_MACHINE_$(1)) $(CLANGCL_ARCH_LDFLAGS_$(1)) \
	    /map:$(CLANGCL_OUT)/$(1)/aerovblk.map /out:$$@.tmp $$(CLANGCL_OBJS_$(1)) $(CLANGCL_OUT)/$(1)/storport.lib
	$(CLANGCL_PECHECK) set-checksum $$@.tmp
	$(CLANGCL_PECHECK) check --arch $(1) --def driver/storport-$(1).def --map $(CLANGCL_OUT)/$(1)/aerovblk.map $$@.tmp
	mv -f $$@.tmp $$@
endef

$(foreach a,$(CLANGCL_ARCHES),$(eval $(call CLANGCL_ARCH_RULES,$(a))))

# The compile and link command lines, for the check's negative controls
# (tests/checks/16a-clangcl-build.sh): make -s clangcl-cc-<arch> / clangcl-link-<arch>.
clangcl-cc-%:
	@echo $(CLANGCL) --target=$(CLANGCL_TARGET_$*) $(CLANGCL_CFLAGS) $(CLANGCL_ARCH_CFLAGS_$*)
clangcl-link-%:
	@echo $(CLANGCL_LINK) $(CLANGCL_LDFLAGS) /machine:$(CLANGCL_MACHINE_$*) $(CLANGCL_ARCH_LDFLAGS_$*)
