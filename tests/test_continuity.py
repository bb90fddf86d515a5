"""Gaps, duplicates and lost messages are counted and turned into a stream true to time."""

from __future__ import annotations

import numpy as np

from ecg_monitor.detector.continuity import ContinuityCheck


def test_gap_is_filled_with_nan_and_counted():
    c = ContinuityCheck(max_fill=100)
    out, restart = c.accept(0, 1000, np.ones(10))
    assert len(out) == 10 and not restart
    out, restart = c.accept(2, 1015, np.ones(10))  # chunk 1 (5 samples) lost
    assert not restart and len(out) == 15 and np.isnan(out[:5]).all() and (out[5:] == 1).all()
    assert (c.counters.gaps, c.counters.gap_samples, c.counters.lost_chunks) == (1, 5, 1)


def test_duplicates_and_overlaps_are_cut():
    c = ContinuityCheck(max_fill=100)
    c.accept(0, 0, np.arange(10.0))
    out, _ = c.accept(0, 0, np.arange(10.0))  # the same chunk again
    assert len(out) == 0
    out, _ = c.accept(1, 5, np.arange(5.0, 15.0))  # half new
    assert out.tolist() == [10, 11, 12, 13, 14]
    assert c.counters.duplicates == 2 and c.next_sample == 15 and c.counters.samples == 15


def test_long_gap_restarts_instead_of_filling():
    c = ContinuityCheck(max_fill=100)
    c.accept(0, 0, np.ones(10))
    out, restart = c.accept(1, 10_000, np.ones(10))
    assert restart and len(out) == 10 and c.counters.restarts == 1 and c.next_sample == 10_010
    c.restart()
    out, restart = c.accept(0, 0, np.ones(10))  # a new run of the source from the start
    assert not restart and len(out) == 10 and c.counters.duplicates == 0
