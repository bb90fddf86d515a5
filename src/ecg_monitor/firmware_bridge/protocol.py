"""The framed binary wire protocol of our firmware (see ``docs/wire_protocol.md``).

Each frame is a COBS-encoded packet between two ``0x00`` delimiters::

    version:u8 | status:u8 | seq:u16le | count:u8 | count x int16le samples | crc16:u16le

The CRC is CRC-16/CCITT-FALSE (``binascii.crc_hqx(data, 0xFFFF)``) over everything before it.
COBS keeps ``0x00`` out of the packet, so after any garbage the next delimiter is a sure frame
boundary: the decoder never has to guess where a frame starts. The leading delimiter costs one
byte per frame and makes a frame that follows garbage readable on its own.
"""

from __future__ import annotations

import binascii
from dataclasses import asdict, dataclass

import numpy as np

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"
HEADER_BYTES = 5  # version, status, seq (2), count
CRC_BYTES = 2
MAX_SAMPLES = 120  # keeps a raw packet under 254 bytes: one COBS code byte per frame
SEQ_MODULO = 1 << 16

#: Status bits of the ``status`` byte.
STATUS_LEAD_OFF_PLUS = 0x01  # AD8232 LO+ / ADS1292 RLD or IN+ lead-off comparator
STATUS_LEAD_OFF_MINUS = 0x02  # AD8232 LO- / ADS1292 IN- lead-off comparator
STATUS_SATURATED = 0x04  # a sample hit the ADC rails
STATUS_LEAD_OFF = STATUS_LEAD_OFF_PLUS | STATUS_LEAD_OFF_MINUS

#: Longest COBS packet a valid frame can produce; anything longer is garbage.
MAX_PACKET_BYTES = HEADER_BYTES + 2 * MAX_SAMPLES + CRC_BYTES + 1


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF (as in the firmware)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(raw: bytes) -> bytes:
    """Consistent-overhead byte stuffing: the result holds no ``0x00``."""
    out = bytearray()
    for run in raw.split(b"\x00"):
        while len(run) >= 254:
            out.append(0xFF)
            out += run[:254]
            run = run[254:]
        out.append(len(run) + 1)
        out += run
    return bytes(out)


