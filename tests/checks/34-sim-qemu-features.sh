#!/usr/bin/env bash
# Feature variations: event_idx=off, indirect_desc=off, packed=on (must not be
# negotiated: the driver has only the split ring), config-wce=off, seg-max-adjust=off.
. "$(dirname "$0")/../sim/common.sh"
need_sim; need_qemu
IMG=$SCRATCH/disk.img
W=(run --rw randrw --bs 16K --qd 16 --ios 1500)
sim_json noevidx --disk "$IMG" --size 32M --device-opts event_idx=off "${W[@]}"
check_clean noevidx
check noevidx "not $FEAT(29)" "event_idx=off: EVENT_IDX not negotiated"
sim_json noindirect --disk "$IMG" --device-opts indirect_desc=off run --rw randrw --bs 256K --qd 8 --ios 300
check_clean noindirect
check noindirect "not $FEAT(28)" "indirect_desc=off: INDIRECT_DESC not negotiated, large requests still work"
sim_json packed --disk "$IMG" --device-opts packed=on "${W[@]}"
check_clean packed
check packed "not $FEAT(34) and (int(j['features_offered'], 16) >> 34) & 1" "packed=on offered but RING_PACKED not negotiated"
sim_json nowce --disk "$IMG" --device-opts config-wce=off "${W[@]}"
check_clean nowce
check nowce "not $FEAT(11)" "config-wce=off: CONFIG_WCE not negotiated"
sim_json segmax --disk "$IMG" --device-opts seg-max-adjust=off run --rw randrw --bs 512K --qd 4 --ios 200
check_clean segmax
finish
