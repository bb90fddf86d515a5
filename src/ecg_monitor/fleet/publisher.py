"""Many patients' sources sent at real time (or ``speed`` x) through one :class:`ChunkSender`.

One loop serves every patient, a chunk each per tick, each message naming its patient; every
source's state goes out once a second and ``ended`` at the end, as the single streamer does. A
chunk the sender does not take (stopping, or its outbox full while the broker is away) keeps its
sequence number, so the worker sees the gap, and is counted per patient (``unsent`` in the
source's counters, and the fleet's console line).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ecg_monitor.streamer.messages import encode
from ecg_monitor.streamer.source import Source, SourceState
from ecg_monitor.transport.base import ChunkSender

STATE_EVERY_S = 1.0
REPORT_EVERY_S = 2.0  # the console line while the transport is not connected (and at each change of state)


@dataclass
class _Patient:
    source: Source
    seq: int = 0
    next_sample: int = 0
    unsent: int = 0  # chunks the sender did not take


class FleetPublisher:
    def __init__(self, patients: dict[str, Source], sender: ChunkSender, speed: float = 1.0, chunk: int = 18,
                 duration_s: float | None = None, stop=None, say: Callable[[str], None] | None = None) -> None:
        self.patients = {p: _Patient(s) for p, s in patients.items()}
        self.sender, self.speed, self.chunk, self.duration_s, self.stop = sender, speed, chunk, duration_s, stop
        self.say = say  # where the console line goes (None: nowhere)

    def line(self) -> str:
        """The console line: chunks made and unsent, the transport's state and its outbox."""
        made = sum(p.seq for p in self.patients.values())
        unsent = {name: p.unsent for name, p in self.patients.items() if p.unsent}
        which = f" ({', '.join(f'{name} {n}' for name, n in unsent.items())})" if unsent else ""
        n = len(self.patients)
        return (f"fleet: {n} patient{'s' * (n != 1)}, chunks {made} made, {sum(unsent.values())} unsent{which} | "
                f"transport {self.sender.state()}, outbox {self.sender.backlog()}")

    def _state(self, patient: str, p: _Patient, state: SourceState, detail: str = "") -> None:
        s = p.source
        self.sender.send(patient, encode("source", {
            "source": s.source_id, "state": state.value, "fs": s.fs, "next_sample": p.next_sample,
            "counters": {"chunks": p.seq, "unsent": p.unsent, **s.counters()}, "detail": detail,
            "patient": patient}))

    def run(self) -> int:
        """Send until every source ended or ``duration_s`` of signal; returns chunks the sender took."""
        for patient, p in self.patients.items():
            p.source.start()
            self._state(patient, p, p.source.state)
        fs = next(iter(self.patients.values())).source.fs
        period = self.chunk / (fs * self.speed) if math.isfinite(self.speed) else 0.0
        limit = math.inf if self.duration_s is None else self.duration_s * fs
        t0 = last_state = last_report = time.monotonic()
        shown = self.sender.state()
        sent, tick, live = 0, 0, dict(self.patients)
        while live and not self.stop and tick * self.chunk < limit:
            tick += 1
            due = t0 + tick * period
            time.sleep(max(0.0, due - time.monotonic()))
            for patient, p in list(live.items()):
                chunk = p.source.read(self.chunk, timeout=0.0)
                if chunk is None or chunk.samples.size == 0:
                    if p.source.state is SourceState.ENDED:
                        del live[patient]
                    continue
                stamp = chunk.timestamp if chunk.timestamp is not None else time.monotonic()
                taken = self.sender.send(patient, encode("chunk", {
                    "source": p.source.source_id, "seq": p.seq, "first_sample": chunk.first_sample,
                    "fs": p.source.fs, "t_source": stamp, "patient": patient}, chunk.samples))
                p.seq += 1
                p.next_sample = chunk.first_sample + chunk.samples.size
                sent += taken
                p.unsent += not taken
            if time.monotonic() - last_state >= STATE_EVERY_S:
                last_state = time.monotonic()
                for patient, p in live.items():
                    self._state(patient, p, p.source.state)
            state = self.sender.state()
            if self.say and (state != shown or state != "connected" and time.monotonic() - last_report >= REPORT_EVERY_S):
                last_report, shown = time.monotonic(), state
                self.say(self.line())
        for patient, p in self.patients.items():
            p.source.stop()
            self._state(patient, p, SourceState.ENDED, "stopped" if self.stop else "end of source")
        return sent
