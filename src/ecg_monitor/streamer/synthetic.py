"""A synthetic ECG device whose scripted scenario makes every alarm of the monitor appear.

Beats are sums of Gaussian waves (P, Q, R, S, T; after McSharry et al.'s ECGSYN) rendered at
their R times; ventricular beats are wide, without P wave and with a discordant T wave. One
scenario cycle (:data:`SCENARIO`, 222 s) has a changing sinus rate with isolated PVCs,
bigeminy, couplets, a ventricular tachycardia run, supraventricular tachycardia, a pause
(asystole), extreme bradycardia, ventricular fibrillation, muscle noise, lead-off and
saturation. Cycles repeat with new random details for as long as the source runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from ecg_monitor import PIPELINE_FS
from ecg_monitor.streamer.source import Chunk, Source, SourceError, SourceState

#: Gaussian waves of a beat: (centre s from R, amplitude mV, width s).
_NORMAL = ((-0.20, 0.15, 0.025), (-0.035, -0.12, 0.010), (0.0, 1.2, 0.011), (0.035, -0.25, 0.011),
           (0.26, 0.30, 0.050))
_VENTRICULAR = ((0.0, 2.0, 0.050), (0.10, -0.8, 0.050), (0.36, -0.5, 0.090))
RAIL_MV = 5.0  # the device's ADC range is +-RAIL_MV


@dataclass(frozen=True)
class Phase:
    """One part of the scenario: ``rhythm`` for ``seconds`` at ``bpm``."""

    rhythm: str  # sinus, pvc, bigeminy, couplet, vt, svt, pause, brady, vf, noise, leadoff, saturate
    seconds: float
    bpm: float = 75.0


SCENARIO: tuple[Phase, ...] = (
    Phase("sinus", 20, 70), Phase("pvc", 20, 95), Phase("bigeminy", 15, 75),
    Phase("couplet", 10, 80), Phase("vt", 6, 145), Phase("sinus", 15, 80),
    Phase("svt", 12, 165), Phase("sinus", 10, 85), Phase("pause", 6), Phase("sinus", 12, 80),
    Phase("brady", 15, 34), Phase("sinus", 10, 75), Phase("vf", 9), Phase("sinus", 15, 80),
    Phase("noise", 8, 80), Phase("sinus", 10, 75), Phase("leadoff", 5), Phase("sinus", 10, 75),
    Phase("saturate", 4, 75), Phase("sinus", 10, 70),
)


def _wave(spec: tuple[tuple[float, float, float], ...], fs: float) -> np.ndarray:
    """One beat's waveform, from 0.3 s before its R mark to 0.7 s after."""
    t = np.arange(int(-0.3 * fs), int(0.7 * fs)) / fs
    return sum(amp * np.exp(-0.5 * ((t - centre) / width) ** 2) for centre, amp, width in spec)


