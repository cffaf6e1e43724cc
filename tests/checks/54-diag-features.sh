#!/usr/bin/env bash
# Issue 6 "Tests" (a): QUERY's NegotiatedFeatures equals the features the device
# accepted. Three independent sources must agree, per QEMU device configuration:
#   1. the driver's answer: AEROVBLK_QUERY_INFO.NegotiatedFeatures (the `ioctl` command);
#   2. the device's driver_feature registers, read back by the simulator through
#      common configuration (JSON `features_negotiated`, virtio 4.1.4.3);
#   3. QEMU itself: `x-query-virtio-status` guest-features (QEMU 7.2+), asked over a
#      second QMP monitor (tests/diag/qemu-extra-qmp.sh as AEROVBLK_QEMU) while the
#      device is at DRIVER_OK, i.e. what virtio_set_features() accepted at FEATURES_OK.
# Plus: offered (device_feature) == QEMU host-features minus QEMU's legacy-only bits
# (VIRTIO_LEGACY_FEATURES: NOTIFY_ON_EMPTY 24, ANY_LAYOUT 27, BAD_FEATURE 30, which
# virtio-pci's common configuration hides from modern drivers), negotiated ⊆ offered, and the bits each
# configuration must or must not negotiate. The contract backend checks 1 == 2.
. "$(dirname "$0")/../diag/common.sh"
need_sim; need_qemu
QMP_SOCK=$PWD/$SCRATCH/qmp.sock
# feature names -> bits as the virtio 1.2 spec numbers them (5.2.3 block, 6 reserved)
SPEC='dict(BARRIER=0, SIZE_MAX=1, SEG_MAX=2, GEOMETRY=4, RO=5, BLK_SIZE=6, SCSI=7, FLUSH=9, TOPOLOGY=10, CONFIG_WCE=11, MQ=12, DISCARD=13, WRITE_ZEROES=14, LIFETIME=15, SECURE_ERASE=16, ZONED=17, NOTIFY_ON_EMPTY=24, ANY_LAYOUT=27, INDIRECT_DESC=28, EVENT_IDX=29, VERSION_1=32, ACCESS_PLATFORM=33, RING_PACKED=34, IN_ORDER=35, ORDER_PLATFORM=36, SR_IOV=37, NOTIFICATION_DATA=38, NOTIF_CONFIG_DATA=39, RING_RESET=40, ADMIN_VQ=41, SUSPEND=43)'

REAL_QEMU=${AEROVBLK_QEMU:-$(command -v qemu-system-x86_64)}   # the wrapper runs this one
printf 'ioctl\nexpect srb=1 return_code=0\nsleep 1000\n' >"$SCRATCH/hold.script"

# features NAME DEVICE-OPTS: the three sources for one QEMU configuration
features() {
    local name=$1 opts=$2 py_rc=0
    rm -f "$QMP_SOCK"
    timeout 30 "$PY" tests/diag/qmp_virtio_status.py "$QMP_SOCK" "$SCRATCH/$name.qmp" 20 2>"$SCRATCH/$name.qmperr" &
    local py=$!
    AEROVBLK_QEMU=$PWD/tests/diag/qemu-extra-qmp.sh AVDIAG_QMP_SOCK=$QMP_SOCK \
    AVDIAG_REAL_QEMU=$REAL_QEMU \
        sim_json "$name" --size 16M ${opts:+--device-opts "$opts"} script "$SCRATCH/hold.script"
    wait $py || py_rc=$?
    [ $py_rc -eq 0 ] || { echo "      qmp: $(cat "$SCRATCH/$name.qmperr")"; echo '{}' >"$SCRATCH/$name.qmp"; }
    # fold QEMU's answer into the JSON under "qmp"
    "$PY" - "$SCRATCH/$name.json" "$SCRATCH/$name.qmp" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
j["qmp"] = json.load(open(sys.argv[2]))
json.dump(j, open(sys.argv[1], "w"))
PY
    check_clean "$name"
    check "$name" 'j["ioctl"]["srb_status"] == 1 and j["ioctl"]["return_code"] == 0 and j["ioctl"]["length"] == 288' "QUERY succeeded with 288 bytes"
    check "$name" 'q["negotiated_features"] == int(j["features_negotiated"], 16)' "NegotiatedFeatures == driver_feature registers"
    check "$name" '"guest_features" in j["qmp"] and q["negotiated_features"] == j["qmp"]["guest_features"]' "NegotiatedFeatures == QEMU x-query-virtio-status guest-features"
    check "$name" 'j["qmp"]["host_features"] & ~(1 << 24 | 1 << 27 | 1 << 30) == int(j["features_offered"], 16)' "device_feature registers == QEMU host-features (minus legacy-only bits 24, 27, 30)"
    check "$name" 'q["negotiated_features"] & ~int(j["features_offered"], 16) == 0' "negotiated ⊆ offered"
    check "$name" '"VIRTIO_CONFIG_S_FEATURES_OK" in j["qmp"]["status"] and "VIRTIO_CONFIG_S_DRIVER_OK" in j["qmp"]["status"]' "QEMU device status FEATURES_OK|DRIVER_OK"
    # the decoder (tools/common, the query tool's code) against QEMU, not against the
    # field it decoded: its hex and its names (spec names, virtio 5.2.3 and 6) are QEMU's
    # guest-features
    check "$name" '"guest_features" in j["qmp"] and j["ioctl"]["query"]["features"]["hex"] == "0x%016x" % j["qmp"]["guest_features"]' "decoded feature hex == QEMU guest-features"
    check "$name" '"guest_features" in j["qmp"] and sum(1 << '"$SPEC"'[n] for n in j["ioctl"]["query"]["features"]["names"]) + sum(1 << b for b in j["ioctl"]["query"]["features"]["unknown_bits"]) == j["qmp"]["guest_features"]' "decoded feature names (+ unknown bits) == QEMU guest-features bit for bit"
}
bit() { echo "(q[\"negotiated_features\"] >> $1) & 1"; }

features default ""
check default "$(bit 32) == 1 and $(bit 29) == 1 and $(bit 28) == 1" "default: VERSION_1, EVENT_IDX, INDIRECT_DESC negotiated"
check default "$(bit 40) == 0 and (int(j[\"features_offered\"], 16) >> 40) & 1 == 1" "default: RING_RESET offered but not negotiated"
features no-evidx "event_idx=off,indirect_desc=off"
check no-evidx "$(bit 29) == 0 and $(bit 28) == 0 and $(bit 32) == 1" "event_idx=off,indirect_desc=off: neither negotiated"
features packed "packed=on,config-wce=off,discard=off"
check packed "$(bit 34) == 0 and (int(j[\"features_offered\"], 16) >> 34) & 1 == 1" "packed=on: RING_PACKED offered, not negotiated (split ring only)"
check packed "$(bit 11) == 0 and $(bit 13) == 0" "config-wce=off,discard=off: CONFIG_WCE, DISCARD not negotiated"

# contract backend (no QEMU): the query against the device's registers
sim_json contract --backend contract ioctl
check_clean contract
check contract 'j["ioctl"]["srb_status"] == 1 and q["negotiated_features"] == int(j["features_negotiated"], 16) and (q["negotiated_features"] >> 32) & 1' "contract: NegotiatedFeatures == driver_feature registers, VERSION_1"
finish
