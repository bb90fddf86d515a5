"""The ZeroMQ transport (default): PUSH/PULL for chunks, PUB/SUB for results, on one machine or
across machines with tcp:// endpoints. No broker, no store: a dead worker's chunks in flight are
lost to it (the supervisor restarts it and continuity counts the gap)."""

from __future__ import annotations

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.transport.base import ChunkSender, Delivery, WorkerLink

PULL_HWM = 2000
PUB_HWM = 20000  # messages queued per subscriber before it starts losing them


class ZmqWorkerLink(WorkerLink):
    """Binds PULL (chunks) and PUB (events). PUB never blocks: a slow subscriber loses only its
    own messages."""

    def __init__(self, chunks: str, events: str) -> None:
        self.ctx = zmq.Context()
        self.pull = runtime.socket(self.ctx, zmq.PULL, hwm=PULL_HWM)
        self.pub = runtime.socket(self.ctx, zmq.PUB, hwm=PUB_HWM, linger_ms=1000)
        self.pull.bind(chunks)
        self.pub.bind(events)

    def receive(self, timeout_s: float) -> list[Delivery]:
        if not self.pull.poll(max(timeout_s, 0.0) * 1000):
            return []
        out = []
        for _ in range(self.max_round):
            try:
                out.append(Delivery(self.pull.recv_multipart(zmq.NOBLOCK)))
            except zmq.Again:
                break
        return out

    def publish(self, patient: str | None, kind: str, frames: list[bytes], msg_id: str | None = None) -> None:
        try:
            self.pub.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # PUB drops rather than blocks; kept for transports that might not
            pass

    def close(self) -> None:
        self.pull.close()
        self.pub.close()
        self.ctx.term()


class ZmqChunkSender(ChunkSender):
    """Connects PUSH to a worker's chunk endpoint; blocks (in 200 ms steps) while it is full."""

    def __init__(self, endpoint: str, stop: runtime.StopFlag | None = None, hwm: int = 2000) -> None:
        self.stop = stop
        self.ctx = zmq.Context()
        self.sock = runtime.socket(self.ctx, zmq.PUSH, hwm=hwm, linger_ms=5000)
        self.sock.setsockopt(zmq.SNDTIMEO, 200)
        self.sock.connect(endpoint)

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        while not self.stop:
            try:
                self.sock.send_multipart(frames, copy=False)
                return True
            except zmq.Again:
                continue
        return False

    def state(self) -> str:
        """ZeroMQ connects in the background and says nothing of a peer: ``connected`` until closed."""
        return "closed" if self.sock.closed else "connected"

    def close(self) -> None:
        self.sock.close(linger=0 if self.stop else None)
        self.ctx.term()
