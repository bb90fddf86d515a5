"""One patient's tile: bed, connection state, a sweep strip, HR, beat counts, the alarm colour.

The whole tile is painted by one ``paintEvent`` (no child widgets): 32 tiles at 25+ fps are 800
paints a second, and a painter drawing a few strings and one path is far cheaper than a plot
widget per patient. The strip is a sweep like the bedside trace (``gui/trace.py``): the newest
sample is written at the erase bar, the waveform left of it stands still. It is decimated to a
min/max pair per two pixel columns so a QRS never falls between two drawn points.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_banner import signal_colors
from ecg_monitor.gui.trace import LAG_S
from ecg_monitor.station.ward import Patient

Y_RANGE = (-1.6, 2.4)  # mV shown by the strip, as on the bedside trace
ERASE_S = 0.25
assert LAG_S < ERASE_S  # samples received but not yet played out fall inside the erase gap
MARGIN = 6
PX_PER_COLUMN = 2  # one min/max pair per 2 px: half the points of one per pixel; QRS peaks kept
HEAD = 46  # bed, state and HR above the strip
BAND = 24  # the alarm band at the bottom
COUNTS = 22  # beat counts between strip and band


def columns(n: int, width: int) -> tuple[int, int, float]:
    """How ``n`` screen samples map onto ``width`` pixels: (columns, samples per column, pixels
    per column)."""
    cols = max(1, min(width // PX_PER_COLUMN, n))
    return cols, n // cols, width / cols


def strip_path(patient: Patient, end: int, width: int, height: float,
               first: int = 0, last: int | None = None) -> QtGui.QPainterPath:
    """Columns ``first``..``last`` of the patient's sweep up to sample ``end``, scaled into
    ``width`` x ``height`` pixels. The erase gap after ``end`` also hides the newest samples not
    yet played out (``LAG_S`` < it)."""
    y = patient.screen
    n = len(y)
    cols, k, colw = columns(n, width)
    last = cols if last is None else min(last, cols)
    first = max(0, min(first, last))
    blocks = y[first * k : last * k].reshape(last - first, k)
    pairs = np.column_stack([blocks.min(axis=1), blocks.max(axis=1)])  # NaN stays NaN: a gap
    gap = (np.arange(first, last) * k - end % n) % n < int(ERASE_S * patient.fs) + k
    pairs[gap] = np.nan
    x = np.repeat(np.arange(first, last, dtype=np.float64) * colw, 2)
    top, bottom = Y_RANGE[1], Y_RANGE[0]
    ys = (top - np.clip(pairs.ravel(), bottom, top)) / (top - bottom) * height
    return pg.arrayToQPath(x, ys.astype(np.float64), connect="finite")


class PatientTile(QtWidgets.QWidget):
    """Draws a :class:`Patient`; a click asks for that patient's full view."""

    clicked = QtCore.Signal(str)  # patient id

    def __init__(self, patient: Patient) -> None:
        super().__init__()
        self.patient = patient
        self.setMinimumSize(220, 150)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{patient.patient_id}: click for the full view")
        self.paints = 0
        self.still = False  # for a screenshot: a flashing alarm drawn in its lit half
        self._numbers: tuple = ()
        self._end = -1
        self._big = QtGui.QFont("DejaVu Sans", 26, QtGui.QFont.Weight.Bold)
        self._bold = QtGui.QFont("DejaVu Sans", 11, QtGui.QFont.Weight.Bold)
        self._small = QtGui.QFont("DejaVu Sans", 9)

    def alarm_colors(self, now: float, still: bool = False) -> tuple[str, str] | None:
        """(background, foreground) of the patient's most urgent alarm now, None without one."""
        alarm = self.patient.board.banner_alarm()
        return None if alarm is None else signal_colors(alarm, now, still)

    def strip_rect(self) -> QtCore.QRect:
        """Where the strip is drawn: the part a frame repaints when only the sweep moved."""
        return QtCore.QRect(MARGIN, HEAD, self.width() - 2 * MARGIN, self.height() - BAND - HEAD - COUNTS)

    def refresh(self, now: float) -> None:
        """Schedule a paint of what changed: the whole tile when numbers, state or the alarm
        signal did, else only the strip while the sweep moves (most frames)."""
        p = self.patient
        numbers = (p.version, p.board.version, p.state(now), self.alarm_colors(now))
        end = p.shown_end(now)
        if numbers != self._numbers:
            self._numbers, self._end = numbers, end
            self.update()
        elif end != self._end:
            self.update(self._moved(self._end, end))
            self._end = end

    def _moved(self, old: int, new: int) -> QtCore.QRect:
        """The part of the strip a sweep from sample ``old`` to ``new`` changes: the new samples
        and the erase gap's new place (the whole strip when that wraps around)."""
        strip, n = self.strip_rect(), len(self.patient.screen)
        cols, k, colw = columns(n, strip.width())
        p0 = old % n
        p1 = p0 + (new - old) + int(ERASE_S * self.patient.fs) + k
        if old < 0 or new < old or p1 >= cols * k:
            return strip
        c0, c1 = p0 // k - 1, p1 // k + 1
        x0 = int(c0 * colw) - 1
        return QtCore.QRect(strip.left() + x0, strip.top(), int((c1 - c0 + 1) * colw) + 3, strip.height()) & strip

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(self.patient.patient_id)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self.paints += 1
        now = time.monotonic()
        qp = QtGui.QPainter(self)
        strip = self.strip_rect()
        dirty = event.rect() & strip
        if not dirty.isEmpty():  # only the columns this paint covers: a frame's is a thin slice
            qp.fillRect(dirty, QtGui.QColor(colors.PANEL))
            _, _, colw = columns(len(self.patient.screen), strip.width())
            first = int((dirty.left() - strip.left()) / colw) - 1
            last = int((dirty.right() + 1 - strip.left()) / colw) + 2
            end = self._end if self._end >= 0 else self.patient.shown_end(now)
            qp.translate(strip.topLeft())
            qp.setPen(QtGui.QPen(QtGui.QColor(colors.TRACE), 1))  # 1 px: the fast line path, not the stroker
            qp.drawPath(strip_path(self.patient, end, strip.width(), strip.height(), first, last))
            qp.resetTransform()
        if not strip.contains(event.rect()):
            self._paint_numbers(qp, now)
        qp.end()

    def _paint_numbers(self, qp: QtGui.QPainter, now: float) -> None:
        """Everything but the strip: bed, state, HR, counts, the alarm band and frame."""
        p, w, h = self.patient, self.width(), self.height()
        strip = self.strip_rect()
        outside = QtGui.QRegion(self.rect()).subtracted(QtGui.QRegion(strip))
        for r in outside:
            qp.fillRect(r, QtGui.QColor(colors.PANEL))
        signal = self.alarm_colors(now, still=self.still)
        alarm = p.board.banner_alarm()
        if signal is not None and alarm is not None:
            bg, fg = signal
            qp.fillRect(0, h - BAND, w, BAND, QtGui.QColor(bg))
            qp.setPen(QtGui.QPen(QtGui.QColor(colors.PRIORITY_STYLES[alarm.priority].background), 3))
            qp.drawRect(1, 1, w - 3, h - 3)
            qp.setPen(QtGui.QColor(fg))
            qp.setFont(self._bold)
            ack = "  ACK" if alarm.acknowledged else ""
            ended = "" if alarm.active else "  ended"
            more = p.board.shown_count() - 1
            text = f"{alarm.title}{ended}{ack}" + (f"  +{more}" if more > 0 else "")
            qp.drawText(QtCore.QRectF(MARGIN, h - BAND, w - 2 * MARGIN, BAND),
                        QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignLeft, text)
        # header: bed and connection state on the left, HR on the right
        qp.setFont(self._bold)
        qp.setPen(QtGui.QColor(colors.TEXT))
        qp.drawText(MARGIN, 18, p.patient_id)
        state = p.state(now)
        qp.setFont(self._small)
        qp.setPen(QtGui.QColor(colors.STATE_COLORS.get(state, colors.DIM_TEXT)))
        gaps = (p.status.get("continuity") or {}).get("gaps", 0)
        qp.drawText(MARGIN, 36, state + (f"  gaps {gaps}" if gaps else ""))  # counted by the worker
        qp.setFont(self._big)
        qp.setPen(QtGui.QColor(colors.TRACE))
        hr = p.status.get("heart_rate_bpm")
        right = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        qp.drawText(QtCore.QRectF(0, 0, w - MARGIN - 34, HEAD), right, "--" if hr is None else f"{hr:.0f}")
        qp.setFont(self._small)
        qp.drawText(QtCore.QRectF(0, 0, w - MARGIN, HEAD), right, "bpm")
        # beat counts, in the class colours
        counts = p.status.get("beats_by_class") or {}
        x = float(MARGIN)
        metrics = qp.fontMetrics()
        for c in AAMI_CLASSES:
            text = f"{c} {counts.get(c, 0)}"
            qp.setPen(QtGui.QColor(colors.class_color(c)))
            qp.drawText(QtCore.QPointF(x, h - BAND - 6), text)
            x += metrics.horizontalAdvance(text) + 10
