"""``LiveView``: the monitor's main window, driven by worker messages and a fixed frame clock.

Two paths that never meet:

* data in: ``apply(message)`` (or the subscriber's drain at the start of each frame) only stores
  samples, beats, alarms and status in bounded buffers;
* drawing: a ``QTimer`` at ``fps`` calls ``frame()``, which redraws what changed.

So the frame rate does not depend on the data rate, a burst of messages cannot cause a burst of
repaints, and a slow paint delays nothing but the next frame.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from ecg_monitor import PIPELINE_FS
from ecg_monitor.app.control import ControlClient
from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_banner import AlarmBanner
from ecg_monitor.gui.alarm_board import AlarmBoard, ViewAlarm
from ecg_monitor.gui.alarm_list import AlarmList
from ecg_monitor.gui.controls import ControlBar
from ecg_monitor.detector.classifier import SHIPPED_METADATA
from ecg_monitor.gui.inspector import BeatInspector
from ecg_monitor.gui.latency_panel import LatencyPanel
from ecg_monitor.gui.subscriber import Subscriber
from ecg_monitor.gui.trace import ShownBeat, SweepTrace
from ecg_monitor.firmware_bridge.serial_source import fault_summary
from ecg_monitor.gui.vitals import VitalsPanel
from ecg_monitor.streamer.messages import Message

STALE_S = 3.0  # no worker message for this long: the view calls the link disconnected

STYLE = f"""
QWidget {{ background: {colors.BACKGROUND}; color: {colors.TEXT}; }}
QTableWidget, QHeaderView::section, QPushButton {{
    background: {colors.PANEL}; color: {colors.TEXT}; border: 1px solid #26313d; padding: 3px; }}
QPushButton:checked {{ background: #3a4a5c; }}
QLabel#latencyText, QLabel#inspectorNote {{ color: {colors.DIM_TEXT}; }}
"""


class LiveView(QtWidgets.QMainWindow):
    """The desktop live view. Feed it with ``apply`` or ``attach(Subscriber)``."""

    def __init__(self, fs: float = PIPELINE_FS, fps: float = 50.0, grid: bool = True,
                 saliency_path: Path = SHIPPED_METADATA) -> None:
        super().__init__()
        self.setWindowTitle("ecg-monitor — live view")
        self.setStyleSheet(STYLE)
        self.board = AlarmBoard()
        self.subscriber: Subscriber | None = None
        self.control: ControlClient | None = None
        self.frozen = False
        self.status: dict[str, Any] = {}
        self.stream: tuple[str, str] | None = None  # (source, worker) of the trace shown
        self.first_sample: int | None = None  # first sample this view received
        self.view_dropped = 0  # samples this view missed (its PUB queue overflowed)
        self.malformed = 0  # messages the view could not use
        self._handlers = {"trace": self._on_trace, "beats": self._on_beats,
                          "alarm": self._on_alarm, "status": self._on_status}
        self._status_dirty = False
        self._next_burst = 0.0  # when the alarm sound may repeat
        self.class_counts: Counter[str] = Counter()  # beats this view received from the stream shown

        self.controls = ControlBar()
        self.banner = AlarmBanner()
        self.trace = SweepTrace(fs, grid=grid)
        self.vitals = VitalsPanel()
        self.alarm_list = AlarmList()
        self.latency = LatencyPanel()
        self.processes = QtWidgets.QLabel("")
        self.processes.setObjectName("latencyText")
        self.inspector = BeatInspector(self.trace, saliency_path)
        self._paint_log: deque[tuple[float, int]] = deque()  # (time, trace paints) per frame

        self.controls.pauseToggled.connect(self.set_frozen)
        self.controls.sourceRequested.connect(self.request_source)
        self.controls.engineeringToggled.connect(self.show_engineering)
        self.banner.acknowledgeRequested.connect(lambda: self.acknowledge())
        self.banner.audioPauseRequested.connect(self.pause_audio)
        self.alarm_list.acknowledgeRequested.connect(self.acknowledge)
        self.trace.beatClicked.connect(self.inspector.show_beat)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.trace, 5)
        top.addWidget(self.vitals, 1)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self._titled("Alarms (double-click to acknowledge)", self.alarm_list), 3)
        bottom.addWidget(self._titled("Beat inspector", self.inspector), 4)
        # For whoever maintains the monitor, not for the bedside: off until asked for.
        self.engineering = self._titled("Engineering: latency and processes", self.latency)
        self.engineering.layout().addWidget(self.processes)
        self.engineering.setVisible(False)
        bottom.addWidget(self.engineering, 3)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.addWidget(self.controls)
        layout.addWidget(self.banner)
        layout.addLayout(top, 3)
        layout.addLayout(bottom, 2)
        self.setCentralWidget(central)
        self.resize(1440, 900)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.frame)
        self.timer.start(int(round(1000.0 / fps)))

    @staticmethod
    def _titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox(title)
        QtWidgets.QVBoxLayout(box).addWidget(widget)
        return box

    # ------------------------------------------------------------------ data in
    def attach(self, subscriber: Subscriber) -> None:
        """Drain this subscriber at the start of every frame; the window closes it on close."""
        self.subscriber = subscriber

    def attach_control(self, client: ControlClient) -> None:
        """Send the controls' source requests here and show the replies; closed with the window."""
        self.control = client
        self.controls.enable_source_choice()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Stop the frame clock before the socket goes, so no frame drains a closed socket."""
        self.timer.stop()
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        if self.control is not None:
            self.control.close()
            self.control = None
        super().closeEvent(event)

    @property
    def data_seconds(self) -> float:
        """Seconds of trace received since this view started."""
        if self.first_sample is None:
            return 0.0
        return (self.trace.end - self.first_sample) / self.trace.fs

    def apply(self, message: Message) -> None:
        """Store one decoded worker message; never draws."""
        handler = self._handlers.get(message.kind)
        if handler is None:
            return
        try:
            handler(message)
        except (KeyError, TypeError, ValueError):  # inner fields the schema check does not cover
            self.malformed += 1

    def _on_trace(self, message: Message) -> None:
        stream = (message["source"], message["worker"])
        if stream[0] != (self.stream or stream)[0]:
            self.trace.reset()  # another source: its numbering is not ours
            self.first_sample = None
        if stream != self.stream:
            self.controls.show_source(stream[0])
            self.processes.setText(f"worker {stream[1]} (pid:incarnation), live view pid {os.getpid()}")
            self.class_counts.clear()
        self.stream = stream
        missed = self.trace.append(message["start"], message.data)
        if self.first_sample is None:
            self.first_sample = message["start"]  # joined mid-stream: what came before is no drop
        else:
            self.view_dropped += missed

    def _on_beats(self, message: Message) -> None:
        now = time.monotonic()
        shown = []
        for b in message["beats"]:
            probs = b.get("probabilities")
            beat = ShownBeat(b["sample"], b["label"], tuple(probs) if probs else None)
            self.trace.add_beat(beat)
            self.class_counts[beat.label] += 1
            shown.append(beat)
            self.latency.delivery.append((now - b["t_received"]) * 1000.0)
        self.inspector.follow(shown)

    def _on_alarm(self, message: Message) -> None:
        if message["event"] == "onset":
            self.board.onset(ViewAlarm(
                kind=message["alarm"], priority=message["priority"],
                onset_s=message["record_time_s"], message=message["detail"],
            ))
        else:
            self.board.end(message["alarm"], message["record_time_s"])

    def _on_status(self, message: Message) -> None:
        self.status = message.header
        self.latency.worker = message["latency_ms"]
        speed = (message.header.get("source_counters") or {}).get("speed")
        if speed is not None and message["source"]:
            self.controls.show_current(message["source"], str(speed))
        self._status_dirty = True

    # ------------------------------------------------------------------ operator actions
    def acknowledge(self, alarm_id: str | None = None) -> int:
        """Acknowledge one alarm (by id) or all alarms on the banner."""
        return self.board.acknowledge(alarm_id)

    def pause_audio(self, paused: bool) -> None:
        """The audio button: pause every alarm's sound for 2 min, or sound again."""
        if paused:
            self.board.pause_audio(time.monotonic())
        else:
            self.board.resume_audio()

    def show_engineering(self, shown: bool) -> None:
        """Show or hide the engineering panel (latency histogram, frame rate, process ids)."""
        self.engineering.setVisible(shown)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the trace; data, numbers and alarms keep updating underneath."""
        self.frozen = frozen
        self.trace.dirty = True

    def request_source(self, argv: list[str]) -> None:
        """Ask the monitor to play the source ``argv`` names (the Apply button)."""
        if self.control is None:
            return
        sent = self.control.request_source(argv)
        self.controls.show_reply(("requested: " if sent else "not sent (monitor busy): ") + " ".join(argv))

    # ------------------------------------------------------------------ drawing
    def frame(self) -> None:
        """One tick of the frame clock: take queued data, then redraw what changed."""
        now = time.monotonic()
        if self.subscriber is not None:
            self.subscriber.drain(self.apply)
        for reply in self.control.replies() if self.control is not None else ():
            self.controls.show_reply(f"{reply['result']}: {reply['detail']}")
        if not self.frozen:
            self.trace.advance(now)
            self.trace.redraw()
        self.banner.refresh(self.board, now)
        self._sound(now)
        self.alarm_list.refresh(self.board)
        self.latency.frame_rate = self.frame_rate(now)
        if self.engineering.isVisible():
            self.latency.redraw(now)
        self._show_status(now)

    def _sound(self, now: float) -> None:
        """The audible alarm signal. The system bell stands in for a proper IEC tone: Qt's
        Essentials wheel has no audio output."""
        interval = self.board.sound_interval(now)
        if interval is None:
            self._next_burst = 0.0  # a new alarm sounds at once
        elif now >= self._next_burst:
            QtWidgets.QApplication.beep()
            self._next_burst = now + interval

    def frame_rate(self, now: float, span_s: float = 1.0) -> float:
        """Paints of the trace per second over the last ``span_s``: the rate a person sees."""
        log = self._paint_log
        log.append((now, self.trace.paints))
        while len(log) > 1 and log[0][0] < now - span_s:
            log.popleft()
        (t0, p0), (t1, p1) = log[0], log[-1]
        return (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0

    def _show_status(self, now: float) -> None:
        last = self.subscriber.last_message_at if self.subscriber is not None else None
        stale = last is not None and now - last > STALE_S
        if not (self._status_dirty or stale):
            return
        self._status_dirty = False
        st = self.status
        self.vitals.show_heart_rate(st.get("heart_rate_bpm"))
        # The worker's totals arrive twice a second, the beats at once: show whichever is ahead,
        # so a beat on screen is always in its count (the worker's totals also cover beats from
        # before this view joined; empty once a source ended: keep its totals on screen).
        totals = st.get("beats_by_class") or {}
        self.vitals.show_counts({c: max(totals.get(c, 0), self.class_counts[c]) for c in
                                 set(totals) | set(self.class_counts)})
        state = st.get("source_state", "waiting")
        if stale and state != "ended":
            state = "disconnected"
        cont = st.get("continuity") or {}
        fs = self.trace.fs
        undecodable = self.subscriber.malformed if self.subscriber is not None else 0
        health = (
            f"chunks: gaps {cont.get('gaps', 0)} ({cont.get('gap_samples', 0) / fs:.1f} s), "
            f"duplicates {cont.get('duplicates', 0)}, malformed {cont.get('malformed', 0)}\n"
            f"view: dropped {self.view_dropped / fs:.1f} s, malformed {self.malformed + undecodable}"
        )
        device = fault_summary(st.get("source_counters") or {})
        if device:
            health = f"{device}\n{health}"
        self.vitals.show_source(state, st.get("source", ""), health)
        if state == "connected":
            self.controls.show_speed(self.trace.arrival_rate() / fs)
