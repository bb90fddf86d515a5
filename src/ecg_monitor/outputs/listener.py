"""The receive loop of the monitor's subscriber processes (alarm log, headless console)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.streamer.messages import Message, MessageError, decode


class Listener:
    """A SUB socket on the worker's ``events`` endpoint, handing decoded messages to a callback.

    Readiness means a message has arrived (the worker publishes status twice a second), which
    proves the subscription reached the worker; the supervisor starts the streamer only then, so
    no beat is published before every subscriber listens.
    """

    def __init__(self, endpoint: str, topics: Iterable[bytes], stop: runtime.StopFlag,
                 hwm: int = 100000) -> None:
        self.stop = stop
        self.ctx = zmq.Context()
        self.sock = runtime.socket(self.ctx, zmq.SUB, hwm=hwm)
        for topic in topics:
            self.sock.subscribe(topic)
        self.sock.connect(endpoint)
        self.malformed = 0

    def run(self, handle: Callable[[Message], bool], ready=None, idle: Callable[[], None] | None = None) -> None:
        """Call ``handle`` per message until it returns False or a stop is asked for; ``idle``
        runs about every 100 ms. On stop, what is already queued is still handled."""
        while True:
            stopping = bool(self.stop)
            if self.sock.poll(0 if stopping else 100):
                frames = self.sock.recv_multipart()
                if ready is not None:  # set once: Event.is_set() takes a lock per message
                    ready.set()
                    ready = None
                try:
                    msg = decode(frames)
                except MessageError:
                    self.malformed += 1
                    continue
                if not handle(msg):
                    return
            elif stopping:
                return
            if idle is not None:
                idle()

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()
