#!/usr/bin/env python3
"""Write a --rewind-dir file (edge/core/persist.h format) holding HOURS of synthetic 128 kbit/s
MP3 frames for mount archive.mp3, ending now. Prints the number of frames.
usage: gen_rewind.py FILE HOURS   (benches: bench_workers_mem.sh, bench_handoff.sh)"""
import hashlib, json, struct, sys, time
path, hours = sys.argv[1], float(sys.argv[2])
frame_us = 26122                       # 1152 samples at 44.1 kHz
n = int(hours * 3600e6 / frame_us)
now = int(time.time() * 1e6)
pts0 = now - n * frame_us
def block(t, payload):
    head = struct.pack(">II", t, len(payload))
    return head + hashlib.blake2b(head + payload, digest_size=16).digest() + payload
state = json.dumps({"mount": "archive.mp3", "codec": 1, "out_next_pts_us": pts0 + n * frame_us,
                    "src_end_us": 0, "streams": []}, separators=(",", ":")).encode()
with open(path, "wb") as f:
    f.write(b"FCRW" + struct.pack(">I", 1) + block(1, state))
    buf, acc = bytearray(), 0
    for k in range(n):
        acc += 144 * 128000 % 44100    # padding as an encoder does: 128 kbit/s on average
        pad = 1 if acc >= 44100 else 0
        acc -= 44100 * pad
        ln = 144 * 128000 // 44100 + pad
        fr = bytes([0xFF, 0xFB, 0x92 if pad else 0x90, 0x44]) + (k.to_bytes(8, "big") * 60)[: ln - 4]
        rec = struct.pack(">QII", pts0 + k * frame_us, frame_us, ln) + fr
        if len(buf) + len(rec) > (1 << 20):
            f.write(block(2, bytes(buf))); buf = bytearray()
        buf += rec
    if buf:
        f.write(block(2, bytes(buf)))
print(n)
