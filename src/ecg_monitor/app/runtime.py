"""Plumbing every process of the monitor shares: endpoints, stop signals, dying with the parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass

import zmq

RECONNECT_MS = 50  # subscribers and streamers find a restarted worker quickly
EXIT_DATA_LOST = 3  # a child lost data it was responsible for: not restarted, the monitor fails


@dataclass(frozen=True)
class Endpoints:
    """Where the worker listens for chunks (``chunks``) and publishes its results (``events``),
    and where the supervisor takes the live view's source requests (``control``, optional).

    The worker binds both; streamers connect to ``chunks`` and subscribers to ``events``. Any
    ZeroMQ transport works: ``ipc://`` (default, private folder) or ``tcp://`` so that a source
    on another machine can feed the worker (bind ``tcp://0.0.0.0:5555``, connect to its host).
    """

    chunks: str
    events: str
    control: str | None = None

    @classmethod
    def private(cls) -> Endpoints:
        """ipc endpoints in a fresh folder, so several monitors can run side by side."""
        folder = tempfile.mkdtemp(prefix="ecg-monitor-")
        return cls(f"ipc://{folder}/chunks", f"ipc://{folder}/events", f"ipc://{folder}/control")

    def cleanup(self) -> None:
        """Remove the ipc socket files and their folder (nothing to do for tcp)."""
        folders = set()
        for ep in (self.chunks, self.events, self.control):
            if ep and ep.startswith("ipc://"):
                path = ep[len("ipc://"):]
                folders.add(os.path.dirname(path))
                if os.path.exists(path):
                    os.unlink(path)
        for folder in folders:
            if os.path.basename(folder).startswith("ecg-monitor-"):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass


class StopFlag:
    """Set by SIGTERM (and SIGINT in a standalone process); loops poll it to exit cleanly.

    Children of the monitor ignore SIGINT: Ctrl-C reaches the whole process group, and the
    supervisor alone decides the order in which processes stop. ``name`` shows in ``ps -o comm``
    and ``top``, so the monitor's processes can be told apart.
    """

    def __init__(self, child: bool, name: str = "") -> None:
        self._event = threading.Event()
        self.signum: int | None = None  # the signal that asked for the stop
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, signal.SIG_IGN if child else self._set)
        if child:
            _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))
            die_with_parent()

    def _set(self, signum: int, frame: object) -> None:
        self.signum = signum
        self._event.set()

    @property
    def exit_code(self) -> int:
        """What shells expect of a process a signal stopped: 128 + the signal (130 for Ctrl-C,
        143 for SIGTERM); 0 when no signal came."""
        return 0 if self.signum is None else 128 + self.signum

    def __bool__(self) -> bool:
        return self._event.is_set()


PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15


def _prctl(option: int, arg: object) -> None:
    """Linux prctl(2); a no-op elsewhere."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, arg)
        except OSError:
            pass


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so even a killed monitor leaves
    no orphan."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def socket(ctx: zmq.Context, kind: int, hwm: int = 1000, linger_ms: int = 0) -> zmq.Socket:
    """A socket with the options every process uses (fast reconnect, bounded queues)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock
