#!/usr/bin/env bash
# Negative controls of the workload's own verification (sim/workload.c): data corrupted
# behind the driver's back must be reported by each detector on its own, and the run
# must fail (exit status 1), so a check that relies on "errors=0 mismatches=0" really
# depends on the data. Detectors: the read-back pass (after the flush every written
# chunk is read again through the driver and compared with its pattern) and the
# image-file comparison (every written chunk compared with the image file).
# Corruption, test-only: `--corrupt-image N` flips one byte in each of the first N
# written chunks of the image file after the flush (QEMU and contract device); the
# contract device's `drop-next-write` control acknowledges a WRITE without writing it
# (a lost write). `--no-readback` / `--no-image-check` switch one detector off, so each
# is shown to catch the corruption alone. The third detector, the verification of every
# READ during the run, is shown alone (both others off) with the contract device's
# `corrupt-next-read` control (a READ completes OK with one byte of its data flipped).
# Positive controls: the same runs without corruption pass.
. "$(dirname "$0")/../sim/common.sh"
need_sim
need_qemu
# sequential: every chunk is written exactly once (a lost write is never overwritten)
RUN='run --rw write --bs 4K --qd 4 --ios 200 --span 4M --seed 5'
printf '%s\n' "$RUN" >"$SCRATCH/plain.script"

failed_by() {   # NAME WHAT: the run failed and nothing else went wrong
    check "$1" 'rc == 1 and j["exit_status"] == 1 and j["verifier_findings"] == 0 and w["errors"] == 0' "$2: the run fails (exit 1), no I/O error, no verifier finding"
}

# 1. QEMU, image byte flipped after the flush
sim_json q-clean --size 16M $RUN
check q-clean 'rc == 0 and w["writes"] == 200 and w["readback_reads"] == 200 and w["readback_mismatches"] == 0 and w["image_chunks_checked"] == 200 and w["image_mismatches"] == 0' "positive control: 200 writes, every written chunk read back and found in the image file"
sim_json q-img --size 16M $RUN --corrupt-image 2 --no-readback
failed_by q-img "image comparison alone (--no-readback)"
check q-img 'w["corrupted_chunks"] == 2 and w["readback_reads"] == 0 and w["image_mismatches"] == 2 and w["mismatches"] == 0' "the image-file comparison reports the 2 flipped sectors"
check q-img 'err.count("MISMATCH (image file)") == 2' "…and names them on stderr"
sim_json q-rb --size 16M $RUN --corrupt-image 2 --no-image-check
failed_by q-rb "read-back pass alone (--no-image-check)"
check q-rb 'w["corrupted_chunks"] == 2 and w["image_check"] is False and w["image_chunks_checked"] == 0 and w["readback_mismatches"] == 2 and w["mismatches"] == 2' "the read-back pass reports the 2 flipped sectors through the driver"
check q-rb 'err.count("MISMATCH (read-back pass)") == 2' "…and names them on stderr"
sim_json q-both --size 16M $RUN --corrupt-image 3
failed_by q-both "both detectors"
check q-both 'w["readback_mismatches"] == 3 and w["image_mismatches"] == 3 and j["mismatches"] == 6' "both report all 3 (JSON mismatches = read-back + image)"

# 2. contract device: a WRITE acknowledged but never written (lost write)
printf 'control drop-next-write\n%s %s\n' "$RUN" "--no-image-check" >"$SCRATCH/drop-rb.script"
printf 'control drop-next-write\n%s %s\n' "$RUN" "--no-readback" >"$SCRATCH/drop-img.script"
sim_json c-clean --backend contract --size 16M script "$SCRATCH/plain.script"
check c-clean 'rc == 0 and w["readback_reads"] == 200 and w["readback_mismatches"] == 0 and w["image_mismatches"] == 0 and j["device"]["faults_injected"] == 0' "positive control (contract device)"
sim_json c-rb --backend contract --size 16M script "$SCRATCH/drop-rb.script"
failed_by c-rb "lost write, read-back pass alone"
check c-rb 'j["device"]["faults_injected"] == 1 and w["readback_mismatches"] == 8 and w["image_chunks_checked"] == 0' "the read-back pass finds the lost 4 KiB (8 sectors)"
sim_json c-img --backend contract --size 16M script "$SCRATCH/drop-img.script"
failed_by c-img "lost write, image comparison alone"
check c-img 'j["device"]["faults_injected"] == 1 and w["image_mismatches"] == 8 and w["readback_reads"] == 0' "the image-file comparison finds the lost 4 KiB (8 sectors)"

# 3. contract device: a READ during the run returns wrong data (status OK); only the
# in-run read verification is on ("MISMATCH (read-back):", not the pass's "(read-back pass)")
RRUN='run --rw randrw --bs 4K --qd 4 --ios 200 --span 256K --seed 5 --no-readback --no-image-check'
printf '%s\n' "$RRUN" >"$SCRATCH/rr-plain.script"
printf 'control corrupt-next-read\n%s\n' "$RRUN" >"$SCRATCH/rr-corrupt.script"
sim_json r-clean --backend contract --size 16M script "$SCRATCH/rr-plain.script"
check r-clean 'rc == 0 and w["reads"] > 0 and w["mismatches"] == 0 and w["readback_reads"] == 0 and w["image_chunks_checked"] == 0 and j["device"]["faults_injected"] == 0' "positive control: randrw with only the in-run read verification"
sim_json r-corrupt --backend contract --size 16M script "$SCRATCH/rr-corrupt.script"
failed_by r-corrupt "wrong data returned by a READ during the run, in-run verification alone"
check r-corrupt 'j["device"]["faults_injected"] == 1 and w["mismatches"] == 1 and w["readback_reads"] == 0 and w["image_chunks_checked"] == 0' "the in-run read verification finds the flipped sector"
check r-corrupt 'err.count("MISMATCH (read-back):") == 1 and "MISMATCH (read-back pass)" not in err' "…and names it on stderr as an in-run read mismatch"
finish
