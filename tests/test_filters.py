"""Streaming filters equal one-shot filtering; the ring buffer addresses samples absolutely."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter, sosfilt, sosfilt_zi, sosfreqz

from ecg_monitor.detector.filters import (
    StreamingFIR,
    StreamingSOS,
    delay_samples,
    derivative_taps,
    design_display_filter,
    design_qrs_filter,
    integration_taps,
    one_shot,
)
from ecg_monitor.detector.ringbuffer import RingBuffer

FS = 360.0


def _chunked(filt, x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([filt.update(x[i : i + size]) for i in range(0, len(x), size)])


@pytest.mark.parametrize("size", [1, 7, 360, 5000])
def test_streaming_sos_equals_one_shot(size: int) -> None:
    x = np.random.default_rng(1).normal(0.3, 1.0, 5000)
    sos = design_display_filter(FS, notch_hz=60.0)
    np.testing.assert_allclose(_chunked(StreamingSOS(sos), x, size), one_shot(sos, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [1, 13, 4000])
def test_streaming_fir_equals_lfilter(size: int) -> None:
    x = np.random.default_rng(2).normal(size=4000)
    taps = derivative_taps(FS)
    np.testing.assert_allclose(_chunked(StreamingFIR(taps), x, size), lfilter(taps, [1.0], x), atol=1e-12)


@pytest.mark.parametrize("size", [1, 18, 361])
def test_streaming_filters_give_the_same_bits_whatever_the_split(size: int) -> None:
    """Chunk invariance to the last bit: a 1e-14 difference flips a threshold now and then, and
    then a noisy record's beats depend on the chunk size. The IIR stage computes what ``sosfilt``
    called chunk by chunk computes; the FIR stage does not carry partial sums across calls as
    ``lfilter`` does (that is what differs by split)."""
    x = np.random.default_rng(3).normal(0.3, 1.0, 3000) ** 3
    sos, want_sos = design_display_filter(FS, notch_hz=60.0), []
    zi = sosfilt_zi(sos) * x[0]
    for i in range(0, len(x), size):
        y, zi = sosfilt(sos, x[i : i + size], zi=zi)
        want_sos.append(y)
    np.testing.assert_array_equal(_chunked(StreamingSOS(sos), x, size), np.concatenate(want_sos))
    np.testing.assert_array_equal(_chunked(StreamingSOS(sos), x, size), _chunked(StreamingSOS(sos), x, len(x)))
    for taps in (derivative_taps(FS), integration_taps(FS)):
        np.testing.assert_array_equal(_chunked(StreamingFIR(taps), x, size), _chunked(StreamingFIR(taps), x, len(x)))


def _gain(sos: np.ndarray, hz: float) -> float:
    return float(abs(sosfreqz(sos, worN=[hz], fs=FS)[1][0]))


def test_display_band_keeps_qrs_and_drops_wander_mains() -> None:
    plain, notched = design_display_filter(FS), design_display_filter(FS, notch_hz=60.0)
    assert _gain(plain, 10.0) > 0.95
    assert _gain(plain, 0.05) < 0.02  # baseline wander
    assert _gain(plain, 150.0) < 0.1
    assert _gain(notched, 60.0) < 0.01 < _gain(plain, 60.0)


def test_qrs_band_prefers_qrs_over_t_waves() -> None:
    sos = design_qrs_filter(FS)
    assert _gain(sos, 10.0) > 0.9
    assert _gain(sos, 2.0) < 0.2  # T waves live here


def test_filter_starts_without_ringing_on_an_offset() -> None:
    y = StreamingSOS(design_display_filter(FS)).update(np.full(720, -0.4))
    assert np.max(np.abs(y)) < 1e-9


def test_display_delay_is_a_few_samples() -> None:
    assert 1 <= delay_samples(design_display_filter(FS), FS) <= 4


def test_notch_outside_band_is_refused() -> None:
    with pytest.raises(ValueError, match="notch"):
        design_display_filter(FS, notch_hz=200.0)


def test_ring_buffer_absolute_indexing() -> None:
    rb = RingBuffer(10)
    rb.extend(np.arange(7.0))
    rb.extend(np.arange(7.0, 16.0))
    assert (rb.start, rb.end) == (6, 16)
    np.testing.assert_array_equal(rb.get(8, 12), [8.0, 9.0, 10.0, 11.0])  # across the wrap
    got = rb.get(10, 14)  # one piece: still a copy, the caller may change it
    got[:] = -1.0
    np.testing.assert_array_equal(rb.get(10, 14), [10.0, 11.0, 12.0, 13.0])
    rb.extend(np.arange(16.0, 40.0))  # longer than the buffer
    np.testing.assert_array_equal(rb.get(30, 40), np.arange(30.0, 40.0))
    with pytest.raises(IndexError):
        rb.get(29, 31)
