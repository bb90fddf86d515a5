"""``ecg-monitor-station``: the central station, reading fleet workers' results over ZeroMQ or NATS.

    ecg-monitor-station --endpoint tcp://127.0.0.1:5556                   # a running ZeroMQ fleet worker
    ecg-monitor-station --transport nats --nats-url nats://station:4222   # every worker on a NATS server
    ecg-monitor-station --demo 16                                         # ZeroMQ worker + 16 synthetic beds
    ecg-monitor-station --transport nats --demo 16                        # nats-server, 2 workers, alarm log, 16 beds
    ecg-monitor --station --fleet 16 --demo                               # the same (--station means --transport nats)
    ecg-monitor-station --demo 16 --screenshot docs/screenshots/station.png --duration 40

``--demo N`` starts the processes behind the station on this machine (see
:mod:`ecg_monitor.station.launch`; on NATS a local nats-server unless ``--nats-url`` is given) and
stops them when the window closes or on Ctrl-C / SIGTERM (exit code 130 / 143). ``--screenshot``
saves a PNG after ``--duration`` seconds of data and exits; it works offscreen
(``QT_QPA_PLATFORM=offscreen``). An unreachable NATS server is a one-line error naming the URL
(exit code 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from ecg_monitor.app import runtime
from ecg_monitor.gui.app import exec_watched, lower_priority, quiet_qt_messages
from ecg_monitor.gui.system_libs import display_problem
from ecg_monitor.station import launch
from ecg_monitor.transport.base import EventReader
from ecg_monitor.workers.cli import DEFAULT_NATS_URL, add_transport_arguments

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


def open_reader(args: argparse.Namespace, endpoints: list[str]) -> EventReader:
    if args.transport == "nats":
        from ecg_monitor.transport.nats import NatsEventReader
        return NatsEventReader(args.nats_url, args.partitions)
    from ecg_monitor.gui.subscriber import Subscriber
    return Subscriber(endpoints or [DEFAULT_ENDPOINT])


def run_station(reader: EventReader, fps: float, screenshot: Path | None, duration_s: float,
                stop: runtime.StopFlag, prog: str = "ecg-monitor-station") -> int:
    import pyqtgraph as pg

    from ecg_monitor.station.window import StationView

    app = pg.mkQApp("ecg-monitor-station")
    quiet_qt_messages()
    result = {"rc": 0}
    view = StationView(fps=fps)
    view.attach(reader)
    view.show()
    started = time.monotonic()

    def check() -> None:  # every 100 ms, so a stop asked for by a signal is seen within 0.1 s
        if stop:
            result["rc"] = stop.exit_code
            app.quit()
            return
        if screenshot is None:
            return
        first = view.first_message_at
        if first is not None and time.monotonic() - first >= duration_s:
            result["rc"] = save_screenshot(view, screenshot, prog)
            app.quit()
        elif first is None and time.monotonic() - started > max(60.0, duration_s):
            print(f"{prog}: no fleet worker message arrived; no screenshot", file=sys.stderr)
            result["rc"] = 1
            app.quit()

    exec_watched(app, view, check, 100)
    return result["rc"]


def save_screenshot(view, path: Path, prog: str = "ecg-monitor-station") -> int:
    """Grab the window, flashing alarms in their lit half, into ``path`` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for tile in view.tiles.values():
        tile.still = True
    view.frame()
    ok = view.grab().save(str(path), "PNG")
    if not ok:
        print(f"{prog}: could not write {path}", file=sys.stderr)
        return 1
    alarms = sum(r.alarm.shown for r in view.ward.alarms())
    beating = sum(1 for p in view.ward.patients.values() if sum((p.status.get("beats_by_class") or {}).values()))
    print(f"{prog}: saved {path}: {len(view.tiles)} patients ({beating} with beats), "
          f"{alarms} alarms shown | {view.summary_text()}", flush=True)
    return 0


def main(argv: list[str] | None = None, prog: str = "ecg-monitor-station") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_transport_arguments(parser)
    parser.set_defaults(nats_url=None)  # given: that server; else a local one for --demo, or the default
    parser.add_argument("--endpoint", action="append", metavar="ENDPOINT",
                        help=f"zmq: a fleet worker's event (PUB) endpoint; repeatable (default {DEFAULT_ENDPOINT})")
    parser.add_argument("--demo", type=int, metavar="N", help="start N patients and the workers behind them too")
    parser.add_argument("--workers", type=int, default=2, help="nats --demo: worker processes (default 2)")
    parser.add_argument("--data-dir", help="nats --demo: replay records from here too (default $ECG_MONITOR_DATA)")
    parser.add_argument("--alarms-csv", type=Path, metavar="PATH",
                        help="nats --demo: the ward alarm log (default ecg-monitor-ward-alarms.csv)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    parser.add_argument("--screenshot", type=Path, metavar="PATH", help="save a PNG after --duration s and exit")
    parser.add_argument("--duration", type=float, default=30.0, metavar="SEC",
                        help="seconds of data before the screenshot (default 30)")
    args = parser.parse_args(argv)
    problem = display_problem()
    if problem:
        print(f"{prog}: error: {problem}; the station is a window (run it where one can open, or with "
              f"QT_QPA_PLATFORM=offscreen --screenshot PATH)", file=sys.stderr)
        return 2
    # a signal only sets the flag (an exception raised in a handler could land inside a Qt
    # callback, which swallows it); start-up checks it between steps, the window every 0.1 s
    stop = runtime.StopFlag(child=False, name="ecg-station")
    with ExitStack() as stack:
        return _run(args, stack, prog, stop)


def _run(args: argparse.Namespace, stack: ExitStack, prog: str, stop: runtime.StopFlag) -> int:
    endpoints = args.endpoint or []
    try:
        if args.demo and args.transport == "nats":
            from ecg_monitor.transport.natsclient import probe
            if args.nats_url is not None:
                probe(args.nats_url)  # unreachable: one line, nothing started
            ward = launch.start_server(stack) if args.nats_url is None else launch.Ward(args.nats_url)
            args.nats_url = ward.url
            # before the reader: children are forked while this process has no other thread
            launch.start_nats_ward(ward, args.demo, stack, args.partitions, args.workers, args.data_dir,
                                   args.alarms_csv)
            print(f"{prog}: {ward.line()}", flush=True)
        elif args.demo:
            endpoints.append(launch.start_demo(args.demo, stack))
        args.nats_url = args.nats_url or DEFAULT_NATS_URL
        reader = open_reader(args, endpoints)
    except RuntimeError as exc:  # NatsUnavailable: one line naming the URL
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if stop:
        reader.close()
        return stop.exit_code
    lower_priority()  # after starting the demo: the workers keep their priority
    return run_station(reader, args.fps, args.screenshot, args.duration, stop, prog)

if __name__ == "__main__":
    sys.exit(main())
