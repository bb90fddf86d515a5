"""The worker's alarm stage: beat rhythm rules, the VF waveform detector and signal quality.

Quality gate: the pipeline's verdicts on the 0.5 s blocks (``PipelineOutput.quality``: the raw
signal judged by ``quality.py`` plus the detector's evidence, so the alarms and the Q labels
agree on what is unreadable). A block judged noisy or unusable makes the signal "cannot analyse" until
``GATE_S`` of clean blocks follow. Meanwhile life-threatening onsets are withheld by the alarm
book (``episodes.py``). When the gate opens every life-threatening condition restarts from
clean signal (beat runs, silences and RR intervals from that sample, the VF waveform from its
next windows), so a withheld alarm is raised, with its true onset time, only when clean signal
confirms it within its hold time. Noise raises the technical alarm ``signal_noisy`` ("cannot
analyse ECG") at once, a flat line or missing samples ``lead_off``, a rail ``signal_saturated``.
Noise that leaves the beats readable raises the advisory ``ecg_noisy`` (``advisory.py``), which
gates nothing (one episode with ``signal_noisy``, see ``episodes.py``); not during VF, whose
waveform is no noise.

Everything runs on sample time in a fixed order (0.5 s quality/VF ticks, beats at the sample
where the detector decided them, silence timers), so a record gives the same alarm events at
the same samples whatever the chunking and whatever the replay speed.
"""

from __future__ import annotations

import numpy as np

from ecg_monitor.detector.advisory import NOISE_BETWEEN_BEATS, NoiseAdvisory
from ecg_monitor.detector.episodes import AlarmBook, AlarmEvent
from ecg_monitor.detector.pipeline import PipelineOutput
from ecg_monitor.detector.quality import (
    BEAT_LAG_S,
    BEAT_WINDOW_S,
    QUALITY_BLOCK_S,
    BlockQuality,
    JudgedBlock,
    Readability,
    partner_correlations,
    shifted_shapes,
)
from ecg_monitor.detector.ringbuffer import RingBuffer
from ecg_monitor.detector.rules import Criteria, RhythmRules
from ecg_monitor.detector.vf import VFConfig, VFDetector

TICK_S = QUALITY_BLOCK_S  # the pipeline's block verdicts are found by the tick that ends with them
#: The longest a beat can be reported after its R wave: refractory hold (0.2 s) + R search window
#: (0.25 s) + margin. Silence alarms wait this much longer than their definition.
DECISION_DELAY_S = 0.6
#: In noise (noise between the beats, the "ECG noisy" level, in a block holding the run's beats or
#: over the advisory's last 10 s), a VT run's beats (their shapes: quality.BEAT_WINDOW_S) must
#: correlate with their median beat, each one closely with another (shifted by up to BEAT_LAG_S:
#: R marks of wide beats fall on R or S; not necessarily the next: 223's VT alternates two
#: shapes), and come regularly (longest RR at most VT_RR_SPREAD times the shortest): beats that
#: noise distorts into "V" are not. In clean signal the classifier's labels stand: a VT may be
#: irregular or bring fusion beats (210 at 1085 s: RRs 0.33 to 0.71 s, a fusion beat inside).
VT_MIN_CORRELATION = 0.7
VT_ALIKE = 0.9
VT_RR_SPREAD = 1.8
#: The labels a live VT run is made of: fusion beats too, which VT brings when a sinus beat meets
#: a ventricular one (a classic sign of VT), and which the classifier gives some beats of a VT
#: whose shape alternates (223). The couplet and bigeminy alarms still count V beats only.
VT_LABELS = ("V", "F")
#: Seconds of judged blocks kept for the VT check: a run of five beats over 100 bpm and its
#: last beat's wait for its label take under 4 s.
VT_SPAN_S = 8.0
#: Clean signal needed after a noisy or unusable block before life-threatening alarms are trusted.
GATE_S = 5.0


class Debounce:
    """A condition must hold ``on`` ticks in a row to start an alarm and fail ``off`` to end it."""

    def __init__(self, on: int, off: int) -> None:
        self.on, self.off = on, off
        self.active = False
        self._count = 0

    def update(self, condition: bool) -> bool:
        if condition != self.active:
            self._count += 1
            if self._count >= (self.on if condition else self.off):
                self.active, self._count = condition, 0
        else:
            self._count = 0
        return self.active


