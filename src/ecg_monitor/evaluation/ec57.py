"""Beat-by-beat comparison in the manner of ANSI/AAMI EC57 (PhysioNet's ``bxb``).

A detected beat matches a reference beat when they are at most 150 ms apart; each beat matches
at most once, the nearer pairing winning. Scores can skip the first five minutes (EC57's learning
period) and exclude ventricular flutter/fibrillation episodes (``[`` ... ``]``), where beats are
not defined.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ecg_monitor.replay.records import Record, read_annotations

#: AAMI EC57 classes of the beat symbols. e and j (escape beats) follow EC57/bxb into S.
AAMI_OF_SYMBOL: dict[str, str] = {
    **dict.fromkeys("N L R B".split(), "N"),
    **dict.fromkeys("A a J S e j n".split(), "S"),
    **dict.fromkeys("V E r".split(), "V"),
    "F": "F",
    **dict.fromkeys("/ f Q ?".split(), "Q"),
}

#: Annotation symbols that mark a beat (WFDB ``isqrs``), excluding ventricular flutter waves ``!``.
BEAT_SYMBOLS = frozenset(AAMI_OF_SYMBOL)

MATCH_WINDOW_S = 0.150
SKIP_S = 300.0


def match_window(fs: float) -> int:
    """The 150 ms match window in samples at ``fs``, so every scorer pairs beats alike."""
    return int(round(MATCH_WINDOW_S * fs))


def pct(x: float) -> str:
    """A fraction as a 6-wide percentage for the reports ("n/a" when undefined)."""
    return "   n/a" if np.isnan(x) else f"{100 * x:6.2f}"


@dataclass(frozen=True)
class Matching:
    """Index pairs of matched beats and the indices left over on each side."""

    pairs: np.ndarray  # shape (k, 2): reference index, detected index
    missed: np.ndarray  # reference indices with no detection (FN)
    extra: np.ndarray  # detected indices with no reference (FP)


def match_beats(reference: np.ndarray, detected: np.ndarray, window: int) -> Matching:
    """One-to-one matching of two sorted beat-time lists within ``window`` samples."""
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    pairs, missed, extra = [], [], []
    i = j = 0
    while i < len(ref) and j < len(det):
        d = det[j] - ref[i]
        if abs(d) > window:
            if d < 0:
                extra.append(j)
                j += 1
            else:
                missed.append(i)
                i += 1
            continue
        # Within the window: let the next beat on either side take this one if it is closer.
        if j + 1 < len(det) and abs(det[j + 1] - ref[i]) < abs(d) and (
            i + 1 >= len(ref) or abs(det[j + 1] - ref[i]) <= abs(det[j + 1] - ref[i + 1])
        ):
            extra.append(j)
            j += 1
            continue
        if i + 1 < len(ref) and abs(ref[i + 1] - det[j]) < abs(d) and (
            j + 1 >= len(det) or abs(ref[i + 1] - det[j]) <= abs(ref[i + 1] - det[j + 1])
        ):
            missed.append(i)
            i += 1
            continue
        pairs.append((i, j))
        i += 1
        j += 1
    missed.extend(range(i, len(ref)))
    extra.extend(range(j, len(det)))
    return Matching(
        pairs=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        missed=np.asarray(missed, dtype=np.int64),
        extra=np.asarray(extra, dtype=np.int64),
    )


@dataclass
class DetectionScore:
    """TP/FN/FP counts with sensitivity and positive predictivity."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    offsets: list[np.ndarray] = field(default_factory=list, repr=False)  # detected - reference

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def __add__(self, other: DetectionScore) -> DetectionScore:
        return DetectionScore(
            self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.offsets + other.offsets
        )

    def offset_stats_ms(self, fs: float) -> tuple[float, float]:
        """Mean and standard deviation of (detected - reference), in ms."""
        off = np.concatenate(self.offsets) if self.offsets else np.zeros(0)
        if off.size == 0:
            return float("nan"), float("nan")
        return float(off.mean() * 1000 / fs), float(off.std() * 1000 / fs)


def excluded_intervals(samples: np.ndarray, symbols: np.ndarray, end: int) -> list[tuple[int, int]]:
    """Ventricular flutter/fibrillation episodes, from ``[`` to ``]`` (open ones run to the end)."""
    spans, start = [], None
    for s, sym in zip(samples, symbols):
        if sym == "[" and start is None:
            start = int(s)
        elif sym == "]" and start is not None:
            spans.append((start, int(s)))
            start = None
    if start is not None:
        spans.append((start, end))
    return spans


def inside_spans(x: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which positions fall in any of the (inclusive) spans."""
    mask = np.zeros(len(x), dtype=bool)
    for a, b in spans:
        mask |= (x >= a) & (x <= b)
    return mask


def score_record(
    ref_samples: np.ndarray,
    det_samples: np.ndarray,
    fs: float,
    start: int = 0,
    exclude: list[tuple[int, int]] | None = None,
) -> DetectionScore:
    """Score detections against reference beats, counting only from ``start`` and outside ``exclude``.

    Matching runs over the whole record first so that a beat just inside the scored region can
    still pair with one just outside it, as bxb does.
    """
    ref = np.sort(np.asarray(ref_samples, dtype=np.int64))
    det = np.sort(np.asarray(det_samples, dtype=np.int64))
    m = match_beats(ref, det, match_window(fs))
    spans = exclude or []
    ref_ok = (ref >= start) & ~inside_spans(ref, spans)
    det_ok = (det >= start) & ~inside_spans(det, spans)
    tp_pairs = m.pairs[ref_ok[m.pairs[:, 0]]] if len(m.pairs) else m.pairs
    return DetectionScore(
        tp=len(tp_pairs),
        fn=int(ref_ok[m.missed].sum()),
        fp=int(det_ok[m.extra].sum()),
        offsets=[det[tp_pairs[:, 1]] - ref[tp_pairs[:, 0]]],
    )


@dataclass(frozen=True)
class ReferenceBeats:
    """A record's annotated beats and VF/flutter episodes, in pipeline samples."""

    samples: np.ndarray  # beat positions
    symbols: np.ndarray  # their annotation symbols; each caller maps them to its own classes
    flutter: list[tuple[int, int]]  # ``[`` ... ``]`` episodes, where beats are not defined


def reference_beats(record: Record, data_dir: str | os.PathLike[str] | None) -> ReferenceBeats:
    """Read ``record``'s reference annotations onto the pipeline's sample axis.

    One reading for every scorer, so detection, classification, alarms and training labels all
    compare against the same beats.
    """
    ann = read_annotations(record.name, data_dir)
    samples = record.from_source_samples(ann.sample)
    is_beat = np.isin(ann.symbol, sorted(BEAT_SYMBOLS))
    return ReferenceBeats(
        samples[is_beat], ann.symbol[is_beat], excluded_intervals(samples, ann.symbol, len(record.signal))
    )


def reference_at(ref_samples: np.ndarray, values: np.ndarray, det_samples: np.ndarray, fs: float, default) -> np.ndarray:
    """For each detected beat, ``values[i]`` of the reference beat ``i`` it matches within 150 ms,
    else ``default``: how detected beats take a reference label, whatever the label is."""
    m = match_beats(ref_samples, np.asarray(det_samples, np.int64), match_window(fs))
    out = np.full(len(det_samples), default, dtype=np.asarray(values).dtype)
    out[m.pairs[:, 1]] = np.asarray(values)[m.pairs[:, 0]]
    return out
