"""Beats from the learned QRS network, confirmed by Pan-Tompkins (the pipeline's default).

Why two detectors: Pan-Tompkins finds beats on clean signal superbly but counts noise spikes as
beats; the network (``qrs_net.py``), trained on noisy ECG, tells QRS complexes from artifact far
better but misses a few odd beats Pan-Tompkins finds. So a beat is where the network's
probability rises above ``WEAK`` and Pan-Tompkins found a beat within ``CONFIRM`` samples, or,
in signal with noise between the beats (the "ECG noisy" advisory's noise ratio), where the
network's peak reaches ``STRONG`` alone; beats Pan-Tompkins finds where the network sees nothing
are dropped. In noise, a beat that comes early (before ``EARLY_RR`` of the median of the last
RR intervals given out) needs the network's peak to reach ``EARLY_WEAK`` even with Pan-Tompkins'
partner: noise spikes fall anywhere between the beats and both detectors take some of them (on
six SVDB patients held out of the network's training, em noise at 6 dB, such early weak peaks
were about 300 false beats against 8 true ones). Pan-Tompkins is waited for: in noise until
``CONFIRM_HORIZON`` after the latest a partner can lie (``CONFIRM`` after the candidate: on wide
beats the two mark different waves), for its later beats there are noise; in clean signal up to
``PT_WAIT``, where a search-back may bring the partner of a beat long after it (there the network
alone never vouches for a beat). For the first 2.1 s of a stream (the network's receptive field,
its past taken as zeros until then) every beat needs Pan-Tompkins' confirmation. ``STRONG`` and
``WEAK`` were fixed before any MIT-BIH record was scored; ``CONFIRM`` (first 75 ms), the noise
condition, the wait in clean signal and ``EARLY_RR`` (first 0.85) came from full runs on MIT-BIH
(see the README).

Causal and chunk-invariant: a candidate is given out once nothing still to come can change it
(no later peak within ``REFRACTORY``; for one that needs Pan-Tompkins, its first beat from the
candidate on or the end of the wait), and its ``emitted_at`` is that sample, computed from sample
indices alone; beats leave in sample order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.advisory import NOISE_BETWEEN_BEATS
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.qrs_net import DELAY, RECEPTIVE_FIELD, STRIDE, StreamingQRSProbability
from ecg_monitor.detector.quality import Readability

STRONG = 0.5  # the network alone vouches for a beat (in noisy signal)
WEAK = 0.2  # the network sees something; Pan-Tompkins must agree
CONFIRM = 54  # samples (150 ms, EC57's match window) between two R marks of the same beat
REFRACTORY = 72  # samples (200 ms): of two peaks closer than this only the likelier is a beat
REFINE = 25  # samples (70 ms) either side of the network's peak where the R mark is sought
#: Noise ratio of the block holding a beat above which the network alone may vouch for it: the
#: "ECG noisy" advisory's level. On clean signal the network's lone peaks were mostly P or T waves.
ALONE_NOISE_RATIO = NOISE_BETWEEN_BEATS
CONFIRM_HORIZON = 144  # samples (400 ms) after an R mark by which Pan-Tompkins decides on it, bar search-backs
#: Samples (2 s) after a QRS in clean signal Pan-Tompkins is waited for: a search-back (at 1.66 mean
#: RR after its last beat) finds a missed beat within 0.66 RR + its refractory of it, for rates down to 40/min.
PT_WAIT = 720
EARLY_RR = 0.7  # a beat before this share of the median recent RR is early
EARLY_WEAK = 0.4  # in noise, an early beat needs the network's peak to reach this
RR_HISTORY = 8  # RR intervals given out that make the median
_KEEP = 1024  # filtered samples kept for placing R marks


@dataclass(frozen=True)
class _Run:
    """Steps at or above WEAK: the first, the likeliest, its probability and R mark."""

    start: int
    peak: int
    p: float
    r: int


@dataclass
class _Candidate:
    tau: int  # the network's peak: the sample its likeliest step speaks of
    r: int  # R mark: the largest deflection near it
    p: float
    settled_at: int  # samples received when its run, and any run that might have replaced it, ended


class BeatFusion:
    """One ``update`` per chunk: the chunk's display-band samples and Pan-Tompkins' new beats in,
    the fused beats that are final out."""

    def __init__(self, readability: Readability, quality_block: int,
                 probability: StreamingQRSProbability | None = None) -> None:
        self.probability = probability or StreamingQRSProbability()
        self.readability = readability  # Pan-Tompkins' verdicts on the blocks
        self.quality_block = quality_block  # a beat waits until the block holding its QRS is judged
        self._tail = np.zeros(0)  # the last filtered samples, for R marks
        self._tail_start = 0
        self._run: _Run | None = None  # the run still open at the last step
        self._pending: deque[_Candidate] = deque()
        self._pt: deque[Beat] = deque()  # Pan-Tompkins beats still able to confirm a candidate
        self._last_out = 0  # emitted_at of the last beat given out (beats leave in order)
        self._last_sample = -1  # and its R mark
        self._rr: deque[int] = deque(maxlen=RR_HISTORY)  # RR intervals of the last beats given out
        self.n = 0

    def update(self, filtered: np.ndarray, pt_beats: list[Beat]) -> list[Beat]:
        self.n += len(filtered)
        keep = len(filtered) + _KEEP
        self._tail = np.concatenate([self._tail, np.nan_to_num(filtered)])
        if len(self._tail) > keep:
            self._tail_start += len(self._tail) - keep
            self._tail = self._tail[-keep:]
        self._pt.extend(pt_beats)
        first = self.probability.steps
        self._runs(first, self.probability.update(filtered))
        return self._release(final=False)

    def flush(self, pt_beats: list[Beat]) -> list[Beat]:
        """Stream over: close the open run and give out every candidate left, decided now."""
        self._pt.extend(pt_beats)
        if self._run is not None:
            self._close(self._run, known_at=self.n)
            self._run = None
        return self._release(final=True)

    def _runs(self, first: int, p: np.ndarray) -> None:
        """Follow the runs of steps at or above WEAK; each run that ends is a candidate."""
        if len(p) == 0:
            return
        above = p >= WEAK
        if self._run is not None and not above[0]:
            self._close(self._run, known_at=first * STRIDE + STRIDE)
            self._run = None
        edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
        starts, ends = edges[::2].tolist(), edges[1::2].tolist()  # runs [s, e) of this update's steps
        peaks = [s + int(np.argmax(p[s:e])) for s, e in zip(starts, ends)]
        marks = self._r_marks([self._tau(first + k) for k in peaks])
        for s, e, k, r in zip(starts, ends, peaks, marks):
            run = _Run(first + s, first + k, float(p[k]), r)
            if s == 0 and self._run is not None:  # the open run goes on
                run = self._run if self._run.p >= run.p else _Run(self._run.start, run.peak, run.p, run.r)
            if e < len(p):
                self._close(run, known_at=(first + e) * STRIDE + STRIDE)
                self._run = None
            else:
                self._run = run

    @staticmethod
    def _tau(step: int) -> int:
        """The sample a step speaks of."""
        return step * STRIDE + STRIDE - 1 - DELAY

    def _close(self, run: _Run, known_at: int) -> None:
        """A run ended: it is a candidate unless a likelier one lies within REFRACTORY."""
        tau = self._tau(run.peak)
        if tau < 0:
            return
        for c in self._pending:  # they waited for this run to end
            if self._tau(run.start) < c.tau + REFRACTORY:
                c.settled_at = max(c.settled_at, known_at)
        cand = _Candidate(tau, run.r, run.p, known_at)
        if self._pending and tau - self._pending[-1].tau < REFRACTORY:
            if run.p > self._pending[-1].p:
                self._pending[-1] = cand
            return
        self._pending.append(cand)

    def _judged(self, r: int) -> int:
        """When the quality block holding the end of the QRS around ``r`` is complete."""
        return (r + REFINE) // self.quality_block * self.quality_block + self.quality_block

    def _r_marks(self, taus: list[int]) -> list[int]:
        """Per network peak, the largest deflection from the local median within REFINE of it
        (all of an update's peaks at once; those by the stream's start one by one)."""
        if not taus:
            return []
        at = np.asarray(taus) - REFINE - self._tail_start
        whole = at >= 0
        marks = np.empty(len(taus), dtype=np.int64)
        if whole.any():
            seg = self._tail[at[whole, None] + np.arange(2 * REFINE + 1)]
            dev = np.abs(seg - np.median(seg, axis=1, keepdims=True))
            marks[whole] = self._tail_start + at[whole] + np.argmax(dev, axis=1)
        for i in np.flatnonzero(~whole):  # the first samples of the stream
            seg = self._tail[: max(at[i] + 2 * REFINE + 1, 1)]
            marks[i] = self._tail_start + int(np.argmax(np.abs(seg - np.median(seg))))
        return marks.tolist()

    def _release(self, final: bool) -> list[Beat]:
        """Give out, in order, the candidates nothing to come can change."""
        out: list[Beat] = []
        clock = self.probability.steps * STRIDE - 1 - DELAY  # the latest sample the network has spoken of
        open_from = None if self._run is None else self._tau(self._run.start)
        while self._pending:
            c = self._pending[0]
            unsure = c.p < STRONG or c.tau < RECEPTIVE_FIELD  # the network has not yet its full past
            if not final and (clock < c.tau + REFRACTORY or (open_from is not None and open_from < c.tau + REFRACTORY)
                              or self.n < self._judged(c.r)):
                break
            seen_all = (c.tau + REFRACTORY + DELAY + 1 + STRIDE - 1) // STRIDE * STRIDE  # network clock past the refractory
            t = max(c.settled_at, seen_all, self._judged(c.r), self._last_out)
            t = min(t, self.n) if final else t
            while self._pt and self._pt[0].sample < c.r - CONFIRM:
                self._pt.popleft()
            # Pan-Tompkins' R mark where it found the beat too (the classifier learnt on its marks),
            # each of its beats used once and the marks kept in order
            clean = self._clean(c.r, t)
            if unsure or clean:  # Pan-Tompkins must have its say
                decided, partner, t = self._pt_verdict(c.r, t, PT_WAIT if clean else CONFIRM + CONFIRM_HORIZON, final)
                if not decided:
                    break
            else:
                partner = min((b for b in self._pt if abs(b.sample - c.r) <= CONFIRM and b.sample > self._last_sample
                               and b.emitted_at <= t), key=lambda b: abs(b.sample - c.r), default=None)
            self._pending.popleft()
            self._last_out = t
            if partner is None:
                if unsure or clean:
                    continue  # clean signal: the network's lone peaks there were P or T waves
                beat = Beat(sample=max(c.r, self._last_sample + 1), emitted_at=t)
            else:
                self._pt.remove(partner)
                if not clean and c.p < EARLY_WEAK and self._early(partner.sample):
                    continue  # a noise spike both detectors took, most likely
                beat = Beat(sample=partner.sample, emitted_at=t, search_back=partner.search_back)
            if self._last_sample >= 0:
                self._rr.append(beat.sample - self._last_sample)
            self._last_sample = beat.sample
            out.append(beat)
        floor = min([c.r for c in self._pending] + [clock if open_from is None else open_from]) - REFINE - CONFIRM
        while self._pt and self._pt[0].sample < floor:  # too early to confirm any candidate to come
            self._pt.popleft()
        return out

    def _early(self, sample: int) -> bool:
        """Whether a beat at ``sample`` would come before EARLY_RR of the median recent RR (once
        half the history is there)."""
        return (2 * len(self._rr) >= RR_HISTORY
                and sample - self._last_sample < EARLY_RR * float(np.median(self._rr)))

    def _clean(self, r: int, t: int) -> bool:
        """Whether the blocks judged by ``t`` around the QRS at ``r`` have little noise between beats."""
        return self.readability.noise_over(r - REFINE, r + REFINE, t) <= ALONE_NOISE_RATIO

    def _pt_verdict(self, r: int, t: int, wait: int, final: bool) -> tuple[bool, Beat | None, int]:
        """Pan-Tompkins' say on a QRS at ``r`` whose decision is due at ``t``: whether it is known
        yet, its beat there if any, and when that was known. Its beats come in sample order, so
        its first beat from ``r - CONFIRM`` on is the partner if within CONFIRM, and shows it
        found none if beyond; a search-back may bring the partner long after the QRS, so it is
        waited for up to ``wait`` samples (the same answer for any chunking: the beats it decided
        up to the newest sample have all arrived)."""
        first = min((b for b in self._pt if b.sample >= r - CONFIRM and b.sample > self._last_sample),
                    key=lambda b: b.emitted_at, default=None)
        if first is not None and first.emitted_at <= r + wait:
            return True, first if first.sample <= r + CONFIRM else None, max(t, first.emitted_at)
        if final:
            return True, None, min(max(t, r + wait), self.n)
        return self.n >= r + wait, None, max(t, r + wait)
