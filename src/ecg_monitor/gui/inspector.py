"""Beat inspector: a clicked beat's window, its class probabilities and a saliency overlay.

The window comes from the view's own trace history; the probabilities from the beat message.
The classifier publishes no per-beat saliency on the wire, so the overlay is the mean saliency
of the beat's class stored with the model (``detector/models/beat_classifier.json``): where the
network looks, on average, for that class. Without that file the inspector says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.detector.classifier import SHIPPED_METADATA, ModelError, load_metadata
from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_banner import clock
from ecg_monitor.gui.plots import static_plot
from ecg_monitor.gui.trace import ShownBeat, SweepTrace

BEFORE_S = 0.35
AFTER_S = 0.55


@dataclass(frozen=True)
class ClassSaliency:
    """Mean saliency per class over the classifier's input window."""

    before_s: float  # window start relative to the R mark (positive number)
    after_s: float
    by_class: dict[str, np.ndarray]


def load_saliency(path: Path = SHIPPED_METADATA) -> tuple[ClassSaliency | None, str]:
    """The classifier's mean saliency per class, or None and a note saying why not."""
    try:
        meta = load_metadata(path)
        feats = meta["features"]
        by_class = {c: np.asarray(v, dtype=float) for c, v in meta["mean_saliency"].items()}
        return ClassSaliency(float(feats["pre_s"]), float(feats["post_s"]), by_class), ""
    except ModelError as exc:
        return None, f"no saliency overlay: {exc}"
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"no saliency overlay: {path.name} has no usable mean_saliency ({exc!r})"


class BeatInspector(QtWidgets.QWidget):
    """Shows one beat in detail; fed by the trace's ``beatClicked``."""

    def __init__(self, trace: SweepTrace, saliency_path: Path = SHIPPED_METADATA) -> None:
        super().__init__()
        self.trace = trace
        self.saliency, self.note = load_saliency(saliency_path)
        self.beat: ShownBeat | None = None
        self.pinned = False  # the operator chose a beat; stop following the latest ectopic one
        self.title = QtWidgets.QLabel("Click a beat on the trace to inspect it")
        self.title.setObjectName("inspectorTitle")
        self.footnote = QtWidgets.QLabel(self.note)
        self.footnote.setObjectName("inspectorNote")
        self.footnote.setWordWrap(True)

        self.wave = pg.PlotWidget(background=colors.BACKGROUND)
        wave = static_plot(self.wave)
        for side, unit in (("bottom", "s from R"), ("left", "mV")):
            wave.getAxis(side).setLabel(unit)
            wave.getAxis(side).enableAutoSIPrefix(False)
        self.saliency_fill = pg.PlotCurveItem(fillLevel=0.0, pen=None)
        wave.addItem(self.saliency_fill)
        self.curve = wave.plot(pen=pg.mkPen(colors.TRACE, width=2), connect="finite")
        wave.addItem(pg.InfiniteLine(0.0, pen=pg.mkPen(colors.DIM_TEXT, style=pg.QtCore.Qt.PenStyle.DotLine)))

        self.probs = pg.PlotWidget(background=colors.PANEL)
        probs = static_plot(self.probs)
        probs.setYRange(0, 1, padding=0.05)
        probs.getAxis("bottom").setTicks([list(enumerate(AAMI_CLASSES))])
        self.bars = pg.BarGraphItem(x=np.arange(len(AAMI_CLASSES)), height=np.zeros(len(AAMI_CLASSES)),
                                    width=0.7, brushes=[colors.class_color(c) for c in AAMI_CLASSES])
        probs.addItem(self.bars)

        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.wave, 3)
        plots.addWidget(self.probs, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(plots, 1)
        layout.addWidget(self.footnote)

    def follow(self, beats: list[ShownBeat]) -> None:
        """Until the operator clicks a beat, show the latest ectopic (non-N) beat of ``beats`` by
        itself (drawn once per message, however many ectopic beats it holds)."""
        ectopic = [b for b in beats if b.label != "N"]
        if not self.pinned and ectopic:
            self.show_beat(ectopic[-1], pin=False)

    def show_beat(self, beat: ShownBeat, pin: bool = True) -> None:
        """Fill every part of the inspector for ``beat`` (on click or per ectopic beat, not per frame)."""
        self.beat = beat
        self.pinned = self.pinned or pin
        t, y = self.trace.window(beat.sample, BEFORE_S, AFTER_S)
        self.curve.setData(t, y, connect="finite")
        name = colors.CLASS_NAMES.get(beat.label, beat.label)
        color = colors.class_color(beat.label)
        probs = np.zeros(len(AAMI_CLASSES)) if beat.probabilities is None else np.asarray(beat.probabilities)
        self.bars.setOpts(height=probs)
        p = f"  p = {probs[AAMI_CLASSES.index(beat.label)]:.2f}" if beat.probabilities else "  (no probabilities)"
        how = "" if pin else "  (latest ectopic beat; click one to choose)"
        self.title.setText(
            f"<span style='color:{color}; font-weight:bold'>{beat.label} ({name})</span>"
            f"  beat at {clock(beat.sample / self.trace.fs)}{p}{how}"
        )
        self._overlay(beat.label, y)

    def _overlay(self, label: str, y: np.ndarray) -> None:
        """Mean saliency of ``label``, scaled to the beat's amplitude, as a translucent fill."""
        curve = None if self.saliency is None else self.saliency.by_class.get(label)
        if curve is None or not np.isfinite(y).any():
            self.saliency_fill.setData([], [])
            self.footnote.setText(self.note or f"no saliency stored for class {label}")
            return
        step = (self.saliency.before_s + self.saliency.after_s) / len(curve)
        t = -self.saliency.before_s + np.arange(len(curve)) * step
        span = float(np.nanmax(y) - np.nanmin(y)) or 1.0
        height = curve / (np.max(np.abs(curve)) or 1.0) * span
        self.saliency_fill.setData(t, height + float(np.nanmin(y)))
        self.saliency_fill.setFillLevel(float(np.nanmin(y)))
        self.saliency_fill.setBrush(pg.mkBrush(colors.class_color(label) + "66"))
        self.footnote.setText(f"shaded: mean saliency of class {label} (classifier model)")
