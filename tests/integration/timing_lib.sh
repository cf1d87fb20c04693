# shellcheck shell=bash
# Timing helpers for integration tests (sourced after lib.sh): a listener that logs when each
# chunk arrived, and the stalls a real-time player would hear from that log.

# timed_record URL FILE SECONDS: FILE gets the body, FILE.timeline "ms_since_start bytes" per read;
# exits 0 after SECONDS. Tracked, PID in FC_LAST_PID.
timed_record() {
  fc_start "$(basename "$2").listener" python3 "$FC_LIB_DIR/timed_listen.py" "$1" "$2" "$3"
}

# stall_report TIMELINE BYTES_PER_S: "max_arrival_gap_ms=G stalls=N max_stall_ms=M total_stall_ms=T"
# where the stalls are those of a player that starts at the first byte and plays in real time at
# BYTES_PER_S (CBR), with whatever the burst gave it as buffer: each time it runs dry is a gap heard.
stall_report() {
  python3 "$FC_LIB_DIR/stall_report.py" "$1" "$2"
}
