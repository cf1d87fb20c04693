#!/usr/bin/env python3
"""The scripted population of analytics_db.sh and its figures, computed here by brute force.

usage: analytics_pop.py gen BASE_S FILE
         write 40 sessions over the three hours from BASE_S (a whole hour, UTC) as an_load lines
       analytics_pop.py check BASE_S FILE LABEL ANSWER_3600.json ANSWER_900.json
         compare an edge's /api/v1/analytics answers (interval 3600 and 900) with the figures of
         the population in FILE; prints one line per hourly row (got | want), exits 1 on any
         difference.

Definitions (docs/architecture.md §7.13): a session listens over [start + preroll, end) unless it
is short (listened < 1 s: counted in `sessions` only). Every time is a whole second, so walking
each second [t, t+1) sees every change: TLH = listening seconds / 3600, cume = distinct clients
listening, peak = most sessions listening in one second, AQH = per quarter hour the clients with
>= 300 s of listening in it (all their sessions of the protocol), averaged over the quarter hours;
sessions / avg_session_s = sessions that started in the interval (avg over the not-short)."""
import json, random, sys

PROTOS = ("raw", "icy", "hls")
SPAN = 3 * 3600


def population(base):
    s = []  # (id, proto, start, end, preroll, client, timeshift, ua)
    def add(start, end, proto, client, preroll=0, timeshift=0, ua=None):
        s.append(("pop-%02d" % len(s), proto, base + start, base + end, preroll, "c%02d" % client,
                  timeshift, ua or {"raw": "mpv/0.35", "icy": "VLC/3.0.18", "hls": "AppleCoreMedia/1.0"}[proto]))
    add(0, 3600, "raw", 1)                        # the whole first hour
    add(3000, 4500, "icy", 2, preroll=15)         # crosses 01:00 after a 15 s preroll
    add(900, 1200, "hls", 3)                      # exactly 5 min in a quarter hour: counts
    add(1800, 2099, "hls", 4)                     # 4:59: does not
    add(2700, 2850, "raw", 5)                     # 2.5 min raw + 2.5 min HLS: counts in all,
    add(2850, 3000, "hls", 5)                     # in neither protocol
    add(100, 100, "raw", 6)                       # short (0 s)
    add(7100, 7300, "raw", 1)                     # person 1 again, crossing 02:00
    add(3600, 10800, "icy", 8, timeshift=3600)    # time-shifted an hour, hours 2 and 3
    add(5000, 5030, "raw", 9, preroll=30)         # all preroll: short
    add(6000, 6000 + 1800, "hls", 10)             # an HLS client for 30 min
    add(6100, 6100 + 1500, "hls", 11)
    for i in range(4):                            # four hand over to four at 02:30: spans are
        add(8000, 9000, "raw", 30 + i)            # half-open, never eight at once
        add(9000, 10000, "raw", 40 + i)
    r = random.Random(11)
    while len(s) < 40:
        start = r.randrange(0, SPAN - 60)
        end = min(start + r.randrange(1, 2400), SPAN + 600)
        add(start, end, r.choice(PROTOS), r.randrange(12, 24), preroll=r.choice((0, 0, 0, 10)))
    return s


def short(x):
    _, _, start, end, preroll, _, _, _ = x
    return end - start - preroll < 1


def figures(pop, t0, iv, proto):
    p = [x for x in pop if proto is None or x[1] == proto]
    started = [x for x in p if t0 <= x[2] < t0 + iv]
    longs = [x for x in started if not short(x)]
    ls = lambda x: min(x[2] + x[4], x[3])
    listening = lambda x, t: not short(x) and ls(x) <= t < x[3]
    tlh, peak, seen = 0, 0, set()
    for t in range(t0, t0 + iv):
        n = 0
        for x in p:
            if listening(x, t):
                n += 1
                seen.add(x[5])
        tlh += n
        peak = max(peak, n)
    aqh = 0
    for q in range(t0, t0 + iv, 900):
        per = {}
        for x in p:
            if short(x):
                continue
            a, b = max(ls(x), q), min(x[3], q + 900)
            if b > a:
                per[x[5]] = per.get(x[5], 0) + (b - a)
        aqh += sum(1 for v in per.values() if v >= 300)
    return {"sessions": len(started), "cume": len(seen), "tlh": tlh / 3600.0,
            "aqh": aqh / (iv / 900.0), "peak_listeners": peak,
            "avg_session_s": (sum(x[3] - ls(x) for x in longs) / len(longs)) if longs else None}


def same(got, want):
    for k, v in want.items():
        g = got.get(k)
        if v is None or g is None:
            if v is not g:
                return False
        elif abs(g - v) > 1e-6:
            return False
    return True


def fmt(f):
    avg = "null" if f["avg_session_s"] is None else "%.1f" % f["avg_session_s"]
    return "sessions=%d cume=%d tlh=%.4f aqh=%.2f peak=%d avg_s=%s" % (
        f["sessions"], f["cume"], f["tlh"], f["aqh"], f["peak_listeners"], avg)


def main():
    if sys.argv[1] == "gen":
        base = int(sys.argv[2])
        with open(sys.argv[3], "w") as out:
            for x in population(base):
                id_, proto, start, end, preroll, client, ts, ua = x
                out.write("\t".join(str(v) for v in (
                    id_, "pop.mp3", proto, start * 1000000, end * 1000000, preroll,
                    end - start - preroll, (end - start) * 16000, ts, ua, client)) + "\n")
        return 0
    base, label = int(sys.argv[2]), sys.argv[4]
    pop = population(base)
    bad = 0
    for path, iv in ((sys.argv[5], 3600), (sys.argv[6], 900)):
        rows = json.load(open(path))["rows"]
        if len(rows) != SPAN // iv:
            print("%s: interval %d: %d rows, want %d" % (label, iv, len(rows), SPAN // iv))
            bad += 1
            continue
        for k, row in enumerate(rows):
            t0 = base + k * iv
            checks = [("all", row, figures(pop, t0, iv, None))]
            checks += [(p, row["by_protocol"][p], figures(pop, t0, iv, p)) for p in PROTOS]
            if row["start_s"] != t0:
                print("%s: row %d starts at %s, want %d" % (label, k, row["start_s"], t0))
                bad += 1
            for name, got, want in checks:
                ok = same(got, want)
                bad += not ok
                if iv == 3600 and name == "all" or not ok:
                    print("%s %s interval=%d row=%d %s: got %s | want %s%s" % (
                        label, "ok" if ok else "MISMATCH", iv, k, name, fmt(got), fmt(want),
                        "" if ok else "  <--"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
