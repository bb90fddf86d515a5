"""What a source has published but the broker has not yet confirmed it stored, bounded per patient.

A broker that acknowledges each stored message (NATS JetStream's PubAck) lets a source keep
every chunk until it is safe: nothing is lost when the broker dies with chunks in flight. Sends
are pipelined (many in flight, acks matched by number as they come); when a connection is lost,
or the broker refuses or does not answer, everything unacknowledged is sent again from the
oldest, in the original order (the broker drops repeats of what it had stored, by message id),
so a patient's chunks reach it in order. Only when a patient's outbox is full (the broker away
longer than it holds) is a new chunk dropped, and then it is counted for that patient; the
oldest are kept, so the worker sees one gap of exactly the dropped chunks, which the source
counts too. A patient's source-state messages are not bounded: a newer one replaces one not yet
sent.
A worker's alarms use it too, unbounded (an alarm is never dropped), keyed by subject.
No I/O here: :class:`ecg_monitor.transport.natsclient.AckedPublisher` sends and feeds acks in.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass


@dataclass(eq=False)
class Entry:
    """One message to be stored; ``n`` numbers it in publish order and names its ack."""

    n: int
    patient: str
    subject: str
    headers: dict[str, str]
    payload: bytes
    chunk: bool  # a chunk (bounded, counted when dropped), else a source-state message
    sent_at: float | None = None  # when it went out on the current connection (None: to be sent)
    done: bool = False  # acknowledged, or a state replaced before it was sent


class Outbox:
    """Pending messages in order: ``queue`` to be sent, ``in_flight`` sent and awaiting an ack.
    Not thread-safe: the owner holds a lock."""

    def __init__(self, per_patient: int) -> None:
        self.per_patient = per_patient  # chunks a patient may have unacknowledged
        self.queue: collections.deque[Entry] = collections.deque()
        self.in_flight: dict[int, Entry] = {}  # in send order
        self.pending: dict[int, Entry] = {}  # every entry not done
        self.chunks: collections.Counter[str] = collections.Counter()  # unacknowledged chunks per patient
        self.latest_state: dict[str, Entry] = {}  # a patient's latest state message, until acknowledged
        self.count = 0

    def add(self, patient: str, subject: str, headers: dict[str, str], payload: bytes, chunk: bool) -> Entry | None:
        """Queue a message; None when it is a chunk of a patient whose outbox is full (dropped: the
        caller counts it)."""
        if chunk and self.chunks[patient] >= self.per_patient:
            return None
        entry = Entry(self.count, patient, subject, headers, payload, chunk)
        self.count += 1
        if chunk:
            self.chunks[patient] += 1
        else:
            older = self.latest_state.pop(patient, None)
            if older is not None and older.sent_at is None:  # replaced before it went out
                self._finish(older)
            self.latest_state[patient] = entry
        self.pending[entry.n] = entry
        self.queue.append(entry)
        return entry

    def take(self, window: int, now: float) -> list[Entry]:
        """The next entries to send, in order, as many as keep ``window`` in flight; they count as
        sent ``now``."""
        out: list[Entry] = []
        while self.queue and len(self.in_flight) < window:
            entry = self.queue.popleft()
            if entry.done:
                continue
            entry.sent_at = now
            self.in_flight[entry.n] = entry
            out.append(entry)
        return out

    def ack(self, n: int) -> None:
        """The broker stored message ``n`` (or already had it)."""
        entry = self.pending.get(n)
        if entry is not None:
            self._finish(entry)

    def _finish(self, entry: Entry) -> None:
        entry.done = True
        del self.pending[entry.n]
        self.in_flight.pop(entry.n, None)
        if entry.chunk:
            self.chunks[entry.patient] -= 1
        elif self.latest_state.get(entry.patient) is entry:
            del self.latest_state[entry.patient]

    def rewind(self) -> int:
        """Everything in flight is to be sent again, before what is queued, in the original order
        (a connection was lost, or the broker refused or did not answer); returns how many."""
        back = list(self.in_flight.values())
        for entry in back:
            entry.sent_at = None
        self.queue.extendleft(reversed(back))
        self.in_flight.clear()
        return len(back)

    def stored_before(self, n: int) -> bool:
        """Whether every message numbered below ``n`` is acknowledged (or was replaced): what a
        message held until then waits for."""
        oldest = next(iter(self.pending), None)  # in number order
        return oldest is None or oldest >= n

    def overdue(self, now: float, timeout_s: float) -> bool:
        """Whether the oldest message in flight has waited for its ack longer than ``timeout_s``."""
        oldest = next(iter(self.in_flight.values()), None)
        return oldest is not None and now - oldest.sent_at > timeout_s

    def give_up(self) -> collections.Counter[str]:
        """Stopping with messages unacknowledged: forget them; returns their chunks per patient."""
        lost = collections.Counter(e.patient for e in self.pending.values() if e.chunk)
        for entry in list(self.pending.values()):
            self._finish(entry)
        self.queue.clear()
        return lost

    def __len__(self) -> int:
        return len(self.pending)
