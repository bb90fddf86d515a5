"""Beat features at emission time: the one implementation used by training and the live pipeline.

For each detected beat the classifier sees

* **morphology**: the display-band ECG (0.5-40 Hz) from ``pre_s`` before to ``post_s`` after the
  R mark, averaged over pairs of samples (360 -> 180 Hz), minus its median, in units of the
  patient's usual QRS amplitude; and beside it the patient's usual beat, the running median of
  the windows of the last ``history_beats`` beats admitted to it (see below);
* **rhythm**, from the past only: the RR before the beat, the RR before that, the mean of the 10
  RRs before it (local) and of those in the 5 minutes before it (long-term), their log ratios,
  and the irregularity of the local RRs (median absolute successive difference / median RR: high
  in atrial fibrillation, where an early beat is no sign of an ectopic one; medians, because AF is
  irregular beat after beat, while a few pauses or ectopic beats in sinus rhythm, which would
  inflate a mean, must not make early beats look like AF).

**The usual beat learns only from beats that look like it.** A beat is admitted when it came on
time (pre-RR at least ``on_time_ratio`` of the local mean) and, once the usual beat holds
``history_beats`` beats, its QRS correlates with the usual one by at least ``admit_correlation``
with an amplitude within ``admit_amplitude_ratio`` of it. So a run of ventricular beats, which is
"on time" once the local mean has followed its rate, does not turn the usual beat into the V shape
after a few beats, and the rest of the run is still read as unlike the patient's beat. When no
beat has been admitted for ``relearn_s`` (the patient's beat really changed, e.g. a bundle branch
block came or went), the usual beat restarts from the next on-time beats.

Nothing after the window's end is used: no post-RR, no record-level statistics, no later beat.
A beat is therefore ready ``post_s`` after its R mark (or when the detector emits it, if later).

Bad input:

* **short rhythm history** - a beat with fewer than ``min_rr_history`` RR intervals behind it
  (start of the stream, or after a gap or an RR longer than ``max_rr_s``, which restart the
  history) is treated as if the rhythm were regular: unknown RRs take the value of the latest
  known one (``default_rr_s`` when none is known), so every ratio is 1, and it is flagged
  ``short_history`` (a model input and a field of the result);
* **unusable window** - a window that touches a missing sample (NaN), the ``settle_s`` after a
  gap (the band-pass is still ringing), a stretch of constant input longer than ``flat_s``
  (a saturated or disconnected amplifier), or the stream's start or end is not classified: the
  beat is labelled Q by the classifier without running the model.

:class:`BeatFeatureExtractor` is streaming and chunk-invariant (beats are handled strictly in
sample order from samples in a ring buffer); :func:`extract_features` runs the same object over a
whole recording for training and offline evaluation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.quality import fast_median, row_medians, row_stds, short_median
from ecg_monitor.detector.ringbuffer import RingBuffer

#: Names of the rhythm features, in the order of :attr:`BeatFeatures.rhythm`.
RHYTHM_FEATURES: tuple[str, ...] = (
    "pre_rr_s",
    "prev_rr_s",
    "local_rr_s",
    "long_rr_s",
    "log_pre_over_local",
    "log_pre_over_long",
    "log_local_over_long",
    "log_prev_over_local",
    "log_pre_over_prev",
    "local_irregularity",
    "short_history",
    # relative to the patient's usual beat (a patient whose every beat is wide is not "wide")
    "template_correlation",
    "log_amplitude_ratio",
    "log_qrs_width_ratio",
    "p_wave_rms",
    "usual_p_wave_rms",
    # AF-aware rhythm context over the last ``context_beats`` RRs
    "context_irregularity",
    "context_jump_fraction",
)

#: The features the first classifier (issue #3) used; the others are added by this version.
BASE_RHYTHM_FEATURES: tuple[str, ...] = RHYTHM_FEATURES[:11]
TEMPLATE_FEATURES: tuple[str, ...] = RHYTHM_FEATURES[11:16]

#: Channels of :attr:`BeatFeatures.morphology`.
MORPHOLOGY_CHANNELS: tuple[str, ...] = ("beat", "running_median_beat")


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that defines the features; stored in the model metadata and checked on load."""

    fs: float = PIPELINE_FS
    pre_s: float = 0.25
    post_s: float = 0.40
    decimate: int = 2
    qrs_half_s: float = 0.10  # half-width of the QRS region whose peak-to-peak is the amplitude
    history_beats: int = 16  # admitted beats in the usual beat and amplitude (running medians)
    on_time_ratio: float = 0.85  # pre-RR / local mean RR from which a beat counts as on time
    admit_correlation: float = 0.8  # QRS correlation with the usual beat needed to join it
    admit_amplitude_ratio: float = 2.0  # and QRS amplitude within this factor of the usual one
    relearn_s: float = 30.0  # no beat admitted for this long: the usual beat starts again
    min_amplitude_mv: float = 0.05
    local_beats: int = 10
    context_beats: int = 16  # RRs of the AF-aware irregularity context
    jump_ratio: float = 0.12  # successive RR change, relative to the median RR, that counts as a jump
    p_wave_s: tuple[float, float] = (0.25, 0.08)  # before the R mark: where the P wave is looked for
    long_s: float = 300.0
    min_rr_history: int = 3
    default_rr_s: float = 0.8
    max_rr_s: float = 10.0
    flat_s: float = 0.05
    settle_s: float = 0.5
    buffer_s: float = 12.0

    @property
    def pre(self) -> int:
        return int(round(self.pre_s * self.fs))

    @property
    def post(self) -> int:
        """Samples after the R mark; rounded so that the window splits into whole pairs."""
        n = int(round((self.pre_s + self.post_s) * self.fs / self.decimate)) * self.decimate
        return n - self.pre

    @property
    def window(self) -> int:
        """Length of the morphology input (after decimation)."""
        return (self.pre + self.post) // self.decimate

    def to_dict(self) -> dict:
        return {**asdict(self), "window": self.window, "rhythm_features": list(RHYTHM_FEATURES),
                "morphology_channels": list(MORPHOLOGY_CHANNELS)}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        names = cls.__dataclass_fields__
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class BeatFeatures:
    """Classifier input for one beat (``usable`` False: label Q, do not run the model)."""

    morphology: np.ndarray  # (channels, window) float32
    rhythm: np.ndarray  # (len(RHYTHM_FEATURES),) float32
    usable: bool
    short_history: bool


