#!/usr/bin/env python3
"""Helpers of tests/integration/preroll.sh.

  preroll_tools.py vast PORT DIR MEDIA
      A VAST ad server on 127.0.0.1:PORT. GET /vast answers as DIR/mode says: "good" (a VAST 3
      InLine ad, AdTitle "Test Ad", one audio/mpeg MediaFile /media/ad.mp3 after a video one,
      two Impression URLs /imp/1 and /imp/2), "slow" (the good answer after 3.5 s), "broken"
      (not well-formed XML), "empty" (a VAST without ads). /media/ad.mp3 is the file MEDIA.
      Wrapper chains (VAST 3.0 §2.4.1, 4.1 §3.4), each level with its own Impression URLs:
        "wrapper": /vast (a VAST 4.1 Wrapper in the IAB namespace, impressions /imp/w1a and
          /imp/w1b) -> /wrap/2 (VAST 3.0 Wrapper, /imp/w2) -> /wrap/inline (InLine "Wrapped
          Ad", /imp/i1, MediaFile /media/wad.mp3: MEDIA again, under a URL not yet cached);
        "loop": /vast -> /loop/a -> /loop/b -> /loop/a ... (Wrappers, impressions /imp/loop);
        "deep K": /vast -> /deep/1?end=K -> /deep/2?end=K ... each a Wrapper (impression
          /imp/dK-N, N = 0 for /vast) until /deep/K?end=K, an InLine (/imp/dK-in,
          /media/ad.mp3): K Wrappers before the InLine;
        "nofollow": /vast, a Wrapper with followAdditionalWrappers="false" (/imp/nf) -> /wrap/2;
        "wslow": /vast -> /wslow/2 -> /wslow/inline, each answered after 0.8 s (2.4 s in all).
      Every request is appended to DIR/requests as "PATH" lines.

  preroll_tools.py listen PORT URLPATH UA ICY SECONDS OUT
      One listener: GET URLPATH with User-Agent UA (and Icy-MetaData: 1 if ICY is 1), read for
      SECONDS; writes OUT.head (response head), OUT.audio (the body, ICY blocks taken out),
      OUT.titles (one line per non-empty ICY block: audio byte offset, TAB, StreamTitle),
      OUT.ttfb (seconds from connect to the first body byte).

  preroll_tools.py check REF CLIP|none AUDIO MIN_LIVE_FRAMES
      AUDIO must be exactly CLIP's bytes (if not "none") followed by whole MP3 frames from its
      very first byte (a frame boundary) that are a contiguous run of REF's frames, at least
      MIN_LIVE_FRAMES of them. Prints one line: "check: clip=N bytes live_frames=M at=K" (exit 0)
      or "check: FAIL ..." (exit 1).
"""
import http.server
import os
import socket
import socketserver
import sys
import time

BITRATES = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
RATES = [44100, 48000, 32000]


def mp3_frames(b):
    """Whole MPEG-1 Layer III frames from offset 0, no resync: (frames, bytes consumed, error)."""
    out, i = [], 0
    while i + 4 <= len(b):
        h = b[i:i + 4]
        if h[0] != 0xFF or (h[1] & 0xFE) != 0xFA or (h[2] >> 4) in (0, 15) or (h[2] >> 2) & 3 == 3:
            return out, i, "no MP3 frame header at byte %d" % i
        n = 144 * BITRATES[h[2] >> 4] * 1000 // RATES[(h[2] >> 2) & 3] + ((h[2] >> 1) & 1)
        if i + n > len(b):
            break  # the last frame, cut off when the listener stopped reading
        out.append(b[i:i + n])
        i += n
    return out, i, None


