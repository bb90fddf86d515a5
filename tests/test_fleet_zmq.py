"""Many feeds in one worker process over ZeroMQ: per-feed chunk invariance and streaming
equivalence, and refused input (unknown or duplicate patient, malformed) counted."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import pytest
import zmq

from ecg_monitor.app import runtime
from ecg_monitor.streamer.messages import MessageError, decode, encode
from ecg_monitor.transport.base import Delivery
from ecg_monitor.transport.zeromq import ZmqChunkSender, ZmqWorkerLink
from ecg_monitor.workers.fleet import FleetWorker
from fleet_helpers import chunk_messages, ended_message, patient_signal, reference

SPAWN = mp.get_context("spawn")
SECONDS = 20.0


def run_fleet(chunks: str, events: str, ready) -> int:
    stop = runtime.StopFlag(child=True, name="ecg-fleet-test")
    link = ZmqWorkerLink(chunks, events)
    try:
        return FleetWorker(link, stop, roster=frozenset({"bed00", "bed01", "bed02", "bed03"}), single=False).run(ready)
    finally:
        link.close()


@contextmanager
def fleet_worker(tmp_path, topics: tuple[bytes, ...]):
    """A fleet worker process on ZeroMQ (roster bed00..bed03) and a subscriber of ``topics``."""
    ep = runtime.Endpoints(f"ipc://{tmp_path}/chunks", f"ipc://{tmp_path}/events")
    ready = SPAWN.Event()
    proc = SPAWN.Process(target=run_fleet, args=(ep.chunks, ep.events, ready))
    proc.start()
    ctx = zmq.Context()
    sub = runtime.socket(ctx, zmq.SUB, hwm=100000)
    for topic in topics:
        sub.subscribe(topic)
    sub.connect(ep.events)
    try:
        assert ready.wait(60)
        time.sleep(0.3)
        yield ep, sub
    finally:
        proc.terminate()
        proc.join(10)
        sub.close()
        ctx.term()


def until_ended(sub, feeds: int, on_message=None) -> dict:
    """Each patient's last status once ``feeds`` of them say ended (30 s at most)."""
    status: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(s["source_state"] == "ended" for s in status.values()) < feeds:
        if sub.poll(1000):
            m = decode(sub.recv_multipart())
            if m.kind == "status":
                status[m["patient"]] = m
            elif on_message:
                on_message(m)
    return status


def test_one_worker_many_feeds_same_beats_as_each_alone_whatever_the_chunking(tmp_path):
    beats, alarms = defaultdict(list), defaultdict(list)

    def on_message(m) -> None:
        if m.kind == "beats":
            beats[m["patient"]] += [(b["sample"], b["label"]) for b in m["beats"]]
        else:
            alarms[m["patient"]].append((m["alarm"], m["event"], m["sample"]))

    with fleet_worker(tmp_path, (b"beats", b"alarm", b"status")) as (ep, sub):
        signals = {f"bed{i:02d}": patient_signal(i, SECONDS) for i in range(4)}
        sizes = {"bed00": 7, "bed01": 18, "bed02": 90, "bed03": 361}  # a different chunking per feed
        msgs = {p: chunk_messages(p, x, sizes[p]) for p, x in signals.items()}
        sender = ZmqChunkSender(ep.chunks)
        for k in range(max(len(m) for m in msgs.values())):  # interleaved, as they arrive live
            for p, m in msgs.items():
                if k < len(m):
                    sender.send(p, m[k])
        bad = [[b"chunk", b"not json"],  # malformed
               chunk_messages("nobody", signals["bed00"][:18], 18)[0],  # not on the roster
               chunk_messages("bed 07", signals["bed00"][:18], 18)[0]]  # not a plain id
        intruder = encode("chunk", {"source": "other-device", "seq": 0, "first_sample": 0, "fs": 360.0,
                                    "t_source": 0.0, "patient": "bed01"}, signals["bed01"][:18])
        for frames in [*bad, intruder] + [ended_message(p, len(x)) for p, x in signals.items()]:
            sender.send(None, frames)
        sender.close()
        status = until_ended(sub, 4, on_message)
    for p, x in signals.items():
        ref = reference(p, x, 360)
        assert len(ref["beats"]) >= SECONDS * 30 / 60
        assert beats[p] == ref["beats"], p
        assert alarms[p] == ref["alarms"], p
    fleet = status["bed00"]["fleet"]
    assert (fleet["feeds"], fleet["malformed"], fleet["unknown_patient"], fleet["duplicate_patient"]) == (4, 1, 2, 1)
    assert fleet["grouped"] > 100  # sent faster than processed: the backlog was taken in few updates
    cont = status["bed01"]["continuity"]  # the intruder refused by bed01's feed; worker-wide malformed
    assert (cont["foreign"], cont["malformed"], cont["gaps"], cont["duplicates"]) == (1, 1, 0, 0)


def test_fleet_source_sends_every_patient_whole_and_in_order(tmp_path):
    with fleet_worker(tmp_path, (b"status",)) as (ep, sub):
        fleet = subprocess.run([sys.executable, "-m", "ecg_monitor.fleet.cli", "--patients", "3", "--connect", ep.chunks,
                                "--speed", "max", "--duration", "6"], capture_output=True, text=True, timeout=60)
        assert fleet.returncode == 0, fleet.stderr
        status = until_ended(sub, 3)
    assert sorted(status) == ["bed01", "bed02", "bed03"]
    for m in status.values():
        cont = m["continuity"]
        assert m["samples"] == 6 * 360 and m["source"] == "synthetic"
        assert (cont["gaps"], cont["lost_chunks"], cont["duplicates"], cont["foreign"]) == (0, 0, 0, 0)
        assert sum(m["beats_by_class"].values()) >= 5


def test_patient_is_an_additive_field_of_schema_v1():
    header = {"source": "s", "worker": "w", "fs": 360.0, "beats": []}
    assert "patient" not in decode(encode("beats", header)).header  # the one-patient messages stay as they were
    assert decode(encode("beats", {**header, "patient": "bed01"}))["patient"] == "bed01"
    with pytest.raises(MessageError, match="patient"):
        encode("beats", {**header, "patient": 7})


def test_a_refused_message_the_broker_hands_out_again_is_counted_once(tmp_path):
    """A broker that lost an ack (NATS after a crash) delivers a refused message again: it is
    acknowledged again but not counted again, so the counts say how many bad messages came."""
    acks = []
    link = ZmqWorkerLink(f"ipc://{tmp_path}/chunks", f"ipc://{tmp_path}/events")
    try:
        worker = FleetWorker(link, roster=frozenset({"bed00"}), single=False)
        stranger = encode("chunk", {"source": "s", "seq": 0, "first_sample": 0, "fs": 360.0,
                                    "t_source": 0.0, "patient": "bed99"}, [0.0] * 18)
        for again in (False, True, True):
            worker.handle_all([Delivery([b"garbage"], lambda: acks.append("malformed"), redelivered=again),
                               Delivery(stranger, lambda: acks.append("unknown"), redelivered=again)])
    finally:
        link.close()
    assert (worker.counters.malformed, worker.counters.unknown_patient) == (1, 1)
    assert acks.count("malformed") == acks.count("unknown") == 3


def test_zmq_sender_says_closed_once_closed(tmp_path):
    """The fleet's last console line reads the sender's state after closing it."""
    sender = ZmqChunkSender(f"ipc://{tmp_path}/chunks")
    assert sender.state() == "connected"
    sender.close()
    assert sender.state() == "closed"
