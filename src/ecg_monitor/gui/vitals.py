"""Numeric side panel: heart rate in large digits, beats by class, source state, gaps and drops."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.gui import colors


def _label(text: str, point_size: int, color: str, bold: bool = False) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    font = label.font()
    font.setPointSize(point_size)
    font.setBold(bold)
    label.setFont(font)
    label.setStyleSheet(f"color: {color};")
    return label


class VitalsPanel(QtWidgets.QWidget):
    """HR, per-class counters and link health; ``show_*`` setters only touch changed labels."""

    def __init__(self) -> None:
        super().__init__()
        self.hr = _label("--", 64, colors.TRACE, bold=True)
        self.hr.setObjectName("heartRate")
        self.hr.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.counts = {c: _label("0", 15, colors.class_color(c), bold=True) for c in AAMI_CLASSES}
        self.state = _label("waiting", 13, colors.STATE_COLORS["waiting"], bold=True)
        self.state.setObjectName("sourceState")
        self.source = _label("", 10, colors.DIM_TEXT)
        self.health = _label("", 10, colors.DIM_TEXT)
        self.health.setWordWrap(True)

        grid = QtWidgets.QGridLayout(self)
        grid.addWidget(_label("HR", 14, colors.TRACE, bold=True), 0, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.hr, 0, 1, 1, 2)
        grid.addWidget(_label("bpm", 11, colors.TRACE), 1, 2, QtCore.Qt.AlignmentFlag.AlignRight)
        for row, c in enumerate(AAMI_CLASSES, start=2):
            grid.addWidget(_label(f"{c}  {colors.CLASS_NAMES[c]}", 11, colors.class_color(c)), row, 0, 1, 2)
            grid.addWidget(self.counts[c], row, 2, QtCore.Qt.AlignmentFlag.AlignRight)
        row = 2 + len(AAMI_CLASSES)
        grid.addWidget(self.state, row, 0, 1, 3)
        grid.addWidget(self.source, row + 1, 0, 1, 3)
        grid.addWidget(self.health, row + 2, 0, 1, 3)
        grid.setRowStretch(row + 3, 1)

    @staticmethod
    def _set(label: QtWidgets.QLabel, text: str) -> None:
        if label.text() != text:
            label.setText(text)

    def show_heart_rate(self, bpm: float | None) -> None:
        self._set(self.hr, "--" if bpm is None else f"{bpm:.0f}")

    def show_counts(self, counts: dict[str, int]) -> None:
        for c, label in self.counts.items():
            self._set(label, str(counts.get(c, 0)))

    def show_source(self, state: str, source: str, health: str) -> None:
        if self.state.text() != state:
            self.state.setText(state)
            color = colors.STATE_COLORS.get(state, colors.DIM_TEXT)
            self.state.setStyleSheet(f"color: {color};")
        self._set(self.source, source)
        self._set(self.health, health)
