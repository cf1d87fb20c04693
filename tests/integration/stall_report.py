#!/usr/bin/env python3
"""usage: stall_report.py TIMELINE BYTES_PER_S: the stalls a real-time player would hear.

TIMELINE is timed_listen.py's: "start MS", "ms bytes" per read, then "end MS" (the end of the run). The player
starts at the first byte and plays in real time at BYTES_PER_S with whatever arrived ahead (the
burst) as its buffer; each time it runs dry is a stall. A stream that stops for good runs dry before
the end of the run: that gap (from the buffer running out to "end") is a stall too.

prints: max_arrival_gap_ms=G first_byte_ms=F end_gap_ms=E audio_ms=A stalls=N max_stall_ms=M
        total_stall_ms=T
G is the longest time without a byte arriving: from the request to the first byte, between two
reads, or from the last byte to the end of the run. A is the audio received (bytes / rate)."""
import sys
ev, end = [], None
for l in open(sys.argv[1]):
    p = l.split()
    if not p:
        continue
    if p[0] == "end":
        end = int(p[1])
    elif p[0] == "start":
        continue
    else:
        ev.append((int(p[0]), int(p[1])))
rate = float(sys.argv[2])
if end is None:          # an old-style timeline: the run ended with its last read
    end = ev[-1][0] if ev else 0
first = ev[0][0] if ev else end
last = ev[-1][0] if ev else end
end = max(end, last)
gaps = [first, end - last] + [b[0] - a[0] for a, b in zip(ev, ev[1:])]
stalls = []
if not ev:
    if end > 0:
        stalls.append(end / 1000.0)
else:
    now, buf = first / 1000.0, 0.0
    for t, n in ev:
        dt = t / 1000.0 - now
        if dt > buf:
            stalls.append(dt - buf); buf = 0.0
        else:
            buf -= dt
        buf += n / rate; now = t / 1000.0
    tail = end / 1000.0 - now   # the stream stopped for good: the player runs dry before the end
    if tail > buf:
        stalls.append(tail - buf)
audio_ms = sum(n for _, n in ev) / rate * 1000
print("max_arrival_gap_ms=%d first_byte_ms=%d end_gap_ms=%d audio_ms=%d stalls=%d max_stall_ms=%d total_stall_ms=%d" % (
    max(gaps), first, end - last, audio_ms, len(stalls), max(stalls, default=0) * 1000,
    sum(stalls) * 1000))
