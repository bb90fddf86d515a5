"""The view's palette: beat-class colours and IEC 60601-1-8 alarm colours, in one place.

Every widget takes its colours from here so a class or a priority looks the same in the trace,
the legend, the counters, the inspector and the alarm list.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecg_monitor.detector.beats import AAMI_CLASSES

BACKGROUND = "#000000"
PANEL = "#0b0f14"
TEXT = "#d8dee9"
DIM_TEXT = "#7f8c9a"
TRACE = "#00e676"  # the classic monitor green
GRID_MAJOR = "#123d24"  # 5 mm / 0.5 mV squares
GRID_MINOR = "#0a2015"  # 1 mm / 0.1 mV squares

#: One colour per AAMI class, chosen to stay distinct from each other on black and from the
#: green trace: N is quiet (white), ectopy is loud (S amber, V red, F magenta), Q is grey.
CLASS_COLORS: dict[str, str] = {
    "N": "#f5f5f5",
    "S": "#ffb300",
    "V": "#ff3b30",
    "F": "#e040fb",
    "Q": "#9e9e9e",
}
CLASS_NAMES: dict[str, str] = {
    "N": "normal",
    "S": "supraventricular",
    "V": "ventricular",
    "F": "fusion",
    "Q": "unclassified",
}
assert tuple(CLASS_COLORS) == AAMI_CLASSES

STATE_COLORS: dict[str, str] = {
    "connected": "#00e676",
    "disconnected": "#ff3b30",
    "ended": "#9e9e9e",
    "waiting": "#ffb300",
}


@dataclass(frozen=True)
class PriorityStyle:
    """How IEC 60601-1-8 says an alarm priority looks (Table 3) and sounds (Table 4).

    High: red, flashing at 1.4-2.8 Hz; medium: yellow, flashing at 0.4-0.8 Hz; low: cyan (or
    yellow), steady. Flashing uses a 20-60 % duty cycle; we use 50 %. Sound bursts repeat every
    2.5-15 s (high) or 2.5-30 s (medium); low priority may stay silent, and does here.
    """

    background: str
    foreground: str
    flash_hz: float  # 0: steady
    rank: int  # higher wins the banner
    burst_every_s: float | None  # None: no sound


PRIORITY_STYLES: dict[str, PriorityStyle] = {
    "high": PriorityStyle("#ff0000", "#ffffff", 2.0, 3, 3.0),
    "medium": PriorityStyle("#ffff00", "#000000", 0.6, 2, 8.0),
    "low": PriorityStyle("#00ffff", "#000000", 0.0, 1, None),
}


def class_color(label: str) -> str:
    """Colour of a beat class; an unknown label is drawn as Q (unclassifiable)."""
    return CLASS_COLORS.get(label, CLASS_COLORS["Q"])
