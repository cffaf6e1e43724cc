#!/usr/bin/python3
"""Malformed AEROVBLK IOCTL requests against the driver, through the simulator.

The expected outcome of every request is computed here from the rules of
docs/diagnostics.md §3 (the driver's validation order), independently of driver/diag.c:

  1. DataTransferLength < 28 or no buffer  -> SRB_STATUS_INVALID_REQUEST, header untouched
  2. Signature != "AEROVBLK"                -> SRB_STATUS_INVALID_REQUEST, header untouched
  3. HeaderLength < 28 or > DataTransferLength         -> STATUS_INVALID_PARAMETER, Length 0
  4. Length > DataTransferLength - HeaderLength        -> STATUS_INVALID_PARAMETER, Length 0
  5. ControlCode != 0x8000A001                         -> STATUS_NOT_SUPPORTED, Length 0
  6. Length < 16                                       -> STATUS_BUFFER_TOO_SMALL, Length 0
  7. QUERY -> STATUS_SUCCESS, SRB_STATUS_SUCCESS, Length = min(Length, 0x120)
  (3-6: SRB_STATUS_INVALID_REQUEST)

usage:
  malformed.py script OUT.script QUEUE_SIZE
      one simulator script with every case as an `ioctl` step followed by `expect`
      lines (SRB status, ReturnCode, DataTransferLength, and for successes decoded
      fields): one device start runs them all.
  malformed.py each SIM LOG [sim options...]
      runs a representative subset (92 requests) one simulator process each (--json), checking in
      addition what `expect` cannot see: the reply header's Length (0 on errors,
      the whole buffer untouched and nothing transferred on requests not for us, bytes
      copied on success), the reply check,
      the decoded layout and returned length, exit status, findings, sanitizers.
  malformed.py count
      prints the number of cases of `script` mode.
"""
import json
import re
import subprocess
import sys

HDR = 28
QUERY = 0x8000A001
INFO_SIZE = 0x120
SRB_SUCCESS, SRB_INVALID_REQUEST = 0x01, 0x06
STATUS_SUCCESS = 0
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_BUFFER_TOO_SMALL = 0xC0000023
SIG = "AEROVBLK"
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")


class Case:
    """One request: buffer size, and the header fields the simulator sends
    (None = the simulator's default: HeaderLength 28, AEROVBLK, QUERY,
    Length = buffer - 28, the header cut to the buffer when it is shorter)."""

    def __init__(self, label, bufsz, sig=None, hlen=None, length=None, code=None, fill=None):
        self.label, self.bufsz, self.sig, self.hlen, self.length, self.code = label, bufsz, sig, hlen, length, code
        self.fill = fill   # --fill-seed: random buffer contents under the header (no effect on the expected result)

    def header(self):
        sig = SIG if self.sig is None else self.sig
        sig8 = sig.encode()[:8].ljust(8, b"\0")   # the simulator copies at most 8, zero-pads
        # the header fields are 32 bits: the simulator stores the low 32 bits of its option
        hlen = HDR if self.hlen is None else self.hlen & 0xFFFFFFFF
        length = max(self.bufsz - HDR, 0) if self.length is None else self.length & 0xFFFFFFFF
        code = QUERY if self.code is None else self.code & 0xFFFFFFFF
        return sig8, hlen, length, code

    def args(self):
        a = ["ioctl", "--raw", "--buffer-size", str(self.bufsz)]
        if self.sig is not None:
            a += ["--signature", self.sig]
        if self.hlen is not None:
            a += ["--header-length", hex(self.hlen)]
        if self.length is not None:
            a += ["--length", hex(self.length)]
        if self.code is not None:
            a += ["--code", hex(self.code)]
        if self.fill is not None:
            a += ["--fill-seed", str(self.fill)]
        return a

    def expected(self):
        """(srb_status, return_code or None = untouched, reply Length or None = untouched)"""
        sig8, hlen, length, code = self.header()
        if self.bufsz < HDR:
            return SRB_INVALID_REQUEST, None, None
        if sig8 != SIG.encode():
            return SRB_INVALID_REQUEST, None, None
        if hlen < HDR or hlen > self.bufsz:
            return SRB_INVALID_REQUEST, STATUS_INVALID_PARAMETER, 0
        if length > self.bufsz - hlen:
            return SRB_INVALID_REQUEST, STATUS_INVALID_PARAMETER, 0
        if code != QUERY:
            return SRB_INVALID_REQUEST, STATUS_NOT_SUPPORTED, 0
        if length < 16:
            return SRB_INVALID_REQUEST, STATUS_BUFFER_TOO_SMALL, 0
        return SRB_SUCCESS, STATUS_SUCCESS, min(length, INFO_SIZE)


