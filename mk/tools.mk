# tools/: the shared diagnostics decode+format library (tools/common/aerovblk_diagfmt.c),
# aerovblk-query.exe for x86 and x64 (shipped in the package), the host decoder CLI
# and the library's unit test. Owner: diagnostics tooling (issue 6).
#
# For other areas (the simulator's `ioctl` command) that link the library:
#   DIAGFMT_SRC, DIAGFMT_CFLAGS (include paths), DIAGFMT_HOST_OBJ (ASan/UBSan x86_64 object).

DIAGFMT_DIR      := tools/common
DIAGFMT_SRC      := $(DIAGFMT_DIR)/aerovblk_diagfmt.c
DIAGFMT_HDRS     := $(DIAGFMT_DIR)/aerovblk_diagfmt.h include/aerovblk_ioctl.h
DIAGFMT_CFLAGS   := -Iinclude -I$(DIAGFMT_DIR)
DIAGFMT_HOST_OBJ := $(HOST)/tools/aerovblk_diagfmt.o

# Host object: the project's sanitizer flags, but strict C99 so the same file is
# known to build with any C99 compiler (mingw-w64 user mode, MSVC).
$(DIAGFMT_HOST_OBJ): $(DIAGFMT_SRC) $(DIAGFMT_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) -std=c99 -pedantic-errors $(DIAGFMT_CFLAGS) -c $< -o $@

# Host CLI: decode a captured payload/reply (tests, simulator captures).
DIAGFMT_CLI := $(HOST)/tools/aerovblk-diagfmt
$(DIAGFMT_CLI): tools/aerovblk-query/diagfmt_decode.c $(DIAGFMT_HOST_OBJ) $(DIAGFMT_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) $(DIAGFMT_CFLAGS) $< $(DIAGFMT_HOST_OBJ) -o $@ $(HOST_LDFLAGS)

# Unit test (cmocka).
DIAGFMT_TEST := $(HOST)/unit/test_diagfmt
$(DIAGFMT_TEST): tests/unit/test_diagfmt.c $(DIAGFMT_HOST_OBJ) $(DIAGFMT_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) $(HOST_CFLAGS) $(DIAGFMT_CFLAGS) $< $(DIAGFMT_HOST_OBJ) -o $@ $(HOST_LDFLAGS) -lcmocka

# aerovblk-query.exe: Win32 console program, imports kernel32 + msvcrt only
# (-static-libgcc: no libgcc DLL on x86). Win7 is the floor (_WIN32_WINNT 0x0601).
QUERY_SRCS      := tools/aerovblk-query/aerovblk-query.c $(DIAGFMT_SRC)
QUERY_EXES      := $(PKG)/x86/aerovblk-query.exe $(PKG)/amd64/aerovblk-query.exe
QUERY_WIN_CFLAGS  := -std=c99 -O2 -Wall -Wextra -Werror $(DIAGFMT_CFLAGS) \
                     -D_WIN32_WINNT=0x0601 -DWINVER=0x0601 -DWIN32_LEAN_AND_MEAN
QUERY_WIN_LDFLAGS := -static-libgcc -s -Wl,--nxcompat -Wl,--dynamicbase -Wl,--no-insert-timestamp

$(PKG)/x86/aerovblk-query.exe:   QUERY_CC := i686-w64-mingw32-gcc
$(PKG)/amd64/aerovblk-query.exe: QUERY_CC := x86_64-w64-mingw32-gcc
$(QUERY_EXES): $(QUERY_SRCS) $(DIAGFMT_HDRS)
	@mkdir -p $(dir $@)
	$(QUERY_CC) $(QUERY_WIN_CFLAGS) $(QUERY_SRCS) -o $@ $(QUERY_WIN_LDFLAGS)

.PHONY: tools
tools: $(QUERY_EXES) $(DIAGFMT_CLI) $(DIAGFMT_TEST)

# The package target (mk of the build area) depends on $(PACKAGE_EXTRA); the explicit
# prerequisite below also holds if that mk file is read before this one.
PACKAGE_EXTRA += $(QUERY_EXES)
package: $(QUERY_EXES)

CHECK_DEPS += $(DIAGFMT_TEST) $(DIAGFMT_CLI) $(QUERY_EXES)
