# shellcheck shell=bash
# Timing helpers for integration tests (sourced after lib.sh): a listener that logs when each
# chunk arrived, and the stalls a real-time player would hear from that log.

# timed_record URL FILE SECONDS: FILE gets the body, FILE.headers the response head,
# FILE.timeline "ms_since_request bytes" per read and a last line "end MS" (the end of the run);
# exits 0 after SECONDS (1 if the server closed the stream first). Tracked, PID in FC_LAST_PID.
timed_record() {
  fc_start "$(basename "$2").listener" python3 "$FC_LIB_DIR/timed_listen.py" "$1" "$2" "$3"
}

# stall_report TIMELINE BYTES_PER_S: one line
#   "max_arrival_gap_ms=G first_byte_ms=F end_gap_ms=E audio_ms=A stalls=N max_stall_ms=M total_stall_ms=T"
# where the stalls are those of a player that starts at the first byte and plays in real time at
# BYTES_PER_S (CBR), with whatever the burst gave it as buffer: each time it runs dry is a gap heard,
# including running dry before the end of the run when the stream stopped for good. G is the longest
# time without a byte (request to first byte, between reads, last byte to the end of the run).
stall_report() {
  python3 "$FC_LIB_DIR/stall_report.py" "$1" "$2"
}

# stall_field REPORT NAME: the value of NAME=... in a stall_report line (empty if absent).
stall_field() {
  sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" <<<"$1"
}

# frame_floor SECONDS BURST_S FRAMES_PER_S [PERCENT]: the fewest frames a listener of SECONDS may
# get: PERCENT (default 90) of the audio it is owed, which is the run plus the burst the edge sends
# ahead at the start.
frame_floor() {
  awk -v s="$1" -v b="$2" -v r="$3" -v p="${4:-90}" 'BEGIN{printf "%d", (s + b) * r * p / 100}'
}
