#!/usr/bin/env bash
# Issue 11 item 13: the Windows 7 contiguous-memory extended functions
# (StorPortAllocateContiguousMemorySpecifyCacheNode / StorPortFreeContiguousMemorySpecifyCache,
# facts §11.12; sim/contig.c). aerovblk does not call them (docs/performance.md), so the
# test miniport does, in passive initialisation: used right it runs clean and gets
# physically contiguous memory inside its address limits; never freeing the block,
# freeing it twice or with another size are findings; --fragmented-memory refuses it
# (NULL, logged), which a miniport without a fallback cannot survive.
. "$(dirname "$0")/../sim/common.sh"
[ -x "$SIM_FAKE" ] || { echo "FAIL: $SIM_FAKE not built"; exit 1; }
IMG=$SCRATCH/fake.img; truncate -s 16M "$IMG"
fake() {   # name bug [sim args...]
    local name=$1 bug=$2 rc=0; shift 2
    SIM_FAKE_DISK=$IMG SIM_FAKE_BUG=$bug timeout 90 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --json --backend contract \
        --disk "$IMG" --timeout 60 "$@" run --ios 50 >"$SCRATCH/$name.json" 2>"$SCRATCH/$name.err" || rc=$?
    echo $rc >"$SCRATCH/$name.rc"
}
fake ok contig-ok
check ok 'rc == 0 and j["findings"] == [] and j["workload"]["ios"] == 50' "used right: clean, I/O done"
fake leak contig-leak
check leak 'rc == 1 and "POOL: contiguous block of 262144 bytes not freed at unload" in err' "a block never freed is a POOL finding at unload"
fake double contig-double-free
check double 'rc == 1 and "StorPortFreeContiguousMemorySpecifyCache" in err and "double free" in err' "a second free is a POOL finding"
fake size contig-size-mismatch
check size 'rc == 1 and "131072 bytes / cache type 1, allocated as 262144" in err' "a free with another size is an ARGUMENT finding"
rc=0
SIM_FAKE_DISK=$IMG SIM_FAKE_BUG=contig-ok timeout 90 env -u AEROVBLK_SIM_DRIVER "$SIM_FAKE" --backend contract --disk "$IMG" \
    --timeout 60 --fragmented-memory run --ios 50 >"$SCRATCH/frag.out" 2>&1 || rc=$?
if [ $rc -ne 0 ] && grep -q "no physically contiguous run that large" "$SCRATCH/frag.out" && grep -q "HwPassiveInitializeRoutine returned FALSE" "$SCRATCH/frag.out"; then
    echo "ok    [frag] --fragmented-memory: 256 KiB refused (NULL, logged); the miniport without fallback fails to start"
else
    echo "FAIL  [frag] --fragmented-memory did not refuse the allocation (rc=$rc)"; FAILS=$((FAILS + 1))
fi
finish
