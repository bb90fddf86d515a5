"""The streaming runtime with real processes and real ZeroMQ sockets (no mocks).

Each test starts ``ecg-monitor`` (or the worker alone) as a subprocess, so these take seconds
each: equivalence with ``ecg-eval detect``, clean stop on SIGINT/SIGTERM without orphans,
worker restart after kill -9 with a complete alarm log, a dying source, garbage on the socket,
a full disk under the alarm log, and bad input caught before any process starts.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import zmq

from ecg_monitor.app import cli as monitor_cli
from ecg_monitor.evaluation.detect import DetectionScore, RecordResult, detect_record, write_beats
from ecg_monitor.replay import read_record
from ecg_monitor.streamer.messages import decode, encode

PY = sys.executable


class Running:
    """A subprocess whose stdout/stderr lines are collected as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen([PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._collect, args=(s, d), daemon=True)
                         for s, d in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, dest: list[str]) -> None:
        for line in stream:
            dest.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, where: str = "out", timeout: float = 60.0) -> re.Match:
        lines = self.out if where == "out" else self.err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                break
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} in {where}:\n" + "\n".join(self.out + self.err))

    def finish(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def text(self) -> str:
        return "\n".join(self.out + ["--- stderr ---"] + self.err)


def monitor(*args: str, cwd: Path) -> Running:
    return Running("-m", "ecg_monitor.app.cli", *args, cwd=cwd)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def read_alarms(path: Path) -> list[dict]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        datetime.fromisoformat(r["wall_time"])
        assert r["event"] in ("onset", "end") and r["priority"] in ("high", "medium", "low")
    return rows


# ---------------------------------------------------------------------------------------------
def test_streaming_equivalence_with_ecg_eval_detect(tmp_path, data_dir):
    """Beats through streamer -> ZeroMQ -> worker -> subscriber = ecg-eval detect's, byte for byte."""
    beats_csv = tmp_path / "stream.csv"
    run = monitor("--replay", "100", "--headless", "--speed", "max", "--duration", "300", "--beats-csv",
                  str(beats_csv), "--alarms-csv", str(tmp_path / "alarms.csv"), "--stats-json",
                  str(tmp_path / "stats.json"), "--data-dir", str(data_dir), cwd=tmp_path)
    assert run.finish(120) == 0, run.text()
    record = read_record("100", data_dir)
    record = dataclasses.replace(record, signal=record.signal[: 300 * 360])
    beats, _ = detect_record(record, 360)
    expected = write_beats(RecordResult("100", record, beats, DetectionScore(), DetectionScore(), 0.0),
                           tmp_path / "eval", "csv")
    assert len(beats) > 300
    assert beats_csv.read_text() == expected.read_text()
    assert "source ended: duration reached" in run.text()
    status = [line for line in run.out if line.startswith("t ")]
    assert status and all("(e2e: queueing at --speed max)" in line for line in status)  # not latency at max
    # every line is one message: an alarm, a source event, a status line or the end
    assert all(line.startswith(("t ", "ALARM ", "SOURCE ", "source ended")) for line in run.out), run.out


@pytest.mark.parametrize("how", ["sigint-group", "sigterm-group", "sigterm"])
def test_stop_leaves_no_orphan_and_no_socket(tmp_path, how):
    run = monitor("--demo", "--headless", "--status-every", "0.5", "--alarms-csv", str(tmp_path / "a.csv"),
                  cwd=tmp_path)
    m = run.wait_for(r"endpoints ipc://(\S+) ipc://(\S+)", "err")
    run.wait_for(r"source connected")
    pids = descendants(run.proc.pid)
    names = {comm(p) for p in pids}
    assert {"ecg-worker", "ecg-streamer", "ecg-alarm-log", "ecg-console"} <= names, names
    if how == "sigint-group":  # what Ctrl-C in a terminal does
        os.killpg(run.proc.pid, signal.SIGINT)
    elif how == "sigterm-group":  # what `timeout` and service managers do
        os.killpg(run.proc.pid, signal.SIGTERM)
    else:
        run.proc.send_signal(signal.SIGTERM)
    assert run.finish(20) == (130 if how == "sigint-group" else 143), run.text()  # 128 + signal, as shells expect
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], [(p, comm(p)) for p in pids if alive(p)]
    assert not Path(m.group(1)).exists() and not Path(m.group(2)).exists()
    assert "Traceback" not in run.text()
    assert "source treated as ended" not in run.text()  # a stop is not a lost source


