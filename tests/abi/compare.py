#!/usr/bin/python3
"""Compare ABI values (see abi_items.h) read from assembly files.

  compare.py ARCH OURS.s MINGW_KERNEL.s MINGW_USER.s [HOST_OURS.s]

OURS.s: abi_dump.c against include/wdk with the mingw-w64 compiler of ARCH.
MINGW_*.s: the same items against mingw-w64's own headers (independent source).
HOST_OURS.s: include/wdk with the host compiler for the same pointer size (gcc for
amd64, gcc -m32 for x86): the simulator must see the layouts the shipped .sys uses.
Exit 1 on any difference, a missing key, or too few keys (a vacuous comparison).
"""
import re
import sys

LABEL = re.compile(r"^_?abi_(\w+):\s*$")
VALUE = re.compile(r"^\s*\.(?:long|int)\s+(-?\d+)\s*$")


def read(path):
    values, key = {}, None
    with open(path) as f:
        for line in f:
            m = LABEL.match(line)
            if m:
                key = m.group(1)
                continue
            m = VALUE.match(line)
            if key and m:
                values[key] = int(m.group(1)) & 0xFFFFFFFF
                key = None
    return values


def main(argv):
    if len(argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    arch, ours_path, kern_path, user_path = argv[1:5]
    ours = read(ours_path)
    theirs = read(kern_path)
    theirs.update(read(user_path))
    bad = 0
    for key in sorted(ours):
        if key not in theirs:
            print("MISSING %s %s: not emitted from mingw-w64's headers" % (arch, key))
            bad += 1
        elif ours[key] != theirs[key]:
            print("DIFF %s %s: ours %d (0x%x), mingw-w64 %d (0x%x)"
                  % (arch, key, ours[key], ours[key], theirs[key], theirs[key]))
            bad += 1
    compared = len(ours)
    if len(argv) > 5:
        host = read(argv[5])
        for key in sorted(ours):
            if host.get(key) != ours[key]:
                print("HOSTDIFF %s %s: mingw %s, host %s" % (arch, key, ours[key], host.get(key)))
                bad += 1
    if compared < 150:
        print("too few items compared (%d): the dump is broken" % compared)
        bad += 1
    for key in ("sizeof__SCSI_REQUEST_BLOCK", "PORT_CONFIGURATION_INFORMATION__scsiport_prefix",
                "HW_INITIALIZATION_DATA__scsiport_end", "sizeof__SG_ELEMENT", "sizeof__SRB_IO_CONTROL",
                "sizeof__SENSE_DATA", "sizeof__INQUIRYDATA", "sizeof__ACCESS_RANGE"):
        print("%s %-50s ours 0x%02x  mingw 0x%02x" % (arch, key, ours.get(key, -1), theirs.get(key, -1)))
    print("%s: %d items compared, %d problems" % (arch, compared, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
