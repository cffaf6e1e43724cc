#!/usr/bin/env bash
# Slow flush (issue 11 item 8; facts §8, §11.5). The contract device's flush-delay-ms=N
# holds every FLUSH N ms (a host fdatasync of a large dirty cache) while reads and writes
# go on. disk.sys sets FUA on write-through writes whenever the write cache is on
# (ADJUST_FUA_FLAG; DPOFUA is not consulted) and the driver makes such a write durable
# with WRITE then FLUSH inside the same SRB, so the FLUSH runs under the WRITE's
# TimeOutValue (10 s; here --srb-timeout 1), not SYNCHRONIZE CACHE's 4x.
#  below: N < TimeOutValue: every FUA write waits for its FLUSH (durable), nothing times out.
#  beyond: N > TimeOutValue: no miniport can finish a durable FUA write in time (virtio-blk
#   has no per-request FUA; Windows 7 has no per-SRB timeout extension), so StorPort's
#   timeout fires; the driver neither resets the device (the host holds the FLUSH: reset
#   deferred, 0xA0B10D01) nor fails the write: it completes with SUCCESS once the FLUSH is
#   done, exactly once, and the final SYNCHRONIZE CACHE (4x) does not time out.
# Negative control: the driver built with AEROVBLK_TEST_RESET_WHILE_HELD (the reset path
# before issue 11) resets mid-FLUSH: the FUA writes come back with BUS_RESET, and with
# reset-blocks=1 the reset holds the CPU at DIRQL (STALL finding).
. "$(dirname "$0")/../sim/common.sh"
. "$(dirname "$0")/../sim/lifecycle.sh"
. "$(dirname "$0")/../sim/control-driver.sh"
need_sim
CC='(lambda s: j.get("class_completions", {}).get(s, 0))'
# 20 %: several FUA writes whatever the timing (5 % once drew a single one: 60h flaked)
W="run --rw randwrite --bs 4K --qd 4 --ios 40 --fua-pct 20 --seed 3"
sim_json below --backend contract --size 32M --srb-timeout 2 --device-opts flush-delay-ms=300 $W
lifecycle_clean below
check below 'w["fua_writes"] >= 2 and j["device_flushes_delayed"] >= w["fua_writes"]' "each FUA write was made durable by a FLUSH the device held 300 ms"
check below 'j["srb_timeouts"] == 0 and j["lu_resets"] == 0' "no SRB timed out, no reset requested"
check below "$CC('BUS_RESET') == 0 and w['image_mismatches'] == 0" "no reset completions; every chunk verified"
sim_json beyond --backend contract --size 32M --srb-timeout 1 --device-opts flush-delay-ms=1300,reset-blocks=1 $W
lifecycle_clean beyond
check beyond 'w["fua_writes"] >= 2 and j["srb_timeouts"] >= 1' "FUA writes outlived TimeOutValue (1 s) behind a 1.3 s FLUSH: StorPort's timeout fired"
check beyond "$LOG('UniqueId 0xa0b10d01') and not $LOG('UniqueId 0xa0b10d00')" "the driver did not reset the device while it held the FLUSH (0xA0B10D01 only)"
check beyond "$CC('BUS_RESET') == 0 and j['class_retries'] == 0 and j['max_locked_mmio_us'] < 100000" "no FUA write failed or was retried; no stalled register access"
check beyond 'w["image_mismatches"] == 0 and w["errors"] == 0' "every chunk durable and verified"
# control
if [ -n "${AEROVBLK_SIM_DRIVER:-}" ]; then
    echo "skip  [neg] the control is a host build (check 77 runs the shipped binary)"
elif build_control_sim AEROVBLK_TEST_RESET_WHILE_HELD; then
    SIM="$CONTROL_SIM" sim_json neg --backend contract --size 32M --srb-timeout 1 --device-opts flush-delay-ms=1300,reset-blocks=1 ${W/--ios 40/--ios 20}
    check neg "rc == 1 and $CC('BUS_RESET') >= 1 and j['max_locked_mmio_us'] >= 100000" \
        "control: resetting while the FLUSH is held fails FUA writes with BUS_RESET and stalls at DIRQL"
else
    echo "FAIL  [neg] could not build the control driver"; FAILS=$((FAILS+1))
fi
finish
