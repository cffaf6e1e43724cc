#!/usr/bin/env bash
# The shipped out/package/x86/aerovblk.sys in the 32-bit simulator
# (out/peloader/x86/aerovblk-sim, gcc -m32: stdcall/cdecl boundaries for real, 12 KiB
# kernel stack), the same scenarios as 74-shipped-x64-sim.sh. Skipped while the 32-bit
# simulator cannot be built (out/peloader-sim32-build.log says why).
set -u
cd "$(dirname "$0")/../.."
sim=out/peloader/x86/aerovblk-sim
if [ ! -x "$sim" ]; then
  echo "32-bit simulator not built: $(grep -m1 'error:' out/peloader-sim32-build.log 2>/dev/null || echo 'run make peloader-sim32')"
  exit 77
fi
exec bash tests/checks/74-shipped-x64-sim.sh "$sim" x86
