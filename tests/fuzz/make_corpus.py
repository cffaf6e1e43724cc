#!/usr/bin/python3
"""Writes the seed corpus of fuzz_scsi (tests/fuzz/corpus/): one input per command
family, laid out exactly as LLVMFuzzerTestOneInput reads it. Re-run after changing
the input layout:  /usr/bin/python3 tests/fuzz/make_corpus.py"""
import os, struct

F = {'SIZE_MAX': 0, 'SEG_MAX': 1, 'GEOMETRY': 2, 'RO': 3, 'BLK_SIZE': 4, 'FLUSH': 5,
     'TOPOLOGY': 6, 'CONFIG_WCE': 7, 'DISCARD': 8, 'WRITE_ZEROES': 9, 'INDIRECT': 10}

def seed(cdb, features=(), capacity=1 << 21, bs_exp=0, dtl=0, param=b'', flags=0,
         sense=18, sg=None, stages=(0, 0), ua=False, big=False, function=None, rw=False,
         get_id=False):
    fmask = sum(1 << F[f] for f in features)
    shape = (1 if big else 0) | (4 if ua else 0)
    b = struct.pack('<HB', fmask, shape)
    b += struct.pack('<Q', capacity) if big else struct.pack('<I', capacity)
    b += bytes([bs_exp])
    if 'SIZE_MAX' in features: b += struct.pack('<H', 3584)       # size_max 4096
    b += bytes([126, 0, 0]) + struct.pack('<HI', 1, 0) + bytes([1])
    if 'DISCARD' in features: b += struct.pack('<IBH', 65536, 3, 8)   # seg 4
    if 'WRITE_ZEROES' in features: b += struct.pack('<IB', 65536, 1)  # seg 2
    b += bytes([126]) + bytes([124]) + struct.pack('<I', 0x1234)      # 125 pages
    sflags = 0x02 | (0x10 if dtl >= 65536 else 0)
    if not param: sflags |= 0x20
    if sg is None and not rw and dtl == 0: sflags |= 0x80
    if function is not None: sflags = (sflags & ~7) | 0
    b += bytes([sflags])
    if function is not None: b += bytes([function])
    cdb = bytes(cdb) + bytes(16 - len(cdb))
    b += bytes([{0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(cdb[0] >> 5, 16)])
    b += cdb + struct.pack('<I', flags)
    b += struct.pack('<I', dtl) if dtl >= 65536 else struct.pack('<H', dtl)
    if not rw and dtl:
        b += param
    b += bytes([sense])
    if not (sflags & 0x80):
        sg = sg or []
        b += bytes([len(sg)])
        for length in sg:
            b += bytes([200]) + struct.pack('<I', length) + struct.pack('<H', 0x1000)
    for st in stages:
        b += bytes([st]) + (b'QEMU-SERIAL-00000001' if get_id else b'')
    return b

DIN, DOUT = 0x40, 0x80
seeds = {
    'tur': seed([0x00]),
    'tur_ua': seed([0x00], ua=True),
    'inquiry': seed([0x12, 0, 0, 0, 96], dtl=96, flags=DIN),
    'vpd00': seed([0x12, 1, 0x00, 0, 255], dtl=255, flags=DIN, features=('DISCARD',)),
    'vpd80': seed([0x12, 1, 0x80, 0, 255], dtl=255, flags=DIN, get_id=True),
    'vpd83': seed([0x12, 1, 0x83, 0, 255], dtl=255, flags=DIN, stages=(2,), get_id=True),
    'vpd83_id': seed([0x12, 1, 0x83, 0, 255], dtl=255, flags=DIN, get_id=True),
    'vpdb0': seed([0x12, 1, 0xB0, 0, 255], dtl=255, flags=DIN, features=('DISCARD', 'WRITE_ZEROES', 'TOPOLOGY')),
    'vpdb2': seed([0x12, 1, 0xB2, 0, 255], dtl=255, flags=DIN, features=('DISCARD',)),
    'readcap10': seed([0x25], dtl=8, flags=DIN),
    'readcap16': seed([0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32], dtl=32, flags=DIN,
                      big=True, capacity=(5 << 32) + 3, features=('TOPOLOGY', 'DISCARD')),
    'read10': seed([0x28, 0, 0, 0, 0, 8, 0, 0, 8], dtl=4096, flags=DIN, sg=[4096], rw=True),
    'read10_4k': seed([0x28, 0, 0, 0, 0, 8, 0, 0, 2], dtl=8192, flags=DIN, sg=[4096, 4096], bs_exp=3, rw=True),
    'read16_huge': seed([0x88, 0, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1], dtl=512, flags=DIN,
                        sg=[512], big=True, capacity=5 << 32, rw=True),
    'write10_fua': seed([0x2A, 0x08, 0, 0, 0, 1, 0, 0, 1], dtl=512, flags=DOUT, sg=[512],
                        features=('FLUSH',), rw=True),
    'write6': seed([0x0A, 0, 0, 1, 4], dtl=2048, flags=DOUT, sg=[1024, 1024], rw=True),
    'write_sizemax': seed([0x2A, 0, 0, 0, 0, 0, 0, 0, 32], dtl=16384, flags=DOUT, sg=[16384],
                          features=('SIZE_MAX',), rw=True),
    'writeverify': seed([0x2E, 0, 0, 0, 0, 1, 0, 0, 1], dtl=512, flags=DOUT, sg=[512],
                        features=('FLUSH',), rw=True),
    'verify16': seed([0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
    'synccache': seed([0x35], features=('FLUSH',)),
    'flush_srb': seed([0], features=('FLUSH',), function=0x08),
    'modesense6': seed([0x1A, 0, 0x3F, 0, 192], dtl=192, flags=DIN, features=('FLUSH', 'CONFIG_WCE')),
    'modesense10': seed([0x5A, 0x10, 0x08, 0, 0, 0, 0, 0, 255], dtl=255, flags=DIN, big=True,
                        capacity=5 << 32),
    'modeselect6': seed([0x15, 0x10, 0, 0, 24], dtl=24, flags=DOUT, features=('FLUSH', 'CONFIG_WCE'),
                        param=bytes([0, 0, 0, 0, 0x08, 0x12]) + bytes(18)),
    'unmap': seed([0x42, 0, 0, 0, 0, 0, 0, 0, 24], dtl=24, flags=DOUT, features=('DISCARD',),
                  param=bytes([0, 22, 0, 16, 0, 0, 0, 0]) + bytes([0] * 7 + [10]) + bytes([0, 0, 0, 4]) + bytes(4)),
    'writesame16': seed([0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 8], dtl=512, flags=DOUT,
                        features=('WRITE_ZEROES', 'DISCARD'), param=bytes(512)),
    'report_luns': seed([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16], dtl=16, flags=DIN),
    'request_sense': seed([0x03, 0, 0, 0, 18], dtl=18, flags=DIN, ua=True),
    'start_stop': seed([0x1B, 0, 0, 0, 0], features=('FLUSH',)),
    'readonly_write': seed([0x2A, 0, 0, 0, 0, 1, 0, 0, 1], dtl=512, flags=DOUT, sg=[512],
                           features=('RO',), rw=True),
    'unknown': seed([0x4D]),
}
d = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
os.makedirs(d, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)
print(f"{len(seeds)} seeds in {d}")
