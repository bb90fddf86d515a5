"""The live view fed by a real detector worker over ZeroMQ, its screenshot option, and its
source controls driving a real monitor."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtCore, QtGui  # noqa: E402

from ecg_monitor.app import runtime  # noqa: E402
from ecg_monitor.app.control import ControlClient  # noqa: E402
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
    cmd = [sys.executable, "-m", "ecg_monitor.app.cli", "--demo", "--speed", "4", "--duration", "6",
           "--screenshot", str(out), "--alarms-csv", str(tmp_path / "alarms.csv")]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"saved {out}" in done.stdout
    image = QtGui.QImage(str(out))
    assert out.stat().st_size > 10_000 and image.width() >= 1000 and image.height() >= 600
    assert count_pixels(image, colors.TRACE) > 500  # the trace was drawn, not an empty window


@pytest.fixture
def monitored_view(qtbot, tmp_path, data_dir) -> Iterator[tuple[LiveView, Path]]:
    """A headless monitor playing the synthetic device at 4x, and a live view of it whose controls
    send source requests to that monitor's supervisor; yields the view and the monitor's log."""
    log = tmp_path / "monitor.log"
    cmd = [sys.executable, "-m", "ecg_monitor.app.cli", "--demo", "--headless", "--speed", "4",
           "--data-dir", str(data_dir), "--alarms-csv", str(tmp_path / "alarms.csv")]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"endpoints \S+ (ipc://\S+) (ipc://\S+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        view = LiveView()
        qtbot.addWidget(view)
        view.attach(Subscriber([m.group(1)]))
        view.attach_control(ControlClient(m.group(2)))
        view.show()
        qtbot.waitUntil(lambda: view.status.get("source") == "synthetic", timeout=30000)
        yield view, log
        view.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 143, log.read_text()  # stopped by SIGTERM


def apply_source(qtbot, view: LiveView, kind: str, record: str = "", speed: str = "1") -> None:
    """Choose a source and a speed in the controls and press Apply, as the operator does."""
    c = view.controls
    c.kind.setCurrentText(kind)
    c.record.setCurrentText(record)
    c.new_speed.setCurrentText(speed)
    qtbot.mouseClick(c.apply, QtCore.Qt.MouseButton.LeftButton)


def test_apply_switches_the_monitor_from_the_synthetic_device_to_a_replay(qtbot, monitored_view) -> None:
    view, log = monitored_view
    assert view.controls.apply.isEnabled()
    apply_source(qtbot, view, "replay", "100", "10")
    qtbot.waitUntil(lambda: view.controls.reply.text() == "ok: replay:100 at 360 Hz, speed 10", timeout=15000)
    qtbot.waitUntil(lambda: view.status.get("source") == "replay:100"
                    and sum(view.status.get("beats_by_class", {}).values()) >= 10, timeout=20000)
    assert view.status["source_state"] == "connected"
    assert view.stream is not None and view.stream[0] == "replay:100"  # the trace follows
    assert "source switched: replay:100 at 360 Hz, speed 10" in log.read_text()


def test_a_bad_record_is_refused_and_the_current_source_keeps_streaming(qtbot, monitored_view) -> None:
    view, log = monitored_view
    apply_source(qtbot, view, "replay", "999")
    qtbot.waitUntil(lambda: view.controls.reply.text().startswith("refused: record '999' not found"),
                    timeout=15000)
    samples = view.status["samples"]
    qtbot.waitUntil(lambda: view.status["samples"] > samples + 2 * 360, timeout=10000)
    assert view.status["source"] == "synthetic" and view.status["source_state"] == "connected"
    assert "refused: record '999' not found" in log.read_text()
