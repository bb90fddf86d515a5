"""Continuity of the chunk stream: gaps, duplicates and lost messages are counted, never silent.

Sample numbers are the source's own, so a gap can be filled with NaN (the detector treats NaN as
missing signal and the trace shows the hole) and the stream stays true to time. A gap too long
to fill restarts the stream at the new position.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ContinuityCounters:
    chunks: int = 0
    samples: int = 0
    gaps: int = 0  # jumps forward in sample numbering
    gap_samples: int = 0  # samples filled with NaN (or skipped by a restart)
    lost_chunks: int = 0  # jumps in sequence number
    duplicates: int = 0  # chunks (partly) received before
    restarts: int = 0  # gaps too long to fill: stream restarted at the new position
    malformed: int = 0  # undecodable messages (counted by the receiver)
    foreign: int = 0  # well-formed messages from another source or of an unexpected kind

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ContinuityCheck:
    """Turns received chunks into the samples to process, counting every irregularity."""

    def __init__(self, max_fill: int) -> None:
        self.max_fill = max_fill
        self.counters = ContinuityCounters()
        self.next_sample: int | None = None
        self._next_seq: int | None = None

    def restart(self) -> None:
        """A new run of the source begins (after ``ended``): forget the position, keep counts."""
        self.next_sample = None
        self._next_seq = None

    def accept(self, seq: int, first_sample: int, samples: np.ndarray) -> tuple[np.ndarray, bool]:
        """The samples to feed (a NaN-filled gap first, repeats cut off) and whether the gap was
        too long to fill, so the stream must restart at ``first_sample``."""
        c = self.counters
        c.chunks += 1
        if self._next_seq is not None and seq > self._next_seq:
            c.lost_chunks += seq - self._next_seq
        if self._next_seq is None or seq >= self._next_seq:
            self._next_seq = seq + 1
        if self.next_sample is None:
            self.next_sample = first_sample
        end = first_sample + len(samples)
        gap = first_sample - self.next_sample
        restart = False
        if gap < 0:
            c.duplicates += 1
            samples = samples[min(-gap, len(samples)):]
        elif gap > 0:
            c.gaps += 1
            c.gap_samples += gap
            restart = gap > self.max_fill
            c.restarts += restart
            if not restart:
                samples = np.concatenate([np.full(gap, np.nan), samples])
        self.next_sample = max(self.next_sample, end)
        c.samples += len(samples)
        return samples, restart