def sweep_cases():
    """Every buffer length 0..128, each with six variants."""
    cases = []
    for b in range(0, 129):
        avail = max(b - HDR, 0)
        cases += [
            Case(f"buffer {b}: defaults", b),
            Case(f"buffer {b}: Length = room + 1", b, length=avail + 1),
            Case(f"buffer {b}: wrong signature", b, sig="AEROVBLX"),
            Case(f"buffer {b}: HeaderLength 27", b, hlen=27),
            Case(f"buffer {b}: HeaderLength = buffer + 1", b, hlen=b + 1),
            Case(f"buffer {b}: unknown code", b, code=0x8000A002),
        ]
    return cases


def special_cases():
    M32 = 0xFFFFFFFF
    return [
        # signatures
        Case("short signature AEROVBL", 128, sig="AEROVBL"),
        Case("empty signature", 128, sig=""),
        Case("lower-case signature", 128, sig="aerovblk"),
        Case("signature AEROVBLK + 9th byte (only 8 are sent: valid)", 128, sig="AEROVBLKX"),
        Case("signature with another miniport's name", 128, sig="SCSIDISK"),
        Case("wrong signature and bad HeaderLength: not ours, untouched", 128, sig="XEROVBLK", hlen=0),
        # HeaderLength lies
        Case("HeaderLength 0", 128, hlen=0),
        Case("HeaderLength 0xFFFFFFFF", 128, hlen=M32),
        Case("HeaderLength 0x80000000", 128, hlen=0x80000000),
        Case("HeaderLength = buffer, Length 0", 128, hlen=128, length=0),
        Case("HeaderLength = buffer, Length 1", 128, hlen=128, length=1),
        Case("HeaderLength 40, Length fits: payload at 40", 128, hlen=40, length=88),
        Case("HeaderLength 40, Length one past the buffer", 128, hlen=40, length=89),
        Case("HeaderLength 112, Length 16: exactly fits", 128, hlen=112, length=16),
        Case("HeaderLength 0xFFFFFFF0 + Length 0x20 wraps to 0x10", 128, hlen=0xFFFFFFF0, length=0x20),
        # Length lies
        Case("Length 0xFFFFFFFF", 128, length=M32),
        Case("Length 0x80000000", 128, length=0x80000000),
        Case("Length 2^32-28: 28 + Length wraps to 0", 128, length=0x100000000 - HDR),
        Case("Length 2^32-27: 28 + Length wraps to 1", 128, length=0x100000000 - HDR + 1),
        Case("Length 15 in a large buffer", 128, length=15),
        Case("Length 16 in a large buffer", 128, length=16),
        Case("Length 17", 128, length=17),
        Case("Length 0x3F (Aero layout minus one)", 128, length=0x3F),
        Case("Length 0x40 (Aero layout)", 128, length=0x40),
        Case("Length 0x47", 128, length=0x47),
        Case("Length 0x48", 128, length=0x48),
        Case("Length 0x11F (one short of the structure)", HDR + 0x11F),
        Case("Length 0x120 (exactly the structure)", HDR + 0x120),
        Case("Length 0x121: copies 0x120", HDR + 0x121),
        Case("buffer 4096, Length 4068: copies 0x120", 4096),
        Case("buffer 4096, Length 100", 4096, length=100),
        # control codes
        Case("control code 0", 128, code=0),
        Case("control code 0x8000A000", 128, code=0x8000A000),
        Case("control code 0x0000A001", 128, code=0x0000A001),
        Case("control code 0xFFFFFFFF", 128, code=M32),
        Case("control code 0x18000A001 is cut to 32 bits: QUERY", 128, code=0x18000A001),
        # validation order
        Case("unknown code with Length < 16: NOT_SUPPORTED first", 128, code=0x1234, length=4),
        Case("unknown code with Length past the buffer: INVALID_PARAMETER first", 128, code=0x1234, length=101),
        Case("unknown code with HeaderLength 27: INVALID_PARAMETER first", 128, code=0x1234, hlen=27),
        Case("27-byte buffer with a whole valid header sent cut", 27, length=16),
    ]