def cobs_decode(packet: bytes) -> bytes | None:
    """Inverse of :func:`cobs_encode`; ``None`` when the code bytes do not fit the packet."""
    out = bytearray()
    i, n = 0, len(packet)
    while i < n:
        code = packet[i]
        end = i + code
        if code == 0 or end > n:
            return None
        out += packet[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(seq: int, samples: np.ndarray | list[int], status: int = 0) -> bytes:
    """One frame on the wire, delimiters included."""
    counts = np.asarray(samples)
    if not 1 <= counts.size <= MAX_SAMPLES:
        raise ValueError(f"a frame carries 1..{MAX_SAMPLES} samples, got {counts.size}")
    if counts.min() < -32768 or counts.max() > 32767:
        raise ValueError("samples must fit in int16")
    raw = bytes([PROTOCOL_VERSION, status & 0xFF]) + (seq % SEQ_MODULO).to_bytes(2, "little")
    raw += bytes([counts.size]) + counts.astype("<i2").tobytes()
    raw += crc16(raw).to_bytes(2, "little")
    return DELIMITER + cobs_encode(raw) + DELIMITER


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded block of consecutive ADC counts.

    ``gap_samples`` is how many samples were lost just before this block (sequence gap times
    the block size); ``None`` when continuity is unknown: the first block, or a sequence number
    that jumped back or further than ``max_gap_samples`` allowed (the device restarted).
    """

    seq: int
    status: int
    counts: np.ndarray  # int16 for framed, float64 for ASCII
    gap_samples: int | None


@dataclass
class DecoderCounters:
    """What both decoders count, under the same names in status messages."""

    bytes: int = 0
    samples: int = 0
    bytes_discarded: int = 0
    seq_gaps: int = 0
    seq_restarts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class FrameCounters(DecoderCounters):
    frames: int = 0
    crc_errors: int = 0
    unsupported_version: int = 0
    malformed: int = 0
    frames_lost: int = 0

    @property
    def bad_packets(self) -> int:
        return self.crc_errors + self.unsupported_version + self.malformed


class FrameDecoder:
    """Streaming decoder: ``feed`` any bytes, get the intact frames, count everything else.

    Counters are exact: every non-empty packet is either a frame or exactly one of
    ``crc_errors`` / ``unsupported_version`` / ``malformed``, and ``bytes_discarded`` holds the
    bytes of rejected packets including their terminating delimiter.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._overflow = False  # the pending packet grew too long: drop it up to its delimiter
        self._next_seq: int | None = None
        self.count = FrameCounters()
        self.last_bad_version: int | None = None

    def resync(self) -> None:
        """Forget a partial packet (after a reconnect its end will never come)."""
        if self._pending or self._overflow:
            self._reject(len(self._pending))
        self._pending = b""
        self._overflow = False

    def feed(self, data: bytes, max_gap_samples: int | None = None) -> list[Frame]:
        """Decode what ``data`` completes; a gap above ``max_gap_samples`` counts as a restart."""
        self.count.bytes += len(data)
        parts = (self._pending + data).split(DELIMITER)
        self._pending = parts.pop()
        frames: list[Frame] = []
        for k, packet in enumerate(parts):
            if k == 0 and self._overflow:
                self._overflow = False
                self._reject(len(packet) + 1)
            elif packet:
                frame = self._packet(packet, max_gap_samples)
                if frame is not None:
                    frames.append(frame)
        if len(self._pending) > MAX_PACKET_BYTES:
            # Too long for a frame: drop it now (bytes counted now, the packet at its delimiter).
            self.count.bytes_discarded += len(self._pending)
            self._pending = b""
            self._overflow = True
        return frames

    def _reject(self, nbytes: int) -> None:
        self.count.malformed += 1
        self.count.bytes_discarded += nbytes

    def _packet(self, packet: bytes, max_gap_samples: int | None) -> Frame | None:
        raw = cobs_decode(packet)
        if raw is None or len(raw) < HEADER_BYTES + 2 + CRC_BYTES:
            self._reject(len(packet) + 1)
            return None
        if crc16(raw[:-CRC_BYTES]) != int.from_bytes(raw[-CRC_BYTES:], "little"):
            self.count.crc_errors += 1
            self.count.bytes_discarded += len(packet) + 1
            return None
        if raw[0] != PROTOCOL_VERSION:
            self.count.unsupported_version += 1
            self.last_bad_version = raw[0]
            self.count.bytes_discarded += len(packet) + 1
            return None
        count = raw[4]
        if count == 0 or count > MAX_SAMPLES or len(raw) != HEADER_BYTES + 2 * count + CRC_BYTES:
            self._reject(len(packet) + 1)
            return None
        seq = int.from_bytes(raw[2:4], "little")
        counts = np.frombuffer(raw, dtype="<i2", count=count, offset=HEADER_BYTES)
        self.count.frames += 1
        self.count.samples += count
        return Frame(seq, raw[1], counts, self._continuity(seq, count, max_gap_samples))

    def _continuity(self, seq: int, count: int, max_gap_samples: int | None) -> int | None:
        """Samples lost before frame ``seq`` (sequence gap x frame size), ``None`` if unknown."""
        expected, self._next_seq = self._next_seq, (seq + 1) % SEQ_MODULO
        if expected is None:
            return None
        lost = (seq - expected) % SEQ_MODULO
        if lost == 0:
            return 0
        if lost >= SEQ_MODULO // 2 or (max_gap_samples is not None and lost * count > max_gap_samples):
            self.count.seq_restarts += 1
            return None
        self.count.seq_gaps += 1
        self.count.frames_lost += lost
        return lost * count
