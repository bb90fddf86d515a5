"""Entry point of the live view: a Qt application subscribed to the worker's event endpoint.

``ecg-monitor`` (without ``--headless``) runs :func:`run_live_view` as one more subscriber
process; it never talks back to the worker, so the worker runs the same with or without it.
Its only outgoing messages are source requests to the supervisor (``ViewOptions.control``).
With ``--screenshot PATH`` the view saves a PNG of its window once it has shown ``--duration``
seconds of data (or the source ended) and exits: that works offscreen (``QT_QPA_PLATFORM``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt is imported in the view's process only, when it runs
    from ecg_monitor.gui.window import LiveView

DEFAULT_SCREENSHOT_S = 20.0
VIEW_NICENESS = 10  # added to the view process's nice value
SETTLE_S = 0.3  # after enough data: let the sweep catch up and the latency panel redraw


@dataclass(frozen=True)
class ViewOptions:
    """What ``add_gui_arguments`` parses, for :func:`run_live_view`."""

    fps: float = 50.0
    grid: bool = True
    screenshot: Path | None = None
    duration_s: float | None = None  # seconds of data before the screenshot
    timeout_s: float = 120.0  # give up on a screenshot when no data comes for this long
    control: str | None = None  # the supervisor's control endpoint; None: source cannot be changed


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    """The view's options; ``--duration`` is the source's (seconds of signal to stream)."""
    g = parser.add_argument_group("live view")
    g.add_argument("--screenshot", metavar="PATH", type=Path,
                   help="save a PNG of the window after --duration seconds of data "
                        f"(default {DEFAULT_SCREENSHOT_S:g}) and exit; works offscreen")
    g.add_argument("--fps", type=float, default=50.0, help="view frame rate (default 50)")
    g.add_argument("--no-grid", action="store_true", help="no ECG-paper grid behind the trace")


def view_options(args: argparse.Namespace, control: str | None = None) -> ViewOptions:
    """The parsed options, and the endpoint where source requests go (see ``ecg_monitor.app.control``)."""
    duration = getattr(args, "duration", None)
    if args.screenshot is not None and duration is None:
        duration = DEFAULT_SCREENSHOT_S
    return ViewOptions(fps=args.fps, grid=not args.no_grid, screenshot=args.screenshot, duration_s=duration,
                       control=control)


QUIET_QT_MESSAGES = ("propagateSizeHints",)  # offscreen platform, once per resize: not the user's concern


def quiet_qt_messages() -> None:
    """Pass Qt's messages on to stderr, except the platform noise in ``QUIET_QT_MESSAGES``."""
    from PySide6 import QtCore

    def handler(_mode, _context, message: str) -> None:
        if not any(text in message for text in QUIET_QT_MESSAGES):
            print(message, file=sys.stderr, flush=True)

    QtCore.qInstallMessageHandler(handler)


def lower_priority() -> None:
    """Let the worker and the streamer win every contest for a core: a late frame is a frame
    drawn 20 ms later, a late worker is a late alarm."""
    if hasattr(os, "nice"):
        os.nice(VIEW_NICENESS)


def run_live_view(endpoints: str | Sequence[str], options: ViewOptions = ViewOptions(),
                  stop: Callable[[], bool] | None = None, ready: Callable[[], None] | None = None) -> int:
    """Show the live view until its window is closed, ``stop()`` is true or the screenshot is saved.

    ``ready()`` is called once the view is subscribed, so a supervisor can start the source
    only then and the view sees the stream from its first sample. Returns 0, or 1 when a
    screenshot was asked for and could not be taken (no data came).

    Runs in the view's own process (it lowers that process's CPU priority).
    """
    import pyqtgraph as pg

    from ecg_monitor.app.control import ControlClient
    from ecg_monitor.gui.subscriber import Subscriber
    from ecg_monitor.gui.window import LiveView

    lower_priority()
    quiet_qt_messages()
    app = pg.mkQApp("ecg-monitor")
    view = LiveView(fps=options.fps, grid=options.grid)
    subscriber = Subscriber([endpoints] if isinstance(endpoints, str) else endpoints)
    view.attach(subscriber)
    if options.control is not None:
        view.attach_control(ControlClient(options.control))
    view.show()
    if ready is not None:
        ready()
    result = {"rc": 0}
    started = time.monotonic()
    ready_since: list[float] = []  # when enough data had arrived for the screenshot

    def check() -> None:
        if stop is not None and stop():
            app.quit()
        if options.screenshot is None:
            return
        now = time.monotonic()
        if not ready_since and _has_enough(view, options.duration_s):
            ready_since.append(now)
        silent_s = now - (subscriber.last_message_at or started)
        if silent_s > options.timeout_s or (ready_since and now - ready_since[0] >= SETTLE_S):
            result["rc"] = save_screenshot(view, options.screenshot)
            app.quit()

    exec_watched(app, view, check, 50)
    return result["rc"]


def exec_watched(app, view, check: Callable[[], None], every_ms: int) -> None:
    """Run Qt's event loop, calling ``check`` every ``every_ms`` (it quits the app when done);
    the window is closed however the loop ends."""
    from PySide6 import QtCore

    watcher = QtCore.QTimer()
    watcher.timeout.connect(check)
    watcher.start(every_ms)
    try:
        app.exec()
    finally:
        watcher.stop()
        view.close()


def _has_enough(view: LiveView, duration_s: float | None) -> bool:
    """The view holds ``duration_s`` seconds of data, or the source said it ended."""
    if view.status.get("source_state") == "ended":
        return True
    return duration_s is not None and view.data_seconds >= duration_s - 1.0 / view.trace.fs


def save_screenshot(view: LiveView, path: Path) -> int:
    """Grab the window into ``path`` (PNG); 1 and a message when there was nothing to show."""
    path.parent.mkdir(parents=True, exist_ok=True)
    view.frame()
    view.banner.refresh(view.board, time.monotonic(), still=True)
    ok = view.grab().save(str(path), "PNG")
    if not ok:
        print(f"ecg-monitor view: could not write {path}", file=sys.stderr)
        return 1
    if view.data_seconds == 0.0:
        print(f"ecg-monitor view: no data arrived; {path} shows an empty monitor", file=sys.stderr)
        return 1
    print(f"ecg-monitor view: saved {path} after {view.data_seconds:.1f} s of data")
    return 0
