"""Synthetic patients for fleet tests and the uninterrupted reference run of one patient."""

from __future__ import annotations

import numpy as np

from ecg_monitor.detector.feed import Feed
from ecg_monitor.detector.latency import RollingLatency
from ecg_monitor.streamer.messages import decode, encode
from synthetic_ecg import beat_train, regular_times

FS = 360.0


def patient_signal(i: int, seconds: float) -> np.ndarray:
    """Patient ``i``: a regular rhythm; 0 is bradycardic (35 bpm) and 1 tachycardic (150 bpm),
    so both raise alarms."""
    bpm = {0: 35.0, 1: 150.0}.get(i, 55.0 + 3.0 * i)
    x, _ = beat_train(regular_times(0.4 + 0.05 * (i % 7), seconds, bpm), seconds, seed=i)
    return x


def chunk_messages(patient: str, x: np.ndarray, chunk: int) -> list[list[bytes]]:
    return [encode("chunk", {"source": f"sim-{patient}", "seq": k, "first_sample": a, "fs": FS, "t_source": 0.0,
                             "patient": patient}, x[a : a + chunk])
            for k, a in enumerate(range(0, len(x), chunk))]


def ended_message(patient: str, next_sample: int) -> list[bytes]:
    return encode("source", {"source": f"sim-{patient}", "state": "ended", "fs": FS, "next_sample": next_sample,
                             "counters": {}, "detail": "end of source", "patient": patient})


def reference(patient: str, x: np.ndarray, chunk: int) -> dict[str, list]:
    """Beats (sample, label) and alarms (alarm, event, sample) of an uninterrupted run."""
    out: dict[str, list] = {"beats": [], "alarms": []}

    def emit(kind: str, header: dict, data) -> None:
        if kind == "beats":
            out["beats"] += [(b["sample"], b["label"]) for b in header["beats"]]
        elif kind == "alarm":
            out["alarms"].append((header["alarm"], header["event"], header["sample"]))

    feed = Feed(emit, 10**6, RollingLatency(), RollingLatency(), patient)
    for frames in chunk_messages(patient, x, chunk):
        feed.on_chunks([decode(frames)], 0.0)
    feed.on_source(decode(ended_message(patient, len(x))))
    return out
