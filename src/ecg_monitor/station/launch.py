"""The processes behind a station demo, started on this machine and stopped with the window.

ZeroMQ (``ecg-monitor-station --demo N``): one fleet worker and N synthetic patients. NATS
(``ecg-monitor --station --fleet N --demo``): a nats-server from the wheel with its MQTT listener
(unless a URL is given), a pool of workers sharing the partitions, the ward alarm log and N patients, replays
of :data:`DEMO_RECORDS` and synthetic ones when a data folder is found, synthetic otherwise.

Every child runs in its own process group (Ctrl-C reaches the station alone, which stops them
all at once, then the server) and is asked by Linux to stop when the station dies, so even a
killed station leaves no process behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ecg_monitor.app import runtime
from ecg_monitor.replay.records import resolve_data_dir
from ecg_monitor.transport.server import LocalNatsServer, free_port
from ecg_monitor.workers.cli import home_partitions

STAGGER_S = 13.0  # synthetic beds start this far apart in the 222 s synthetic scenario: a mix of rhythms
DEMO_RECORDS = ("100", "119", "203", "208", "213", "221", "106", "200")  # normal, bigeminy, VT, PVCs...


@dataclass
class Ward:
    """Where the demo's results can be read, and the children's process ids (what was started)."""

    url: str = ""  # NATS server URL, or the ZeroMQ events endpoint
    mqtt: str = ""  # the local server's MQTT listener, HOST:PORT (none when a URL was given)
    pids: dict[str, list[int]] = field(default_factory=dict)

    def line(self) -> str:
        where = self.url + (f" (MQTT {self.mqtt})" if self.mqtt else "")
        return f"ward on {where}: " + ", ".join(f"{name} {' '.join(map(str, p))}" for name, p in self.pids.items())


class Children:
    """Processes started together and stopped together when ``stack`` closes: SIGTERM to all at
    once, then up to :data:`STOP_S` for them all, SIGKILL for any still there."""

    STOP_S = 5.0

    def __init__(self, stack: ExitStack) -> None:
        self.procs: list[subprocess.Popen] = []
        stack.callback(self.stop)

    def start(self, module: str, args: list[str], niceness: int = 0) -> int:
        """``python -m module args`` in its own process group, dying with this process; its pid.
        Fork only while this process has no other thread (``preexec_fn``)."""
        def child_setup() -> None:
            os.nice(niceness)
            runtime.die_with_parent()

        proc = subprocess.Popen([sys.executable, "-m", module, *args], preexec_fn=child_setup, process_group=0)
        self.procs.append(proc)
        return proc.pid

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        deadline = time.monotonic() + self.STOP_S
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_demo(n: int, stack: ExitStack, niceness: int = 0) -> str:
    """A ZeroMQ fleet worker and ``n`` synthetic patients on free ports (``niceness`` added to their
    nice value: the benchmark's load generators yield to the station it measures); the worker's
    event endpoint."""
    chunks, events = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    children = Children(stack)
    children.start("ecg_monitor.workers.cli", ["--chunks", chunks, "--events", events], niceness)
    children.start("ecg_monitor.fleet.cli", ["--patients", str(n), "--connect", chunks, "--stagger",
                                             f"{STAGGER_S:g}"], niceness)
    return events


def start_server(stack: ExitStack) -> Ward:
    """A local nats-server with its MQTT listener, stopped last when ``stack`` closes."""
    server = LocalNatsServer(mqtt=True)
    stack.callback(server.stop)
    return Ward(server.url, f"127.0.0.1:{server.mqtt_port}", {"nats-server": [server.proc.pid]})


def start_nats_ward(ward: Ward, n: int, stack: ExitStack, partitions: int, workers: int = 2,
                    data_dir: str | None = None, alarms_csv: Path | None = None) -> None:
    """A NATS ward of ``n`` patients on ``ward.url``: ``workers`` workers with the partitions dealt
    out as home partitions (each hot standby for the rest), the alarm log and the fleet."""
    common = ["--nats-url", ward.url, "--partitions", str(partitions)]
    children = Children(stack)  # stopped before the server, which was started first
    for home in home_partitions(partitions, workers):
        pid = children.start("ecg_monitor.workers.cli", ["--transport", "nats", *common, "--home", home])
        ward.pids.setdefault("workers", []).append(pid)
    csv = alarms_csv or Path("ecg-monitor-ward-alarms.csv")
    ward.pids["alarm-log"] = [children.start("ecg_monitor.outputs.ward_alarm_log", [*common, "--csv", str(csv)])]
    fleet = ["--transport", "nats", *common, "--patients", str(n), "--stagger", f"{STAGGER_S:g}"]
    folder = resolve_data_dir(data_dir)
    if folder is not None and folder.is_dir():
        replays = n - n // 2
        fleet += ["--replay", ",".join(DEMO_RECORDS[: min(replays, len(DEMO_RECORDS))]), "--data-dir",
                  str(folder.resolve()), "--synthetic", str(n - replays)]
    ward.pids["fleet"] = [children.start("ecg_monitor.fleet.cli", fleet)]
