#!/usr/bin/env python3
"""Cut a captured MP3 / ADTS stream after its last whole frame.

A listener that hangs up (curl --max-time, SIGTERM) usually stops inside a frame; decoders then
report the truncated tail as an error although the server did nothing wrong. This walks frames
from byte 0 and drops only such a tail: a final frame whose header parses but whose length runs past
the end of the file, or fewer bytes than a header. Anything else (garbage, a bad header, a stream
that does not start on a frame boundary) is left in place so the decoder still sees it.

usage: frametrim.py --codec mp3|adts IN OUT
prints: frametrim: frames=N bytes=B trimmed=T walked=all|stopped_at=OFFSET
"""
import sys

MP3_BR = {  # Layer III bitrates, kbit/s, by index 1..14
    1: [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
MP3_SR = [44100, 48000, 32000]


def mp3_len(b, i):
    """Length of the MPEG-1/2/2.5 Layer III frame at b[i:], or None if no valid header."""
    if len(b) - i < 4:
        return None
    h = int.from_bytes(b[i:i + 4], "big")
    if (h >> 21) & 0x7FF != 0x7FF:
        return None
    ver = (h >> 19) & 3          # 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    layer = (h >> 17) & 3        # 1: Layer III
    bri = (h >> 12) & 15
    sri = (h >> 10) & 3
    pad = (h >> 9) & 1
    if ver == 1 or layer != 1 or bri in (0, 15) or sri == 3:
        return None
    mpeg1 = ver == 3
    br = MP3_BR[1 if mpeg1 else 2][bri - 1] * 1000
    sr = MP3_SR[sri] >> {3: 0, 2: 1, 0: 2}[ver]
    return (144 if mpeg1 else 72) * br // sr + pad


def adts_len(b, i):
    """Length of the ADTS frame at b[i:], or None if no valid header."""
    if len(b) - i < 7:
        return None
    if b[i] != 0xFF or (b[i + 1] & 0xF6) != 0xF0:   # sync 0xFFF, layer 00
        return None
    if ((b[i + 2] >> 2) & 15) >= 13:                 # sampling_frequency_index reserved
        return None
    n = ((b[i + 3] & 3) << 11) | (b[i + 4] << 3) | (b[i + 5] >> 5)
    hdr = 7 if b[i + 1] & 1 else 9
    return n if n >= hdr else None


def main(argv):
    if len(argv) != 5 or argv[1] != "--codec" or argv[2] not in ("mp3", "adts"):
        sys.stderr.write(__doc__)
        return 2
    frame_len = mp3_len if argv[2] == "mp3" else adts_len
    hdr_min = 4 if argv[2] == "mp3" else 7
    with open(argv[3], "rb") as f:
        b = f.read()
    i = frames = 0
    end = len(b)
    how = "walked=all"
    while i < len(b):
        rest = len(b) - i
        n = frame_len(b, i)
        if n is None:
            if rest < hdr_min:
                end = i                  # a few bytes of a header: cut
            else:
                how = "stopped_at=%d" % i  # not a frame: leave it for the decoder to judge
            break
        if n > rest:
            end = i                      # header fine, body cut off by the hang-up
            break
        i += n
        frames += 1
    with open(argv[4], "wb") as f:
        f.write(b[:end])
    print("frametrim: frames=%d bytes=%d trimmed=%d %s" % (frames, end, len(b) - end, how))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
