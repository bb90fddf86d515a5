"""The NATS JetStream transport: many patients, many workers, machines apart, with failover.

One worker is pinned to each partition's consumer (:mod:`ecg_monitor.transport.natsclient` has
the layout); the others wait in line as hot standby. When the pinned worker dies its pin
expires, a standby's waiting pull is pinned, and the messages the dead worker had not acked are
redelivered first, in order; the new worker rebuilds each patient from :meth:`NatsWorkerLink.history`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import queue
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from nats.errors import Error as NatsError

from ecg_monitor.transport.base import ChunkSender, Delivery, EventReader, WorkerLink
from ecg_monitor.transport.natsclient import (ACK_WAIT_S, GROUP, NS, SAMPLES, NatsClient, NatsUnavailable,
                                             to_frames, to_message)
from ecg_monitor.transport.outbox import Outbox

PULL_EXPIRES_S = 0.3
PULL_BATCH = 64
LOCAL_MAX = 2 * PULL_BATCH  # fetched, not yet taken by the worker: more waits (acks stay within ack_wait)
REPLAY_CACHE_S = 5.0  # a taken-over partition's replay window serves its patients this long
STANDBY_DELAY_S = 3.0  # an unpinned partition with waiting messages: how long its home worker has
OUTBOX_CHUNKS = 1200  # unacknowledged chunks a sender keeps per patient: 60 s of 50 ms chunks
CLOSE_WAIT_S = 5.0  # a closing sender waits this long at most for the last acks


class NatsChunkSender(ChunkSender):
    """Publishes ``ecg.<patient>.samples`` through the client's
    :class:`~ecg_monitor.transport.natsclient.AckedPublisher`: each message kept until the samples
    stream says it stored it, pipelined, resent in order after a reconnect, a refusal or an overdue
    ack. Its ``Nats-Msg-Id`` (patient, this sender's run, number) lets the stream's duplicate window
    (2 min) drop a repeat: outages up to that are resent exactly; after a longer one a chunk whose
    ack died with the server may be stored twice, which the worker cuts and counts."""

    def __init__(self, url: str, partitions: int, outbox_chunks: int = OUTBOX_CHUNKS) -> None:
        self.client = NatsClient(url, partitions, stored=Outbox(outbox_chunks))
        self.acked = self.client.acked
        self.unsent: dict[str, int] = {}  # chunks given up at close, per patient
        self.running = True

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        """Queue for publishing; False when it is a chunk of a patient whose outbox is full (the
        broker away longer than it holds): dropped, for the caller to count."""
        headers, payload = to_message(frames)
        return self.acked.add(str(patient), f"ecg.{patient}.samples", headers, payload,
                              chunk=headers["Ecg-Kind"] == "chunk")

    def state(self) -> str:
        return self.client.state() if self.running else "closed"

    def backlog(self) -> int:
        return len(self.acked.outbox)

    def abandoned(self) -> dict[str, int]:
        return self.unsent

    def close(self) -> None:
        """Wait up to :data:`CLOSE_WAIT_S` until the stream acknowledged everything, then stop;
        what is still unacknowledged is counted per patient in :meth:`abandoned`."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        while len(self.acked.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.running = False
        self.unsent = self.acked.give_up()
        self.client.close()


class NatsEventReader(EventReader):
    """A view's side of the events: every patient's ``trace``, ``beats``, ``alarms`` and ``status``
    subjects, live (a station that joins late learns the open alarms from the next status), queued
    by the client's thread in arrival order and taken by the view's frame clock. A view that falls
    far behind loses its oldest messages, counted in ``dropped``, never the worker's time."""

    KINDS = ("trace", "beats", "alarms", "status")

    def __init__(self, url: str, partitions: int, maxlen: int = 50000) -> None:
        super().__init__()
        self.queue: collections.deque[list[bytes]] = collections.deque(maxlen=maxlen)
        self.client = NatsClient(url, partitions)
        self.client.call(self._subscribe())

    async def _subscribe(self) -> None:
        for kind in self.KINDS:
            await self.client.nc.subscribe(f"ecg.*.{kind}", cb=self._on_message)

    async def _on_message(self, msg) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(to_frames(msg.headers, msg.data))

    def next_frames(self) -> list[bytes] | None:
        try:
            return self.queue.popleft()
        except IndexError:
            return None

    def state(self) -> str:
        return self.client.state()

    def close(self) -> None:
        self.client.close()


class NatsWorkerLink(WorkerLink):
    """Pulls its home partitions, waits in line as hot standby for the others, and publishes
    results to the events stream."""

    max_round = 200  # one receive: its acks go out (at the next receive) well within ack_wait

    def __init__(self, url: str, partitions: int, home: set[int]) -> None:
        self.client = NatsClient(url, partitions, stored=Outbox(sys.maxsize))  # alarms: never dropped
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.pinned: dict[int, str] = {}  # partition -> pin id while this worker holds it
        self.pending: dict[int, int] = {}  # partition -> messages still on the server after the last one
        self.unacked: dict[str, float] = {}  # reply subject -> fetched (or last said in progress)
        self.lock = threading.Lock()
        self.replays: dict[str, tuple[int, float, dict]] = {}  # partition -> (first seq, when, chunks by patient)
        self.running = True
        for k in range(partitions):
            self.client.call(self.client.consumer(k))
        self.pullers = [asyncio.run_coroutine_threadsafe(coro, self.client.loop)
                        for coro in [*(self._pull(k, k in home) for k in range(partitions)), self._in_progress()]]

    async def _in_progress(self) -> None:
        """Tell the server a fetched chunk is still being worked on (``+WPI``) while the worker is
        behind, so it is not redelivered to this worker; a dead worker says nothing and its
        chunks are due again after ``ack_wait``."""
        while self.running:
            await asyncio.sleep(ACK_WAIT_S / 4)
            now = time.monotonic()
            with self.lock:
                due = [reply for reply, t in self.unacked.items() if now - t > ACK_WAIT_S / 2]
                self.unacked.update(dict.fromkeys(due, now))
            for reply in due:
                try:
                    await self.client.nc.publish(reply, b"+WPI")
                except NatsError:
                    break

    async def _standby(self, k: int, line: dict) -> bool:
        """Whether this worker should wait in line for partition ``k``, which is not its home: once
        another worker has held its pin (the server hands the pin over when that worker dies, and
        a standby that saw it held stays in line), or when messages wait and nobody has held it for
        :data:`STANDBY_DELAY_S` (its home worker is away). Standbys never wait in line for a
        partition nobody has held yet, so home workers get theirs at start."""
        if line.get("held"):
            return True
        try:
            info = await self.client.api(f"$JS.API.CONSUMER.INFO.{SAMPLES}.part-{k}", {})
        except (NatsUnavailable, NatsError, asyncio.TimeoutError):
            return False
        groups = info.get("priority_groups") or [{}]
        if groups[0].get("pinned_client_id"):
            line["held"] = True
            return True
        if info.get("num_pending", 0) + info.get("num_ack_pending", 0) == 0:
            return False
        line.setdefault("since", time.monotonic())
        return time.monotonic() - line["since"] >= STANDBY_DELAY_S

    async def _pull(self, k: int, home: bool) -> None:
        try:
            await self._pull_loop(k, home)
        except (NatsError, asyncio.CancelledError):
            if self.running:
                raise

    async def _pull_loop(self, k: int, home: bool) -> None:
        nc = self.client.nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{SAMPLES}.part-{k}"
        line: dict = {}
        while self.running:
            if not home and k not in self.pinned and not await self._standby(k, line):
                await asyncio.sleep(PULL_EXPIRES_S)
                continue
            while self.inbox.qsize() >= LOCAL_MAX and self.running:  # the worker is behind: fetch no more
                await asyncio.sleep(0.005)
            req = {"batch": PULL_BATCH, "expires": int(PULL_EXPIRES_S * NS), "group": GROUP}
            if k in self.pinned:
                req["id"] = self.pinned[k]
            try:
                await nc.publish(subject, json.dumps(req).encode(), reply=inbox)
            except NatsError:
                await asyncio.sleep(0.2)
                continue
            got = 0
            while got < PULL_BATCH:
                try:
                    msg = await sub.next_msg(timeout=PULL_EXPIRES_S + 1.0)
                except (asyncio.TimeoutError, NatsError):
                    break
                status = (msg.headers or {}).get("Status")
                if status:  # 408 expired, 409 closed, 423 pin lost, 404 nothing
                    if status == "423":
                        self.pinned.pop(k, None)
                    break
                pin = msg.headers.get("Nats-Pin-Id")
                if pin:
                    self.pinned[k] = pin
                got += 1
                self.pending[k] = msg.metadata.num_pending
                with self.lock:
                    self.unacked[msg.reply] = time.monotonic()
                self.inbox.put(Delivery(to_frames(msg.headers, msg.data), self._acker(msg.reply),
                                        msg.subject.rsplit(".", 1)[-1], msg,
                                        redelivered=msg.metadata.num_delivered > 1))
        await sub.unsubscribe()

    def _acker(self, reply: str):
        def ack() -> None:  # posted after the results of the message: sent after them, its alarms stored
            with self.lock:
                self.unacked.pop(reply, None)
            self.client.post(reply, None, b"+ACK", "after stored")
        return ack

    def receive(self, timeout_s: float) -> list[Delivery]:
        self.client.push()  # the results and acks of the last burst
        out: list[Delivery] = []
        try:
            out.append(self.inbox.get(timeout=max(timeout_s, 0.0)) if timeout_s > 0 else self.inbox.get_nowait())
            while len(out) < self.max_round:
                out.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def lag(self) -> dict[str, int]:
        """Per partition held: messages still on the server (the worker's lag), as of the last
        delivery."""
        return {f"part-{k}": self.pending.get(k, 0) for k in sorted(self.pinned)}

    def state(self) -> str:
        return self.client.state()

    def publish(self, patient: str | None, kind: str, frames: list[bytes], msg_id: str | None = None) -> None:
        headers, payload = to_message(frames)
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        sub = {"alarm": "alarms", "beats": "beats", "status": "status"}.get(kind, kind)
        self.client.post(f"ecg.{patient or '_'}.{sub}", headers, payload, "stored" if kind == "alarm" else "plain")

    def history(self, delivery: Delivery, seconds: float) -> list[list[bytes]]:
        """The patient's stored chunks from ``seconds`` (of wall time, plus margin) before this
        message up to it. Read once per taken-over partition (its whole window, every patient,
        one throw-away consumer) and kept briefly: every patient of the partition needs it, and
        what came after this first message reaches this worker anyway."""
        msg = delivery.handle
        _, _, k, patient = msg.subject.split(".", 3)
        seq = msg.metadata.sequence.stream
        cached = self.replays.get(k)
        if cached is None or seq < cached[0] or time.monotonic() - cached[1] > REPLAY_CACHE_S:
            frames = self.client.call(self._history(f"ecg.part.{k}.*", seq, msg.metadata.timestamp, seconds))
            by_patient: dict[str, list[list[bytes]]] = {}
            for subject, f in frames:
                by_patient.setdefault(subject.rsplit(".", 1)[-1], []).append(f)
            cached = self.replays[k] = (seq, time.monotonic(), by_patient)
        return cached[2].get(patient, [])

    async def _history(self, subject: str, before_seq: int, stamp: datetime,
                       seconds: float) -> list[tuple[str, list[bytes]]]:
        start = (stamp - timedelta(seconds=seconds + 2.0)).astimezone(timezone.utc)
        cfg = {"filter_subject": subject, "ack_policy": "none", "deliver_policy": "by_start_time",
               "opt_start_time": start.isoformat().replace("+00:00", "Z"), "inactive_threshold": 5 * NS,
               "mem_storage": True, "num_replicas": 1}
        reply = await self.client.api(f"$JS.API.CONSUMER.CREATE.{SAMPLES}", {"stream_name": SAMPLES, "config": cfg})
        name = reply["name"]
        nc = self.client.nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        out: list[tuple[str, list[bytes]]] = []
        more = True
        while more:
            await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{SAMPLES}.{name}",
                             json.dumps({"batch": 500, "no_wait": True}).encode(), reply=inbox)
            more = False
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0)
                except asyncio.TimeoutError:
                    break
                if (msg.headers or {}).get("Status"):  # 404/408: nothing more now
                    break
                if msg.metadata.sequence.stream >= before_seq:  # reached the delivery itself
                    more = False
                    break
                out.append((msg.subject, to_frames(msg.headers, msg.data)))
                more = True
        await sub.unsubscribe()
        await self.client.api(f"$JS.API.CONSUMER.DELETE.{SAMPLES}.{name}", {})
        return out

    def close(self) -> None:
        self.running = False
        for p in self.pullers:
            p.cancel()
        self.client.close()
