"""Refuse the one PySide6 release the view cannot run on, with a message that says what to do.

PySide6 6.12.0 drops references it does not own: every ``Signal.emit()`` decrements ``True``'s
reference count once too often, and pyqtgraph's ``setData`` paths do the same to ``None``
(thousands per second at 50 fps). On Python 3.12+ both objects are immortal and nothing shows;
on 3.11 the count reaches zero within seconds and the interpreter aborts with "Fatal Python
error: none_dealloc / bool_dealloc". 6.11.3 (and earlier) are clean. A monitor that dies after a
few seconds is worse than one that does not start, so the view checks at import.
"""

from __future__ import annotations

import sys

import PySide6

BROKEN = {"6.12.0"}


def check_pyside(version: str = PySide6.__version__, python: tuple[int, int] = sys.version_info[:2]) -> None:
    """Raise ``ImportError`` on a PySide6 release known to crash this interpreter."""
    if version in BROKEN and python < (3, 12):
        raise ImportError(
            f"PySide6 {version} corrupts reference counts on Python {python[0]}.{python[1]} and the "
            f"live view would abort within seconds; install another release, e.g. "
            f"pip install 'PySide6-Essentials==6.11.3' 'shiboken6==6.11.3'"
        )
