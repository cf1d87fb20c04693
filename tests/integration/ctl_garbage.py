#!/usr/bin/env python3
"""Bad clients of a handoff control socket (tests/integration/handoff_abort.sh, relay_handoff.sh).

  ctl_garbage.py CONTROL_PATH

One after another, each waiting for the program's answer (or its close) before the next:
garbage (300 random bytes), a truncated record header, a HELLO of version 999, a HELLO with a
payload too short; then one that connects and says nothing for 3 s. Prints one line per client
with what came back. Exits 0 unless the socket cannot be reached.
"""
import os, socket, struct, sys, time

PATH = sys.argv[1]
HO_HELLO = 1


def client(name, data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(PATH)
    if data is not None:
        s.send(data)
        try:
            got = s.recv(4096)
        except OSError as e:
            got = ("error %s" % e).encode()
    else:
        time.sleep(3)
        got = b"(silent client)"
    s.close()
    print("%s: %r" % (name, got[8:60] if len(got) > 8 else got))


client("garbage", os.urandom(300))
client("truncated", b"\x01\x00")
client("version", struct.pack("<HHI", HO_HELLO, 0, 8) + struct.pack("<II", 999, 1))
client("short", struct.pack("<HHI", HO_HELLO, 0, 2) + b"\x01\x00")
client("silent", None)
