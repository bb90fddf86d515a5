"""``StationView``: a tile per patient, one ward-wide alarm list, a click opens the bedside view.

Like the live view, data in and drawing never meet: each tick of the frame clock drains the
subscriber into the :class:`Ward` (bounded buffers only), then asks each tile to repaint if what
it shows changed. A click on a tile opens today's :class:`~ecg_monitor.gui.window.LiveView` for
that patient: the station hands it that patient's messages (no second socket) and shares the
patient's alarm board with it, so an acknowledgement in either window holds in both.
"""

from __future__ import annotations

import math
import time

from PySide6 import QtCore, QtGui, QtWidgets

from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_banner import clock
from ecg_monitor.gui.alarm_list import AlarmList, state_text
from ecg_monitor.gui.window import STYLE, LiveView
from ecg_monitor.station.tile import PatientTile
from ecg_monitor.station.ward import Ward, WardAlarm
from ecg_monitor.streamer.messages import Message
from ecg_monitor.transport.base import EventReader

WARD_COLUMNS = ("Bed", "Priority", "Alarm", "Time", "State")  # no HR: each tile shows the one rate
DRAIN_BUDGET_S = 0.010
MAX_ROWS = 200  # rows of the ward alarm list (each board keeps 500 alarms)
SUMMARY_EVERY = 15  # frames between updates of the summary line (twice a second at 30 fps)


class WardAlarmList(AlarmList):
    """The bedside alarm table with a bed column, over every patient; double-click acknowledges
    that row's patient."""

    def __init__(self) -> None:
        super().__init__()
        self.setColumnCount(len(WARD_COLUMNS))
        self.setHorizontalHeaderLabels(WARD_COLUMNS)
        self.setWordWrap(False)  # one line per alarm, so the rows line up
        header = self.horizontalHeader()
        for col in range(len(WARD_COLUMNS)):  # sized once per rebuild: to-contents on every cell is O(rows^2)
            mode = "Stretch" if WARD_COLUMNS[col] == "State" else "Interactive"  # alarm names never cut
            header.setSectionResizeMode(col, getattr(QtWidgets.QHeaderView.ResizeMode, mode))

    def show_alarms(self, rows: list[WardAlarm]) -> None:
        """The first ``MAX_ROWS`` rows (the most urgent); older low ones wait off the list."""
        rows = rows[:MAX_ROWS]
        self._ids = [r.patient_id for r in rows]  # what a double-click acknowledges
        self.setUpdatesEnabled(False)
        self.setRowCount(len(rows))
        for row, r in enumerate(rows):
            a = r.alarm
            for col, text in enumerate((r.patient_id, a.priority, a.title, clock(a.onset_s), state_text(a))):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 1:
                    style = colors.PRIORITY_STYLES[a.priority]
                    item.setBackground(QtGui.QColor(style.background))
                    item.setForeground(QtGui.QColor(style.foreground))
                self.setItem(row, col, item)
        for col, name in enumerate(WARD_COLUMNS):
            if name != "State":
                self.resizeColumnToContents(col)
        self.setUpdatesEnabled(True)


