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

Each round takes every message waiting (up to the link's ``max_round``, so status stays on time
and a broker gets its acks in time), and each feed's chunks in it (up to the next source message)
go through its pipeline as one update (the pipeline is chunk-invariant: same beats, alarms and
trace samples). At real time a round holds one chunk per feed; a worker that fell behind (the
machine was busy) finds several per feed and catches up at a fraction of the per-chunk cost
instead of drifting further behind. ``grouped`` in status counts the chunks so taken.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.app import runtime
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
    grouped: int = 0  # chunks taken in one pipeline update with the feed's chunk before them


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

    def _feed_of(self, patient: str | None) -> Feed:
        feed = self.feeds.get(patient)
        if feed is None:
            feed = self.feeds[patient] = self._feed(patient)
        return feed

    def _publish(self, patient: str | None, kind: str, header: dict, data: np.ndarray | None = None) -> None:
        frames = encode(kind, {"worker": self.name, **header}, data, dtype="<f4")
        msg_id = None
        if patient is not None and kind == "alarm":
            msg_id = f"{patient}.{header['alarm']}.{header['event']}.{header['sample']}"
        elif patient is not None and kind == "beats":
            msg_id = f"{patient}.beats.{header['beats'][0]['sample']}"
        self.link.publish(patient, kind, frames, msg_id)

    # ------------------------------------------------------------------ status
    def worker_wide(self) -> dict:
        """The worker's part of every status of a round, computed once per round, not per feed:
        latency percentiles (one sort) and the fleet counters."""
        return {
            "latency_ms": {"compute": self.compute.summary(), "end_to_end": self.end_to_end.summary()},
            "fleet": {"feeds": len(self.feeds), **asdict(self.counters), "lag": self.link.lag(),
                      "transport": self.link.state()},
        }

    def status(self, patient: str | None, worker_wide: dict) -> dict:
        f, now = self.feeds[patient], time.monotonic()
        st = f.status()
        cont = st["continuity"]
        cont["malformed"] += self.counters.malformed
        cont["foreign"] += self.counters.foreign
        return {
            "incarnation": self.incarnation,
            **st,
            "data_age_s": None if f.last_chunk_at is None else round(now - f.last_chunk_at, 3),
            "uptime_s": round(now - self.started, 3),
            **worker_wide,
        }

    def publish_status(self, patient: str | None = None) -> None:
        worker_wide = self.worker_wide()
        for p in [patient] if patient in self.feeds else list(self.feeds):
            self._publish(p, "status", self.status(p, worker_wide) | ({"patient": p} if p is not None else {}))

    # ------------------------------------------------------------------ input
    def _patient(self, msg: Message, delivery: Delivery) -> str | None | bool:
        """The feed key of a message, or False when its patient is unknown (refused)."""
        patient = msg.header.get("patient")
        if patient is None and delivery.subject_patient is None and None in self.feeds:
            return None
        if (not isinstance(patient, str) or not PATIENT_ID.match(patient)
                or (delivery.subject_patient is not None and patient != delivery.subject_patient)
                or (self.roster is not None and patient not in self.roster)):
            return False
        return patient

    def _take_over(self, feed: Feed, msg: Message, delivery: Delivery) -> None:
        """Rebuild a patient first seen mid-stream from the transport's last seconds, muted."""
        history = self.link.history(delivery, REPLAY_S)
        if not history:
            return
        self.counters.takeovers += 1
        since = msg["first_sample"] - int(REPLAY_S * msg["fs"])
        chunks = []
        for frames in history:
            try:
                old = decode(frames)
            except MessageError:
                continue
            if old.kind == "chunk" and old["source"] == msg["source"] and old["first_sample"] >= since:
                chunks.append(old)
        feed.muted = True
        feed.on_chunks(chunks, time.monotonic())
        feed.muted = False

    def _accept(self, delivery: Delivery) -> tuple[str | None, Message] | None:
        """The feed key and message of a delivery, or None when it is refused (acked; counted
        once, not again when the broker hands the same message out after a lost ack)."""
        try:
            msg = decode(delivery.frames)
        except MessageError:
            refused = "malformed"
        else:
            if msg.kind not in ("chunk", "source"):
                refused = "foreign"
            elif (patient := self._patient(msg, delivery)) is not False:
                return patient, msg
            else:
                refused = "unknown_patient"
        if not delivery.redelivered:
            setattr(self.counters, refused, getattr(self.counters, refused) + 1)
        delivery.ack()
        return None

    def _take_runs(self, runs: dict[str | None, list[tuple[Message, Delivery]]]) -> None:
        for patient, run in runs.items():
            self._chunks(patient, run)
        runs.clear()

    def _chunks(self, patient: str | None, run: list[tuple[Message, Delivery]]) -> None:
        """A feed's consecutive chunks of one receive, in one pipeline update; acked after."""
        feed = self._feed_of(patient)
        msg, delivery = run[0]
        if msg["seq"] > 0 and feed.stream is None:
            self._take_over(feed, msg, delivery)
        self.counters.duplicate_patient += feed.on_chunks([m for m, _ in run], time.monotonic())
        self.counters.grouped += len(run) - 1
        for _, d in run:
            d.ack()

    def handle_all(self, deliveries: list[Delivery]) -> None:
        """One receive's messages. Chunks are taken together, per feed, up to the next source
        message (a worker that fell behind finds several per feed and catches up: one pipeline
        update each, not one per chunk); a source message is handled after every chunk received
        before it, so what it publishes (an ended stream's status) counts them all."""
        runs: dict[str | None, list[tuple[Message, Delivery]]] = {}
        for delivery in deliveries:
            accepted = self._accept(delivery)
            if accepted is None:
                continue
            patient, msg = accepted
            if msg.kind == "chunk":
                runs.setdefault(patient, []).append((msg, delivery))
                continue
            self._take_runs(runs)
            if self._feed_of(patient).on_source(msg):
                self.publish_status(patient)
            delivery.ack()
        self._take_runs(runs)

    # ------------------------------------------------------------------ loop
    def run(self, ready=None) -> int:
        if ready is not None:
            ready.set()
        next_status = time.monotonic()
        while not self.stop:
            # everything waiting: a backlog is taken in few pipeline updates
            self.handle_all(self.link.receive(max(0.0, next_status - time.monotonic())))
            if time.monotonic() >= next_status:
                self.publish_status()
                next_status = time.monotonic() + self.status_every_s
        return 0