def check(ref_path, clip_path, audio_path, min_live):
    audio = open(audio_path, "rb").read()
    clip = b"" if clip_path == "none" else open(clip_path, "rb").read()
    if audio[:len(clip)] != clip:
        for k in range(min(len(clip), len(audio))):
            if audio[k] != clip[k]:
                break
        else:
            k = min(len(clip), len(audio))
        print("check: FAIL the clip's bytes differ at byte %d of %d (got %d bytes)" %
              (k, len(clip), len(audio)))
        return 1
    live = audio[len(clip):]
    frames, used, err = mp3_frames(live)
    if err:
        print("check: FAIL live part: %s (after %d whole frames)" % (err, len(frames)))
        return 1
    ref, _, _ = mp3_frames(open(ref_path, "rb").read())
    if not frames:
        print("check: FAIL no live frame after the clip")
        return 1
    starts = [k for k, f in enumerate(ref) if f == frames[0]]
    best = 0
    for k in starts:
        n = 0
        while n < len(frames) and k + n < len(ref) and ref[k + n] == frames[n]:
            n += 1
        if n == len(frames):
            print("check: clip=%d bytes live_frames=%d at=%d" % (len(clip), n, k))
            if n < min_live:
                print("check: FAIL fewer than %d live frames" % min_live)
                return 1
            return 0
        best = max(best, n)
    print("check: FAIL live frames not a contiguous run of the source (first frame found %d "
          "times, best run %d of %d)" % (len(starts), best, len(frames)))
    return 1


def listen(port, path, ua, icy, secs, out):
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = "GET %s HTTP/1.0\r\nHost: x\r\nUser-Agent: %s\r\n" % (path, ua)
    if icy:
        req += "Icy-MetaData: 1\r\n"
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, data = buf.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in buf else (buf, b"")
    ttfb = time.time() - t0 if data else None
    end = time.time() + secs
    s.settimeout(0.5)
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        if ttfb is None:
            ttfb = time.time() - t0
        data += chunk
    s.close()
    open(out + ".head", "wb").write(head)
    open(out + ".ttfb", "w").write("%.3f\n" % (ttfb if ttfb is not None else -1))
    audio, titles = bytearray(), []
    metaint = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"icy-metaint:"):
            metaint = int(line.split(b":", 1)[1])
    if not icy or not metaint:
        audio = data
    else:
        i, left = 0, metaint
        while i < len(data):
            take = min(left, len(data) - i)
            audio += data[i:i + take]
            i += take
            left -= take
            if left > 0 or i >= len(data):
                break
            n = data[i] * 16
            if i + 1 + n > len(data):
                break
            text = data[i + 1:i + 1 + n].rstrip(b"\0").decode("utf-8", "replace")
            if n:
                title = text.split("StreamTitle='", 1)[1].split("';", 1)[0] \
                    if "StreamTitle='" in text else "?" + text
                titles.append("%d\t%s" % (len(audio), title))
            i += 1 + n
            left = metaint
    open(out + ".audio", "wb").write(bytes(audio))
    open(out + ".titles", "w").write("".join(t + "\n" for t in titles))


GOOD = """<?xml version="1.0" encoding="UTF-8"?>
<VAST version="3.0">
 <Ad id="1"><InLine>
  <AdSystem>fixture</AdSystem>
  <AdTitle>Test Ad</AdTitle>
  <Impression><![CDATA[http://127.0.0.1:%(port)d/imp/1]]></Impression>
  <Impression>http://127.0.0.1:%(port)d/imp/2?a=1&amp;b=2</Impression>
  <Creatives><Creative><Linear>
   <Duration>00:00:02</Duration>
   <MediaFiles>
    <MediaFile delivery="progressive" type="video/mp4" width="640" height="360">
      http://127.0.0.1:%(port)d/media/ad.mp4</MediaFile>
    <MediaFile delivery="progressive" type="audio/mpeg" bitrate="128">
      <![CDATA[http://127.0.0.1:%(port)d/media/ad.mp3]]>
    </MediaFile>
   </MediaFiles>
  </Linear></Creative></Creatives>
 </InLine></Ad>
</VAST>
"""


WRAPPER = """<?xml version="1.0" encoding="UTF-8"?>
<VAST version="%(version)s"%(ns)s>
 <Ad id="w"><Wrapper%(attrs)s>
  <AdSystem>fixture wrapper</AdSystem>
  <VASTAdTagURI><![CDATA[ %(next)s ]]></VASTAdTagURI>
  %(imps)s
  <Creatives/>
 </Wrapper></Ad>
</VAST>
"""

