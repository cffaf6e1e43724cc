#!/usr/bin/env bash
# 32-bit (gcc -m32) build of the same tests against the x86 fixture driver: stdcall
# imports and callbacks (callee pops), cdecl variadic imports with 8-byte arguments, a
# PHYSICAL_ADDRESS passed by value and returned in EDX:EAX, i386 MMIO decoding; then the
# shipped out/package/x86/aerovblk.sys must bind against the Windows 7 SP1 export set.
set -u
cd "$(dirname "$0")/../.."
exec bash tests/checks/70-peloader-x64.sh x86 x86
