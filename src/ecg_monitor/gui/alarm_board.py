"""What the view knows about alarms: which are active, which were acknowledged, audio paused.

The worker decides alarms and logs them to CSV; the view only mirrors them. Acknowledging and
silencing are operator actions on this view and never reach the worker or the log.

Behaviour (IEC 60601-1-8 terms): an alarm shows while its condition is active. Acknowledging it
stops its flashing (the visual signal stays, steady, while the condition lasts) and its sound.
High-priority alarms latch: one that ended unacknowledged stays on the banner until acknowledged,
so a short VT run cannot pass unseen. "Audio paused" silences every alarm for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecg_monitor.gui.colors import PRIORITY_STYLES

AUDIO_PAUSE_S = 120.0  # IEC 60601-1-8 suggests at most 2 min unless configured otherwise


@dataclass
class ViewAlarm:
    """One alarm as the view shows it."""

    kind: str  # e.g. "VT", "brady"
    priority: str  # "high" | "medium" | "low"
    onset_s: float  # stream time of onset (s since the source's first sample)
    message: str = ""
    end_s: float | None = None
    acknowledged: bool = False

    @property
    def title(self) -> str:
        """The alarm's name for people: ``pvc_couplet`` -> ``PVC couplet``."""
        first, *rest = self.kind.split("_")
        return " ".join([first.upper() if len(first) <= 3 else first.capitalize(), *rest])

    @property
    def alarm_id(self) -> str:
        return f"{self.kind}@{self.onset_s:.3f}"

    @property
    def active(self) -> bool:
        return self.end_s is None

    @property
    def lasted(self) -> str:
        """How long an ended alarm lasted, e.g. ``4.9 s`` ('' while active)."""
        return "" if self.end_s is None else f"{self.end_s - self.onset_s:.1f} s"

    @property
    def rank(self) -> int:
        style = PRIORITY_STYLES.get(self.priority)
        return style.rank if style else 0

    @property
    def shown(self) -> bool:
        """On the banner: active, or a latched high-priority alarm nobody acknowledged yet."""
        return self.active or (self.priority == "high" and not self.acknowledged)


class AlarmBoard:
    """The alarms the view has seen, keyed by id, plus the audio-paused deadline."""

    def __init__(self, keep: int = 500) -> None:
        self.alarms: dict[str, ViewAlarm] = {}
        self.keep = keep
        self.audio_paused_until: float | None = None  # time.monotonic() deadline
        self.version = 0  # bumped on every change so widgets redraw only when needed

    def onset(self, alarm: ViewAlarm) -> None:
        """A new alarm condition; the oldest alarms are forgotten beyond ``keep``."""
        self.alarms[alarm.alarm_id] = alarm
        while len(self.alarms) > self.keep:
            del self.alarms[next(iter(self.alarms))]
        self.version += 1

    def end(self, kind: str, end_s: float) -> ViewAlarm | None:
        """The condition of the active alarm of this kind is over (at most one is active)."""
        for alarm in reversed(self.alarms.values()):
            if alarm.kind == kind and alarm.active:
                alarm.end_s = end_s
                self.version += 1
                return alarm
        return None

    def banner_alarm(self) -> ViewAlarm | None:
        """The alarm the banner shows: highest priority first, then the newest."""
        shown = [a for a in self.alarms.values() if a.shown]
        return max(shown, key=lambda a: (a.rank, a.active, a.onset_s), default=None)

    def shown_count(self) -> int:
        return sum(a.shown for a in self.alarms.values())

    def acknowledge(self, alarm_id: str | None = None) -> int:
        """Acknowledge one alarm, or every shown one; returns how many changed."""
        if alarm_id is None:
            targets = [a for a in self.alarms.values() if a.shown]
        else:
            targets = [self.alarms[alarm_id]] if alarm_id in self.alarms else []
        changed = 0
        for alarm in targets:
            if not alarm.acknowledged:
                alarm.acknowledged = True
                changed += 1
        self.version += bool(changed)
        return changed

    def pause_audio(self, now: float, seconds: float = AUDIO_PAUSE_S) -> None:
        self.audio_paused_until = now + seconds
        self.version += 1

    def resume_audio(self) -> None:
        """End an audio pause early: alarms sound again at once."""
        self.audio_paused_until = None
        self.version += 1

    def audio_paused_left(self, now: float) -> float:
        """Seconds of audio pause left (0 when sounding is allowed)."""
        if self.audio_paused_until is None:
            return 0.0
        return max(0.0, self.audio_paused_until - now)

    def sound_interval(self, now: float) -> float | None:
        """Seconds between sound bursts now: the most urgent unacknowledged active alarm's,
        None when nothing should sound (no such alarm, or audio paused)."""
        if self.audio_paused_left(now) > 0.0:
            return None
        intervals = [
            style.burst_every_s
            for a in self.alarms.values()
            if a.active and not a.acknowledged
            and (style := PRIORITY_STYLES.get(a.priority)) is not None and style.burst_every_s is not None
        ]
        return min(intervals, default=None)
