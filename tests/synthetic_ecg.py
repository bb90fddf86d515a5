"""Hand-built ECGs with known beat positions, for detector tests."""

from __future__ import annotations

import numpy as np

FS = 360.0


def _wave(t: np.ndarray, centre: float, width: float, height: float) -> np.ndarray:
    return height * np.exp(-0.5 * ((t - centre) / width) ** 2)


def beat_train(r_times_s: list[float], duration_s: float, t_height: float = 0.3,
               qrs_height: float = 1.2, noise_mv: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ECG in mV made of P-QRS-T complexes at ``r_times_s``; returns (signal, R sample indices)."""
    t = np.arange(int(duration_s * FS)) / FS
    x = np.zeros_like(t)
    for r in r_times_s:
        x += _wave(t, r - 0.16, 0.025, 0.12)  # P
        x += _wave(t, r - 0.025, 0.008, -0.15)  # Q
        x += _wave(t, r, 0.010, qrs_height)  # R
        x += _wave(t, r + 0.03, 0.010, -0.3)  # S
        x += _wave(t, r + 0.28, 0.05, t_height)  # T
    x += np.random.default_rng(seed).normal(0.0, noise_mv, t.size)
    return x, np.rint(np.asarray(r_times_s) * FS).astype(np.int64)


def wide_train(r_times_s: list[float], duration_s: float) -> np.ndarray:
    """Wide ventricular-like complexes (broad R, deep S, inverted T) at ``r_times_s``, in mV."""
    t = np.arange(int(duration_s * FS)) / FS
    x = np.zeros_like(t)
    for r in r_times_s:
        x += _wave(t, r, 0.035, 1.6) + _wave(t, r + 0.07, 0.03, -0.8) + _wave(t, r + 0.22, 0.05, -0.4)
    return x


def regular_times(start_s: float, stop_s: float, bpm: float) -> list[float]:
    return list(np.arange(start_s, stop_s, 60.0 / bpm))
