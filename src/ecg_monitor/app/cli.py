"""``ecg-monitor``: start and supervise the monitor's processes.

    source --(streamer)--> chunks --> detector worker --> events --> live view | alarm log | console

The source is opened (record read, arguments checked) and the beat classifier loaded before
any process starts, so a bad record, folder or model is a one-line error. Then the worker
starts, then the subscribers (alarm log; live view, or the console with ``--headless``), and the
streamer last, once everyone listens. A worker that dies is restarted at once by the
supervisor (its endpoints are rebound, the others reconnect by themselves); the event is
printed and logged. Ctrl-C or SIGTERM stops every process, streamer
first, and removes the ipc sockets. A finite source (a replay) ends the headless monitor when
the console and the alarm log have seen its end; the live view stays open after it.

The live view's Apply button sends a source request to the supervisor (``control.py``): the
new source is opened first (a bad one is refused, the current one keeps streaming), then the
streamer is replaced by one playing the new source, from its start, at the requested speed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from ecg_monitor import PIPELINE_FS, __version__
from ecg_monitor.app import control, runtime
from ecg_monitor.app.supervisor import STOP_TIMEOUT_S, Child, Supervisor, log
from ecg_monitor.detector import worker
from ecg_monitor.detector.classifier import ModelError
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.gui.system_libs import display_problem
from ecg_monitor.outputs import alarm_log, console
from ecg_monitor.replay.records import RecordError, resolve_data_dir
from ecg_monitor.replay.source import ReplaySource
from ecg_monitor.streamer import publisher
from ecg_monitor.streamer.source import Source, SourceError
from ecg_monitor.streamer.sources import add_source_arguments, open_source

DEFAULT_ALARM_LOG = "ecg-monitor-alarms.csv"
END_TIMEOUT_S = 60.0  # after the streamer died, wait this long for the subscribers to see the end


def _live_view():
    """The GUI's entry module, or the reason it cannot run here (then the monitor runs headless)."""
    try:
        from ecg_monitor.gui import app
    except ImportError as exc:
        return None, str(exc)
    return app, ""


def _run_view(events: str, options, ready) -> int:
    """The live view as a supervised child (Qt is imported only in this process)."""
    stop = runtime.StopFlag(child=True, name="ecg-live-view")
    app, _ = _live_view()
    return app.run_live_view(events, options, stop=lambda: bool(stop), ready=ready.set)


DESCRIPTION = ("Real-time ECG monitor: plays a MIT-BIH record, a serial device or a synthetic patient "
               "through a beat detector and classifier, with alarms, a live view and a CSV alarm log.")
EXAMPLES = """examples:
  ecg-monitor --demo                                   synthetic patient, live view (every alarm shows)
  ecg-monitor --demo --headless --duration 60          the same on the console, for 60 s of signal
  ecg-monitor --replay 208 --data-dir ../shared/data/mitdb --speed 4
  ecg-monitor --replay 208 --headless --speed max --data-dir ../shared/data/mitdb \\
      --beats-csv out/208-beats.csv --alarms-csv out/208-alarms.csv --stats-json out/208-stats.json
  ecg-monitor --serial /dev/ttyUSB0 --profile ad8232-esp32
  ecg-monitor --station --fleet 16 --demo              central station: nats-server, 2 workers, alarm log,
                                                       16 patients (see ecg-monitor --station --help)

Ctrl-C or SIGTERM stops every process (exit code 130 / 143). See README.md for the rest."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecg-monitor", description=DESCRIPTION, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_source_arguments(p)
    g = p.add_argument_group("outputs")
    g.add_argument("--headless", action="store_true", help="no live view: print status lines instead")
    g.add_argument("--alarms-csv", type=Path, default=Path(DEFAULT_ALARM_LOG),
                   help=f"alarm log, appended; missing folders are created (default {DEFAULT_ALARM_LOG} "
                        "in the current folder)")
    g.add_argument("--beats-csv", type=Path, help="headless: write every beat here (ecg-eval detect's columns)")
    g.add_argument("--stats-json", type=Path, help="headless: write latency/throughput and source counters here "
                                                   "at the end")
    g.add_argument("--status-every", type=float, default=2.0, metavar="SEC", help="headless status line period (default 2)")
    g = p.add_argument_group("endpoints (default: private ipc sockets)")
    g.add_argument("--chunks-endpoint", help="where the worker takes chunks, e.g. tcp://0.0.0.0:5555")
    g.add_argument("--events-endpoint", help="where the worker publishes, e.g. tcp://127.0.0.1:5556")
    g.add_argument("--remote-source", action="store_true",
                   help="start no streamer: take chunks from streamers on other machines that connect to "
                        "--chunks-endpoint (python -m ecg_monitor.streamer.publisher --connect ...)")
    app, _ = _live_view()
    if app is not None:
        app.add_gui_arguments(p)
    return p


def _endpoints(args: argparse.Namespace) -> runtime.Endpoints:
    """The command line's chunk and event endpoints, private ipc for the rest (control always)."""
    private = runtime.Endpoints.private()
    return runtime.Endpoints(args.chunks_endpoint or private.chunks, args.events_endpoint or private.events,
                             private.control)


