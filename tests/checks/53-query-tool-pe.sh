#!/usr/bin/env bash
# The shipped aerovblk-query.exe (x86 and x64): right machine, console subsystem,
# NX + ASLR, and imports from kernel32.dll and msvcrt.dll only (both ship with
# Windows 7), so the tool runs on a bare guest with no extra runtime DLLs.
set -euo pipefail
cd "$(dirname "$0")/../.."
/usr/bin/python3 - <<'PY'
import pefile
EXPECT = {"x86": 0x14C, "amd64": 0x8664}
for arch, machine in EXPECT.items():
    path = f"out/package/{arch}/aerovblk-query.exe"
    pe = pefile.PE(path)
    assert pe.FILE_HEADER.Machine == machine, (path, hex(pe.FILE_HEADER.Machine))
    assert pe.OPTIONAL_HEADER.Subsystem == 3, (path, "not a console program")
    dc = pe.OPTIONAL_HEADER.DllCharacteristics
    assert dc & 0x100 and dc & 0x40, (path, "NX_COMPAT and DYNAMIC_BASE expected", hex(dc))
    dlls = sorted(e.dll.decode().lower() for e in pe.DIRECTORY_ENTRY_IMPORT)
    assert dlls == ["kernel32.dll", "msvcrt.dll"], (path, dlls)
    names = {i.name.decode() for e in pe.DIRECTORY_ENTRY_IMPORT for i in e.imports if i.name}
    assert {"CreateFileA", "DeviceIoControl"} <= names, (path, "query path not linked")
    print(f"{path}: machine {machine:#x}, console, NX+ASLR, imports {dlls}")
PY
