"""Versioned ZeroMQ message schema shared by streamer, worker and every subscriber.

A message is a multipart ZeroMQ message of two or three frames::

    [topic, header, payload?]

* ``topic``: the kind as ASCII (``b"chunk"``, ``b"beats"``...), so a SUB socket can subscribe
  to the kinds it wants (``sock.subscribe(b"alarm")``);
* ``header``: a UTF-8 JSON object with ``"v": SCHEMA_VERSION`` and ``"kind"`` equal to the
  topic, plus the fields of that kind listed in :data:`FIELDS`;
* ``payload`` (kinds ``chunk`` and ``trace`` only): ``n`` raw little-endian samples of
  ``dtype`` (``"<f8"`` or ``"<f4"``), mV, NaN for a missing sample.

Kinds (``[P]`` = has a payload):

* ``chunk`` [P] streamer -> worker: ``source``, ``seq`` (0, 1, 2... per source run),
  ``first_sample`` (absolute index of the first sample in the source's numbering), ``fs``,
  ``t_source`` (``time.monotonic()`` when the newest sample was acquired), ``n``, ``dtype``.
* ``source`` streamer -> worker: ``source``, ``state`` (a ``SourceState`` value), ``fs``,
  ``next_sample`` (index the next chunk will start at), ``counters`` (dict: the source's own,
  e.g. a serial device's ``crc_errors``/``frames_lost``/``gap_events``/``reconnects``, plus
  ``chunks`` sent and ``speed``: the factor, ``"max"``, or ``"device"`` for a live device),
  ``detail`` (str).
* ``beats`` worker -> subscribers: ``source``, ``worker``, ``fs``, ``beats``: list of objects
  ``{sample, emitted_at, label, search_back, probabilities, t_received}``; ``sample`` and
  ``emitted_at`` are in the source's numbering, ``t_received`` is the monotonic receipt time of
  the chunk that completed the beat.
* ``trace`` [P] worker -> subscribers: ``source``, ``worker``, ``start`` (index of the first
  sample), ``fs``, ``n``, ``dtype``: the 0.5-40 Hz display trace.
* ``alarm`` worker -> subscribers: ``source``, ``worker``, ``alarm``, ``priority``
  (high/medium/low), ``event`` (onset/end), ``sample``, ``record_time_s``, ``heart_rate_bpm``
  (number or null), ``detail``, and optionally ``lasted_s`` (an end: seconds since the onset it
  ends; null for an onset).
* ``status`` worker -> subscribers, about once a second: ``source``, ``worker``, ``incarnation``
  (0 for the first worker, +1 per restart), ``source_state``, ``samples``, ``record_time_s``,
  ``heart_rate_bpm``, ``beats_by_class``, ``active_alarms``, ``continuity`` (chunks, gaps,
  gap_samples, duplicates, malformed, foreign), ``latency_ms`` (compute and end_to_end, each
  p50/p95/p99/n) and ``source_counters``.
* ``control`` live view -> monitor: ``cmd`` (``"source"``) and ``argv`` (list of strings, the
  source options of ``ecg-monitor``, e.g. ``["--replay", "207", "--speed", "4"]``).
* ``reply`` monitor -> live view: ``cmd``, ``result`` (ok/refused) and ``detail``.

Every kind may carry ``patient`` (additive, still v1): the patient id a fleet feed belongs to
(letters, digits, ``_`` and ``-``; it is also the NATS subject token). Fleet workers route
chunk/source messages by it and put it on their beats/alarm/trace/status; messages without it
are the one-patient monitor's. Fleet status messages also carry ``fleet`` (the worker's feed
count and refused-message counters).

``worker`` is ``"<pid>:<incarnation>"``; a subscriber that sees it change knows the worker was
restarted. Any frame that does not follow this schema makes :func:`decode` raise
:class:`MessageError`, the one exception receivers catch to count and drop it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1

#: Sample encodings a payload may use.
DTYPES = {"<f8": np.dtype("<f8"), "<f4": np.dtype("<f4")}

_NUM = (int, float)
#: Required header fields (besides ``v`` and ``kind``) and their JSON types, per kind.
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "chunk": {"source": str, "seq": int, "first_sample": int, "fs": _NUM, "t_source": _NUM,
              "n": int, "dtype": str},
    "source": {"source": str, "state": str, "fs": _NUM, "next_sample": int, "counters": dict,
               "detail": str},
    "beats": {"source": str, "worker": str, "fs": _NUM, "beats": list},
    "trace": {"source": str, "worker": str, "start": int, "fs": _NUM, "n": int, "dtype": str},
    "alarm": {"source": str, "worker": str, "alarm": str, "priority": str, "event": str,
              "sample": int, "record_time_s": _NUM, "heart_rate_bpm": (*_NUM, type(None)),
              "detail": str},
    "status": {"source": str, "worker": str, "incarnation": int, "source_state": str,
               "samples": int, "continuity": dict, "latency_ms": dict},
    "control": {"cmd": str, "argv": list},
    "reply": {"cmd": str, "result": str, "detail": str},
}
WITH_PAYLOAD = frozenset({"chunk", "trace"})
PRIORITIES = ("high", "medium", "low")
EVENTS = ("onset", "end")
RESULTS = ("ok", "refused")


class MessageError(ValueError):
    """A message does not follow the schema (garbage, foreign, other version, bad payload)."""


@dataclass(frozen=True)
class Message:
    """A decoded message: its kind, header fields and (for chunk/trace) samples."""

    kind: str
    header: dict[str, Any]
    data: np.ndarray | None = field(default=None)

    def __getitem__(self, key: str) -> Any:
        return self.header[key]


def _check(kind: str, header: dict[str, Any]) -> None:
    spec = FIELDS.get(kind)
    if spec is None:
        raise MessageError(f"unknown message kind {kind!r}")
    for name, typ in spec.items():
        if name not in header:
            raise MessageError(f"{kind}: missing field {name!r}")
        value = header[name]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise MessageError(f"{kind}: field {name!r} has type {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError(f"{kind}: field {name!r} is not finite")
    if not isinstance(header.get("patient", ""), str):
        raise MessageError(f"{kind}: field 'patient' must be a string")
    if "fs" in spec and header["fs"] <= 0:
        raise MessageError(f"{kind}: fs must be > 0")
    if "n" in spec and header["n"] < 0:
        raise MessageError(f"{kind}: n must be >= 0")
    if "dtype" in spec and header["dtype"] not in DTYPES:
        raise MessageError(f"{kind}: dtype {header['dtype']!r} not in {sorted(DTYPES)}")
    if kind == "alarm" and (header["priority"] not in PRIORITIES or header["event"] not in EVENTS):
        raise MessageError(f"alarm: bad priority {header['priority']!r} or event {header['event']!r}")
    if kind == "control" and not all(isinstance(a, str) for a in header["argv"]):
        raise MessageError("control: argv must be a list of strings")
    if kind == "reply" and header["result"] not in RESULTS:
        raise MessageError(f"reply: result {header['result']!r} not in {RESULTS}")


def encode(kind: str, header: dict[str, Any], data: np.ndarray | None = None,
           dtype: str = "<f8") -> list[bytes]:
    """Frames of one message; ``n`` and ``dtype`` are filled in from ``data`` for payload kinds."""
    full = {"v": SCHEMA_VERSION, "kind": kind, **header}
    frames = [kind.encode("ascii")]
    if kind in WITH_PAYLOAD:
        if data is None:
            raise MessageError(f"{kind} needs a payload")
        samples = np.ascontiguousarray(data, dtype=DTYPES[dtype])
        full.update(n=int(samples.size), dtype=dtype)
        payload = [samples.tobytes()]
    elif data is not None:
        raise MessageError(f"{kind} carries no payload")
    else:
        payload = []
    _check(kind, full)
    frames.append(json.dumps(full, separators=(",", ":")).encode("utf-8"))
    return frames + payload


def decode(frames: list[bytes]) -> Message:
    """Parse and validate the frames of one message; raise :class:`MessageError` if malformed."""
    if len(frames) not in (2, 3):
        raise MessageError(f"expected 2 or 3 frames, got {len(frames)}")
    try:
        topic = bytes(frames[0]).decode("ascii")
        header = json.loads(bytes(frames[1]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"undecodable topic or header: {exc}") from None
    if not isinstance(header, dict):
        raise MessageError("header is not a JSON object")
    if header.get("v") != SCHEMA_VERSION:
        raise MessageError(f"schema version {header.get('v')!r}, expected {SCHEMA_VERSION}")
    kind = header.get("kind")
    if kind != topic:
        raise MessageError(f"topic {topic!r} does not match kind {kind!r}")
    _check(kind, header)
    if kind not in WITH_PAYLOAD:
        if len(frames) != 2:
            raise MessageError(f"{kind} carries no payload")
        return Message(kind, header)
    if len(frames) != 3:
        raise MessageError(f"{kind} needs a payload frame")
    dt = DTYPES[header["dtype"]]
    raw = bytes(frames[2])
    if len(raw) != header["n"] * dt.itemsize:
        raise MessageError(f"{kind}: payload has {len(raw)} bytes for {header['n']} x {dt}")
    return Message(kind, header, np.frombuffer(raw, dtype=dt).astype(np.float64))
