"""The NATS JetStream transport: many patients, many workers, machines apart, with failover.

Layout (created idempotently by whoever connects first; nats-server >= 2.11):

* stream ``ECG_SAMPLES``: sources publish ``ecg.<patient>.samples``; the stream's subject
  transform stores them as ``ecg.part.<k>.<patient>`` with ``k = partition(N, patient)``, so a
  patient's chunks stay in order in one partition;
* one durable pull consumer ``part-<k>`` per partition, explicit acks, ``ack_wait`` shorter than
  the pinned-client ``priority_timeout``: one worker is pinned to a partition; when it dies its
  pin expires, a standby's waiting pull is pinned, and the messages it had not acked are
  redelivered first (in order);
* stream ``ECG_EVENTS``: workers publish ``ecg.<patient>.beats|alarms|status``; alarms and beats
  carry ``Nats-Msg-Id`` (patient + sample) so a repeat after a takeover is dropped by the server;
  the display trace goes to ``ecg.<patient>.trace`` (live only, not stored).

Both streams keep :data:`RETENTION_S`. A NATS message is ``header JSON`` + ``0x00`` + raw samples
(chunk/trace), the kind in the ``Ecg-Kind`` header: the frames of schema v1, one message.
The client (nats-py, asyncio) runs on its own thread; workers and sources stay synchronous.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError

from ecg_monitor.transport.base import ChunkSender, Delivery, WorkerLink

SAMPLES, EVENTS = "ECG_SAMPLES", "ECG_EVENTS"
GROUP = "workers"
RETENTION_S = 15 * 60
ACK_WAIT_S = 0.5
PULL_EXPIRES_S = 0.3
#: > 2 x ACK_WAIT_S (the server notices expired acks up to one ack_wait late) + PULL_EXPIRES_S (a
#: pull answered just before the kill): a takeover finds all the dead worker's messages ready to
#: be redelivered, before any newer one, so a patient's chunks stay in order.
PIN_TIMEOUT_S = 1.5
PULL_BATCH = 64
LOCAL_MAX = 2 * PULL_BATCH  # fetched, not yet taken by the worker: more waits (acks stay within ack_wait)
REPLAY_CACHE_S = 5.0  # a taken-over partition's replay window serves its patients this long
STANDBY_DELAY_S = 3.0  # an unpinned partition with waiting messages: how long its home worker has
MIN_SERVER = (2, 11)
NS = 1_000_000_000


class NatsUnavailable(RuntimeError):
    """The server cannot be reached or is too old; the message names the URL."""


def to_message(frames: list[bytes]) -> tuple[dict[str, str], bytes]:
    """Schema-v1 frames -> (NATS headers, payload)."""
    body = bytes(frames[1]) + (b"\x00" + bytes(frames[2]) if len(frames) == 3 else b"")
    return {"Ecg-Kind": bytes(frames[0]).decode("ascii", "replace")}, body


def to_frames(headers: dict[str, str] | None, data: bytes) -> list[bytes]:
    """A NATS message -> schema-v1 frames (``decode`` then validates them)."""
    head, sep, payload = data.partition(b"\x00")
    kind = (headers or {}).get("Ecg-Kind", "").encode("ascii", "replace")
    return [kind, head, payload] if sep else [kind, head]


class NatsClient:
    """A nats-py connection on its own event-loop thread, with an ordered outbox."""

    def __init__(self, url: str, partitions: int) -> None:
        self.url, self.partitions = url, partitions
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats", daemon=True)
        self.thread.start()
        self.nc = self.call(self._connect())
        self.js = self.nc.jetstream()
        self.outbox: asyncio.Queue = self.call(self._make_queue())
        self.posted: list[tuple] = []  # the caller's thread only
        self.sender = asyncio.run_coroutine_threadsafe(self._drain_outbox(), self.loop)
        self.call(self._layout())

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_queue(self) -> asyncio.Queue:
        return asyncio.Queue()

    async def _connect(self):
        where = urlsplit(self.url)
        try:  # a plain probe first: nats-py retries an unreachable server for ever
            socket.create_connection((where.hostname or "127.0.0.1", where.port or 4222), timeout=2).close()
            nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.5, error_cb=self._error)
        except (OSError, NatsError, asyncio.TimeoutError) as exc:
            raise NatsUnavailable(f"NATS server unreachable at {self.url}: {exc or type(exc).__name__}") from None
        v = nc.connected_server_version
        if (v.major, v.minor) < MIN_SERVER:
            await nc.close()
            raise NatsUnavailable(f"nats-server at {self.url} is {v}; need >= {MIN_SERVER[0]}.{MIN_SERVER[1]} "
                                  f"(pinned-client consumers)")
        return nc

    async def _error(self, exc: Exception) -> None:
        """Connection trouble mid-run: one line; the client reconnects with back-off and the
        outbox keeps every result until it can be sent."""
        print(f"NATS {self.url}: {exc or type(exc).__name__}; reconnecting", file=sys.stderr, flush=True)

    async def api(self, subject: str, req: dict) -> dict:
        reply = json.loads((await self.nc.request(subject, json.dumps(req).encode(), timeout=5)).data)
        err = reply.get("error")
        if err:
            raise NatsUnavailable(f"NATS {subject} at {self.url}: {err.get('description')} ({err.get('err_code')})")
        return reply

    async def _stream(self, name: str, cfg: dict) -> None:
        try:
            await self.api(f"$JS.API.STREAM.CREATE.{name}", {"name": name, **cfg})
        except NatsUnavailable as exc:
            if "10058" not in str(exc):  # already there with another configuration: keep it
                raise

    async def _layout(self) -> None:
        n = self.partitions
        common = {"storage": "file", "max_age": RETENTION_S * NS, "duplicate_window": 120 * NS,
                  "discard": "old"}
        await self._stream(SAMPLES, {"subjects": ["ecg.*.samples"], **common, "subject_transform": {
            "src": "ecg.*.samples", "dest": f"ecg.part.{{{{partition({n},1)}}}}.{{{{wildcard(1)}}}}"}})
        await self._stream(EVENTS, {"subjects": ["ecg.*.beats", "ecg.*.alarms", "ecg.*.status"], **common})

    async def consumer(self, k: int) -> dict:
        name = f"part-{k}"
        cfg = {"durable_name": name, "filter_subject": f"ecg.part.{k}.*", "ack_policy": "explicit",
               "ack_wait": int(ACK_WAIT_S * NS), "deliver_policy": "all", "max_ack_pending": 20000,
               "max_deliver": -1, "priority_policy": "pinned_client", "priority_groups": [GROUP],
               "priority_timeout": int(PIN_TIMEOUT_S * NS), "max_waiting": 512}
        reply = await self.api(f"$JS.API.CONSUMER.CREATE.{SAMPLES}.{name}",
                                {"stream_name": SAMPLES, "config": cfg, "action": ""})
        got = reply.get("config", {})
        if got.get("priority_policy") != "pinned_client" or got.get("priority_groups") != [GROUP]:
            raise NatsUnavailable(f"nats-server at {self.url} ignored the pinned-client policy of {name} "
                                  f"(got {got.get('priority_policy')!r}); need nats-server >= 2.11")
        return got

    def post(self, subject: str, headers: dict[str, str] | None, payload: bytes, stored: bool = False) -> None:
        """Queue a publish (``stored``: wait for the stream's acknowledgement), in order; it goes
        to the loop thread at the next :meth:`push` (one wake-up per burst, not per message)."""
        self.posted.append((subject, headers, payload, stored))

    def push(self) -> None:
        """Hand what was posted to the loop thread."""
        if self.posted:
            items, self.posted = self.posted, []
            self.loop.call_soon_threadsafe(self._enqueue, items)

    def _enqueue(self, items: list) -> None:
        for item in items:
            self.outbox.put_nowait(item)

    async def _drain_outbox(self) -> None:
        while True:
            subject, headers, payload, stored = await self.outbox.get()
            while True:
                try:
                    if stored:
                        await self.js.publish(subject, payload, headers=headers, timeout=2)
                    else:
                        await self.nc.publish(subject, payload, headers=headers)
                    break
                except (NatsError, asyncio.TimeoutError):  # server away: retry, never drop
                    await asyncio.sleep(0.2)

    def flush(self, timeout: float = 5.0) -> None:
        self.push()

        async def wait_empty():
            while not self.outbox.empty():
                await asyncio.sleep(0.01)
            await self.nc.flush(timeout)
        self.call(wait_empty(), timeout + 5)

    def close(self) -> None:
        try:
            self.flush(2.0)
        except Exception:  # closing anyway
            pass
        self.sender.cancel()
        try:
            self.call(self.nc.close(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class NatsChunkSender(ChunkSender):
    """Publishes ``ecg.<patient>.samples`` (stored by the samples stream)."""

    def __init__(self, url: str, partitions: int) -> None:
        self.client = NatsClient(url, partitions)

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        headers, payload = to_message(frames)
        self.client.post(f"ecg.{patient}.samples", headers, payload)
        self.client.push()
        return True

    def close(self) -> None:
        self.client.close()


class NatsWorkerLink(WorkerLink):
    """Pulls its home partitions, waits in line as hot standby for the others, and publishes
    results to the events stream."""

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
                                        msg.subject.rsplit(".", 1)[-1], msg))
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
            while len(out) < 200:
                out.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def lag(self) -> dict[str, int]:
        """Per partition held: messages still on the server (the worker's lag), as of the last
        delivery."""
        return {f"part-{k}": self.pending.get(k, 0) for k in sorted(self.pinned)}

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
