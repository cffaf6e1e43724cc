#!/usr/bin/env bash
# Reproducible release build: two `git clone`s of HEAD in two different directories (of
# different path lengths), each with this working tree's uncommitted and untracked files
# copied in (what is being checked is the tree as it is now), each given the same
# throw-away test key in out/testsign/cert/, each running `make dist` from scratch (both
# at once). SOURCE_DATE_EPOCH is unset, so each build takes it from `git log -1
# --format=%ct` itself. Then, byte for byte:
#   out/package/{x86,amd64}/ aerovblk.sys aerovblk-query.exe aerovblk.inf aerovblk.cat
#   out/testsign/{x86,amd64}/ aerovblk.sys aerovblk.cat        (same key: same signatures)
#   out/dist/ both .zip, both .iso, SHA256SUMS
# must be identical, and no output may contain either build directory (ASCII or
# UTF-16LE). The comparison can fail: rebuilding the second tree's catalogs, signatures
# and archives with SOURCE_DATE_EPOCH + 1 must change every .cat, signed .sys and archive
# (and leave the unsigned .sys and .exe alone). About 60-90 s (two full package builds on
# two cores; longer on a loaded machine).
set -u
cd "$(dirname "$0")/../.."
unset MAKEFLAGS MFLAGS MAKELEVEL SOURCE_DATE_EPOCH
src=$PWD
fails=0
ok()  { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fails=$((fails+1)); }
command -v git >/dev/null || { echo "FAIL: git missing"; exit 1; }
git -C "$src" rev-parse --verify -q HEAD >/dev/null || { echo "FAIL: $src has no HEAD commit"; exit 1; }
tmp=$(mktemp -d /tmp/aerovblk-repro.XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
A=$tmp/a/aerovblk
B=$tmp/second-build-with-a-longer-path/src/aerovblk-release
t0=$(date +%s)

mkdir -p "$tmp/key"
openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes -subj "/CN=aerovblk reproducibility check" \
  -addext "extendedKeyUsage=codeSigning" -addext "keyUsage=digitalSignature" \
  -keyout "$tmp/key/key.pem" -out "$tmp/key/cert.pem" 2>/dev/null || { echo "FAIL: openssl req"; exit 1; }
git -C "$src" ls-files -z -c -o --exclude-standard >"$tmp/files"
git -C "$src" ls-files -z -d >"$tmp/deleted"
for d in "$A" "$B"; do
  mkdir -p "$(dirname "$d")"
  git clone -q --shared "$src" "$d" || { echo "FAIL: git clone"; exit 1; }
  # the working tree as it is: changed and untracked files (not ignored), deletions
  (cd "$src" && tr '\0' '\n' <"$tmp/files" | while IFS= read -r f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$d" -xf - || { echo "FAIL: copying the working tree"; exit 1; }
  (cd "$d" && xargs -0 -r rm -f <"$tmp/deleted")
  mkdir -p "$d/out/testsign/cert" && cp "$tmp/key/"*.pem "$d/out/testsign/cert/"
done
echo "copied $(tr -cd '\0' <"$tmp/files" | wc -c) files into $A and $B ($(( $(date +%s) - t0 ))s)"

for d in "$A" "$B"; do
  (cd "$d" && make --no-print-directory dist >"$d.log" 2>&1; echo $? >"$d.rc") &
done
wait
for d in "$A" "$B"; do
  [ "$(cat "$d.rc")" = 0 ] || { bad "make dist in $d failed:"; tail -20 "$d.log"; }
done
[ $fails -eq 0 ] || exit 1
echo "two builds of make dist: $(( $(date +%s) - t0 ))s"
sde=$(git -C "$A" log -1 --format=%ct)
[ "$(cat "$A/out/.source-date-epoch")" = "$sde" ] && [ "$(cat "$B/out/.source-date-epoch")" = "$sde" ] \
  && ok "both builds took SOURCE_DATE_EPOCH=$sde from git log -1 --format=%ct" \
  || bad "SOURCE_DATE_EPOCH not from the commit: $(cat "$A/out/.source-date-epoch") / $(cat "$B/out/.source-date-epoch"), commit $sde"

outputs() {
  for a in x86 amd64; do
    for f in aerovblk.sys aerovblk-query.exe aerovblk.inf aerovblk.cat; do echo out/package/$a/$f; done
    for f in aerovblk.sys aerovblk.cat; do echo out/testsign/$a/$f; done
  done
  (cd "$A" && ls out/dist/*.zip out/dist/*.iso out/dist/SHA256SUMS)
}
n=0
for f in $(outputs); do
  n=$((n+1))
  if [ ! -f "$A/$f" ] || [ ! -f "$B/$f" ]; then bad "$f missing in one build"
  elif cmp -s "$A/$f" "$B/$f"; then ok "identical: $f ($(sha256sum <"$A/$f" | cut -c1-16))"
  else bad "differs: $f ($(cmp "$A/$f" "$B/$f" | head -1))"; fi
done
[ $n -eq 17 ] || bad "$n outputs compared, want 17"

# No build path inside any output (ASCII or UTF-16LE).
for d in "$A" "$B"; do
  hits=$(cd "$d" && /usr/bin/python3 - "$d" $(outputs) <<'PY'
import sys
root = sys.argv[1].encode()
for f in sys.argv[2:]:
    data = open(f, "rb").read()
    for needle in (root, root.decode().encode("utf-16-le"), b"/tmp/aerovblk-repro"):
        if needle in data:
            print(f)
            break
PY
)
  [ -z "$hits" ] && ok "no output of $d contains its build directory" || bad "build path inside: $hits"
done

# Negative control: another SOURCE_DATE_EPOCH must show in the catalogs, the test
# signatures and the archives (and only there).
mkdir -p "$tmp/before"
for f in $(outputs); do mkdir -p "$tmp/before/$(dirname "$f")"; cp "$B/$f" "$tmp/before/$f"; done
(cd "$B" && SOURCE_DATE_EPOCH=$((sde + 1)) make --no-print-directory dist >"$B.log2" 2>&1) || { bad "rebuild with SOURCE_DATE_EPOCH+1 failed"; tail "$B.log2"; }
changed=0 same=0
for f in $(outputs); do
  if cmp -s "$B/$f" "$tmp/before/$f"; then
    case $f in */aerovblk.cat|out/testsign/*|out/dist/*) bad "SOURCE_DATE_EPOCH+1 left $f unchanged";; *) same=$((same+1));; esac
  else
    case $f in */aerovblk.cat|out/testsign/*|out/dist/*) changed=$((changed+1));; *) bad "SOURCE_DATE_EPOCH+1 changed $f";; esac
  fi
done
ok "negative: SOURCE_DATE_EPOCH+1 changes $changed dated outputs (catalogs, signatures, archives); $same others unchanged"
echo "total $(( $(date +%s) - t0 ))s"
[ $fails -eq 0 ] && echo "reproducibility checks passed" || echo "$fails reproducibility check(s) failed"
[ $fails -eq 0 ]
