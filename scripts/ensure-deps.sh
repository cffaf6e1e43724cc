#!/usr/bin/env bash
# The one place that knows which Debian packages the build and tests need.
# Run as root: installs what is missing (apt-get update first). Otherwise: fails and
# prints the exact apt-get line to run. Used by `make`, `make run` and `make check`.
#
#   gcc-mingw-w64, binutils-mingw-w64  cross compilers + dlltool for aerovblk.sys (x86, x64)
#   qemu-system-x86, qemu-utils        QEMU's real virtio-blk device for the simulator, qemu-img
#   python3-pefile                     PE checker of the built .sys files (tools/pecheck.py)
#   libcmocka-dev                      unit-test framework of the host tests
#   gcc-multilib                       32-bit simulator build that runs the shipped x86 .sys
#   clang, libclang-rt-14-dev          libFuzzer for the SCSI-translation fuzz test
#   osslsigncode, openssl              `make testsign` (x64 Windows 7 needs an embedded signature)
#   procps                             ps -s: the QEMU backend test checks nothing of its session is left behind
#   qemu-user                          qemu-i386: the x86 .sys where the kernel cannot run 32-bit code
#   wine64                             the Windows query tool and the INF install check under Wine
#   clang-tools-14, lld-14, llvm-14    clang-cl, lld-link, llvm-dlltool: the MSVC-dialect build check
#   xorriso                            `make dist`: the release ISO image (ISO 9660 + Joliet + Rock Ridge)
#   git                                SOURCE_DATE_EPOCH from the commit; the reproducibility check clones HEAD
#   valgrind                           callgrind: driver instructions per I/O (`make bench`, check 90)
#   python3-hivex, ntfs-3g, wimtools   aerovblk-inject: hives (hivex), NTFS (ntfscat/ntfscp/ntfsls/ntfssecaudit), WIM
#   fdisk, fuse3                       aerovblk-inject: sfdisk reads MBR/GPT; fusermount3 for qemu-storage-daemon's
#                                      FUSE partition export without root (qemu-storage-daemon: qemu-system-common)
#   libhivex-bin, reglookup, libregf-utils, sleuthkit
#                                      checks 80-*: hivexregedit fills the test hives; reglookup, regfexport and
#                                      The Sleuth Kit read the results independently of the tool's own readers
set -u
PKGS=(gcc-mingw-w64 binutils-mingw-w64 qemu-system-x86 qemu-utils python3-pefile
      libcmocka-dev gcc-multilib clang libclang-rt-14-dev osslsigncode openssl procps
      qemu-user wine64 clang-tools-14 lld-14 llvm-14 xorriso git valgrind
      python3-hivex ntfs-3g wimtools fdisk fuse3 libhivex-bin reglookup libregf-utils sleuthkit)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "ensure-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || { echo "ensure-deps: apt-get install failed" >&2; exit 1; }
  exit 0
fi
echo "ensure-deps: missing Debian packages. Run as root:" >&2
echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
exit 1
