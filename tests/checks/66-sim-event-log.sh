#!/usr/bin/env bash
# Event log on failed starts (docs/lifecycle.md "Event log codes"): each broken contract
# device makes the start fail cleanly — HwFindAdapter NOT_FOUND/ERROR or HwInitialize
# FALSE, which Windows shows as Code 10 — with exactly one StorPortLogError whose
# UniqueId names the event (0xA0B1CCxx), no verifier finding and no sanitizer report.
# (Runtime events — 0B ring, 0C NEEDS_RESET, 0D reset, 0E removal — are asserted by
# 61, 62, 63 and 65.)
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
need_sim
# NAME  device option  expected UniqueId prefix  failing callback  meaning
while read -r name opt code where what; do
    sim_json $name --backend contract --size 8M --device-opts $opt info
    check $name 'rc == 1 and j["verifier_findings"] == 0' "the start fails cleanly, no verifier finding"
    check $name "'$where' in j.get('error', '')" "failed in $where (Windows: Code 10)"
    check $name "[l for l in j['log'] if 'UniqueId' in l] and all('UniqueId $code' in l for l in j['log'] if 'UniqueId' in l) and $NLOG('UniqueId') == 1" "one event-log entry, UniqueId $code…: $what"
    check_sanitizers $name
done <<'T'
revision     revision=2           0xa0b10204 HwFindAdapter  revision 02 refused (VPCI_DETAIL_REVISION)
capabilities cap_loop             0xa0b103   HwFindAdapter  capability list loops
bar          bar6                 0xa0b103   HwFindAdapter  capability names BAR 6
negotiation  refuse_features_ok   0xa0b106   HwFindAdapter  FEATURES_OK refused
queue        queue_size0          0xa0b108   HwFindAdapter  queue size 0
reset        reset_stuck          0xa0b105   HwInitialize   reset never completes
vector       vector_readback_ffff 0xa0b109   HwInitialize   MSI-X vector not accepted
T
finish
