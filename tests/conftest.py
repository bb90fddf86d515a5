"""Shared fixtures: where the MIT-BIH records are, and small synthetic ECGs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The README sets a relative ECG_MONITOR_DATA (../shared/data/mitdb); tests start monitors in
# their own temporary folders, so make it absolute once, against where pytest was started.
if os.environ.get("ECG_MONITOR_DATA"):
    os.environ["ECG_MONITOR_DATA"] = os.path.abspath(os.environ["ECG_MONITOR_DATA"])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The local MIT-BIH folder from ECG_MONITOR_DATA (CI sets it), absolute; tests needing it
    skip otherwise."""
    value = os.environ.get("ECG_MONITOR_DATA")
    if not value:
        pytest.skip("ECG_MONITOR_DATA is not set: no local MIT-BIH records")
    path = Path(value)
    if not (path / "100.hea").is_file() and not (path / "mitdb" / "100.hea").is_file():
        pytest.fail(f"ECG_MONITOR_DATA={value} does not hold the MIT-BIH records")
    return path
