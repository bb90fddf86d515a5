"""A feed's chunks taken together in one pipeline update (a fleet worker that fell behind) give
exactly what one update per chunk gives, with lost chunks, a foreign chunk and a gap too long to
fill inside the group; every irregularity is still counted, and each beat's end-to-end latency is
counted from the chunk that completed it."""

from __future__ import annotations

import time

import numpy as np

from ecg_monitor.detector.feed import Feed
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.streamer.messages import Message, decode, encode
from fleet_helpers import FS, chunk_messages, patient_signal

CHUNK = 18
MAX_FILL = int(2 * FS)  # gaps longer than 2 s restart the stream


class Recorded(RollingLatency):
    """Keeps every value added, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def add(self, seconds: float) -> None:
        super().add(seconds)
        self.values.append(seconds)


def messages(t0: float = 0.0) -> list[Message]:
    """60 s of a tachycardic patient in 18-sample chunks (``t_source`` = t0 - 1000 * chunk number),
    chunks 100-102 lost, 900-999 lost (5 s: a restart), and a chunk of another device at 500."""
    msgs = [decode(f) for f in chunk_messages("bed01", patient_signal(1, 60.0), CHUNK)]
    msgs = [Message(m.kind, {**m.header, "t_source": t0 - 1000.0 * k}, m.data) for k, m in enumerate(msgs)]
    intruder = decode(encode("chunk", {"source": "other-device", "seq": 0, "first_sample": 0, "fs": FS,
                                       "t_source": 0.0, "patient": "bed01"}, np.zeros(CHUNK)))
    kept = [m for k, m in enumerate(msgs) if not (100 <= k < 103 or 900 <= k < 1000)]
    return kept[:500] + [intruder] + kept[500:]


def run(groups: list[list[Message]]) -> tuple[dict, Feed, int]:
    out: dict = {"beats": [], "alarms": [], "trace": {}}

    def emit(kind: str, header: dict, data) -> None:
        if kind == "beats":
            out["beats"] += [(b["sample"], b["emitted_at"], b["label"], b["probabilities"]) for b in header["beats"]]
        elif kind == "alarm":
            out["alarms"].append((header["alarm"], header["event"], header["sample"], header["detail"]))
        elif kind == "trace":
            out["trace"].update(zip(range(header["start"], header["start"] + len(data)), data))

    feed = Feed(emit, MAX_FILL, Recorded(), Recorded(), "bed01")
    refused = sum(feed.on_chunks(g, time.monotonic()) for g in groups)
    return out, feed, refused


def test_chunks_taken_together_give_what_one_update_each_gives():
    msgs = messages()
    one, feed1, refused1 = run([[m] for m in msgs])
    assert len(one["beats"]) > 80 and one["alarms"] and refused1 == 1
    counters = feed1.continuity.counters
    assert (counters.lost_chunks, counters.gaps, counters.restarts, counters.foreign) == (103, 2, 1, 1)
    for size in (7, len(msgs)):  # a worker a little behind, and one that got everything at once
        together, feed, refused = run([msgs[i:i + size] for i in range(0, len(msgs), size)])
        assert together["beats"] == one["beats"], size
        assert together["alarms"] == one["alarms"], size
        assert together["trace"].keys() == one["trace"].keys()
        np.testing.assert_array_equal(list(together["trace"].values()), list(one["trace"].values()))
        assert feed.continuity.counters == counters and refused == 1


def test_end_to_end_latency_is_counted_from_the_chunk_that_completed_each_beat():
    t0 = time.monotonic()
    msgs = [m for m in messages(t0) if m["source"] != "other-device"][:850]  # one stream, no restart
    out, feed, _ = run([msgs])  # one update for all of it
    ends = [m["first_sample"] + m.data.size for m in msgs]  # a lost chunk's samples come with the next
    by = [msgs[int(np.searchsorted(ends, emitted_at))] for _, emitted_at, _, _ in out["beats"]]
    expected = [round((t0 - m["t_source"]) / 1000.0) for m in by]  # its chunk number
    assert len(set(expected)) > 50
    assert [round(v / 1000.0) for v in feed.end_to_end.values] == expected
    assert len(feed.compute.values) == len(expected) and max(feed.compute.values) < 5.0
