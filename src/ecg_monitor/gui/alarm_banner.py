"""The alarm banner across the top of the window, in IEC 60601-1-8 colours and flash rates."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ecg_monitor.gui import colors
from ecg_monitor.gui.alarm_board import AlarmBoard, ViewAlarm


def clock(seconds: float) -> str:
    """Stream time as h:mm:ss, the way monitors print alarm times."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def describe(alarm: ViewAlarm) -> str:
    """One-line banner text of an alarm. No heart rate of its own: the one heart rate on screen
    is the large display beside the trace (the worker's ``heart_rate_bpm``), so the banner and
    the display can never disagree."""
    state = "" if alarm.active else f"   ENDED after {alarm.lasted}"
    ack = "   ACK" if alarm.acknowledged else ""
    detail = f"  {alarm.message}" if alarm.message else ""
    return f"{alarm.title}{detail}   at {clock(alarm.onset_s)}{state}{ack}"


def audio_button_text(paused_s: float) -> str:
    """The audio button says what pressing it does, and while audio is paused, for how long."""
    if paused_s <= 0:
        return "Pause audio (2 min)"
    return f"AUDIO PAUSED {int(paused_s) // 60}:{int(paused_s) % 60:02d} (resume)"


def signal_colors(alarm: ViewAlarm, now: float, still: bool = False) -> tuple[str, str]:
    """(background, foreground) of an alarm's visual signal at ``now`` (monotonic s): its
    priority's colours, or dark in the off half of its flash period while unacknowledged and
    active. ``still``: always the lit half (for screenshots)."""
    style = colors.PRIORITY_STYLES[alarm.priority]
    flashing = style.flash_hz > 0 and not alarm.acknowledged and alarm.active
    lit = still or not flashing or (now * style.flash_hz) % 1.0 < 0.5
    return (style.background, style.foreground) if lit else (colors.PANEL, style.background)


class AlarmBanner(QtWidgets.QFrame):
    """Shows the most urgent alarm of an :class:`AlarmBoard`; flashes by priority.

    ``refresh`` is called by the window's frame clock; the style sheet is only touched when the
    text or colour really changes, so an idle banner costs nothing per frame.
    """

    acknowledgeRequested = QtCore.Signal()
    audioPauseRequested = QtCore.Signal(bool)  # True: pause the sound, False: sound again

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("alarmBanner")
        self.setMinimumHeight(46)
        self.label = QtWidgets.QLabel()
        self.label.setObjectName("alarmText")
        font = self.label.font()
        font.setPointSize(17)
        font.setBold(True)
        self.label.setFont(font)
        self.ack_button = QtWidgets.QPushButton("Acknowledge")
        self.pause_button = QtWidgets.QPushButton(audio_button_text(0.0))
        self.pause_button.setCheckable(True)  # pressed in while the audio is paused
        self.pause_button.setObjectName("audioButton")
        self.ack_button.clicked.connect(self.acknowledgeRequested)
        self.pause_button.clicked.connect(self.audioPauseRequested)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(12, 4, 8, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.ack_button)
        row.addWidget(self.pause_button)
        self.priority: str | None = None  # priority shown now, None when no alarm
        self.colors: tuple[str, str] = ("", "")  # (background, foreground) painted now
        self._shown: tuple[str, str, str, str] | None = None

    def refresh(self, board: AlarmBoard, now: float, still: bool = False) -> None:
        """Show the board's banner alarm at time ``now`` (monotonic s, drives the flashing).

        ``still``: for a screenshot, draw a flashing banner in its lit half.
        """
        alarm = board.banner_alarm()
        paused = board.audio_paused_left(now)
        audio = audio_button_text(paused)
        if alarm is None:
            self.priority = None
            bg, fg, text = colors.PANEL, colors.DIM_TEXT, "No active alarms"
        else:
            self.priority = alarm.priority
            bg, fg = signal_colors(alarm, now, still)
            more = board.shown_count() - 1
            text = describe(alarm) + (f"   (+{more} more)" if more > 0 else "")
        self.colors = (bg, fg)
        state = (bg, fg, text, audio)
        if state == self._shown:
            return
        self._shown = state
        self.label.setText(text)
        self.pause_button.setText(audio)
        self.pause_button.setChecked(paused > 0)
        self.setStyleSheet(
            f"#alarmBanner {{ background: {bg}; border-radius: 4px; }}"
            f"#alarmBanner QLabel {{ color: {fg}; background: transparent; }}"
            f"#alarmBanner QPushButton {{ background: {colors.PANEL}; color: {colors.TEXT}; "
            f"border: 1px solid #5c6b7a; border-radius: 4px; padding: 4px 10px; }}"
            f"#alarmBanner QPushButton:checked {{ background: #3a4a5c; border-color: {colors.TEXT}; }}"
        )
