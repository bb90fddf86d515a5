"""Behaviour shared by every plot of the view: a monitor's plots are read, not explored."""

from __future__ import annotations

import pyqtgraph as pg


def static_plot(widget: pg.PlotWidget) -> pg.PlotItem:
    """Turn off pan/zoom, the context menu and the auto-range button; return the plot item."""
    item = widget.getPlotItem()
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    item.setMenuEnabled(False)
    return item
