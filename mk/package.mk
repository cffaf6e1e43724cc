# Driver package: out/package/{x86,amd64}/aerovblk.sys + aerovblk.inf (+ $(PACKAGE_EXTRA)).
# Owner: build area (issue 2). How and why: docs/build.md.
#
# Every driver/*.c goes into aerovblk.sys (wildcard: new files need no edit here; the
# .vcxproj and sources files must list them too: tests/checks/16-project-files.sh).
# Pipeline per architecture:
#   driver/*.c --cc--> out/pe/<arch>/obj/*.o --no-writable-data check-->
#   + libstorport.a (dlltool, from driver/storport-<arch>.def) --ld--> out/pe/<arch>/aerovblk.sys
#   --pecheck.py set-checksum + check--> out/package/<arch>/aerovblk.sys
#
# Overridable for tests (never point them at driver/ for throwaway code):
#   PKG_SRCDIR       the driver sources' directory (default: driver; all its *.c)
#   PE_OUT           intermediates (default: out/pe)
#   PKG_DIR          package output (default: out/package)
#   PE_EXTRA_CFLAGS, PE_EXTRA_LIBS   (empty) used by tests/pe to build bad fixtures
#
# Release metadata (issue 13, docs/release.md):
#   VERSION (repository root) is the one version source: the packaged INF's DriverVer is
#   substituted from it, and windres gets it as -D defines for the version resources of
#   aerovblk.sys (driver/aerovblk.rc) and aerovblk-query.exe (tools/aerovblk-query/*.rc).
#   pecheck's `version` rule fails the build when a binary disagrees with the INF.
#   out/package/<arch>/aerovblk.cat: unsigned version-1 catalog (tools/mkcat.py) of the
#   .sys, .inf and query tool; `make testsign` signs it (scripts/testsign.sh).
#   SOURCE_DATE_EPOCH (default: the commit time of HEAD) dates the catalog, the test
#   signatures and the archives of `make dist` (mk/dist.mk), so two builds of one commit
#   are byte-identical.

