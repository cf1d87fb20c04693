#!/usr/bin/env python3
"""usage: timed_listen.py URL FILE SECONDS: record URL's body to FILE for SECONDS and log when each
read arrived, for stall_report.py:
  FILE.timeline  a first line "start MS" (CLOCK_MONOTONIC of the request, in ms: the same clock
                 for every listener on this machine), "ms_since_start bytes" per read, then a last
                 line "end MS" (the end of the run), so a stream that stops for good shows as a gap
                 from its last byte to the end;
  FILE.headers   the response head.
ms_since_start counts from the moment the request was sent. Exits 0 after SECONDS; 1 (after writing
"end MS closed" with the planned end) when the server closes the stream early."""
import socket, sys, time
from urllib.parse import urlsplit
url, out, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
u = urlsplit(url)
path = u.path + ("?" + u.query if u.query else "")
s = socket.create_connection((u.hostname, u.port), timeout=5)
s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: fc-timed-listener\r\n\r\n" % (path, u.netloc)).encode())
t0 = time.monotonic(); end = t0 + secs
ms = lambda: int((time.monotonic() - t0) * 1000)
head = b""
while b"\r\n\r\n" not in head:
    c = s.recv(4096)
    if not c:
        sys.exit("connection closed in the response head")
    head += c
head, body = head.split(b"\r\n\r\n", 1)
with open(out + ".headers", "wb") as h:
    h.write(head + b"\r\n\r\n")
status = head.split(b"\r\n")[0]
if b" 200 " not in status or b"chunked" in head.lower():
    sys.exit("unexpected response: %r" % status)
with open(out, "wb", buffering=0) as f, open(out + ".timeline", "w", buffering=1) as tl:
    tl.write("start %.3f\n" % (t0 * 1000))
    def got(b):
        f.write(b); tl.write("%d %d\n" % (ms(), len(b)))
    if body:
        got(body)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            tl.write("end %d closed\n" % (secs * 1000))
            sys.exit("server closed the stream after %.1f s" % (time.monotonic() - t0))
        got(b)
    tl.write("end %d\n" % ms())
