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
from collections import Counter
from dataclasses import dataclass

import numpy as np
import zmq

from ecg_monitor import PIPELINE_FS, runtime
from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.classifier import shipped_classifier
from ecg_monitor.detector.continuity import ContinuityCheck
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.detector.rules import AlarmEvent
from ecg_monitor.streamer.messages import Message, MessageError, decode, encode
from ecg_monitor.streamer.source import SourceState

PUB_HWM = 20000  # messages queued per subscriber before it starts losing them


@dataclass(frozen=True)
class WorkerConfig:
    chunks: str  # bound PULL endpoint
    events: str  # bound PUB endpoint
    incarnation: int = 0  # 0 for the first worker, +1 per restart by the supervisor
    status_every_s: float = 0.5
    max_fill_s: float = 30.0  # longer gaps restart the stream instead of being NaN-filled
    settle_s: float = 0.0  # after binding, give subscribers this long to (re)connect


class Stream:
    """One source's run through the causal pipeline and the alarm engine."""

    def __init__(self, source: str, fs: float, origin: int) -> None:
        self.source, self.fs, self.origin = source, fs, origin
        self.pipeline = DetectorPipeline(fs)
        self.alarms = AlarmEngine(fs)
        self.classes: Counter[str] = Counter()
        self.t_first: float | None = None  # receipt of the first and latest chunk
        self.t_last: float | None = None

    def record_time_s(self, sample: int) -> float:
        return (self.origin + sample) / self.fs


