# Sourced by the checks that run Windows programs under Wine (51-*, 51a-*).
# wine_find: sets $wine and $wineserver, or prints why not and returns 1. Wine is a
# required dependency (scripts/ensure-deps.sh installs Debian's wine64, which puts
# the binaries in /usr/lib/wine without /usr/bin links): a check never skips for it.
wine_find() {
  wine=$(command -v wine64 || command -v wine || true)
  [ -z "$wine" ] && [ -x /usr/lib/wine/wine64 ] && wine=/usr/lib/wine/wine64
  wineserver=$(command -v wineserver || true)
  [ -z "$wineserver" ] && [ -x /usr/lib/wine/wineserver ] && wineserver=/usr/lib/wine/wineserver
  [ -z "$wineserver" ] && [ -x /usr/lib/wine/wineserver64 ] && wineserver=/usr/lib/wine/wineserver64
  if [ -z "$wine" ] || [ -z "$wineserver" ]; then
    echo "FAIL: Wine is required but not installed (wine64 loader: ${wine:-missing}," \
         "wineserver: ${wineserver:-missing}): apt-get install -y wine64" \
         "(or run scripts/ensure-deps.sh as root)"
    return 1
  fi
}

# winpath PATH: the Z:\ path of an absolute Linux path (Wine maps / to Z:).
winpath() { local p=${1//\//\\}; printf 'Z:%s' "$p"; }
