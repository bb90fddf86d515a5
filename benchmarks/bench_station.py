"""Central station cost: frame rate and CPU share with N patients streaming at real time.

Starts a fleet worker and N synthetic patients (``ecg-monitor-station --demo``'s processes), then
runs the real ``StationView`` + ``Subscriber`` in this process (offscreen unless a display is set)
and measures, once every tile exists, for ``--seconds``: frame-clock ticks per second, paints per
tile per second (mean and the slowest tile), and this process's CPU time over wall time (and per
frame, draining included). The worker and the patients run at nice +10: they are the load, not
what is measured; on a machine with other busy processes the frame clock still starves.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_station.py --patients 32 --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()

    import pyqtgraph as pg

    from ecg_monitor.gui.app import exec_watched
    from ecg_monitor.gui.subscriber import Subscriber
    from ecg_monitor.station.launch import start_demo
    from ecg_monitor.station.window import StationView

    with ExitStack() as stack:
        endpoint = start_demo(args.patients, stack, niceness=10)
        app = pg.mkQApp("bench-station")
        view = StationView(fps=args.fps)
        view.attach(Subscriber([endpoint]))
        view.show()
        marks: list[tuple[float, float, int, dict[str, int]]] = []  # (wall, cpu, frames, paints per tile)
        started = time.monotonic()

        def sample() -> None:
            if len(view.tiles) < args.patients:
                if time.monotonic() - started > 60:
                    app.quit()
                return
            marks.append((time.monotonic(), time.process_time(), view.frames,
                          {k: t.paints for k, t in view.tiles.items()}))
            if marks[-1][0] - marks[0][0] >= args.seconds:
                app.quit()

        exec_watched(app, view, sample, 1000)
    if len(marks) < 2:
        print(f"bench_station: only {len(view.tiles)} of {args.patients} patients appeared", file=sys.stderr)
        return 1
    (w0, c0, f0, p0), (w1, c1, f1, p1) = marks[0], marks[-1]
    wall = w1 - w0
    per_tile = sorted((p1[k] - p0[k]) / wall for k in p1)
    print(f"{args.patients} patients, {wall:.0f} s: frame clock {(f1 - f0) / wall:.1f} fps, tiles painted "
          f"{sum(per_tile) / len(per_tile):.1f} fps (slowest tile {per_tile[0]:.1f}), "
          f"station CPU {100 * (c1 - c0) / wall:.0f} % of one core ({1000 * (c1 - c0) / max(f1 - f0, 1):.1f} ms per frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