INLINE = """<?xml version="1.0" encoding="UTF-8"?>
<VAST version="3.0">
 <Ad id="i"><InLine>
  <AdSystem>fixture</AdSystem>
  <AdTitle>%(title)s</AdTitle>
  %(imps)s
  <Creatives><Creative><Linear>
   <Duration>00:00:02</Duration>
   <MediaFiles>
    <MediaFile delivery="progressive" type="audio/mpeg">%(media)s</MediaFile>
   </MediaFiles>
  </Linear></Creative></Creatives>
 </InLine></Ad>
</VAST>
"""


def impressions(port, paths):
    return "".join("<Impression>http://127.0.0.1:%d%s</Impression>" % (port, p) for p in paths)


def wrapper(port, nxt, imps, version="3.0", ns="", attrs=""):
    return WRAPPER % {"version": version, "ns": ns, "attrs": attrs, "imps": impressions(port, imps),
                      "next": "http://127.0.0.1:%d%s" % (port, nxt)}


def inline(port, title, media, imps):
    return INLINE % {"title": title, "imps": impressions(port, imps),
                     "media": "http://127.0.0.1:%d%s" % (port, media)}


def chain(port, path, mode):
    """The answer of a Wrapper-chain path (mode: DIR/mode, for /vast), or None."""
    if path == "/vast" and mode == "wrapper":
        return wrapper(port, "/wrap/2", ["/imp/w1a", "/imp/w1b"], version="4.1",
                       ns=' xmlns="http://www.iab.com/VAST"')
    if path == "/wrap/2":
        return wrapper(port, "/wrap/inline", ["/imp/w2"])
    if path == "/wrap/inline":
        return inline(port, "Wrapped Ad", "/media/wad.mp3", ["/imp/i1"])
    if (path == "/vast" and mode == "loop") or path == "/loop/b":
        return wrapper(port, "/loop/a", ["/imp/loop"])
    if path == "/loop/a":
        return wrapper(port, "/loop/b", ["/imp/loop"])
    if path == "/vast" and mode.startswith("deep "):
        k = int(mode.split()[1])
        return wrapper(port, "/deep/1?end=%d" % k, ["/imp/d%d-0" % k])
    if path.startswith("/deep/"):
        n, k = int(path[6:].split("?")[0]), int(path.split("end=")[1])
        if n >= k:
            return inline(port, "Deep Ad", "/media/ad.mp3", ["/imp/d%d-in" % k])
        return wrapper(port, "/deep/%d?end=%d" % (n + 1, k), ["/imp/d%d-%d" % (k, n)])
    if path == "/vast" and mode == "nofollow":
        return wrapper(port, "/wrap/2", ["/imp/nf"], version="4.0",
                       attrs=' followAdditionalWrappers=" false "')
    if (path == "/vast" and mode == "wslow") or path.startswith("/wslow/"):
        time.sleep(0.8)
        if path == "/wslow/inline":
            return inline(port, "Slow Ad", "/media/ad.mp3", ["/imp/ws-in"])
        return wrapper(port, "/wslow/inline" if path == "/wslow/2" else "/wslow/2",
                       ["/imp/ws"])
    return None


def vast(port, d, media):
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with open(os.path.join(d, "requests"), "a") as f:
                f.write(self.path + "\n")
            mode = open(os.path.join(d, "mode")).read().strip()
            doc = chain(port, self.path, mode)
            if doc is not None:
                try:
                    return self.send(200, "application/xml", doc.encode())
                except (BrokenPipeError, ConnectionResetError):
                    return
            if self.path.startswith("/vast"):
                if mode == "slow":
                    time.sleep(3.5)
                if mode == "broken":
                    return self.send(200, "application/xml", b"<VAST version=\"3.0\"><Ad><InLine>")
                if mode == "empty":
                    return self.send(200, "application/xml", b"<VAST version=\"4.0\"/>")
                try:
                    return self.send(200, "application/xml", (GOOD % {"port": port}).encode())
                except (BrokenPipeError, ConnectionResetError):
                    return
            if self.path in ("/media/ad.mp3", "/media/wad.mp3"):
                return self.send(200, "audio/mpeg", open(media, "rb").read())
            if self.path.startswith("/imp/"):
                return self.send(200, "image/gif", b"GIF89a")
            self.send(404, "text/plain", b"no")

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    S(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "vast":
        vast(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "listen":
        listen(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1",
               float(sys.argv[6]), sys.argv[7])
    elif cmd == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit("unknown command " + cmd)