class Worker:
    def __init__(self, cfg: WorkerConfig, stop: runtime.StopFlag) -> None:
        self.cfg, self.stop = cfg, stop
        self.name = f"{os.getpid()}:{cfg.incarnation}"
        self.ctx = zmq.Context()
        self.pull = runtime.socket(self.ctx, zmq.PULL, hwm=2000)
        self.pub = runtime.socket(self.ctx, zmq.PUB, hwm=PUB_HWM, linger_ms=1000)
        self.pull.bind(cfg.chunks)
        self.pub.bind(cfg.events)
        self.stream: Stream | None = None
        self.finished = False  # the stream has ended: the next chunk starts a new one
        self.continuity = ContinuityCheck(int(cfg.max_fill_s * PIPELINE_FS))
        self.source_state = "waiting"
        shipped_classifier()  # onnxruntime session built now, not while the first chunk waits
        self.source_detail = ""
        self.source_counters: dict = {}
        self.compute = RollingLatency()
        self.end_to_end = RollingLatency()
        self.busy_s = 0.0
        self.last_chunk_at: float | None = None
        self.started = time.monotonic()

    # ------------------------------------------------------------------ output
    def _publish(self, kind: str, header: dict, data: np.ndarray | None = None) -> None:
        s = self.stream
        frames = encode(kind, {"source": s.source if s else "", "worker": self.name, **header},
                        data, dtype="<f4")
        try:
            self.pub.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # PUB drops rather than blocks; kept for transports that might not
            pass

    def _publish_beats(self, beats: list[Beat], t_received: float, t_source: float | None = None) -> None:
        """Publish beats; with ``t_source`` (beats completed by a chunk) their latency counts."""
        s = self.stream
        if not beats:
            return
        out = []
        for b in beats:
            s.classes[b.label] += 1
            out.append({"sample": s.origin + b.sample, "emitted_at": s.origin + b.emitted_at,
                        "label": b.label, "search_back": b.search_back,
                        "probabilities": list(b.probabilities) if b.probabilities else None,
                        "t_received": t_received})
        self._publish("beats", {"fs": s.fs, "beats": out})
        t_pub = time.monotonic()
        for _ in beats if t_source is not None else ():
            self.compute.add(t_pub - t_received)
            self.end_to_end.add(t_pub - t_source)

    def _publish_alarms(self, events: list[AlarmEvent]) -> None:
        s = self.stream
        for e in events:
            self._publish("alarm", {
                "alarm": e.alarm, "priority": e.priority, "event": e.event, "sample": s.origin + e.sample,
                "record_time_s": round(s.record_time_s(e.sample), 3),
                "heart_rate_bpm": None if e.heart_rate_bpm is None else round(e.heart_rate_bpm, 1),
                "detail": e.detail,
            })

    def status(self) -> dict:
        s = self.stream
        engine = s.alarms if s else None
        hr = engine.heart_rate_bpm if engine else None
        now = time.monotonic()
        cont = self.continuity.counters.as_dict()
        return {
            "incarnation": self.cfg.incarnation,
            "source_state": self.source_state,
            "source_detail": self.source_detail,
            "stream_wall_s": round(s.t_last - s.t_first, 3) if s and s.t_first is not None else 0.0,
            "samples": s.pipeline.samples_seen if s else 0,
            "record_time_s": round(s.record_time_s(s.pipeline.samples_seen), 3) if s else 0.0,
            "fs": s.fs if s else None,
            "heart_rate_bpm": None if hr is None else round(hr, 1),
            "beats_by_class": {c: s.classes.get(c, 0) for c in AAMI_CLASSES} if s else {},
            "active_alarms": [{"alarm": e.alarm, "priority": e.priority,
                               "since_s": round(s.record_time_s(e.sample), 3)}
                              for e in engine.active.values()] if engine else [],
            "continuity": cont,
            "latency_ms": {"compute": self.compute.summary(), "end_to_end": self.end_to_end.summary()},
            "busy_s": round(self.busy_s, 3),
            "data_age_s": None if self.last_chunk_at is None else round(now - self.last_chunk_at, 3),
            "source_counters": self.source_counters,
            "uptime_s": round(now - self.started, 3),
        }

    # ------------------------------------------------------------------ input
    def _start_stream(self, msg: Message) -> None:
        self.stream = Stream(msg["source"], float(msg["fs"]), msg["first_sample"])
        self.source_state = SourceState.CONNECTED.value
        self.finished = False

    def _end_stream(self, detail: str) -> None:
        """Finish the beats still pending and close every alarm, so nothing is left open."""
        s = self.stream
        if s is None:
            return
        self._publish_beats(s.pipeline.flush(), time.monotonic())
        self._publish_alarms(s.alarms.close(detail))

    def on_chunk(self, msg: Message, t_received: float) -> None:
        if self.stream is None or self.finished:  # the first chunk, or a new run after the end
            self._start_stream(msg)
        s = self.stream
        if msg["source"] != s.source or msg["fs"] != s.fs:
            self.continuity.counters.foreign += 1
            return
        samples, restart = self.continuity.accept(msg["seq"], msg["first_sample"], msg.data)
        if restart:
            self._end_stream("signal lost (gap too long)")
            self._start_stream(msg)
            s = self.stream
        if samples.size == 0:
            return
        self.last_chunk_at = s.t_last = t_received
        if s.t_first is None:
            s.t_first = t_received
        out = s.pipeline.update(samples)
        self._publish_beats(out.beats, t_received, msg["t_source"])  # first: its latency counts
        self._publish_alarms(s.alarms.update(samples, out))
        self._publish("trace", {"start": s.origin + out.start, "fs": s.fs}, out.filtered)
        self.busy_s += time.monotonic() - t_received

    def on_source(self, msg: Message) -> None:
        """Source state: shown in status; the first ``ended`` finishes the stream (its figures
        stay in status until a new run starts, even when its source announces itself before its
        first chunk)."""
        if self.stream is not None and not self.finished and msg["source"] != self.stream.source:
            self.continuity.counters.foreign += 1
            return
        self.source_counters = msg["counters"]
        self.source_state = msg["state"]
        self.source_detail = msg["detail"]
        if self.source_state == SourceState.ENDED.value and not self.finished:
            self.finished = True
            self._end_stream(f"source ended: {msg['detail']}" if msg["detail"] else "source ended")
            self.continuity.restart()
            self.publish_status()

    def handle(self, frames: list[bytes], t_received: float) -> None:
        try:
            msg = decode(frames)
        except MessageError:
            self.continuity.counters.malformed += 1
            return
        if msg.kind == "chunk":
            self.on_chunk(msg, t_received)
        elif msg.kind == "source":
            self.on_source(msg)
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
