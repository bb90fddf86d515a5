"""The outbox of unacknowledged publishes: resends keep each patient's order, the bound drops and
counts only new chunks, a newer source state replaces one not yet sent."""

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
