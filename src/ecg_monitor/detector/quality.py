"""Signal quality of consecutive raw ECG blocks: missing, flat (lead off), saturated, noisy.

Judged on the raw samples (mV, NaN = missing) in fixed consecutive blocks (the worker's 0.5 s
ticks), so the verdicts do not depend on how samples were chunked. Thresholds were set on the
MIT-BIH records (no block of any record is flat; the 99.9th percentile of the high-frequency
noise measure is below 0.075 mV outside record 104).

``noise_ratio`` is a continuous signal-quality index: how large the QRS-band (5-15 Hz) activity
is over the last 2 s, typically, against the size of the patient's QRS complexes in that band.
Clean ECG is near zero between complexes, so the median of |QRS band| over 2 s is small (median
ratio 0.05 on MIT-BIH); electrode motion and muscle noise fill the gaps between complexes with
QRS-like activity and raise it (nst noise at 6 dB: above 0.12 half of the time). The QRS size is
the median of the 2-s maxima of windows that look like clean ECG (a few tall peaks over a quiet
line), so a noise burst does not teach the judge that noise is the signal, while a change of
gain (clean, only larger) is followed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.filters import GapHold, StreamingSOS, design_qrs_filter
from ecg_monitor.detector.ringbuffer import RingBuffer


#: Length of the judged blocks in the worker (the alarm engine's tick).
QUALITY_BLOCK_S = 0.5


@dataclass(frozen=True)
class QualityConfig:
    min_valid: float = 0.5  # a block with fewer valid samples is "missing"
    flat_mv: float = 0.02  # peak-to-peak below this is a flat line
    rail_jump_mv: float = 2.0  # a flat line this far from the recent level is a saturated amplifier,
    # a block this far from the last one a baseline step (noisy)
    clip_run_s: float = 0.03  # identical samples at the block's extreme this long look clipped...
    clip_fraction: float = 0.2  # ...when they make up this much of the block
    hf_noise_mv: float = 0.06  # median |second difference|: 0.01-0.02 mV in clean ECG at 360 Hz
    window_s: float = 2.0  # look-back of the noise ratio
    noise_ratio: float = 0.10  # noise_ratio above this: noisy
    clean_shape: float = 0.07  # median/max of a 2-s window below this looks like clean ECG
    size_windows: int = 20  # clean windows whose maxima give the QRS size
    rhythm_lags_s: tuple[float, float] = (0.15, 0.6)  # cycle lengths of a rapid rhythm (100-400 /min)
    rhythm_corr: float = 0.6  # QRS-band autocorrelation above this at such a lag: a rhythm, not noise


@dataclass(frozen=True)
class BlockQuality:
    """What is wrong with one block (all False: good), and the noise ratio behind ``noisy``."""

    missing: bool = False
    flat: bool = False
    saturated: bool = False
    noisy: bool = False
    noise_ratio: float = 0.0  # QRS-band noise / QRS size over the last 2 s (0 = clean)
    crowded: bool = False  # noisy because more QRS-like peaks came than the rhythm has beats
    artifact: bool = False  # noisy whatever the beats: high-frequency noise or a baseline step

    @property
    def unusable(self) -> bool:
        """No ECG can be seen in the block: beats and their absence mean nothing there."""
        return self.missing or self.flat or self.saturated

    @property
    def unreadable(self) -> bool:
        """Beats cannot be told from noise in the block: beats found there are labelled Q."""
        return self.unusable or self.noisy


def fast_median(a: np.ndarray) -> float:
    """``np.median`` of a 1-D array without its overhead (called per block and per peak)."""
    n = a.size
    k = n // 2
    p = a.copy()
    if n % 2:
        p.partition(k)
        return float(p[k])
    p.partition((k - 1, k))
    return float(0.5 * (p[k - 1] + p[k]))


def row_stds(x: np.ndarray) -> np.ndarray:
    """``np.std`` of each row of a 2-D array, the operations of ``np.std`` on one row in the same
    order (so the same bits, in its own dtype) for all rows at once."""
    n = np.intp(x.shape[1])
    d = x - (x.sum(axis=1) / n).astype(x.dtype)[:, None]
    d *= d
    return np.sqrt((d.sum(axis=1) / n).astype(x.dtype))


def second_difference(x: np.ndarray) -> np.ndarray:
    """``np.diff(x, 2)`` along the last axis, without its overhead."""
    d = x[..., 1:] - x[..., :-1]
    return d[..., 1:] - d[..., :-1]


def short_median(a: Iterable[float]) -> float:
    """Median of a few numbers (plain Python: faster than numpy at this size; the same value)."""
    s = sorted(a)
    h = len(s) // 2
    return float(s[h]) if len(s) % 2 else (s[h - 1] + s[h]) / 2


def row_medians(x: np.ndarray) -> np.ndarray:
    """The median of each row of a 2-D array (sorting the rows: for the short rows of blocks and
    beat windows faster than np.median or partitioning, with the same values)."""
    k = x.shape[1] // 2
    s = np.sort(x, axis=1)
    return s[:, k] if x.shape[1] % 2 else 0.5 * (s[:, k - 1] + s[:, k])


def _block_stats(x: np.ndarray) -> list[tuple[float, float, int, float, float]]:
    """Per row of finite samples (at least 3): lowest, highest, how many samples are at either,
    median (the level) and median |second difference| (high-frequency noise)."""
    lo, hi = x.min(axis=1), x.max(axis=1)
    at_ends = np.count_nonzero(x == lo[:, None], axis=1) + np.count_nonzero(x == hi[:, None], axis=1)
    hf = row_medians(np.abs(second_difference(x)))
    return list(zip(lo.tolist(), hi.tolist(), at_ends.tolist(), row_medians(x).tolist(), hf.tolist()))


def _runs_at(x: np.ndarray, value: float) -> np.ndarray:
    """Lengths of the runs of consecutive samples equal to ``value``."""
    hit = np.concatenate([[False], x == value, [False]])
    edges = np.flatnonzero(np.diff(hit.astype(np.int8)))
    return edges[1::2] - edges[::2]


class QualityJudge:
    """Judges consecutive raw blocks, remembering the level of the last good one and the
    recent QRS-band activity (so every block must be passed, in order)."""

    def __init__(self, fs: float, config: QualityConfig | None = None) -> None:
        self.cfg = cfg = config or QualityConfig()
        self._clip_run = max(2, int(round(cfg.clip_run_s * fs)))
        self._level: float | None = None  # median of the last good block
        self._hold = GapHold()
        self._qrs = StreamingSOS(design_qrs_filter(fs))
        self._window = max(1, int(round(cfg.window_s * fs)))
        self._lags = (int(round(cfg.rhythm_lags_s[0] * fs)), int(round(cfg.rhythm_lags_s[1] * fs)))
        self._block: int | None = None  # samples per block, set by the first one
        self._span = 0  # samples of the whole blocks that make a window
        self._tail = np.zeros(0)  # QRS band of the blocks before the next one, within a window
        self._seen = 0  # samples judged so far
        self._sizes: deque[float] = deque(maxlen=cfg.size_windows)
        self._size = 0.0  # median of _sizes, kept as it only changes when one is added

    def judge(self, raw: np.ndarray, qrs_band: np.ndarray | None = None) -> BlockQuality:
        """Judge the next block; ``qrs_band``, when the caller has it, is the block through
        :func:`design_qrs_filter` with gaps held (what the judge would compute itself)."""
        raw = np.asarray(raw, dtype=np.float64)
        return self.judge_blocks(raw[None], None if qrs_band is None else np.asarray(qrs_band)[None])[0]

    def judge_blocks(self, raws: np.ndarray, qrs_bands: np.ndarray | None = None) -> list[BlockQuality]:
        """Judge the next blocks, the rows of ``raws`` (and of ``qrs_bands``), in order: as
        ``judge`` on each, with the statistics of the blocks without gaps and the noise windows'
        medians and maxima computed in one go. Every block of a judge has the same length."""
        whole = np.isfinite(raws).all(axis=1)
        stats = _block_stats(raws) if raws.shape[1] >= 3 else None  # rows with a gap: their own below
        if qrs_bands is None:
            qrs_bands = self._qrs.update(self._hold.fill(raws.ravel())).reshape(raws.shape)
        windows = self._windows(qrs_bands)
        out = []
        for i, raw in enumerate(raws):
            verdict = self._verdict(raw, stats[i] if whole[i] and stats is not None else None)
            ratio = self._noise_ratio(windows[i], not verdict.unusable)
            if verdict.unusable:
                out.append(BlockQuality(verdict.missing, verdict.flat, verdict.saturated, noise_ratio=ratio))
            else:
                out.append(BlockQuality(noisy=verdict.noisy or ratio > self.cfg.noise_ratio, noise_ratio=ratio,
                                        artifact=verdict.noisy))
        return out

    def _verdict(self, raw: np.ndarray, stats: tuple[float, ...] | None) -> BlockQuality:
        """Missing, flat, saturated, or high-frequency noise, from this block alone (``stats``:
        its :func:`_block_stats` row when it has no gap)."""
        cfg = self.cfg
        x = raw if stats is not None else raw[np.isfinite(raw)]
        if x.size < cfg.min_valid * raw.size or x.size < 3:
            return BlockQuality(missing=True)
        lo, hi, at_ends, level, hf = stats if stats is not None else _block_stats(x[None])[0]
        if hi - lo <= cfg.flat_mv:
            if self._level is not None and abs(level - self._level) > cfg.rail_jump_mv:
                return BlockQuality(saturated=True)
            return BlockQuality(flat=True)
        clipped = 0 if at_ends < cfg.clip_fraction * x.size else sum(
            int(r[r >= self._clip_run].sum()) for r in (_runs_at(x, lo), _runs_at(x, hi)))
        if clipped >= cfg.clip_fraction * x.size:
            return BlockQuality(saturated=True)
        last, self._level = self._level, level
        stepped = last is not None and abs(level - last) > cfg.rail_jump_mv  # baseline step
        return BlockQuality(noisy=stepped or hf > cfg.hf_noise_mv)

    def _windows(self, qs: np.ndarray) -> list[tuple[np.ndarray, float, float] | None]:
        """For each block (row of ``qs``, its QRS band): the QRS band of the last 2 s up to its
        end (the whole blocks that cover 2 s), with the median and maximum of its magnitude;
        None for a stream's first blocks (one QRS would fill a shorter window)."""
        m, b = qs.shape
        if self._block is None:
            self._block, self._span = b, -(-self._window // b) * b if b else 0
        if b != self._block:
            raise ValueError(f"a block of {b} samples after blocks of {self._block}")
        out: list[tuple[np.ndarray, float, float] | None] = [None] * m
        if b == 0:
            return out
        hist = np.concatenate([self._tail, qs.ravel()])  # whole blocks: the ones before, then these
        self._tail = hist[max(0, hist.size - self._span + b) :]
        first = min(m, max(0, -(-(self._window - self._seen) // b) - 1))  # rows with a whole window
        self._seen += m * b
        if first == m:
            return out
        per, blocks = self._span // b, hist.reshape(-1, b)
        start = blocks.shape[0] - m + first - per + 1  # first block of the first whole window
        w = np.concatenate([blocks[start + j : start + j + m - first] for j in range(per)], axis=1)
        a = np.abs(w)
        a.sort(axis=1)  # for a few rows faster than partitioning them
        k = self._span // 2
        meds = (0.5 * (a[:, k - 1] + a[:, k]) if self._span % 2 == 0 else a[:, k]).tolist()
        for i, row, med, peak in zip(range(first, m), w, meds, a[:, -1].tolist()):
            out[i] = (row, med, peak)
        return out

    def _noise_ratio(self, window: tuple[np.ndarray, float, float] | None, learn: bool) -> float:
        """Median |QRS band| over the last 2 s against the QRS size learnt from clean windows
        (``learn``: this block shows ECG, so its window may teach the size)."""
        if window is None:
            return 0.0
        w, med, peak = window
        if learn and peak > 0 and (not self._sizes or med < self.cfg.clean_shape * peak):
            self._sizes.append(peak)
            self._size = short_median(self._sizes)
        size = self._size
        if size <= 0 or med <= self.cfg.noise_ratio * size or self._rhythmic(w):
            return min(med / size, self.cfg.noise_ratio) if size > 0 else 0.0
        return med / size

    def _rhythmic(self, w: np.ndarray) -> bool:
        """Whether the window repeats itself at a heart-beat lag (VT, flutter, VF do; noise does
        not), so that a fast wide-complex rhythm is never called noise."""
        lo, hi = self._lags
        if w.size <= hi + lo:
            return False
        f = np.fft.rfft(w, 2 * w.size)
        r = np.fft.irfft(f * np.conj(f))[lo : hi + 1]
        e = np.concatenate([[0.0], np.cumsum(w * w)])
        k = np.arange(lo, hi + 1)
        norm = np.sqrt((e[w.size - k] - e[0]) * (e[w.size] - e[k]))
        return bool(np.max(r / np.maximum(norm, 1e-12)) > self.cfg.rhythm_corr)


def unit_rows(x: np.ndarray) -> np.ndarray | None:
    """Rows (last axis) with their mean removed and scaled to unit norm; None when one is not
    finite or flat (no shape to compare)."""
    x = x - x.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        return None
    return x / norms


#: A beat's shape, for telling a rhythm of alike beats from noise (the detector's rhythm check, the
#: VT check, the noise advisory): the display band this long before and after R, compared at
#: shifts of up to BEAT_LAG_S (the R mark of a wide beat may sit on its S wave).
BEAT_WINDOW_S = (0.08, 0.12)
BEAT_LAG_S = 0.1


def shifted_shapes(display: RingBuffer, r_samples: list[int], window: tuple[int, int], lag: int) -> np.ndarray | None:
    """The beats around ``r_samples`` (``window`` samples before/after R), each at every shift of
    up to ``lag`` samples either way, as unit rows: (beat, shift, sample), unshifted at ``lag``,
    so dot products are correlations; None when a beat is not held, not finite or flat."""
    lo, hi = window
    if not r_samples or r_samples[0] - lo - lag < display.start or r_samples[-1] + hi + lag > display.end:
        return None
    wide = np.array([display.get(r - lo - lag, r + hi + lag) for r in r_samples])
    return unit_rows(np.lib.stride_tricks.sliding_window_view(wide, lo + hi, axis=1))


def partner_correlations(shifted: np.ndarray, lag: int) -> np.ndarray:
    """For each beat of :func:`shifted_shapes`, its best correlation with any other one, each pair
    at its best shift (alike beats can sit ``lag`` apart)."""
    corr = np.einsum("iw,jlw->ijl", shifted[:, lag], shifted).max(axis=2)
    np.fill_diagonal(corr, -1.0)
    return corr.max(axis=1)


def best_partners(display: RingBuffer, r_samples: list[int], window: tuple[int, int], lag: int) -> np.ndarray | None:
    """:func:`partner_correlations` of the beats around ``r_samples``; None when there are fewer
    than two or one is not held, not finite or flat."""
    shifted = shifted_shapes(display, r_samples, window, lag) if len(r_samples) >= 2 else None
    return None if shifted is None else partner_correlations(shifted, lag)


@dataclass(frozen=True)
class JudgedBlock:
    """A block of the stream, samples ``[start, stop)``, and its verdict."""

    start: int
    stop: int
    quality: BlockQuality


class Readability:
    """Whether the blocks judged by a given time were unreadable: the one record of judged blocks
    behind both the detector's thresholds (never halved in noise) and the pipeline's labels
    (never a guess in noise). It holds the blocks judged during the current update and the
    ``keep`` before: whatever is decided later is decided after those."""

    KEEP = 8  # blocks (4 s): longer than any beat waits for its label

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._blocks: list[JudgedBlock] = []
        self._stops: list[int] = []  # theirs, increasing: the last block by a time is a bisection

    def new_update(self) -> None:
        del self._blocks[: -self.keep], self._stops[: -self.keep]

    def add(self, block: JudgedBlock) -> None:
        self._blocks.append(block)
        self._stops.append(block.stop)

    def unreadable_at(self, t: int) -> bool:
        """Whether the last block judged by time ``t`` (ending at or before it) was unreadable."""
        i = bisect_right(self._stops, t) - 1
        return i >= 0 and self._blocks[i].quality.unreadable

    def unreadable_over(self, first: int, last: int, t: int) -> bool:
        """Whether a block judged by time ``t`` that holds any of samples ``first..last`` was unreadable."""
        return any(q.unreadable for q in self._over(first, last, t))

    def noise_over(self, first: int, last: int, t: int) -> float:
        """The largest noise ratio of the blocks judged by time ``t`` that hold any of samples
        ``first..last`` (infinite if one was unreadable, 0 if none is judged)."""
        return max((np.inf if q.unreadable else q.noise_ratio for q in self._over(first, last, t)), default=0.0)

    def _over(self, first: int, last: int, t: int) -> list[BlockQuality]:
        return [j.quality for j in self._blocks[: bisect_right(self._stops, t)] if j.start <= last and j.stop > first]


class BlockQualityStream:
    """Cuts a stream into fixed blocks (from its first sample) and judges each once it is whole.

    The same blocks as the alarm engine's ticks, so the pipeline and the alarms agree on what is
    unreadable whatever the chunking.
    """

    def __init__(self, fs: float, block: int, config: QualityConfig | None = None) -> None:
        self.judge = QualityJudge(fs, config)
        self.block = block
        self._pending = np.zeros(0)
        self._pending_q = np.zeros(0)
        self._start = 0  # absolute index of _pending[0]

    def update(self, raw: np.ndarray, qrs_band: np.ndarray | None = None) -> list[JudgedBlock]:
        """Judge the blocks completed by ``raw`` (with its QRS band when the caller has it, in
        which case every call must pass it)."""
        self._pending = np.concatenate([self._pending, np.asarray(raw, dtype=np.float64)])
        if qrs_band is not None:
            self._pending_q = np.concatenate([self._pending_q, qrs_band])
        b = self.block
        m = self._pending.size // b  # whole blocks, judged in one go
        if m == 0:
            return []
        raws, self._pending = self._pending[: m * b].reshape(m, b), self._pending[m * b :]
        qs = None
        if qrs_band is not None:
            qs, self._pending_q = self._pending_q[: m * b].reshape(m, b), self._pending_q[m * b :]
        starts = range(self._start, self._start + m * b, b)
        self._start += m * b
        return [JudgedBlock(s, s + b, v) for s, v in zip(starts, self.judge.judge_blocks(raws, qs))]