class BeatFeatureExtractor:
    """Turns the sample stream and the detector's beats into per-beat features, causally.

    ``update(raw, filtered, beats)`` takes the chunk as received (NaN = missing), the same chunk
    band-passed by the detector and the beats the detector emitted, and returns ``(beat,
    features)`` for every beat whose window is complete, with ``emitted_at`` moved to the sample
    count at which that happened.
    """

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec = spec or FeatureSpec()
        cap = int(round(spec.buffer_s * spec.fs))
        self._block = cap // 4
        self._ecg = RingBuffer(cap)
        self._bad = RingBuffer(cap, dtype=np.bool_)
        self._flat_len = max(2, int(round(spec.flat_s * spec.fs)))
        self._settle = int(round(spec.settle_s * spec.fs))
        self._max_rr = int(round(spec.max_rr_s * spec.fs))
        q = int(round(spec.qrs_half_s * spec.fs / spec.decimate))
        self._pre, self._post = spec.pre, spec.post  # the window around R (properties: computed on each read)
        c = spec.pre // spec.decimate
        self._qrs = slice(max(0, c - q), c + q + 1)
        p0, p1 = (int(round(t * spec.fs / spec.decimate)) for t in spec.p_wave_s)
        self._p_wave = slice(max(0, c - p0), c - p1)
        self._on_time = float(np.log(spec.on_time_ratio))
        self._admit_amp = float(np.log(spec.admit_amplitude_ratio))
        self._relearn = int(round(spec.relearn_s * spec.fs))
        self._last_value = np.nan
        self._run = 0  # length of the current run of equal input samples
        self._since_gap = self._settle  # samples since the last missing one
        self._pending: deque[Beat] = deque()
        self._last_r: int | None = None
        self._rr: deque[tuple[int, int]] = deque()  # (R mark, RR before it) within long_s
        self._rr_sum = 0
        self._recent: deque[int] = deque(maxlen=max(spec.local_beats, spec.context_beats))  # latest RRs
        self._steps: deque[int] = deque(maxlen=self._recent.maxlen - 1)  # |changes| between them
        self._usual = UsualBeat(spec.history_beats, spec.window, self._qrs, self._p_wave, spec.min_amplitude_mv)
        self._admitted_at = 0  # R mark of the last beat admitted to the usual beat

    @property
    def n(self) -> int:
        """Samples received so far."""
        return self._ecg.end

    def update(self, raw: np.ndarray, filtered: np.ndarray, beats: list[Beat]) -> list[tuple[Beat, BeatFeatures]]:
        raw = np.asarray(raw, dtype=np.float64).ravel()
        filtered = np.asarray(filtered, dtype=np.float64).ravel()
        if raw.shape != filtered.shape:
            raise ValueError(f"raw ({raw.size}) and filtered ({filtered.size}) chunks differ in length")
        self._pending.extend(beats)
        waiting = self._take_ready()
        if raw.size:
            stored, bad = self._marked(raw, filtered)
            for i in range(0, raw.size, self._block):  # a quarter of the history at a time
                self._ecg.extend(stored[i : i + self._block])
                self._bad.extend(bad[i : i + self._block])
                waiting.extend(self._take_ready())
        return self._finish(waiting)

    def flush(self, beats: list[Beat] = ()) -> list[tuple[Beat, BeatFeatures]]:
        """End of stream: the beats still waiting (and ``beats``) get what they have: unusable."""
        self._pending.extend(beats)
        waiting = [self._waiting(b.ready_at(max(b.emitted_at, self.n)), None, 0.0) for b in self._pending]
        self._pending.clear()
        return self._finish(waiting)

    # ------------------------------------------------------------------ samples
    def _marked(self, raw: np.ndarray, filtered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The band-passed chunk to store (NaN where input is missing) and which of its samples
        a window must not touch."""
        missing = ~np.isfinite(raw)
        same = np.empty(raw.size, dtype=bool)
        same[0] = raw[0] == self._last_value
        same[1:] = raw[1:] == raw[:-1]
        idx = np.arange(raw.size)
        start = np.maximum.accumulate(np.where(same, -1, idx))
        run = np.where(start < 0, self._run + idx + 1, idx - start + 1)
        gap = np.maximum.accumulate(np.where(missing, idx, -1))
        since = np.where(gap < 0, self._since_gap + idx + 1, idx - gap)
        self._last_value, self._run, self._since_gap = raw[-1], int(run[-1]), int(since[-1])
        # NaN marks a gap for the RR check
        return np.where(missing, np.nan, filtered), missing | (run >= self._flat_len) | (since <= self._settle)

    def _take_ready(self) -> list[_Waiting]:
        """The pending beats whose window is complete, with their windows (cut together) and
        rhythm features; their template features wait for :meth:`_finish`."""
        post = self._post
        ready = []
        while self._pending and self._pending[0].sample + post <= self._ecg.end:
            ready.append(self._pending.popleft())
        if not ready:
            return []
        shapes = self._shapes([b.sample for b in ready])
        return [self._waiting(b.ready_at(max(b.emitted_at, b.sample + post)), x, amp)
                for b, (x, amp) in zip(ready, shapes)]

    def _waiting(self, beat: Beat, x: np.ndarray | None, amp: float) -> _Waiting:
        rhythm, short = self._rhythm(beat.sample)
        return _Waiting(beat, rhythm, short, x, amp)

    def _shapes(self, samples: list[int]) -> list[tuple[np.ndarray | None, float]]:
        """Per R mark: its morphology window (decimated, minus its median) and QRS amplitude, or
        None when the window is not usable (not held, or touching a gap, flat line or settling)."""
        n, start, end = self._pre + self._post, self._ecg.start, self._ecg.end
        out: list[tuple[np.ndarray | None, float]] = [(None, 0.0)] * len(samples)
        held = [i for i, r in enumerate(samples) if start <= r - self._pre and r - self._pre + n <= end]
        if not held:
            return out
        lo = np.array([samples[i] - self._pre for i in held])
        bad = self._bad.rows(lo, n).any(axis=1).tolist()
        w = self._ecg.rows(lo, n)  # bad ones too: one gather, their shapes left unused
        dec = self.spec.decimate
        x = 0.5 * (w[:, 0::2] + w[:, 1::2]) if dec == 2 else w.reshape(w.shape[0], -1, dec).mean(axis=2)
        x -= row_medians(x)[:, None]
        qrs = x[:, self._qrs]
        for i, row, amp, unusable in zip(held, x, (qrs.max(axis=1) - qrs.min(axis=1)).tolist(), bad):
            if not unusable:
                out[i] = (row, amp)
        return out

    # ------------------------------------------------------------------ beats in order
    def _finish(self, waiting: list[_Waiting]) -> list[tuple[Beat, BeatFeatures]]:
        """Complete the waiting beats' features: template features and morphology of the usable
        ones (see :meth:`_templates`); an unusable window gives zeros and no template."""
        if not waiting:
            return []
        rhythm = self._rhythm_features([w.rhythm for w in waiting])
        morph = np.zeros((len(waiting), len(MORPHOLOGY_CHANNELS), self.spec.window), dtype=np.float32)
        usable = [k for k, w in enumerate(waiting) if w.x is not None]
        if usable:
            on_time = [v >= self._on_time for v in rhythm[usable, _PRE_OVER_LOCAL].tolist()]
            rhythm[usable, _TEMPLATE] = self._templates([waiting[k] for k in usable], on_time, morph, usable)
        return [(w.beat, BeatFeatures(morphology=morph[k], rhythm=rhythm[k], usable=w.x is not None,
                                      short_history=w.short)) for k, w in enumerate(waiting)]

    def _rhythm_features(self, rows: list[tuple[float, ...]]) -> np.ndarray:
        """The rhythm features (float32, in :data:`RHYTHM_FEATURES` order, template ones left at
        1, 0, 0, 0, 0) of beats from what :meth:`_rhythm` measured."""
        a = np.array(rows, dtype=np.float64)
        out = np.empty((len(rows), len(RHYTHM_FEATURES)), np.float32)
        out[:, :4] = a[:, :4]  # RRs, s
        out[:, 4:9] = np.log(a[:, 4:9].copy())  # their ratios (the log of a contiguous array, as of a list)
        out[:, 9:11] = a[:, 9:11]  # irregularity, short history
        out[:, _TEMPLATE] = (1.0, 0.0, 0.0, 0.0, 0.0)  # template features: set once the window is complete
        out[:, _TEMPLATE.stop :] = a[:, 11:]  # AF context
        return out

    def _templates(self, beats: list[_Waiting], on_time: list[bool], morph: np.ndarray, rows: list[int]) -> np.ndarray:
        """Template features of usable beats (QRS correlation, amplitude and width ratios, and
        the size of the wave before each: P wave, or fibrillatory waves in AF), their morphology
        (beat and usual beat in units of the usual QRS amplitude) written to ``morph[rows]``.

        Each beat is compared with the usual beat as the beats before it left it, and may join
        it: that walk is beat by beat, but only the correlation and amplitude it needs are
        computed there; the rest is computed for all the beats together.
        """
        k, usual = len(beats), self._usual
        qrs = np.empty((k, self._qrs.stop - self._qrs.start))  # each beat's QRS, mean removed
        refs, corr = [], []
        for j, (w, punctual, row) in enumerate(zip(beats, on_time, rows)):
            ref, m = usual.reference(w.x, w.amp), morph[row]
            m[0], m[1] = w.x * ref.unit, ref.row  # assignment rounds to float32 as astype does
            b = qrs[j]
            b[:] = m[0, self._qrs]
            b -= b.sum() / b.size
            refs.append(ref)
            corr.append(ref.correlation(b))
            if w.short or punctual:
                self._learn(w, b, ref, corr[-1])
        spans = qrs.max(axis=1) - qrs.min(axis=1)
        template = np.empty((k, len(TEMPLATE_FEATURES)), np.float32)
        template[:, 0] = corr
        usual_beats = np.array([r.beat for r in refs])
        widths = _qrs_widths(np.concatenate([qrs, usual_beats[:, self._qrs]])).reshape(2, k)  # beats', usual beats'
        template[:, 1:3] = _log_ratios(np.array([spans, widths[0]]), np.array([[r.span for r in refs], widths[1]])).T
        template[:, 3] = row_stds(morph[rows, 0, self._p_wave])
        template[:, 4] = row_stds(usual_beats[:, self._p_wave]) * [r.unit for r in refs]
        return template

    def _learn(self, w: _Waiting, qrs: np.ndarray, ref: _Reference, corr: float) -> None:
        """Admit a beat that came on time to the usual beat if it looks like it (any such beat
        while the usual beat is filling, or after ``relearn_s`` without a match); ``qrs`` and
        ``corr``: its QRS compared with ``ref``, the usual beat it was compared with."""
        r = w.beat.sample
        if r - self._admitted_at > self._relearn:
            self._usual.clear()
        if self._usual.full and (np.float32(corr) < self.spec.admit_correlation or abs(
                np.float32(_log_ratios(qrs.max() - qrs.min(), ref.span))) > self._admit_amp):
            return
        self._usual.add(w.x, w.amp)
        self._admitted_at = r

    def _rhythm(self, r: int) -> tuple[tuple[float, ...], bool]:
        """The pre-RR features of the beat at ``r`` as plain numbers, their logs not yet taken
        (see :meth:`_rhythm_features`), then add its RR to the history."""
        known_pre = self._pre_rr(r)
        self._last_r = r
        while self._rr and self._rr[0][0] < r - self.spec.long_s * self.spec.fs:
            self._rr_sum -= self._rr.popleft()[1]
        n_past = len(self._rr)
        short = n_past + (known_pre is not None) < self.spec.min_rr_history
        last_rr = self._rr[-1][1] if n_past else self.spec.default_rr_s * self.spec.fs
        pre = known_pre if known_pre is not None else last_rr
        prev = last_rr if n_past else pre
        rrs, steps = list(self._recent), list(self._steps)  # oldest first
        recent = rrs[-self.spec.local_beats:]
        local = sum(recent) / len(recent) if recent else prev
        irregular = short_median(steps[1 - len(recent):]) / short_median(recent) if len(recent) > 1 else 0.0
        long = self._rr_sum / n_past if n_past else prev
        context = rrs[-self.spec.context_beats:]
        if len(context) > 2:
            mid = short_median(context)
            jumps = [step / mid for step in steps[1 - len(context):]]
            context_irregular = short_median(jumps)
            jump_fraction = sum(j > self.spec.jump_ratio for j in jumps) / len(jumps)
        else:
            context_irregular = jump_fraction = 0.0
        if known_pre is not None:
            self._rr.append((r, known_pre))
            self._rr_sum += known_pre
            if self._recent:
                self._steps.append(abs(known_pre - self._recent[-1]))
            self._recent.append(known_pre)
        fs = self.spec.fs
        return (pre / fs, prev / fs, local / fs, long / fs, pre / local, pre / long, local / long, prev / local,
                pre / prev, irregular, float(short), context_irregular, jump_fraction), short

    def _pre_rr(self, r: int) -> int | None:
        """RR before the beat; None (and the history restarts) when it is unknown, too long or
        spans missing samples."""
        last = self._last_r
        if last is None:
            return None
        rr = r - last
        if rr > self._max_rr or last < self._ecg.start or np.isnan(self._ecg.get(last, r + 1)).any():
            self._rr.clear()
            self._recent.clear()
            self._steps.clear()
            self._rr_sum = 0
            return None
        return rr


class _Waiting(NamedTuple):
    """A beat whose window is complete, its template features still to come."""

    beat: Beat  # as given out
    rhythm: tuple[float, ...]  # what its rhythm features come from (see _rhythm)
    short: bool  # short rhythm history
    x: np.ndarray | None  # morphology window (decimated, minus its median); None: unusable
    amp: float  # QRS amplitude of x


class _Reference(NamedTuple):
    """The usual beat as beats are compared with it, in units of the usual QRS amplitude."""

    beat: np.ndarray  # the usual beat
    unit: float  # 1 / the usual QRS amplitude
    row: np.ndarray  # beat times unit, float32 (the model's second channel)
    qrs: np.ndarray  # the QRS region of row, float64, mean removed
    energy: float  # qrs . qrs
    span: float  # peak-to-peak of qrs

    def correlation(self, qrs: np.ndarray) -> float:
        """Correlation of a beat's QRS (float64, mean removed) with the usual one."""
        norm = math.sqrt(float(np.dot(qrs, qrs) * self.energy))
        return float(np.dot(qrs, self.qrs)) / norm if norm > 1e-12 else 0.0


class UsualBeat:
    """The patient's usual beat: running medians of the last ``size`` admitted beat windows and
    QRS amplitudes, kept in preallocated arrays; what beats are compared with is computed once
    per admitted beat, when the next beat needs it."""

    def __init__(self, size: int, window: int, qrs: slice, p_wave: slice, min_amplitude: float) -> None:
        self._shapes = np.zeros((window, size))  # a column per admitted beat: medians along rows
        self._amps = np.zeros(size)
        self._qrs, self._p_wave, self._min_amplitude = qrs, p_wave, min_amplitude
        self._n = self._next = 0
        self._ref: _Reference | None = None

    @property
    def full(self) -> bool:
        return self._n == len(self._amps)

    def clear(self) -> None:
        self._n = self._next = 0
        self._ref = None

    def add(self, x: np.ndarray, amp: float) -> None:
        self._shapes[:, self._next], self._amps[self._next] = x, amp
        self._next = (self._next + 1) % len(self._amps)
        self._n = min(self._n + 1, len(self._amps))
        self._ref = None

    def reference(self, x: np.ndarray, amp: float) -> _Reference:
        """What the beat ``x`` (QRS amplitude ``amp``) is compared with: the usual beat, or the
        beat itself while there is no usual beat yet."""
        if not self._n:
            return self._reference(x, amp)
        if self._ref is None:  # medians per sample, over the admitted windows
            self._ref = self._reference(row_medians(self._shapes[:, : self._n]), fast_median(self._amps[: self._n]))
        return self._ref

    def _reference(self, beat: np.ndarray, scale: float) -> _Reference:
        unit = 1.0 / max(scale, self._min_amplitude)
        row = (beat * unit).astype(np.float32)
        qrs = row[self._qrs].astype(np.float64)
        qrs = qrs - qrs.sum() / qrs.size
        return _Reference(beat, unit, row, qrs, np.dot(qrs, qrs), qrs.max() - qrs.min())


_PRE_OVER_LOCAL = RHYTHM_FEATURES.index("log_pre_over_local")
_TEMPLATE = slice(RHYTHM_FEATURES.index(TEMPLATE_FEATURES[0]), RHYTHM_FEATURES.index(TEMPLATE_FEATURES[-1]) + 1)


def _qrs_widths(x: np.ndarray) -> np.ndarray:
    """Per row, samples between 10 % and 90 % of the cumulative slope energy (0 for a flat one):
    a QRS width that needs no onset/offset detector and grows with a wide (bundle branch or
    ventricular) complex."""
    d = x[:, 1:] - x[:, :-1]
    e = np.cumsum(d * d, axis=1)  # non-decreasing: counting what lies between is a sorted search
    last = e[:, -1:]
    return ((e >= 0.1 * last) & (e < 0.9 * last)).sum(axis=1)  # none when flat (all 0)


def _log_ratios(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """log(a / b), both floored at 1e-3 (amplitude and width ratios: a flat QRS is not 0)."""
    return np.log(np.maximum(a, 1e-3) / np.maximum(b, 1e-3))


def extract_features(
    raw: np.ndarray, filtered: np.ndarray, beats: list[Beat], spec: FeatureSpec | None = None
) -> list[tuple[Beat, BeatFeatures]]:
    """Features of every beat of a whole recording: the streaming extractor fed in one go."""
    extractor = BeatFeatureExtractor(spec)
    return extractor.update(raw, filtered, beats) + extractor.flush()
