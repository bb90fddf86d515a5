"""Noise stress test records: clean ECG plus calibrated noise, the way PhysioNet's ``nst`` does.

From the nst manual page (WFDB Applications Guide, "Signal-to-noise ratios"):

* S, the signal power, is (P**2) / 8 where P is the peak-to-peak QRS amplitude: the range of the
  signal from 50 ms before to 50 ms after each of the first 300 normal (``N``) QRS annotations,
  the largest and smallest 5 % of those ranges dropped and the rest averaged (``sigamp``).
  A record with no ``N`` beat (paced, bundle-branch block) is measured on its first 300 beats of
  any type instead: nst would find nothing to measure there.
* N, the noise power, is the square of the RMS noise amplitude: the first 300 s of the noise
  signal in one-second chunks, the RMS difference of each chunk from its own mean, largest and
  smallest 5 % dropped, the rest averaged. A gain ``a`` scales N by ``a**2``.
* SNR = 10 log10(S / (N a**2)), solved for ``a``.
* Standard protocol: five noise-free minutes, then two noisy and two noise-free minutes
  alternately to the end of the record. Output = clean + a * noise + b, where the offset ``b``
  is recomputed at each gain change so that the output has no step there.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import trim_mean

QRS_HALF_WINDOW_S = 0.05
LEARNING_S = 300.0
SEGMENT_S = 120.0
MEASURED_BEATS = 300
NOISE_MEASURE_S = 300.0
TRIM = 0.05


def qrs_size(signal: np.ndarray, r_samples: np.ndarray, fs: float, symbols: np.ndarray | None = None) -> float:
    """nst's peak-to-peak QRS amplitude: trimmed mean over the first 300 normal beats."""
    r = np.asarray(r_samples, dtype=np.int64)
    if symbols is not None and np.any(np.asarray(symbols) == "N"):
        r = r[np.asarray(symbols) == "N"]
    h = int(round(QRS_HALF_WINDOW_S * fs))
    r = r[(r >= h) & (r < len(signal) - h)][:MEASURED_BEATS]
    amps = [np.nanmax(signal[k - h : k + h + 1]) - np.nanmin(signal[k - h : k + h + 1]) for k in r]
    if not amps:
        raise ValueError("no QRS complex to measure the signal size from")
    return float(trim_mean(amps, TRIM))


def noise_rms(noise: np.ndarray, fs: float) -> float:
    """nst's RMS noise amplitude: trimmed mean of one-second RMS values over the first 300 s."""
    n = int(round(fs))
    x = noise[: int(NOISE_MEASURE_S * fs)]
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean((frames - frames.mean(axis=1, keepdims=True)) ** 2, axis=1))
    return float(trim_mean(rms, TRIM))


def gain_for(qrs_pp: float, rms: float, snr_db: float) -> float:
    """Gain ``a`` for noise of RMS ``rms`` so that SNR = 10 log10(S / (N a**2)) = ``snr_db``, with
    S = qrs_pp**2 / 8 and N = rms**2."""
    return float(np.sqrt(qrs_pp**2 / 8.0 / (rms**2 * 10 ** (snr_db / 10.0))))


def noise_gain(signal: np.ndarray, r_samples: np.ndarray, noise: np.ndarray, fs: float, snr_db: float,
               symbols: np.ndarray | None = None) -> float:
    """Gain ``a`` for the noise so that SNR = 10 log10(S / (N a**2)) = ``snr_db``."""
    return gain_for(qrs_size(signal, r_samples, fs, symbols), noise_rms(noise, fs), snr_db)


def nst_mask(length: int, fs: float) -> np.ndarray:
    """nst's standard protocol: clean for 5 min, then 2 min noisy / 2 min clean alternately."""
    t = np.arange(length) / fs
    return (t >= LEARNING_S) & (((t - LEARNING_S) // SEGMENT_S) % 2 == 0)


def add_noise(signal: np.ndarray, r_samples: np.ndarray, noise: np.ndarray, fs: float, snr_db: float,
              symbols: np.ndarray | None = None) -> np.ndarray:
    """Clean signal plus noise at ``snr_db`` in nst's noisy segments (the noise rewinds if short).

    ``symbols`` (the reference annotations' symbols) let the signal size come from normal beats
    only, as nst measures it.
    """
    gain = noise_gain(signal, r_samples, noise, fs, snr_db, symbols)
    tiled = np.resize(noise, len(signal))  # repeats the noise record from its start
    a = np.where(nst_mask(len(signal), fs), gain, 0.0)
    return signal + a * tiled + step_offsets(tiled, a)


def step_offsets(noise: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """nst's offset ``b`` for ``gains * noise``: recomputed at each gain change so the sum does not step."""
    changes = np.flatnonzero(np.diff(gains)) + 1
    steps = np.zeros(len(gains))
    steps[changes] = (gains[changes - 1] - gains[changes]) * noise[changes]
    return np.cumsum(steps)
