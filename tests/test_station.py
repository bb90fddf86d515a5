"""Central station: real widgets offscreen, fed by a real fleet worker process over ZeroMQ, and
by real schema-v1 messages for alarm ordering, per-patient acknowledge and the bedside view."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6 import QtCore

from ecg_monitor.gui.alarm_banner import signal_colors
from ecg_monitor.gui.colors import PANEL, PRIORITY_STYLES
from ecg_monitor.gui.subscriber import Subscriber
from ecg_monitor.station.window import StationView
from ecg_monitor.streamer.messages import decode, encode
from ecg_monitor.transport.base import EventReader
from ecg_monitor.transport.zeromq import ZmqChunkSender
from fleet_helpers import chunk_messages, ended_message, patient_signal

SECONDS = 20.0


@pytest.fixture
def station(qtbot):
    view = StationView(fps=30)
    qtbot.addWidget(view)
    view.show()
    yield view
    view.close()


def test_tiles_per_patient_from_a_real_fleet_worker(tmp_path, qtbot, station):
    chunks, events = f"ipc://{tmp_path}/chunks", f"ipc://{tmp_path}/events"
    worker = subprocess.Popen([sys.executable, "-m", "ecg_monitor.workers.cli", "--chunks", chunks,
                               "--events", events, "--status-every", "0.2"], stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in worker.stdout.readline()
        station.attach(Subscriber([events]))
        time.sleep(0.3)  # the SUB socket joins before the first result is published
        signals = {f"bed{i:02d}": patient_signal(i, SECONDS) for i in range(3)}
        sender = ZmqChunkSender(chunks)
        for p, x in signals.items():
            for frames in chunk_messages(p, x, 90) + [ended_message(p, len(x))]:
                sender.send(p, frames)
        sender.close()
        ward = station.ward
        qtbot.waitUntil(lambda: len(ward.patients) == 3 and all(
            p.status.get("source_state") == "ended" for p in ward.patients.values()), timeout=20000)
    finally:
        worker.terminate()
        worker.wait(10)
    assert sorted(station.tiles) == ["bed00", "bed01", "bed02"]
    assert [station.grid.indexOf(station.tiles[p]) for p in ("bed00", "bed01", "bed02")] == [0, 1, 2]
    hr = {p: ward.patients[p].status["heart_rate_bpm"] for p in signals}
    assert abs(hr["bed00"] - 35) < 3 and abs(hr["bed01"] - 150) < 5 and abs(hr["bed02"] - 61) < 3, hr
    n_beats = {p: sum(ward.patients[p].status["beats_by_class"].values()) for p in signals}
    assert abs(n_beats["bed00"] - 35 * SECONDS / 60) <= 3 and abs(n_beats["bed01"] - 150 * SECONDS / 60) <= 5
    for p, x in signals.items():  # each strip holds its own patient's newest samples
        assert ward.patients[p].end == len(x)
    kinds = {(r.patient_id, r.alarm.kind) for r in ward.alarms()}
    assert any(p == "bed00" and "brady" in k for p, k in kinds), kinds
    assert any(p == "bed01" and "tachy" in k for p, k in kinds), kinds
    assert not any(p == "bed02" for p, _ in kinds)  # 61 bpm: nothing to say
    qtbot.waitUntil(lambda: all(t.paints > 0 for t in station.tiles.values()), timeout=3000)
    assert station.alarm_list.rowCount() == len(kinds)


def alarm(patient: str, kind: str, priority: str, t: float, event: str = "onset"):
    return decode(encode("alarm", {"source": f"sim-{patient}", "worker": "w", "alarm": kind, "priority": priority,
                                   "event": event, "sample": int(t * 360), "record_time_s": t,
                                   "heart_rate_bpm": 80.0, "detail": "", "patient": patient}))


def trace(patient: str, start: int, n: int):
    return decode(encode("trace", {"source": f"sim-{patient}", "worker": "w", "start": start, "fs": 360.0,
                                   "patient": patient}, np.zeros(n)))


def test_ward_alarm_list_priority_then_newest_acknowledge_per_patient_and_bedside_view(qtbot, station):
    for m in (alarm("bedA", "pvc_couplet", "low", 10.0), alarm("bedB", "vt", "high", 500.0),
              alarm("bedC", "lead_off", "medium", 3.0), alarm("bedA", "asystole", "high", 12.0),
              alarm("bedC", "bigeminy", "low", 7.0)):
        station.apply(m)
        time.sleep(0.002)  # arrival order is what orders patients' alarms: their clocks differ
    station.frame()
    rows = [(r.patient_id, r.alarm.kind) for r in station.ward.alarms()]
    assert rows == [("bedA", "asystole"), ("bedB", "vt"), ("bedC", "lead_off"),
                    ("bedC", "bigeminy"), ("bedA", "pvc_couplet")]
    table = station.alarm_list
    assert [table.item(r, 0).text() + " " + table.item(r, 2).text() for r in range(table.rowCount())] == [
        "bedA Asystole", "bedB VT", "bedC Lead off", "bedC Bigeminy", "bedA PVC couplet"]

    # double-click bedB's row: bedB acknowledged, the others untouched
    rect = table.visualItemRect(table.item(1, 0))
    left = QtCore.Qt.MouseButton.LeftButton
    qtbot.mouseClick(table.viewport(), left, pos=rect.center())  # a real double-click starts with a press
    qtbot.mouseDClick(table.viewport(), left, pos=rect.center())
    acked = {(r.patient_id, r.alarm.kind): r.alarm.acknowledged for r in station.ward.alarms()}
    assert acked == {("bedA", "asystole"): False, ("bedB", "vt"): True, ("bedC", "lead_off"): False,
                     ("bedC", "bigeminy"): False, ("bedA", "pvc_couplet"): False}
    # an acknowledged high alarm stops flashing (steady red); an unacknowledged one has a dark half
    red = (PRIORITY_STYLES["high"].background, PRIORITY_STYLES["high"].foreground)
    half = 0.5 / PRIORITY_STYLES["high"].flash_hz
    assert {station.tiles["bedB"].alarm_colors(t) for t in (0.1, 0.1 + half)} == {red}
    assert {station.tiles["bedA"].alarm_colors(t)[0] for t in (0.1, 0.1 + half)} == {red[0], PANEL}
    assert station.acknowledge("bedA") == 2 and station.acknowledge("bedA") == 0
    assert station.ward.alarms()[0].alarm.acknowledged and not station.ward.patients["bedC"].board.alarms[
        "lead_off@3.000"].acknowledged

    # a click on bedC's tile opens the bedside view with bedC's alarms and only bedC's trace
    qtbot.mouseClick(station.tiles["bedC"], left)
    bedside = station.details["bedC"]
    assert bedside.isVisible() and bedside.board is station.ward.patients["bedC"].board
    station.apply(trace("bedC", 0, 360))
    station.apply(trace("bedA", 0, 720))
    assert bedside.trace.end == 360
    assert station.ward.patients["bedA"].end == 720
    bedside.acknowledge()  # acknowledged at the bedside: the station shows it acknowledged too
    assert all(a.acknowledged for a in station.ward.patients["bedC"].board.alarms.values())
    assert signal_colors(station.ward.patients["bedC"].board.banner_alarm(), 0.0)[0] == PRIORITY_STYLES["medium"].background


def pixels(image) -> np.ndarray:
    from PySide6 import QtGui
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine()).copy()


def test_sweep_repainted_in_slices_looks_like_a_full_repaint(qtbot, station):
    """Most frames repaint a thin slice of each strip; after a full sweep (and a wrap) what is on
    screen must be what a full repaint draws."""
    from PySide6 import QtWidgets
    station.timer.stop()
    x = (np.sin(2 * np.pi * 1.2 * np.arange(360 * 12) / 360.0) ** 15).astype(np.float32)
    for p in ("bed00", "bed01"):
        station.apply(trace(p, 0, 18))
    patients = [station.ward.patients[p] for p in ("bed00", "bed01")]
    slices = 0
    for pos in range(18, 360 * 8, 9):  # 8 s: more than one 6 s sweep
        for p in patients:
            p.append(pos, x[pos : pos + 9])
            p.appended_at = 0.0  # played out up to the newest sample
        for tile in station.tiles.values():
            before = tile.paints
            tile.refresh(time.monotonic())
            QtWidgets.QApplication.processEvents()
            slices += tile.paints > before
    assert slices > 600  # a paint per tile per step
    on_screen = pixels(QtWidgets.QApplication.primaryScreen().grabWindow(station.winId()).toImage())
    assert np.array_equal(on_screen, pixels(station.grab().toImage()))


def test_summary_shows_links_lag_per_partition_and_gaps(station):
    """What a broker outage or a worker falling behind looks like on the station: the workers'
    transport state and lag per partition from their status, the gaps they counted, the chunks
    the sources could not send, and the messages the station's own reader lost falling behind."""
    def status(patient: str, transport: str, lag: dict, gaps: int, unsent: int = 0):
        return decode(encode("status", {"source": f"sim-{patient}", "worker": "w", "incarnation": 0,
                                        "source_state": "connected", "samples": 3600,
                                        "source_counters": {"chunks": 200, "unsent": unsent},
                                        "continuity": {"chunks": 200, "gaps": gaps}, "latency_ms": {},
                                        "fleet": {"transport": transport, "lag": lag}, "patient": patient}))

    class Link(EventReader):  # the station's own reader, as a NATS reader says it while the server is away
        def next_frames(self):
            return None

        def state(self):
            return "reconnecting"

        def close(self):
            pass

    link = Link()
    station.attach(link)
    station.apply(status("bed01", "reconnecting", {"part-0": 120, "part-2": 0}, 2))
    station.apply(status("bed02", "connected", {"part-1": 3}, 1))
    text = station.summary_text()
    assert "2 patients" in text and "station reconnecting" in text
    assert "workers connected/reconnecting" in text
    assert "lag part-0 120 part-1 3 part-2 0" in text and "gaps 3" in text
    assert "unsent" not in text and "dropped" not in text  # said only when something was lost
    station.apply(status("bed02", "connected", {"part-1": 3}, 1, unsent=7))
    assert "unsent at sources 7" in station.summary_text()
    link.dropped = 42  # as a NatsEventReader counts what its full queue lost
    assert "station dropped 42" in station.summary_text()
