"""What must be stored on NATS goes through one pipelined, acknowledged publisher
(``natsclient.AckedPublisher``). A real nats-server from the pip wheel; the fleet sender as the
processes use it."""

from __future__ import annotations

import threading
import time

import numpy as np

from ecg_monitor.streamer.messages import Message, decode
from ecg_monitor.transport.nats import NatsChunkSender
from ecg_monitor.transport.natsclient import SAMPLES, NatsClient, to_frames
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
