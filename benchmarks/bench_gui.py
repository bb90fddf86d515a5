"""Live view cost: its frame rate and CPU share at real-time pace, and the worker's latency with
and without the view attached.

Runs the real monitor headless (streamer -> ZeroMQ -> worker -> console + alarm log, separate
processes) on one record at ``--speed 1`` on fixed endpoints, in pairs of runs (``--repeats``):

* once alone: the worker's per-beat compute and end-to-end latency from ``--stats-json``;
* once with a live view (the real ``LiveView`` + ``Subscriber``, offscreen unless a display is
  set) subscribed to the worker as one more process, which reports its frame rate (paints of the
  trace per second) and its CPU time over wall time.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py --data-dir ../shared/data/mitdb --record 208 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_runtime import latency_line, run_monitor  # the sibling script (this folder is on sys.path)

BENCH = Path(__file__).resolve()
CHUNK = 18  # samples per message, the monitor's default (50 ms at 360 Hz)


def view_child(endpoint: str, seconds: float, out: Path) -> int:
    """Run the live view for ``seconds`` after its first message; write fps and CPU share."""
    import pyqtgraph as pg
    from PySide6 import QtCore

    from ecg_monitor.gui.app import lower_priority
    from ecg_monitor.gui.subscriber import Subscriber
    from ecg_monitor.gui.window import LiveView

    lower_priority()  # as run_live_view does
    app = pg.mkQApp("bench-gui")
    view = LiveView()
    view.attach(Subscriber([endpoint]))
    view.show()
    marks: list[tuple[float, float, int, int]] = []  # (wall, cpu, trace paints, frames) each second

    def sample() -> None:
        if view.subscriber is None or view.subscriber.last_message_at is None:
            return  # not streaming yet
        marks.append((time.monotonic(), time.process_time(), view.trace.paints, view.frames))
        if marks[-1][0] - marks[0][0] >= seconds or view.status.get("source_state") == "ended":
            app.quit()

    clock = QtCore.QTimer()
    clock.timeout.connect(sample)
    clock.start(1000)
    app.exec()
    view.close()
    if len(marks) < 2:
        print("bench_gui view: no data arrived", file=sys.stderr)
        return 1
    per_s = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(marks, marks[1:])]
    wall = marks[-1][0] - marks[0][0]
    out.write_text(json.dumps({
        "seconds": wall,
        "fps_mean": (marks[-1][2] - marks[0][2]) / wall,
        "fps_min_1s": min(per_s),
        "ticks_per_s": (marks[-1][3] - marks[0][3]) / wall,
        "cpu_share": (marks[-1][1] - marks[0][1]) / wall,
        "view_dropped_s": view.view_dropped / view.trace.fs,
    }))
    return 0


def measure(args: argparse.Namespace, with_view: bool) -> tuple[dict, dict | None]:
    """One headless monitor run at --speed 1; with ``with_view`` a live view subscribes too."""
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
        tmp_path = Path(tmp)
        chunks, events = f"ipc://{tmp}/chunks", f"ipc://{tmp}/events"
        view = None
        if with_view:  # subscribes first; ZeroMQ connects once the worker binds
            view = subprocess.Popen([sys.executable, str(BENCH), "--view-child", events,
                                     "--seconds", str(args.seconds - 2), "--out", str(tmp_path / "view.json")])
        stats = run_monitor(args.record, args.data_dir, "1", args.seconds, CHUNK,
                            ("--chunks-endpoint", chunks, "--events-endpoint", events), tmp_path)
        shown = None
        if view is not None:
            if view.wait(timeout=60) != 0:
                raise RuntimeError("the view process failed")
            shown = json.loads((tmp_path / "view.json").read_text())
        return stats, shown


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--record", default="208")
    p.add_argument("--seconds", type=float, default=60.0, help="signal streamed at --speed 1 per run")
    p.add_argument("--repeats", type=int, default=2, help="pairs of runs (without, with the view)")
    p.add_argument("--view-child", metavar="ENDPOINT", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.view_child:
        return view_child(args.view_child, args.seconds, args.out)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    p99: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    for run in range(args.repeats):
        for with_view in (False, True):  # alternated, so a busy spell of the machine hits both
            stats, shown = measure(args, with_view)
            label = "with the live view" if with_view else "without a view"
            print(f"run {run + 1}: record {args.record}, {stats['signal_s']:.0f} s at --speed 1, {label}:")
            for key in ("compute", "end_to_end"):
                print(latency_line(key.replace("_", "-"), stats["latency_ms"][key]))
                p99[with_view].setdefault(key, []).append(stats["latency_ms"][key]["p99"])
            if shown is not None:
                cores = os.cpu_count() or 1
                print(f"  live view: {shown['fps_mean']:.1f} fps mean, {shown['fps_min_1s']:.1f} fps worst second, "
                      f"CPU {100 * shown['cpu_share']:.1f} % of one core ({100 * shown['cpu_share'] / cores:.1f} % "
                      f"of the {cores}-core machine) over {shown['seconds']:.0f} s; "
                      f"samples it lost {shown['view_dropped_s']:.1f} s")
    for key in ("compute", "end_to_end"):
        alone, viewed = (statistics.median(p99[v][key]) for v in (False, True))
        print(f"worker {key.replace('_', '-')} p99, median of {args.repeats} runs: {alone:.2f} ms without a view, "
              f"{viewed:.2f} ms with it ({viewed - alone:+.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