def test_killed_worker_is_restarted_and_the_alarm_log_stays_complete(tmp_path):
    alarms = tmp_path / "alarms.csv"
    run = monitor("--demo", "--headless", "--speed", "20", "--duration", "165", "--status-every", "0.2",
                  "--alarms-csv", str(alarms), cwd=tmp_path)
    pid = int(run.wait_for(r"worker pid (\d+)", "err").group(1))
    run.wait_for(r"^t\s+(?:[6-9]\d|1\d\d)\.\d s")  # record time >= 60 s, before the pause at 108 s
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    took = float(run.wait_for(r"restarted as incarnation 1 in ([\d.]+) s", "err", timeout=5).group(1))
    seen_after = time.monotonic() - killed_at
    assert took < 2.0 and seen_after < 2.0, (took, seen_after)
    assert run.finish(60) == 0, run.text()
    assert "worker restarts 1" in run.text()
    rows = read_alarms(alarms)
    restart = next(i for i, r in enumerate(rows) if r["alarm"] == "worker_restarted")
    before = {r["alarm"] for r in rows[:restart] if r["event"] == "onset"}
    after = {r["alarm"] for r in rows[restart:] if r["event"] == "onset"}
    assert "bigeminy" in before
    assert {"pause", "asystole", "extreme_bradycardia", "ventricular_fibrillation"} <= after, rows
    assert all(r["worker"].endswith(":1") for r in rows[restart:])
    opened: dict[str, int] = {}
    for r in rows:  # every onset has its end: nothing left open after a restart or the stream's end
        opened[r["alarm"]] = opened.get(r["alarm"], 0) + (1 if r["event"] == "onset" else -1)
    assert set(opened.values()) == {0}, opened


def test_dying_source_ends_the_stream_without_hanging(tmp_path, data_dir):
    run = monitor("--replay", "100", "--headless", "--speed", "5", "--status-every", "0.2", "--alarms-csv",
                  str(tmp_path / "a.csv"), "--data-dir", str(data_dir), cwd=tmp_path)
    run.wait_for(r"^t\s+\d\d\.\d s")  # 10 s of record streamed
    streamer = [p for p in descendants(run.proc.pid) if comm(p) == "ecg-streamer"]
    assert len(streamer) == 1
    os.kill(streamer[0], signal.SIGKILL)
    assert run.finish(30) == 0, run.text()
    assert "streamer exited with code -9" in run.text()
    run.wait_for(r"source ended: streamer exited with code -9")


@contextlib.contextmanager
def standalone_worker(tmp_path: Path):
    """A worker process on private ipc endpoints, a PUSH socket into it and a status subscriber."""
    chunks, events = f"ipc://{tmp_path}/chunks", f"ipc://{tmp_path}/events"
    worker = Running("-m", "ecg_monitor.detector.worker", "--chunks", chunks, "--events", events, cwd=tmp_path)
    ctx = zmq.Context()
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    sub.subscribe(b"status")
    sub.connect(events)
    push.connect(chunks)
    try:
        assert sub.poll(30000), worker.text()
        yield push, sub, events
    finally:
        push.close(0)
        sub.close(0)
        ctx.term()
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.finish(10) == 0, worker.text()


def wait_status(sub: zmq.Socket, done, timeout: float = 30.0) -> dict:
    """The first status message for which ``done(status)`` holds."""
    deadline = time.monotonic() + timeout
    st: dict = {}
    while time.monotonic() < deadline:
        if sub.poll(1000):
            st = decode(sub.recv_multipart()).header
            if done(st):
                return st
    raise AssertionError(f"no such status; last: {st}")


def chunk(source: str, seq: int, first: int, n: int = 360) -> list[bytes]:
    return encode("chunk", {"source": source, "seq": seq, "first_sample": first, "fs": 360.0,
                            "t_source": time.monotonic()}, np.zeros(n))


def test_garbage_foreign_gaps_and_duplicates_are_counted(tmp_path):
    with standalone_worker(tmp_path) as (push, sub, _):
        for frames in ([b"garbage"], [b"chunk", b"{not json", b"x"], [os.urandom(7), os.urandom(50)],
                       chunk("A", 0, 0), chunk("B", 0, 0), chunk("A", 0, 0), chunk("A", 2, 720),
                       encode("beats", {"source": "A", "worker": "x", "fs": 360.0, "beats": []}),
                       [b"status", b'{"v": 1, "kind": "status"}']):
            push.send_multipart(frames)
        st = wait_status(sub, lambda st: st["continuity"].get("chunks") == 3 and st["continuity"]["malformed"] == 4)
        c = st["continuity"]
        assert (c["foreign"], c["duplicates"], c["gaps"], c["gap_samples"], c["lost_chunks"]) == (2, 1, 1, 360, 1), c
        assert st["samples"] == 360 * 3


