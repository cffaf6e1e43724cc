#!/usr/bin/python3
"""Asks QEMU (over the extra QMP monitor of tests/diag/qemu-extra-qmp.sh) which virtio
features its virtio-blk device offered and which the driver wrote and the device accepted.

usage: qmp_virtio_status.py SOCKET OUT.json [TIMEOUT_S]

Waits (bounded) for the socket, then polls `x-query-virtio-status` (QEMU >= 7.2) until the
device status has DRIVER_OK, and writes {"guest_features": N, "host_features": N,
"status": [...], "path": ...} to OUT.json. `guest-features` is QEMU's
VirtIODevice.guest_features: what virtio_set_features() accepted at FEATURES_OK
(virtio 3.1.1), i.e. the features the device accepted. QEMU reports them as names; they
are mapped back to bit numbers here (virtio 5.2.3 and 6), unknown ones via
`unknown-dev-features`. Exit 0 on success, 1 with a message on stderr otherwise.
"""
import json
import socket
import sys
import time

BITS = {
    # block device (virtio 5.2.3); QEMU decodes bit 30 (legacy BAD_FEATURE) as this name
    "VIRTIO_BLK_F_BARRIER": 0, "VIRTIO_BLK_F_SIZE_MAX": 1, "VIRTIO_BLK_F_SEG_MAX": 2,
    "VIRTIO_BLK_F_GEOMETRY": 4, "VIRTIO_BLK_F_RO": 5, "VIRTIO_BLK_F_BLK_SIZE": 6,
    "VIRTIO_BLK_F_SCSI": 7, "VIRTIO_BLK_F_FLUSH": 9, "VIRTIO_BLK_F_TOPOLOGY": 10,
    "VIRTIO_BLK_F_CONFIG_WCE": 11, "VIRTIO_BLK_F_MQ": 12, "VIRTIO_BLK_F_DISCARD": 13,
    "VIRTIO_BLK_F_WRITE_ZEROES": 14, "VIRTIO_BLK_F_LIFETIME": 15,
    "VIRTIO_BLK_F_SECURE_ERASE": 16, "VIRTIO_BLK_F_ZONED": 17,
    "VHOST_USER_F_PROTOCOL_FEATURES": 30, "VHOST_F_LOG_ALL": 26,
    # transport (virtio 6)
    "VIRTIO_F_NOTIFY_ON_EMPTY": 24, "VIRTIO_F_ANY_LAYOUT": 27,
    "VIRTIO_RING_F_INDIRECT_DESC": 28, "VIRTIO_RING_F_EVENT_IDX": 29,
    "VIRTIO_F_VERSION_1": 32, "VIRTIO_F_IOMMU_PLATFORM": 33, "VIRTIO_F_ACCESS_PLATFORM": 33,
    "VIRTIO_F_RING_PACKED": 34, "VIRTIO_F_IN_ORDER": 35, "VIRTIO_F_ORDER_PLATFORM": 36,
    "VIRTIO_F_SR_IOV": 37, "VIRTIO_F_NOTIFICATION_DATA": 38, "VIRTIO_F_RING_RESET": 40,
}


class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QMP socket {path} never appeared")
                time.sleep(0.02)
        self.s.settimeout(max(1.0, deadline - time.monotonic()))
        self.buf = b""
        self.read()                                   # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")
            # events are skipped


def bits(feat):
    """QEMU's decoded feature lists -> a bit mask."""
    v = int(feat.get("unknown-dev-features", 0))
    for group in ("dev-features", "transports"):
        for text in feat.get(group, []):
            name = text.split(":", 1)[0].strip()
            if name not in BITS:
                raise RuntimeError(f"unknown feature name from QEMU: {text!r}")
            v |= 1 << BITS[name]
    return v


def main():
    sock, out = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    deadline = time.monotonic() + timeout
    q = Qmp(sock, deadline)
    devs = [d for d in q.cmd("x-query-virtio") if d.get("name") == "virtio-blk"]
    if len(devs) != 1:
        raise RuntimeError(f"expected one virtio-blk device, QEMU lists {devs}")
    path = devs[0]["path"]
    while True:
        st = q.cmd("x-query-virtio-status", path=path)
        status = [s.split(":", 1)[0] for s in st["status"]["statuses"]]
        if "VIRTIO_CONFIG_S_DRIVER_OK" in status:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"device never reached DRIVER_OK (status {status})")
        time.sleep(0.02)
    res = {"path": path, "status": status,
           "guest_features": bits(st["guest-features"]),
           "host_features": bits(st["host-features"]),
           "backend_features": bits(st["backend-features"])}
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:                       # noqa: BLE001 - one message, exit 1
        print(f"qmp_virtio_status: {e}", file=sys.stderr)
        sys.exit(1)
