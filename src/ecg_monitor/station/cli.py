"""``ecg-monitor-station``: the central station, subscribed to fleet workers' ZeroMQ PUB sockets.

    ecg-monitor-station --endpoint tcp://127.0.0.1:5556                   # a running fleet worker
    ecg-monitor-station --demo 16                                         # worker + 16 synthetic beds + station
    ecg-monitor-station --demo 16 --screenshot docs/screenshots/station.png --duration 40

``--demo N`` starts ``ecg-monitor-worker`` and ``ecg-monitor-fleet --patients N`` on free local
ports and stops them (by PID) when the window closes. ``--screenshot`` saves a PNG after
``--duration`` seconds of data and exits; it works offscreen (``QT_QPA_PLATFORM=offscreen``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from ecg_monitor.gui.app import exec_watched, lower_priority

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
STAGGER_S = 13.0  # demo beds start this far apart in the 222 s synthetic scenario: a mix of rhythms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(n: int, stack: ExitStack, niceness: int = 0) -> str:
    """A fleet worker and ``n`` synthetic patients on free ports (``niceness`` added to their
    nice value: the benchmark's load generators yield to the station it measures); the worker's
    event endpoint."""
    chunks, events = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    commands = [
        ["ecg_monitor.workers.cli", "--chunks", chunks, "--events", events],
        ["ecg_monitor.fleet.cli", "--patients", str(n), "--connect", chunks, "--stagger", f"{STAGGER_S:g}"],
    ]
    for module, *args in commands:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], preexec_fn=lambda: os.nice(niceness))
        stack.callback(_stop, proc)
    return events


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_station(endpoints: list[str], fps: float, screenshot: Path | None, duration_s: float) -> int:
    import pyqtgraph as pg

    from ecg_monitor.gui.subscriber import Subscriber
    from ecg_monitor.station.window import StationView

    app = pg.mkQApp("ecg-monitor-station")
    for sig in (signal.SIGINT, signal.SIGTERM):  # run by the watcher's ticks; --demo's processes then stop
        signal.signal(sig, lambda *_: app.quit())
    view = StationView(fps=fps)
    subscriber = Subscriber(endpoints)
    view.attach(subscriber)
    view.show()
    result = {"rc": 0}
    started = time.monotonic()

    def check() -> None:
        first = view.first_message_at
        if screenshot is None:
            return
        if first is not None and time.monotonic() - first >= duration_s:
            result["rc"] = save_screenshot(view, screenshot)
            app.quit()
        elif first is None and time.monotonic() - started > max(60.0, duration_s):
            print("ecg-monitor-station: no fleet worker message arrived; no screenshot", file=sys.stderr)
            result["rc"] = 1
            app.quit()

    exec_watched(app, view, check, 100)
    return result["rc"]


def save_screenshot(view, path: Path) -> int:
    """Grab the window, flashing alarms in their lit half, into ``path`` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for tile in view.tiles.values():
        tile.still = True
    view.frame()
    ok = view.grab().save(str(path), "PNG")
    if not ok:
        print(f"ecg-monitor-station: could not write {path}", file=sys.stderr)
        return 1
    alarms = sum(r.alarm.shown for r in view.ward.alarms())
    print(f"ecg-monitor-station: saved {path}: {len(view.tiles)} patients, {alarms} alarms shown")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecg-monitor-station", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", action="append", metavar="ENDPOINT",
                        help=f"a fleet worker's event (PUB) endpoint; repeatable (default {DEFAULT_ENDPOINT})")
    parser.add_argument("--demo", type=int, metavar="N", help="start a worker and N synthetic patients too")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    parser.add_argument("--screenshot", type=Path, metavar="PATH", help="save a PNG after --duration s and exit")
    parser.add_argument("--duration", type=float, default=30.0, metavar="SEC",
                        help="seconds of data before the screenshot (default 30)")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        endpoints = args.endpoint or []
        if args.demo:
            endpoints.append(start_demo(args.demo, stack))
        lower_priority()  # after starting the demo: the worker keeps its priority
        return run_station(endpoints or [DEFAULT_ENDPOINT], args.fps, args.screenshot, args.duration)


if __name__ == "__main__":
    sys.exit(main())
