"""Alarm episodes: raw alarm conditions in, one onset row and one end row per episode out.

A condition that clears and returns within its alarm's hold time (``HOLD_S``) stays one episode,
so a VT that pauses for a few sinus beats does not chatter onset/end/onset. Ventricular
tachycardia and fibrillation are one life-threatening episode: VT that turns into VF escalates
(the VT row ends with "escalated to ventricular_fibrillation" and a VF onset flagged
``escalation`` follows at the same sample), and VF that turns back into VT stays the VF episode
until both have been clear for the hold time. Noise is one episode the same way: the advisory
``ecg_noisy`` escalates to ``signal_noisy`` ("cannot analyse ECG") when the detector calls the
signal unreadable, which stays the episode until both are clear.

While the signal cannot be analysed (``set_noisy(True)``: noise or unusable signal), the onset of
a life-threatening alarm (a new episode or an escalation) is withheld, not raised. When the
signal is clean again the alarm engine makes every life-threatening condition start afresh from
clean signal; a withheld alarm whose condition is met again within its hold time is confirmed and
raised at once, with its true (withheld) onset sample and ``raised_at`` the sample it was
confirmed. One that clears inside the noise, or is not confirmed in time, is dropped. Technical
alarms (also the advisory ``ecg_noisy``: noise while beats can still be counted) and
lower-priority ones are never withheld.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "ecg_noisy": "low",
}
#: The life-threatening alarms (the five the PhysioNet/CinC 2015 challenge defines).
REQUIRED: tuple[str, ...] = (
    "asystole", "extreme_bradycardia", "extreme_tachycardia", "ventricular_tachycardia",
    "ventricular_fibrillation",
)
#: Seconds a cleared condition waits before its episode ends (a return within it continues the
#: episode). Rhythm alarms 10 s, about two VT runs apart by a few sinus beats; technical 5 s.
HOLD_S: dict[str, float] = {
    **{a: 10.0 for a in REQUIRED}, "pause": 10.0, "pvc_couplet": 10.0, "bigeminy": 10.0,
    "lead_off": 5.0, "signal_saturated": 5.0, "signal_noisy": 5.0, "ecg_noisy": 5.0,
}
#: Alarms that share one episode, from least to most severe.
ESCALATION: tuple[str, ...] = ("ventricular_tachycardia", "ventricular_fibrillation")
#: Noise is one episode too: the advisory (beats still read) escalates to "cannot analyse ECG"
#: and back without a new onset each time the detector's verdict flips.
NOISE_ESCALATION: tuple[str, ...] = ("ecg_noisy", "signal_noisy")
_GROUP_OF: dict[str, tuple[str, ...]] = {a: g for g in (ESCALATION, NOISE_ESCALATION) for a in g}


@dataclass(frozen=True)
class AlarmEvent:
    """An episode starting (``onset``) or stopping (``end``) at pipeline sample ``sample``.

    ``raised_at`` is the sample the event was decided when that is later than ``sample`` (an
    onset withheld for noise and confirmed afterwards); ``escalation`` marks the onset of a
    more severe alarm inside a running episode (not a new episode). An end row carries
    ``onset_sample``, the sample of the onset row it ends, so how long the alarm lasted is
    known where the episode is, not re-derived by every reader.
    """

    alarm: str
    event: str
    sample: int
    heart_rate_bpm: float | None
    detail: str = ""
    raised_at: int | None = None
    escalation: bool = False
    onset_sample: int | None = None

    @property
    def priority(self) -> str:
        return PRIORITY[self.alarm]

    @property
    def decided(self) -> int:
        return self.sample if self.raised_at is None else self.raised_at


@dataclass
class _Episode:
    alarm: str  # the alarm shown (the most severe so far, for an escalating episode)
    since: int  # onset of the episode's first alarm
    onset: AlarmEvent  # the row that opened the shown alarm
    cleared: int | None = None  # every condition of the episode off since this sample


class AlarmBook:
    """Which alarm episodes are on; ``set`` takes raw conditions, ``take`` gives the rows.

    ``fs`` and ``hold`` (True: ``HOLD_S``; False: episodes end when their condition does, as the
    reference of ``ecg-eval alarms`` wants) fix the hysteresis; ``due``/``fire`` run the hold
    timers on sample time.
    """

    def __init__(self, fs: float, hold: bool = True) -> None:
        self.fs = fs
        self._hold = {a: int(round(s * fs)) if hold else 0 for a, s in HOLD_S.items()}
        self._episodes: dict[str, _Episode] = {}  # by group: the alarm, or its escalation's first
        self._cond: dict[str, bool] = {}
        self._withheld: dict[str, AlarmEvent] = {}  # onsets waiting for clean signal
        self._confirm: dict[str, tuple[AlarmEvent, int]] = {}  # withheld onsets and their deadline
        self.noisy = False
        self.events: list[AlarmEvent] = []

    @property
    def active(self) -> dict[str, AlarmEvent]:
        """Alarm shown -> the row that raised it, for every open episode."""
        return {ep.alarm: ep.onset for ep in self._episodes.values()}

    def condition(self, alarm: str) -> bool:
        """The raw condition last set for ``alarm`` (the episode may outlast it by its hold)."""
        return self._cond.get(alarm, False)

    @property
    def withheld(self) -> tuple[str, ...]:
        return tuple(self._withheld)

    @staticmethod
    def _group(alarm: str) -> str:
        return _GROUP_OF[alarm][0] if alarm in _GROUP_OF else alarm

    def _members(self, group: str) -> tuple[str, ...]:
        return _GROUP_OF.get(group, (group,))

    def set(self, alarm: str, on: bool, sample: int, hr: float | None, detail: str = "") -> None:
        """The raw condition of ``alarm`` at ``sample`` (repeats are no-ops)."""
        was = self._cond.get(alarm, False)
        self._cond[alarm] = on
        group = self._group(alarm)
        ep = self._episodes.get(group)
        if on:
            if ep is not None:
                ep.cleared = None
            if not was and (ep is None or self._rank(alarm) > self._rank(ep.alarm)):
                onset = AlarmEvent(alarm, "onset", sample, hr, detail)
                pending, deadline = self._confirm.pop(alarm, (None, -1))
                if self.noisy and alarm in REQUIRED:
                    self._withheld.setdefault(alarm, pending or onset)
                else:
                    self._open(pending if pending is not None and sample <= deadline else onset, sample)
            return
        self._withheld.pop(alarm, None)
        if ep is not None and ep.cleared is None and not any(self._cond.get(a) for a in self._members(group)):
            ep.cleared = sample
            if self._hold[ep.alarm] == 0:
                self.fire(sample, hr)

    @staticmethod
    def _rank(alarm: str) -> int:
        return _GROUP_OF[alarm].index(alarm) if alarm in _GROUP_OF else 0

    def pulse(self, alarm: str, sample: int, hr: float | None, detail: str) -> None:
        """A momentary condition (a PVC couplet): on and off at once; the hold keeps it shown."""
        self.set(alarm, True, sample, hr, detail)
        self.set(alarm, False, sample, hr)

    def _open(self, onset: AlarmEvent, now: int) -> None:
        """Raise ``onset`` (decided at ``now``): a new episode, or an escalation of its group."""
        group = self._group(onset.alarm)
        ep = self._episodes.get(group)
        late = f"; withheld for noise, confirmed in clean signal at {now / self.fs:.1f} s" if now > onset.sample else ""
        raised_at = now if now > onset.sample else None
        if ep is None:
            row = AlarmEvent(onset.alarm, "onset", onset.sample, onset.heart_rate_bpm, onset.detail + late, raised_at)
            self._episodes[group] = _Episode(onset.alarm, onset.sample, row)
        else:
            self.events.append(AlarmEvent(ep.alarm, "end", now, onset.heart_rate_bpm,
                                          f"escalated to {onset.alarm}", onset_sample=ep.onset.sample))
            row = AlarmEvent(onset.alarm, "onset", onset.sample, onset.heart_rate_bpm,
                             f"{onset.detail}; escalated from {ep.alarm} (episode since {ep.since / self.fs:.1f} s)"
                             + late, raised_at, escalation=True)
            ep.alarm, ep.onset, ep.cleared = onset.alarm, row, None
        self.events.append(row)

    def set_noisy(self, noisy: bool, sample: int) -> None:
        """Whether the signal can be analysed; once it can, withheld onsets wait for confirmation."""
        if self.noisy and not noisy:
            self._confirm = {a: (o, sample + self._hold[a]) for a, o in self._withheld.items()}
            self._withheld.clear()
        self.noisy = noisy

    def due(self) -> int | None:
        """Sample at which the next episode's hold runs out, if any."""
        times = [ep.cleared + self._hold[ep.alarm] for ep in self._episodes.values() if ep.cleared is not None]
        return min(times) if times else None

    def fire(self, t: int, hr: float | None = None) -> None:
        """End the episodes whose hold has run out at ``t``, saying what ended and since when its
        condition was clear."""
        for group, ep in list(self._episodes.items()):
            if ep.cleared is not None and ep.cleared + self._hold[ep.alarm] <= t:
                del self._episodes[group]
                what = ep.alarm.replace("_", " ")
                self.events.append(AlarmEvent(ep.alarm, "end", t, hr,
                                              f"{what} over: condition clear since {ep.cleared / self.fs:.1f} s",
                                              onset_sample=ep.onset.sample))

    def close(self, sample: int, hr: float | None, detail: str) -> None:
        """End every open episode now (end of stream) and drop what is withheld."""
        for group, ep in list(self._episodes.items()):
            del self._episodes[group]
            self.events.append(AlarmEvent(ep.alarm, "end", sample, hr, detail, onset_sample=ep.onset.sample))
        self._withheld.clear()
        self._confirm.clear()

    def take(self) -> list[AlarmEvent]:
        out, self.events = self.events, []
        return out