class StationView(QtWidgets.QMainWindow):
    """The central station. Feed it with ``apply`` or ``attach(reader)`` (ZeroMQ or NATS)."""

    def __init__(self, fps: float = 30.0) -> None:
        super().__init__()
        self.setWindowTitle("ecg-monitor — central station")
        self.setStyleSheet(STYLE)
        self.ward = Ward()
        self.subscriber: EventReader | None = None
        self.tiles: dict[str, PatientTile] = {}
        self.details: dict[str, LiveView] = {}  # open bedside views, by patient
        self.frames = 0
        self.first_message_at: float | None = None  # time.monotonic() of the first patient message
        self._alarm_version = -1
        self._shown = 0  # alarms shown in the ward list

        self.summary = QtWidgets.QLabel("waiting for a fleet worker…")
        self.grid = QtWidgets.QGridLayout()
        self.grid.setSpacing(6)
        tiles = QtWidgets.QWidget()
        tiles.setLayout(self.grid)
        self.alarm_list = WardAlarmList()
        self.alarm_list.acknowledgeRequested.connect(self.acknowledge)
        ack = QtWidgets.QPushButton("Acknowledge selected bed")
        ack.clicked.connect(self._acknowledge_selected)
        side = QtWidgets.QGroupBox("Ward alarms (priority, then newest; double-click acknowledges the bed)")
        side_layout = QtWidgets.QVBoxLayout(side)
        side_layout.addWidget(self.alarm_list)
        side_layout.addWidget(ack)
        body = QtWidgets.QHBoxLayout()
        body.addWidget(tiles, 5)
        body.addWidget(side, 2)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.addWidget(self.summary)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)
        self.resize(1800, 1000)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.frame)
        self.timer.start(int(round(1000.0 / fps)))

    # ------------------------------------------------------------------ data in
    def attach(self, subscriber: EventReader) -> None:
        """Drain this reader at the start of every frame; closed with the window."""
        self.subscriber = subscriber

    def apply(self, message: Message) -> None:
        """Store one worker message (and pass it to that patient's open bedside view)."""
        patient = self.ward.apply(message)
        if patient is None:
            return
        if self.first_message_at is None:
            self.first_message_at = time.monotonic()
        if patient.patient_id not in self.tiles:
            self._add_tile(patient.patient_id)
        view = self.details.get(patient.patient_id)
        if view is not None and message.kind != "alarm":  # alarms: the board is shared already
            view.apply(message)

    def _add_tile(self, patient_id: str) -> None:
        tile = PatientTile(self.ward.patients[patient_id])
        tile.clicked.connect(self.open_patient)
        self.tiles[patient_id] = tile
        ordered = [self.tiles[k] for k in sorted(self.tiles)]
        cols = max(1, math.ceil(math.sqrt(len(ordered))))
        for i, t in enumerate(ordered):
            self.grid.addWidget(t, i // cols, i % cols)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.timer.stop()
        for view in self.details.values():
            view.close()
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        super().closeEvent(event)

    # ------------------------------------------------------------------ operator actions
    def acknowledge(self, patient_id: str) -> int:
        """Acknowledge every shown alarm of one patient."""
        return self.ward.acknowledge(patient_id)

    def _acknowledge_selected(self) -> None:
        row = self.alarm_list.currentRow()
        if 0 <= row < len(self.alarm_list._ids):
            self.acknowledge(self.alarm_list._ids[row])

    def open_patient(self, patient_id: str) -> LiveView:
        """Today's bedside view of one patient, fed from this station; raised if already open."""
        view = self.details.get(patient_id)
        if view is None or not view.isVisible():
            view = LiveView()
            view.board = self.ward.patients[patient_id].board
            view.setWindowTitle(f"ecg-monitor — {patient_id}")
            self.details[patient_id] = view
        view.show()
        view.raise_()
        return view

    # ------------------------------------------------------------------ drawing
    def frame(self) -> None:
        """One tick: take queued messages, then repaint the tiles and list that changed."""
        self.frames += 1
        if self.subscriber is not None:
            self.subscriber.drain(self.apply, DRAIN_BUDGET_S)
        self.details = {k: v for k, v in self.details.items() if v.isVisible()}
        now = time.monotonic()
        for tile in self.tiles.values():
            tile.refresh(now)
        if self.ward.version != self._alarm_version:
            self._alarm_version = self.ward.version
            rows = self.ward.alarms()
            self.alarm_list.show_alarms(rows)
            self._shown = sum(r.alarm.shown for r in rows)
        if self.frames % SUMMARY_EVERY == 1:
            self.summary.setText(self.summary_text())

    def summary_text(self) -> str:
        """Patients, alarms shown, and the links: this view's (with the messages it lost falling
        behind), the workers' (with their lag per partition), the gaps the workers counted and the
        chunks sources could not send, so a broker outage or a slow station is seen, not hidden."""
        link = self.subscriber.state() if self.subscriber is not None else "no link"
        workers, lag = self.ward.links()
        parts = [f"{len(self.tiles)} patients", f"{self._shown} alarms shown", f"station {link}"]
        if self.subscriber is not None and self.subscriber.dropped:
            parts.append(f"station dropped {self.subscriber.dropped}")
        if workers:
            parts.append("workers " + "/".join(sorted(workers)))
        if lag:
            parts.append("lag " + " ".join(f"{k} {v}" for k, v in sorted(lag.items())))
        parts.append(f"gaps {self.ward.gaps()}")
        if unsent := self.ward.unsent():
            parts.append(f"unsent at sources {unsent}")
        return "   ·   ".join(parts) + "   ·   click a bed for its full view"

    def paints(self) -> int:
        """Tile paints so far (what the benchmark divides by time)."""
        return sum(t.paints for t in self.tiles.values())
