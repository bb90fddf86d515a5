"""The whole serial chain: ecg-monitor-sim on a pty -> ecg-monitor --serial --headless -> beats."""

from __future__ import annotations

import csv
import json
import re
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
            [sys.executable, "-m", "ecg_monitor.app.cli", "--serial", sim.port, "--headless",
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


def test_serial_faults_show_in_status_lines_events_and_stats(tmp_path: Path) -> None:
    """CRC errors, lost frames, gaps and a replug injected by the simulator are counted in the
    console's status line and --stats-json, and the replug is an event line, once."""
    stats = tmp_path / "stats.json"
    with simulator("--seconds", "10", "--speed", "4", "--corrupt-rate", "0.03", "--drop-rate", "0.03",
                   "--disconnect-at", "3", "--disconnect-for", "1", "--seed", "3") as sim:
        mon = subprocess.run(
            [sys.executable, "-m", "ecg_monitor.app.cli", "--serial", sim.port, "--headless", "--duration", "8",
             "--status-every", "0.5", "--stats-json", str(stats), "--alarms-csv", str(tmp_path / "alarms.csv")],
            capture_output=True, text=True, timeout=60,
        )
    assert mon.returncode == 0, mon.stdout + mon.stderr
    status = [line for line in mon.stdout.splitlines() if line.startswith("t ")]
    times = [float(line.split()[1]) for line in status]
    assert times == sorted(times) and len(set(status)) == len(status), status  # in order, none twice
    m = re.search(r"device crc (\d+) lost (\d+) gaps (\d+) reconnects (\d+)", status[-1])
    assert m and int(m[1]) > 0 and int(m[2]) > 0 and int(m[3]) > 0 and int(m[4]) == 1, status[-1]
    events = [line for line in mon.stdout.splitlines() if "reopened (reconnect 1)" in line]
    assert len(events) == 1 and events[0].startswith(f"SOURCE serial:{sim.port}"), mon.stdout
    counters = json.loads(stats.read_text())["source_counters"]
    assert counters["crc_errors"] == int(m[1]) and counters["reconnects"] == 1 and counters["frames_lost"] > 0
