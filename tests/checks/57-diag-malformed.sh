#!/usr/bin/env bash
# Issue 6 "Tests" (d): malformed AEROVBLK IOCTL requests get the documented status
# (docs/diagnostics.md §3), with no sanitizer report and no verifier finding.
# Expected outcomes are computed by tests/diag/malformed.py from the documented rules.
#  - QEMU, one device start: a generated script of 814 `ioctl` steps with `expect`
#    (SRB status, ReturnCode, DataTransferLength, decoded fields on success): every
#    buffer length 0..128 each with defaults, Length = room + 1, wrong signature,
#    HeaderLength 27, HeaderLength = buffer + 1, an unknown code; plus short/empty/
#    lower-case signatures, HeaderLength 0 / 2^32-1 / wrap-around, Length 2^32-28
#    (28 + Length wraps to 0), the layout boundaries 0x10/0x40/0x48/0x120, large
#    buffers, the validation order. Also with INTx (message_count 0 there: its own script).
#  - contract backend, one process per request (92, no device start cost): in
#    addition the reply header's Length (0 on errors, untouched when not for us,
#    bytes copied on success), the reply check, the decoded layout, exit status.
#  - byte level (tests/diag/ioctl_raw.c, the simulator core driven directly; QEMU and
#    contract, 1864 requests each): buffers 0..400 bytes placed against an inaccessible
#    guard page, pre-filled with a pattern; no byte outside the reply may change, the
#    copied bytes equal a reference QUERY, nothing is read or written past the buffer,
#    a NULL DataBuffer is refused.
. "$(dirname "$0")/../diag/common.sh"
need_sim; need_qemu
MAL=tests/diag/malformed.py

"$PY" $MAL script "$SCRATCH/qemu.script" 256
sim_json qemu --size 16M script "$SCRATCH/qemu.script"
check_clean qemu
check qemu 'j["srbs"] >= '"$("$PY" $MAL count)" "QEMU: every step ran ($("$PY" $MAL count) IOCTLs, each expectation met)"
check qemu 'j["ioctl"]["srb_status"] == 6 and j["ioctl"]["transferred"] == 0 and "shorter" in j["ioctl"]["reply"]' "QEMU: the last step (a 27-byte buffer) was refused, nothing transferred"

"$PY" $MAL script "$SCRATCH/contract.script" 128
sim_json contract --backend contract script "$SCRATCH/contract.script"
check_clean contract
check contract 'j["srbs"] >= '"$("$PY" $MAL count)" "contract: every step ran, each expectation met"

# INTx: the same sweep; MessageCount 0 instead of 2
sed 's/field.message_count=2/field.message_count=0/' "$SCRATCH/qemu.script" >"$SCRATCH/intx.script"
sim_json intx --size 16M --no-msi script "$SCRATCH/intx.script"
check_clean intx
check intx 'j["interrupt_mode"] == "INTx" and j["srbs"] >= '"$("$PY" $MAL count)" "QEMU INTx: every step ran, each expectation met"

# byte level, against a guard page
RAW=out/diag/ioctl_raw
if make --no-print-directory -s "$RAW" >"$SCRATCH/raw-build.log" 2>&1; then
    for b in qemu contract; do
        rc=0
        timeout --kill-after=5 60 "$RAW" "$b" "$SCRATCH/raw.img" >"$SCRATCH/raw-$b.json" 2>"$SCRATCH/raw-$b.err" || rc=$?
        echo "$rc" >"$SCRATCH/raw-$b.rc"
        rm -f "$SCRATCH/raw.img"
        check "raw-$b" 'rc == 0 and j["failures"] == 0 and j["cases"] == 1864' "$b: 1864 requests byte-exact (nothing outside the reply touched, copy == reference QUERY)"
        check "raw-$b" 'j["findings"] == 0 and not __import__("re").search(r"'"$SANITIZER_RE"'", err)' "$b: no access past the buffer (guard page), no finding, no sanitizer report"
    done
else
    sed 's/^/      /' "$SCRATCH/raw-build.log" | tail -n 20
    echo "FAIL  [raw] could not build $RAW (the simulator core's interface changed?)"
    FAILS=$((FAILS + 1))
fi

# one process per request (contract backend): the fields `expect` cannot see
if "$PY" $MAL each "$SIM" "$SCRATCH/each.log" --backend contract >"$SCRATCH/each.out"; then
    echo "ok    [each] $(tail -n1 "$SCRATCH/each.out")"
else
    sed 's/^/      /' "$SCRATCH/each.out" | tail -n 30
    echo "FAIL  [each] requests one process each (log: $SCRATCH/each.log)"
    FAILS=$((FAILS + 1))
fi
finish
