"""``ecg-monitor --station --fleet 16 --demo``: one command starts a nats-server from the wheel,
two workers, the ward alarm log, 16 patients and the station (offscreen), and stops every one of
them, whether the screenshot ends it or Ctrl-C does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

PY = sys.executable
OFFSCREEN = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def started_pids(line: str) -> list[int]:
    """The process ids the station's first line names (nats-server, workers, alarm-log, fleet)."""
    assert "ward on nats://127.0.0.1:" in line, line
    return [int(p) for p in re.findall(r"\b\d{3,}\b", line.split(": ", 2)[2])]


def alive(pids: list[int]) -> list[int]:
    running = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            running.append(pid)
        except ProcessLookupError:
            pass
    return running


def test_one_command_ward_shows_16_patients_beating_and_leaves_no_process(tmp_path):
    shot = tmp_path / "station.png"
    proc = subprocess.run([PY, "-m", "ecg_monitor.app.cli", "--station", "--fleet", "16", "--demo",
                           "--screenshot", str(shot), "--duration", "5"],
                          cwd=tmp_path, env=OFFSCREEN, capture_output=True, text=True, timeout=120)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    pids = started_pids(lines[0])
    assert len(pids) == 5  # server, 2 workers, alarm log, fleet
    saved = next(line for line in lines if "saved" in line)
    n, beating = map(int, re.search(r"(\d+) patients \((\d+) with beats\)", saved).groups())
    assert n == 16 and beating >= 16, saved
    assert "station connected" in saved and "workers connected" in saved
    assert shot.stat().st_size > 50_000
    assert (tmp_path / "ecg-monitor-ward-alarms.csv").read_text().startswith("patient,")
    assert alive(pids) == []


def test_ctrl_c_stops_the_whole_ward(tmp_path):
    proc = subprocess.Popen([PY, "-m", "ecg_monitor.app.cli", "--station", "--fleet", "4", "--demo"],
                            cwd=tmp_path, env=OFFSCREEN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = started_pids(proc.stdout.readline())
        time.sleep(3.0)
        assert alive(pids) == pids
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert alive(pids) == []


def test_no_display_is_one_line_before_anything_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([PY, "-m", "ecg_monitor.app.cli", "--station", "--fleet", "2", "--demo"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "no display" in lines[0], proc.stderr
    assert proc.stdout == ""  # no ward was started
