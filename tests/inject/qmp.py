#!/usr/bin/python3
"""Minimal QMP client for the aerovblk-vm check: qmp.py SOCKET COMMAND [JSON-ARGS]
prints the command's "return" value as JSON (waits up to 60 s for the socket)."""
import json
import socket
import sys
import time


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    deadline = time.time() + 60
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("qmp.py: cannot connect to %s" % path)
            time.sleep(0.1)
    f = s.makefile("rw")
    json.loads(f.readline())                      # greeting
    for c, a in (("qmp_capabilities", {}), (cmd, args)):
        f.write(json.dumps({"execute": c, "arguments": a}) + "\n")
        f.flush()
        while True:
            msg = json.loads(f.readline())
            if "event" in msg:
                continue
            if "error" in msg:
                sys.exit("qmp.py: %s: %s" % (c, msg["error"].get("desc")))
            break
    print(json.dumps(msg["return"]))


if __name__ == "__main__":
    main()
