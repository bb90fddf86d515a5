"""What the station knows per patient, from the fleet worker's messages; no drawing here.

Each patient keeps its sweep screen (the last few seconds, bounded), the worker's HR and beat counts, its source state,
and an :class:`~ecg_monitor.gui.alarm_board.AlarmBoard` (the same alarm rules as the bedside
view: latching, acknowledging). The ward's alarm list merges every board, most urgent first.
Patients' stream clocks differ (each replay starts elsewhere), so alarms across patients are
ordered by when the station received their onset, not by stream time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ecg_monitor import PIPELINE_FS
import numpy as np

from ecg_monitor.gui.alarm_board import AlarmBoard, ViewAlarm
from ecg_monitor.gui.trace import LAG_S
from ecg_monitor.gui.window import STALE_S
from ecg_monitor.streamer.messages import Message

TRACE_S = 6.0  # seconds of trace a tile keeps (and shows)


@dataclass
class Patient:
    """One bed: its sweep screen, numbers from the worker's status, alarms.

    ``screen[i % len(screen)]`` holds sample ``i``: the sweep layout itself, so appending is one
    slice write and drawing needs no reordering; NaN where no sample is (yet, or lost)."""

    patient_id: str
    fs: float = PIPELINE_FS
    screen: np.ndarray = field(init=False)
    end: int = 0  # one past the newest sample received
    status: dict[str, Any] = field(default_factory=dict)
    board: AlarmBoard = field(default_factory=AlarmBoard)
    received: dict[str, float] = field(default_factory=dict)  # alarm id -> wall time of onset
    last_message_at: float = 0.0  # time.monotonic()
    appended_at: float = 0.0  # time.monotonic() of the newest trace chunk
    version: int = 0  # bumped when the numbers change, so a tile redraws its labels only then

    def __post_init__(self) -> None:
        self.screen = np.full(int(TRACE_S * self.fs), np.nan, dtype=np.float32)

    def shown_end(self, now: float) -> int:
        """The sample the strip draws up to: the newest, less ``LAG_S``, played out at real time
        since it arrived. Chunks come every 50 ms or more, so this moves the sweep every frame
        instead of in jumps, and it stops at the newest sample when data stops."""
        lag = int(LAG_S * self.fs)
        return self.end - lag + min(lag, int((now - self.appended_at) * self.fs))

    def append(self, start: int, samples: np.ndarray) -> None:
        """Write samples ``start``.. onto the screen; a gap is blanked, a restart clears it."""
        n = len(self.screen)
        if start < self.end or start - self.end >= n:  # a new source's numbering, or a long gap
            self.screen.fill(np.nan)
        else:
            self._write(self.end, np.full(start - self.end, np.nan, dtype=np.float32))
        self._write(start, samples[-n:] if len(samples) > n else samples)
        self.end = start + len(samples)

    def _write(self, start: int, values: np.ndarray) -> None:
        n, pos = len(self.screen), start % len(self.screen)
        first = min(len(values), n - pos)
        self.screen[pos : pos + first] = values[:first]
        self.screen[: len(values) - first] = values[first:]

    def state(self, now: float) -> str:
        """``connected``/``waiting``/``ended`` as the worker says; ``disconnected`` when silent."""
        state = self.status.get("source_state", "waiting")
        return "disconnected" if state != "ended" and now - self.last_message_at > STALE_S else state

    def onset(self, alarm: ViewAlarm) -> None:
        if alarm.alarm_id in self.board.alarms:  # already known (e.g. from a status message)
            return
        self.board.onset(alarm)
        self.received[alarm.alarm_id] = time.time()


@dataclass(frozen=True)
class WardAlarm:
    """One row of the ward's alarm list."""

    patient_id: str
    alarm: ViewAlarm
    received: float  # wall time the station learned of it


class Ward:
    """Every patient seen on the bus, keyed by id; ``apply`` routes one message to its patient."""

    def __init__(self) -> None:
        self.patients: dict[str, Patient] = {}
        self.unnamed = 0  # messages without a patient id (a one-patient monitor's): not shown

    def apply(self, message: Message) -> Patient | None:
        """Store one worker message; the patient it changed, or None when it names none."""
        pid = message.header.get("patient")
        if not pid:
            self.unnamed += 1
            return None
        patient = self.patients.get(pid)
        if patient is None:
            patient = self.patients[pid] = Patient(pid, float(message.header.get("fs") or PIPELINE_FS))
        patient.last_message_at = time.monotonic()
        kind = message.kind
        if kind == "trace":
            patient.append(message["start"], message.data)
            patient.appended_at = patient.last_message_at
        elif kind == "alarm":
            if message["event"] == "onset":
                patient.onset(ViewAlarm(kind=message["alarm"], priority=message["priority"],
                                        onset_s=message["record_time_s"], message=message["detail"]))
            else:
                patient.board.end(message["alarm"], message["record_time_s"])
        elif kind == "status":
            patient.status = message.header
            patient.version += 1
            for a in message.header.get("active_alarms", ()):  # joined mid-alarm: show it anyway
                if not any(v.kind == a["alarm"] and v.active for v in patient.board.alarms.values()):
                    patient.onset(ViewAlarm(kind=a["alarm"], priority=a["priority"], onset_s=a["since_s"]))
        return patient

    def alarms(self) -> list[WardAlarm]:
        """Every alarm of every patient: highest priority first, then the newest first."""
        rows = [WardAlarm(p.patient_id, a, p.received.get(a.alarm_id, 0.0))
                for p in self.patients.values() for a in p.board.alarms.values()]
        return sorted(rows, key=lambda r: (-r.alarm.rank, -r.received))

    def links(self) -> tuple[set[str], dict[str, int]]:
        """The transport states the workers report, and their lag per partition (messages
        waiting on the broker), from the patients' latest status."""
        states, lag = set(), {}
        for p in self.patients.values():
            fleet = p.status.get("fleet") or {}
            if "transport" in fleet:
                states.add(fleet["transport"])
            lag.update(fleet.get("lag") or {})
        return states, lag

    def gaps(self) -> int:
        """Gaps in the patients' chunk streams, as their workers counted them."""
        return sum((p.status.get("continuity") or {}).get("gaps", 0) for p in self.patients.values())

    def unsent(self) -> int:
        """Chunks the patients' sources made but could not hand to the broker (a fleet's outbox
        full while the broker was away), as the sources counted them: losses a worker cannot
        see when they come before the first chunk it received."""
        return sum((p.status.get("source_counters") or {}).get("unsent", 0) for p in self.patients.values())

    def acknowledge(self, patient_id: str) -> int:
        """Acknowledge every shown alarm of one patient; how many changed."""
        patient = self.patients.get(patient_id)
        return patient.board.acknowledge() if patient is not None else 0

    @property
    def version(self) -> int:
        """Changes whenever any board changes: the alarm list rebuilds only then."""
        return sum(p.board.version for p in self.patients.values()) + len(self.patients)
