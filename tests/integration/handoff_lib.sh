# shellcheck shell=bash
# Helpers of the handoff tests (handoff.sh, handoff_abort.sh, systemd_reload.sh), sourced after
# lib.sh: an edge's buffer and listener count, the listeners of handoff_clients.py, and the
# verdict on what they received.

# ho_upstream: icecast2 with /live.mp3 from ffmpeg (MP3 128k), recorded to $FC_TMP/ref.mp3 as
# the reference, and a mesh key in $FC_TMP/mesh.key. Sets ice, ing, srv, http (free ports:
# icecast2, a relay's ingest and serve, the edge).
ho_upstream() {
  ice=$(free_port); ing=$(free_port); srv=$(free_port); http=$(free_port)
  start_icecast "$ice"
  start_source_mp3 "$ice" live.mp3
  record "http://127.0.0.1:$ice/live.mp3" "$FC_TMP/ref.mp3"
  bash "$FC_ROOT/scripts/keygen.sh" "$FC_TMP/mesh.key" >/dev/null
}

# ho_buffered PORT: seconds of live.mp3 the edge on 127.0.0.1:PORT holds (0 when it answers not).
ho_buffered() {
  curl -s --max-time 3 "http://127.0.0.1:$1/live.mp3/rewind" | python3 -c \
    'import json,sys; print(int(json.load(sys.stdin).get("seconds", 0)))' 2>/dev/null || echo 0
}
ho__buf_ok() { [ "$(ho_buffered "$1")" -ge 10 ]; }

# ho_wait_buffered PORT: wait (30 s at most) until the edge holds 10 s of live.mp3, or fail.
ho_wait_buffered() {
  wait_until 30 ho__buf_ok "$1" || fc_fail "edge on port $1 never buffered 10 s"
}

# ho_listeners PORT: the stream listeners of live.mp3 the edge counts (-1 when it answers not).
ho_listeners() {
  curl -s --max-time 3 "http://127.0.0.1:$1/api/v1/mounts/live.mp3" | python3 -c \
    'import json,sys; print(int(json.load(sys.stdin).get("listeners", -1)))' 2>/dev/null || echo -1
}
ho__count_ok() { [ "$(ho_listeners "$1")" -eq "$2" ]; }

# ho_wait_count PORT WANT WHEN: wait (10 s at most) until the edge counts WANT listeners, or fail
# saying WHEN.
ho_wait_count() {
  wait_until 10 ho__count_ok "$1" "$2" || fc_fail "$3: the edge counts $(ho_listeners "$1") listeners, want $2"
}

# ho_start_clients PORT N SECONDS: N listeners of each kind (plain, ICY, ?offset=8, HLS) for
# SECONDS into $FC_TMP/out (handoff_clients.py); waits until every stream listener has its
# response head and the edge counts them (3 N). Sets HO_CLIENTS_PID and HO_WANT.
ho_start_clients() {
  mkdir -p "$FC_TMP/out"
  fc_start clients python3 "$FC_LIB_DIR/handoff_clients.py" "$1" live.mp3 "$2" "$3" \
    "$FC_TMP/out" 8
  HO_CLIENTS_PID=$FC_LAST_PID
  wait_until 30 test -f "$FC_TMP/out/started" || fc_fail "listeners never started"
  HO_WANT=$((3 * $2))
  ho_wait_count "$1" "$HO_WANT" "with the listeners started"
}

# ho_verdict N: after the listeners ended (HO_CLIENTS_PID reaped), check $FC_TMP/out/result.json:
# N of each kind, no stream listener with an error, an EOF or a gap of 1 s or more between reads,
# no HLS client that missed a media sequence number, had a request fail or got fewer than 8
# segments. Prints "kinds=... bytes=B max_gap_s=G bad=K" as its last line; non-zero if any failed.
ho_verdict() {
  python3 - "$FC_TMP/out/result.json" "$1" <<'PY'
import json, sys
res, n = json.load(open(sys.argv[1])), int(sys.argv[2])
bad, kinds, gap, total = [], {}, 0.0, 0
for r in res:
    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    total += r["bytes"]
    if r["error"] or r.get("eof"):
        bad.append("%s%d error=%s eof=%s" % (r["kind"], r["i"], r["error"], r.get("eof")))
    if r["kind"] == "hls":
        if r["missing"] or r["failed"] or r["segments"] < 8:
            bad.append("hls%d missing=%s failed=%d segments=%d" % (r["i"], r["missing"][:5], r["failed"], r["segments"]))
    else:
        gap = max(gap, r["max_gap_s"])
        if r["max_gap_s"] >= 1.0:
            bad.append("%s%d gap %.3f s ending %s" % (r["kind"], r["i"], r["max_gap_s"], r.get("gap_end")))
for b in bad[:20]:
    print("BAD", b)
print("kinds=%s bytes=%d max_gap_s=%.3f bad=%d" % (",".join("%s:%d" % kv for kv in sorted(kinds.items())), total, gap, len(bad)))
sys.exit(1 if bad or any(kinds.get(k, 0) != n for k in ("plain", "icy", "offset", "hls")) else 0)
PY
}

# ho_finish N: wait for the listeners to end (60 s at most), then ho_verdict N and ho_compare
# against $FC_TMP/ref.mp3 (300 frames at least each), failing the test on any finding. Sets
# HO_SUMMARY (ho_verdict's line) and HO_FRAMES.
ho_finish() {
  wait_exit "$HO_CLIENTS_PID" 60 || fc_fail "listener script still running"
  [ "$FC_WAIT_RC" -eq 0 ] || fc_fail "listener script failed (see clients.log)"
  ho_verdict "$1" >"$FC_TMP/summary.txt" || { cat "$FC_TMP/summary.txt" >&2; fc_fail "listener checks failed"; }
  HO_SUMMARY=$(tail -1 "$FC_TMP/summary.txt")
  ho_compare "$FC_TMP/ref.mp3" 300
}

# ho_compare REF MIN_FRAMES: every listener's audio in $FC_TMP/out must be a contiguous,
# byte-identical run of REF's frames (framecmp, two at a time), or fail. Sets HO_FRAMES to the
# frames compared (call it directly, not in $(...): fc_fail must end the test).
ho_compare() {
  rm -f "$FC_TMP/cmp_failed"
  ls "$FC_TMP"/out/*.mp3 | xargs -P 2 -I{} sh -c \
    '"$1" --codec mp3 --min-frames "$5" "$2" "$3" >"$3.cmp" 2>&1 || echo "$3" >>"$4"' _ \
    "$FC_BUILD/tools/framecmp" "$1" {} "$FC_TMP/cmp_failed" "$2"
  if [ -s "$FC_TMP/cmp_failed" ]; then
    head -5 "$FC_TMP/cmp_failed" | while read -r f; do cat "$f.cmp" >&2; done
    fc_fail "$(wc -l <"$FC_TMP/cmp_failed") listeners' audio is not a contiguous run of the source"
  fi
  HO_FRAMES=$(cat "$FC_TMP"/out/*.cmp | sed -n 's/.*frames=\([0-9]*\) .*/\1/p' | awk '{s+=$1} END {print s}')
}
