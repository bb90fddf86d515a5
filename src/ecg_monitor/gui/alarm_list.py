"""The alarm list: every alarm the view has seen, newest first, with time, type and state.

No heart-rate column: the one rate on screen is the large display (the worker's current
``heart_rate_bpm``); the rate at each onset stays in the CSV alarm log."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_banner import clock
from ecg_monitor.gui.alarm_board import AlarmBoard, ViewAlarm

COLUMNS = ("Time", "Priority", "Alarm", "State")


def state_text(alarm: ViewAlarm) -> str:
    state = "active" if alarm.active else f"ended {clock(alarm.end_s or 0.0)}, lasted {alarm.lasted}"
    return state + (", ack" if alarm.acknowledged else "")


class AlarmList(QtWidgets.QTableWidget):
    """Table view of an :class:`AlarmBoard`; double-click a row to acknowledge that alarm."""

    acknowledgeRequested = QtCore.Signal(str)  # alarm id

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().hide()
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Alarm"), QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.cellDoubleClicked.connect(self._on_double_click)
        self._version = -1
        self._ids: list[str] = []

    def refresh(self, board: AlarmBoard) -> None:
        """Rebuild the rows when the board changed (alarms are rare; frames are not)."""
        if board.version == self._version:
            return
        self._version = board.version
        alarms = sorted(board.alarms.values(), key=lambda a: a.onset_s, reverse=True)
        self._ids = [a.alarm_id for a in alarms]
        self.setRowCount(len(alarms))
        for row, alarm in enumerate(alarms):
            cells = (clock(alarm.onset_s), alarm.priority, alarm.title, state_text(alarm))
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 1 and alarm.priority in colors.PRIORITY_STYLES:
                    style = colors.PRIORITY_STYLES[alarm.priority]
                    item.setBackground(QtGui.QColor(style.background))
                    item.setForeground(QtGui.QColor(style.foreground))
                self.setItem(row, col, item)

    def _on_double_click(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._ids):
            self.acknowledgeRequested.emit(self._ids[row])
