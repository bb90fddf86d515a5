"""The one interface every ECG feed implements (replay, synthetic device, serial devices).

Modelled on BrainFlow's board objects: a source is created with its settings, ``start()``-ed,
polled with ``read()`` until its ``state`` is ``ENDED`` (or the monitor stops), and ``stop()``-ed.
The streamer process (``streamer.publisher``) is the only caller; it paces sources that can be
read faster than real time (``realtime = False``) and simply polls live devices
(``realtime = True``).

Contract of ``read``:

* it returns a :class:`Chunk` of consecutive samples in mV (float64), or ``None`` when nothing is
  available right now (or ever again: check ``state``);
* ``Chunk.first_sample`` is the absolute index of ``samples[0]`` in the source's own numbering
  (the record's sample number for a replay), so consecutive chunks satisfy
  ``next.first_sample == prev.first_sample + len(prev.samples)``;
* samples that should exist but were lost (serial dropouts, checksum errors, record gaps) are
  NaN, never skipped, so the sample numbering stays true to time;
* ``Chunk.timestamp`` is ``time.monotonic()`` when the newest sample of the chunk became
  available on this host (for live devices: when its bytes arrived); the worker's end-to-end
  latency starts there. Paced sources leave it ``None`` and the publisher stamps it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class SourceState(str, enum.Enum):
    """Life cycle of a source; the streamer forwards every change to the worker."""

    IDLE = "idle"  # created, not started
    CONNECTED = "connected"  # delivering samples
    DISCONNECTED = "disconnected"  # a live device went quiet or away; it may come back
    ENDED = "ended"  # no sample will ever come again (end of record, stopped)


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one source."""

    first_sample: int  # absolute index of samples[0] in the source's numbering
    samples: np.ndarray  # float64 mV, NaN = missing sample
    timestamp: float | None = None  # time.monotonic() of the newest sample; None: publisher stamps


class SourceError(Exception):
    """A source cannot be opened or read; the message says why (shown before anything runs)."""


class Source(ABC):
    """An ECG feed. Subclasses set ``source_id``, ``fs`` and ``realtime`` in ``__init__``.

    ``source_id`` names the feed in every message and log row (``replay:208``, ``synthetic``,
    ``serial:/dev/ttyACM0``); ``fs`` is the sampling rate of the samples ``read`` returns (the
    pipeline runs at that rate; 360 Hz is what the detector is tuned for).
    """

    source_id: str
    fs: float
    #: True for devices that deliver samples at their own pace (serial); False for sources
    #: the publisher paces itself (replay, synthetic), which lets ``--speed`` apply.
    realtime: bool = False

    def __init__(self) -> None:
        self._state = SourceState.IDLE

    @property
    def state(self) -> SourceState:
        return self._state

    def start(self) -> None:
        """Open the feed (port, file, generator); raise :class:`SourceError` if it cannot be."""
        self._state = SourceState.CONNECTED

    @abstractmethod
    def read(self, max_samples: int, timeout: float = 0.1) -> Chunk | None:
        """Up to ``max_samples`` next samples; live devices wait at most ``timeout`` seconds."""

    def stop(self) -> None:
        """Release the feed; ``read`` returns ``None`` afterwards. Safe to call twice."""
        self._state = SourceState.ENDED

    def counters(self) -> dict[str, int | float | str]:
        """Source-specific health counters (bytes, frames, CRC errors...) for status messages."""
        return {}

    @property
    def duration_s(self) -> float | None:
        """Total length of a finite source in seconds, ``None`` when open-ended."""
        return None


def as_samples(x: np.ndarray) -> np.ndarray:
    """Samples in the dtype every chunk carries (float64 mV)."""
    return np.ascontiguousarray(x, dtype=np.float64)
