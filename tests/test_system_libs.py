"""The live view's system-library check: what ldd reports missing, and the packages named."""

from __future__ import annotations

import pytest

from ecg_monitor.app import cli as monitor
from ecg_monitor.gui import system_libs

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd3b9f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f1c2d000000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibQt6Gui.so.6 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c2ce00000)
"""


def test_ldd_output_gives_each_missing_system_library_once() -> None:
    assert system_libs.not_found(LDD) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"]


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libEGL.so.1", "libegl1"), ("libglib-2.0.so.0", "libglib2.0-0"),
])
def test_debian_package_names(soname: str, package: str) -> None:
    assert system_libs.debian_package(soname) == package


def test_no_check_when_the_view_does_not_use_xcb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert system_libs.missing_xcb_libraries() == []


def test_monitor_names_the_packages_before_any_process_starts(monkeypatch, tmp_path, capsys) -> None:
    """The machine's installed libraries are the outer edge faked here: a bare Linux box."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(system_libs, "missing_xcb_libraries",
                        lambda: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert monitor.main(["--demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "worker pid" not in err
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in err and "--headless" in err
