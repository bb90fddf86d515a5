"""Online Pan-Tompkins QRS detection, one chunk at a time.

The signal chain (QRS band-pass -> derivative -> squaring -> moving-window integration) is made of
stateful scipy filters; the decision logic runs only on the sparse peaks of the integrated signal.
Every decision is taken at a fixed sample time from samples at or before that time, never from
where a chunk happens to end, so any chunking of the same record yields the same beats.

Decision rules (Pan & Tompkins 1985, with Hamilton & Tompkins' peak handling):

* a peak of the integrated signal is held for the 200 ms refractory period; a larger peak inside
  it replaces it (one QRS per 200 ms);
* a held peak is a QRS when it clears the signal/noise thresholds on both the integrated and the
  QRS-filtered signal; otherwise it updates the noise levels and is kept for search-back;
* within 360 ms of the previous QRS, a peak whose maximum slope is under half the previous QRS
  slope is a T wave;
* a peak whose steepest rise and fall are far apart or very unequal is a baseline shift;
* when no QRS has come 166 % of the regular RR average after the last one, the largest kept peak
  above half the thresholds is taken back as a QRS;
* for irregular rhythms the thresholds are halved;
* after a long silence or a change of scale the thresholds are learnt again from recent peaks,
  but only from peaks that stand out of the noise, so a flat or noisy line invents no beat.

The R mark is placed on the largest excursion of the display-band ECG (0.5-40 Hz) before the
integrator peak, less that filter's group delay, where annotators put the R wave.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.filters import (
    GapHold,
    StreamingFIR,
    StreamingSOS,
    delay_samples,
    derivative_taps,
    design_display_filter,
    design_qrs_filter,
    integration_taps,
)
from ecg_monitor.detector.quality import (
    BEAT_LAG_S,
    BEAT_WINDOW_S,
    QUALITY_BLOCK_S,
    BlockQualityStream,
    JudgedBlock,
    Readability,
    best_partners,
    row_medians,
)
from ecg_monitor.detector.ringbuffer import RingBuffer


@dataclass(frozen=True)
class DetectorConfig:
    """Tunable constants of the detector, in seconds or as ratios."""

    refractory_s: float = 0.200
    twave_window_s: float = 0.360
    twave_slope_ratio: float = 0.5
    learn_s: float = 2.0
    rr_missed_ratio: float = 1.66
    rr_low_ratio: float = 0.92
    rr_high_ratio: float = 1.16
    threshold_ratio: float = 0.25
    search_back_ratio: float = 0.5
    step_mv: float = 4.0  # raw level this different before and after a peak: a baseline step
    crowd_window_s: float = 3.0  # look-back for counting peaks that clear the threshold...
    crowd_ratio: float = 1.5  # ...more than this many per expected beat (plus one) is noise
    alike_window_s: tuple[float, float] = BEAT_WINDOW_S  # a beat's shape: display band around R...
    alike_lag_s: float = BEAT_LAG_S  # ...shifted by up to this much (the R mark of a wide beat may sit on S)
    alike_corr: float = 0.8  # beats this alike to another of the last 3 s are a rhythm...
    alike_min_beats: int = 3  # ...when at least this many were found there...
    alike_outliers: float = 0.34  # ...and at most this share of them (rounded down) are unlike the rest
    rhythm_clear_blocks: int = 2  # a rhythm is only found after this many unsuspected blocks (not in noise)
    r_search_s: tuple[float, float] = (0.225, 0.035)  # R lies this far before the integrator peak
    bls_window_s: float = 0.220
    bls_pair_s: float = 0.150
    bls_ratio: float = 0.125
    relearn_s: float = 3.0  # silence after which thresholds are learnt again
    relearn_prominence: float = 4.0  # relearnt peaks must beat the other peaks by this factor
    relearn_min_peaks: int = 3
    min_qrs_mv: float = 0.02  # QRS-band amplitude below which nothing is a beat
    history_s: float = 12.0
    notch_hz: float | None = None  # mains notch on the display band (50 or 60 Hz), off by default


@dataclass
class _Peak:
    """A peak of the integrated signal with the features the rules need."""

    index: int
    mwi: float
    filtered: float = 0.0
    slope: float = 0.0
    is_shift: bool = False


class PanTompkinsDetector:
    """Streaming QRS detector: feed ``update(chunk)`` and receive the beats decided so far."""

    def __init__(self, fs: float, config: DetectorConfig | None = None) -> None:
        self.fs = float(fs)
        self.cfg = cfg = config or DetectorConfig()
        s = lambda sec: max(1, int(round(sec * self.fs)))  # noqa: E731 - local unit helper
        self._refractory = s(cfg.refractory_s)
        self._twave = s(cfg.twave_window_s)
        self._learn = s(cfg.learn_s)
        self._r_search = (s(cfg.r_search_s[0]), s(cfg.r_search_s[1]))
        self._bls = s(cfg.bls_window_s)
        self._bls_pair = s(cfg.bls_pair_s)
        self._relearn = s(cfg.relearn_s)
        self._mwi_len = len(integration_taps(self.fs))

        self._display = StreamingSOS(design_display_filter(self.fs, notch_hz=cfg.notch_hz))
        self._display_delay = delay_samples(self._display.sos, self.fs)
        self._qrs = StreamingSOS(design_qrs_filter(self.fs))
        self._deriv = StreamingFIR(derivative_taps(self.fs))
        self._integ = StreamingFIR(integration_taps(self.fs))

        cap = s(cfg.history_s)
        self._block = cap // 4
        self._max_age = cap // 2
        self.display = RingBuffer(cap)  # 0.5-40 Hz ECG, also used by the classifier and the view
        self._qrs_buf = RingBuffer(cap)
        self._der_buf = RingBuffer(cap)
        self._raw = RingBuffer(cap)  # input, gaps held
        self._level_before = (s(0.35), s(0.22))  # before an integrator peak: ahead of its QRS
        self._level_after = s(0.15)  # after it: the ST segment
        self.valid = RingBuffer(cap, dtype=np.bool_)
        self._hold = GapHold()
        self._tail = np.zeros(0)  # last two integrated samples, to find peaks across chunks
        self.n = 0  # samples received
        self.last_display = np.zeros(0)  # display-band output of the last update()
        self.quality = BlockQualityStream(self.fs, s(QUALITY_BLOCK_S))
        self.last_quality: list[JudgedBlock] = []  # blocks judged during the last update()
        self.readability = Readability()  # of the blocks judged (final verdicts), for the pipeline too
        self._blocks: deque[JudgedBlock] = deque()  # judged on the raw signal, awaiting their end
        self._strong: deque[int] = deque()  # peaks that cleared the threshold, recent ones
        self._crowd_window = s(cfg.crowd_window_s)
        self._accepted: deque[tuple[int, int]] = deque()  # (integrator peak, R mark) of recent beats
        self._alike_window = (s(cfg.alike_window_s[0]), s(cfg.alike_window_s[1]))
        self._alike_lag = s(cfg.alike_lag_s)
        self._clear_blocks = cfg.rhythm_clear_blocks  # unsuspected blocks in a row since the last noisy one

        self._held: _Peak | None = None
        self._candidates: deque[_Peak] = deque()  # noise peaks since the last QRS (search-back)
        self._learning: list[_Peak] = []
        self._learnt = False
        self._spki = self._npki = self._spkf = self._npkf = 0.0
        self._last_qrs: int | None = None
        self._accepted_t = 0  # when the last QRS was accepted (a search-back takes an older peak)
        self._last_slope = 0.0
        self._rr1: deque[int] = deque(maxlen=8)
        self._rr2: deque[int] = deque(maxlen=8)
        self._rr_misses = 0
        self._rr2_mean = 0.0
        self._irregular = False  # the last 8 RRs stray from the regular average (kept by _add_rr)
        self._learn_until = self._learn
        self._next_search: int | None = None  # retry time after a search-back found nothing
        self._out: list[Beat] = []

    # ------------------------------------------------------------------ signal chain
    def update(self, chunk: np.ndarray) -> list[Beat]:
        """Consume samples (mV; NaN marks a gap) and return the beats decided meanwhile."""
        raw = np.asarray(chunk, dtype=np.float64).ravel()
        self.last_quality = []
        self.readability.new_update()
        valid = np.isfinite(raw)
        x = self._hold.fill(raw, valid)
        shown = self._display.update(x)  # filters and block verdicts: the same for any split
        q = self._qrs.update(x)
        d = self._deriv.update(q)
        m = self._integ.update(d * d)
        self._blocks.extend(self.quality.update(raw, q))
        for i in range(0, x.size, self._block):
            b = slice(i, i + self._block)
            self._update_block(x[b], valid[b], shown[b], q[b], d[b], m[b])
        self.last_display = shown if valid.all() else np.where(valid, shown, np.nan)  # show a gap as a gap
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Beat]:
        """End of stream: decide the peak still held, with the samples there are."""
        if self._held is not None:
            peak, self._held = self._held, None
            self._describe([peak])
            self._decide(peak, self.n)
        if not self._learnt and self._learning:
            self._finish_learning(self.n)
        out, self._out = self._out, []
        return out

    def _update_block(self, x: np.ndarray, valid: np.ndarray, shown: np.ndarray, q: np.ndarray,
                      d: np.ndarray, m: np.ndarray) -> None:
        """Take one block (at most a quarter of the history, so look-backs stay inside it): input
        with gaps held, its validity, display and QRS bands, derivative and integrator; then
        decide what it completes."""
        n0 = self.n
        self.display.extend(shown)
        self._qrs_buf.extend(q)
        self._der_buf.extend(d)
        self._raw.extend(x)
        self.valid.extend(valid)
        self.n += x.size

        ext = np.concatenate([self._tail, m])
        j = np.flatnonzero((ext[1:-1] > ext[:-2]) & (ext[1:-1] >= ext[2:])) + 1
        first = n0 - len(self._tail)
        self._tail = ext[-2:]
        decided = self._hold_peaks(zip((j + first).tolist(), ext[j].tolist()))
        self._describe(decided)
        self._run(decided)

    # ------------------------------------------------------------------ event loop
    def _hold_peaks(self, peaks: Iterable[tuple[int, float]]) -> list[_Peak]:
        """The held peaks whose refractory period is over by the newest sample, in order, from
        the new integrator peaks ``(index, value)``: a peak is held for the refractory period and
        a larger one inside it takes its place (one QRS per 200 ms). Nothing else moves a held
        peak, so this needs no timers; the one still held waits for the next samples.

        A peak on the last sample of its refractory period is known one sample later (a peak needs
        its next sample), so a held peak is decided at :meth:`_decided_at`, not earlier: else how
        the samples were chunked would decide whether such a peak replaces it."""
        out, held, refractory = [], self._held, self._refractory
        for i, v in peaks:
            if held is not None and held.index + refractory <= i:  # over before this peak is offered
                out.append(held)
                held = None
            if held is None or v > held.mwi:
                held = _Peak(i, v)
        if held is not None and self._decided_at(held) <= self.n:
            out.append(held)
            held = None
        self._held = held
        return out

    def _run(self, decided: list[_Peak]) -> None:
        """Decide the peaks whose refractory period is over and run the timers, in time order,
        up to the newest sample (a peak before a timer at the same time)."""
        k = 0
        while True:
            timer = self._timer()
            if k < len(decided) and (timer is None or self._decided_at(decided[k]) <= timer[0]):
                self._decide(decided[k], self._decided_at(decided[k]))
                k += 1
                continue
            if timer is None or timer[0] > self.n:
                return
            t, kind = timer
            if kind == 2:
                self._search_back(t)
            elif kind == 3:
                self._finish_learning(t)
            else:
                self._close_block(t)

    def _decided_at(self, peak: _Peak) -> int:
        """When a held peak is decided: its refractory period over, and the sample after it in
        (the one that shows whether its last sample was a larger peak)."""
        return peak.index + self._refractory + 1

    def _timer(self) -> tuple[int, int] | None:
        """Earliest of the timers a held peak does not move, as (time, kind): 2 search-back,
        3 end of learning, 4 block end (the lower kind first at equal times)."""
        t = self._search_deadline()
        best = None if t is None else (t, 2)
        if not self._learnt and (best is None or self._learn_until < best[0]):
            best = (self._learn_until, 3)
        if self._blocks and (best is None or self._blocks[0].stop < best[0]):
            best = (self._blocks[0].stop, 4)
        return best

    def _close_block(self, t: int) -> None:
        """A quality block ends: add the detector's own evidence to the raw verdict.

        Noise shows as more peaks clearing the threshold than the rhythm has beats. But a fast
        rhythm of wide beats (VT) or a sudden tachycardia also fills the QRS band and crowds the
        old rhythm: when every beat found in the last 3 s is alike to another one there (and the
        crowding peaks are those beats), the block is a rhythm, not noise. Only a rhythm that
        starts from readable signal and stays explained block after block: once a block is
        noise, blocks stay noise while suspect (noise makes alike beats now and then).
        High-frequency noise and baseline steps stay noise whatever the beats.
        """
        j = self._blocks.popleft()
        since = t - self._crowd_window
        while self._strong and self._strong[0] <= since:
            self._strong.popleft()
        while self._accepted and self._accepted[0][0] <= since:
            self._accepted.popleft()
        q = j.quality
        crowded = False
        if self._rr2 and not q.unreadable:
            crowded = len(self._strong) > self.cfg.crowd_ratio * self._crowd_window / self._rr2_mean + 1
        suspect = crowded or (q.noisy and not q.artifact and not q.unusable)
        if not suspect:
            self._clear_blocks = self._clear_blocks + 1 if not q.unreadable else 0
        elif self._clear_blocks >= self.cfg.rhythm_clear_blocks and self._rhythm(len(self._strong)):
            self._clear_blocks += 1
            q = replace(q, noisy=False)
        else:
            self._clear_blocks = 0
            q = replace(q, noisy=True, crowded=crowded)
        if q is not j.quality:
            j = replace(j, quality=q)
        self.last_quality.append(j)
        self.readability.add(j)

    def _rhythm(self, explains: int) -> bool:
        """Whether the beats of the last 3 s are a rhythm: enough of them, at least as many as
        the strong peaks there less one, and nearly each alike to another (noise makes unlike
        ones; one odd beat in three is a rhythm's change, such as the sinus beat before a VT)."""
        n = len(self._accepted)
        if n < self.cfg.alike_min_beats or n + 1 < explains:
            return False
        best = best_partners(self.display, [r for _, r in self._accepted], self._alike_window, self._alike_lag)
        return best is not None and int(np.count_nonzero(best < self.cfg.alike_corr)) <= int(self.cfg.alike_outliers * n)

    # ------------------------------------------------------------------ features
    def _describe(self, peaks: list[_Peak]) -> None:
        """Attach filtered-signal amplitude, maximum slope and the baseline-shift verdict, from
        the samples held now; peaks whose look-backs have the same shape (all but those at the
        stream's start or end) together."""
        if not peaks:
            return
        groups: dict[tuple[int, ...], list[_Peak]] = {}
        for p in peaks:
            groups.setdefault(self._look_backs(p.index), []).append(p)
        for reach, group in groups.items():
            self._describe_alike(group, *reach)

    def _look_backs(self, i: int) -> tuple[int, int, int, int, int]:
        """Where the windows :meth:`_describe` reads start (or end) relative to a peak at ``i``:
        QRS band, derivative, validity, raw level before the QRS, raw level after the peak."""
        start = self._qrs_buf.start  # every buffer holds the same samples
        return (max(i - self._mwi_len - self._bls // 4, start) - i, max(i - self._bls, start) - i,
                max(i - self._mwi_len, start) - i, max(i - self._level_before[0], start) - i,
                min(i + self._level_after, self.n) - i)

    def _describe_alike(self, peaks: list[_Peak], q0: int, d0: int, v0: int, b0: int, a1: int) -> None:
        """:meth:`_describe` for peaks whose windows start (end) at the same offsets from them."""
        idx = np.array([p.index for p in peaks])
        q = self._qrs_buf.rows(idx + q0, 1 - q0)
        filtered = np.maximum(q.max(axis=1), -q.min(axis=1)).tolist()  # max |q| without an abs array
        d = self._der_buf.rows(idx + d0, 1 - d0)
        up, down = d.argmax(axis=1).tolist(), d.argmin(axis=1).tolist()
        rise, fall = d.max(axis=1).tolist(), (-d.min(axis=1)).tolist()  # the values at up and down
        valid = self.valid.rows(idx + v0, 1 - v0).all(axis=1).tolist()  # a gap edge is not a QRS
        steps = [0.0] * len(peaks)
        if b0 < -self._level_before[1] and a1 > 0:  # nor is a baseline step
            raw = self._raw.rows(idx + b0, a1 - b0)
            before, after = row_medians(raw[:, : -b0 - self._level_before[1]]), row_medians(raw[:, -b0:])
            steps = np.abs(after - before).tolist()
        ratio, pair, step = self.cfg.bls_ratio, self._bls_pair, self.cfg.step_mv
        for p, f, u, dn, r, fa, v, st in zip(peaks, filtered, up, down, rise, fall, valid, steps):
            p.filtered, p.slope = f, max(r, fa)
            p.is_shift = not (r > ratio * fa and fa > ratio * r and abs(u - dn) < pair) or not v or st > step

    def _r_mark(self, peak: _Peak) -> int:
        lo = max(peak.index - self._r_search[0], self.display.start)
        seg = self.display.get(lo, max(lo + 1, peak.index - self._r_search[1]))
        return max(0, lo + int(np.abs(seg).argmax()) - self._display_delay)

    # ------------------------------------------------------------------ thresholds
    def _thresholds(self, t: int) -> tuple[float, float]:
        """Detection thresholds at time ``t``: never halved for an irregular rhythm while the
        signal is noisy (noise makes the rhythm look irregular)."""
        noisy = self.readability.unreadable_at(t)
        r = self.cfg.threshold_ratio
        thr_i = self._npki + r * (self._spki - self._npki)
        thr_f = self._npkf + r * (self._spkf - self._npkf)
        if not noisy and self._irregular:
            thr_i, thr_f = 0.5 * thr_i, 0.5 * thr_f
        return thr_i, max(thr_f, self.cfg.min_qrs_mv)

    def _search_deadline(self) -> int | None:
        if not self._learnt or self._last_qrs is None or not self._rr2:
            return None
        deadline = self._last_qrs + int(self.cfg.rr_missed_ratio * self._rr2_mean)
        if self._next_search is not None and self._next_search > deadline:
            return self._next_search
        # A QRS taken back by a search-back (or after learning) is older than the time it was
        # taken: a deadline before that time is due then, not in the past, where the verdicts
        # and the beat's time would depend on how far back this update's history reaches.
        return max(deadline, self._accepted_t)

    # ------------------------------------------------------------------ decisions
    def _finish_learning(self, t: int) -> None:
        """Initial thresholds from the first seconds, then judge the peaks held meanwhile."""
        peaks, self._learning = self._learning, []
        if not self._set_levels(peaks):  # nothing like a QRS yet (flat line): keep learning
            self._learn_until = t + self._learn
            return
        self._learnt = True
        for p in peaks:
            self._judge(p, t)

    def _set_levels(self, peaks: list[_Peak]) -> bool:
        """Signal level from the strongest peaks, noise level from the typical one."""
        usable = [p for p in peaks if not p.is_shift and p.filtered >= self.cfg.min_qrs_mv]
        if not usable:
            return False
        mwi = np.array([p.mwi for p in usable])
        filt = np.array([p.filtered for p in usable])
        self._spki, self._spkf = float(np.max(mwi)) * 0.5, float(np.max(filt)) * 0.5
        self._npki, self._npkf = float(np.median(mwi)) * 0.25, float(np.median(filt)) * 0.25
        return True

    def _decide(self, peak: _Peak, t: int) -> None:
        """A held peak is finished (time ``t``) and described: learn from it or judge it."""
        if not self._learnt:
            self._learning.append(peak)
            return
        self._judge(peak, t)

    def _judge(self, peak: _Peak, t: int) -> None:
        """Classify a described peak as QRS or noise (time ``t``)."""
        thr_i, thr_f = self._thresholds(t)
        if peak.mwi > thr_i:
            self._strong.append(peak.index)
        if peak.mwi > thr_i and peak.filtered > thr_f and self._plausible(peak):
            self._accept(peak, t, search_back=False)
            return
        if self._last_qrs is None or peak.index - self._last_qrs >= self._refractory:
            self._candidates.append(peak)
        self._npki = 0.125 * peak.mwi + 0.875 * self._npki
        self._npkf = 0.125 * peak.filtered + 0.875 * self._npkf
        self._maybe_relearn(peak)

    def _plausible(self, peak: _Peak) -> bool:
        """Reject baseline shifts, refractory repeats and T waves."""
        if peak.is_shift:
            return False
        if self._last_qrs is None:
            return True
        rr = peak.index - self._last_qrs
        if rr < self._refractory:
            return False
        if rr < self._twave and peak.slope < self.cfg.twave_slope_ratio * self._last_slope:
            return False
        return True

    def _accept(self, peak: _Peak, t: int, search_back: bool) -> None:
        w = 0.25 if search_back else 0.125
        self._spki = w * peak.mwi + (1 - w) * self._spki
        self._spkf = w * peak.filtered + (1 - w) * self._spkf
        if self._last_qrs is not None:
            self._add_rr(peak.index - self._last_qrs)
        self._last_qrs, self._accepted_t = peak.index, t
        self._last_slope = peak.slope
        self._next_search = None
        self._candidates = deque(p for p in self._candidates if p.index > peak.index + self._refractory)
        r = self._r_mark(peak)
        self._accepted.append((peak.index, r))
        self._out.append(Beat(sample=r, emitted_at=t, search_back=search_back))

    def _add_rr(self, rr: int) -> None:
        self._rr1.append(rr)
        avg2 = self._rr2_mean
        if not self._rr2 or self.cfg.rr_low_ratio * avg2 <= rr <= self.cfg.rr_high_ratio * avg2:
            self._rr2.append(rr)
            self._rr_misses = 0
        else:
            self._rr_misses += 1
            if self._rr_misses >= self._rr1.maxlen:  # the rhythm has moved: follow it
                self._rr2.clear()
                self._rr2.extend(self._rr1)
                self._rr_misses = 0
        self._rr2_mean = avg2 = sum(self._rr2) / len(self._rr2)
        lo, hi = self.cfg.rr_low_ratio * avg2, self.cfg.rr_high_ratio * avg2
        self._irregular = len(self._rr1) == self._rr1.maxlen and not all(lo <= rr <= hi for rr in self._rr1)

    def _search_back(self, t: int) -> None:
        """No QRS for 166 % of the RR average: take the best kept peak above half threshold."""
        thr_i, thr_f = self._thresholds(t)
        h = self.cfg.search_back_ratio
        best = None
        for p in self._candidates:
            if p.index < t - self._max_age or p.index + self._refractory > t:
                continue
            if p.mwi > h * thr_i and p.filtered > max(h * thr_f, self.cfg.min_qrs_mv) and self._plausible(p):
                if best is None or p.mwi > best.mwi:
                    best = p
        if best is None:  # maybe a real pause: look again one RR later at the newer peaks
            self._next_search = t + max(1, int(self._rr2_mean))
            return
        self._accept(best, t, search_back=True)

    def _maybe_relearn(self, peak: _Peak) -> None:
        """After a long silence, learn the thresholds again from peaks that stand out.

        Only a repeated pattern counts (several peaks of comparable size well above the typical
        one), so a lone T wave in a real pause or noise on a flat line does not become a beat.
        """
        since = peak.index - (self._last_qrs if self._last_qrs is not None else 0)
        if since < self._relearn:
            return
        recent = [p for p in self._candidates if p.index > peak.index - self._relearn]
        if len(recent) < self.cfg.relearn_min_peaks:
            return
        mwi = np.array([p.mwi for p in recent])
        strong = mwi >= 0.3 * mwi.max()
        if strong.sum() < self.cfg.relearn_min_peaks:
            return
        if strong.all() or np.median(mwi[strong]) < self.cfg.relearn_prominence * np.median(mwi[~strong]):
            return
        self._set_levels(recent)
