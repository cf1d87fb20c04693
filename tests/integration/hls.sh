#!/usr/bin/env bash
# HLS (RFC 8216 packed audio) from two edges fed by the same two relays, --hls-segment 2:
#  (a) ffmpeg decodes /live.mp3.m3u8 and /live.aac.m3u8 for 8 s with no error;
#  (b) both edges (started 3.3 s apart) name and cut segments alike: same names, same bytes;
#  (c) playlist syntax: #EXTM3U first, TARGETDURATION >= every EXTINF rounded, MEDIA-SEQUENCE =
#      the first segment's number and advancing one per segment, consecutive numbers,
#      EXT-X-PROGRAM-DATE-TIME on every segment matching number x length, ?dvr=20 lists ~10;
#  (d) each segment opens with the ID3 PRIV com.apple.streaming.transportStreamTimestamp whose
#      90 kHz value is the segment's PROGRAM-DATE-TIME (mod 2^33), followed by audio frames; the
#      segments of a playlist, concatenated without their tags, are a contiguous run of the source;
#  (e) a segment that left the live playlist is still served, byte-identical, after the RFC 8216
#      §6.2.2 minimum (its duration plus the playlist's);
#  (f) /hls/radio.m3u8 lists both mounts with BANDWIDTH (>= the peak segment bit rate measured)
#      and CODECS (mp4a.40.34 for MP3, mp4a.40.2 for AAC-LC);
#  (g) Cache-Control lets a CDN cache segments and not playlists; HEAD works on all of them.
. "$(dirname "$0")/lib.sh"
set -u
fc_need_bin "$FC_BUILD/framecast-shim" "$FC_BUILD/framecast-relay" "$FC_BUILD/framecast-edge" \
  "$FC_BUILD/tools/framecmp"
SEG=2

ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_MP3" -t 40 -c:a libmp3lame -b:a 128k -ar 44100 -ac 2 \
  -id3v2_version 0 -write_xing 0 -f mp3 "$FC_TMP/src.mp3" || fc_fail "ffmpeg could not make src.mp3"
ffmpeg -v error -nostdin -f lavfi -i "$FC_SIG_AAC" -t 40 -c:a aac -b:a 96k -ar 48000 -ac 2 \
  -f adts "$FC_TMP/src.aac" || fc_fail "ffmpeg could not make src.aac"
cat "$FC_TMP/src.mp3" "$FC_TMP/src.mp3" >"$FC_TMP/ref.mp3"   # the shim loops its file
cat "$FC_TMP/src.aac" "$FC_TMP/src.aac" >"$FC_TMP/ref.aac"

ing1=$(free_port); srv1=$(free_port); ing2=$(free_port); srv2=$(free_port)
ha=$(free_port); hb=$(free_port)
bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
fc_start relay1 "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing1" --serve "127.0.0.1:$srv1" \
  --key "$FC_TMP/mesh.key"
fc_start relay2 "$FC_BUILD/framecast-relay" --ingest "tcp://127.0.0.1:$ing2" --serve "127.0.0.1:$srv2" \
  --key "$FC_TMP/mesh.key"
edge() { # NAME PORT
  fc_start "$1" "$FC_BUILD/framecast-edge" --listen "127.0.0.1:$2" --relay "127.0.0.1:$srv1" \
    --relay "127.0.0.1:$srv2" --key "$FC_TMP/mesh.key" --hls-segment "$SEG" \
    --hls-group radio=live.mp3,live.aac
}
edge edgeA "$ha"; edgeA_pid=$FC_LAST_PID
for m in mp3 aac; do
  fc_start "shim-$m" "$FC_BUILD/framecast-shim" --mount "live.$m" --encoder a --file "$FC_TMP/src.$m" \
    --to "tcp://127.0.0.1:$ing1" --to "tcp://127.0.0.1:$ing2" --key "$FC_TMP/mesh.key"
done
sleep 3.3   # edge B joins later, off any segment or frame boundary
edge edgeB "$hb"; edgeB_pid=$FC_LAST_PID
wait_http "http://127.0.0.1:$ha/live.mp3.m3u8" 15 || fc_fail "edge A never served /live.mp3.m3u8"
wait_http "http://127.0.0.1:$ha/live.aac.m3u8" 15 || fc_fail "edge A never served /live.aac.m3u8"

