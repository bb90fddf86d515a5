"""The NATS JetStream connection and layout shared by fleet sources, workers and the alarm log.

Layout (created idempotently by whoever connects first; nats-server >= 2.11):

* stream ``ECG_SAMPLES``: sources publish ``ecg.<patient>.samples``; the stream's subject
  transform stores them as ``ecg.part.<k>.<patient>`` with ``k = partition(N, patient)``, so a
  patient's chunks stay in order in one partition;
* one durable pull consumer ``part-<k>`` per partition, explicit acks, ``ack_wait`` well under
  the pinned-client ``priority_timeout`` (see :mod:`ecg_monitor.transport.nats`);
* stream ``ECG_EVENTS``: ``ecg.<patient>.beats|alarms|status``, alarms and beats with
  ``Nats-Msg-Id`` (patient + sample) so a repeat after a takeover is dropped by the server; the
  display trace goes to ``ecg.<patient>.trace`` (live only, not stored).

Both streams keep :data:`RETENTION_S`. A NATS message is ``header JSON`` + ``0x00`` + raw samples
(chunk/trace), the kind in the ``Ecg-Kind`` header: the frames of schema v1, one message.
The client (nats-py, asyncio) runs on its own thread; callers stay synchronous.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import sys
import threading
import time
import uuid
from typing import Literal
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError

from ecg_monitor.transport.outbox import Outbox

SAMPLES, EVENTS = "ECG_SAMPLES", "ECG_EVENTS"
GROUP = "workers"
RETENTION_S = 15 * 60
ACK_WAIT_S = 0.5
RECONNECT_WAIT_S = 0.5  # the first wait between reconnect attempts; doubled per failed attempt
RECONNECT_MAX_S = 4.0
#: > 2 x ACK_WAIT_S (the server notices expired acks up to one ack_wait late) + the workers' pull
#: expiry (0.3 s: a pull answered just before the kill): a takeover finds all the dead worker's
#: messages ready to be redelivered, before any newer one, so a patient's chunks stay in order.
PIN_TIMEOUT_S = 1.5
MIN_SERVER = (2, 11)
NS = 1_000_000_000
MAX_IN_FLIGHT = 4096  # publishes awaiting their PubAck (2,000 chunks a second from 100 feeds: ~2 s)
ACK_TIMEOUT_S = 5.0  # no PubAck this long on a live connection: resend from the oldest unacknowledged
RETRY_S = 0.2  # after the stream refused a message, before sending again
PUMP_TICK_S = 0.1  # the publisher looks at its connection and overdue acks at least this often

#: How a posted message goes out: at once; kept until the stream stored it; once every stored
#: message posted before it is stored.
How = Literal["plain", "stored", "after stored"]


class NatsUnavailable(RuntimeError):
    """The server cannot be reached or is too old; the message names the URL."""


def to_message(frames: list[bytes]) -> tuple[dict[str, str], bytes]:
    """Schema-v1 frames -> (NATS headers, payload)."""
    body = bytes(frames[1]) + (b"\x00" + bytes(frames[2]) if len(frames) == 3 else b"")
    return {"Ecg-Kind": bytes(frames[0]).decode("ascii", "replace")}, body


def to_frames(headers: dict[str, str] | None, data: bytes) -> list[bytes]:
    """A NATS message -> schema-v1 frames (``decode`` then validates them). Without an
    ``Ecg-Kind`` header (a device publishing over MQTT 3.1.1, which has no headers) the kind is
    the JSON header's own."""
    head, sep, payload = data.partition(b"\x00")
    kind = (headers or {}).get("Ecg-Kind")
    if kind is None:
        try:
            kind = str(json.loads(head).get("kind", ""))
        except (ValueError, AttributeError):  # not a JSON object: decode will say malformed
            kind = ""
    kind_frame = kind.encode("ascii", "replace")
    return [kind_frame, head, payload] if sep else [kind_frame, head]


