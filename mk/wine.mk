# Test tools that run under Wine (issue 12): Windows console programs built from
# tests/wine/*.c into out/wine/, used by tests/checks/51a-wine-inf-install.sh.
# They are test tools, not package contents: mingw-w64's SDK headers and import
# libraries (setupapi) are fine here, unlike in the driver (mk/package.mk).
WINE_TOOLS_OUT    := $(OUT)/wine
WINE_INFINSTALL   := $(WINE_TOOLS_OUT)/infinstall.exe
WINE_TOOL_CC      := x86_64-w64-mingw32-gcc
WINE_TOOL_CFLAGS  := -std=c99 -O2 -Wall -Wextra -Werror -municode \
                     -D_WIN32_WINNT=0x0601 -DWINVER=0x0601
WINE_TOOL_LDFLAGS := -static-libgcc -s

# infinstall.exe: SetupInstallServicesFromInfSection / phantom-device install of an INF.
# x64 only: Debian's wine64 runs no 32-bit programs without multiarch wine32.
$(WINE_INFINSTALL): tests/wine/infinstall.c
	@mkdir -p $(dir $@)
	$(WINE_TOOL_CC) $(WINE_TOOL_CFLAGS) $< -o $@ $(WINE_TOOL_LDFLAGS) -lsetupapi

.PHONY: wine-tools
wine-tools: $(WINE_INFINSTALL)

CHECK_DEPS += $(WINE_INFINSTALL)

# catlist.exe (issue 13): CryptCATOpen/CryptCATEnumerateMember listing of a catalog, for
# tests/checks/19a-catalog-wine.sh (tests/wine/catlist.c).
WINE_CATLIST := $(WINE_TOOLS_OUT)/catlist.exe
$(WINE_CATLIST): tests/wine/catlist.c
	@mkdir -p $(dir $@)
	$(WINE_TOOL_CC) $(WINE_TOOL_CFLAGS) $< -o $@ $(WINE_TOOL_LDFLAGS) -lwintrust -lcrypt32
wine-tools: $(WINE_CATLIST)
CHECK_DEPS += $(WINE_CATLIST)