# (a) ffmpeg plays both playlists (in the background while the checks run)
for m in mp3 aac; do
  fc_start "ffmpeg-$m" ffmpeg -nostdin -loglevel level+error -i "http://127.0.0.1:$ha/live.$m.m3u8" \
    -t 8 -f null - -progress "$FC_TMP/ffmpeg-$m.progress"
  eval "ff_$m=\$FC_LAST_PID"
done

cat >"$FC_TMP/hls.py" <<'PY'
import http.client, re, sys, time, datetime

A, B, SEG, OUT = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
fails, notes = [], []
def fail(msg):
    fails.append(msg); print("FAIL:", msg, flush=True)
def note(msg):
    notes.append(msg); print(msg, flush=True)

def req(port, path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers={"Host": "127.0.0.1"})
    r = c.getresponse()
    body = r.read()
    hdrs = r.getheaders()
    c.close()
    return r.status, hdrs, body

def hget(hdrs, name):
    return [v for k, v in hdrs if k.lower() == name.lower()]

def parse_pdt(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

def playlist(port, mount, query=""):
    """Fetch and check one media playlist (RFC 8216 §4.3); returns (seq, segments)."""
    path = "/%s.m3u8%s" % (mount, query)
    st, hdrs, body = req(port, path)
    if st != 200:
        fail("%s:%d -> %d" % (path, port, st)); return None, []
    ct = hget(hdrs, "Content-Type")
    if ct != ["application/vnd.apple.mpegurl"]:
        fail("%s Content-Type %s" % (path, ct))
    cc = ", ".join(hget(hdrs, "Cache-Control")).lower()
    if "no-cache" not in cc and "no-store" not in cc and not re.search(r"max-age=[01]\b", cc):
        fail("%s: Cache-Control %r lets a CDN cache the playlist" % (path, cc))
    if len(hget(hdrs, "Cache-Control")) > 1 and "dup-cc" not in seen_notes:
        seen_notes.add("dup-cc")
        note("NOTE: playlist responses carry Cache-Control %d times: %s"
             % (len(hget(hdrs, "Cache-Control")), hget(hdrs, "Cache-Control")))
    text = body.decode("utf-8")
    lines = text.split("\n")
    if lines[0] != "#EXTM3U":
        fail("%s: first line %r is not #EXTM3U" % (path, lines[0]))
    target = seq = None
    segs, pend = [], {}
    for ln in lines[1:]:
        if not ln:
            continue
        if ln.startswith("#EXT-X-TARGETDURATION:"):
            target = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pend["pdt"] = parse_pdt(ln.split(":", 1)[1])
        elif ln.startswith("#EXTINF:"):
            pend["dur"] = float(ln.split(":", 1)[1].split(",")[0])
        elif ln.startswith("#EXT-X-ENDLIST"):
            fail("%s: a live playlist has #EXT-X-ENDLIST" % path)
        elif ln.startswith("#"):
            pass
        else:
            m = re.fullmatch(r"%s/hls/(\d+)\.(mp3|aac)" % re.escape(mount), ln)
            if not m:
                fail("%s: segment URI %r" % (path, ln)); continue
            if "dur" not in pend:
                fail("%s: %s has no EXTINF" % (path, ln))
            if "pdt" not in pend:
                fail("%s: %s has no EXT-X-PROGRAM-DATE-TIME" % (path, ln))
            segs.append(dict(n=int(m.group(1)), uri="/" + ln, **pend)); pend = {}
    if target is None or seq is None:
        fail("%s: no TARGETDURATION or MEDIA-SEQUENCE" % path); return seq, segs
    if not segs:
        fail("%s: no segments" % path); return seq, segs
    if segs[0]["n"] != seq:
        fail("%s: MEDIA-SEQUENCE %d but the first segment is %d" % (path, seq, segs[0]["n"]))
    for i, s in enumerate(segs):
        if s["n"] != seq + i:
            fail("%s: segment %d at position %d (want %d: numbers must be consecutive)"
                 % (path, s["n"], i, seq + i))
        if "dur" in s and round(s["dur"]) > target:
            fail("%s: EXTINF %.5f rounds above TARGETDURATION %d" % (path, s["dur"], target))
        if "pdt" in s and abs(s["pdt"] - s["n"] * SEG) > 0.05:
            fail("%s: segment %d PROGRAM-DATE-TIME %.3f, want %d x %g = %.3f (+-0.05)"
                 % (path, s["n"], s["pdt"], s["n"], SEG, s["n"] * SEG))
        if "dur" in s and abs(s["dur"] - SEG) > 0.05:
            fail("%s: segment %d EXTINF %.5f, want ~%g" % (path, s["n"], s["dur"], SEG))
        if i and "pdt" in s and "pdt" in segs[i - 1] and "dur" in segs[i - 1]:
            gap = s["pdt"] - (segs[i - 1]["pdt"] + segs[i - 1]["dur"])
            if abs(gap) > 0.002:
                fail("%s: PDT of %d is %.4f s off the previous PDT + EXTINF" % (path, s["n"], gap))
    return seq, segs

def segment(port, uri, codec):
    """GET a segment, check headers and the ID3 timestamp tag; returns (bytes, ts90k, audio)."""
    st, hdrs, body = req(port, uri)
    if st != 200:
        fail("%s:%d -> %d" % (uri, port, st)); return None, None, b""
    want_ct = "audio/mpeg" if codec == "mp3" else "audio/aac"
    if hget(hdrs, "Content-Type") != [want_ct]:
        fail("%s Content-Type %s, want %s" % (uri, hget(hdrs, "Content-Type"), want_ct))
    cc = ", ".join(hget(hdrs, "Cache-Control")).lower()
    if "no-cache" in cc or "no-store" in cc or "private" in cc or not re.search(r"max-age=\d{3,}", cc):
        fail("%s: Cache-Control %r does not let a CDN cache the segment" % (uri, cc))
    if hget(hdrs, "Content-Length") != [str(len(body))]:
        fail("%s: Content-Length %s, body %d" % (uri, hget(hdrs, "Content-Length"), len(body)))
    # ID3v2.4 header, one PRIV frame: owner "com.apple.streaming.transportStreamTimestamp\0" and
    # an 8-byte big-endian 33-bit 90 kHz timestamp (RFC 8216 §3.4).
    if body[:3] != b"ID3":
        fail("%s does not start with an ID3 tag" % uri); return body, None, body
    ss = lambda b: (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]
    tag_len = 10 + ss(body[6:10])
    owner = b"com.apple.streaming.transportStreamTimestamp\0"
    fr = body[10:]
    if fr[:4] != b"PRIV" or fr[10:10 + len(owner)] != owner:
        fail("%s: first ID3 frame is not PRIV %s" % (uri, owner[:-1].decode())); return body, None, body[tag_len:]
    ts_bytes = fr[10 + len(owner):10 + len(owner) + 8]
    ts = int.from_bytes(ts_bytes, "big")
    if ts >= 1 << 33:
        fail("%s: PRIV timestamp %d has more than 33 bits" % (uri, ts))
    audio = body[tag_len:]
    if len(audio) < 2 or audio[0] != 0xFF or (audio[1] & 0xF0) != 0xF0 and (audio[1] & 0xE0) != 0xE0:
        fail("%s: no audio frame sync right after the ID3 tag" % uri)
    return body, ts, audio

seen_notes = set()
mounts = [("live.mp3", "mp3"), ("live.aac", "aac")]

# -- wait until edge A's live window is full (6 segments) and edge B lists at least 3
deadline = time.time() + 30
while time.time() < deadline:
    ok = True
    for port, need in ((A, 6), (B, 3)):
        for mount, _ in mounts:
            st, _, body = req(port, "/%s.m3u8" % mount)
            if st != 200 or body.count(b"#EXTINF") < need:
                ok = False
    if ok:
        break
    time.sleep(0.5)
else:
    fail("edge A did not list 6 segments (edge B 3) of each mount within 30 s"); sys.exit(1)

first = {}
rates = {}   # mount -> {segment: (bytes, EXTINF)}
for mount, codec in mounts:
    t1 = time.time()
    seq1, segs = playlist(A, mount)
    seqb, segsb = playlist(B, mount)
    print("%s: edge A lists %d segments from %d, edge B %d from %d"
          % (mount, len(segs), seq1, len(segsb), seqb), flush=True)
    first[mount] = (t1, seq1, segs)
    names_b = {s["n"]: s for s in segsb}
    same = 0
    for s in segs:
        body, ts, audio = segment(A, s["uri"], codec)
        s["body"] = body
        if ts is not None:
            want = round(s["pdt"] * 90000) % (1 << 33)
            d = (ts - want) % (1 << 33)
            d = d - (1 << 33) if d > 1 << 32 else d
            if abs(d) > 90:   # PDT is in ms: 90 ticks
                fail("%s segment %d: PRIV timestamp %d, PDT gives %d (off by %d ticks)"
                     % (mount, s["n"], ts, want, d))
        if body and "dur" in s:
            rates.setdefault(mount, {})[s["n"]] = (len(body), s["dur"])
        # (b) the same segment from edge B
        if s["n"] in names_b:
            sb = names_b[s["n"]]
            bodyb, _, _ = segment(B, s["uri"], codec)
            if bodyb != body:
                fail("%s segment %d differs between the edges (%s vs %s bytes)"
                     % (mount, s["n"], len(body or b""), len(bodyb or b"")))
            elif abs(sb.get("pdt", 0) - s.get("pdt", 0)) > 1e-6 or sb.get("dur") != s.get("dur"):
                fail("%s segment %d: PDT/EXTINF differ between the edges" % (mount, s["n"]))
            else:
                same += 1
    if same < 3:
        fail("%s: only %d segments listed by both edges to compare (want >= 3)" % (mount, same))
    print("%s: %d segments byte-identical on both edges, PRIV timestamps match PDT" % (mount, same),
          flush=True)

# (g) HEAD on playlists, master and segments: the GET headers, no body
def head_ok(port, path):
    st, hg, bg = req(port, path)
    sh, hh, bh = req(port, path, "HEAD")
    if sh != 200 or bh != b"":
        fail("HEAD %s -> %d with %d body bytes" % (path, sh, len(bh))); return
    for k in ("Content-Type", "Cache-Control"):
        if hget(hg, k) != hget(hh, k):
            fail("HEAD %s: %s %s, GET has %s" % (path, k, hget(hh, k), hget(hg, k)))
    if path.endswith((".mp3", ".aac")) and hget(hh, "Content-Length") != [str(len(bg))]:
        fail("HEAD %s: Content-Length %s, GET body %d" % (path, hget(hh, "Content-Length"), len(bg)))
for mount, codec in mounts:
    head_ok(A, "/%s.m3u8" % mount)
    head_ok(A, first[mount][2][-1]["uri"])
head_ok(A, "/hls/radio.m3u8")

# (f) master playlist: structure now, BANDWIDTH against the measured segments at the end
want_codecs = {"live.mp3": "mp4a.40.34", "live.aac": "mp4a.40.2"}
def master(show=False):
    """Fetch /hls/radio.m3u8, check its shape; returns {mount: attrs}."""
    st, hdrs, body = req(A, "/hls/radio.m3u8")
    if st != 200:
        fail("/hls/radio.m3u8 -> %d" % st); return {}
    text = body.decode()
    if show:
        print("--- /hls/radio.m3u8:\n" + text.rstrip(), flush=True)
    lines = text.split("\n")
    if lines[0] != "#EXTM3U":
        fail("master: first line %r" % lines[0])
    cc = ", ".join(hget(hdrs, "Cache-Control")).lower()
    if "no-cache" not in cc and "no-store" not in cc:
        fail("master: Cache-Control %r" % cc)
    found = {}
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', ln.split(":", 1)[1]))
            uri = lines[i + 1] if i + 1 < len(lines) else ""
            m = re.fullmatch(r"/?(live\.(?:mp3|aac))\.m3u8", uri)
            if not m:
                fail("master: variant URI %r" % uri); continue
            found[m.group(1)] = attrs
            if show:
                st2, _, _ = req(A, uri if uri.startswith("/") else "/hls/" + uri)
                if st2 != 200:
                    fail("master: variant %s -> %d" % (uri, st2))
    for mount, codec in mounts:
        at = found.get(mount)
        if not at:
            fail("master does not list %s" % mount); continue
        if at.get("CODECS", "").strip('"') != want_codecs[mount]:
            fail("master: %s CODECS %s, want %s" % (mount, at.get("CODECS"), want_codecs[mount]))
        if "BANDWIDTH" not in at:
            fail("master: %s has no BANDWIDTH" % mount)
    return found
master(show=True)

# (c) the media sequence advances one per segment; meanwhile note when each first playlist's
# oldest segment leaves the live window
gone_at = {}
t_end = first["live.mp3"][0] + 7
while time.time() < t_end or len(gone_at) < len(mounts):
    if time.time() > t_end + 10:
        break
    for mount, codec in mounts:
        if mount in gone_at:
            continue
        st, _, body = req(A, "/%s.m3u8" % mount)
        if st == 200 and ("/hls/%d." % first[mount][2][0]["n"]).encode() not in body:
            gone_at[mount] = time.time()
    time.sleep(0.25)
for mount, codec in mounts:
    t1, seq1, segs1 = first[mount]
    t2 = time.time()
    seq2, segs2 = playlist(A, mount)
    adv = seq2 - seq1
    want = (t2 - t1) / SEG
    print("%s: MEDIA-SEQUENCE %d -> %d in %.1f s (%.1f segments of %g s)"
          % (mount, seq1, seq2, t2 - t1, want, SEG), flush=True)
    if not (want - 1.01 <= adv <= want + 1.01):
        fail("%s: MEDIA-SEQUENCE advanced %d in %.1f s, want ~%.1f" % (mount, adv, t2 - t1, want))
    # segments still listed in both playlists are unchanged
    by_n = {s["n"]: s for s in segs1}
    for s in segs2:
        if s["n"] in by_n and (abs(by_n[s["n"]]["pdt"] - s["pdt"]) > 1e-6 or by_n[s["n"]]["dur"] != s["dur"]):
            fail("%s: segment %d changed its PDT/EXTINF between playlist reloads" % (mount, s["n"]))
    if len(segs2) != 6:
        fail("%s: live window lists %d segments, want 6" % (mount, len(segs2)))
    # contiguity: the segments of this playlist, without their tags, for framecmp
    with open("%s/%s.concat" % (OUT, codec), "wb") as f:
        for s in segs2:
            body, _, audio = segment(A, s["uri"], codec)
            f.write(audio)

# (e) the oldest segment of the first playlist, after it left the live window: RFC 8216 §6.2.2
# keeps it for its duration plus the longest playlist's that held it (the live window): we ask
# once that time has passed.
for mount, codec in mounts:
    t1, seq1, segs1 = first[mount]
    old = segs1[0]
    if mount not in gone_at:
        fail("%s: segment %d never left the live playlist (%.0f s)" % (mount, old["n"], time.time() - t1))
        continue
    left_s = gone_at[mount] - t1
    if left_s > SEG + 1:
        fail("%s: segment %d stayed in the live window %.1f s after the window was full"
             % (mount, old["n"], left_s))
    avail_until = gone_at[mount] + old["dur"] + sum(s["dur"] for s in segs1) + 0.5
    time.sleep(max(0, avail_until - time.time()))
    body, _, _ = segment(A, old["uri"], codec)
    if body != old["body"]:
        fail("%s: segment %d, %.1f s after it left the live window: not the same bytes"
             % (mount, old["n"], time.time() - gone_at[mount]))
    else:
        print("%s: segment %d still served identically %.1f s after leaving the live window"
              % (mount, old["n"], time.time() - gone_at[mount]), flush=True)

# (c) ?dvr=20 lists ~10 segments (edge A has held more than 20 s by now)
for mount, codec in mounts:
    seq, segs = playlist(A, mount, "?dvr=20")
    print("%s?dvr=20: %d segments (%d..%d)" % (mount, len(segs), seq or -1, segs[-1]["n"] if segs else -1),
          flush=True)
    if not 9 <= len(segs) <= 11:
        fail("%s?dvr=20 lists %d segments, want ~10" % (mount, len(segs)))
    for sg in segs:   # all served (the oldest too); their sizes feed the BANDWIDTH check
        body, ts, _ = segment(A, sg["uri"], codec)
        if body and "dur" in sg:
            rates.setdefault(mount, {})[sg["n"]] = (len(body), sg["dur"])

# (f) BANDWIDTH is the peak segment bit rate (RFC 8216 §4.3.4.2), AVERAGE-BANDWIDTH the average:
# compare a dozen fetches of the master (a live estimate must hold on every one) with every
# segment measured above
for k in range(12):
    found = master()
    for mount, codec in mounts:
        r = rates.get(mount, {})
        if not r or mount not in found:
            continue
        pk = max(b * 8 / d for b, d in r.values())
        avg_m = sum(b for b, d in r.values()) * 8 / sum(d for b, d in r.values())
        bw = int(found[mount].get("BANDWIDTH", "0"))
        avg = int(found[mount].get("AVERAGE-BANDWIDTH", "0") or 0)
        if k == 0:
            print("%s: %d segments measured: peak %.0f, average %.0f bit/s" % (mount, len(r), pk, avg_m))
        print("%s: master #%d BANDWIDTH=%d AVERAGE-BANDWIDTH=%d" % (mount, k + 1, bw, avg), flush=True)
        if bw < pk:
            fail("master #%d: %s BANDWIDTH %d is below the peak segment bit rate %.0f measured over "
                 "%d segments" % (k + 1, mount, bw, pk, len(r)))
        if bw > pk * 1.25:
            fail("master: %s BANDWIDTH %d is far above the measured peak %.0f" % (mount, bw, pk))
        if avg and not (0.95 * avg_m <= avg <= 1.05 * avg_m):
            fail("master: %s AVERAGE-BANDWIDTH %d, measured average %.0f" % (mount, avg, avg_m))
        if avg and avg > bw:
            fail("master: %s AVERAGE-BANDWIDTH %d > BANDWIDTH %d" % (mount, avg, bw))
    time.sleep(0.1)

# (b) once more, later, on segments both edges made while fully warmed up
for mount, codec in mounts:
    _, sa = playlist(A, mount)
    _, sb = playlist(B, mount)
    common = sorted({s["n"] for s in sa} & {s["n"] for s in sb})
    for n in common:
        uri = "/%s/hls/%d.%s" % (mount, n, codec)
        if segment(A, uri, codec)[0] != segment(B, uri, codec)[0]:
            fail("%s segment %d differs between the edges (late check)" % (mount, n))
    print("%s: late check, %d more common segments identical" % (mount, len(common)), flush=True)
    if len(common) < 4:
        fail("%s: late check compared only %d segments" % (mount, len(common)))

sys.exit(1 if fails else 0)
PY
python3 "$FC_TMP/hls.py" "$ha" "$hb" "$SEG" "$FC_TMP" >"$FC_TMP/hlscheck.out" 2>&1
rc=$?
cat "$FC_TMP/hlscheck.out"
[ $rc = 0 ] || fc_fail "HLS checks failed: $(grep -c '^FAIL' "$FC_TMP/hlscheck.out") problem(s), see above"

# (d) contiguity of a playlist's segments
out=$("$FC_BUILD/tools/framecmp" --codec mp3 --min-frames 400 "$FC_TMP/ref.mp3" "$FC_TMP/mp3.concat") \
  || fc_fail "MP3 segments are not a contiguous run of the source: $out"
echo "mp3 segments: $out"
out=$("$FC_BUILD/tools/framecmp" --codec adts --min-frames 500 "$FC_TMP/ref.aac" "$FC_TMP/aac.concat") \
  || fc_fail "AAC segments are not a contiguous run of the source: $out"
echo "aac segments: $out"

# (a) ffmpeg
for m in mp3 aac; do
  eval "p=\$ff_$m"
  wait_exit "$p" 5 || fc_fail "ffmpeg on live.$m.m3u8 did not finish"
  [ "$FC_WAIT_RC" = 0 ] || fc_fail "ffmpeg on live.$m.m3u8 exited $FC_WAIT_RC (see ffmpeg-$m.log)"
  grep -E '\[(error|fatal|panic)\]' "$FC_TMP/ffmpeg-$m.log" && fc_fail "ffmpeg on live.$m.m3u8 logged errors"
  t=$(sed -n 's/^out_time_us=//p' "$FC_TMP/ffmpeg-$m.progress" | tail -1)
  awk -v t="${t:-0}" 'BEGIN{exit !(t >= 7.9e6)}' || fc_fail "ffmpeg decoded only ${t:-0} us of live.$m.m3u8"
  fc_log "ffmpeg decoded $(awk -v t="$t" 'BEGIN{printf "%.2f", t/1e6}') s of live.$m.m3u8 with no error"
done
fc_alive "$edgeA_pid" || fc_fail "edge A died"
fc_alive "$edgeB_pid" || fc_fail "edge B died"
echo "hls: PASS"
