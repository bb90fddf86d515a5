"""Beat-rhythm alarm rules, shared by the live alarm engine and the reference of ``ecg-eval alarms``.

The five required alarms follow the PhysioNet/CinC Challenge 2015 definitions:

* ``asystole``: no QRS for at least 4 s;
* ``extreme_bradycardia``: heart rate below 40 bpm for 5 consecutive beats;
* ``extreme_tachycardia``: heart rate above 140 bpm for 17 consecutive beats;
* ``ventricular_tachycardia``: 5 or more consecutive ventricular beats faster than 100 bpm;
* ``ventricular_fibrillation``: at least 4 s of flutter/fibrillation waveform (``vf.py``; not a
  beat rule).

"Heart rate of a beat" is its instantaneous rate 60 / RR; the rate of a VT run is that of its
last five V beats. Lower priority: ``pause`` (no QRS for 2.5 s), ``pvc_couplet`` (exactly two V
beats in a row; held 10 s) and ``bigeminy`` (four N-V cycles in a row).

An RR interval that spans unusable signal (missing, flat, saturated; flutter in the reference)
is not a heart rate, and silence there is not asystole: both count from the end of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

#: IEC 60601-1-8 priority of every alarm the monitor raises.
PRIORITY: dict[str, str] = {
    "asystole": "high",
    "ventricular_fibrillation": "high",
    "ventricular_tachycardia": "high",
    "extreme_bradycardia": "high",
    "extreme_tachycardia": "high",
    "pause": "medium",
    "lead_off": "medium",
    "pvc_couplet": "low",
    "bigeminy": "low",
    "signal_saturated": "low",
    "signal_noisy": "low",
}
REQUIRED: tuple[str, ...] = (
    "asystole", "extreme_bradycardia", "extreme_tachycardia", "ventricular_tachycardia",
    "ventricular_fibrillation",
)


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
    couplet_hold_s: float = 10.0
    bigeminy_cycles: int = 4
    hr_beats: int = 8  # displayed heart rate: median of this many RR intervals


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm starting (``onset``) or stopping (``end``) at pipeline sample ``sample``."""

    alarm: str
    event: str
    sample: int
    heart_rate_bpm: float | None
    detail: str = ""

    @property
    def priority(self) -> str:
        return PRIORITY[self.alarm]


class AlarmBook:
    """Which alarms are on; turns state changes into onset/end events (never a repeat)."""

    def __init__(self) -> None:
        self.active: dict[str, AlarmEvent] = {}
        self.events: list[AlarmEvent] = []

    def set(self, alarm: str, on: bool, sample: int, hr: float | None, detail: str = "") -> None:
        if on == (alarm in self.active):
            return
        event = AlarmEvent(alarm, "onset" if on else "end", sample, hr, detail)
        if on:
            self.active[alarm] = event
        else:
            del self.active[alarm]
        self.events.append(event)

    def take(self) -> list[AlarmEvent]:
        out, self.events = self.events, []
        return out