class AlarmEngine:
    """``update(raw_chunk, pipeline_output)`` -> alarm events, in sample order."""

    def __init__(self, fs: float, criteria: Criteria | None = None) -> None:
        self.fs = fs
        self.book = AlarmBook(fs)
        self.rules = RhythmRules(fs, self.book, criteria, decision_delay_s=DECISION_DELAY_S,
                                 vt_check=self._consistent, vt_labels=VT_LABELS)
        self.vf = VFDetector(fs, VFConfig(window_s=self.rules.c.vf_s))
        self._verdicts: dict[int, BlockQuality] = {}  # the pipeline's, by block end, until their tick
        self._tick = int(round(TICK_S * fs))
        self._next_tick = self._tick
        self._beat_window = (int(round(BEAT_WINDOW_S[0] * fs)), int(round(BEAT_WINDOW_S[1] * fs)))
        self._lag = int(round(BEAT_LAG_S * fs))
        self.advisory = NoiseAdvisory(fs, self._tick, self._beat_window, self._lag)
        cap = self.vf.window + 4 * self._tick  # also a VT run's beats when its last is labelled
        self._display = RingBuffer(cap)
        self._debounce = {
            "ventricular_fibrillation": Debounce(2, 2),
            "lead_off": Debounce(2, 2),
            "signal_saturated": Debounce(2, 2),
        }
        self._judged = Readability(keep=int(np.ceil(VT_SPAN_S / TICK_S)))  # the blocks a VT run's beats lie in
        self._gate = int(round(GATE_S * fs))
        self._bad_at: int | None = None  # end of the last noisy or unusable block
        self._noisy_at: int | None = None  # end of the last noisy block
        self.n = 0

    @property
    def active(self) -> dict[str, AlarmEvent]:
        return self.book.active

    @property
    def heart_rate_bpm(self) -> float | None:
        return self.rules.heart_rate_bpm

    def update(self, raw: np.ndarray, out: PipelineOutput) -> list[AlarmEvent]:
        """Consume one chunk (raw mV and the pipeline's output for it), in tick-sized pieces so
        the look-back buffers always hold what a tick needs."""
        beats = sorted(out.beats, key=lambda b: b.emitted_at)
        self._verdicts.update((j.stop, j.quality) for j in out.quality)
        k = 0
        for i in range(0, len(raw), self._tick):
            piece = raw[i : i + self._tick]
            self._display.extend(out.filtered[i : i + self._tick])
            self.n += len(piece)
            while k < len(beats) and beats[k].emitted_at <= self.n:
                self._advance(beats[k].emitted_at, timers_inclusive=False)
                self.rules.beat(beats[k].sample, beats[k].emitted_at, beats[k].label)
                self.advisory.beat(beats[k].sample, beats[k].emitted_at, self._display)
                k += 1
            self._advance(self.n, timers_inclusive=True)
        return self.book.take()

    def close(self, detail: str) -> list[AlarmEvent]:
        """End every active alarm (end of stream), so the log shows no alarm left open."""
        self.book.close(self.n, self.heart_rate_bpm, detail)
        return self.book.take()

    def _advance(self, t: int, timers_inclusive: bool) -> None:
        """Run ticks (at or before ``t``) and timers (before ``t``, or at it) in time order."""
        while True:
            due = self.rules.due()
            timer = due is not None and (due < t or (timers_inclusive and due == t))
            tick = self._next_tick <= t
            if tick and (not timer or self._next_tick <= due):
                self._on_tick(self._next_tick)
                self._next_tick += self._tick
            elif timer:
                self.rules.fire(due)
            else:
                return

    def _on_tick(self, t: int) -> None:
        if t - self._tick < self._display.start:  # history lost (cannot happen with sane chunks)
            return
        q = self._verdicts.pop(t, BlockQuality())
        self._judged.new_update()
        self._judged.add(JudgedBlock(t - self._tick, t, q))
        if q.unusable:
            self.rules.mark_unusable(t)
        if q.unusable or q.noisy:
            self._bad_at = t
        if q.noisy:
            self._noisy_at = t
        hr = self.heart_rate_bpm
        noisy = self._noisy_at is not None and t - self._noisy_at < self._gate
        self.book.set("signal_noisy", noisy, t, hr, "cannot analyse ECG: muscle or electrode noise; "
                      "life-threatening alarms withheld until the signal is clean")
        gated = self._bad_at is not None and t - self._bad_at < self._gate
        if self.book.noisy and not gated:
            self.book.set_noisy(False, t)
            self.rules.restart(t)
            self._debounce["ventricular_fibrillation"] = Debounce(2, 2)
            self.book.set("ventricular_fibrillation", False, t, hr)
        self.book.set_noisy(gated, t)
        detail = "no samples" if q.missing else "flat line" if q.flat else ""
        self._set("lead_off", q.missing or q.flat, t, hr, detail)
        self._set("signal_saturated", q.saturated, t, hr, "signal stuck at the amplifier's limit")
        w = self.vf.window
        vf = t - w >= self._display.start and self.vf.is_vf(self._display.get(t - w, t))
        self._set("ventricular_fibrillation", vf, t, hr,
                  f"flutter/fibrillation waveform for {w / self.fs:.0f} s; {self.rules.hr_text()}")
        advise = self.advisory.tick(t, q) and "ventricular_fibrillation" not in self.book.active
        self.book.set("ecg_noisy", advise, t, hr, self.advisory.detail())

    def _consistent(self, r_samples: list[int]) -> bool:
        """In clean signal, yes (the policy: VT must be confirmed only where noise may have made
        its beats); in noise, do the run's beats look alike and come regularly? VT does; beats
        found in noise, or distorted by it, mostly do not."""
        (lo, hi), lag = self._beat_window, self._lag
        noise = max(self.advisory.ratio, self._judged.noise_over(r_samples[0] - lo, r_samples[-1] + hi, self.n))
        if noise <= NOISE_BETWEEN_BEATS:
            return True
        if r_samples[0] - lo - lag < self._display.start or r_samples[-1] + hi + lag > self._display.end:
            return True  # not held (cannot happen with the buffer's size): do not withhold on it
        rr = np.diff(r_samples)
        if rr.max() > VT_RR_SPREAD * rr.min():
            return False
        shifted = shifted_shapes(self._display, r_samples, (lo, hi), lag)
        if shifted is None:  # held, so a gap or a flat line: no shape
            return False
        shapes = shifted[:, lag]
        template = np.median(shapes, axis=0)
        if not np.linalg.norm(template) > 0:
            return False
        if float(np.median(shapes @ template)) / float(np.linalg.norm(template)) < VT_MIN_CORRELATION:
            return False
        return len(r_samples) >= 2 and float(partner_correlations(shifted, lag).min()) >= VT_ALIKE

    def _set(self, alarm: str, condition: bool, t: int, hr: float | None, detail: str) -> None:
        self.book.set(alarm, self._debounce[alarm].update(condition), t, hr, detail)
