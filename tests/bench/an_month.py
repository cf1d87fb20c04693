#!/usr/bin/env python3
"""A month of a mid-size station's listening sessions for `make bench-analytics`, and the
figures of a few intervals of it computed here, independently of the edge's SQL.

usage: an_month.py gen BASE_S DAYS PER_DAY FILE
         write DAYS * PER_DAY sessions starting in [BASE_S, BASE_S + DAYS days) as
         tests/bench/bench_analytics (an_load) lines: id mount proto start_us end_us preroll_s
         listened_s bytes timeshift_s user_agent client. Deterministic (seed 2026).
       an_month.py check FILE ANSWER.json MOUNT|- ROW...
         recompute rows ROW (indexes into the answer's rows) of a GET /api/v1/analytics answer
         (from bench_analytics query ... OUT) from FILE and compare every figure, all protocols
         and each; prints one line per row, exits 1 on any difference.

The population: arrivals follow a daily curve (night low, morning and evening peaks); durations
are a mixture: 12 % under a second (probes, players that give up: short), 25 % zapping (1 s to
2 min), 50 % lognormal around 15 min, 13 % background listening of 1 to 8 hours; raw 45 %, ICY
40 %, HLS 15 %; four mounts (55/25/12/8 %); clients drawn from 150,000 addresses with a strong
skew, so regulars come back many times a day and every day; a quarter of stream sessions start
with a 15 s preroll; 4 % are time-shifted. Times are in µs, not whole seconds.

The check walks events, not SQL: for an interval it takes every session touching it and
computes sessions / avg (by start), TLH (overlaps), cume (distinct clients), AQH (per clock
quarter hour, each client's listening summed, >= 300 s) and peak (a sweep, ends before starts
at equal times) straight from the definitions of docs/architecture.md §7.13."""
import hashlib, json, math, random, sys

PROTOS = ("raw", "icy", "hls")
PROTO_W = (("raw", 45), ("icy", 40), ("hls", 15))
MOUNTS = (("live.mp3", 55), ("live.aac", 25), ("talk.mp3", 12), ("jazz.aac", 8))
# relative arrivals per hour of the day (UTC): night, morning peak, day, evening peak
HOURS = (3, 2, 1.5, 1.5, 2, 4, 8, 12, 12, 9, 7, 6, 6, 6, 6, 6, 7, 9, 10, 9, 8, 7, 5, 4)
UAS = {"raw": ("mpv/0.35.1", "VLC/3.0.18 LibVLC/3.0.18", "Lavf/59.27.100", "Winamp/5.9"),
       "icy": ("VLC/3.0.18 LibVLC/3.0.18", "foobar2000/1.6", "iTunes/12.12", "Sonos/70.3"),
       "hls": ("AppleCoreMedia/1.0.0.21A329", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
               "ExoPlayerLib/2.19.1")}
QH_US = 900 * 1000000
AQH_US = 300 * 1000000
MIN_S = 1.0          # --analytics-min-s default: listened below it is short


def pick(r, weighted):
    x = r.random() * sum(w for _, w in weighted)
    for v, w in weighted:
        x -= w
        if x < 0:
            return v
    return weighted[-1][0]


def duration(r):
    u = r.random()
    if u < 0.12:
        return r.random() * 0.9
    if u < 0.37:
        return 1 + r.random() * 119
    if u < 0.87:
        return min(6 * 3600.0, r.lognormvariate(math.log(900), 1.0))
    return 3600 + r.random() * 7 * 3600


def gen(base, days, per_day, path):
    r = random.Random(2026)
    hours = [(h, w) for h, w in enumerate(HOURS)]
    clients = [hashlib.blake2b(b"client-%d" % i, digest_size=16).hexdigest() for i in range(150000)]
    n = 0
    with open(path, "w") as out:
        for d in range(days):
            day0 = base + d * 86400
            for _ in range(per_day):
                start = (day0 + pick(r, hours) * 3600) * 1000000 + r.randrange(3600 * 1000000)
                proto = pick(r, PROTO_W)
                mount = pick(r, MOUNTS)
                dur = duration(r)
                preroll = 15.0 if proto != "hls" and r.random() < 0.25 else 0.0
                end = start + int(dur * 1e6)
                listened = max(0.0, dur - preroll)
                ts = r.random() * 3600 if r.random() < 0.04 else 0.0
                client = clients[int(len(clients) * r.random() ** 3)]
                rate = 16000 if mount.endswith(".mp3") else 8000
                n += 1
                sid = ("%016x" % (n * 0x9E3779B97F4A7C15 % (1 << 64))) if proto != "hls" else \
                    "h%031x" % (n * 0x9E3779B97F4A7C15 % (1 << 124))
                out.write("%s\t%s\t%s\t%d\t%d\t%g\t%.3f\t%d\t%.1f\t%s\t%s\n" % (
                    sid, mount, proto, start, end, preroll, listened, int(dur * rate) + 300, ts,
                    r.choice(UAS[proto]), client))
    return n


