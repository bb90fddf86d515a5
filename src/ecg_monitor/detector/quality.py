"""Signal quality of short blocks of raw ECG: missing, flat (lead off), saturated, noisy.

Judged on the raw samples (mV, NaN = missing) in fixed blocks, so the verdicts do not depend on
how samples were chunked. Thresholds were set on the MIT-BIH records (no block of any record is
flat; the 99.9th percentile of the noise measure is below 0.075 mV outside record 104).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QualityConfig:
    min_valid: float = 0.5  # a block with fewer valid samples is "missing"
    flat_mv: float = 0.02  # peak-to-peak below this is a flat line
    rail_jump_mv: float = 2.0  # a flat line this far from the recent level is a saturated amplifier
    clip_run_s: float = 0.03  # identical samples at the block's extreme this long look clipped...
    clip_fraction: float = 0.2  # ...when they make up this much of the block
    noise_mv: float = 0.06  # median |second difference|: 0.01-0.02 mV in clean ECG at 360 Hz


@dataclass(frozen=True)
class BlockQuality:
    """What is wrong with one block (all False: good)."""

    missing: bool = False
    flat: bool = False
    saturated: bool = False
    noisy: bool = False

    @property
    def unusable(self) -> bool:
        """No ECG can be seen in the block: beats and their absence mean nothing there."""
        return self.missing or self.flat or self.saturated


def _runs_at(x: np.ndarray, value: float) -> np.ndarray:
    """Lengths of the runs of consecutive samples equal to ``value``."""
    hit = np.concatenate([[False], x == value, [False]])
    edges = np.flatnonzero(np.diff(hit.astype(np.int8)))
    return edges[1::2] - edges[::2]


class QualityJudge:
    """Judges consecutive raw blocks, remembering the level of the last good one."""

    def __init__(self, fs: float, config: QualityConfig | None = None) -> None:
        self.cfg = config or QualityConfig()
        self._clip_run = max(2, int(round(self.cfg.clip_run_s * fs)))
        self._level: float | None = None  # median of the last good block

    def judge(self, raw: np.ndarray) -> BlockQuality:
        cfg = self.cfg
        x = raw[np.isfinite(raw)]
        if x.size < cfg.min_valid * raw.size or x.size < 3:
            return BlockQuality(missing=True)
        lo, hi = float(x.min()), float(x.max())
        if hi - lo <= cfg.flat_mv:
            level = float(np.median(x))
            if self._level is not None and abs(level - self._level) > cfg.rail_jump_mv:
                return BlockQuality(saturated=True)
            return BlockQuality(flat=True)
        clipped = sum(int(r[r >= self._clip_run].sum()) for r in (_runs_at(x, lo), _runs_at(x, hi)))
        if clipped >= cfg.clip_fraction * x.size:
            return BlockQuality(saturated=True)
        noisy = float(np.median(np.abs(np.diff(x, 2)))) > cfg.noise_mv
        self._level = float(np.median(x))
        return BlockQuality(noisy=noisy)