def probe(url: str) -> None:
    """Raise :class:`NatsUnavailable` naming ``url`` when nothing listens there (a plain TCP
    connection: no thread, no client, so a caller may fork right after)."""
    where = urlsplit(url)
    try:
        socket.create_connection((where.hostname or "127.0.0.1", where.port or 4222), timeout=2).close()
    except OSError as exc:
        raise NatsUnavailable(f"NATS server unreachable at {url}: {exc or type(exc).__name__}") from None


class NatsClient:
    """A nats-py connection on its own event-loop thread, with an ordered outbox; given an
    :class:`Outbox` for ``stored``, also an :class:`AckedPublisher` (``acked``) for messages a
    stream must store."""

    def __init__(self, url: str, partitions: int, stored: Outbox | None = None) -> None:
        self.url, self.partitions = url, partitions
        self.down_since: float | None = None  # time.monotonic() the connection was lost
        self.closing = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats", daemon=True)
        self.thread.start()
        self.nc = self.call(self._connect())
        self.js = self.nc.jetstream()
        self.outbox: asyncio.Queue = self.call(self._make_queue())
        self.posted: list[tuple] = []  # the caller's thread only
        self.sender = asyncio.run_coroutine_threadsafe(self._drain_outbox(), self.loop)
        self.call(self.layout())
        self.acked = AckedPublisher(self, stored) if stored is not None else None

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_queue(self) -> asyncio.Queue:
        return asyncio.Queue()

    async def _connect(self):
        probe(self.url)  # nats-py would retry an unreachable server for ever
        try:
            nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=-1,
                                    reconnect_time_wait=RECONNECT_WAIT_S, error_cb=self._error,
                                    disconnected_cb=self._disconnected, reconnected_cb=self._reconnected)
        except (OSError, NatsError, asyncio.TimeoutError) as exc:
            raise NatsUnavailable(f"NATS server unreachable at {self.url}: {exc or type(exc).__name__}") from None
        v = nc.connected_server_version
        if (v.major, v.minor) < MIN_SERVER:
            await nc.close()
            raise NatsUnavailable(f"nats-server at {self.url} is {v}; need >= {MIN_SERVER[0]}.{MIN_SERVER[1]} "
                                  f"(pinned-client consumers)")
        return nc

    async def _error(self, exc: Exception) -> None:
        """Connection trouble: one line, once per outage; while the server is away each failed
        attempt doubles the wait before the next (back-off, up to :data:`RECONNECT_MAX_S`)."""
        if self.down_since is None:
            print(f"NATS {self.url}: {exc or type(exc).__name__}", file=sys.stderr, flush=True)
        else:
            options = self.nc.options
            options["reconnect_time_wait"] = min(2 * options["reconnect_time_wait"], RECONNECT_MAX_S)

    async def _disconnected(self) -> None:
        """The server went away: say so; the client retries every :data:`RECONNECT_WAIT_S` and
        the outbox keeps every message until it can be sent."""
        if self.down_since is None and not self.closing:
            self.down_since = time.monotonic()
            print(f"NATS {self.url}: disconnected; reconnecting (back-off {RECONNECT_WAIT_S:g} s to "
                  f"{RECONNECT_MAX_S:g} s), keeping what is to be sent", file=sys.stderr, flush=True)

    async def _reconnected(self) -> None:
        self.nc.options["reconnect_time_wait"] = RECONNECT_WAIT_S
        away = time.monotonic() - self.down_since if self.down_since is not None else 0.0
        self.down_since = None
        print(f"NATS {self.url}: reconnected after {away:.1f} s", file=sys.stderr, flush=True)

    def state(self) -> str:
        """``connected``, or ``reconnecting`` while the server is away."""
        return "connected" if self.nc.is_connected else "reconnecting"

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

    async def layout(self) -> None:
        """Create the streams (again after a reconnect: a server restarted on an empty store)."""
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

    def post(self, subject: str, headers: dict[str, str] | None, payload: bytes, how: How = "plain") -> None:
        """Queue a publish, in order; it goes to the loop thread at the next :meth:`push` (one
        wake-up per burst, not per message). ``stored`` and ``after stored`` need ``acked``."""
        self.posted.append((subject, headers, payload, how))

    def push(self) -> None:
        """Hand what was posted to the loop thread."""
        if self.posted:
            items, self.posted = self.posted, []
            self.loop.call_soon_threadsafe(self._enqueue, items)

    def _enqueue(self, items: list) -> None:
        for item in items:
            self.outbox.put_nowait(item)

    async def _drain_outbox(self) -> None:
        """Publish what was posted, in order. Stored messages go out at once too, pipelined through
        ``acked`` (nobody waits here for their acks, so one stream round trip per alarm no longer
        holds up everything behind it); ``after stored`` ones are held by it until then."""
        while True:
            subject, headers, payload, how = await self.outbox.get()
            if how == "stored":
                self.acked.add(subject, subject, headers or {}, payload)
                await self.acked.send_now()
                continue
            if how == "after stored":
                await self.acked.after_stored(subject, payload)
                continue
            while True:
                try:
                    await self.nc.publish(subject, payload, headers=headers)
                    break
                except NatsError:  # server away: retry, never drop
                    await asyncio.sleep(0.2)

    def flush(self, timeout: float = 5.0) -> None:
        self.push()

        async def wait_empty():
            while not self.outbox.empty() or (self.acked is not None and not self.acked.settled()):
                await asyncio.sleep(0.01)
            await self.nc.flush(timeout)
        self.call(wait_empty(), timeout + 5)

    def close(self) -> None:
        self.closing = True
        try:
            self.flush(2.0)
        except Exception:  # closing anyway
            pass
        self.sender.cancel()
        if self.acked is not None:
            self.acked.give_up()  # a worker's alarms: their chunk was not acked, so it comes again
        try:
            self.call(self.nc.close(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class AckedPublisher:
    """Publishes messages a stream must store and keeps each until the stream says it stored it
    (a JetStream PubAck to the message's own reply subject), pipelined: up to
    :data:`MAX_IN_FLIGHT` await their acks, matched by number as they come (nats-py's
    ``js.publish`` waits for each in turn: a round trip a message). Each message has a
    ``Nats-Msg-Id`` (its own, else its key, this publisher's run and number), so one sent again
    after a lost ack is dropped by the stream's duplicate window. After a reconnect, a refusal, or
    no ack within :data:`ACK_TIMEOUT_S`, everything unacknowledged is sent again in order
    (:class:`~ecg_monitor.transport.outbox.Outbox`), the streams made again first; nothing is
    published while disconnected, so nats-py's reconnect buffer never sends newer messages ahead of
    older ones. It carries the fleet's chunks and the workers' alarms."""

    def __init__(self, client: NatsClient, outbox: Outbox) -> None:
        self.client, self.outbox = client, outbox
        self.lock = threading.Lock()  # the outbox: callers' threads add, the loop thread sends and acks
        self.run_id = uuid.uuid4().hex[:12]
        self.inbox = client.nc.new_inbox()
        self.refused: str | None = None  # the stream's latest refusal, until the next send
        self.said: set[str] = set()  # refusals printed
        self.held: collections.deque[tuple[int, str, bytes]] = collections.deque()  # see after_stored
        self.connection = client.nc.stats["reconnects"]  # the connection sent on
        self.running = True
        self.wake, self.sending = client.call(self._start())
        self.pump = asyncio.run_coroutine_threadsafe(self._pump(), client.loop)

    async def _start(self) -> tuple[asyncio.Event, asyncio.Lock]:
        await self.client.nc.subscribe(f"{self.inbox}.*", cb=self._on_ack)
        return asyncio.Event(), asyncio.Lock()

    def add(self, key: str, subject: str, headers: dict[str, str], payload: bytes, chunk: bool = True) -> bool:
        """Queue a message (any thread); False when it is a chunk of a key whose outbox is full
        (dropped, for the caller to count). The loop is woken only when nothing was queued: the
        pump takes everything queued at once, so a fleet's chunks of one tick cost one wake-up."""
        with self.lock:
            headers.setdefault("Nats-Msg-Id", f"{key}-{self.run_id}-{self.outbox.count}")
            idle = not self.outbox.queue
            entry = self.outbox.add(key, subject, headers, payload, chunk)
        if entry is not None and idle:
            self.client.loop.call_soon_threadsafe(self.wake.set)
        return entry is not None

    async def _pump(self) -> None:
        """Send what is queued when woken, and look at the connection and overdue acks at least
        every :data:`PUMP_TICK_S`."""
        while self.running:
            self.wake.clear()
            await self.send()
            await self._release()
            try:
                await asyncio.wait_for(self.wake.wait(), PUMP_TICK_S)
            except asyncio.TimeoutError:
                pass

    async def send(self) -> None:
        """Send what is queued, in order, while connected; resend everything unacknowledged
        after a reconnect or a refusal (after :data:`RETRY_S`), with the streams made again (a
        server restarted on an empty store, a stream deleted), or when an ack is overdue."""
        nc = self.client.nc
        async with self.sending:
            if not nc.is_connected:
                return
            refused, self.refused = self.refused, None
            redo = nc.stats["reconnects"] != self.connection or refused is not None
            if refused is not None and refused not in self.said:
                self.said.add(refused)
                print(f"NATS {self.client.url}: the stream refused a message ({refused}); "
                      f"sending again from the oldest unacknowledged", file=sys.stderr, flush=True)
            if redo:
                self.connection = nc.stats["reconnects"]
                await asyncio.sleep(RETRY_S if refused is not None else 0.0)
                try:
                    await self.client.layout()
                except (NatsUnavailable, NatsError, asyncio.TimeoutError):
                    pass  # the next refusal says what is wrong
            await self._publish(redo)

    async def send_now(self) -> None:
        """Send what is queued at once (the client's outbox: an alarm goes on the wire before what
        was posted after it), unless the pump is sending or must resend first: then it goes in
        order with the pump's next batch, and what follows it is not held up meanwhile."""
        nc = self.client.nc
        if (self.sending.locked() or self.refused is not None or not nc.is_connected
                or nc.stats["reconnects"] != self.connection):
            return
        async with self.sending:
            await self._publish(False)

    async def _publish(self, rewind: bool) -> None:
        """Publish the next queued messages on the current connection, everything unacknowledged
        first when ``rewind`` or an ack is overdue (the caller holds ``sending``)."""
        nc = self.client.nc
        now = time.monotonic()
        with self.lock:
            if rewind or self.outbox.overdue(now, ACK_TIMEOUT_S):
                self.outbox.rewind()
            batch = self.outbox.take(MAX_IN_FLIGHT, now)
        for entry in batch:  # the rest stay in flight when the connection goes: sent again after
            if not nc.is_connected or nc.stats["reconnects"] != self.connection:
                break
            try:
                await nc.publish(entry.subject, entry.payload, reply=f"{self.inbox}.{entry.n}",
                                 headers=entry.headers)
            except NatsError:
                break

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
        await self._release()

    async def after_stored(self, subject: str, payload: bytes) -> None:
        """Publish a plain message once every message added before it is stored: a worker's ack
        of a chunk goes out after that chunk's alarms are safe (a worker dying first leaves the
        chunk to be redelivered, and its alarms raised again), without holding up what follows."""
        with self.lock:
            self.held.append((self.outbox.count, subject, payload))
        await self._release()

    async def _release(self) -> None:
        """Publish the held messages whose stored messages before them are all stored, in order."""
        while self.held:
            with self.lock:
                if not self.outbox.stored_before(self.held[0][0]):
                    return
            mark, subject, payload = self.held.popleft()
            try:
                await self.client.nc.publish(subject, payload)
            except NatsError:  # closed: tried again at the next ack or tick
                self.held.appendleft((mark, subject, payload))
                return

    def settled(self) -> bool:
        """Nothing unacknowledged and nothing held."""
        return not len(self.outbox) and not self.held

    def give_up(self) -> dict[str, int]:
        """Stop; forget what is unacknowledged; returns its chunks per key."""
        self.running = False
        with self.lock:
            lost = dict(self.outbox.give_up())
        self.pump.cancel()
        return lost
