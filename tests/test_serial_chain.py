"""The whole serial chain: ecg-monitor-sim on a pty -> ecg-monitor --serial --headless -> beats."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from serial_sim import simulator

from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.evaluation.ec57 import match_beats
from ecg_monitor.replay import iter_chunks, read_record

SECONDS = 120


def test_record_208_over_serial_gives_the_replay_beats(data_dir: Path, tmp_path: Path) -> None:
    """208's first 120 s through the simulator, the pty and the monitor's processes (at 10x
    real time): the same beats, with the same labels, as the pipeline run on the record."""
    beats_csv = tmp_path / "beats.csv"
    with simulator("--record", "208", "--data-dir", str(data_dir), "--seconds", str(SECONDS),
                   "--speed", "10") as sim:
        mon = subprocess.run(
            [sys.executable, "-m", "ecg_monitor.monitor", "--serial", sim.port, "--headless",
             "--duration", str(SECONDS), "--beats-csv", str(beats_csv),
             "--alarms-csv", str(tmp_path / "alarms.csv")],
            capture_output=True, text=True, timeout=120,
        )
        sim.wait(timeout=30)
    assert mon.returncode == 0, mon.stderr
    assert "duration reached" in mon.stdout
    assert sim.stat("sent") == SECONDS * 36  # 10-sample frames at 360 Hz, none lost

    rows = list(csv.DictReader(beats_csv.open()))
    got = np.array([int(r["sample"]) for r in rows])
    record = read_record("208", data_dir)
    pipeline = DetectorPipeline(record.fs)
    ref = [b for chunk in iter_chunks(record.signal[: SECONDS * 360], 18) for b in pipeline.update(chunk).beats]
    ref += pipeline.flush()
    m = match_beats(np.array([b.sample for b in ref]), got, window=int(0.150 * record.fs))
    assert len(m.pairs) >= 0.995 * len(ref) and len(m.extra) <= 0.005 * len(ref)
    assert all(ref[i].label == rows[j]["label"] for i, j in m.pairs)
