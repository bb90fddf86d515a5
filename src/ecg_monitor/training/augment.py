"""Training-time augmentation of morphology windows: recorded noise, gain, wander, time shift.

The RR durations of a beat are scaled together (heart rate), and beat and usual beat are
stretched in time together, so the network meets QRS widths of
patients it never saw. Noise comes from the MIT-BIH Noise Stress Test records (bw baseline wander, em electrode motion,
ma muscle artefact), band-passed and decimated exactly like the beat windows, so the network
sees the kinds of disturbance a monitor meets. Only the beat channel is disturbed: the usual-beat
channel is a median of many beats, where noise averages out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_monitor.detector.features import RHYTHM_FEATURES, FeatureSpec
from ecg_monitor.detector.filters import design_display_filter, one_shot
from ecg_monitor.replay import read_record

NOISE_RECORDS = ("bw", "em", "ma")
RR_DURATIONS = tuple(i for i, name in enumerate(RHYTHM_FEATURES) if name.endswith("_rr_s"))


def load_noise(noise_dir: str | os.PathLike[str], spec: FeatureSpec) -> list[np.ndarray]:
    """The noise records as the features see signals: display band, decimated, unit RMS."""
    out = []
    for name in NOISE_RECORDS:
        rec = read_record(name, Path(noise_dir), fs=spec.fs)
        x = one_shot(design_display_filter(spec.fs), rec.signal)
        x = x[: x.size // spec.decimate * spec.decimate].reshape(-1, spec.decimate).mean(axis=1)
        out.append((x / x.std()).astype(np.float32))
    return out


@dataclass(frozen=True)
class Augmenter:
    """Random disturbances of a batch of morphology windows."""

    noise: list[np.ndarray]
    p_noise: float = 0.5
    noise_rms: tuple[float, float] = (0.02, 0.25)  # in units of the recent QRS amplitude
    p_gain: float = 0.5
    log_gain: float = 0.2
    p_wander: float = 0.3
    wander: float = 0.2
    p_shift: float = 0.5
    max_shift: int = 3  # samples at the decimated rate (about +-17 ms)
    p_stretch: float = 0.5
    stretch: tuple[float, float] = (0.8, 1.5)  # time scale of beat and usual beat together
    centre: int = 45  # R mark position in the window, the fixed point of the stretch
    p_rate: float = 0.5
    log_rate: float = 0.3  # heart-rate scaling of the RR durations (ratios unchanged)

    def __call__(self, morphology: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, length = morphology.shape[0], morphology.shape[2]
        x = self._stretch(morphology, rng)
        beat = x[:, 0]
        t = np.arange(length)
        shift = rng.integers(-self.max_shift, self.max_shift + 1, n) * (rng.random(n) < self.p_shift)
        beat[:] = np.take_along_axis(beat, np.clip(t[None, :] - shift[:, None], 0, length - 1), axis=1)
        gain = np.where(rng.random(n) < self.p_gain, np.exp(rng.uniform(-self.log_gain, self.log_gain, n)), 1.0)
        beat *= gain[:, None].astype(np.float32)
        slope = np.where(rng.random(n) < self.p_wander, rng.uniform(-self.wander, self.wander, n), 0.0)
        beat += (slope[:, None] * np.linspace(-1, 1, length)[None, :]).astype(np.float32)
        if self.noise:
            for i in np.flatnonzero(rng.random(n) < self.p_noise):
                src = self.noise[rng.integers(len(self.noise))]
                k = rng.integers(src.size - length)
                beat[i] += rng.uniform(*self.noise_rms) * src[k : k + length]
        return x

    def _stretch(self, morphology: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Widen or narrow beat and usual beat alike about the R mark: another patient's QRS
        width with the same relation between the two (so "wide" alone does not mean V)."""
        n, _, length = morphology.shape
        lo, hi = np.log(self.stretch)
        s = np.where(rng.random(n) < self.p_stretch, np.exp(rng.uniform(lo, hi, n)), 1.0)
        pos = np.clip(self.centre + (np.arange(length)[None, :] - self.centre) / s[:, None], 0, length - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, length - 1)
        w = (pos - i0).astype(np.float32)[:, None, :]
        a = np.take_along_axis(morphology, np.broadcast_to(i0[:, None, :], morphology.shape), axis=2)
        b = np.take_along_axis(morphology, np.broadcast_to(i1[:, None, :], morphology.shape), axis=2)
        return (a * (1 - w) + b * w).astype(np.float32)

    def rhythm(self, rhythm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scale the RR durations of a beat together (another patient's heart rate, same
        ratios), so prematurity is learnt from the ratios rather than from absolute RRs."""
        n = rhythm.shape[0]
        rate = np.where(rng.random(n) < self.p_rate, np.exp(rng.uniform(-self.log_rate, self.log_rate, n)), 1.0)
        out = rhythm.copy()
        out[:, list(RR_DURATIONS)] *= rate[:, None].astype(np.float32)
        return out
