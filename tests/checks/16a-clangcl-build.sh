#!/usr/bin/env bash
# MSVC dialect (issue 12): driver/*.c must compile as MSVC would compile it, not only
# as GCC does. clang-cl (Debian clang-14, MSVC mode) builds aerovblk.sys for x86 and
# amd64 with the settings of driver/aerovblk.vcxproj (/W4 /WX /GS-, x86 /Gz) plus
# -Wshorten-64-to-32 and -Wimplicit-int-conversion (MSVC's C4244), lld-link links it against import libraries made by
# llvm-dlltool from driver/storport-<arch>.def, and tools/pecheck.py checks the images
# (every rule, the entry point from lld-link's map). Rules: mk/clangcl.mk; flags and
# why: docs/build.md. The images run the simulator's smoke scenarios (as
# 74-shipped-x64-sim.sh does for the shipped build): amd64 in out/host/aerovblk-sim;
# x86 through tests/sim/run-x86-sim.sh when it exists, else out/peloader/x86/aerovblk-sim
# when this machine can execute it, else the log says the x86 smoke was not run.
# Output: out/clangcl/. A check only; out/package is the mingw-w64 build.
set -u
cd "$(dirname "$0")/../.."
out=out/clangcl
fail=0

# Tools: a missing one is a failure, naming the Debian package.
missing=0
need() {   # command, package
  command -v "$1" >/dev/null 2>&1 || { echo "FAIL: $1 not found (apt-get install $2)"; missing=1; }
}
need clang-cl-14 clang-tools-14
need lld-link-14 lld-14
need llvm-dlltool-14 llvm-14
need qemu-system-x86_64 qemu-system-x86
/usr/bin/python3 -c 'import pefile' 2>/dev/null || { echo "FAIL: python3 pefile missing (apt-get install python3-pefile)"; missing=1; }
[ $missing -eq 0 ] || exit 1

# 1. Compile, link, pecheck: x86 and amd64, from scratch (every warning in this log).
echo "=== build: make clangcl (clang-cl $(clang-cl-14 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'))"
rm -rf "$out"
if ! make --no-print-directory clangcl 2>&1; then
  echo "FAIL: the clang-cl build (compile, link or pecheck) failed; see above"
  exit 1
fi

# 2. The images again, as they are now, and what pecheck does not look at.
for arch in x86 amd64; do
  sys=$out/$arch/aerovblk.sys
  [ -s "$sys" ] || { echo "FAIL: $sys missing"; fail=1; continue; }
  /usr/bin/python3 tools/pecheck.py check --arch $arch --def driver/storport-$arch.def \
      --map $out/$arch/aerovblk.map "$sys" || fail=1
  # x64: the kernel's stack walker and exception dispatcher need .pdata (clang-cl 14
  # drops it under -ffreestanding unless told otherwise); x86: stdcall entry point.
  /usr/bin/python3 - "$sys" "$arch" "$out/$arch/aerovblk.map" <<'PY' || fail=1
import re, sys, pefile
path, arch, mapfile = sys.argv[1:]
pe = pefile.PE(path, fast_load=True)
bad = []
exc = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXCEPTION"]]
if arch == "amd64" and exc.Size < 12:
    bad.append("no exception directory (.pdata): x64 unwind data missing")
text = open(mapfile, errors="replace").read()
want = "_DriverEntry@8" if arch == "x86" else "DriverEntry"
if not re.search(r"^\s*[0-9a-f]{4}:[0-9a-f]{8}\s+" + re.escape(want) + r"\s", text, re.M | re.I):
    bad.append("%s not in the lld-link map" % want)
for b in bad:
    print("FAIL %s: %s" % (path, b))
