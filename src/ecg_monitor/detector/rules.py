"""Beat-rhythm alarm rules, shared by the live alarm engine and the reference of ``ecg-eval alarms``.

The five required alarms follow the PhysioNet/CinC Challenge 2015 definitions:

* ``asystole``: no QRS for at least 4 s;
* ``extreme_bradycardia``: heart rate below 40 bpm for 5 consecutive beats;
* ``extreme_tachycardia``: heart rate above 140 bpm for 17 consecutive beats;
* ``ventricular_tachycardia``: 5 or more consecutive ventricular beats faster than 100 bpm;
* ``ventricular_fibrillation``: at least 4 s of flutter/fibrillation waveform (``vf.py``; not a
  beat rule).

The rate limits of brady- and tachycardia apply to each beat's own rate, 60 / RR; the rate of a
VT run is that of its last five V beats ("run rate"). Lower priority: ``pause`` (no QRS for
2.5 s), ``pvc_couplet`` (exactly two V beats in a row) and ``bigeminy`` (four N-V cycles in a row).

The one heart rate shown and logged (``heart_rate_bpm``) is 60 / the median of the last 8 RR
intervals, updated at every beat; a pause's long RR counts like any other, during asystole it
is 0. An RR interval that spans unusable signal (missing, flat, saturated; flutter in the
reference) is not a heart rate, and silence there is not asystole: both count from the end of
it, and the rate is unknown (None) until a new RR has been measured after it. Every alarm's
detail names the rate it quotes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.episodes import AlarmBook

@dataclass(frozen=True)
class Criteria:
    asystole_s: float = 4.0
    brady_bpm: float = 40.0
    brady_beats: int = 5
    tachy_bpm: float = 140.0
    tachy_beats: int = 17
    vt_beats: int = 5
    vt_bpm: float = 100.0
    vf_s: float = 4.0  # the VF detector's window (vf.VFConfig) and the reference's minimum
    pause_s: float = 2.5
    bigeminy_cycles: int = 4
    hr_beats: int = 8  # the heart rate: median of this many RR intervals


class RhythmRules:
    """Feed beats in time order (``beat``) and fire silence timers (``due``/``fire``).

    ``decision_delay_s`` is how long after an R wave the detector may still report it; silence
    alarms wait that much longer so a late beat does not cause a false one (0 for references).
    ``vt_check(r_samples)`` (the live engine's) must accept a VT run's last beats before VT starts:
    the wide beats must be consistent, not beats found in noise. ``vt_labels``: the beat labels a
    VT run is made of (the reference's annotated VT beats are all V); most of a run's last
    ``vt_beats`` must be V.
    """

    def __init__(self, fs: float, book: AlarmBook, criteria: Criteria | None = None,
                 decision_delay_s: float = 0.0, vt_check: Callable[[list[int]], bool] | None = None,
                 vt_labels: tuple[str, ...] = ("V",)) -> None:
        self.fs = fs
        self._vt_labels = vt_labels
        self.c = c = criteria or Criteria()
        self.book = book
        self._vt_check = vt_check
        self._delay = int(round(decision_delay_s * fs))
        self._asystole = int(round(c.asystole_s * fs))
        self._pause = int(round(c.pause_s * fs))
        self._brady_rr = 60.0 * fs / c.brady_bpm
        self._tachy_rr = 60.0 * fs / c.tachy_bpm
        self.last: int | None = None  # R sample of the last beat
        self.good_since = 0  # signal usable from here on
        self._rr: deque[float] = deque(maxlen=c.hr_beats)
        self._slow = self._fast = 0  # consecutive beats below / above the rate limits
        self._v_run: list[tuple[int, bool]] = []  # the current run of VT members: R sample, is V
        self._pattern: deque[bool] = deque(maxlen=2 * c.bigeminy_cycles)  # is-V of recent beats

    @property
    def heart_rate_bpm(self) -> float | None:
        """60 / median of the last ``hr_beats`` valid RR intervals; 0 in asystole."""
        if self.book.condition("asystole"):
            return 0.0
        return 60.0 * self.fs / float(np.median(self._rr)) if self._rr else None

    def hr_text(self) -> str:
        """The heart rate as every alarm detail quotes it, saying which rate it is."""
        hr = self.heart_rate_bpm
        if hr is None:
            return "HR unknown (no RR measured since unusable signal)"
        return f"HR {hr:.0f} bpm (median of last {self.c.hr_beats} RR)"

    def mark_unusable(self, until: int) -> None:
        """Signal up to ``until`` was unusable: RR intervals, silences and the heart rate restart after it."""
        if until > self.good_since:
            self.good_since = until
            self._rr.clear()

    def restart(self, t: int) -> None:
        """Beats before ``t`` are not trusted (noisy signal): every rhythm condition must be met
        afresh by beats and silences after it."""
        self.mark_unusable(t)
        self._slow = self._fast = 0
        self._v_run.clear()
        self._pattern.clear()
        for alarm in ("asystole", "pause", "extreme_bradycardia", "extreme_tachycardia", "ventricular_tachycardia"):
            self.book.set(alarm, False, t, self.heart_rate_bpm)

    # ------------------------------------------------------------------ silence timers
    def _silence_from(self) -> int:
        return max(self.last if self.last is not None else self.good_since, self.good_since)

    def due(self) -> int | None:
        """Sample at which the next timer fires (asystole, pause, the end of an episode), if any."""
        ref = self._silence_from() + self._delay
        times = [ref + self._pause if not self.book.condition("pause") else None,
                 ref + self._asystole if not self.book.condition("asystole") else None,
                 self.book.due()]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def fire(self, t: int) -> None:
        ref = self._silence_from() + self._delay
        for alarm, limit in (("pause", self._pause), ("asystole", self._asystole)):
            if t >= ref + limit:
                self.book.set(alarm, True, t, self.heart_rate_bpm, f"no QRS for {limit / self.fs:.1f} s")
        self.book.fire(t, self.heart_rate_bpm)

    # ------------------------------------------------------------------ beats
    def beat(self, sample: int, decided: int, label: str) -> None:
        """One beat: R mark ``sample``, known at ``decided``, AAMI ``label``."""
        valid = self.last is not None and self.last >= self.good_since and sample > self.last
        rr = sample - self.last if valid else None
        silence = sample - self._silence_from()
        self.last = sample
        for alarm, limit in (("pause", self._pause), ("asystole", self._asystole)):
            if silence >= limit:  # the silence outlasted the limit but its timer waited for this beat
                self.book.set(alarm, True, decided, self.heart_rate_bpm, f"no QRS for {silence / self.fs:.1f} s")
        if rr is None:
            self._slow = self._fast = 0
            self._v_run.clear()
            self._pattern.clear()
        else:
            self._rr.append(rr)
            self._slow = self._slow + 1 if rr > self._brady_rr else 0
            self._fast = self._fast + 1 if rr < self._tachy_rr else 0
        for alarm in ("pause", "asystole"):
            self.book.set(alarm, False, decided, self.heart_rate_bpm)
        hr, hr_text = self.heart_rate_bpm, self.hr_text()
        c = self.c
        beat_rate = f"{60.0 * self.fs / rr:.0f} bpm" if rr else "unknown"
        self.book.set("extreme_bradycardia", self._slow >= c.brady_beats or
                      (self.book.condition("extreme_bradycardia") and self._slow > 0), decided, hr,
                      f"{self._slow} beats in a row under {c.brady_bpm:.0f} bpm, last {beat_rate} (beat rate); {hr_text}")
        self.book.set("extreme_tachycardia", self._fast >= c.tachy_beats or
                      (self.book.condition("extreme_tachycardia") and self._fast > 0), decided, hr,
                      f"{self._fast} beats in a row over {c.tachy_bpm:.0f} bpm, last {beat_rate} (beat rate); {hr_text}")
        self._ventricular(sample, decided, label, hr, hr_text)

    def _ventricular(self, sample: int, decided: int, label: str, hr: float | None, hr_text: str) -> None:
        c = self.c
        is_v = label == "V"
        before = list(self._pattern)[-3:]  # is-V of the beats before this one
        if not is_v and before[-2:] == [True, True] and before[:-2] != [True]:  # exactly two V
            self.book.pulse("pvc_couplet", decided, hr, f"two consecutive PVCs; {hr_text}")
        member = label in self._vt_labels
        if member:
            self._v_run.append((sample, is_v))
        else:
            self._v_run.clear()
        last = self._v_run[-c.vt_beats:]
        run = [r for r, _ in last]
        rate = 60.0 * self.fs * (len(run) - 1) / (run[-1] - run[0]) if len(run) >= 2 else 0.0
        mostly_v = 2 * sum(v for _, v in last) > c.vt_beats
        vt = (len(run) >= c.vt_beats and rate > c.vt_bpm and mostly_v
              and (self._vt_check is None or self._vt_check(run)))
        kinds = "/".join(self._vt_labels)
        self.book.set("ventricular_tachycardia", vt or (self.book.condition("ventricular_tachycardia") and member),
                      decided, hr, f"run of {len(self._v_run)} {kinds} beats at {rate:.0f} bpm (run rate); {hr_text}")
        self._pattern.append(is_v)
        p = list(self._pattern)
        alternating = all(p[i] != p[i + 1] for i in range(len(p) - 1))
        if len(p) == self._pattern.maxlen and alternating and is_v:
            self.book.set("bigeminy", True, decided, hr, f"{c.bigeminy_cycles} N-V cycles; {hr_text}")
        elif len(p) >= 2 and p[-1] == p[-2]:
            self.book.set("bigeminy", False, decided, hr)
