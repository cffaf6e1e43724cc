#!/usr/bin/env bash
# The single-request commands and scripts: `cdb` (INQUIRY; an unknown opcode gets
# CHECK CONDITION with ILLEGAL REQUEST sense), `ioctl` (AEROVBLK QUERY decoded, its
# NegotiatedFeatures equal to the device's driver_feature registers; a wrong signature
# is refused), `script` with expectations, and a failing expectation failing the run.
# The IOCTL outcomes are read from what the driver itself left: its SrbStatus and the
# raw buffer bytes (`ioctl --raw`), not through the reply decoder, which would reject a
# wrong-signature echo whatever the driver answered. Requests carry the ReturnCode
# 0x5A5A5A5A (`--return-code`), so "left unchanged" and "set to STATUS_SUCCESS" differ.
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
sim_json inq --disk "$IMG" --size 16M cdb "12 00 00 00 24 00" --in 36
check inq 'rc == 0 and j["cdb"]["srb_status"] == 1 and j["cdb"]["transferred"] == 36' "INQUIRY: SUCCESS, 36 bytes"
check inq 'j["cdb"]["data"][:2] == "00" and bytes.fromhex(j["cdb"]["data"])[8:16].decode().strip() == j["identity"]["vendor"]' "INQUIRY data: disk, vendor as enumerated"
sim_json badop --disk "$IMG" cdb "ff 00 00 00 00 00"
check badop 'rc == 0 and j["cdb"]["srb_status"] == 0x84 and j["cdb"]["scsi_status"] == 2' "unknown opcode: SRB_STATUS_ERROR|AUTOSENSE_VALID, CHECK CONDITION"
check badop 'j["cdb"]["sense_key"] == 5 and j["cdb"]["asc"] == 0x20' "unknown opcode: ILLEGAL REQUEST, ASC 20 (invalid command operation code)"
# Raw SRB_IO_CONTROL header fields: u32(buffer, offset); HeaderLength 0, Signature 4,
# Timeout 12, ControlCode 16, ReturnCode 20, Length 24; the payload starts at 28.
RAW='(lambda k, off: int.from_bytes(bytes.fromhex(j["ioctl"][k])[off:off + 4], "little"))'
SENTINEL=0x5A5A5A5A
sim_json query --disk "$IMG" ioctl --return-code $SENTINEL --raw
check query 'rc == 0 and j["ioctl"]["srb_status"] == 1 and j["ioctl"]["return_code"] == 0' "QUERY: SRB SUCCESS, ReturnCode STATUS_SUCCESS"
check query 'j["ioctl"]["reply"] and "query" in j["ioctl"]' "QUERY reply decoded"
check query 'int(j["ioctl"]["query"]["fields"]["negotiated_features"]) == int(j["features_negotiated"], 16)' "QUERY NegotiatedFeatures == device driver_feature registers"
# the raw view agrees (it is what the wrong-signature control below relies on)
check query 'len(bytes.fromhex(j["ioctl"]["sent"])) == 28 + 0x120 and bytes.fromhex(j["ioctl"]["sent"])[4:12] == b"AEROVBLK" and '"$RAW"'("sent", 20) == '$SENTINEL' and '"$RAW"'("sent", 24) == 0x120' \
    "QUERY raw: sent as asked (AEROVBLK, ReturnCode 0x5A5A5A5A, Length 0x120)"
check query ''"$RAW"'("raw", 20) == 0 and '"$RAW"'("raw", 24) == 0x120 and int.from_bytes(bytes.fromhex(j["ioctl"]["raw"])[28:36], "little") == int(j["features_negotiated"], 16)' \
    "QUERY raw: the driver wrote ReturnCode 0 and Length 0x120; payload bytes 0-7 = negotiated features"
sim_json badsig --disk "$IMG" ioctl --signature NOTAEROV --return-code $SENTINEL --raw
check badsig 'rc == 0 and j["ioctl"]["srb_status"] == 6' "wrong signature: the driver's SrbStatus is SRB_STATUS_INVALID_REQUEST (0x06)"
check badsig 'bytes.fromhex(j["ioctl"]["sent"])[4:12] == b"NOTAEROV" and '"$RAW"'("sent", 20) == '$SENTINEL' and '"$RAW"'("sent", 24) == 0x120' \
    "wrong signature raw: sent as asked (NOTAEROV, ReturnCode 0x5A5A5A5A, Length 0x120)"
check badsig ''"$RAW"'("raw", 20) == '$SENTINEL' and '"$RAW"'("raw", 24) == 0x120' "wrong signature raw: ReturnCode and Length left as sent (not for us)"
check badsig 'len(j["ioctl"]["raw"]) == len(j["ioctl"]["sent"]) and j["ioctl"]["raw"] == j["ioctl"]["sent"]' "wrong signature raw: not one byte of the buffer changed (no reply data)"
check badsig '"query" not in j["ioctl"]' "wrong signature: no QUERY data decoded"
cat >"$SCRATCH/ok.script" <<'S'
# write a region, read it back, check single commands in between
run --rw write --bs 64K --span 4M --ios 64
expect mismatches=0 errors=0 ios=64
cdb 25 00 00 00 00 00 00 00 00 00 --in 8
expect srb=1 len=8 data[4]=0 data[5]=0 data[6]=2 data[7]=0
cdb 00 00 00 00 00 00
expect srb=1 scsi=0
run --rw read --bs 64K --span 4M --ios 64 --qd 4
expect mismatches=0 errors=0 findings=0
S
sim_json script --disk "$IMG" script "$SCRATCH/ok.script"
check script 'rc == 0 and j["verifier_findings"] == 0' "script with expectations passes"
# a capacity change in the middle of a workload (script `after`): the unit attention
# and BusChangeDetected are absorbed by the class layer, no I/O is lost
cat >"$SCRATCH/resize.script" <<'S'
after 300 qmp {"execute":"block_resize","arguments":{"device":"d0","size":33554432}}
run --rw randrw --bs 4K --qd 8 --seconds 2 --span 16M
expect mismatches=0 errors=0 bus_changes=1
rescan
expect capacity=65536
S
rm -f "$SCRATCH/r.img"
sim_json resize --disk "$SCRATCH/r.img" --size 16M script "$SCRATCH/resize.script"
check resize 'rc == 0 and j["verifier_findings"] == 0 and j["capacity_blocks"] == 65536' "block_resize during a workload: no errors, new capacity seen"
printf 'cdb 00 00 00 00 00 00\nexpect srb=4\n' >"$SCRATCH/bad.script"
sim_json badscript --disk "$IMG" script "$SCRATCH/bad.script"
check badscript 'rc != 0' "a failed expectation fails the run"
finish
