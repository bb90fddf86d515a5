"""A worker hosting one :class:`~ecg_monitor.detector.feed.Feed` per patient from one receive loop.

The pipeline runs about 1,000x real time per core, so one process per patient would waste the
machine. Messages name their patient (header ``patient``; on NATS also the subject); messages
without one go to the single unnamed feed of the classic one-patient monitor. Refused and counted:
undecodable messages (``malformed``), unknown kinds (``foreign``), a patient id that is not a
plain token or not on the roster (``unknown_patient``), and a second source claiming a patient
that already streams (``duplicate_patient``).

A patient first seen mid-stream (chunk ``seq`` > 0: this worker took over a partition from one
that died) is rebuilt from the last :data:`REPLAY_S` seconds the transport still holds, muted,
before the new chunk: filters and detector are warm again and nothing already published is
published twice.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from ecg_monitor import PIPELINE_FS, runtime
from ecg_monitor.detector.classifier import shipped_classifier
from ecg_monitor.detector.feed import Feed
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.streamer.messages import Message, MessageError, decode, encode
from ecg_monitor.transport.base import Delivery, WorkerLink

PATIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # one NATS subject token
REPLAY_S = 10.0


@dataclass
class FleetCounters:
    malformed: int = 0
    foreign: int = 0
    unknown_patient: int = 0
    duplicate_patient: int = 0
    takeovers: int = 0  # patients rebuilt from the transport's history


class FleetWorker:
    """Chunks of many patients in through a :class:`WorkerLink`, results out through it."""

    def __init__(self, link: WorkerLink, stop: runtime.StopFlag | None = None, incarnation: int = 0,
                 max_fill_s: float = 30.0, status_every_s: float = 0.5,
                 roster: frozenset[str] | None = None, single: bool = True) -> None:
        self.link, self.stop, self.incarnation = link, stop, incarnation
        self.name = f"{os.getpid()}:{incarnation}"
        self.max_fill = int(max_fill_s * PIPELINE_FS)
        self.status_every_s, self.roster = status_every_s, roster
        self.counters = FleetCounters()
        self.compute = RollingLatency()
        self.end_to_end = RollingLatency()
        self.feeds: dict[str | None, Feed] = {}
        if single:  # the one-patient monitor: status from the start, before any chunk
            self.feeds[None] = self._feed(None)
        self.started = time.monotonic()
        shipped_classifier()  # onnxruntime session built now, not while the first chunk waits

    def _feed(self, patient: str | None) -> Feed:
        def emit(kind: str, header: dict, data: np.ndarray | None) -> None:
            self._publish(patient, kind, header, data)
        return Feed(emit, self.max_fill, self.compute, self.end_to_end, patient)

    def _publish(self, patient: str | None, kind: str, header: dict, data: np.ndarray | None = None) -> None:
        frames = encode(kind, {"worker": self.name, **header}, data, dtype="<f4")
        msg_id = None
        if patient is not None and kind == "alarm":
            msg_id = f"{patient}.{header['alarm']}.{header['event']}.{header['sample']}"
        elif patient is not None and kind == "beats":
            msg_id = f"{patient}.beats.{header['beats'][0]['sample']}"
        self.link.publish(patient, kind, frames, msg_id)

    # ------------------------------------------------------------------ status
    def latency(self) -> dict:
        """Worker-wide latency percentiles (one sort per status round, not one per feed)."""
        return {"compute": self.compute.summary(), "end_to_end": self.end_to_end.summary()}

    def status(self, patient: str | None, latency: dict) -> dict:
        f, now = self.feeds[patient], time.monotonic()
        st = f.status()
        cont = st["continuity"]
        cont["malformed"] += self.counters.malformed
        cont["foreign"] += self.counters.foreign
        return {
            "incarnation": self.incarnation,
            **st,
            "latency_ms": latency,
            "data_age_s": None if f.last_chunk_at is None else round(now - f.last_chunk_at, 3),
            "uptime_s": round(now - self.started, 3),
            "fleet": {"feeds": len(self.feeds), **asdict(self.counters), "lag": self.link.lag(),
                      "transport": self.link.state()},
        }

    def publish_status(self, patient: str | None = None) -> None:
        latency = self.latency()
        for p in [patient] if patient in self.feeds else list(self.feeds):
            self._publish(p, "status", self.status(p, latency) | ({"patient": p} if p is not None else {}))

    # ------------------------------------------------------------------ input
    def _patient(self, msg: Message, delivery: Delivery) -> str | None | bool:
        """The feed key of a message, or False when refused (counted)."""
        patient = msg.header.get("patient")
        if patient is None and delivery.subject_patient is None and None in self.feeds:
            return None
        if (not isinstance(patient, str) or not PATIENT_ID.match(patient)
                or (delivery.subject_patient is not None and patient != delivery.subject_patient)
                or (self.roster is not None and patient not in self.roster)):
            self.counters.unknown_patient += 1
            return False
        return patient

    def _take_over(self, feed: Feed, msg: Message, delivery: Delivery) -> None:
        """Rebuild a patient first seen mid-stream from the transport's last seconds, muted."""
        history = self.link.history(delivery, REPLAY_S)
        if not history:
            return
        self.counters.takeovers += 1
        since = msg["first_sample"] - int(REPLAY_S * msg["fs"])
        feed.muted = True
        for frames in history:
            try:
                old = decode(frames)
            except MessageError:
                continue
            if old.kind == "chunk" and old["source"] == msg["source"] and old["first_sample"] >= since:
                feed.on_chunk(old, time.monotonic())
        feed.muted = False

    def handle(self, delivery: Delivery, t_received: float) -> None:
        """One message; acknowledged once its results are published (or once it is refused)."""
        try:
            msg = decode(delivery.frames)
        except MessageError:
            self.counters.malformed += 1
            delivery.ack()
            return
        if msg.kind not in ("chunk", "source"):
            self.counters.foreign += 1
            delivery.ack()
            return
        patient = self._patient(msg, delivery)
        if patient is not False:
            feed = self.feeds.get(patient)
            if feed is None:
                feed = self.feeds[patient] = self._feed(patient)
            if msg.kind == "chunk" and msg["seq"] > 0 and feed.stream is None:
                self._take_over(feed, msg, delivery)
            if msg.kind == "chunk":
                if not feed.on_chunk(msg, t_received):
                    self.counters.duplicate_patient += 1
            elif feed.on_source(msg):
                self.publish_status(patient)
        delivery.ack()

    def handle_all(self, deliveries: list[Delivery]) -> None:
        """One receive's messages, in order."""
        for delivery in deliveries:
            self.handle(delivery, time.monotonic())

    # ------------------------------------------------------------------ loop
    def run(self, ready=None) -> int:
        if ready is not None:
            ready.set()
        next_status = time.monotonic()
        while not self.stop:
            self.handle_all(self.link.receive(max(0.0, next_status - time.monotonic())))
            if time.monotonic() >= next_status:
                self.publish_status()
                next_status = time.monotonic() + self.status_every_s
        return 0
