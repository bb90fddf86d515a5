"""The system libraries Qt's X11 (xcb) platform plugin needs, checked before the view starts.

pip's PySide6 wheel brings Qt but not the X11 client libraries it links to. On a bare Linux box
Qt then aborts the view process (SIGABRT) and names at most one library, often not the one
missing. So the monitor asks ``ldd`` what the xcb plugin cannot resolve (plus ``libxcb-cursor``,
which Qt >= 6.5 loads at run time), before any process starts, and names the Debian/Ubuntu
packages that provide them.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CURSOR_LIB = "libxcb-cursor.so.0"
#: Libraries whose Debian package name does not follow the soname (``libxcb-icccm.so.4`` ->
#: ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``).
PACKAGE_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0"}



def display_problem() -> str:
    """Why no window can open here ('' when one can): then the monitor runs headless, and the
    central station, which is a window, refuses to start."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return ""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    return "no display: DISPLAY and WAYLAND_DISPLAY are unset"

def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``, by Debian's library naming policy."""
    if soname in PACKAGE_EXCEPTIONS:
        return PACKAGE_EXCEPTIONS[soname]
    m = re.fullmatch(r"(lib.+?)\.so\.(\d+)(?:\..*)?", soname)
    if m is None:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def not_found(ldd_output: str) -> list[str]:
    """Sonames ``ldd`` printed as ``=> not found``, once each, in order; Qt's own libraries
    (a broken PySide6 install, not a system package) are left out."""
    out: list[str] = []
    for line in ldd_output.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+not found", line)
        if m and m.group(1) not in out and not m.group(1).startswith(("libQt6", "libpyside6", "libshiboken6")):
            out.append(m.group(1))
    return out


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so`` (None when PySide6 is not installed or has no xcb plugin)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_xcb_libraries(plugin: Path | None = None) -> list[str]:
    """Sonames the xcb platform plugin needs and cannot find ([] when the view will not use xcb:
    another platform is asked for, or this is not Linux)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return []
    plugin = plugin or xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    result = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30)
    missing = not_found(result.stdout)
    if ctypes.util.find_library("xcb-cursor") is None and CURSOR_LIB not in missing:
        missing.append(CURSOR_LIB)
    return missing


def xcb_problem() -> str:
    """One line saying which libraries to install for the live view, '' when nothing is missing."""
    missing = missing_xcb_libraries()
    if not missing:
        return ""
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (f"the live view cannot start: Qt's X11 plugin needs {', '.join(missing)}. Install them "
            f"(Debian/Ubuntu: sudo apt-get install {packages}) or run with --headless")
