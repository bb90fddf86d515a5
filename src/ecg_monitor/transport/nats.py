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
import uuid
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
MAX_IN_FLIGHT = 4096  # publishes awaiting their PubAck (2,000 chunks a second from 100 feeds: ~2 s)
ACK_TIMEOUT_S = 5.0  # no PubAck this long on a live connection: resend from the oldest unacknowledged
RETRY_S = 0.2  # after the stream refused a message, before sending again
PUMP_TICK_S = 0.1  # the sender looks at its connection and overdue acks at least this often
CLOSE_WAIT_S = 5.0  # a closing sender waits this long at most for the last acks


class NatsChunkSender(ChunkSender):
    """Publishes ``ecg.<patient>.samples`` and keeps each message until the samples stream says it
    stored it (a JetStream PubAck to the message's own reply subject), pipelined: up to
    :data:`MAX_IN_FLIGHT` await their acks, matched by number as they come. Each message has a
    ``Nats-Msg-Id`` (patient, this sender's run, number), so one sent again after a lost ack is
    dropped by the stream's duplicate window (2 min: outages up to that are resent exactly; after a
    longer one a chunk whose ack died with the server may be stored twice, which the worker cuts and
    counts). After
    a reconnect, a refusal, or no ack within :data:`ACK_TIMEOUT_S`, everything unacknowledged is
    sent again in order (:class:`ecg_monitor.transport.outbox.Outbox`); nothing is published while
    disconnected, so nats-py's reconnect buffer never sends newer chunks ahead of older ones."""

    def __init__(self, url: str, partitions: int, outbox_chunks: int = OUTBOX_CHUNKS) -> None:
        self.client = NatsClient(url, partitions)
        self.outbox = Outbox(outbox_chunks)
        self.lock = threading.Lock()  # the outbox: the caller's thread adds, the loop thread sends and acks
        self.run_id = uuid.uuid4().hex[:12]
        self.inbox = self.client.nc.new_inbox()
        self.refused: str | None = None  # the stream's latest refusal, until the pump resends
        self.said: set[str] = set()  # refusals printed
        self.unsent: dict[str, int] = {}  # chunks given up at close, per patient
        self.running = True
        self.wake = self.client.call(self._event())
        self.pump = asyncio.run_coroutine_threadsafe(self._pump(), self.client.loop)

    @staticmethod
    async def _event() -> asyncio.Event:
        return asyncio.Event()

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        """Queue for publishing; False when it is a chunk of a patient whose outbox is full (the
        broker away longer than it holds): dropped, for the caller to count."""
        headers, payload = to_message(frames)
        with self.lock:
            headers["Nats-Msg-Id"] = f"{patient}-{self.run_id}-{self.outbox.count}"
            entry = self.outbox.add(str(patient), f"ecg.{patient}.samples", headers, payload,
                                    chunk=headers["Ecg-Kind"] == "chunk")
        if entry is None:
            return False
        self.client.loop.call_soon_threadsafe(self.wake.set)
        return True

    def state(self) -> str:
        return self.client.state() if self.running else "closed"

    def backlog(self) -> int:
        return len(self.outbox)

    async def _pump(self) -> None:
        """Send what is queued, in order, while connected; resend everything unacknowledged
        after a reconnect or a refusal (after :data:`RETRY_S`), with the streams made again (a
        server restarted on an empty store, a stream deleted), or when an ack is overdue."""
        nc = self.client.nc
        await nc.subscribe(f"{self.inbox}.*", cb=self._on_ack)
        connection = nc.stats["reconnects"]
        while self.running:
            self.wake.clear()
            if nc.is_connected:
                refused, self.refused = self.refused, None
                redo = nc.stats["reconnects"] != connection or refused is not None
                if refused is not None and refused not in self.said:
                    self.said.add(refused)
                    print(f"NATS {self.client.url}: the samples stream refused a chunk ({refused}); "
                          f"sending again from the oldest unacknowledged", file=sys.stderr, flush=True)
                if redo:
                    connection = nc.stats["reconnects"]
                    await asyncio.sleep(RETRY_S if refused is not None else 0.0)
                    try:
                        await self.client.layout()
                    except (NatsUnavailable, NatsError, asyncio.TimeoutError):
                        pass  # the next refusal says what is wrong
                now = time.monotonic()
                with self.lock:
                    if redo or self.outbox.overdue(now, ACK_TIMEOUT_S):
                        self.outbox.rewind()
                    batch = self.outbox.take(MAX_IN_FLIGHT, now)
                for entry in batch:  # the rest stay in flight when the connection goes: sent again after
                    if not nc.is_connected or nc.stats["reconnects"] != connection:
                        break
                    try:
                        await nc.publish(entry.subject, entry.payload, reply=f"{self.inbox}.{entry.n}",
                                         headers=entry.headers)
                    except NatsError:
                        break
            try:
                await asyncio.wait_for(self.wake.wait(), PUMP_TICK_S)
            except asyncio.TimeoutError:
                pass

    async def _on_ack(self, msg) -> None:
        """A PubAck (stored, or a repeat the stream had), an error from the stream, or status
        503 (no stream listening: a server still starting, or without the stream)."""
        status = (msg.headers or {}).get("Status")
        error = f"status {status}" if status else None
        if error is None:
            try:
                error = (json.loads(msg.data).get("error") or {}).get("description")
            except (ValueError, AttributeError):
                error = "unreadable acknowledgement"
        if error is not None:
            self.refused = error
            self.wake.set()
            return
        with self.lock:
            self.outbox.ack(int(msg.subject.rpartition(".")[2]))
            more = bool(self.outbox.queue) and len(self.outbox.in_flight) <= MAX_IN_FLIGHT // 2
        if more:  # a backlog (after an outage) goes out in batches, not one publish per ack
            self.wake.set()

    def abandoned(self) -> dict[str, int]:
        return self.unsent

    def close(self) -> None:
        """Wait up to :data:`CLOSE_WAIT_S` until the stream acknowledged everything, then stop;
        what is still unacknowledged is counted per patient in :meth:`abandoned`."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        while len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.running = False
        with self.lock:
            self.unsent = dict(self.outbox.give_up())
        self.pump.cancel()
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
        self.client = NatsClient(url, partitions)
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
        def ack() -> None:  # posted after the results of the message, so sent after them
            with self.lock:
                self.unacked.pop(reply, None)
            self.client.post(reply, None, b"+ACK")
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
        self.client.post(f"ecg.{patient or '_'}.{sub}", headers, payload, stored=kind == "alarm")

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
