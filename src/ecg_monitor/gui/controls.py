"""Operator controls: freeze the view; what is being monitored and at which speed.

Freezing is the view's own business: the trace stops, while data, numbers and alarms keep
updating underneath. Speed and source belong to the streamer; the view only subscribes to the
worker and never talks back, so here they are shown, not set: the source as the worker names
it, the speed as measured from the rate at which samples arrive.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ecg_monitor.gui import colors


class ControlBar(QtWidgets.QWidget):
    """Freeze/resume button, then the source and its measured replay speed."""

    pauseToggled = QtCore.Signal(bool)  # True: frozen

    def __init__(self) -> None:
        super().__init__()
        self.pause = QtWidgets.QPushButton("Freeze")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(self._on_pause)
        self.source = QtWidgets.QLabel("source: waiting for the worker")
        self.speed = QtWidgets.QLabel("")
        for label in (self.source, self.speed):
            label.setStyleSheet(f"color: {colors.DIM_TEXT};")
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.pause)
        row.addSpacing(16)
        row.addWidget(self.source)
        row.addSpacing(16)
        row.addWidget(self.speed)
        row.addStretch(1)

    def show_source(self, source: str) -> None:
        self.source.setText(f"source: {source}")

    def show_speed(self, factor: float) -> None:
        """Samples arriving per second over the sampling rate: 1.0x is real time."""
        text = f"speed {factor:.1f}x real time"
        if self.speed.text() != text:
            self.speed.setText(text)

    def _on_pause(self, frozen: bool) -> None:
        self.pause.setText("Resume" if frozen else "Freeze")
        self.pauseToggled.emit(frozen)
