"""The transport interface: sources send chunk messages, workers receive them and publish results.

Messages are the frames of :mod:`ecg_monitor.streamer.messages` (schema v1), whatever carries
them; views read workers' results through an :class:`EventReader`. A worker acknowledges a delivery once its results are published, so a broker that keeps
unacknowledged messages (NATS JetStream) can hand them to another worker if this one dies.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from ecg_monitor.streamer.messages import Message, MessageError, decode


def _no_ack() -> None:
    """Brokers without acknowledgements (ZeroMQ)."""


@dataclass
class Delivery:
    """One received message: its frames, how to acknowledge it, and (NATS) where it came from."""

    frames: list[bytes]
    ack: Callable[[], None] = field(default=_no_ack)
    subject_patient: str | None = None  # the patient its subject names (None: not from a subject)
    handle: object = None  # the broker's own message, for ``WorkerLink.history``
    redelivered: bool = False  # handed out before (its ack was lost): a refusal is not counted twice


class ChunkSender(ABC):
    """The source side: send one chunk or source-state message of ``patient``."""

    @abstractmethod
    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        """False when it was not taken (stopping before it could be sent, or a full outbox): the
        caller counts it as unsent."""

    def state(self) -> str:
        """``connected``, or ``reconnecting`` while a broker is away (what is sent is kept)."""
        return "connected"

    def backlog(self) -> int:
        """Messages sent but not yet confirmed stored by the broker (none where nothing confirms)."""
        return 0

    def abandoned(self) -> dict[str, int]:
        """After :meth:`close`: chunks ``send`` took but that were never confirmed, per patient."""
        return {}

    @abstractmethod
    def close(self) -> None: ...


class WorkerLink(ABC):
    """The worker side: receive chunk/source messages, publish beats, alarms, trace and status."""

    #: Messages a worker may take in one round before publishing and acknowledging (fewer where
    #: the broker redelivers what is not acknowledged soon enough).
    max_round: int = 1000

    @abstractmethod
    def receive(self, timeout_s: float) -> list[Delivery]:
        """The messages that arrived within ``timeout_s``: every one waiting, up to :attr:`max_round`
        (may be empty)."""

    @abstractmethod
    def publish(self, patient: str | None, kind: str, frames: list[bytes], msg_id: str | None = None) -> None:
        """Publish one result; ``msg_id`` makes a repeat of it harmless where the broker dedupes."""

    def history(self, delivery: Delivery, seconds: float) -> list[list[bytes]]:
        """The same patient's messages stored before ``delivery``, about ``seconds`` of them, so a
        worker taking the patient over can rebuild its state; none where nothing is stored."""
        return []

    def lag(self) -> dict[str, int]:
        """Messages waiting for this worker, per partition (where the broker says)."""
        return {}

    def state(self) -> str:
        """``connected``, or ``reconnecting`` while a broker is away (results are kept meanwhile)."""
        return "connected"

    @abstractmethod
    def close(self) -> None: ...


class EventReader(ABC):
    """The viewing side: workers' results (trace, beats, alarms, status), taken at the start of
    each frame without ever waiting, under a time budget (the rest waits for the next frame);
    undecodable messages are counted (``malformed``) and dropped. A reader that queues for a view
    that fell far behind loses its oldest messages and counts them (``dropped``), so the view can
    say so; one that cannot tell (ZeroMQ: the publisher drops) leaves it at 0."""

    def __init__(self) -> None:
        self.malformed = 0
        self.dropped = 0
        self.last_message_at: float | None = None  # time.monotonic() of the latest message

    @abstractmethod
    def next_frames(self) -> list[bytes] | None:
        """One queued message's frames, or None when nothing is queued (never waits)."""

    def drain(self, handle: Callable[[Message], None], budget_s: float = 0.006) -> int:
        """Hand every queued message to ``handle`` until none is left or ``budget_s`` is spent."""
        deadline = time.perf_counter() + budget_s
        n = 0
        while time.perf_counter() < deadline:
            frames = self.next_frames()
            if frames is None:
                break
            n += 1
            try:
                message = decode(frames)
            except MessageError:
                self.malformed += 1
                continue
            handle(message)
        if n:
            self.last_message_at = time.monotonic()
        return n

    def state(self) -> str:
        """What the view shows of its own link: ``connected``, or ``reconnecting``."""
        return "connected"

    @abstractmethod
    def close(self) -> None: ...
