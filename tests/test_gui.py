"""Live view widgets, offscreen: window, trace buffer, alarm banner colours, acknowledge, inspector."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtCore, QtGui  # noqa: E402

from ecg_monitor.detector.episodes import PRIORITY  # noqa: E402
from ecg_monitor.gui import colors  # noqa: E402
from ecg_monitor.gui.qtcompat import check_pyside  # noqa: E402
from ecg_monitor.gui.trace import ShownBeat  # noqa: E402
from ecg_monitor.gui.window import LiveView  # noqa: E402
from ecg_monitor.streamer.messages import decode, encode  # noqa: E402

FS = 360.0
WORKER = {"source": "test", "worker": "1:0"}


def msg(kind: str, data: np.ndarray | None = None, **fields):
    """A message exactly as it comes off the wire (encoded, then decoded)."""
    return decode(encode(kind, {**WORKER, **fields}, data))


def alarm(priority: str, event: str = "onset", name: str = "ventricular_tachycardia", t: float = 12.0):
    return msg("alarm", alarm=name, priority=priority, event=event, sample=int(t * FS),
               record_time_s=t, heart_rate_bpm=172.0, detail="ventricular tachycardia")


@pytest.fixture
def view(qtbot) -> LiveView:
    v = LiveView(fs=FS)
    v.timer.stop()  # tests drive frames themselves
    qtbot.addWidget(v)
    v.show()
    qtbot.waitExposed(v)
    return v


def banner_pixel(view: LiveView) -> str:
    """Colour actually painted at the banner's left edge (no text there)."""
    image = view.banner.grab().toImage()
    return QtGui.QColor(image.pixel(4, image.height() // 2)).name()


def test_window_builds_and_renders_at_fixed_rate(qtbot) -> None:
    v = LiveView(fs=FS, fps=50)
    qtbot.addWidget(v)
    v.show()
    assert v.timer.interval() == 20 and v.timer.isActive()
    for name in ("trace", "banner", "vitals", "alarm_list", "inspector", "controls"):
        assert getattr(v, name).isVisible(), name
    assert not v.latency.isVisible()  # engineering panel: off until asked for
    qtbot.mouseClick(v.controls.engineering, QtCore.Qt.MouseButton.LeftButton)
    assert v.latency.isVisible() and v.processes.isVisible()
    x = np.sin(np.arange(3600) / 30.0)
    v.apply(msg("trace", x, start=0, fs=FS))
    qtbot.waitUntil(lambda: v.trace.cursor >= 3600 - int(0.2 * FS), timeout=3000)
    paints = v.trace.paints
    qtbot.wait(500)
    assert v.trace.paints > paints  # the sweep keeps drawing while it catches up / idles


def test_trace_records_gaps_and_ignores_duplicates(view: LiveView) -> None:
    tr = view.trace
    assert tr.append(0, np.ones(100)) == 0
    assert tr.append(150, np.ones(50)) == 50  # 50 samples never came: a gap
    assert np.isnan(tr.history.get(100, 150)).all() and tr.end == 200
    assert tr.append(180, np.full(40, 2.0)) == 0  # overlap: only the 20 new samples are kept
    assert tr.end == 220 and (tr.history.get(180, 200) == 1.0).all() and (tr.history.get(200, 220) == 2).all()
    _, y = tr.window(210, 0.1, 0.1)
    assert np.isnan(y[-10:]).all() and np.isfinite(y[: int(0.1 * FS) + 10]).any()


@pytest.mark.parametrize("priority, lit, dark_at", [("high", "#ff0000", 0.3), ("medium", "#ffff00", 1.0)])
def test_alarm_banner_flashes_in_iec_colour(view: LiveView, priority: str, lit: str, dark_at: float) -> None:
    view.apply(alarm(priority))
    view.banner.refresh(view.board, now=0.0)  # start of a flash period: lit
    assert view.banner.priority == priority and banner_pixel(view) == lit
    view.banner.refresh(view.board, now=dark_at)  # second half of the period: dark
    assert banner_pixel(view) == colors.PANEL
    assert "Ventricular tachycardia" in view.banner.label.text() and "HR" not in view.banner.label.text()


def test_low_priority_is_steady_cyan_and_high_wins(view: LiveView) -> None:
    view.apply(alarm("low", name="signal_noisy", t=3.0))
    for now in (0.0, 0.3, 1.0):
        view.banner.refresh(view.board, now)
        assert banner_pixel(view) == "#00ffff"
    view.apply(alarm("high", t=4.0))
    view.banner.refresh(view.board, 0.0)
    assert view.banner.priority == "high" and banner_pixel(view) == "#ff0000"


def test_noise_advisory_shows_as_a_low_priority_technical_alarm(view: LiveView) -> None:
    view.apply(alarm(PRIORITY["ecg_noisy"], name="ecg_noisy", t=3.0))
    view.banner.refresh(view.board, 0.0)
    assert view.banner.priority == "low" and banner_pixel(view) == "#00ffff"
    assert view.banner.label.text().startswith("ECG noisy")


def test_acknowledge_stops_flashing_and_clears_ended_alarm(view: LiveView, qtbot) -> None:
    view.apply(alarm("high"))
    view.apply(alarm("high", event="end", t=15.0))
    view.frame()
    view.banner.refresh(view.board, now=0.0)
    assert view.banner.priority == "high"  # ended but latched: nobody acknowledged it yet
    assert view.alarm_list.item(0, 3).text() == "ended 0:00:15, lasted 3.0 s"  # what ended, and how long it lasted
    assert "ENDED after 3.0 s" in view.banner.label.text()
    view.apply(alarm("medium", name="extreme_tachycardia", t=20.0))

    qtbot.mouseClick(view.banner.ack_button, QtCore.Qt.MouseButton.LeftButton)
    assert all(a.acknowledged for a in view.board.alarms.values())
    view.frame()
    view.banner.refresh(view.board, now=1.0)  # would be the dark half if it still flashed
    assert view.banner.priority == "medium" and banner_pixel(view) == "#ffff00"
    assert "ACK" in view.banner.label.text()
    assert all("ack" in view.alarm_list.item(r, 3).text() for r in range(2))

    view.apply(alarm("medium", event="end", name="extreme_tachycardia", t=25.0))
    view.banner.refresh(view.board, now=1.0)
    assert view.banner.priority is None and view.banner.label.text() == "No active alarms"


def test_audio_pause_counts_down(view: LiveView, qtbot) -> None:
    view.apply(alarm("high"))
    view.apply(alarm("medium", name="extreme_tachycardia"))
    view.apply(alarm("low", name="signal_noisy"))
    assert view.board.sound_interval(now=0.0) == colors.PRIORITY_STYLES["high"].burst_every_s
    assert view.banner.pause_button.text() == "Pause audio (2 min)"
    qtbot.mouseClick(view.banner.pause_button, QtCore.Qt.MouseButton.LeftButton)
    view.frame()
    assert view.banner.pause_button.text().startswith("AUDIO PAUSED 1:5")
    assert view.banner.pause_button.isChecked()
    assert view.board.sound_interval(now=time.monotonic()) is None
    assert view.board.sound_interval(now=time.monotonic() + 121.0) == 3.0
    high = next(a for a in view.board.alarms.values() if a.priority == "high")
    view.acknowledge(high.alarm_id)
    assert view.board.sound_interval(now=time.monotonic() + 121.0) == 8.0  # medium's bursts now
    medium = next(a for a in view.board.alarms.values() if a.priority == "medium")
    view.acknowledge(medium.alarm_id)
    assert view.board.sound_interval(now=time.monotonic() + 121.0) is None  # low never sounds
    view.apply(alarm("high", t=30.0))
    qtbot.mouseClick(view.banner.pause_button, QtCore.Qt.MouseButton.LeftButton)  # pressed again: resume
    view.frame()
    assert view.board.sound_interval(now=time.monotonic()) == colors.PRIORITY_STYLES["high"].burst_every_s
    assert not view.banner.pause_button.isChecked() and view.banner.pause_button.text() == "Pause audio (2 min)"


def test_status_fills_numbers_and_source_state(view: LiveView) -> None:
    view.apply(msg("status", incarnation=0, source_state="connected", samples=3600, record_time_s=10.0,
                   heart_rate_bpm=73.4, beats_by_class={"N": 11, "V": 3}, active_alarms=[],
                   continuity={"gaps": 2, "gap_samples": 180, "duplicates": 0, "malformed": 0},
                   latency_ms={}))
    view.frame()
    assert view.vitals.hr.text() == "73"
    assert view.vitals.counts["V"].text() == "3" and view.vitals.counts["S"].text() == "0"
    assert view.vitals.state.text() == "connected" and "gaps 2 (0.5 s)" in view.vitals.health.text()


def test_clicking_a_beat_opens_it_in_the_inspector(view: LiveView, qtbot) -> None:
    view.apply(msg("trace", np.sin(np.arange(2000) / 25.0), start=0, fs=FS))
    probs = [0.05, 0.05, 0.8, 0.05, 0.05]
    view.apply(msg("beats", fs=FS, beats=[
        {"sample": 900, "emitted_at": 1000, "label": "V", "search_back": False, "probabilities": probs,
         "t_received": 0.0}]))
    view.trace.advance(0.0)
    view.trace.redraw()
    assert view.trace.cursor > 900
    vb = view.trace.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QtCore.QPointF(900 / FS + 0.1, 0.0))  # 0.1 s off: nearest beat wins
    pos = view.trace.mapFromScene(scene)
    qtbot.mouseClick(view.trace.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    assert view.inspector.beat == ShownBeat(900, "V", tuple(probs))
    assert np.allclose(view.inspector.bars.opts["height"], probs)
    assert "V (ventricular)" in view.inspector.title.text()
    t, _ = view.inspector.curve.getData()
    assert t[0] < 0 < t[-1]


def test_inspector_without_model_metadata_says_so(qtbot, tmp_path) -> None:
    v = LiveView(fs=FS, saliency_path=tmp_path / "missing.json")
    qtbot.addWidget(v)
    v.timer.stop()
    v.trace.append(0, np.zeros(720))
    v.inspector.show_beat(ShownBeat(360, "N", None))
    assert "no saliency" in v.inspector.footnote.text() and "not found" in v.inspector.footnote.text()


def test_pyside_release_that_corrupts_refcounts_is_refused() -> None:
    with pytest.raises(ImportError, match="6.12.0"):
        check_pyside("6.12.0", (3, 11))
    check_pyside("6.12.0", (3, 12))
    check_pyside("6.11.3", (3, 11))


def test_freeze_stops_the_trace_but_not_data_or_alarms(view: LiveView, qtbot) -> None:
    view.apply(msg("trace", np.zeros(720), start=0, fs=FS))
    view.frame()
    frozen_at = view.trace.cursor
    assert frozen_at > 0
    qtbot.mouseClick(view.controls.pause, QtCore.Qt.MouseButton.LeftButton)
    assert view.frozen and view.controls.pause.text() == "Resume"
    view.apply(msg("trace", np.zeros(720), start=720, fs=FS))
    view.apply(alarm("high"))
    time.sleep(0.05)
    view.frame()
    assert view.trace.cursor == frozen_at and view.trace.end == 1440  # stored, not drawn
    assert view.banner.priority == "high"  # alarms never freeze
    qtbot.mouseClick(view.controls.pause, QtCore.Qt.MouseButton.LeftButton)
    view.frame()
    assert not view.frozen and view.trace.cursor > frozen_at


def test_subscriber_drops_malformed_messages_and_view_counts_its_gaps(view: LiveView, qtbot) -> None:
    import zmq

    from ecg_monitor.gui.subscriber import Subscriber

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = Subscriber([f"tcp://127.0.0.1:{port}"], context=ctx)
    view.attach(sub)
    frames = encode("trace", {**WORKER, "start": 0, "fs": FS}, np.zeros(36))
    qtbot.waitUntil(lambda: (pub.send_multipart(frames), sub.drain(view.apply))[1] > 0, timeout=5000)
    pub.send_multipart([b"trace", b"{not json"])  # garbage on a subscribed topic
    pub.send_multipart(encode("trace", {**WORKER, "start": 3600, "fs": FS}, np.zeros(36)))  # a jump
    qtbot.waitUntil(lambda: sub.drain(view.apply) > 0 and view.trace.end == 3636, timeout=5000)
    assert sub.malformed == 1
    assert view.first_sample == 0 and view.view_dropped > 3000  # the jump is a drop, shown as a gap
    view.close()
    pub.close(0)


def status(**fields):
    base = dict(incarnation=0, source_state="connected", samples=3600, record_time_s=10.0, heart_rate_bpm=97.0,
                beats_by_class={"N": 11, "V": 3}, active_alarms=[], continuity={}, latency_ms={})
    return msg("status", **{**base, **fields})


def test_one_heart_rate_on_screen_during_an_alarm(view: LiveView) -> None:
    """The banner quotes no rate of its own: the only rate shown is the worker's heart_rate_bpm,
    in the large display (the alarm came with another rate at its onset)."""
    view.apply(status(heart_rate_bpm=97.0))
    view.apply(msg("alarm", alarm="ventricular_tachycardia", priority="high", event="onset", sample=3600,
                   record_time_s=10.0, heart_rate_bpm=144.0, detail=""))
    view.frame()
    assert view.vitals.hr.text() == "97"
    assert "144" not in view.banner.label.text() and "HR" not in view.banner.label.text()
    assert view.banner.label.text().startswith("Ventricular tachycardia")
    cells = [view.alarm_list.item(0, col).text() for col in range(view.alarm_list.columnCount())]
    assert not any("144" in text for text in cells), cells


def test_counts_include_every_beat_on_screen(view: LiveView) -> None:
    """A beat drawn before the worker's next status is already in its class's count."""
    view.apply(msg("trace", np.zeros(3600), start=0, fs=FS))
    view.apply(status(beats_by_class={"N": 11, "S": 0, "V": 3}))
    view.apply(msg("beats", fs=FS, beats=[{"sample": 3000, "emitted_at": 3100, "label": "S", "search_back": False,
                                           "probabilities": None, "t_received": time.monotonic()}]))
    view.frame()
    assert view.vitals.counts["S"].text() == "1" and view.vitals.counts["N"].text() == "11"


@pytest.mark.parametrize("source, speed, kind, shown", [
    ("replay:208", "4", "replay", ("208", "4")),
    ("synthetic", "max", "synthetic", (None, "max")),
    ("serial:/tmp/ttyECG", "device", "serial", ("/tmp/ttyECG", None)),
])
def test_source_picker_shows_the_current_source(view: LiveView, source, speed, kind, shown) -> None:
    c = view.controls
    assert (c.kind.currentText(), c.record.currentText(), c.new_speed.currentText()) == ("replay", "100", "1")
    view.apply(decode(encode("status", {**status(source_counters={"chunks": 5, "speed": speed}).header,
                                        "source": source})))
    assert c.kind.currentText() == kind
    name, pace = shown
    if kind == "replay":
        assert c.record.currentText() == name
    if kind == "serial":
        assert c.port.currentText() == name
    if pace is not None:
        assert c.new_speed.currentText() == pace
    c.kind.setCurrentText("replay")  # the operator starts choosing: the next status leaves it alone
    view.apply(decode(encode("status", {**status(source_counters={"chunks": 6, "speed": speed}).header,
                                        "source": source})))
    assert c.kind.currentText() == "replay"


def test_source_panel_shows_serial_faults(view: LiveView) -> None:
    view.apply(status(source_counters={"port": "/tmp/ttyECG", "protocol": "frames", "crc_errors": 7,
                                       "frames_lost": 12, "gap_events": 4, "reconnects": 1, "speed": "device"}))
    view.frame()
    assert "device crc 7 lost 12 gaps 4 reconnects 1" in view.vitals.health.text()
