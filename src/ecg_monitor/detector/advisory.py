"""The "ECG noisy" advisory: noise that is visibly there although beats can still be counted.

The detector calls a block unreadable (beats labelled Q, life-threatening alarms withheld:
``signal_noisy``) only when noise drowns the beats. Weaker noise leaves the beats countable, so
analysis goes on, but a monitor should still say the trace is noisy: a low-priority technical
alarm that gates nothing. Two signs together, both from what the alarm engine already has:

* noise between the beats: the median over the last ``window_s`` of the blocks' noise ratio
  (``BlockQuality.noise_ratio``, QRS-band activity against the QRS size) above ``ratio``,
  below the detector's own noisy level (0.10);
* beats distorted by it: the beats of the last ``window_s`` unlike each other (median over
  them of 1 - each beat's best correlation with another beat of the ``partners_s`` before it,
  shifted by up to the VT check's lag) above ``unlike``. Clean beats of any rhythm repeat
  (MIT-BIH: 0.002-0.005), and so do the wide beats of a VT run; beats under noise do not.

Either sign alone also comes with clean rhythms (a fast or wide-complex rhythm fills the QRS
band; ectopy makes unlike beats); both for ``sustain`` blocks in a row starts the advisory,
either one gone ends it (the alarm's hold keeps a short dip from chattering). Chosen on all 48
MIT-BIH records, clean and with nst em noise at 6 dB (``ecg-eval alarms`` reports both).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.quality import BlockQuality, best_partners
from ecg_monitor.detector.ringbuffer import RingBuffer


@dataclass(frozen=True)
class AdvisoryConfig:
    window_s: float = 10.0  # look-back of both signs
    ratio: float = 0.07  # median noise ratio above this: noise between the beats
    unlike: float = 0.02  # median (1 - best correlation) of the beats above this: distorted beats
    partners_s: float = 6.0  # a beat is compared with the beats this far before it
    min_beats: int = 3  # fewer beats in the window say nothing about their likeness
    sustain: int = 4  # blocks in a row with both signs before the advisory starts


class NoiseAdvisory:
    """Feed every beat (``beat``) and every judged block (``tick``) in time order; ``tick``
    says whether noise is visibly there now, and ``detail`` what was measured."""

    def __init__(self, fs: float, block: int, window: tuple[int, int], lag: int,
                 config: AdvisoryConfig | None = None) -> None:
        self.cfg = cfg = config or AdvisoryConfig()
        self.fs = fs
        self._window, self._lag = window, lag
        self._partners = int(round(cfg.partners_s * fs))
        self._span = int(round(cfg.window_s * fs))
        self._ratios: deque[float] = deque(maxlen=max(1, int(round(cfg.window_s * fs / block))))
        self._recent: deque[int] = deque()  # R samples of the beats a new one is compared with
        self._unlike: deque[tuple[int, float]] = deque()  # (decided at, 1 - best correlation)
        self._run = 0
        self.ratio = self.unlike = 0.0  # the last tick's medians

    @property
    def look_back(self) -> int:
        """Samples of display band a beat's comparison needs behind the newest sample."""
        return self._partners + self._window[0] + 2 * self._lag + self._window[1]

    def beat(self, sample: int, decided: int, display: RingBuffer) -> None:
        """A beat (R mark ``sample``, known at ``decided``): how unlike the beats before it is it?"""
        while self._recent and self._recent[0] <= sample - self._partners:
            self._recent.popleft()
        self._recent.append(sample)
        if len(self._recent) >= self.cfg.min_beats:
            best = best_partners(display, list(self._recent), self._window, self._lag)
            if best is not None:
                self._unlike.append((decided, 1.0 - float(np.median(best))))

    def tick(self, t: int, q: BlockQuality) -> bool:
        """The block ending at ``t`` was judged ``q``: is the advisory's condition on?"""
        self._ratios.append(q.noise_ratio)
        while self._unlike and self._unlike[0][0] <= t - self._span:
            self._unlike.popleft()
        self.ratio = float(np.median(self._ratios))
        self.unlike = float(np.median([u for _, u in self._unlike])) if len(self._unlike) >= self.cfg.min_beats else 0.0
        both = self.ratio > self.cfg.ratio and self.unlike > self.cfg.unlike
        self._run = self._run + 1 if both else 0
        return self._run >= self.cfg.sustain

    def detail(self) -> str:
        return (f"ECG noisy: noise between beats ({self.ratio:.2f} of QRS size over {self.cfg.window_s:.0f} s) "
                f"and beats unlike each other ({1 - self.unlike:.3f} median likeness); beats still counted, "
                "alarms not withheld")
