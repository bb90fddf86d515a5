"""Throughput of the serial decoders against what a device needs (about 1 kB/s at 360 Hz).

    python benchmarks/serial_decoder.py
"""

from __future__ import annotations

import time

import numpy as np

from ecg_monitor.firmware_bridge.ascii import AsciiDecoder, encode_line
from ecg_monitor.firmware_bridge.protocol import FrameDecoder, encode_frame

FS = 360.0


def _rate(name: str, data: bytes, decoder, samples: int, piece: int = 4096) -> None:
    t0 = time.perf_counter()
    for i in range(0, len(data), piece):
        decoder.feed(data[i : i + piece])
    dt = time.perf_counter() - t0
    realtime = f"{samples / FS / dt:9,.0f} x real time" if samples else "(no frames in it)"
    print(f"{name:34s} {len(data) / dt / 1e6:7.2f} MB/s  {samples / dt:12,.0f} samples/s  {realtime}")


def main() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(-2000, 2000, 360 * 600)
    frames = b"".join(encode_frame(i, counts[i * 10 : i * 10 + 10]) for i in range(len(counts) // 10))
    _rate("framed, clean (10 min)", frames, FrameDecoder(), len(counts))
    garbage = rng.integers(0, 256, len(frames), dtype=np.uint8).tobytes()
    _rate("framed, random bytes only", garbage, FrameDecoder(), 0)
    mixed = b"".join(f + garbage[i * 30 : i * 30 + 30] for i, f in enumerate(
        encode_frame(i, counts[i * 10 : i * 10 + 10]) for i in range(len(counts) // 10)))
    _rate("framed, 50 % garbage interleaved", mixed, FrameDecoder(), len(counts))
    lines = b"".join(encode_line(int(c) + 2048, i * 1000 // 360) for i, c in enumerate(counts))
    _rate("ascii 'millis,value' lines", lines, AsciiDecoder(FS), len(counts))


if __name__ == "__main__":
    main()
