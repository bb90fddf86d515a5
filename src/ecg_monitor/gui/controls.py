"""Operator controls: freeze the view; what is being monitored, at which speed, and changing it.

Freezing is the view's own business: the trace stops, while data, numbers and alarms keep
updating underneath. The source is shown as the worker names it, the speed as measured from the
rate at which samples arrive. Source and speed belong to the streamer: Apply emits
``sourceRequested`` with ``ecg-monitor``'s source options (``["--replay", "207", "--speed",
"4"]``), which the window sends to the supervisor; the supervisor restarts the streamer on that
source from its start, or refuses, and its reply shows at the end of the bar. Without a
supervisor to ask (``enable_source_choice`` never called) the choice stays disabled.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets
from serial.tools import list_ports

from ecg_monitor.gui import colors

KINDS = ("replay", "serial", "synthetic")
RECORDS = ("100", "106", "119", "200", "207", "208", "210", "233")  # MIT-BIH records worth a look
SPEEDS = ("1", "2", "4", "10", "max")


class ControlBar(QtWidgets.QWidget):
    """Freeze/resume button, the source and its measured speed, the source choice (showing what
    plays) and Apply, and the engineering panel's toggle."""

    pauseToggled = QtCore.Signal(bool)  # True: frozen
    sourceRequested = QtCore.Signal(list)  # ecg-monitor source options
    engineeringToggled = QtCore.Signal(bool)  # True: show the engineering panel

    def __init__(self) -> None:
        super().__init__()
        self.pause = QtWidgets.QPushButton("Freeze")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(self._on_pause)
        self.source = QtWidgets.QLabel("source: waiting for the worker")
        self.speed = QtWidgets.QLabel("")
        self.reply = QtWidgets.QLabel("")
        for label in (self.source, self.speed, self.reply):
            label.setStyleSheet(f"color: {colors.DIM_TEXT};")
        self.kind = QtWidgets.QComboBox()
        self.kind.addItems(KINDS)
        self.record = QtWidgets.QComboBox(editable=True)
        self.record.addItems(RECORDS)
        self.port = QtWidgets.QComboBox(editable=True)  # also takes a path typed in (ecg-monitor-sim)
        self.port.setMinimumContentsLength(24)  # a whole /tmp/ecg-sim-.../ttyECG path stays readable
        self.port.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.new_speed = QtWidgets.QComboBox()
        self.new_speed.addItems(SPEEDS)
        self.apply = QtWidgets.QPushButton("Apply")
        self.engineering = QtWidgets.QPushButton("Engineering")
        self.engineering.setCheckable(True)
        self.engineering.setToolTip("latency, frame rate and process ids")
        self.engineering.toggled.connect(self.engineeringToggled)
        self.current: tuple[str, str] | None = None  # (source id, speed) the picker shows
        self.apply.clicked.connect(lambda: self.sourceRequested.emit(self.request()))
        self.kind.currentTextChanged.connect(self._on_kind)
        self.choice = (self.kind, self.record, self.port, self.new_speed, self.apply)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.pause)
        for widget in (self.source, self.speed):
            row.addSpacing(16)
            row.addWidget(widget)
        row.addStretch(1)
        for widget in self.choice:
            row.addWidget(widget)
            widget.setEnabled(False)
        row.addWidget(self.reply)
        row.addSpacing(16)
        row.addWidget(self.engineering)
        self._on_kind(self.kind.currentText())

    def enable_source_choice(self) -> None:
        """A supervisor takes requests: let the operator choose."""
        for widget in self.choice:
            widget.setEnabled(True)

    def request(self) -> list[str]:
        """The chosen source and speed as ``ecg-monitor`` options (a device sets its own pace)."""
        kind = self.kind.currentText()
        if kind == "serial":
            return ["--serial", self.port.currentText().strip()]
        which = ["--replay", self.record.currentText().strip()] if kind == "replay" else ["--demo"]
        return [*which, "--speed", self.new_speed.currentText()]

    def show_source(self, source: str) -> None:
        self.source.setText(f"source: {source}")

    def show_current(self, source_id: str, speed: str) -> None:
        """Set the picker to what is playing (``replay:208`` at ``4``, ``synthetic``,
        ``serial:/dev/ttyUSB0``), so Apply never switches to something the operator did not
        see; left alone while the same source plays, so a choice being made is not undone."""
        if (source_id, speed) == self.current:
            return
        self.current = (source_id, speed)
        kind, _, name = source_id.partition(":")
        if kind not in KINDS:
            return
        self.kind.setCurrentText(kind)
        if kind == "replay":
            self.record.setCurrentText(name)
        elif kind == "serial":
            self.port.setCurrentText(name)
        if speed in SPEEDS:
            self.new_speed.setCurrentText(speed)
        elif speed != "device":
            self.new_speed.setEditable(True)  # a speed the list lacks (--speed 3) is shown as is
            self.new_speed.setCurrentText(speed)

    def show_speed(self, factor: float) -> None:
        """Samples arriving per second over the sampling rate: 1.0x is real time."""
        text = f"speed {factor:.1f}x real time"
        if self.speed.text() != text:
            self.speed.setText(text)

    def show_reply(self, text: str) -> None:
        """The supervisor's answer to the last request (or that it was sent)."""
        self.reply.setText(text)

    def _on_kind(self, kind: str) -> None:
        """Show the fields the chosen kind of source needs; list the serial ports when asked."""
        self.record.setVisible(kind == "replay")
        self.port.setVisible(kind == "serial")
        self.new_speed.setVisible(kind != "serial")
        if kind == "serial":
            typed = self.port.currentText()
            self.port.clear()
            self.port.addItems([p.device for p in list_ports.comports()])
            if typed:
                self.port.setCurrentText(typed)

    def _on_pause(self, frozen: bool) -> None:
        self.pause.setText("Resume" if frozen else "Freeze")
        self.pauseToggled.emit(frozen)
