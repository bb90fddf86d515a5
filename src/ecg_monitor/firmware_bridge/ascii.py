"""The plain ASCII mode of common Arduino sketches: one reading per line.

A line is ``value`` or ``timestamp,value`` (comma, semicolon, tab or spaces between them;
``\\r\\n`` or ``\\n`` at the end), as ``Serial.println(analogRead(A0))`` or
``Serial.print(millis()); Serial.print(','); Serial.println(analogRead(A0))`` print it.
Plain lines carry no sequence number, so a lost line cannot be seen; with a timestamp, a jump of
more than half a sample period becomes a gap of the right length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ecg_monitor.firmware_bridge.protocol import DecoderCounters, Frame

MAX_LINE_BYTES = 64  # longer than any "timestamp,value" line: garbage
_SEPARATORS = re.compile(rb"[,;\s]+")


@dataclass
class LineCounters(DecoderCounters):
    bad_lines: int = 0
    samples_lost: int = 0


class AsciiDecoder:
    """Streaming line parser with the same ``feed`` contract as :class:`FrameDecoder`.

    Each returned :class:`Frame` is a run of consecutive samples; a new one starts after a
    timestamp gap (``gap_samples`` > 0) or a timestamp that went back (``gap_samples`` None).
    The first, probably partial, line after a (re)connect is dropped without being counted bad.
    """

    def __init__(self, fs: float, timestamp_unit_s: float = 1e-3) -> None:
        self.fs = float(fs)
        self._ticks_per_sample = 1.0 / (self.fs * timestamp_unit_s)
        self._pending = b""
        self._synced = False
        self._resumed = False  # reconnected: the next line's continuity is unknown
        self._last_ts: float | None = None
        self._seq = 0
        self.count = LineCounters()

    def resync(self) -> None:
        """Drop the partial line and wait for the next line start (after a reconnect)."""
        self.count.bytes_discarded += len(self._pending)
        self._pending = b""
        self._synced = False
        self._resumed = True

    def feed(self, data: bytes, max_gap_samples: int | None = None) -> list[Frame]:
        """Parse the lines ``data`` completes; a timestamp gap above ``max_gap_samples`` restarts."""
        self.count.bytes += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        if lines and not self._synced:
            self._synced = True
            self.count.bytes_discarded += len(lines.pop(0)) + 1
        if len(self._pending) > MAX_LINE_BYTES:  # no newline in sight: garbage, wait for one
            self.count.bad_lines += 1
            self.count.bytes_discarded += len(self._pending)
            self._pending = b""
            self._synced = False
        out: list[Frame] = []
        run: list[float] = []
        gap: int | None = 0
        for line in lines:
            parsed = self._parse(line)
            if parsed is None:
                continue
            ts, value = parsed
            lost = self._gap(ts, max_gap_samples)
            if lost != 0 and run:
                out.append(self._frame(run, gap))
                run = []
            if not run:
                gap = lost
            run.append(value)
        if run:
            out.append(self._frame(run, gap))
        return out

    def _parse(self, line: bytes) -> tuple[float | None, float] | None:
        """``(timestamp, value)`` of a line, ``None`` for a blank or bad one."""
        fields = _SEPARATORS.split(line.strip())
        if fields == [b""]:
            self.count.bytes_discarded += len(line) + 1
            return None
        try:
            numbers = [float(f) for f in fields]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or not all(math.isfinite(v) for v in numbers):
            self.count.bad_lines += 1
            self.count.bytes_discarded += len(line) + 1
            return None
        return (numbers[0] if len(numbers) == 2 else None), numbers[-1]

    def _gap(self, ts: float | None, max_gap_samples: int | None) -> int | None:
        """Samples missing before a line stamped ``ts``: 0 when in step or nothing tells, ``None``
        when only the wall clock can tell (the first line after a reconnect without a stamp)."""
        resumed, self._resumed = self._resumed, False
        last = self._last_ts
        if ts is not None:
            self._last_ts = ts
        if ts is None or last is None:
            return None if resumed else 0
        if ts < last:
            self.count.seq_restarts += 1
            return None
        lost = max(int(round((ts - last) / self._ticks_per_sample)) - 1, 0)
        if lost and max_gap_samples is not None and lost > max_gap_samples:
            self.count.seq_restarts += 1
            return None
        if lost:
            self.count.seq_gaps += 1
            self.count.samples_lost += lost
        return lost

    def _frame(self, run: list[float], gap: int | None) -> Frame:
        self.count.samples += len(run)
        self._seq += 1
        return Frame(self._seq - 1, 0, np.asarray(run, dtype=np.float64), gap)


def encode_line(value: int, timestamp: int | None = None) -> bytes:
    """One line as an Arduino sketch prints it (``println`` ends lines with CR LF)."""
    text = f"{value}" if timestamp is None else f"{timestamp},{value}"
    return text.encode("ascii") + b"\r\n"
