#!/usr/bin/env bash
# include/wdk layouts and constants against an independent source, mingw-w64's own
# ddk/srb.h, ddk/scsi.h, wdm.h and ntddscsi.h, for x86 and x64 (and the same values from
# the host compilers the simulator uses). Then proves the comparison can fail.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*"; exit 1; }
out=out/abi
tests/abi/run.sh $out || fail "ABI differences (above)"
# negative control: one doctored value must be reported
sed -E '/abi_SCSI_REQUEST_BLOCK__Cdb:/{n;s/[0-9]+$/47/}' $out/ours-amd64.s > $out/doctored-amd64.s
grep -q 'long[[:space:]]*47' $out/doctored-amd64.s || fail "could not doctor the dump"
res=$(/usr/bin/python3 tests/abi/compare.py amd64 $out/doctored-amd64.s $out/mingw-kernel-amd64.s \
      $out/mingw-user-amd64.s) && fail "compare.py accepted a wrong Cdb offset"
echo "$res" | grep -q "DIFF amd64 SCSI_REQUEST_BLOCK__Cdb" || fail "doctored value not named"
echo "negative control: a wrong SCSI_REQUEST_BLOCK.Cdb offset is reported"