class _Renderer:
    """Renders one scenario cycle into a sample array."""

    def __init__(self, fs: float, rng: np.random.Generator) -> None:
        self.fs, self.rng = fs, rng
        self.normal = _wave(_NORMAL, fs)
        self.ventricular = _wave(_VENTRICULAR, fs)
        self.r_offset = int(0.3 * fs)

    def cycle(self, scenario: tuple[Phase, ...]) -> np.ndarray:
        fs, rng = self.fs, self.rng
        n = int(sum(p.seconds for p in scenario) * fs)
        x = np.zeros(n + int(fs))
        t = 0.4
        for (start, stop, _), phase in zip(scenario_times(scenario), scenario):
            t = self._beats(x, phase, t, stop)
            self._overlay(x, phase, int(start * fs), int(stop * fs))
        x = x[:n]
        x += 0.08 * np.sin(2 * np.pi * 0.2 * np.arange(n) / fs + rng.uniform(0, 6.3))  # wander
        x += rng.normal(0.0, 0.008, n)
        self._technical(x, scenario)
        return x

    def _beats(self, x: np.ndarray, phase: Phase, t: float, stop: float) -> float:
        """Render the beats of one phase from time ``t``; return when the next beat is due."""
        if phase.rhythm in ("pause", "vf", "leadoff"):
            return max(t, stop)
        k = 0
        while t < stop:
            ventricular = (
                (phase.rhythm == "vt")
                or (phase.rhythm == "pvc" and k % 7 == 6)
                or (phase.rhythm == "bigeminy" and k % 2 == 1)
                or (phase.rhythm == "couplet" and k % 5 in (3, 4))
            )
            rr = 60.0 / phase.bpm * self.rng.normal(1.0, 0.02)
            premature = ventricular and phase.rhythm != "vt"
            if premature:
                t -= 0.35 * rr  # comes at 65 % of the RR...
            self._add(x, t, self.ventricular if ventricular else self.normal, ventricular)
            if premature and (phase.rhythm != "couplet" or k % 5 == 4):
                t += 0.35 * rr  # ...and is followed by a compensatory pause
            t += rr
            k += 1
        return t

    def _add(self, x: np.ndarray, t: float, wave: np.ndarray, ventricular: bool) -> None:
        i = int(round(t * self.fs)) - self.r_offset
        lo, hi = max(i, 0), min(i + len(wave), len(x))
        if lo < hi:
            gain = self.rng.normal(1.0, 0.03) * (1.1 if ventricular else 1.0)
            x[lo:hi] += gain * wave[lo - i : hi - i]

    def _overlay(self, x: np.ndarray, phase: Phase, a: int, b: int) -> None:
        """Waveforms that are not beats: fibrillation and muscle noise."""
        rng, fs = self.rng, self.fs
        if phase.rhythm == "vf":
            t = np.arange(b - a) / fs
            freq = 5.0 + 0.6 * np.sin(2 * np.pi * 0.3 * t) + rng.normal(0, 0.05, t.size).cumsum() / 30
            amp = 0.5 + 0.25 * np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6.3))
            x[a:b] += amp * np.sin(2 * np.pi * np.cumsum(freq) / fs)
        elif phase.rhythm == "noise":
            emg = sosfilt(butter(2, 20.0, "highpass", fs=fs, output="sos"), rng.normal(0, 0.2, b - a))
            x[a:b] += emg

    def _technical(self, x: np.ndarray, scenario: tuple[Phase, ...]) -> None:
        """Device faults applied last: a flat line (lead off) and a signal stuck at the rail."""
        for start, stop, rhythm in scenario_times(scenario):
            a, b = int(start * self.fs), int(stop * self.fs)
            if rhythm == "leadoff":
                x[a:b] = 0.0
            elif rhythm == "saturate":
                x[a:b] += 6.0
        np.clip(x, -RAIL_MV, RAIL_MV, out=x)


class SyntheticSource(Source):
    """Endless scripted ECG at 360 Hz (``source_id`` ``synthetic``); ``start_s`` skips ahead."""

    realtime = False

    def __init__(self, seed: int = 0, start_s: float = 0.0, fs: float = PIPELINE_FS,
                 scenario: tuple[Phase, ...] = SCENARIO) -> None:
        super().__init__()
        if start_s < 0:
            raise SourceError(f"--start must be >= 0, got {start_s}")
        self.source_id = "synthetic"
        self.fs = fs
        self._renderer = _Renderer(fs, np.random.default_rng(seed))
        self._scenario = scenario
        self._buf = np.zeros(0)
        self._buf_start = 0
        self._pos = int(round(start_s * fs))
        self.cycles = 0

    def read(self, max_samples: int, timeout: float = 0.1) -> Chunk | None:
        if self._state is not SourceState.CONNECTED:
            return None
        while self._pos >= self._buf_start + len(self._buf):
            self._buf_start += len(self._buf)
            self._buf = self._renderer.cycle(self._scenario)
            self.cycles += 1
        i = self._pos - self._buf_start
        samples = self._buf[i : i + max_samples]
        chunk = Chunk(self._pos, samples)
        self._pos += len(samples)
        return chunk

    def counters(self) -> dict[str, int | float | str]:
        return {"cycles": self.cycles, "position": self._pos}


def scenario_times(scenario: tuple[Phase, ...] = SCENARIO) -> list[tuple[float, float, str]]:
    """(start s, stop s, rhythm) of each phase of one cycle, for tests and documentation."""
    out, start = [], 0.0
    for p in scenario:
        out.append((start, start + p.seconds, p.rhythm))
        start += p.seconds
    return out
