#!/usr/bin/env python3
"""usage: timed_listen.py URL FILE SECONDS: record URL to FILE and log "ms_since_start bytes" per
read to FILE.timeline (so tests can report stalls); exits 0 after SECONDS."""
import socket, sys, time
from urllib.parse import urlsplit
url, out, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
u = urlsplit(url)
s = socket.create_connection((u.hostname, u.port), timeout=5)
s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: fc-timed-listener\r\n\r\n" % (u.path, u.netloc)).encode())
t0 = time.monotonic(); end = t0 + secs
head = b""
while b"\r\n\r\n" not in head:
    c = s.recv(4096)
    if not c:
        sys.exit("connection closed in the response head")
    head += c
head, body = head.split(b"\r\n\r\n", 1)
status = head.split(b"\r\n")[0]
if b" 200 " not in status or b"chunked" in head.lower():
    sys.exit("unexpected response: %r" % status)
with open(out, "wb", buffering=0) as f, open(out + ".timeline", "w", buffering=1) as tl:
    def got(b):
        f.write(b); tl.write("%d %d\n" % ((time.monotonic() - t0) * 1000, len(b)))
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
            sys.exit("server closed the stream after %.1f s" % (time.monotonic() - t0))
        got(b)