def load(path, mount, lo, hi):
    """Sessions of `mount` (None: all) touching [lo, hi): (proto, client, start, end, ls, short)."""
    out = []
    with open(path) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if mount and v[1] != mount:
                continue
            start, end = int(v[3]), int(v[4])
            if end < lo or start >= hi:
                continue
            ls = min(start + int(round(float(v[5]) * 1e6)), end)
            out.append((v[2], v[10], start, end, ls, float(v[6]) < MIN_S))
    return out


def figures(pop, t0, t1, proto):
    p = [x for x in pop if proto is None or x[0] == proto]
    started = [x for x in p if t0 <= x[2] < t1]
    longs = [x for x in started if not x[5]]
    spans = [(max(x[4], t0), min(x[3], t1), x[1], x) for x in p
             if not x[5] and x[4] < x[3] and x[4] < t1 and x[3] > t0]
    tlh = sum(b - a for a, b, _, _ in spans)
    cume = len({c for _, _, c, _ in spans})
    aqh = 0
    for q in range(t0, t1, QH_US):
        per = {}
        for x in p:
            if x[5]:
                continue
            a, b = max(x[4], q), min(x[3], q + QH_US)
            if b > a:
                per[x[1]] = per.get(x[1], 0) + (b - a)
        aqh += sum(1 for v in per.values() if v >= AQH_US)
    # peak: the spans open at t0, then a sweep over [t0, t1), ends before starts at equal times
    ev = []
    for x in p:
        if x[5] or x[4] >= x[3]:
            continue
        ev.append((x[4], 1))
        ev.append((x[3], 0))
    ev.sort()
    peak = n = 0
    for t, start in ev:
        n += 1 if start else -1
        if start and t0 <= t < t1:
            peak = max(peak, n)
    at0 = sum(1 for x in p if not x[5] and x[4] <= t0 < x[3])
    peak = max(peak, at0)
    return {"sessions": len(started), "cume": cume, "tlh": tlh / 3.6e9,
            "aqh": aqh / ((t1 - t0) / QH_US), "peak_listeners": peak,
            "avg_session_s": sum(x[3] - x[4] for x in longs) / len(longs) / 1e6 if longs else None}


def same(got, want):
    for k, v in want.items():
        g = got.get(k)
        if v is None or g is None:
            if v is not g:
                return False
        elif abs(g - v) > 1e-6 * max(1.0, abs(v)):
            return False
    return True


def fmt(f):
    avg = "null" if f["avg_session_s"] is None else "%.1f" % f["avg_session_s"]
    return "sessions=%d cume=%d tlh=%.3f aqh=%.2f peak=%d avg_s=%s" % (
        f["sessions"], f["cume"], f["tlh"], f["aqh"], f["peak_listeners"], avg)


def check(path, answer, mount, rows):
    ans = json.load(open(answer))
    iv = ans["interval_s"] * 1000000
    want_rows = [int(k) for k in rows]
    lo = min(ans["rows"][k]["start_s"] for k in want_rows) * 1000000
    hi = max(ans["rows"][k]["start_s"] for k in want_rows) * 1000000 + iv
    pop = load(path, None if mount == "-" else mount, lo, hi)
    bad = 0
    for k in want_rows:
        row = ans["rows"][k]
        t0 = row["start_s"] * 1000000
        for name, got in [("all", row)] + [(p, row["by_protocol"][p]) for p in PROTOS]:
            want = figures(pop, t0, t0 + iv, None if name == "all" else name)
            ok = same(got, want)
            bad += not ok
            if name == "all" or not ok:
                print("an_month check %s mount=%s interval=%d row=%d %s %s: %s%s" % (
                    "ok" if ok else "MISMATCH", mount, iv // 1000000, k, row["start"], name,
                    fmt(got), "" if ok else " | want " + fmt(want)))
    return 1 if bad else 0


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "gen":
        n = gen(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        print("an_month: %d sessions" % n)
        return 0
    if len(sys.argv) >= 6 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
