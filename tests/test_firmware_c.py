"""The reference firmware's framing code, compiled with the host gcc, against the Python decoder."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from ecg_monitor.firmware_bridge.ascii import AsciiDecoder
from ecg_monitor.firmware_bridge.protocol import (
    MAX_SAMPLES,
    STATUS_LEAD_OFF_PLUS,
    STATUS_SATURATED,
    FrameDecoder,
    encode_frame,
)

FIRMWARE = Path(str(files("ecg_monitor.firmware_bridge") / "firmware"))
SKETCH = FIRMWARE / "ecg_firmware"
HOST = FIRMWARE / "host"
VECTORS = json.loads((FIRMWARE / "test_vectors.json").read_text())["vectors"]
WARNINGS = ["-Wall", "-Wextra", "-pedantic", "-Werror"]


def _compile(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ecg_frame.c compiled as C once, as the Arduino build compiles it next to the sketch."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("firmware")
    _compile("gcc", "-std=c99", "-O2", *WARNINGS, "-Wconversion", "-c", str(SKETCH / "ecg_frame.c"),
             "-o", str(out / "ecg_frame.o"))
    return out


@pytest.fixture(scope="module")
def host_encoder(build_dir: Path) -> Path:
    """The framing code behind the stdin harness."""
    exe = build_dir / "ecg_frame_host"
    _compile("gcc", "-std=c99", *WARNINGS, f"-I{SKETCH}", str(HOST / "ecg_frame_host.c"),
             str(build_dir / "ecg_frame.o"), "-o", str(exe))
    return exe


def _sketch(build_dir: Path, ascii_mode: bool) -> Path:
    """The Arduino sketch itself on simulated hardware (needs g++)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    exe = build_dir / f"sketch_host_{int(ascii_mode)}"
    _compile("g++", "-std=c++11", *WARNINGS, f"-DECG_ASCII={int(ascii_mode)}", f"-I{HOST}", f"-I{SKETCH}",
             str(HOST / "sketch_host.cpp"), str(build_dir / "ecg_frame.o"), "-o", str(exe))
    return exe


def _host_adc(k: np.ndarray, adc_max: int = 1023) -> np.ndarray:
    """sketch_host.cpp's ADC: a saw tooth, at the rail for samples 2000..2009."""
    return np.where((k >= 2000) & (k < 2010), adc_max, adc_max // 2 + (k * 37) % 600 - 300)


def _run(exe: Path, frames: list[tuple[int, int, list[int]]]) -> bytes:
    text = "".join(f"{seq} {status} {len(s)} {' '.join(map(str, s))}\n" for seq, status, s in frames)
    return subprocess.run([str(exe)], input=text.encode(), capture_output=True, check=True).stdout


def test_golden_vectors_python() -> None:
    for v in VECTORS:
        assert encode_frame(v["seq"], np.array(v["samples"]), v["status"]).hex() == v["frame_hex"], v["name"]


def test_golden_vectors_firmware(host_encoder: Path) -> None:
    out = _run(host_encoder, [(v["seq"], v["status"], v["samples"]) for v in VECTORS])
    assert out.hex() == "".join(v["frame_hex"] for v in VECTORS)


def test_firmware_frames_decode_exactly(host_encoder: Path) -> None:
    """Thousands of random frames from the C code: same bytes as Python, decoded to the sample."""
    rng = np.random.default_rng(7)
    frames = []
    for seq in range(3000):
        n = int(rng.integers(1, MAX_SAMPLES + 1))
        # Small values put zero bytes everywhere, where COBS has the most to do.
        scale = 40 if seq % 2 else 32768
        samples = np.clip(rng.integers(-scale, scale, n), -32768, 32767).tolist()
        frames.append((seq % 65536, int(rng.integers(0, 256)), samples))
    out = _run(host_encoder, frames)
    assert out == b"".join(encode_frame(seq, np.array(s), st) for seq, st, s in frames)
    dec = FrameDecoder()
    got = dec.feed(out)
    assert [(f.seq, f.status, f.counts.tolist()) for f in got] == frames
    assert dec.count.bad_packets == 0 and dec.count.bytes_discarded == 0 and dec.count.seq_gaps == 0


def test_firmware_rejects_bad_input(host_encoder: Path) -> None:
    proc = subprocess.run([str(host_encoder)], input=b"1 0 121 " + b"0 " * 121, capture_output=True)
    assert proc.returncode == 2 and b"bad frame header" in proc.stderr


def test_sketch_streams_frames_at_the_right_rate(build_dir: Path) -> None:
    """10 s of the sketch across a micros() wrap: 3600 samples in 360 frames, bits where due."""
    out = subprocess.run([str(_sketch(build_dir, ascii_mode=False)), "10"], capture_output=True, check=True).stdout
    dec = FrameDecoder()
    frames = dec.feed(out)
    assert [f.seq for f in frames] == list(range(360)) and dec.count.bad_packets == 0
    counts = np.concatenate([f.counts for f in frames])
    assert counts.tolist() == _host_adc(np.arange(3600)).tolist()
    lead_off = [f.seq for f in frames if f.status & STATUS_LEAD_OFF_PLUS]
    assert lead_off == list(range(100, 110))
    assert [f.seq for f in frames if f.status & STATUS_SATURATED] == [200]


def test_sketch_ascii_mode(build_dir: Path) -> None:
    out = subprocess.run([str(_sketch(build_dir, ascii_mode=True)), "10"], capture_output=True, check=True).stdout
    dec = AsciiDecoder(fs=360.0)
    runs = dec.feed(b"\n" + out)  # the line break a reader sees before the first whole line
    values = np.concatenate([r.counts for r in runs])
    k = np.r_[0:1000, 1100:3600]
    assert values.tolist() == _host_adc(k).astype(float).tolist()
    assert [r.gap_samples for r in runs] == [0, 100]  # lead-off lines are bad lines, time stamps show the gap
    assert dec.count.bad_lines == 100
