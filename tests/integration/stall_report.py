#!/usr/bin/env python3
"""usage: stall_report.py TIMELINE BYTES_PER_S: the stalls a real-time player would hear."""
import sys
ev = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
rate = float(sys.argv[2])
gap = max((b[0] - a[0] for a, b in zip(ev, ev[1:])), default=0)
now, buf, stalls = ev[0][0] / 1000.0, 0.0, []
for t, n in ev:
    dt = t / 1000.0 - now
    if dt > buf:
        stalls.append(dt - buf); buf = 0.0
    else:
        buf -= dt
    buf += n / rate; now = t / 1000.0
print("max_arrival_gap_ms=%d stalls=%d max_stall_ms=%d total_stall_ms=%d" % (
    gap, len(stalls), max(stalls, default=0) * 1000, sum(stalls) * 1000))
