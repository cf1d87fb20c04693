#!/usr/bin/env python3
"""Listeners with known start and stop times for tests/integration/analytics_sessions.sh.

  analytics_sessions.py PORT MOUNT OUT.json [plain-only]

Plain and ICY listeners start one per second and stop 6 s later; two time-shifted ones
(?offset=6) and a short one (0.4 s); three HLS clients poll the mount's playlist every second for
10 s and fetch each new segment: one sends X-Playback-Session-Id, one ?sid=, one neither. Each
client's start, stop, bytes received (everything read from the socket) and, for HLS, the segments
it fetched whole are written to OUT.json. With "plain-only": two plain listeners only.
"""
import asyncio, json, re, sys, time

PORT, MOUNT, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
PLAIN_ONLY = len(sys.argv) > 4 and sys.argv[4] == "plain-only"
res = []


async def stream(kind, delay, secs, path, icy):
    await asyncio.sleep(delay)
    r = {"kind": kind, "path": path, "bytes": 0}
    rd, wr = await asyncio.open_connection("127.0.0.1", PORT)
    r["start"] = time.time()
    hdr = "GET %s HTTP/1.0\r\nHost: x\r\nUser-Agent: fc-test-%s\r\n%s\r\n" % (
        path, kind, "Icy-MetaData: 1\r\n" if icy else "")
    wr.write(hdr.encode())
    end = time.time() + secs
    while time.time() < end:
        try:
            chunk = await asyncio.wait_for(rd.read(65536), max(0.05, end - time.time()))
        except asyncio.TimeoutError:
            break
        if not chunk:
            r["eof"] = True
            break
        r["bytes"] += len(chunk)
    wr.close()
    r["stop"] = time.time()
    res.append(r)


async def get(path, headers=""):
    rd, wr = await asyncio.open_connection("127.0.0.1", PORT)
    wr.write(("GET %s HTTP/1.0\r\nHost: x\r\nUser-Agent: fc-test-hls\r\n%s\r\n" % (path, headers)).encode())
    data = await asyncio.wait_for(rd.read(-1), 10)
    wr.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, len(data)


async def hls(name, delay, secs, sid_header, sid_query):
    await asyncio.sleep(delay)
    r = {"kind": "hls", "name": name, "bytes": 0, "segments": 0, "start": time.time()}
    hdr = "X-Playback-Session-Id: %s\r\n" % sid_header if sid_header else ""
    q = "?sid=%s" % sid_query if sid_query else ""
    seen = set()
    end = time.time() + secs
    while time.time() < end:
        st, body, n = await get("/%s.m3u8%s" % (MOUNT, q), hdr)
        r["bytes"] += n
        uris = [l for l in body.decode().splitlines() if l and not l.startswith("#")]
        for uri in uris[-2:]:
            if uri in seen:
                continue
            seen.add(uri)
            path = "/" + uri if not uri.startswith("/") else uri
            st2, seg, n2 = await get(path + q, hdr)
            r["bytes"] += n2
            r["segments"] += st2 == 200
        await asyncio.sleep(1.0)
    r["stop"] = time.time()
    res.append(r)


async def main():
    tasks = []
    if PLAIN_ONLY:
        tasks += [stream("plain", i, 4, "/" + MOUNT, False) for i in range(2)]
    else:
        tasks += [stream("plain", i, 6, "/" + MOUNT, False) for i in range(5)]
        tasks += [stream("icy", 0.5 + i, 6, "/" + MOUNT, True) for i in range(3)]
        tasks += [stream("offset", 1.2 + i, 6, "/%s?offset=6" % MOUNT, False) for i in range(2)]
        tasks.append(stream("short", 2.7, 0.4, "/" + MOUNT, False))
        tasks.append(hls("header", 0.2, 10, "ps-header-1", None))
        tasks.append(hls("query", 0.3, 10, None, "sid-query-1"))
        tasks.append(hls("derived", 0.4, 10, None, None))
    await asyncio.gather(*tasks)
    json.dump(res, open(OUT, "w"), indent=1)


asyncio.run(main())
