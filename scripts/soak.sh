#!/usr/bin/env bash
# Reliability soak (docs/reliability.md): verified workloads under a random fault schedule
# over the backend x driver x device matrix; tools/soak.py does the work. Examples:
#   scripts/soak.sh --seconds 3600                    # an hour, campaign seed 1
#   scripts/soak.sh --total-ios 1000000 --seed 7      # a million verified I/Os
#   scripts/soak.sh --every-fault --seg-seconds 2     # every fault class and variant once
#   scripts/soak.sh --replay SEED --backend B --driver D --variant V [--fault F]   # one segment again
# Reports: out/soak/summary.json, out/soak/summary.txt (--out DIR elsewhere). Exit 1 on any
# lost or duplicated SRB, mismatch, finding, sanitizer report or unsurvived fault.
set -u
cd "$(dirname "$0")/.."
exec nice -n "${SOAK_NICE:-10}" python3 tools/soak.py "$@"
