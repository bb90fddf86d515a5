"""A one-line text progress bar on stderr (no dependency)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``step(done, total, note)`` redraws ``label [#####.....] 50% note  eta 1m05s``."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream, width
        self.t0 = time.perf_counter()

    def step(self, done: int, total: int, note: str = "") -> None:
        frac = done / total if total else 1.0
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * self.width)
        tail = f"{elapsed:.0f}s\n" if done >= total else f"eta {int(eta) // 60}m{int(eta) % 60:02d}s "
        self.stream.write(f"\r{self.label} [{bar:<{self.width}}] {100 * frac:3.0f}% {note}  {tail}")
        self.stream.flush()
