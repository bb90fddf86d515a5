"""The live view fed by a real detector worker over ZeroMQ, and its screenshot option."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtGui  # noqa: E402

from ecg_monitor import runtime  # noqa: E402
from ecg_monitor.detector import worker  # noqa: E402
from ecg_monitor.gui import colors  # noqa: E402
from ecg_monitor.gui.subscriber import Subscriber  # noqa: E402
from ecg_monitor.gui.window import LiveView  # noqa: E402
from ecg_monitor.streamer import publisher  # noqa: E402
from ecg_monitor.streamer.synthetic import SyntheticSource, scenario_times  # noqa: E402

SPAWN = mp.get_context("spawn")  # never fork a process that holds a QApplication
VT_START = next(start for start, _stop, rhythm in scenario_times() if rhythm == "vt")


def start_pipeline(source_start_s: float, seconds: float, speed: float) -> tuple[runtime.Endpoints, list]:
    """A real worker and a streamer playing the synthetic device, as separate processes."""
    ep = runtime.Endpoints.private()
    ready = SPAWN.Event()
    procs = [SPAWN.Process(target=worker.run, args=(worker.WorkerConfig(ep.chunks, ep.events, settle_s=0.3), ready))]
    procs[0].start()
    assert ready.wait(30), "worker did not start"
    source = SyntheticSource(seed=1, start_s=source_start_s)
    cfg = publisher.PublisherConfig(ep.chunks, speed=speed, duration_s=seconds)
    procs.append(SPAWN.Process(target=publisher.run, args=(source, cfg)))
    procs[1].start()
    return ep, procs


def stop_pipeline(ep: runtime.Endpoints, procs: list) -> None:
    for p in reversed(procs):
        p.terminate()
        p.join(10)
    ep.cleanup()


@pytest.fixture
def vt_stream() -> Iterator[runtime.Endpoints]:
    """The synthetic device from 25 s before its VT run to past it, at 4x real time."""
    ep, procs = start_pipeline(VT_START - 25.0, 40.0, speed=4.0)
    yield ep
    stop_pipeline(ep, procs)


def count_pixels(image: QtGui.QImage, color: str) -> int:
    """How many pixels of ``image`` are exactly ``color``."""
    rgb32 = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)  # keep it alive while read
    px = np.frombuffer(rgb32.constBits(), dtype=np.uint32).copy()
    return int((px == np.uint32(QtGui.QColor(color).rgb())).sum())


def test_real_worker_beats_in_class_colours_and_alarm_banner(qtbot, vt_stream) -> None:
    view = LiveView()
    qtbot.addWidget(view)
    sub = Subscriber([vt_stream.events])
    view.attach(sub)
    view.show()
    # Beats arrive, classified, and are drawn; the VT run raises a high-priority alarm.
    qtbot.waitUntil(lambda: any(b.label == "V" for b in view.trace.visible_beats()), timeout=30000)
    visible = view.trace.visible_beats()
    assert {b.label for b in visible} >= {"N", "V"}
    assert all(b.probabilities is not None and len(b.probabilities) == 5 for b in visible)
    # Each R mark is painted with its class colour, and V complexes are redrawn in V red.
    brushes = view.trace.r_marks.data["brush"]
    labels = [d.label for d in view.trace.r_marks.data["data"]]
    assert [b.color().name() for b in brushes] == [colors.class_color(lab) for lab in labels]
    image = view.trace.grab().toImage()
    assert count_pixels(image, colors.CLASS_COLORS["V"]) > 50
    assert count_pixels(image, colors.TRACE) > 500

    qtbot.waitUntil(lambda: view.banner.priority == "high", timeout=30000)
    alarm = view.board.banner_alarm()
    assert alarm is not None and alarm.priority == "high"
    assert view.banner.colors[0] in ("#ff0000", colors.PANEL)  # lit or dark half of the flash
    assert view.vitals.state.text() == "connected" and view.vitals.hr.text() != "--"
    assert sub.malformed == 0 and view.malformed == 0
    view.close()


def test_screenshot_option_writes_a_png(tmp_path) -> None:
    """``ecg-monitor --screenshot PATH --duration SEC``: the whole monitor, view offscreen."""
    out = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "ecg_monitor.monitor", "--demo", "--speed", "4", "--duration", "6",
           "--screenshot", str(out), "--alarms-csv", str(tmp_path / "alarms.csv")]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"saved {out}" in done.stdout
    image = QtGui.QImage(str(out))
    assert out.stat().st_size > 10_000 and image.width() >= 1000 and image.height() >= 600
    assert count_pixels(image, colors.TRACE) > 500  # the trace was drawn, not an empty window
