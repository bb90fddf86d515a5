"""Latency panel: the worker's per-beat latency against the 15 ms budget, and the view's frame rate.

Two sources, labelled as such:

* the worker measures every beat (compute: chunk received -> beat published; end-to-end: sample
  acquired -> beat published) and reports p50/p99 over its last beats in each status message;
* the view measures, per beat, the time from the worker receiving the chunk to the beat reaching
  the view (compute + delivery); those values fill the histogram.

The histogram is redrawn at most twice a second: it is for a person to glance at, and redrawing
it every frame would cost the trace its frame rate.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ecg_monitor.gui import colors
from ecg_monitor.gui.plots import static_plot

BUDGET_MS = 15.0
HIST_MAX_MS = 30.0
HIST_BIN_MS = 0.5
REDRAW_S = 0.5
WORKER_SERIES = {"compute": "#4fc3f7", "end_to_end": "#ffd54f"}  # status latency_ms keys
VIEW_COLOR = "#ce93d8"


def verdict(p99: float) -> str:
    return "ok" if p99 <= BUDGET_MS else "OVER BUDGET"


class LatencyPanel(QtWidgets.QWidget):
    """Text figures (p50/p99 per series, frame rate) over a small histogram with the budget line."""

    def __init__(self, keep: int = 1000) -> None:
        super().__init__()
        self.delivery: deque[float] = deque(maxlen=keep)  # per beat, ms, measured by the view
        self.worker: dict[str, Any] = {}  # the worker's latency_ms summary
        self.frame_rate = 0.0
        self._next_redraw = 0.0
        self.text = QtWidgets.QLabel()
        self.text.setObjectName("latencyText")
        self.text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.plot = pg.PlotWidget(background=colors.PANEL)
        self.plot.setMinimumHeight(110)
        item = static_plot(self.plot)
        item.setXRange(0, HIST_MAX_MS, padding=0)
        item.getAxis("bottom").setLabel("ms, chunk received by worker -> beat at view")
        item.getAxis("left").setWidth(28)
        budget = pg.mkPen("#ff5252", width=1.5, style=QtCore.Qt.PenStyle.DashLine)
        item.addItem(pg.InfiniteLine(BUDGET_MS, pen=budget))
        self._edges = np.arange(0.0, HIST_MAX_MS + HIST_BIN_MS, HIST_BIN_MS)
        self.histogram = item.plot(stepMode="center", fillLevel=0, pen=pg.mkPen(VIEW_COLOR),
                                   brush=pg.mkBrush(VIEW_COLOR + "66"))
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addWidget(self.plot, 1)

    def redraw(self, now: float) -> bool:
        """Redraw text and histogram if ``REDRAW_S`` passed since the last redraw."""
        if now < self._next_redraw:
            return False
        self._next_redraw = now + REDRAW_S
        rows = []
        for key, color in WORKER_SERIES.items():
            s = self.worker.get(key) or {}
            figures = "--" if s.get("p99") is None else (
                f"p50 {s['p50']:.2f} &nbsp;p99 {s['p99']:.2f} ms &nbsp;{verdict(s['p99'])} (n={s.get('n', 0)})"
            )
            rows.append(f"<span style='color:{color}'>worker {key.replace('_', '-')}</span> &nbsp;{figures}")
        values = np.fromiter(self.delivery, dtype=float)
        if values.size:
            p50, p99 = np.percentile(values, [50, 99])
            figures = f"p50 {p50:.2f} &nbsp;p99 {p99:.2f} ms (n={values.size})"
        else:
            figures = "--"
        rows.append(f"<span style='color:{VIEW_COLOR}'>■ beat to view, incl. frame wait</span> &nbsp;{figures}")
        rows.append(f"budget {BUDGET_MS:g} ms &nbsp;&nbsp; view <b>{self.frame_rate:.0f} fps</b>")
        self.text.setText("<br>".join(rows))
        counts, _ = np.histogram(np.clip(values, 0, HIST_MAX_MS - 1e-9), bins=self._edges)
        self.histogram.setData(self._edges, counts)
        return True
