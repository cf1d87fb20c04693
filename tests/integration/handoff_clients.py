#!/usr/bin/env python3
"""Listeners for the handoff test (tests/integration/handoff.sh).

  handoff_clients.py PORT MOUNT N SECONDS OUTDIR [OFFSET_S]

Runs N listeners of each kind against an edge for SECONDS: plain (raw audio), ICY (Icy-MetaData: 1,
blocks removed), time-shifted (?offset=OFFSET_S) and HLS (polls the media playlist every
segment/2 and fetches every new segment in media-sequence order, ID3 timestamp tag removed). Each
listener's audio goes to OUTDIR/<kind><i>.mp3. Writes OUTDIR/result.json: per listener the bytes,
whether it ended early (EOF or error before SECONDS), the largest gap between two reads (streams),
missing media sequence numbers and failed requests (HLS). Touches OUTDIR/started once every
stream listener has its response head.
"""
import asyncio, json, os, re, sys, time

PORT, MOUNT, N, SECS, OUT = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
OFFSET = float(sys.argv[6]) if len(sys.argv) > 6 else 8.0
T_END = None
heads = 0


async def stream(kind, i, path, icy):
    global heads
    r = {"kind": kind, "i": i, "bytes": 0, "eof": False, "error": None, "max_gap_s": 0.0, "reads": 0}
    f = open(os.path.join(OUT, "%s%03d.mp3" % (kind, i)), "wb")
    try:
        rd, wr = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), 10)
        hdr = "GET %s HTTP/1.0\r\nHost: x\r\n%s\r\n" % (path, "Icy-MetaData: 1\r\n" if icy else "")
        wr.write(hdr.encode())
        head = await asyncio.wait_for(rd.readuntil(b"\r\n\r\n"), 10)
        heads += 1
        metaint = int(re.search(rb"(?i)icy-metaint:\s*(\d+)", head).group(1)) if icy else 0
        left, pend = metaint, b""
        last = time.monotonic()
        while time.time() < T_END:
            try:
                chunk = await asyncio.wait_for(rd.read(65536), max(0.1, T_END - time.time()))
            except asyncio.TimeoutError:
                break
            now = time.monotonic()
            if not chunk:
                r["eof"] = True
                break
            if now - last > r["max_gap_s"]:
                r["max_gap_s"] = now - last
                r["gap_end"] = round(time.time(), 3)
            last = now
            r["reads"] += 1
            if not icy:
                f.write(chunk)
                r["bytes"] += len(chunk)
                continue
            pend += chunk
            while pend:
                if left > 0:
                    take = min(left, len(pend))
                    f.write(pend[:take]); r["bytes"] += take
                    pend = pend[take:]; left -= take
                    continue
                k = pend[0] * 16
                if len(pend) < 1 + k:
                    break
                pend = pend[1 + k:]
                left = metaint
        r["max_gap_s"] = round(max(r["max_gap_s"], time.monotonic() - last) if not r["eof"] else r["max_gap_s"], 3)
        wr.close()
    except Exception as e:  # noqa: BLE001 - every failure is a result
        r["error"] = repr(e)
    f.close()
    return r


async def get(path):
    rd, wr = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), 10)
    wr.write(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
    data = await asyncio.wait_for(rd.read(-1), 10)
    wr.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def strip_id3(b):
    if b[:3] == b"ID3" and len(b) >= 10:
        size = (b[6] << 21) | (b[7] << 14) | (b[8] << 7) | b[9]
        return b[10 + size:]
    return b


async def hls(i, seg_s):
    r = {"kind": "hls", "i": i, "bytes": 0, "eof": False, "error": None, "segments": 0, "missing": [], "failed": 0}
    f = open(os.path.join(OUT, "hls%03d.mp3" % i), "wb")
    want = None
    await asyncio.sleep((i % 20) * seg_s / 40)  # spread the polls
    while time.time() < T_END:
        try:
            st, body = await get("/%s.m3u8" % MOUNT)
            if st != 200:
                r["failed"] += 1
            else:
                text = body.decode()
                seq = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
                uris = [l for l in text.splitlines() if l and not l.startswith("#")]
                for k, uri in enumerate(uris):
                    n = seq + k
                    if want is None:
                        want = seq + len(uris) - 2 if len(uris) >= 2 else seq  # start near live
                    if n < want:
                        continue
                    if n > want:
                        r["missing"].extend(range(want, n))
                    path = uri if uri.startswith("/") else re.sub(r"^https?://[^/]+", "", uri)
                    if not path.startswith("/"):
                        path = "/" + path
                    st2, seg = await get(path)
                    if st2 != 200:
                        r["failed"] += 1
                        continue
                    seg = strip_id3(seg)
                    f.write(seg); r["bytes"] += len(seg); r["segments"] += 1
                    want = n + 1
        except Exception as e:  # noqa: BLE001
            r["failed"] += 1
            r["error"] = repr(e)
        await asyncio.sleep(seg_s / 2)
    f.close()
    return r


async def main():
    global T_END
    T_END = time.time() + SECS
    seg_s = float(os.environ.get("HLS_SEG_S", "2"))
    tasks = []
    for i in range(N):
        tasks.append(stream("plain", i, "/%s" % MOUNT, False))
        tasks.append(stream("icy", i, "/%s" % MOUNT, True))
        tasks.append(stream("offset", i, "/%s?offset=%g" % (MOUNT, OFFSET), False))
        tasks.append(hls(i, seg_s))

    async def started():
        while heads < 3 * N and time.time() < T_END:
            await asyncio.sleep(0.1)
        open(os.path.join(OUT, "started"), "w").write(str(heads))

    res = await asyncio.gather(started(), *tasks)
    json.dump(res[1:], open(os.path.join(OUT, "result.json"), "w"))


asyncio.run(main())
