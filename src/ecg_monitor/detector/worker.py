"""The detector worker process: chunks in (PULL), beats/trace/alarms/status out (PUB).

Binds both endpoints, so streamers (local or on another machine) connect to ``chunks`` and any
number of subscribers (live view, alarm log, headless console) connect to ``events``. The PUB
socket never blocks: a subscriber that falls behind loses its own messages at its high-water
mark, the worker and the other subscribers go on. Message schema: ``streamer.messages``.

Standalone::

    python -m ecg_monitor.detector.worker --chunks tcp://0.0.0.0:5555 --events tcp://0.0.0.0:5556
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import zmq

from ecg_monitor import PIPELINE_FS, runtime
from ecg_monitor.detector.classifier import shipped_classifier
from ecg_monitor.detector.continuity import ContinuityCheck
from ecg_monitor.detector.feed import Feed
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.streamer.messages import MessageError, decode, encode

PUB_HWM = 20000  # messages queued per subscriber before it starts losing them


@dataclass(frozen=True)
class WorkerConfig:
    chunks: str  # bound PULL endpoint
    events: str  # bound PUB endpoint
    incarnation: int = 0  # 0 for the first worker, +1 per restart by the supervisor
    status_every_s: float = 0.5
    max_fill_s: float = 30.0  # longer gaps restart the stream instead of being NaN-filled
    settle_s: float = 0.0  # after binding, give subscribers this long to (re)connect


class Worker:
    """The single-feed worker: one :class:`Feed` behind a PULL and a PUB socket."""

    def __init__(self, cfg: WorkerConfig, stop: runtime.StopFlag) -> None:
        self.cfg, self.stop = cfg, stop
        self.name = f"{os.getpid()}:{cfg.incarnation}"
        self.ctx = zmq.Context()
        self.pull = runtime.socket(self.ctx, zmq.PULL, hwm=2000)
        self.pub = runtime.socket(self.ctx, zmq.PUB, hwm=PUB_HWM, linger_ms=1000)
        self.pull.bind(cfg.chunks)
        self.pub.bind(cfg.events)
        shipped_classifier()  # onnxruntime session built now, not while the first chunk waits
        self.compute = RollingLatency()
        self.end_to_end = RollingLatency()
        self.feed = Feed(self._publish, int(cfg.max_fill_s * PIPELINE_FS), self.compute, self.end_to_end)
        self.started = time.monotonic()

    @property
    def continuity(self) -> ContinuityCheck:
        return self.feed.continuity

    def _publish(self, kind: str, header: dict, data: np.ndarray | None = None) -> None:
        frames = encode(kind, {"worker": self.name, **header}, data, dtype="<f4")
        try:
            self.pub.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # PUB drops rather than blocks; kept for transports that might not
            pass

    def status(self) -> dict:
        f, now = self.feed, time.monotonic()
        return {
            "incarnation": self.cfg.incarnation,
            **f.status(),
            "latency_ms": {"compute": self.compute.summary(), "end_to_end": self.end_to_end.summary()},
            "data_age_s": None if f.last_chunk_at is None else round(now - f.last_chunk_at, 3),
            "uptime_s": round(now - self.started, 3),
        }

    def handle(self, frames: list[bytes], t_received: float) -> None:
        try:
            msg = decode(frames)
        except MessageError:
            self.continuity.counters.malformed += 1
            return
        if msg.kind == "chunk":
            self.feed.on_chunk(msg, t_received)
        elif msg.kind == "source":
            if self.feed.on_source(msg):
                self.publish_status()
        else:
            self.continuity.counters.foreign += 1

    def publish_status(self) -> None:
        self._publish("status", self.status())

    # ------------------------------------------------------------------ loop
    def run(self, ready=None) -> int:
        if self.cfg.settle_s > 0:
            time.sleep(self.cfg.settle_s)
        if ready is not None:
            ready.set()
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        next_status = time.monotonic()
        while not self.stop:
            timeout = max(0.0, next_status - time.monotonic())
            if poller.poll(timeout * 1000):
                for _ in range(100):  # drain a burst, but keep status on time
                    try:
                        frames = self.pull.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames, time.monotonic())
            if time.monotonic() >= next_status:
                self.publish_status()
                next_status = time.monotonic() + self.cfg.status_every_s
        return 0

    def close(self) -> None:
        self.pull.close()
        self.pub.close()
        self.ctx.term()


def run(cfg: WorkerConfig, ready=None, child: bool = True) -> int:
    """Entry point of the worker process (also used by the monitor's supervisor)."""
    worker = Worker(cfg, runtime.StopFlag(child=child, name="ecg-worker"))
    try:
        return worker.run(ready)
    finally:
        worker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg_monitor.detector.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", required=True, metavar="ENDPOINT", help="bind: chunks from streamers")
    parser.add_argument("--events", required=True, metavar="ENDPOINT", help="bind: results for subscribers")
    args = parser.parse_args(argv)
    return run(WorkerConfig(args.chunks, args.events), child=False)


if __name__ == "__main__":
    sys.exit(main())
