"""The versioned message schema: round trips, and every malformed message raises MessageError."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecg_monitor.streamer.messages import SCHEMA_VERSION, MessageError, decode, encode


def chunk(**overrides) -> list[bytes]:
    header = {"source": "replay:100", "seq": 3, "first_sample": 1080, "fs": 360.0, "t_source": 12.5}
    header.update(overrides)
    return encode("chunk", header, np.array([0.1, np.nan, -0.2]))


def test_chunk_round_trip_keeps_samples_and_nan():
    msg = decode(chunk())
    assert msg.kind == "chunk" and msg["seq"] == 3 and msg["first_sample"] == 1080 and msg["n"] == 3
    assert msg.data.dtype == np.float64
    np.testing.assert_array_equal(msg.data, [0.1, np.nan, -0.2])


def test_float32_payload_and_payloadless_kinds():
    frames = encode("trace", {"source": "s", "worker": "1:0", "start": 0, "fs": 360.0}, np.ones(4), dtype="<f4")
    assert len(frames[2]) == 16 and decode(frames).data.tolist() == [1, 1, 1, 1]
    alarm = encode("alarm", {"source": "s", "worker": "1:0", "alarm": "asystole", "priority": "high",
                             "event": "onset", "sample": 10, "record_time_s": 1.0, "heart_rate_bpm": None,
                             "detail": ""})
    assert len(alarm) == 2 and decode(alarm)["alarm"] == "asystole"


def _header(frames: list[bytes]) -> dict:
    return json.loads(frames[1])


def _with_header(frames: list[bytes], **changes) -> list[bytes]:
    h = {**_header(frames), **changes}
    return [frames[0], json.dumps(h).encode(), *frames[2:]]


@pytest.mark.parametrize("frames", [
    [b"garbage"],
    [b"chunk", b"\xff\xfe not json", b""],
    [b"chunk", b"[1, 2]", b""],
    _with_header(chunk(), v=SCHEMA_VERSION + 1),
    _with_header(chunk(), kind="trace"),
    _with_header(chunk(), seq="3"),
    _with_header(chunk(), seq=True),
    _with_header(chunk(), fs=0),
    _with_header(chunk(), dtype="<i2"),
    _with_header(chunk(), n=4),
    chunk()[:2],
    [b"hello", json.dumps({"v": SCHEMA_VERSION, "kind": "hello"}).encode()],
    [*encode("status", {"source": "s", "worker": "1:0", "incarnation": 0, "source_state": "x",
                        "samples": 0, "continuity": {}, "latency_ms": {}}), b"extra"],
], ids=["one-frame", "not-utf8", "not-object", "version", "topic-mismatch", "type", "bool-as-int",
        "fs-zero", "dtype", "payload-size", "missing-payload", "unknown-kind", "payload-on-status"])
def test_malformed_messages_raise_one_exception_type(frames):
    with pytest.raises(MessageError):
        decode(frames)


def test_encode_refuses_what_decode_would_refuse():
    with pytest.raises(MessageError):
        encode("alarm", {"source": "s", "worker": "w", "alarm": "a", "priority": "urgent", "event": "onset",
                         "sample": 0, "record_time_s": 0.0, "heart_rate_bpm": None, "detail": ""})