def _subscribers(args: argparse.Namespace, source: Source | None, endpoints: runtime.Endpoints) -> list[Child]:
    """The alarm log and the user's view (console when headless): what listens to the worker."""
    events = endpoints.events
    app, why = (None, "") if args.headless else _live_view()
    no_display = display_problem() if app is not None else ""
    if no_display:
        if getattr(args, "screenshot", None) is not None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
        else:
            app, why = None, no_display
    if app is None and not args.headless:
        log(f"live view unavailable ({why}); running headless")
    # Only the headless monitor ends with a finite source; the view can switch to another one.
    finite = app is None and source is not None and (source.duration_s is not None or args.duration is not None)
    subs = [Child("alarm-log", alarm_log.run, (alarm_log.AlarmLogConfig(events, args.alarms_csv,
                                                                         exit_on_end=finite),), restart=True)]
    if app is None:
        own_fs = source.record.source_fs if isinstance(source, ReplaySource) else None
        queueing = source is not None and not source.realtime and math.isinf(args.speed)
        cfg = console.ConsoleConfig(events, args.status_every, args.beats_csv, args.stats_json, own_fs,
                                    exit_on_end=finite, queueing=queueing)
        subs.append(Child("console", console.run, (cfg,)))
    else:
        subs.append(Child("live-view", _run_view, (events, app.view_options(args, endpoints.control))))
    return subs


class Feed:
    """The monitor's own source and the streamer child playing it (none with ``--remote-source``)."""

    def __init__(self, source: Source | None, args: argparse.Namespace, chunks: str) -> None:
        self.source, self.args, self.chunks = source, args, chunks
        self.streamer = None if source is None else Child("streamer", publisher.run, self._streamer_args())
        self.done: float | None = None  # when the streamer exited

    def _streamer_args(self) -> tuple:
        a = self.args
        return self.source, publisher.PublisherConfig(self.chunks, a.speed, a.chunk, a.duration)

    def describe(self) -> str:
        if self.source is None:
            return "waiting for remote streamers"
        speed = "max" if math.isinf(self.args.speed) else f"{self.args.speed:g}"
        return f"{self.source.source_id} at {self.source.fs:g} Hz, speed {speed}"

    def switch(self, sup: Supervisor, argv: list[str]) -> str:
        """Replace the streamer by one playing the source ``argv`` asks for; raise (and change
        nothing) when that source cannot be opened."""
        if self.streamer is None:
            raise SourceError("this monitor takes remote streamers (--remote-source): it plays no source")
        source, args = control.open_request(argv, self.args)
        sup.stop_child(self.streamer)
        sup.end_of_source(self.source, f"switched to {source.source_id}")
        self.source, self.args, self.done = source, args, None
        self.streamer.args = self._streamer_args()
        sup.start(self.streamer, wait=False)
        return self.describe()


def _serve(server: control.ControlServer, sup: Supervisor, feed: Feed, timeout_s: float) -> None:
    """Wait at most ``timeout_s`` for source requests and answer each one."""
    for peer, argv in server.receive(timeout_s):
        try:
            detail = feed.switch(sup, argv)
        except (SourceError, RecordError, ValueError) as exc:
            log(f"source request {' '.join(argv)!r} refused: {exc}")
            server.reply(peer, "refused", str(exc))
        else:
            log(f"source switched: {detail}")
            server.reply(peer, "ok", detail)