class RhythmRules:
    """Feed beats in time order (``beat``) and fire silence timers (``due``/``fire``).

    ``decision_delay_s`` is how long after an R wave the detector may still report it; silence
    alarms wait that much longer so a late beat does not cause a false one (0 for references).
    """

    def __init__(self, fs: float, book: AlarmBook, criteria: Criteria | None = None,
                 decision_delay_s: float = 0.0) -> None:
        self.fs = fs
        self.c = c = criteria or Criteria()
        self.book = book
        self._delay = int(round(decision_delay_s * fs))
        self._asystole = int(round(c.asystole_s * fs))
        self._pause = int(round(c.pause_s * fs))
        self._couplet_hold = int(round(c.couplet_hold_s * fs))
        self._brady_rr = 60.0 * fs / c.brady_bpm
        self._tachy_rr = 60.0 * fs / c.tachy_bpm
        self.last: int | None = None  # R sample of the last beat
        self.good_since = 0  # signal usable from here on
        self._rr: deque[float] = deque(maxlen=c.hr_beats)
        self._slow = self._fast = 0  # consecutive beats below / above the rate limits
        self._v_run: list[int] = []
        self._pattern: deque[bool] = deque(maxlen=2 * c.bigeminy_cycles)  # is-V of recent beats
        self._couplet_until: int | None = None

    @property
    def heart_rate_bpm(self) -> float | None:
        if "asystole" in self.book.active:
            return 0.0
        return 60.0 * self.fs / float(np.median(self._rr)) if self._rr else None

    def mark_unusable(self, until: int) -> None:
        """Signal up to ``until`` was unusable: RR intervals and silences restart after it."""
        self.good_since = max(self.good_since, until)

    # ------------------------------------------------------------------ silence timers
    def _silence_from(self) -> int:
        return max(self.last if self.last is not None else self.good_since, self.good_since)

    def due(self) -> int | None:
        """Sample at which the next timer fires (asystole, pause, couplet release), if any."""
        ref = self._silence_from() + self._delay
        times = [ref + self._pause if "pause" not in self.book.active else None,
                 ref + self._asystole if "asystole" not in self.book.active else None,
                 self._couplet_until]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def fire(self, t: int) -> None:
        ref = self._silence_from() + self._delay
        hr = self.heart_rate_bpm
        for alarm, limit in (("pause", self._pause), ("asystole", self._asystole)):
            if t >= ref + limit:
                self.book.set(alarm, True, t, 0.0, f"no QRS for {limit / self.fs:.1f} s")
        if self._couplet_until is not None and t >= self._couplet_until:
            self._couplet_until = None
            self.book.set("pvc_couplet", False, t, hr)

    # ------------------------------------------------------------------ beats
    def beat(self, sample: int, decided: int, label: str) -> None:
        """One beat: R mark ``sample``, known at ``decided``, AAMI ``label``."""
        valid = self.last is not None and self.last >= self.good_since and sample > self.last
        rr = sample - self.last if valid else None
        silence = sample - self._silence_from()
        self.last = sample
        for alarm, limit in (("pause", self._pause), ("asystole", self._asystole)):
            if silence >= limit:  # the silence outlasted the limit but its timer waited for this beat
                self.book.set(alarm, True, decided, 0.0, f"no QRS for {silence / self.fs:.1f} s")
            self.book.set(alarm, False, decided, self.heart_rate_bpm)
        if rr is None:
            self._slow = self._fast = 0
            self._v_run.clear()
            self._pattern.clear()
        else:
            self._rr.append(rr)
            self._slow = self._slow + 1 if rr > self._brady_rr else 0
            self._fast = self._fast + 1 if rr < self._tachy_rr else 0
        hr = self.heart_rate_bpm
        c = self.c
        self.book.set("extreme_bradycardia", self._slow >= c.brady_beats or
                      ("extreme_bradycardia" in self.book.active and self._slow > 0), decided, hr,
                      f"{self._slow} beats under {c.brady_bpm:.0f} bpm")
        self.book.set("extreme_tachycardia", self._fast >= c.tachy_beats or
                      ("extreme_tachycardia" in self.book.active and self._fast > 0), decided, hr,
                      f"{self._fast} beats over {c.tachy_bpm:.0f} bpm")
        self._ventricular(sample, decided, label == "V", hr)

    def _ventricular(self, sample: int, decided: int, is_v: bool, hr: float | None) -> None:
        c = self.c
        if is_v:
            self._v_run.append(sample)
        elif len(self._v_run) == 2:
            self.book.set("pvc_couplet", True, decided, hr, "two consecutive PVCs")
            self._couplet_until = decided + self._couplet_hold
        if not is_v:
            self._v_run.clear()
        run = self._v_run[-c.vt_beats:]
        rate = 60.0 * self.fs * (len(run) - 1) / (run[-1] - run[0]) if len(run) >= 2 else 0.0
        vt = len(run) >= c.vt_beats and rate > c.vt_bpm
        self.book.set("ventricular_tachycardia", vt or ("ventricular_tachycardia" in self.book.active and is_v),
                      decided, hr, f"{len(self._v_run)} V beats at {rate:.0f} bpm")
        self._pattern.append(is_v)
        p = list(self._pattern)
        alternating = all(p[i] != p[i + 1] for i in range(len(p) - 1))
        if len(p) == self._pattern.maxlen and alternating and is_v:
            self.book.set("bigeminy", True, decided, hr, f"{c.bigeminy_cycles} N-V cycles")
        elif len(p) >= 2 and p[-1] == p[-2]:
            self.book.set("bigeminy", False, decided, hr)
