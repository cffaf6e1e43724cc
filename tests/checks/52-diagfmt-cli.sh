#!/usr/bin/env bash
# Cross-check of the decoder against buffers built by Python's struct module at the
# documented offsets (independent of the C headers), through the host CLI
# out/host/tools/aerovblk-diagfmt: payload decoding of the original (16), Aero (0x40)
# and full layouts, whole SRB_IO_CONTROL replies, rejected replies, and exit codes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cli=out/host/tools/aerovblk-diagfmt
[ -x "$cli" ] || { echo "missing $cli (make $cli)"; exit 1; }
tmp=$(mktemp -d /tmp/diagfmt-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 - "$cli" "$tmp" <<'PY'
import json, struct, subprocess, sys
cli, tmp = sys.argv[1], sys.argv[2]
# (key, struct format, offset) exactly as docs/diagnostics.md lists them.
ABI = [("negotiated_features","Q",0x00),("queue_size","H",0x08),("num_free","H",0x0A),
 ("avail_idx","H",0x0C),("used_idx","H",0x0E),("interrupt_mode","I",0x10),
 ("msix_config_vector","H",0x14),("msix_queue0_vector","H",0x16),("message_count","I",0x18),
 ("flags","I",0x1C),("abort_srb_count","I",0x20),("reset_device_srb_count","I",0x24),
 ("reset_bus_srb_count","I",0x28),("pnp_srb_count","I",0x2C),("ioctl_reset_count","I",0x30),
 ("capacity_change_events","I",0x34),("reset_detected_count","I",0x38),
 ("hw_reset_bus_count","I",0x3C),("layout_version","I",0x40),("struct_size","I",0x44),
 ("capacity_sectors","Q",0x48),("logical_block_size","I",0x50),("seg_max","I",0x54),
 ("size_max","I",0x58),("maximum_transfer_length","I",0x5C)]
for i, t in enumerate(["read","write","flush","discard","write_zeroes","get_id"]):
    ABI.append(("submitted_"+t, "Q", 0x60 + 8*i))
    ABI.append(("completed_"+t, "Q", 0x90 + 8*i))
ABI += [("bytes_read","Q",0xC0),("bytes_written","Q",0xC8),("doorbells_written","Q",0xD0),
 ("doorbells_suppressed","Q",0xD8),("interrupts_queue","Q",0xE0),("interrupts_config","Q",0xE8),
 ("interrupts_spurious","Q",0xF0),("completions_in_interrupts","Q",0xF8),
 ("max_completions_per_interrupt","I",0x100),("busy_completions","I",0x104),
 ("errors_ioerr","I",0x108),("errors_unsupported","I",0x10C),("errors_invalid_request","I",0x110),
 ("errors_out_of_range","I",0x114),("max_in_flight","I",0x118),("current_in_flight","I",0x11C)]
SIZE = 0x120

def payload(n):
    b = bytearray(SIZE); vals = {}
    for i, (k, f, off) in enumerate(ABI):
        width = struct.calcsize(f)
        v = (0x0F1E2D3C4B5A6978 * (i + 3)) & ((1 << (8 * width)) - 1)
        if k == "layout_version": v = 1
        if k == "struct_size": v = SIZE
        if k == "negotiated_features": v = (1 << 32) | (1 << 28) | (1 << 9) | (1 << 2) | (1 << 1)
        struct.pack_into("<" + f, b, off, v); vals[k] = v
    return bytes(b[:n]), vals

def run(data, *args, expect_rc):
    path = f"{tmp}/in.bin"
    open(path, "wb").write(data)
    p = subprocess.run([cli, *args, path], capture_output=True, text=True, timeout=30)
    assert p.returncode == expect_rc, (args, p.returncode, p.stdout[-400:], p.stderr)
    return p

for n, layout, rc in ((16, "original", 5), (0x40, "aero", 5), (SIZE, "extended", 0), (0x70, "extended", 0)):
    data, vals = payload(n)
    doc = json.loads(run(data, "--json", expect_rc=rc).stdout)
    assert doc["layout"] == layout, (n, doc["layout"])
    for k, f, off in ABI:
        present = off + struct.calcsize(f) <= n
        assert doc["fields"][k] == (vals[k] if present else None), (n, k, doc["fields"][k], vals[k])
    assert doc["features"]["names"] == ["SIZE_MAX", "SEG_MAX", "FLUSH", "INDIRECT_DESC", "VERSION_1"], doc["features"]
    text = run(data, expect_rc=rc).stdout
    assert "SIZE_MAX SEG_MAX FLUSH INDIRECT_DESC VERSION_1" in text, text
    print(f"payload {n:#x}: {layout}, {sum(v is not None for v in doc['fields'].values())} fields match")

# A whole reply: SRB_IO_CONTROL header (28 bytes) + payload, Length = bytes copied.
def reply(payload_bytes, length=None, header_length=28, sig=b"AEROVBLK", rc=0, extra=b""):
    length = len(payload_bytes) if length is None else length
    hdr = struct.pack("<I8sIIII", header_length, sig, 10, 0x8000A001, rc, length)
    assert len(hdr) == 28
    return hdr + payload_bytes + extra

full, vals = payload(SIZE)
doc = json.loads(run(reply(full, extra=b"\0" * 64), "--reply", "--json", expect_rc=0).stdout)
assert doc["fields"]["current_in_flight"] == vals["current_in_flight"] and doc["returned_length"] == SIZE
doc = json.loads(run(reply(full[:16], extra=b"\0" * 100), "--reply", "--json", expect_rc=5).stdout)
assert doc["layout"] == "original" and doc["fields"]["interrupt_mode"] is None
for bad, why in ((reply(full, sig=b"AEROVBLX"), "signature"),
                 (reply(full, header_length=20), "HeaderLength"),
                 (reply(b"", rc=0xC0000023), "STATUS_BUFFER_TOO_SMALL"),
                 (reply(full[:8]), "fewer than 16"),
                 (reply(b"\0" * 64), "empty"),
                 (reply(full)[:27], "28-byte")):
    p = run(bad, "--reply", expect_rc=1)
    assert why in p.stderr, (why, p.stderr)
print("replies: good, short and 6 malformed kinds classified")
PY
