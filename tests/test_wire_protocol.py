"""Wire protocol: COBS/CRC framing, the streaming decoder's resynchronisation and counters, ASCII lines."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.firmware_bridge.ascii import AsciiDecoder, encode_line
from ecg_monitor.firmware_bridge.protocol import (
    MAX_SAMPLES,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
)


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x00", b"\x01", bytes(range(256)) * 3,
                                 b"\x11" * 253, b"\x11" * 254, b"\x11" * 255, b"\x11" * 254 + b"\x00\x11"])
def test_cobs_round_trip(raw: bytes) -> None:
    enc = cobs_encode(raw)
    assert b"\x00" not in enc
    assert cobs_decode(enc) == raw


def test_cobs_rejects_codes_past_the_end() -> None:
    assert cobs_decode(b"\x05\x01\x02") is None


def test_frame_round_trip_and_sequence_wrap() -> None:
    dec = FrameDecoder()
    frames = [encode_frame(seq, np.array([-32768, 0, 32767, seq % 7]), status=seq & 3)
              for seq in range(65530, 65542)]
    out = dec.feed(b"".join(frames))
    assert [f.seq for f in out] == [s % 65536 for s in range(65530, 65542)]
    assert [f.gap_samples for f in out] == [None] + [0] * 11
    assert out[0].counts.tolist() == [-32768, 0, 32767, 65530 % 7]
    assert dec.count.frames == 12 and dec.count.bad_packets == 0 and dec.count.seq_gaps == 0


def test_gaps_restarts_and_plausibility() -> None:
    dec = FrameDecoder()
    s = lambda seq: encode_frame(seq, np.zeros(10, dtype=int))  # noqa: E731
    assert dec.feed(s(5))[0].gap_samples is None
    assert dec.feed(s(8))[0].gap_samples == 20  # frames 6 and 7 lost
    assert dec.feed(s(2))[0].gap_samples is None  # went back: the device restarted
    assert dec.feed(s(40), max_gap_samples=100)[0].gap_samples is None  # more than the clock allows
    assert dec.feed(s(45), max_gap_samples=100)[0].gap_samples == 40
    assert (dec.count.seq_gaps, dec.count.frames_lost, dec.count.seq_restarts) == (2, 6, 2)


def test_split_anywhere_and_unsupported_version() -> None:
    frames = [encode_frame(i, np.arange(i + 1)) for i in range(50)]
    raw = bytes([2, 0, 0, 0, 1, 5, 0])  # a version-2 frame with a valid CRC
    future = b"\x00" + cobs_encode(raw + crc16(raw).to_bytes(2, "little")) + b"\x00"
    stream = b"".join(frames[:10] + [future] + frames[10:])
    dec = FrameDecoder()
    out = [f for i in range(0, len(stream), 7) for f in dec.feed(stream[i : i + 7])]
    assert [f.counts.tolist() for f in out] == [list(range(i + 1)) for i in range(50)]
    assert dec.count.unsupported_version == 1 and dec.last_bad_version == 2


def _segments(garbage: bytes) -> list[bytes]:
    """The packets a run of bytes between two delimiters makes."""
    return [s for s in garbage.split(b"\x00") if s]


def test_fuzz_a_million_garbage_bytes_between_frames() -> None:
    """10^6 random bytes, corrupted, truncated and dropped frames: every intact frame comes back,
    and every counter is exactly what the stream holds."""
    rng = np.random.default_rng(20240611)
    parts: list[bytes] = []
    intact: list[tuple[int, int, list[int]]] = []
    expected_gaps: list[int | None] = []
    bad_segments: list[bytes] = []
    garbage_total = flipped = 0
    lost_run = seq_gaps = frames_lost = 0
    seq = 0
    run = b""
    while garbage_total < 1_000_000:
        count = int(rng.integers(1, MAX_SAMPLES + 1)) if rng.random() < 0.2 else 10
        samples = rng.integers(-32768, 32768, count)
        status = int(rng.integers(0, 8))
        frame = encode_frame(seq, samples, status)
        fate = rng.choice(["intact", "dropped", "corrupted"], p=[0.75, 0.10, 0.15])
        if fate != "dropped":  # a frame goes out: the garbage before it ends at its leading delimiter
            bad_segments += _segments(run)
            run = b""
        if fate == "intact":
            parts.append(frame)
            intact.append((seq, status, samples.tolist()))
            expected_gaps.append(None if len(intact) == 1 else lost_run * count)
            seq_gaps += lost_run > 0
            frames_lost += lost_run
            lost_run = 0
        elif fate == "dropped":
            lost_run += 1
        else:
            lost_run += 1
            inner = frame[1:-1]
            kind = rng.integers(3)
            if kind == 0:  # one flipped bit under a valid-looking COBS layer: a CRC error
                raw = bytearray(cobs_decode(inner))
                raw[int(rng.integers(5, len(raw) - 2))] ^= 1 << int(rng.integers(8))
                inner = cobs_encode(bytes(raw))
                flipped += 1
            elif kind == 1:  # a byte replaced by any other value, zero included
                k = int(rng.integers(len(inner)))
                inner = inner[:k] + bytes([(inner[k] + int(rng.integers(1, 256))) % 256]) + inner[k + 1 :]
            else:  # cut short
                inner = inner[: int(rng.integers(1, len(inner)))]
            parts.append(b"\x00" + inner + b"\x00")
            bad_segments += _segments(inner)
        seq = (seq + 1) % 65536
        if rng.random() < 0.5:
            garbage = rng.integers(0, 256, int(rng.integers(1, 600)), dtype=np.uint8).tobytes()
            parts.append(garbage)
            run += garbage  # two runs touch when the frame between them was dropped
            garbage_total += len(garbage)
    final = encode_frame(seq, [1, 2, 3])  # end on a whole frame so no packet is left pending
    bad_segments += _segments(run)
    parts.append(final)
    intact.append((seq, 0, [1, 2, 3]))
    expected_gaps.append(lost_run * 3)
    seq_gaps += lost_run > 0
    frames_lost += lost_run
    stream = b"".join(parts)

    dec = FrameDecoder()
    out = []
    pos = 0
    while pos < len(stream):
        step = int(rng.integers(1, 4097))
        out += dec.feed(stream[pos : pos + step])
        pos += step

    assert [(f.seq, f.status, f.counts.tolist()) for f in out] == intact
    assert [f.gap_samples for f in out] == expected_gaps
    assert dec.count.bytes == len(stream)
    assert dec.count.frames == len(intact)
    assert dec.count.samples == sum(len(s) for _, _, s in intact)
    assert (dec.count.seq_gaps, dec.count.frames_lost, dec.count.seq_restarts) == (seq_gaps, frames_lost, 0)
    assert dec.count.bad_packets == len(bad_segments)
    assert dec.count.bytes_discarded == sum(len(s) + 1 for s in bad_segments)
    assert dec.count.crc_errors >= flipped
    assert garbage_total >= 1_000_000


def test_overlong_garbage_is_one_packet() -> None:
    dec = FrameDecoder()
    junk = b"\x07" * 5000
    out = dec.feed(b"\x00" + junk[:2500]) + dec.feed(junk[2500:] + encode_frame(1, [4]))
    assert [f.counts.tolist() for f in out] == [[4]]
    assert dec.count.malformed == 1 and dec.count.bytes_discarded == 5001
    dec.feed(junk)
    dec.resync()
    assert dec.count.malformed == 2 and dec.count.bytes_discarded == 10001


def test_ascii_lines_values_and_timestamps() -> None:
    dec = AsciiDecoder(fs=360.0)
    text = b"partial\r\n512\r\n 513 \r\n\r\nabc\r\n1.5e3\n"
    out = dec.feed(text[:9]) + dec.feed(text[9:])
    assert [f.counts.tolist() for f in out] == [[512.0, 513.0, 1500.0]]
    assert dec.count.bad_lines == 1 and dec.count.samples == 3
    lines = b"".join(encode_line(v, int(i * 1000 // 360)) for i, v in enumerate(range(100, 110)) if i not in (4, 5))
    out = dec.feed(lines)
    assert [(len(f.counts), f.gap_samples) for f in out] == [(4, 0), (4, 2)]
    assert out[1].counts[0] == 106.0
    assert (dec.count.seq_gaps, dec.count.samples_lost) == (1, 2)
    out = dec.feed(b"1000,1\n", max_gap_samples=10)  # 351 samples missing: more than the clock allows
    assert out[0].gap_samples is None and dec.count.seq_restarts == 1


def test_ascii_garbage_never_raises() -> None:
    rng = np.random.default_rng(3)
    dec = AsciiDecoder(fs=250.0, timestamp_unit_s=1e-6)
    for _ in range(200):
        dec.feed(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    assert dec.count.bad_lines > 0
    assert dec.count.bytes == 100_000
