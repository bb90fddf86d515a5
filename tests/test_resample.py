"""Streaming rate conversion of device samples to the pipeline's 360 Hz."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.firmware_bridge.resample import StreamingResampler


def _tones(t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * 7 * t) + 0.5 * np.sin(2 * np.pi * 1.3 * t)


@pytest.mark.parametrize(("fs_in", "tolerance"), [(250.0, 5e-3), (500.0, 1e-3), (1000.0, 1e-3), (128.0, 2e-2)])
def test_in_band_signal_arrives_on_time_and_chunking_does_not_matter(fs_in: float, tolerance: float) -> None:
    x = _tones(np.arange(int(10 * fs_in)) / fs_in)
    whole = StreamingResampler(fs_in, 360.0).process(x)
    cuts = np.sort(np.random.default_rng(1).integers(0, len(x), 60))
    r = StreamingResampler(fs_in, 360.0)
    pieces = np.concatenate([r.process(c) for c in np.split(x, cuts)])
    assert np.array_equal(whole, pieces)  # to the bit, so beats cannot depend on arrival timing
    assert 3600 - 6 <= len(whole) <= 3600  # what the filter delay holds back comes with the next chunk
    err = np.abs(whole - _tones(np.arange(len(whole)) / 360.0))[180:]  # after the start-up
    assert err.max() < tolerance


def test_a_gap_stays_a_gap() -> None:
    fs_in = 500.0
    x = _tones(np.arange(5000) / fs_in)
    x[1000:1200] = np.nan
    y = StreamingResampler(fs_in, 360.0).process(x)
    gap = np.flatnonzero(np.isnan(y)) * fs_in / 360.0  # in input samples
    assert gap.min() <= 1000 and gap.max() >= 1199  # all of it
    assert gap.min() > 1000 - 10 and gap.max() < 1200 + 10  # widened by at most the FIR's half-length
    assert np.isfinite(y[: int(990 * 360 / fs_in)]).all() and np.isfinite(y[int(1210 * 360 / fs_in):]).all()
