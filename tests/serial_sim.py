"""Helpers for tests that run ``ecg-monitor-sim`` on a real pseudo-terminal and read it."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ecg_monitor.firmware_bridge.profiles import DeviceProfile
from ecg_monitor.firmware_bridge.serial_source import SerialSource
from ecg_monitor.streamer.source import Source, SourceState


@dataclass
class Simulator:
    """A running simulator: its port path, and its stderr once it has finished."""

    proc: subprocess.Popen
    port: str
    log: str = ""

    def wait(self, timeout: float) -> str:
        _, self.log = self.proc.communicate(timeout=timeout)
        return self.log

    def event_time(self, pattern: str) -> float:
        """The monotonic stamp of the first log line matching ``pattern``."""
        m = re.search(r"\[t=([0-9.]+)\] " + pattern, self.log)
        assert m, f"no {pattern!r} in simulator log:\n{self.log}"
        return float(m.group(1))

    def stat(self, name: str) -> int:
        m = re.search(rf"{name} (\d+)", self.log)
        assert m, f"no {name!r} in simulator log:\n{self.log}"
        return int(m.group(1))


@contextmanager
def simulator(*args: str) -> Iterator[Simulator]:
    proc = subprocess.Popen([sys.executable, "-m", "ecg_monitor.firmware_bridge.simulator", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port, proc.communicate(timeout=10)[1]
        yield Simulator(proc, port)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=10)


@dataclass
class Recorder:
    """Polls a started source from a thread as the streamer would, keeping samples and states."""

    source: Source
    chunks: list[tuple[int, np.ndarray, float]] = field(default_factory=list)
    states: list[tuple[float, SourceState, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            chunk = self.source.read(64, timeout=0.05)
            state = self.source.state
            if not self.states or self.states[-1][1] is not state:
                self.states.append((time.monotonic(), state, str(self.source.counters().get("detail", ""))))
            if chunk is not None:
                self.chunks.append((chunk.first_sample, chunk.samples, chunk.timestamp))

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.source.stop()

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate([c[1] for c in self.chunks]) if self.chunks else np.zeros(0)

    def wait_for(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition(self):
                return True
            time.sleep(0.05)
        return False


def stream_through(profile: DeviceProfile, *sim_args: str) -> tuple[Simulator, SerialSource, Recorder]:
    """Run the simulator to its end into a :class:`SerialSource` polled like the streamer does,
    and check the Source contract on what came out: sample numbers from 0, no hole, stamped."""
    with simulator(*sim_args) as sim:
        src = SerialSource(sim.port, profile)
        src.start()
        rec = Recorder(src)
        sim.wait(timeout=60)
        # The simulator closed its port: once the source has seen that, it has read everything.
        rec.wait_for(lambda r: src.state is SourceState.DISCONNECTED, timeout=3)
        rec.stop()
    expected = 0
    for first, samples, stamp in rec.chunks:
        assert first == expected and stamp is not None
        expected += len(samples)
    return sim, src, rec