def script_mode(out, queue_size):
    lines = ["# generated by tests/diag/malformed.py: every case, then its expectations"]
    for c in sweep_cases() + special_cases():
        srb, rcode, length = c.expected()
        lines.append(f"# {c.label}")
        # quoted: the script tokeniser groups "..." (an empty signature stays an argument)
        lines.append(" ".join(f'"{a}"' if a == "" or " " in a else a for a in c.args()))
        not_ours = c.bufsz < HDR or rcode is None   # refused, nothing transferred
        exp = [f"srb={srb}", f"len={0 if not_ours else c.bufsz}"]
        # untouched ReturnCode: the simulator sends 0 (and reports 0 for a cut header)
        exp.append(f"return_code={0 if rcode is None else rcode:#x}")
        if srb == SRB_SUCCESS:
            exp.append(f"field.num_free={queue_size}")
            exp.append(f"field.queue_size={queue_size}")
            if length >= 0x1C:
                exp.append("field.message_count=2")
            if length >= 0x48:
                exp.append("field.layout_version=1 field.struct_size=0x120")
            if length >= 0x120:
                exp.append("field.current_in_flight=0")
        lines.append("expect " + " ".join(exp))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def each_cases():
    # every size 0..400 is also covered byte by byte by tests/diag/ioctl_raw.c
    sizes = (0, 1, 8, 16, 27, 28, 29, 36, 43, 44, 45, 60, 91, 92, 99, 100, 128)
    cases = [Case(f"buffer {b}: defaults", b) for b in sizes]
    for b in (0, 27, 28, 43, 44, 64, 128):
        cases += [c for c in sweep_cases() if c.bufsz == b and "defaults" not in c.label]
    return cases + special_cases()


def each_mode(sim, log, extra):
    fails = 0
    cases = each_cases()
    with open(log, "w") as lf:
        for c in cases:
            cmd = [sim, "--json", "--timeout", "30"] + extra + c.args()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            lf.write(f"== {c.label}: {' '.join(cmd)}\n{p.stderr}\n")
            problems = []
            try:
                j = json.loads(p.stdout)
            except ValueError as e:
                j = None
                problems.append(f"no JSON ({e})")
            if p.returncode != 0:
                problems.append(f"exit status {p.returncode}")
            if SANITIZER.search(p.stderr):
                problems.append("sanitizer report on stderr")
            if j is not None:
                if j.get("verifier_findings") != 0:
                    problems.append(f"verifier findings: {j.get('findings')}")
                io = j.get("ioctl", {})
                srb, rcode, length = c.expected()
                sig8, hlen, sent_len, code = c.header()
                if io.get("srb_status") != srb:
                    problems.append(f"srb_status {io.get('srb_status'):#x}, expected {srb:#x}")
                # Not for us (another signature, or no whole header): refused with nothing
                # transferred and the buffer untouched (facts §11.14: an error completion does
                # not claim the buffer); ours: the whole buffer, header carrying the result.
                not_ours = c.bufsz < HDR or rcode is None
                want = 0 if not_ours else c.bufsz
                if io.get("transferred") != want:
                    problems.append(f"DataTransferLength {io.get('transferred')}, expected {want}"
                                    + (" (not for us: nothing transferred)" if not_ours else " (unchanged)"))
                if not_ours and io.get("raw") != io.get("sent"):
                    problems.append("buffer touched although the request was not for us")
                if c.bufsz < HDR:
                    # the reply has no header to decode; nothing was returned
                    if io.get("reply") != "reply shorter than the 28-byte SRB_IO_CONTROL header":
                        problems.append(f"reply {io.get('reply')!r}")
                elif rcode is None:
                    pass   # not for us: compared byte for byte above (--raw)
                else:
                    if io.get("return_code") != rcode:
                        problems.append(f"ReturnCode {io.get('return_code'):#x}, expected {rcode:#x}")
                    if io.get("length") != length:
                        problems.append(f"Length {io.get('length')}, expected {length}")
                if srb == SRB_SUCCESS:
                    qy = io.get("query")
                    layout = "original" if length < 0x40 else "aero" if length < 0x48 else "extended"
                    if io.get("reply") != "ok" or not qy:
                        problems.append(f"reply {io.get('reply')!r}, no decoded query")
                    elif qy["returned_length"] != length or qy["layout"] != layout:
                        problems.append(f"decoded {qy['returned_length']} bytes layout {qy['layout']}, "
                                        f"expected {length} {layout}")
                    elif length >= 0x48 and qy["fields"]["struct_size"] != INFO_SIZE:
                        problems.append(f"StructSize {qy['fields']['struct_size']}")
                elif "query" in io:
                    problems.append("a failed request was decoded as a QUERY reply")
            if problems:
                fails += 1
                print(f"FAIL  {c.label}: {'; '.join(problems)}\n      {' '.join(cmd)}")
    print(f"{len(cases) - fails}/{len(cases)} requests (one process each) as documented")
    return 1 if fails else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "count":
        print(len(sweep_cases()) + len(special_cases()))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "script":
        script_mode(sys.argv[2], int(sys.argv[3], 0))
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "each":
        return each_mode(sys.argv[2], sys.argv[3], sys.argv[4:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
