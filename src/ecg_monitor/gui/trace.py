"""The ECG trace as a bedside monitor draws it: a fixed 10 s sweep with an erase bar.

Why a sweep and not a scrolling strip: the waveform stands still on the screen, so a beat can be
read (and clicked) where it is drawn, and the new data always appears at the moving erase bar.
It is also what makes the view cheap: a scrolling strip changes every pixel every frame, a
sweep only the strip around the erase bar. The trace is drawn as one curve per ``SEGMENT_S`` of
screen, and a frame updates only the segments the cursor and the erase bar touched, so Qt
repaints that strip alone (the grid is cached as a pixmap; beat marks change only when a beat
comes into view or leaves it). This is how bedside monitors draw at 25 mm/s.

Data arrival never repaints: ``append``/``add_beat`` only write into the history; the window's
frame clock calls ``advance`` and ``redraw`` at a fixed rate. Data comes in chunks (a tenth of a
second or more apart), so drawing up to the newest sample would move the sweep in jumps. Instead
a play-out cursor moves every frame at the rate the data arrives (1x, 4x...) and trails the newest
sample by ``LAG_S``; it catches up smoothly when it drifts, and jumps only after a freeze or a
burst that left it more than ``MAX_LAG_S`` behind.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.detector.ringbuffer import RingBuffer
from ecg_monitor.gui import colors
from ecg_monitor.gui.plots import static_plot

MM_PER_S = 25.0  # paper speed
MM_PER_MV = 10.0  # gain
QRS_BEFORE_S = 0.08  # part of the trace coloured by the beat's class, around the R mark
QRS_AFTER_S = 0.12
LAG_S = 0.15  # how far the sweep trails the newest sample
MAX_LAG_S = 1.0  # further behind than this, the sweep jumps instead of catching up
CATCH_UP = 0.1  # fraction of the cursor's error corrected per frame
RATE_SPAN_S = 2.0  # arrival rate is measured over this much wall time
SEGMENT_S = 0.5  # screen width of one trace curve: the unit a frame redraws


@dataclass(frozen=True, slots=True)
class ShownBeat:
    """A beat as the view keeps it: where it is and what the classifier said."""

    sample: int
    label: str
    probabilities: tuple[float, ...] | None = None


def _letter_symbol(letter: str) -> QtGui.QPainterPath:
    """A scatter symbol drawing ``letter``, centred and scaled to the unit box pyqtgraph expects."""
    path = QtGui.QPainterPath()
    font = QtGui.QFont("DejaVu Sans")
    font.setBold(True)
    path.addText(0, 0, font, letter)
    box = path.boundingRect()
    scale = 1.0 / max(box.width(), box.height())
    tr = QtGui.QTransform()
    tr.scale(scale, scale)  # symbols are drawn in device pixels: y points down, as in the font
    tr.translate(-box.x() - box.width() / 2, -box.y() - box.height() / 2)
    return tr.map(path)


def grid_segments(x_max: float, y_min: float, y_max: float, dx: float, dy: float) -> np.ndarray:
    """End points of the vertical and horizontal grid lines, as pairs for ``connect='pairs'``."""
    xs = np.arange(0.0, x_max + 1e-9, dx)
    ys = np.arange(np.ceil(y_min / dy) * dy, y_max + 1e-9, dy)
    vert = np.column_stack([np.repeat(xs, 2), np.tile([y_min, y_max], len(xs))])
    horiz = np.column_stack([np.tile([0.0, x_max], len(ys)), np.repeat(ys, 2)])
    return np.vstack([vert, horiz])


class SweepTrace(pg.PlotWidget):
    """Sweep trace, ECG-paper grid and class-coloured beat marks for the last ``window_s``."""

    beatClicked = QtCore.Signal(object)  # the ShownBeat nearest to the click

    def __init__(
        self,
        fs: float,
        window_s: float = 10.0,
        erase_s: float = 0.3,
        y_range: tuple[float, float] = (-1.6, 2.4),
        history_s: float = 30.0,
        grid: bool = True,
    ) -> None:
        super().__init__(background=colors.BACKGROUND)
        self.fs = fs
        self.window_s = window_s
        self.n_window = int(round(window_s * fs))
        self.n_erase = int(round(erase_s * fs))
        self.y_range = y_range
        self.history = RingBuffer(int(round(max(history_s, window_s) * fs)))
        self.beats: deque[ShownBeat] = deque(maxlen=2048)
        self.dirty = False
        self.cursor = 0  # the sweep: samples before this index are drawn
        self.paints = 0  # real paints of this widget (the frame rate a person sees)
        self._pos = 0.0  # cursor with its fraction
        self._last_advance: float | None = None
        self._arrivals: deque[tuple[float, int]] = deque()  # (monotonic time, end) per append
        self._x = np.arange(self.n_window) / fs
        self._y = np.full(self.n_window, np.nan)  # the screen: sample values by sweep position
        self._drawn = (0, 0)  # sample range [lo, hi) on screen after the last redraw
        self._marked: list[ShownBeat] = []  # beats marked on screen after the last redraw
        self._qrs = (int(round(QRS_BEFORE_S * fs)), int(round(QRS_AFTER_S * fs)))
        self._seg = max(1, int(round(SEGMENT_S * fs)))

        item = static_plot(self)
        item.hideAxis("left")
        item.hideAxis("bottom")
        item.setRange(xRange=(0, window_s), yRange=y_range, padding=0.0)
        item.getViewBox().setDefaultPadding(0.0)
        if grid:
            self._add_grid()

        pen = pg.mkPen(colors.TRACE, width=2)
        self.segments = [item.plot(pen=pen, connect="finite") for _ in range(0, self.n_window, self._seg)]
        for seg in self.segments:
            seg.setDownsampling(auto=True, method="peak")
        # Ectopic QRS complexes are redrawn in their class colour on top of the green trace.
        self.class_curves = {
            label: item.plot(pen=pg.mkPen(colors.class_color(label), width=2.5), connect="finite")
            for label in AAMI_CLASSES
            if label != "N"
        }
        self.r_marks = pg.ScatterPlotItem(size=7, pen=None)
        self.letters = pg.ScatterPlotItem(size=13, pen=None)
        item.addItem(self.r_marks)
        item.addItem(self.letters)
        self._symbols = {label: _letter_symbol(label) for label in AAMI_CLASSES}
        self._brushes = {label: pg.mkBrush(colors.class_color(label)) for label in AAMI_CLASSES}
        scale = pg.TextItem(
            f"II   {MM_PER_S:g} mm/s   {MM_PER_MV:g} mm/mV", color=colors.DIM_TEXT, anchor=(0, 1)
        )
        scale.setPos(0.05, y_range[0])
        item.addItem(scale)
        self.scene().sigMouseClicked.connect(self._on_click)

    def _add_grid(self) -> None:
        """ECG paper: 1 mm squares (0.04 s x 0.1 mV) and 5 mm squares (0.2 s x 0.5 mV)."""
        lo, hi = self.y_range
        for mm, color in ((1, colors.GRID_MINOR), (5, colors.GRID_MAJOR)):
            pts = grid_segments(self.window_s, lo, hi, mm / MM_PER_S, mm / MM_PER_MV)
            line = pg.PlotCurveItem(pts[:, 0], pts[:, 1], connect="pairs", pen=pg.mkPen(color))
            line.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)  # drawn once
            self.getPlotItem().addItem(line)

    # ------------------------------------------------------------------ data in (no drawing)
    @property
    def end(self) -> int:
        """Absolute index one past the newest sample received."""
        return self.history.end

    def reset(self) -> None:
        """Forget everything (a new source started its numbering again)."""
        self.history = RingBuffer(self.history.capacity)
        self.beats.clear()
        self._arrivals.clear()
        self._pos = 0.0
        self.cursor = 0
        self._drawn = (0, 0)
        self._y[:] = np.nan
        for seg in self.segments:
            seg.setData([], [])
        self.dirty = True

    def append(self, first_sample: int, samples: np.ndarray) -> int:
        """Store samples starting at absolute index ``first_sample``; returns samples missed.

        Missed samples (a jump forward: the publisher dropped messages for this slow subscriber,
        or the link lost them) are stored as NaN so the trace shows the gap where it happened.
        """
        samples = np.asarray(samples, dtype=np.float64)
        missed = first_sample - self.end
        if missed < 0:
            if first_sample + len(samples) <= self.end - self.history.capacity or first_sample == 0:
                self.reset()  # numbering started over: a new stream
                missed = first_sample
            else:
                samples = samples[-missed:]  # overlap with what we have: keep only the new part
                missed = 0
        if missed:
            # A read-only broadcast view: no allocation, however long the gap.
            self.history.extend(np.broadcast_to(np.float64(np.nan), (missed,)))
        self.history.extend(samples)
        now = time.monotonic()
        self._arrivals.append((now, self.end))
        while self._arrivals[0][0] < now - RATE_SPAN_S:
            self._arrivals.popleft()
        return max(missed, 0)

    def add_beat(self, beat: ShownBeat) -> None:
        self.beats.append(beat)
        while self.beats[0].sample < self.history.start:  # its samples are gone: never drawn again
            self.beats.popleft()
        self.dirty = beat.sample < self.cursor or self.dirty

    def arrival_rate(self) -> float:
        """Samples per second of wall time arriving lately (fs x replay speed); fs until known."""
        if len(self._arrivals) < 2:
            return self.fs
        (t0, e0), (t1, e1) = self._arrivals[0], self._arrivals[-1]
        return (e1 - e0) / (t1 - t0) if t1 - t0 >= 0.2 else self.fs

    def advance(self, now: float) -> None:
        """Move the play-out cursor for a frame drawn at ``now`` (monotonic seconds)."""
        dt = 0.0 if self._last_advance is None else now - self._last_advance
        self._last_advance = now
        rate = self.arrival_rate()
        target = self.end - LAG_S * rate
        pos = self._pos + rate * dt
        pos += CATCH_UP * (target - pos)
        if pos < self.end - MAX_LAG_S * rate:
            pos = target
        self._pos = min(max(pos, float(self.history.start)), float(self.end))
        if int(self._pos) != self.cursor:
            self.cursor = int(self._pos)
            self.dirty = True

    def window(self, center: int, before_s: float, after_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Times (s, relative to ``center``) and samples around ``center``; NaN where not held."""
        lo = center - int(round(before_s * self.fs))
        hi = center + int(round(after_s * self.fs))
        y = np.full(hi - lo, np.nan)
        a, b = max(lo, self.history.start), min(hi, self.end)
        if a < b:
            y[a - lo : b - lo] = self.history.get(a, b)
        return (np.arange(lo, hi) - center) / self.fs, y

    # ------------------------------------------------------------------ drawing
    def visible_start(self) -> int:
        """Oldest sample still on screen: one sweep back from the cursor, less the erase bar."""
        return max(self.history.start, self.cursor - self.n_window + self.n_erase, 0)

    def visible_beats(self) -> list[ShownBeat]:
        """Beats whose whole coloured QRS is on screen (so a mark never outlives its complex)."""
        before, after = self._qrs
        lo, hi = self.visible_start() + before, self.cursor - after
        return [b for b in self.beats if lo <= b.sample < hi]

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self.paints += 1
        super().paintEvent(event)

    def redraw(self) -> bool:
        """Redraw what changed since the last frame; True if anything did."""
        if not self.dirty:
            return False
        self.dirty = False
        lo, hi = self.visible_start(), self.cursor
        old_lo, old_hi = self._drawn
        if hi - old_hi >= self.n_window or hi < old_hi or lo < old_lo:
            changed = np.arange(self.n_window)  # a jump or a reset: everything
            self._y[:] = np.nan
            new_lo = lo
        else:
            changed = np.r_[np.arange(old_lo, lo), np.arange(old_hi, hi)] % self.n_window
            self._y[np.arange(old_lo, lo) % self.n_window] = np.nan  # under the erase bar
            new_lo = max(old_hi, lo)
        if new_lo < hi:
            # Monitors clip a tall complex at the edge of the strip, they do not rescale.
            self._y[np.arange(new_lo, hi) % self.n_window] = np.clip(self.history.get(new_lo, hi), *self.y_range)
        self._drawn = (lo, hi)
        # A segment's curve ends on the next segment's first sample, so it changes with it too.
        touched = np.unique(np.r_[changed // self._seg, (changed[changed % self._seg == 0] - 1) // self._seg])
        for k in touched[(touched >= 0) & (touched < len(self.segments))]:
            a, b = k * self._seg, min((k + 1) * self._seg + 1, self.n_window)
            self.segments[k].setData(self._x[a:b], self._y[a:b], connect="finite")
        beats = self.visible_beats()
        if beats != self._marked:
            self._marked = beats
            self._mark(beats)
        return True

    def _mark(self, beats: list[ShownBeat]) -> None:
        """R marks, class letters and coloured QRS complexes of the beats on screen."""
        pos = np.array([b.sample % self.n_window for b in beats], dtype=np.int64)
        labels = [b.label if b.label in self._symbols else "Q" for b in beats]
        before, after = self._qrs
        for label, curve in self.class_curves.items():
            # Each complex followed by a NaN so connect="finite" leaves the gaps between them.
            parts = [np.arange(p - before, p + after + 1) for p, lab in zip(pos, labels) if lab == label]
            idx = np.concatenate([np.r_[part[(part >= 0) & (part < self.n_window)], -1] for part in parts]) \
                if parts else np.zeros(0, dtype=np.int64)
            y = np.where(idx >= 0, self._y[idx], np.nan)
            curve.setData(self._x[idx], y, connect="finite")
        brushes = [self._brushes[lab] for lab in labels]
        self.r_marks.setData(x=self._x[pos], y=np.nan_to_num(self._y[pos]), brush=brushes, data=beats)
        top = self.y_range[1] - 0.15
        self.letters.setData(x=self._x[pos], y=np.full(len(pos), top),
                             symbol=[self._symbols[lab] for lab in labels], brush=brushes, data=beats)

    def _on_click(self, event) -> None:
        """Pick the visible beat nearest to the click (within 0.3 s) and announce it."""
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        x = self.getPlotItem().getViewBox().mapSceneToView(event.scenePos()).x()
        beats = self.visible_beats()
        if not beats:
            return
        dist = [abs((b.sample % self.n_window) / self.fs - x) for b in beats]
        best = int(np.argmin(dist))
        if dist[best] <= 0.3:
            self.beatClicked.emit(beats[best])
