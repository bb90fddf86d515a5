"""Peer QRS detectors scored beside ours: same signal, same EC57 rules, so a figure has a yardstick."""

from __future__ import annotations

from typing import Callable

import numpy as np
from wfdb import processing


def xqrs_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's XQRS over the whole record at once (offline, not causal: it sees the future)."""
    return np.asarray(processing.xqrs_detect(np.nan_to_num(signal), fs=fs, verbose=False), dtype=np.int64)


#: Peer detectors by name (``--peer``): each maps (signal, fs) to R-peak sample numbers.
PEERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"xqrs": xqrs_peaks}