def test_a_stalled_subscriber_does_not_slow_the_worker(tmp_path):
    with standalone_worker(tmp_path) as (push, sub, events):
        stalled = zmq.Context.instance().socket(zmq.SUB)
        stalled.setsockopt(zmq.RCVHWM, 10)
        stalled.subscribe(b"")
        stalled.connect(events)  # never read from
        time.sleep(0.3)
        for seq in range(1000):  # 1000 s of signal
            push.send_multipart(chunk("A", seq, seq * 360))
        st = wait_status(sub, lambda st: st["samples"] == 360_000, timeout=60)
        assert st["continuity"]["lost_chunks"] == 0
        stalled.close(0)


def test_full_disk_under_the_alarm_log_is_loud_and_monitoring_goes_on(tmp_path):
    """Monitoring goes on while the log cannot be written; rows never written by the end fail
    the monitor (exit 1, said loudly): the audit trail cannot vanish under exit code 0."""
    run = monitor("--demo", "--headless", "--speed", "max", "--duration", "60", "--alarms-csv", "/dev/full",
                  "--beats-csv", str(tmp_path / "beats.csv"), cwd=tmp_path)
    assert run.finish(60) == 1, run.text()
    assert "ALARM LOG NOT WRITTEN: /dev/full: No space left on device" in run.text()
    assert re.search(r"!!! \d+ ALARM ROW\(S\) LOST: never written to /dev/full !!!", run.text()), run.text()
    assert "ALARM ROWS LOST: the alarm log /dev/full is incomplete" in run.text()
    assert "ALARM onset bigeminy" in run.text()  # alarms still raised and shown
    assert re.search(r"^ALARM end   bigeminy \[LOW\] at [\d.]+ s, HR \d+, lasted \d+\.\d s", run.text(), re.M)
    assert len((tmp_path / "beats.csv").read_text().splitlines()) > 60


@pytest.mark.parametrize("args, message", [
    (["--replay", "999"], "record '999' not found"),
    (["--replay", "100", "--start", "5000"], "outside record 100"),
    (["--demo", "--duration", "0"], "--duration must be > 0"),
    (["--demo", "--speed", "fast"], "speed must be a number or 'max'"),
    (["--demo", "--alarms-csv", "/proc/no/alarms.csv"], "--alarms-csv /proc/no/alarms.csv: cannot be written"),
])
def test_bad_input_fails_before_any_process_starts(tmp_path, data_dir, args, message):
    run = monitor(*args, "--headless", "--data-dir", str(data_dir), cwd=tmp_path)
    assert run.finish(60) == 2
    assert message in run.text() and "worker pid" not in run.text()


def test_relative_data_dir_and_missing_output_folders(tmp_path, data_dir):
    """A relative $ECG_MONITOR_DATA means relative to where the user started the monitor (every
    process gets it absolute), and output files go into folders that do not exist yet."""
    start = tmp_path / "start"
    start.mkdir()
    (tmp_path / "records").symlink_to(data_dir)
    env = {**os.environ, "ECG_MONITOR_DATA": "../records"}
    proc = subprocess.run([PY, "-m", "ecg_monitor.app.cli", "--replay", "100", "--headless", "--speed", "max",
                           "--duration", "20", "--beats-csv", "out/new/beats.csv", "--alarms-csv", "out/log/alarms.csv",
                           "--stats-json", "out/new/stats.json"], cwd=start, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"data {tmp_path / 'records'};" in proc.stderr
    assert len((start / "out/new/beats.csv").read_text().splitlines()) > 20
    assert (start / "out/log/alarms.csv").read_text().startswith("wall_time,")
    assert json.loads((start / "out/new/stats.json").read_text())["signal_s"] == 20.0


def test_conftest_makes_the_readme_data_dir_absolute(data_dir):
    """The README runs pytest with ECG_MONITOR_DATA=../shared/data/mitdb; tests start monitors in
    other folders, so the tests see it absolute."""
    assert data_dir.is_absolute() and Path(os.environ["ECG_MONITOR_DATA"]).is_absolute()


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as done:
        monitor_cli.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    description = out.split("\n\n")[1]
    assert description.startswith("Real-time ECG monitor") and "`" not in out
    assert "examples:\n  ecg-monitor --demo" in out
    with pytest.raises(SystemExit):
        monitor_cli.main(["--version"])
    assert re.fullmatch(r"ecg-monitor \d+\.\d+\.\d+\n", capsys.readouterr().out)
