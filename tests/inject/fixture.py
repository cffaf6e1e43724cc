#!/usr/bin/python3
"""Build a synthetic Windows tree for the aerovblk-inject checks (no Windows image exists
here): DIR/Windows/System32/config/{SYSTEM,SOFTWARE}, DIR/Windows/System32/drivers/ and a
kernel stub DIR/Windows/System32/ntoskrnl.exe (a real PE built by mingw-w64, machine and
version resource as asked). Hives: tests/inject/mkhive.py (empty hive + hivexregedit),
then accepted by two independent readers (reglookup, regfexport) before use.

usage: fixture.py DIR [--arch x86|amd64] [--version 6.1.7601] [--software-version 6.1]
                  [--major N] [--no-software] [--no-kernel] [--no-env] [--dirty]
                  [--corrupt-system] [--preexisting] [--no-scsi-group] [--case-mangle]
  --preexisting   ControlSet001 already has Services\\aerovblk with Start=3, a wrong
                  Group and an old CDD entry pointing elsewhere (the tool must fix them)
  --case-mangle   directory names in unusual case (windows/SYSTEM32/Config), which the
                  tool must find as Windows does (case-insensitively)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def hex_bytes(b):
    return ",".join("%02x" % x for x in b)


def multi_sz(items):
    return "hex(7):" + hex_bytes(("\0".join(items) + "\0\0").encode("utf-16-le"))


GROUPS = ["System Reserved", "EMS", "WdfLoadGroup", "Boot Bus Extender", "System Bus Extender",
          "SCSI miniport", "Port", "Primary Disk", "SCSI Class", "SCSI CDROM Class", "FSFilter Infrastructure"]


def system_reg(a):
    env_arch = {"x86": "x86", "amd64": "AMD64"}[a.arch]
    out = ["Windows Registry Editor Version 5.00", "",
           "[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]",
           '"Current"=dword:00000001', '"Default"=dword:00000001',
           '"LastKnownGood"=dword:00000002', '"Failed"=dword:00000000', ""]
    for cs in ("ControlSet001", "ControlSet002", "ControlSet003"):
        k = "HKEY_LOCAL_MACHINE\\SYSTEM\\" + cs
        groups = [g for g in GROUPS if not (a.no_scsi_group and g == "SCSI miniport")]
        out += ["[%s\\Control\\ServiceGroupOrder]" % k, '"List"=' + multi_sz(groups), ""]
        if not a.no_env:
            out += ["[%s\\Control\\Session Manager\\Environment]" % k,
                    '"PROCESSOR_ARCHITECTURE"="%s"' % env_arch, ""]
        out += ["[%s\\Control\\CriticalDeviceDatabase\\pci#ven_8086&dev_7010]" % k,
                '"Service"="intelide"', '"ClassGUID"="{4D36E96A-E325-11CE-BFC1-08002BE10318}"', "",
                "[%s\\Services\\intelide]" % k, '"Start"=dword:00000000', '"Type"=dword:00000001', ""]
        if a.preexisting and cs == "ControlSet001":
            out += ["[%s\\Services\\aerovblk]" % k, '"Start"=dword:00000003', '"Type"=dword:00000001',
                    '"Group"="Base"', '"Tag"=dword:00000021', "",
                    "[%s\\Control\\CriticalDeviceDatabase\\PCI#VEN_1AF4&DEV_1042]" % k,
                    '"Service"="viostor"', '"ClassGUID"="{4D36E97B-E325-11CE-BFC1-08002BE10318}"', ""]
    return "\n".join(out) + "\n"


def software_reg(a):
    k = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
    out = ["Windows Registry Editor Version 5.00", "", "[%s]" % k,
           '"CurrentVersion"="%s"' % a.software_version,
           '"ProductName"="%s"' % ("Windows 7 Professional" if a.software_version == "6.1" else "Windows 10 Pro")]
    if a.major is not None:
        out += ['"CurrentMajorVersionNumber"=dword:%08x' % a.major, '"CurrentMinorVersionNumber"=dword:00000000']
    return "\n".join(out) + "\n\n"


def hive(path, reg, dirty=False):
    with tempfile.NamedTemporaryFile("w", suffix=".reg", delete=False) as f:
        f.write(reg)
    try:
        cmd = [sys.executable, os.path.join(HERE, "mkhive.py"), path, "--reg", f.name]
        subprocess.run(cmd + (["--dirty"] if dirty else []), check=True)
    finally:
        os.unlink(f.name)
    # Two independent readers must accept it before a test uses it.
    subprocess.run(["reglookup", "-H", path], check=True, stdout=subprocess.DEVNULL)
    p = subprocess.run(["regfexport", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode or b"Key path:" not in p.stdout:
        sys.exit("fixture: regfexport rejects %s" % path)


def kernel(path, arch, version):
    """A PE with the asked machine and a VS_VERSIONINFO FileVersion (what the tool reads).
    Built once per (arch, version) into .kernels/ beside DIR, then copied."""
    cache = os.path.join(os.path.dirname(os.path.abspath(path)).split("/Windows/")[0].split("/windows/")[0],
                         "..", ".kernels", "%s-%s.exe" % (arch, version))
    if not os.path.exists(cache):
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        build_kernel(cache + ".tmp", arch, version)
        os.replace(cache + ".tmp", cache)
    shutil.copyfile(cache, path)


def build_kernel(path, arch, version):
    triple = {"x86": "i686-w64-mingw32", "amd64": "x86_64-w64-mingw32"}[arch]
    entry = {"x86": "_entry", "amd64": "entry"}[arch]   # i686 C symbols carry a leading _
    v = (version.split(".") + ["0", "0", "0"])[:4]
    with tempfile.TemporaryDirectory() as t:
        open(os.path.join(t, "k.c"), "w").write("void entry(void) {}\n")
        open(os.path.join(t, "k.rc"), "w").write(
            "1 VERSIONINFO\nFILEVERSION %s\nPRODUCTVERSION %s\nBEGIN\nEND\n" % (",".join(v), ",".join(v)))
        subprocess.run([triple + "-windres", "-O", "coff", "-i", os.path.join(t, "k.rc"),
                        "-o", os.path.join(t, "k.o")], check=True)
        subprocess.run([triple + "-gcc", "-nostdlib", "-Wl,--entry," + entry, "-Wl,--subsystem,native",
                        "-o", path, os.path.join(t, "k.c"), os.path.join(t, "k.o")], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--version", default="6.1.7601.17514")
    ap.add_argument("--software-version", default="6.1")
    ap.add_argument("--major", type=int)
    for flag in ("no-software", "no-kernel", "no-env", "dirty", "corrupt-system", "preexisting",
                 "no-scsi-group", "case-mangle"):
        ap.add_argument("--" + flag, action="store_true")
    a = ap.parse_args()
    names = ("windows", "SYSTEM32", "Config", "DRIVERS") if a.case_mangle else \
        ("Windows", "System32", "config", "drivers")
    s32 = os.path.join(a.dir, names[0], names[1])
    cfg, drv = os.path.join(s32, names[2]), os.path.join(s32, names[3])
    os.makedirs(cfg, exist_ok=True)
    os.makedirs(drv, exist_ok=True)
    open(os.path.join(drv, "disk.sys"), "wb").write(b"MZ disk.sys stand-in\n")
    system = os.path.join(cfg, "SYSTEM")
    hive(system, system_reg(a), dirty=a.dirty)
    if a.corrupt_system:
        with open(system, "r+b") as f:   # destroy the first hive bin's header
            f.seek(4096)
            f.write(b"garbage!" * 8)
    if not a.no_software:
        hive(os.path.join(cfg, "SOFTWARE"), software_reg(a))
    if not a.no_kernel:
        kernel(os.path.join(s32, "ntoskrnl.exe"), a.arch, a.version)


if __name__ == "__main__":
    main()
