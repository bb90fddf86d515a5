"""The view's ZeroMQ SUB socket, drained without blocking under a per-frame time budget.

The frame clock calls ``drain`` once per frame: it takes whatever is queued (never waits), stops
when the budget is spent, and leaves the rest for the next frame. If the view ever falls behind
for good, the SUB queue fills to its high-water mark and the worker's PUB socket drops messages
for this subscriber only; the worker itself never waits for the view. The gaps that follow show
on the trace and in the drop counter.
"""

from __future__ import annotations

from collections.abc import Iterable

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.transport.base import EventReader

#: The worker's outputs the view shows (``chunk`` and ``source`` are streamer -> worker traffic).
VIEW_TOPICS = (b"trace", b"beats", b"alarm", b"status")


class Subscriber(EventReader):
    """SUB socket connected to one or more worker endpoints."""

    def __init__(self, endpoints: Iterable[str], topics: Iterable[bytes] = VIEW_TOPICS,
                 hwm: int = 2000, context: zmq.Context | None = None) -> None:
        super().__init__()
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = runtime.socket(self.context, zmq.SUB, hwm=hwm)
        for topic in topics:
            self.socket.subscribe(topic)
        self.endpoints = list(endpoints)
        for endpoint in self.endpoints:
            self.socket.connect(endpoint)

    def next_frames(self) -> list[bytes] | None:
        try:
            return self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
        except zmq.Again:
            return None

    def close(self) -> None:
        self.socket.close(0)
        if self._own_context:
            self.context.term()
