"""What must be stored on NATS goes through one pipelined, acknowledged publisher
(``natsclient.AckedPublisher``): a fleet's chunks and a worker's alarms. A real nats-server from
the pip wheel; the fleet sender and the worker link as the processes use them."""

from __future__ import annotations

import threading
import time

import numpy as np

from ecg_monitor.streamer.messages import Message, decode, encode
from ecg_monitor.transport.nats import NatsChunkSender, NatsWorkerLink
from ecg_monitor.transport.natsclient import EVENTS, SAMPLES, NatsClient, to_frames, to_message
from ecg_monitor.transport.server import LocalNatsServer
from fleet_helpers import chunk_messages

CHUNK = 18


def stored(client: NatsClient, stream: str) -> list[Message]:
    """Every message of a stream, in order."""
    async def read() -> list[Message]:
        js = client.nc.jetstream()
        state = (await js.stream_info(stream)).state
        out = []
        for seq in range(state.first_seq, state.last_seq + 1):
            raw = await js.get_msg(stream, seq)
            out.append(decode(to_frames(raw.headers, raw.data)))
        return out
    return client.call(read())


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_fleet_tick_wakes_the_publishing_loop_once_not_once_per_chunk(monkeypatch):
    """500 chunks sent while the sender's loop thread is busy (a fleet's tick: every feed's chunk
    at once) ask it to wake once: the first finds nothing queued, the pump then takes them all. It
    used to be one callback per chunk: 2,000 a second for 100 feeds at 20 chunks a second. All are
    stored, once, in order."""
    with LocalNatsServer() as srv:
        sender = NatsChunkSender(srv.url, 1)
        loop = sender.client.loop
        entered, busy = threading.Event(), threading.Event()

        def hold() -> None:
            entered.set()
            busy.wait(10)

        try:
            loop.call_soon_threadsafe(hold)
            assert entered.wait(5)
            calls = []
            real = loop.call_soon_threadsafe

            def counted(callback, *args, **kwargs):
                calls.append(callback)
                return real(callback, *args, **kwargs)

            monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
            for frames in chunk_messages("bed01", np.zeros(500 * CHUNK), CHUNK):
                assert sender.send("bed01", frames)
            wakes = len(calls)
            busy.set()
            assert wait_for(lambda: sender.backlog() == 0, 10.0), sender.backlog()
            seqs = [m["seq"] for m in stored(sender.client, SAMPLES)]
        finally:
            busy.set()
            sender.close()
    assert wakes == 1
    assert seqs == list(range(500))


def alarm(k: int) -> list[bytes]:
    return encode("alarm", {"source": "sim-bed01", "worker": "w", "alarm": "brady", "priority": "high",
                            "event": "onset" if k % 2 == 0 else "end", "sample": 360 * k,
                            "record_time_s": float(k), "heart_rate_bpm": 35.0, "detail": "", "patient": "bed01"})


def status() -> list[bytes]:
    return encode("status", {"source": "sim-bed01", "worker": "w", "incarnation": 0, "source_state": "connected",
                             "samples": 0, "continuity": {}, "latency_ms": {}, "patient": "bed01"})


def test_a_burst_of_alarms_is_pipelined_stored_once_in_order_and_the_chunk_ack_waits_for_it():
    """A worker's 300 alarms of one round are acknowledged by the events stream without one round
    trip each holding up everything behind them: while the stream refuses them (full), the status
    published after them still goes out, and the ack of the chunk they came from waits (were the
    worker to die, the chunk comes again and its alarms with it). Once the stream is deleted the
    worker makes it again and resends: every alarm stored once, in order, then the chunk acked."""
    with LocalNatsServer() as srv:
        link = NatsWorkerLink(srv.url, 1, {0})
        helper = NatsClient(srv.url, 1)
        seen: dict[str, list[float]] = {"status": [], "ack": []}

        async def watch() -> None:
            async def on_status(msg) -> None:
                seen["status"].append(time.monotonic())

            async def on_ack(msg) -> None:
                if msg.data == b"+ACK":  # not the link's +WPI (still working on it)
                    seen["ack"].append(time.monotonic())

            await helper.nc.subscribe("ecg.*.status", cb=on_status)
            await helper.nc.subscribe(f"$JS.ACK.{SAMPLES}.>", cb=on_ack)

        async def fill_events() -> None:  # a stream the layout keeps (other config), refusing every message
            await helper.api(f"$JS.API.STREAM.DELETE.{EVENTS}", {})
            await helper.api(f"$JS.API.STREAM.CREATE.{EVENTS}", {
                "name": EVENTS, "subjects": ["ecg.*.beats", "ecg.*.alarms", "ecg.*.status"],
                "max_msgs": 1, "discard": "new"})
            await helper.js.publish("ecg.filler.beats", b"filler")

        try:
            helper.call(watch())
            helper.call(fill_events())
            headers, payload = to_message(chunk_messages("bed01", np.zeros(CHUNK), CHUNK)[0])
            helper.call(helper.js.publish("ecg.bed01.samples", payload, headers=headers))
            deliveries = link.receive(5.0)
            assert len(deliveries) == 1
            for k in range(300):
                link.publish("bed01", "alarm", alarm(k), f"bed01.brady.{k}")
            link.publish("bed01", "status", status())
            deliveries[0].ack()
            link.receive(0.0)  # hands the round's results and acks to the client's thread
            time.sleep(1.5)
            refused = (list(seen["status"]), list(seen["ack"]))
            helper.call(helper.api(f"$JS.API.STREAM.DELETE.{EVENTS}", {}))
            assert wait_for(lambda: seen["ack"], 10.0)
            alarms = [m["record_time_s"] for m in stored(helper, EVENTS) if m.kind == "alarm"]
        finally:
            link.close()
            helper.close()
    assert refused[0] and not refused[1]  # the status went out, the ack waited
    assert alarms == [float(k) for k in range(300)]
