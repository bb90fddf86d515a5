"""The "ECG noisy" advisory: noise that is visibly there although beats can still be counted.

The detector calls a block unreadable (beats labelled Q, life-threatening alarms withheld:
``signal_noisy``) only when noise drowns the beats. Weaker noise leaves the beats countable, so
analysis goes on, but a monitor should still say the trace is noisy: a low-priority technical
alarm that gates nothing. Two signs together, both from what the alarm engine already has:

* noise between the beats: the median over the last ``window_s`` of the blocks' noise ratio
  (``BlockQuality.noise_ratio``, QRS-band activity against the QRS size) above ``ratio``,
  below the detector's own noisy level (0.10);
* beats distorted by it: the beats unlike each other, above ``unlike``: at each beat, 1 - the
  median over the beats of the last ``partners_s`` of each one's best correlation with another
  of them (display band, shifted by up to the VT check's lag), and the median of that over the
  beats of the last ``window_s``. Clean beats of any rhythm repeat
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

from ecg_monitor.detector.quality import BlockQuality, fast_median, shifted_shapes, short_median
from ecg_monitor.detector.ringbuffer import RingBuffer


#: Noise ratio (``quality.py``) above which there is noise between the beats.
NOISE_BETWEEN_BEATS = 0.07


@dataclass(frozen=True)
class AdvisoryConfig:
    window_s: float = 10.0  # look-back of both signs
    ratio: float = NOISE_BETWEEN_BEATS  # median noise ratio above this: noise between the beats
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
        self._window, self._lag = window, lag
        self._partners = int(round(cfg.partners_s * fs))
        self._span = int(round(cfg.window_s * fs))
        self._ratios: deque[float] = deque(maxlen=max(1, int(round(cfg.window_s * fs / block))))
        self._beats: list[tuple[int, np.ndarray]] = []  # recent beats: R sample, unit windows per shift
        self._corr = np.zeros((0, 0))  # their likeness, each pair (diagonal -1: not its own partner)
        self._unlike: deque[tuple[int, float]] = deque()  # (decided at, 1 - best correlation)
        self._run = 0
        self.ratio = self.unlike = 0.0  # the last tick's medians

    def beat(self, sample: int, decided: int, display: RingBuffer) -> None:
        """A beat (R mark ``sample``, known at ``decided``): how unlike are the beats of the last
        ``partners_s``? Each is compared with the others once, when the later one comes (its
        windows at every shift, from ``display``), so a beat costs one row, not the whole table."""
        lag = self._lag
        shifted = shifted_shapes(display, [sample], self._window, lag)
        if shifted is None:  # a gap or a flat line (or not held, which cannot happen): no shape
            return
        shifts = shifted[0]  # (shift, sample)
        keep = [i for i, (r, _) in enumerate(self._beats) if r > sample - self._partners]
        self._beats = [self._beats[i] for i in keep] + [(sample, shifts)]
        corr = np.full((len(self._beats),) * 2, -1.0)
        corr[:-1, :-1] = self._corr[np.ix_(keep, keep)]
        if len(self._beats) > 1:  # (i, j): beat i as it is against beat j at its best shift
            others = np.stack([w for _, w in self._beats[:-1]])  # (beat, shift, sample)
            corr[-1, :-1] = (others @ shifts[lag]).max(axis=1)
            corr[:-1, -1] = (others[:, lag] @ shifts.T).max(axis=1)
        self._corr = corr
        if len(self._beats) >= self.cfg.min_beats:
            self._unlike.append((decided, 1.0 - fast_median(corr.max(axis=1))))

    def tick(self, t: int, q: BlockQuality) -> bool:
        """The block ending at ``t`` was judged ``q``: is the advisory's condition on?"""
        self._ratios.append(q.noise_ratio)
        while self._unlike and self._unlike[0][0] <= t - self._span:
            self._unlike.popleft()
        self.ratio = short_median(self._ratios)
        enough = len(self._unlike) >= self.cfg.min_beats
        self.unlike = short_median(u for _, u in self._unlike) if enough else 0.0
        both = self.ratio > self.cfg.ratio and self.unlike > self.cfg.unlike
        self._run = self._run + 1 if both else 0
        return self._run >= self.cfg.sustain

    def detail(self) -> str:
        return (f"ECG noisy: noise between beats ({self.ratio:.2f} of QRS size over {self.cfg.window_s:.0f} s) "
                f"and beats unlike each other ({1 - self.unlike:.3f} median likeness); beats still counted, "
                "alarms not withheld")
