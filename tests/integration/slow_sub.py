#!/usr/bin/env python3
"""usage: slow_sub.py HOST:PORT KEYFILE SECONDS DIR

A deliberately slow relay subscriber (wire protocol v1, docs/architecture.md §2), for
relay_handoff.sh: with a 4 KiB receive buffer it reads SLOW_SUB_RATE bytes a second (default
1000), far less than a 128 kbit/s stream brings, so the relay's catch-up burst and what follows
pile up in the relay's send queue (a message partly written at its head) - the state a handoff
must carry over. Once DIR/split2 appears (after the handoff) it reads as fast as it can, through
everything the old relay had queued and the new one sent after it.

It sends HELLO and SUBSCRIBE (every mount), a HEARTBEAT every second, and checks every message
it receives: the length prefix, the tag (keyed BLAKE2b-128 = libsodium crypto_generichash) and,
for FRAMEs, that each stream's seq is the previous one + 1 (no gap, no repeat).

Unread-input check: when DIR/split1 appears it writes the first half of a HEARTBEAT and creates
DIR/split1.ack; when DIR/split2 appears, the rest. A relay that lost the half it had read breaks
the framing and closes the link.

Writes DIR/report: "frames=N gaps=G repeats=R bad_tags=B streams=S eof=E first=F" (F: the
seq of the first FRAME, -1 without) and exits 0 after
SECONDS, 1 if the relay closed the connection or broke the framing.
"""
import hashlib, os, socket, struct, sys, time

hostport, keyfile, secs, d = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
host, port = hostport.rsplit(":", 1)
key = bytes.fromhex(open(keyfile).read().strip())
RATE = int(os.environ.get("SLOW_SUB_RATE", "1000"))  # bytes/s read until split2
FAST = 1 << 20
TICK = 0.05

def tag(body):
    return hashlib.blake2b(body, digest_size=16, key=key).digest()

def msg(body):
    m = body + tag(body)
    return struct.pack(">I", len(m)) + m

def mp_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b

hello = bytes([0x95, 1, 0]) + mp_str("edge") + mp_str("slow-sub") + bytes([0x91]) + mp_str("resume")
subscribe = bytes([0x94, 1, 2, 0x90, 0x90])
def heartbeat():
    return msg(bytes([0x93, 1, 3, 0xcf]) + struct.pack(">Q", int(time.time() * 1e6)))

def mp_read(b, i):
    """(value, next index) of one msgpack str or unsigned int at b[i] (enough for FRAME ids)."""
    t = b[i]
    if t <= 0x7f: return t, i + 1
    if 0xa0 <= t <= 0xbf: n = t & 31; return b[i + 1:i + 1 + n], i + 1 + n
    if t == 0xd9: n = b[i + 1]; return b[i + 2:i + 2 + n], i + 2 + n
    if t == 0xcc: return b[i + 1], i + 2
    if t == 0xcd: return struct.unpack_from(">H", b, i + 1)[0], i + 3
    if t == 0xce: return struct.unpack_from(">I", b, i + 1)[0], i + 5
    if t == 0xcf: return struct.unpack_from(">Q", b, i + 1)[0], i + 9
    raise ValueError("msgpack type 0x%02x" % t)

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((host, int(port)))
s.sendall(msg(hello) + msg(subscribe))
s.setblocking(False)

frames = gaps = repeats = bad_tags = 0
first = -1
last = {}
buf = b""
eof = 0
t0 = time.monotonic()
next_beat = t0 + 1
split = 0   # 0 none, 1 first half sent, 2 done
pending_hb = b""

def report(code):
    with open(os.path.join(d, "report"), "w") as f:
        f.write("frames=%d gaps=%d repeats=%d bad_tags=%d streams=%d eof=%d first=%d\n"
                % (frames, gaps, repeats, bad_tags, len(last), eof, first))
    sys.exit(code)

def run():
    global buf, next_beat, split, pending_hb, frames, gaps, repeats, bad_tags, eof, first
    while time.monotonic() - t0 < secs:
        now = time.monotonic()
        if split == 0 and os.path.exists(os.path.join(d, "split1")):
            pending_hb = heartbeat()
            s.setblocking(True); s.sendall(pending_hb[:7]); s.setblocking(False)
            open(os.path.join(d, "split1.ack"), "w").close()
            split = 1
        elif split == 1 and os.path.exists(os.path.join(d, "split2")):
            s.setblocking(True); s.sendall(pending_hb[7:]); s.setblocking(False)
            split = 2
        if now >= next_beat and split != 1:
            s.setblocking(True); s.sendall(heartbeat()); s.setblocking(False)
            next_beat = now + 1
        want = FAST if split == 2 else int(RATE * TICK)
        try:
            if want == 0:
                raise BlockingIOError
            chunk = s.recv(want)
            if not chunk:
                eof = 1
                print("slow_sub: the relay closed the connection", file=sys.stderr)
                report(1)
            buf += chunk
        except BlockingIOError:
            pass
        while len(buf) >= 4:
            n = struct.unpack_from(">I", buf)[0]
            if n <= 16 or n > 65536:
                print("slow_sub: framing broken: length %d" % n, file=sys.stderr)
                report(1)
            if len(buf) < 4 + n:
                break
            m, buf = buf[4:4 + n], buf[4 + n:]
            body, t = m[:-16], m[-16:]
            if tag(body) != t:
                bad_tags += 1
                continue
            if body[0] & 0xf0 != 0x90 or body[2] != 1:
                continue   # not a FRAME
            i = 3
            mount, i = mp_read(body, i); enc, i = mp_read(body, i); _, i = mp_read(body, i)
            session, i = mp_read(body, i); seq, i = mp_read(body, i)
            k = (mount, enc, session)
            if k in last:
                if seq == last[k] + 1: pass
                elif seq <= last[k]: repeats += 1
                else:
                    gaps += 1
                    print("slow_sub: gap %s %d -> %d" % (k, last[k], seq), file=sys.stderr)
            if first < 0:
                first = seq
            last[k] = max(seq, last.get(k, 0))
            frames += 1
        time.sleep(TICK)

try:
    run()
except OSError as e:   # the relay reset the connection
    eof = 1
    print("slow_sub: %s" % e, file=sys.stderr)
    report(1)
report(0 if gaps == 0 and repeats == 0 and bad_tags == 0 else 1)
