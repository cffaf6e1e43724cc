#!/usr/bin/env bash
# Diagnostics decode+format library (tools/common/aerovblk_diagfmt.c): the cmocka unit
# test under ASan/UBSan (ABI offsets pinned byte by byte, every payload length
# 0..sizeof+16 from exactly-sized buffers), then every JSON document it produced is
# parsed back with Python and checked for stable keys and number types.
set -euo pipefail
cd "$(dirname "$0")/../.."
test_bin=out/host/unit/test_diagfmt
[ -x "$test_bin" ] || { echo "missing $test_bin (make $test_bin)"; exit 1; }

tmp=$(mktemp -d /tmp/diagfmt-json.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
AVDIAG_JSON_DIR="$tmp" timeout 120 "$test_bin"

/usr/bin/python3 - "$tmp" <<'PY'
import json, os, sys
d = sys.argv[1]
# The documented field keys in ABI order (docs/diagnostics.md).
KEYS = """negotiated_features queue_size num_free avail_idx used_idx interrupt_mode
msix_config_vector msix_queue0_vector message_count flags abort_srb_count
reset_device_srb_count reset_bus_srb_count pnp_srb_count ioctl_reset_count
capacity_change_events reset_detected_count hw_reset_bus_count layout_version struct_size
capacity_sectors logical_block_size seg_max size_max maximum_transfer_length
submitted_read submitted_write submitted_flush submitted_discard submitted_write_zeroes
submitted_get_id completed_read completed_write completed_flush completed_discard
completed_write_zeroes completed_get_id bytes_read bytes_written doorbells_written
doorbells_suppressed interrupts_queue interrupts_config interrupts_spurious
completions_in_interrupts max_completions_per_interrupt busy_completions errors_ioerr
errors_unsupported errors_invalid_request errors_out_of_range max_in_flight
current_in_flight""".split()
TOP = ["format_version", "device", "returned_length", "decoded_length", "layout", "complete",
       "newer_bytes_ignored", "fields", "features", "interrupt_mode_name", "flags_names",
       "derived", "absent_fields", "notes"]
files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
assert len(files) == 0x120 + 16 + 1, f"expected {0x131} JSON files, got {len(files)}"
derived_keys = None
for name in files:
    length = int(name[4:7])
    with open(os.path.join(d, name)) as fh:
        doc = json.load(fh)                       # raises on malformed JSON
    assert list(doc) == TOP, (name, list(doc))
    assert list(doc["fields"]) == KEYS, name
    assert doc["returned_length"] == length, name
    expect_layout = ("none" if length < 16 else "original" if length < 0x40
                     else "aero" if length < 0x48 else "extended")
    assert doc["layout"] == expect_layout, (name, doc["layout"])
    for k, v in doc["fields"].items():
        assert v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64), (name, k, v)
    absent = [k for k, v in doc["fields"].items() if v is None]
    assert doc["absent_fields"] == absent, name
    assert doc["complete"] == (not absent), name
    assert (doc["features"] is None) == (doc["fields"]["negotiated_features"] is None), name
    if doc["features"] is not None:
        f = doc["features"]
        assert int(f["hex"], 16) == doc["fields"]["negotiated_features"], name
        assert all(isinstance(n, str) for n in f["names"]) and all(isinstance(b, int) for b in f["unknown_bits"])
    if derived_keys is None:
        derived_keys = list(doc["derived"])
    assert list(doc["derived"]) == derived_keys, name
    for k, v in doc["derived"].items():
        assert v is None or isinstance(v, (int, float)), (name, k, v)
    assert all(isinstance(n, str) for n in doc["notes"]), name
print(f"{len(files)} JSON documents parsed; {len(KEYS)} field keys and {len(derived_keys)} derived keys stable")
PY
