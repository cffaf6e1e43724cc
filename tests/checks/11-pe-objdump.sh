#!/usr/bin/env bash
# Issue 2 "done when": x86_64-w64-mingw32-objdump -p on each .sys shows subsystem native
# and a single imported DLL, storport.sys; and the machine matches the directory.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*"; exit 1; }
for a in x86 amd64; do
  sys=out/package/$a/aerovblk.sys
  [ -s "$sys" ] || fail "$sys missing"
  p=$(x86_64-w64-mingw32-objdump -p "$sys") || fail "objdump -p $sys"
  echo "$p" | grep -qE '^Subsystem[[:space:]]+00000001[[:space:]]+\(NT native\)' || fail "$a: subsystem is not native"
  dlls=$(echo "$p" | sed -n 's/^[[:space:]]*DLL Name: //p')
  [ "$dlls" = "storport.sys" ] || fail "$a: imported DLLs: [$dlls], want exactly storport.sys"
  want=$([ $a = x86 ] && echo pei-i386 || echo pei-x86-64)
  x86_64-w64-mingw32-objdump -f "$sys" | grep -q "file format $want" || fail "$a: not $want"
  echo "$a: $want, subsystem native, imports only storport.sys ($(echo "$p" | grep -cE '^[[:space:]]+[0-9a-f]+[[:space:]]+[0-9]+[[:space:]]+StorPort') functions)"
done
