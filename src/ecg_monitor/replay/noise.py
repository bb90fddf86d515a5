"""Noise stress test records: clean ECG plus calibrated noise, the way PhysioNet's ``nst`` does.

``nst`` measures the signal as the mean peak-to-peak QRS amplitude S (largest and smallest 5 %
dropped) and the noise as its RMS N over one-second windows (likewise trimmed); the signal power
is taken as S**2 / 8 (a sine wave of that peak-to-peak size), so SNR = 10 log10(S**2 / (8 N**2)).
Its standard protocol leaves the first five minutes clean, then alternates two noisy minutes with
two clean ones.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import trim_mean

QRS_HALF_WINDOW_S = 0.05
LEARNING_S = 300.0
SEGMENT_S = 120.0


def qrs_size(signal: np.ndarray, r_samples: np.ndarray, fs: float) -> float:
    """Trimmed mean of peak-to-peak amplitudes around the reference R marks (nst's S)."""
    h = int(round(QRS_HALF_WINDOW_S * fs))
    amps = [np.nanmax(signal[r - h : r + h]) - np.nanmin(signal[r - h : r + h])
            for r in r_samples if h <= r < len(signal) - h]
    if not amps:
        raise ValueError("no QRS complex to measure the signal size from")
    return float(trim_mean(amps, 0.05))


def noise_rms(noise: np.ndarray, fs: float) -> float:
    """Trimmed mean RMS of the noise over one-second windows, each about its own mean (nst's N)."""
    n = int(fs)
    frames = noise[: len(noise) // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean((frames - frames.mean(axis=1, keepdims=True)) ** 2, axis=1))
    return float(trim_mean(rms, 0.05))


def noise_gain(signal: np.ndarray, r_samples: np.ndarray, noise: np.ndarray, fs: float, snr_db: float) -> float:
    """Scale factor for the noise so that the noisy segments have ``snr_db``."""
    s = qrs_size(signal, r_samples, fs)
    return float(s / (np.sqrt(8.0) * noise_rms(noise, fs) * 10 ** (snr_db / 20.0)))


def nst_mask(length: int, fs: float) -> np.ndarray:
    """nst's standard protocol: clean for 5 min, then 2 min noisy / 2 min clean alternately."""
    t = np.arange(length) / fs
    return (t >= LEARNING_S) & (((t - LEARNING_S) // SEGMENT_S) % 2 == 0)


def add_noise(signal: np.ndarray, r_samples: np.ndarray, noise: np.ndarray, fs: float, snr_db: float) -> np.ndarray:
    """Clean signal plus noise at ``snr_db`` in nst's noisy segments (noise repeats if short)."""
    gain = noise_gain(signal, r_samples, noise, fs, snr_db)
    reps = int(np.ceil(len(signal) / len(noise)))
    tiled = np.tile(noise, reps)[: len(signal)]
    tiled = tiled - np.mean(tiled)
    return signal + np.where(nst_mask(len(signal), fs), gain * tiled, 0.0)
