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
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError

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
    """A nats-py connection on its own event-loop thread, with an ordered outbox."""

    def __init__(self, url: str, partitions: int) -> None:
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
        self.closing = True
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
