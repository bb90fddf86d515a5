"""Fixed-size history of a stream, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Keeps the last ``capacity`` samples of a stream so later stages can look back in time.

    Indices are absolute (sample 0 is the first sample ever appended), which lets the detector and
    classifier name a beat by its sample number whatever chunk it arrived in.
    """

    def __init__(self, capacity: int, dtype: type = np.float64) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._data = np.zeros(capacity, dtype=dtype)
        self.end = 0  # absolute index one past the newest sample

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.end - self.capacity)

    def extend(self, chunk: np.ndarray) -> None:
        n = len(chunk)
        if n >= self.capacity:
            chunk = chunk[-self.capacity :]
            self.end += n - self.capacity
            n = self.capacity
        pos = self.end % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos : pos + first] = chunk[:first]  # slice assignment converts the dtype
        if first < n:
            self._data[: n - first] = chunk[first:]
        self.end += n

    def rows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Samples ``[s, s + length)`` for each of ``starts`` (absolute indices), one row each: one
        gather for many windows instead of a ``get`` per window."""
        if starts.size == 1:  # one window (live chunks): a slice costs a tenth of a gather
            return self.get(int(starts[0]), int(starts[0]) + length)[None]
        if starts.size and (starts.min() < max(0, self.end - self.capacity) or starts.max() + length > self.end):
            raise IndexError(f"windows of {length} at {starts.min()}..{starts.max()} not in buffer "
                             f"[{self.start}, {self.end})")
        return self._data[(starts[:, None] + np.arange(length)) % self.capacity]

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` by absolute index (a copy); raises if they are not (or no
        longer) held."""
        cap = self.capacity  # locals: this runs several times per peak and per beat
        if start < 0 or start < self.end - cap or stop > self.end or start > stop:
            raise IndexError(f"samples [{start}, {stop}) not in buffer [{self.start}, {self.end})")
        lo, hi = start % cap, stop - start
        if lo + hi <= cap:  # one piece: a slice, not an index array
            return self._data[lo : lo + hi].copy()
        return np.concatenate((self._data[lo:], self._data[: lo + hi - cap]))
