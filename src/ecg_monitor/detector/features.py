"""Beat features at emission time: the one implementation used by training and the live pipeline.

For each detected beat the classifier sees

* **morphology**: the display-band ECG (0.5-40 Hz) from ``pre_s`` before to ``post_s`` after the
  R mark, averaged over pairs of samples (360 -> 180 Hz), minus its median, in units of the
  patient's usual QRS amplitude; and beside it the patient's usual beat, the running median of
  the windows of the last ``history_beats`` beats that came on time (pre-RR at least
  ``on_time_ratio`` of the local mean), so frequent ectopic beats do not become the norm;
* **rhythm**, from the past only: the RR before the beat, the RR before that, the mean of the 10
  RRs before it (local) and of those in the 5 minutes before it (long-term), their log ratios,
  and the irregularity of the local RRs (median absolute successive difference / median RR: high
  in atrial fibrillation, where an early beat is no sign of an ectopic one; medians, because AF is
  irregular beat after beat, while a few pauses or ectopic beats in sinus rhythm, which would
  inflate a mean, must not make early beats look like AF).

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

from collections import deque
from dataclasses import asdict, dataclass, replace
from itertools import islice

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.detector.beats import Beat
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
AF_CONTEXT_FEATURES: tuple[str, ...] = RHYTHM_FEATURES[16:]

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
    history_beats: int = 16  # on-time beats in the usual beat and amplitude (running medians)
    on_time_ratio: float = 0.85  # pre-RR / local mean RR from which a beat counts as on time
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
        c = spec.pre // spec.decimate
        self._qrs = slice(max(0, c - q), c + q + 1)
        p0, p1 = (int(round(t * spec.fs / spec.decimate)) for t in spec.p_wave_s)
        self._p_wave = slice(max(0, c - p0), c - p1)
        self._on_time = float(np.log(spec.on_time_ratio))
        self._last_value = np.nan
        self._run = 0  # length of the current run of equal input samples
        self._since_gap = self._settle  # samples since the last missing one
        self._pending: deque[Beat] = deque()
        self._last_r: int | None = None
        self._rr: deque[tuple[int, int]] = deque()  # (R mark, RR before it) within long_s
        self._rr_sum = 0
        self._amps: deque[float] = deque(maxlen=spec.history_beats)
        self._shapes: deque[np.ndarray] = deque(maxlen=spec.history_beats)

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
        out = self._ready()
        for i in range(0, raw.size, self._block):
            self._append(raw[i : i + self._block], filtered[i : i + self._block])
            out.extend(self._ready())
        return out

    def flush(self, beats: list[Beat] = ()) -> list[tuple[Beat, BeatFeatures]]:
        """End of stream: the beats still waiting (and ``beats``) get what they have: unusable."""
        self._pending.extend(beats)
        out = []
        while self._pending:
            beat = self._pending.popleft()
            out.append((replace(beat, emitted_at=max(beat.emitted_at, self.n), detected_at=beat.emitted_at), self._features(beat, usable=False)))
        return out

    # ------------------------------------------------------------------ samples
    def _append(self, raw: np.ndarray, filtered: np.ndarray) -> None:
        """Store the band-passed block and which of its samples a window must not touch."""
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
        self._ecg.extend(np.where(missing, np.nan, filtered))  # NaN marks a gap for the RR check
        self._bad.extend(missing | (run >= self._flat_len) | (since <= self._settle))

    def _ready(self) -> list[tuple[Beat, BeatFeatures]]:
        out = []
        while self._pending and self._pending[0].sample + self.spec.post <= self.n:
            beat = self._pending.popleft()
            done = max(beat.emitted_at, beat.sample + self.spec.post)
            out.append((replace(beat, emitted_at=done, detected_at=beat.emitted_at), self._features(beat)))
        return out

    # ------------------------------------------------------------------ one beat
    def _features(self, beat: Beat, usable: bool = True) -> BeatFeatures:
        rhythm, short = self._rhythm(beat.sample)
        lo, hi = beat.sample - self.spec.pre, beat.sample + self.spec.post
        usable = usable and lo >= self._ecg.start and hi <= self._ecg.end and not self._bad.get(lo, hi).any()
        if not usable:
            morph = np.zeros((len(MORPHOLOGY_CHANNELS), self.spec.window), dtype=np.float32)
        else:
            on_time = short or rhythm[_PRE_OVER_LOCAL] >= self._on_time
            morph = self._morphology(self._ecg.get(lo, hi), on_time)
            rhythm[_TEMPLATE] = self._template_features(morph)
        return BeatFeatures(morphology=morph, rhythm=rhythm, usable=usable, short_history=short)

    def _template_features(self, morph: np.ndarray) -> np.ndarray:
        """The beat against the usual beat: QRS correlation, amplitude and width ratios, and the
        size of the wave before each (P wave, or fibrillatory waves in AF)."""
        beat, usual = morph[:, self._qrs]
        corr = float(np.corrcoef(beat, usual)[0, 1]) if beat.std() > 1e-6 and usual.std() > 1e-6 else 0.0
        ratio = lambda a, b: float(np.log(max(a, 1e-3) / max(b, 1e-3)))  # noqa: E731 - local helper
        p_beat, p_usual = (float(np.std(x)) for x in morph[:, self._p_wave])
        return np.array([corr, ratio(np.ptp(beat), np.ptp(usual)), ratio(_qrs_width(beat), _qrs_width(usual)),
                         p_beat, p_usual], np.float32)

    def _morphology(self, w: np.ndarray, on_time: bool) -> np.ndarray:
        """Beat and usual beat, baseline removed, in units of the usual QRS amplitude.

        The usual beat and amplitude come from the recent beats that arrived on time (not
        premature), so that frequent ectopic beats do not become the patient's norm.
        """
        x = w.reshape(-1, self.spec.decimate).mean(axis=1)
        x = x - np.median(x)
        amp = float(np.ptp(x[self._qrs]))
        if self._shapes:
            usual = np.median(np.stack(self._shapes), axis=0)
            scale = float(np.median(self._amps))
        else:
            usual, scale = x, amp
        if on_time or not self._shapes:
            self._shapes.append(x)
            self._amps.append(amp)
        return (np.stack([x, usual]) / max(scale, self.spec.min_amplitude_mv)).astype(np.float32)

    def _rhythm(self, r: int) -> tuple[np.ndarray, bool]:
        """Pre-RR features of the beat at ``r``, then add its RR to the history."""
        known_pre = self._pre_rr(r)
        self._last_r = r
        while self._rr and self._rr[0][0] < r - self.spec.long_s * self.spec.fs:
            self._rr_sum -= self._rr.popleft()[1]
        n_past = len(self._rr)
        short = n_past + (known_pre is not None) < self.spec.min_rr_history
        last_rr = self._rr[-1][1] if n_past else self.spec.default_rr_s * self.spec.fs
        pre = known_pre if known_pre is not None else last_rr
        prev = last_rr if n_past else pre
        recent = np.array([rr for _, rr in islice(reversed(self._rr), self.spec.local_beats)], dtype=float)
        local = float(recent.mean()) if recent.size else prev
        irregular = float(np.median(np.abs(np.diff(recent))) / np.median(recent)) if recent.size > 1 else 0.0
        long = self._rr_sum / n_past if n_past else prev
        context = np.array([rr for _, rr in islice(reversed(self._rr), self.spec.context_beats)], dtype=float)
        if context.size > 2:
            jumps = np.abs(np.diff(context)) / np.median(context)
            context_irregular, jump_fraction = float(np.median(jumps)), float(np.mean(jumps > self.spec.jump_ratio))
        else:
            context_irregular = jump_fraction = 0.0
        if known_pre is not None:
            self._rr.append((r, known_pre))
            self._rr_sum += known_pre
        fs, lg = self.spec.fs, np.log
        values = (pre / fs, prev / fs, local / fs, long / fs, lg(pre / local), lg(pre / long),
                  lg(local / long), lg(prev / local), lg(pre / prev), irregular, float(short),
                  1.0, 0.0, 0.0, 0.0, 0.0,  # template features: set once the window is complete
                  context_irregular, jump_fraction)
        return np.asarray(values, dtype=np.float32), short

    def _pre_rr(self, r: int) -> int | None:
        """RR before the beat; None (and the history restarts) when it is unknown, too long or
        spans missing samples."""
        last = self._last_r
        if last is None:
            return None
        rr = r - last
        if rr > self._max_rr or last < self._ecg.start or np.isnan(self._ecg.get(last, r + 1)).any():
            self._rr.clear()
            self._rr_sum = 0
            return None
        return rr


_PRE_OVER_LOCAL = RHYTHM_FEATURES.index("log_pre_over_local")
_TEMPLATE = [RHYTHM_FEATURES.index(n) for n in TEMPLATE_FEATURES]


def _qrs_width(x: np.ndarray) -> float:
    """Samples between 10 % and 90 % of the cumulative slope energy: a QRS width that needs no
    onset/offset detector and grows with a wide (bundle branch or ventricular) complex."""
    e = np.cumsum(np.diff(x) ** 2)
    if e[-1] <= 0:
        return 0.0
    return float(np.searchsorted(e, 0.9 * e[-1]) - np.searchsorted(e, 0.1 * e[-1]))


def extract_features(
    raw: np.ndarray, filtered: np.ndarray, beats: list[Beat], spec: FeatureSpec | None = None
) -> list[tuple[Beat, BeatFeatures]]:
    """Features of every beat of a whole recording: the streaming extractor fed in one go."""
    extractor = BeatFeatureExtractor(spec)
    return extractor.update(raw, filtered, beats) + extractor.flush()
