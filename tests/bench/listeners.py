#!/usr/bin/env python3
"""Open N HTTP listeners on URL, read for SECONDS, report time to first audio byte and bytes.

usage: listeners.py URL N SECONDS
prints: listeners: n=N connected=C got_audio=A ttfb_ms_p50=X ttfb_ms_p99=Y bytes=B
"""
import selectors, socket, sys, time
from urllib.parse import urlparse

url, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
u = urlparse(url)
req = ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: framecast-bench\r\n\r\n" % (u.path, u.netloc)).encode()
sel = selectors.DefaultSelector()
state = {}
t_start = time.monotonic()
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((u.hostname, u.port))
    sel.register(s, selectors.EVENT_WRITE, i)
    state[i] = {"sock": s, "t0": time.monotonic(), "sent": False, "hdr": b"", "ttfb": None, "bytes": 0}
connected = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    for key, ev in sel.select(timeout=0.2):
        st = state[key.data]
        s = st["sock"]
        if not st["sent"]:
            try:
                s.send(req)
            except OSError:
                sel.unregister(s); continue
            st["sent"] = True
            connected += 1
            sel.modify(s, selectors.EVENT_READ, key.data)
            continue
        try:
            d = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            d = b""
        if not d:
            sel.unregister(s); continue
        if st["ttfb"] is None:
            st["hdr"] += d
            if b"\r\n\r\n" in st["hdr"]:
                body = st["hdr"].split(b"\r\n\r\n", 1)[1]
                if body:
                    st["ttfb"] = time.monotonic() - st["t0"]
                    st["bytes"] += len(body)
                st["hdr"] = b"\r\n\r\n" if not body else b""
            continue
        st["bytes"] += len(d)
ttfb = sorted(v["ttfb"] for v in state.values() if v["ttfb"] is not None)
def pct(p):
    return ttfb[min(len(ttfb) - 1, int(p * len(ttfb)))] * 1000 if ttfb else -1
print("listeners: n=%d connected=%d got_audio=%d ttfb_ms_p50=%.1f ttfb_ms_p99=%.1f bytes=%d" % (
    n, connected, len(ttfb), pct(0.5), pct(0.99), sum(v["bytes"] for v in state.values())))
