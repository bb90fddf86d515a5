"""A fleet loses nothing silently: the outbox of unacknowledged publishes resends in each
patient's order, its bound drops only new chunks, a newer source state replaces one not yet sent;
the fleet publisher counts every chunk its sender did not take."""

import math

from ecg_monitor.fleet.publisher import FleetPublisher
from ecg_monitor.streamer.messages import decode
from ecg_monitor.streamer.synthetic import SyntheticSource
from ecg_monitor.transport.base import ChunkSender
from ecg_monitor.transport.outbox import Outbox


def add(box: Outbox, patient: str, label: str, chunk: bool = True):
    return box.add(patient, f"ecg.{patient}.samples", {}, label.encode(), chunk)


def labels(entries) -> list[str]:
    return [e.payload.decode() for e in entries]


def test_a_rewind_resends_everything_unacknowledged_in_the_original_order():
    box = Outbox(per_patient=10)
    for k in range(4):
        add(box, "a", f"a{k}")
        add(box, "b", f"b{k}")
    first = box.take(window=5, now=0.0)
    assert labels(first) == ["a0", "b0", "a1", "b1", "a2"]
    box.ack(first[1].n)  # b0 stored; a0's ack lost; b1 stored, its ack before a1's
    box.ack(first[3].n)
    assert box.overdue(now=6.0, timeout_s=5.0) and not box.overdue(now=4.0, timeout_s=5.0)
    assert box.rewind() == 3
    again = box.take(window=100, now=7.0)
    assert labels(again) == ["a0", "a1", "a2", "b2", "a3", "b3"]  # per patient in order, acked ones not resent
    box.ack(again[1].n)  # a late ack for a resent one counts
    box.rewind()
    assert labels(box.take(window=100, now=8.0)) == ["a0", "a2", "b2", "a3", "b3"]
    assert len(box) == 5


def test_a_full_patient_drops_its_new_chunks_only_and_states_replace_unsent_ones():
    box = Outbox(per_patient=2)
    assert add(box, "a", "a0") and add(box, "a", "a1")
    assert add(box, "a", "a2") is None  # a is full: a2 dropped (the caller counts it)
    assert add(box, "b", "b0")  # other patients are not held up
    assert add(box, "a", "state1", chunk=False) and add(box, "a", "state2", chunk=False)  # states are not bounded
    assert labels(box.take(window=100, now=0.0)) == ["a0", "a1", "b0", "state2"]  # state1 replaced before it went
    box.ack(0)  # a0 stored: room for one more
    assert add(box, "a", "a3") and add(box, "a", "a4") is None
    add(box, "a", "state3", chunk=False)  # state2 is in flight: it may be stored, so it stays
    box.rewind()
    assert labels(box.take(window=100, now=1.0)) == ["a1", "b0", "state2", "a3", "state3"]
    assert dict(box.give_up()) == {"a": 2, "b": 1} and len(box) == 0


def test_stored_before_waits_for_every_older_message_acknowledged_in_any_order():
    """What a worker's chunk ack waits for: every alarm added before it stored, acks in any order."""
    box = Outbox(per_patient=10)
    first = [add(box, "a", f"a{k}") for k in range(3)]
    mark = box.count
    add(box, "a", "a3")  # added after: not waited for
    box.take(window=100, now=0.0)
    assert not box.stored_before(mark)
    box.ack(first[2].n)
    box.ack(first[0].n)
    assert not box.stored_before(mark)
    box.ack(first[1].n)
    assert box.stored_before(mark) and not box.stored_before(box.count)


class Refusing(ChunkSender):
    """Takes every message but each third chunk (a full outbox, or stopping) and keeps what it took."""

    def __init__(self) -> None:
        self.taken: list = []
        self.chunks = 0

    def send(self, patient, frames) -> bool:
        message = decode(frames)
        if message.kind == "chunk":
            self.chunks += 1
            if self.chunks % 3 == 0:
                return False
        self.taken.append(message)
        return True

    def close(self) -> None:
        pass


def test_chunks_the_sender_did_not_take_are_counted_per_patient_and_leave_a_gap_in_sequence():
    sender, lines = Refusing(), []
    publisher = FleetPublisher({"bed01": SyntheticSource(seed=0)}, sender, math.inf, 18, 1.0, say=lines.append)
    assert publisher.run() == 14  # 20 chunks of 18 samples make 1 s; every third not taken
    seqs = [m["seq"] for m in sender.taken if m.kind == "chunk"]
    assert seqs == [k for k in range(20) if k % 3 != 2]  # the worker sees each refused one as a gap
    ended = sender.taken[-1]
    assert ended["state"] == "ended" and (ended["counters"]["chunks"], ended["counters"]["unsent"]) == (20, 6)
    assert publisher.line() == "fleet: 1 patient, chunks 20 made, 6 unsent (bed01 6) | transport connected, outbox 0"
    assert lines == []  # connected all along: the console stays quiet
