#!/usr/bin/env bash
# The storport.sys prototypes in include/wdk/storport.h produce exactly the x86 import
# symbols (stdcall @N) listed in driver/storport-x86.def, and storport-amd64.def is the
# same list undecorated; a .def with a wrong byte count must be caught.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*"; exit 1; }
out=out/abi
tests/abi/defcheck.sh $out || fail "prototypes and .def disagree"
sed 's/^StorPortGetDeviceBase@28/StorPortGetDeviceBase@24/' driver/storport-x86.def > $out/bad-x86.def
grep -q 'StorPortGetDeviceBase@24' $out/bad-x86.def || fail "could not doctor the .def"
res=$(DEF_X86=$out/bad-x86.def tests/abi/defcheck.sh $out/neg 2>&1) && fail "wrong @N accepted"
echo "$res" | grep -q 'StorPortGetDeviceBase@28' || fail "wrong @N not named"
echo "negative control: StorPortGetDeviceBase@24 in the .def is reported"