if not bad:
    print("ok: %s: %s%s" % (path, "entry " + want,
          ", .pdata %d entries" % (exc.Size // 12) if arch == "amd64" else ""))
sys.exit(1 if bad else 0)
PY
done
[ $fail -eq 0 ] || { echo "FAIL: clang-cl images"; exit 1; }

# Negative controls: the same command lines (make clangcl-cc-/clangcl-link-<arch>) refuse
# a 64-to-32-bit truncation (C4244) and a structure copy that becomes a memcpy call.
neg=$out/neg
mkdir -p "$neg"
printf '%s\n' 'unsigned long Truncate(unsigned long long Value) { return Value; }' > "$neg/c4244.c"
cat > "$neg/memcpy.c" <<'C'
typedef struct { unsigned long long Words[64]; } BIG;
void Copy(BIG *Dest, const BIG *Src) { *Dest = *Src; }
long DriverEntry(void *DriverObject, void *RegistryPath)
{ Copy((BIG *)DriverObject, (const BIG *)RegistryPath); return 0; }
C
for arch in x86 amd64; do
  read -r -a cc < <(make -s --no-print-directory clangcl-cc-$arch)
  read -r -a link < <(make -s --no-print-directory clangcl-link-$arch)
  if "${cc[@]}" "$neg/c4244.c" /Fo"$neg/c4244-$arch.obj" >"$neg/c4244-$arch.log" 2>&1 \
     || ! grep -q 'Wshorten-64-to-32' "$neg/c4244-$arch.log"; then
    echo "FAIL: $arch: a ULONGLONG-to-ULONG truncation compiled without the C4244 error"; fail=1
  else echo "ok: $arch negative control: truncation refused (-Wshorten-64-to-32)"; fi
  if ! "${cc[@]}" "$neg/memcpy.c" /Fo"$neg/memcpy-$arch.obj" >"$neg/memcpy-$arch.log" 2>&1; then
    echo "FAIL: $arch: negative-control fixture did not compile"; cat "$neg/memcpy-$arch.log"; fail=1
  elif "${link[@]}" /out:"$neg/memcpy-$arch.sys" "$neg/memcpy-$arch.obj" $out/$arch/storport.lib \
       >>"$neg/memcpy-$arch.log" 2>&1 || ! grep -q 'undefined symbol: _\{0,1\}memcpy' "$neg/memcpy-$arch.log"; then
    echo "FAIL: $arch: a structure copy lowered to memcpy linked (or failed otherwise):"
    cat "$neg/memcpy-$arch.log"; fail=1
  else echo "ok: $arch negative control: memcpy from a structure copy refused at link time"; fi
done
[ $fail -eq 0 ] || { echo "FAIL: negative controls"; exit 1; }

# 3. Smoke scenarios in the simulator (the scenarios of 74-shipped-x64-sim.sh, fewer I/Os).
tmp=$(mktemp -d /tmp/aerovblk-clangcl-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
smoke() {   # arch, then the simulator command (words)
  local arch=$1; shift
  local sys=$out/$arch/aerovblk.sys disk=$tmp/$arch.img
  run() {   # name, then aerovblk-sim arguments
    local name=$1; shift
    local o rc
    o=$(timeout --kill-after=5 120 "${sim[@]}" --timeout 100 --disk "$disk" --size 64M --driver "$sys" "$@" 2>&1); rc=$?
    echo "=== $arch $name: ${sim[*]} --driver $sys $* (rc=$rc)"
    echo "$o" | tail -n 6
    if [ $rc -ne 0 ] || ! grep -q '^Result: PASS' <<<"$o" || ! grep -q '^Verifier: 0 findings' <<<"$o"; then
      echo "FAIL: $arch $name"; fail=1; return
    fi
    if ! grep -q "loaded aerovblk.sys at" <<<"$o"; then
      echo "FAIL: $arch $name did not run the loaded image"; fail=1; return
    fi
    if [ "$name" != ioctl ] && ! grep -Eq 'VM exits +[0-9]+ MMIO reads, [1-9][0-9]* MMIO writes' <<<"$o"; then
      echo "FAIL: $arch $name: no register writes reached the device"; fail=1
    fi
  }
  local sim=("$@")
  run qemu-msix   run --rw randrw --bs 4096 --qd 16 --ios 1000 --seed 7
  run qemu-intx   --no-msi run --rw randrw --bs 65536 --qd 4 --ios 200 --seed 8
  run contract    --backend contract run --rw randrw --bs 8192 --qd 32 --ios 1000 --seed 9
  run dump-mode   --backend contract --dump-mode run --rw randrw --ios 200 --seed 10
  run ioctl       --backend contract ioctl
  # The driver's kernel-stack high-water mark (-v -v): reported and inside the stack.
  local o rc hw
  o=$(timeout --kill-after=5 120 "${sim[@]}" -v -v --timeout 100 --disk "$disk" --size 64M --driver "$sys" \
      --backend contract run --rw randrw --bs 65536 --qd 8 --ios 200 --seed 11 2>&1); rc=$?
  hw=$(sed -nE 's/.*sim: deepest kernel-stack use ([0-9]+) of ([0-9]+) bytes.*/\1 \2/p' <<<"$o" | tail -n1)
  echo "=== $arch kernel stack: ${hw:-not reported} (used, size in bytes; rc=$rc)"
  if [ $rc -ne 0 ] || [ -z "$hw" ] || ! awk -v u="${hw% *}" -v s="${hw#* }" 'BEGIN { exit !(u > 0 && u < s) }'; then
    echo "FAIL: $arch kernel-stack high-water mark missing or out of range"; fail=1
  fi
  smoked="$smoked $arch"
}
smoked=

host_sim=out/host/aerovblk-sim
if [ -x "$host_sim" ]; then
  smoke amd64 "$host_sim"
else
  echo "FAIL: $host_sim not built (make; make check builds it)"; fail=1
fi

x86_sim=out/peloader/x86/aerovblk-sim
if [ -f tests/sim/run-x86-sim.sh ]; then
  smoke x86 bash tests/sim/run-x86-sim.sh
elif [ -x "$x86_sim" ] && "$x86_sim" --help >/dev/null 2>&1; then
  smoke x86 "$x86_sim"
elif [ -e "$x86_sim" ]; then
  why=$("$x86_sim" --help 2>&1 >/dev/null | head -n1 | sed "s/.*: //")
  echo "=== x86 smoke: NOT RUN: $x86_sim cannot run on this machine (${why:-its --help fails})," \
       "and there is no tests/sim/run-x86-sim.sh (emulation wrapper)"
else
  echo "=== x86 smoke: NOT RUN: $x86_sim is not built (make peloader-sim32)" \
       "and there is no tests/sim/run-x86-sim.sh"
fi

if [ $fail -eq 0 ]; then
  echo "ok: clang-cl (MSVC dialect) builds: x86 and amd64 compile, link and pass pecheck;" \
       "smoke runs passed for:${smoked:- none}"
fi
exit $fail