PACKAGE_EXTRA   ?=
PKG_ARCHES      := x86 amd64
PKG_SRCDIR      ?= driver
PKG_DRIVER_SRCS := $(sort $(wildcard $(PKG_SRCDIR)/*.c))
PE_OUT          ?= $(OUT)/pe
PKG_DIR         ?= $(PKG)
PKG_INF         := driver/aerovblk.inf
PE_EXTRA_CFLAGS ?=
PE_EXTRA_LIBS   ?=
PECHECK         := /usr/bin/python3 tools/pecheck.py
INFCHECK        := /usr/bin/python3 tools/infcheck.py
AUTHENTICODE    := /usr/bin/python3 tools/authenticode.py
MKCAT           := /usr/bin/python3 tools/mkcat.py

# VERSION: AEROVBLK_VER_MAJOR/MINOR/PATCH/BUILD and AEROVBLK_VER_DATE (NAME=value lines).
include VERSION
AEROVBLK_VERSION   := $(AEROVBLK_VER_MAJOR).$(AEROVBLK_VER_MINOR).$(AEROVBLK_VER_PATCH).$(AEROVBLK_VER_BUILD)
AEROVBLK_DRIVERVER := $(AEROVBLK_VER_DATE),$(AEROVBLK_VERSION)
AEROVBLK_RC_DEFS   := -DAEROVBLK_VER_MAJOR=$(AEROVBLK_VER_MAJOR) -DAEROVBLK_VER_MINOR=$(AEROVBLK_VER_MINOR) \
                      -DAEROVBLK_VER_PATCH=$(AEROVBLK_VER_PATCH) -DAEROVBLK_VER_BUILD=$(AEROVBLK_VER_BUILD)
# Catalog attributes (tools/mkcat.py): OS per architecture, the hardware ID the INF binds.
PKG_CAT_OS_x86   := 7X86
PKG_CAT_OS_amd64 := 7X64
PKG_CAT_HWID     := PCI\VEN_1AF4&DEV_1042

# SOURCE_DATE_EPOCH (reproducible-builds.org): the commit time of HEAD unless set; outside
# a git checkout, midnight UTC of the VERSION date. Exported to scripts/testsign.sh,
# tools/mkcat.py and xorriso. $(OUT)/.source-date-epoch changes only when the value does,
# so the catalogs and archives that depend on it are rebuilt after a new commit.
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(or $(shell git log -1 --format=%ct 2>/dev/null),\
                          $(shell date -u -d "$(AEROVBLK_VER_DATE)" +%s))
endif
export SOURCE_DATE_EPOCH
PKG_SDE_STAMP := $(OUT)/.source-date-epoch
$(shell mkdir -p $(OUT) && { [ "$$(cat $(PKG_SDE_STAMP) 2>/dev/null)" = "$(SOURCE_DATE_EPOCH)" ] || \
    echo "$(SOURCE_DATE_EPOCH)" > $(PKG_SDE_STAMP); })

PE_TRIPLE_x86   := i686-w64-mingw32
PE_TRIPLE_amd64 := x86_64-w64-mingw32
# x86: stdcall DriverEntry(PVOID, PVOID) is the symbol _DriverEntry@8 (facts sheet section 5).
PE_ENTRY_x86    := _DriverEntry@8
PE_ENTRY_amd64  := DriverEntry
# The link-time bases of MSVC /DRIVER images; the loader relocates drivers anyway.
PE_BASE_x86     := 0x10000
PE_BASE_amd64   := 0x140000000
# x86: no DWARF .eh_frame (nothing in the kernel reads it). x64 keeps .pdata/.xdata:
# the kernel's stack walker and exception dispatcher need the unwind data.
PE_ARCH_CFLAGS_x86   := -march=i686 -fno-asynchronous-unwind-tables -fno-unwind-tables
PE_ARCH_CFLAGS_amd64 :=
PE_ARCH_LDFLAGS_x86   :=
PE_ARCH_LDFLAGS_amd64 := -Wl,--disable-high-entropy-va
# x86 .def carries Name@N; --kill-at makes the imported name the plain Name (facts sheet section 4).
PE_DLLTOOL_FLAGS_x86   := --kill-at
PE_DLLTOOL_FLAGS_amd64 :=

# Compiler flags (docs/build.md explains each). -nostdinc + GCC's own include dir:
# only freestanding headers (stddef.h, stdarg.h) and include/wdk, never mingw's SDK.
PE_CFLAGS = -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -Wvla -Wdeclaration-after-statement -Wframe-larger-than=1024 \
            -ffreestanding -fno-builtin -fno-common -fno-strict-aliasing -fno-ident \
            -fno-stack-protector -fno-stack-check -mno-stack-arg-probe -mgeneral-regs-only \
            -nostdinc -isystem $(shell $(1)-gcc -print-file-name=include) \
            -Iinclude -Iinclude/wdk -MMD -MP
PE_LDFLAGS = -nostdlib -s -Wl,--entry,$(2) -Wl,--subsystem,native:6.1 \
             -Wl,--major-os-version,6 -Wl,--minor-os-version,1 \
             -Wl,--image-base,$(3) -Wl,--file-alignment,0x200 -Wl,--section-alignment,0x1000 \
             -Wl,--dynamicbase -Wl,--nxcompat -Wl,--no-insert-timestamp \
             -Wl,--disable-auto-import -Wl,--disable-runtime-pseudo-reloc \
             -Wl,--no-undefined -Wl,--exclude-all-symbols

.PHONY: package package-driver
# deps (order-only): scripts/ensure-deps.sh installs or names missing Debian packages.
# PACKAGE_EXTRA: other areas append package files in their mk/*.mk. Those may be read
# after this file, when this rule's prerequisite list is already expanded, so the recipe
# (expanded only when it runs, after every makefile is read) builds them too.
package: package-driver $(PACKAGE_EXTRA) | deps
	@$(if $(strip $(PACKAGE_EXTRA)),$(MAKE) -q --no-print-directory $(PACKAGE_EXTRA) 2>/dev/null \
	    || $(MAKE) --no-print-directory $(PACKAGE_EXTRA),:)
package-driver: $(foreach a,$(PKG_ARCHES),$(PKG_DIR)/$(a)/aerovblk.sys $(PKG_DIR)/$(a)/aerovblk.inf)

# The catalogs list the query tool too, so they are package extras (built after it).
PACKAGE_EXTRA += $(foreach a,$(PKG_ARCHES),$(PKG_DIR)/$(a)/aerovblk.cat)

# $(1) = arch
define PE_ARCH_RULES
PE_OBJS_$(1) := $$(patsubst $(PKG_SRCDIR)/%.c,$(PE_OUT)/$(1)/obj/%.o,$$(PKG_DRIVER_SRCS))

$$(PE_OBJS_$(1)): $(PE_OUT)/$(1)/obj/%.o: $(PKG_SRCDIR)/%.c
	@mkdir -p $$(dir $$@)
	$(PE_TRIPLE_$(1))-gcc $$(call PE_CFLAGS,$(PE_TRIPLE_$(1))) $(PE_ARCH_CFLAGS_$(1)) $$(PE_EXTRA_CFLAGS) -c $$< -o $$@

$(PE_OUT)/$(1)/libstorport.a: driver/storport-$(1).def
	@mkdir -p $$(dir $$@)
	$(PE_TRIPLE_$(1))-dlltool $(PE_DLLTOOL_FLAGS_$(1)) --dllname storport.sys -d $$< -l $$@

# The version resource (driver/aerovblk.rc; not in obj/, which holds the C objects only).
$(PE_OUT)/$(1)/aerovblk-rc.o: driver/aerovblk.rc VERSION
	@mkdir -p $$(dir $$@)
	$(PE_TRIPLE_$(1))-windres $(AEROVBLK_RC_DEFS) -O coff -i $$< -o $$@

# Link, then refuse writable data (no mutable globals in the driver, docs/architecture.md),
# then make .rsrc read-only (GNU ld writes it RW; tools/authenticode.py says why), patch
# the PE checksum and run every PE rule before the image enters the package; `version`
# (--inf) compares the version resource with the packaged INF's DriverVer.
$(PE_OUT)/$(1)/aerovblk.sys: $$(PE_OBJS_$(1)) $(PE_OUT)/$(1)/aerovblk-rc.o $(PE_OUT)/$(1)/libstorport.a \
                             $(PKG_DIR)/$(1)/aerovblk.inf tools/pecheck.py tools/authenticode.py
	@test -n "$$(PE_OBJS_$(1))" || { echo "package: no driver/*.c sources" >&2; exit 1; }
	$(PECHECK) no-writable-data $$(PE_OBJS_$(1))
	$(PE_TRIPLE_$(1))-gcc $$(call PE_LDFLAGS,$(PE_TRIPLE_$(1)),$(PE_ENTRY_$(1)),$(PE_BASE_$(1))) \
	    $(PE_ARCH_LDFLAGS_$(1)) -Wl,-Map,$(PE_OUT)/$(1)/aerovblk.map \
	    -o $$@.tmp $$(PE_OBJS_$(1)) $(PE_OUT)/$(1)/aerovblk-rc.o $(PE_OUT)/$(1)/libstorport.a $$(PE_EXTRA_LIBS) -lgcc
	$(AUTHENTICODE) rsrc-readonly $$@.tmp
	$(PECHECK) set-checksum $$@.tmp
	$(PECHECK) check --arch $(1) --def driver/storport-$(1).def --map $(PE_OUT)/$(1)/aerovblk.map \
	    --inf $(PKG_DIR)/$(1)/aerovblk.inf $$@.tmp
	mv -f $$@.tmp $$@

$(PKG_DIR)/$(1)/aerovblk.sys: $(PE_OUT)/$(1)/aerovblk.sys
	@mkdir -p $$(dir $$@)
	cp -f $$< $$@

# The INF with DriverVer from VERSION (the line's spelling kept: with driver/aerovblk.inf
# in step with VERSION the copy is byte-identical, which tests/checks/10 relies on).
$(PKG_DIR)/$(1)/aerovblk.inf: $(PKG_INF) VERSION tools/infcheck.py
	@mkdir -p $$(dir $$@)
	sed -E 's|^(DriverVer[[:space:]]*=[[:space:]]*)[^;[:space:]]+|\1$(AEROVBLK_DRIVERVER)|' $$< > $$@.tmp
	@[ "$$$$(grep -c '^DriverVer[[:space:]]*=[[:space:]]*$(AEROVBLK_DRIVERVER)' $$@.tmp)" = 1 ] || \
	    { echo "package: $$< has no single DriverVer line to set to $(AEROVBLK_DRIVERVER)" >&2; rm -f $$@.tmp; exit 1; }
	$(INFCHECK) --sys aerovblk.sys $$@.tmp
	mv -f $$@.tmp $$@

# The catalog: Authenticode SHA-1 of the .sys and the query tool, SHA-1 of the INF
# (tools/mkcat.py); the query tool's version resource is checked here (its link rule is
# mk/tools.mk's). Dated by SOURCE_DATE_EPOCH.
$(PKG_DIR)/$(1)/aerovblk.cat: $(PKG_DIR)/$(1)/aerovblk.sys $(PKG_DIR)/$(1)/aerovblk.inf \
                              $(PKG_DIR)/$(1)/aerovblk-query.exe tools/mkcat.py tools/authenticode.py \
                              tools/pecheck.py $(PKG_SDE_STAMP)
	$(PECHECK) version --inf $(PKG_DIR)/$(1)/aerovblk.inf $(PKG_DIR)/$(1)/aerovblk-query.exe
	$(MKCAT) make --inf $(PKG_DIR)/$(1)/aerovblk.inf --os $(PKG_CAT_OS_$(1)) --hwid '$(PKG_CAT_HWID)' \
	    --time $(SOURCE_DATE_EPOCH) -o $$@ $$(filter %.sys %.inf %.exe,$$^)

# The query tool's version resource (tools/aerovblk-query/aerovblk-query.rc), linked into
# the mk/tools.mk rule through a target-specific addition to its link flags.
$(OUT)/rc/$(1)/aerovblk-query-rc.o: tools/aerovblk-query/aerovblk-query.rc VERSION
	@mkdir -p $$(dir $$@)
	$(PE_TRIPLE_$(1))-windres $(AEROVBLK_RC_DEFS) -O coff -i $$< -o $$@
$(PKG)/$(1)/aerovblk-query.exe: $(OUT)/rc/$(1)/aerovblk-query-rc.o
$(PKG)/$(1)/aerovblk-query.exe: QUERY_WIN_LDFLAGS += $(OUT)/rc/$(1)/aerovblk-query-rc.o

-include $$(PE_OBJS_$(1):.o=.d)
endef

$(foreach a,$(PKG_ARCHES),$(eval $(call PE_ARCH_RULES,$(a))))

CHECK_DEPS += $(foreach a,$(PKG_ARCHES),$(PKG_DIR)/$(a)/aerovblk.sys $(PKG_DIR)/$(a)/aerovblk.inf \
                                      $(PKG_DIR)/$(a)/aerovblk.cat)
