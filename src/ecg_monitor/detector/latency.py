"""Rolling latency percentiles for status messages and ``--stats-json``."""

from __future__ import annotations

from collections import deque

import numpy as np


class RollingLatency:
    """The last ``window`` values (seconds) of one latency, reported in ms."""

    def __init__(self, window: int = 5000) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self.count = 0  # all values ever added

    def add(self, seconds: float) -> None:
        self._values.append(seconds)
        self.count += 1

    def summary(self) -> dict[str, float | int | None]:
        """p50/p95/p99/max in ms over the window (None before the first value), and counts."""
        if not self._values:
            return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0, "total": self.count}
        ms = np.fromiter(self._values, dtype=float) * 1000.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
                "max": round(float(ms.max()), 3), "n": len(ms), "total": self.count}