def supervise(args: argparse.Namespace, source: Source | None) -> int:
    """Run the processes until stopped, the view closes or a finite source has been consumed."""
    stop = runtime.StopFlag(child=False)
    endpoints = _endpoints(args)
    sup = Supervisor(endpoints, stop)
    wk = Child("worker", worker.run, (worker.WorkerConfig(endpoints.chunks, endpoints.events),), restart=True)
    subs = _subscribers(args, source, endpoints)
    alarms, view = subs[0], subs[-1]
    feed = Feed(source, args, endpoints.chunks)
    server = control.ControlServer(endpoints.control)
    try:
        sup.start(wk)
        for child in subs:
            sup.start(child, wait=False)
        sup.wait_ready(subs)
        if feed.streamer is not None:
            sup.start(feed.streamer, wait=False)
        data = f"; data {resolve_data_dir(args.data_dir)}" if isinstance(source, ReplaySource) else ""
        log(f"{feed.describe()}{data}; worker pid {wk.proc.pid}; alarm log {args.alarms_csv.resolve()}; "
            f"endpoints {endpoints.chunks} {endpoints.events} {endpoints.control}")
        while not stop and view.proc.is_alive():
            _serve(server, sup, feed, 0.05)
            sup.keep_alive(wk, subs)
            streamer = feed.streamer
            if not stop and streamer is not None and feed.done is None and not streamer.proc.is_alive():
                feed.done = time.monotonic()
                log(f"streamer exited with code {streamer.proc.exitcode}: source treated as ended")
                sup.end_of_source(feed.source, f"streamer exited with code {streamer.proc.exitcode}")
            if (alarms.args[0].exit_on_end and feed.done is not None
                    and time.monotonic() - feed.done > END_TIMEOUT_S):
                log("the source ended but the subscribers did not finish; stopping")
                break
        if not stop and view.proc.exitcode not in (None, 0):
            log(f"{view.name} exited with code {view.proc.exitcode}")
        if not stop and alarms.args[0].exit_on_end:
            alarms.proc.join(STOP_TIMEOUT_S)  # a finished replay: let the log write its last rows
    except RuntimeError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        server.close()
        sup.shutdown()
        endpoints.cleanup()
    if alarms.proc.exitcode == runtime.EXIT_DATA_LOST:
        log(f"ALARM ROWS LOST: the alarm log {args.alarms_csv} is incomplete (see above); exit code 1")
        return 1
    log("stopped" if stop else "done")
    return stop.exit_code


def prepare_outputs(args: argparse.Namespace) -> None:
    """Create the folders of the output files and open the alarm log for appending, before any
    process starts: a path that cannot be written is one line now, not a traceback at the end."""
    for option, path in (("--beats-csv", args.beats_csv), ("--stats-json", args.stats_json),
                         ("--alarms-csv", args.alarms_csv)):
        if path is None:
            continue
        try:
            if option == "--alarms-csv":
                alarm_log.check_writable(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"{option} {path}: cannot be written ({exc.strerror or exc})") from None


def check_view(args: argparse.Namespace) -> None:
    """Refuse a live view whose system libraries are missing (Qt would abort in the view)."""
    if args.headless or _live_view()[0] is None or display_problem():
        return  # no view, or one that runs headless or offscreen
    from ecg_monitor.gui.system_libs import xcb_problem

    problem = xcb_problem()
    if problem:
        raise SourceError(problem)


def station_main(argv: list[str]) -> int:
    """``ecg-monitor --station [--fleet N] [--demo]``: the central station on NATS (``--demo``
    starts, on this machine, what feeds it: see :mod:`ecg_monitor.station.launch`)."""
    from ecg_monitor.station import cli as station

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--station", action="store_true")
    p.add_argument("--fleet", type=int, default=16)
    p.add_argument("--demo", action="store_true")
    own, rest = p.parse_known_args(argv)
    demo = ["--demo", str(own.fleet)] if own.demo else []
    return station.main(["--transport", "nats", *demo, *rest], prog="ecg-monitor --station")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--station" in argv:
        return station_main(argv)
    args = build_parser().parse_args(argv)
    try:
        if args.remote_source and not args.chunks_endpoint:
            raise SourceError("--remote-source needs --chunks-endpoint, e.g. tcp://0.0.0.0:5555")
        source = None if args.remote_source else open_source(args)
        DetectorPipeline(source.fs if source else PIPELINE_FS)  # the models load before anything starts
        prepare_outputs(args)
        check_view(args)
    except (SourceError, RecordError, ModelError, ValueError) as exc:
        print(f"ecg-monitor: error: {exc}", file=sys.stderr)
        return 2
    return supervise(args, source)


if __name__ == "__main__":
    sys.exit(main())
