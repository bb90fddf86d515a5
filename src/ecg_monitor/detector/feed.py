"""One feed (one patient's source) through the causal pipeline and the alarm engine.

The part of the worker that is per feed: continuity of its chunks, its pipeline and alarm engine,
its source state, and the beats/alarms/trace it produces. The single-patient worker hosts one
feed; a fleet worker (``ecg_monitor.workers.fleet``) hosts one per patient from one receive loop.
Outputs go through ``emit(kind, header, data)``; the host adds who it is and sends them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.continuity import ContinuityCheck
from ecg_monitor.detector.episodes import AlarmEvent
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.streamer.messages import Message
from ecg_monitor.streamer.source import SourceState

Emit = Callable[[str, dict, "np.ndarray | None"], None]


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


class Feed:
    """Chunks and source messages of one feed in, beats/alarms/trace out through ``emit``.

    ``patient`` (fleet workers) is added to every output header. While ``muted`` (a worker that
    took a patient over rebuilds its state by replaying the last seconds) nothing is emitted and
    no latency is counted: those results were published by the worker that had the patient.
    """

    def __init__(self, emit: Emit, max_fill: int, compute: RollingLatency, end_to_end: RollingLatency,
                 patient: str | None = None) -> None:
        self.emit, self.compute, self.end_to_end, self.patient = emit, compute, end_to_end, patient
        self.stream: Stream | None = None
        self.finished = False  # the stream has ended: the next chunk starts a new one
        self.continuity = ContinuityCheck(max_fill)
        self.source_state = "waiting"
        self.source_detail = ""
        self.source_counters: dict = {}
        self.busy_s = 0.0
        self.last_chunk_at: float | None = None
        self.muted = False

    # ------------------------------------------------------------------ output
    def _emit(self, kind: str, header: dict, data: np.ndarray | None = None) -> None:
        if self.muted:
            return
        s = self.stream
        head = {"source": s.source if s else "", **header}
        if self.patient is not None:
            head["patient"] = self.patient
        self.emit(kind, head, data)

    def _publish_beats(self, beats: list[Beat], t_received: float, t_source: list[float] | None = None) -> None:
        """Publish beats; with ``t_source`` (beats completed by chunks: each one's source
        timestamp of the chunk that completed it) their latency counts."""
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
        self._emit("beats", {"fs": s.fs, "beats": out})
        if t_source is None or self.muted:
            return
        t_pub = time.monotonic()
        for t in t_source:
            self.compute.add(t_pub - t_received)
            self.end_to_end.add(t_pub - t)

    def _publish_alarms(self, events: list[AlarmEvent]) -> None:
        s = self.stream
        for e in events:
            self._emit("alarm", {
                "alarm": e.alarm, "priority": e.priority, "event": e.event, "sample": s.origin + e.sample,
                "record_time_s": round(s.record_time_s(e.sample), 3),
                "heart_rate_bpm": None if e.heart_rate_bpm is None else round(e.heart_rate_bpm, 1),
                "detail": e.detail,
                "lasted_s": None if e.onset_sample is None else round((e.sample - e.onset_sample) / s.fs, 1),
            })

    def status(self) -> dict:
        """This feed's part of a status message."""
        s = self.stream
        engine = s.alarms if s else None
        hr = engine.heart_rate_bpm if engine else None
        return {
            "source": s.source if s else "",
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
            "continuity": self.continuity.counters.as_dict(),
            "busy_s": round(self.busy_s, 3),
            "source_counters": self.source_counters,
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

    def on_chunks(self, msgs: list[Message], t_received: float) -> int:
        """Process consecutive chunks of this feed (in order, no source message between them)
        as one pipeline update: the pipeline is chunk-invariant, so the beats, alarms and trace
        samples are those of one update per chunk, for a fraction of the per-call cost (a worker
        that fell behind catches up). Returns how many were refused (another source or rate)."""
        refused = 0
        parts: list[tuple[np.ndarray, float]] = []  # accepted samples and their chunk's t_source
        for msg in msgs:
            if self.stream is None or self.finished:  # the first chunk, or a new run after the end
                self._start_stream(msg)
            s = self.stream
            if msg["source"] != s.source or msg["fs"] != s.fs:
                self.continuity.counters.foreign += 1
                refused += 1
                continue
            samples, restart = self.continuity.accept(msg["seq"], msg["first_sample"], msg.data)
            if restart:
                self._process(parts, t_received)
                parts = []
                self._end_stream("signal lost (gap too long)")
                self._start_stream(msg)
            if samples.size:
                parts.append((samples, msg["t_source"]))
        self._process(parts, t_received)
        return refused

    @staticmethod
    def _completed_by(parts: list[tuple[np.ndarray, float]], start: int, beats: list[Beat]) -> list[float]:
        """Each beat's ``t_source``: that of the chunk whose samples completed it."""
        if len(parts) == 1:
            return [parts[0][1]] * len(beats)
        ends = np.cumsum([p[0].size for p in parts]) + start  # sample count after each chunk
        k = np.searchsorted(ends, [b.emitted_at for b in beats]).clip(max=len(parts) - 1)
        return [parts[int(i)][1] for i in k]

    def _process(self, parts: list[tuple[np.ndarray, float]], t_received: float) -> None:
        """One pipeline and alarm update over the accepted samples of one or more chunks."""
        if not parts:
            return
        s = self.stream
        self.last_chunk_at = s.t_last = t_received
        if s.t_first is None:
            s.t_first = t_received
        samples = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        out = s.pipeline.update(samples)
        # beats first: their latency counts
        self._publish_beats(out.beats, t_received, self._completed_by(parts, out.start, out.beats))
        self._publish_alarms(s.alarms.update(samples, out))
        self._emit("trace", {"start": s.origin + out.start, "fs": s.fs}, out.filtered)
        self.busy_s += time.monotonic() - t_received

    def on_source(self, msg: Message) -> bool:
        """Source state: shown in status; the first ``ended`` finishes the stream (its figures
        stay in status until a new run starts, even when its source announces itself before its
        first chunk). True when this message ended the stream."""
        if self.stream is not None and not self.finished and msg["source"] != self.stream.source:
            self.continuity.counters.foreign += 1
            return False
        self.source_counters = msg["counters"]
        self.source_state = msg["state"]
        self.source_detail = msg["detail"]
        if self.source_state == SourceState.ENDED.value and not self.finished:
            self.finished = True
            self._end_stream(f"source ended: {msg['detail']}" if msg["detail"] else "source ended")
            self.continuity.restart()
            return True
        return False
