"""EC57 matching and scoring on hand-made cases."""

from __future__ import annotations

import numpy as np

from ecg_monitor.evaluation.ec57 import excluded_intervals, match_beats, score_record

W = 54  # 150 ms at 360 Hz


def test_exact_and_shifted_matches() -> None:
    m = match_beats(np.array([100, 400, 700]), np.array([110, 390, 750]), W)
    assert m.pairs.tolist() == [[0, 0], [1, 1], [2, 2]]
    assert m.missed.size == 0 and m.extra.size == 0


def test_outside_window_is_one_miss_and_one_extra() -> None:
    m = match_beats(np.array([100]), np.array([155]), W)
    assert m.pairs.size == 0 and m.missed.tolist() == [0] and m.extra.tolist() == [0]
    m = match_beats(np.array([100]), np.array([154]), W)
    assert m.pairs.tolist() == [[0, 0]]


def test_nearer_detection_wins_and_the_other_is_extra() -> None:
    m = match_beats(np.array([100]), np.array([60, 98]), W)
    assert m.pairs.tolist() == [[0, 1]] and m.extra.tolist() == [0]


def test_one_detection_between_two_references_goes_to_the_nearer() -> None:
    m = match_beats(np.array([100, 150]), np.array([140]), W)
    assert m.pairs.tolist() == [[1, 0]] and m.missed.tolist() == [0]


def test_score_skips_learning_period_and_vf() -> None:
    fs = 360.0
    ref = np.array([50, 200_000, 300_000, 400_000])
    det = np.array([50, 150_000, 200_010, 310_000, 400_000])
    spans = excluded_intervals(np.array([290_000, 320_000]), np.array(["[", "]"]), 500_000)
    assert spans == [(290_000, 320_000)]
    s = score_record(ref, det, fs, start=108_000, exclude=spans)
    # 50 is in the learning period, 300000 and 310000 are in VF: 150000 is the only extra.
    assert (s.tp, s.fn, s.fp) == (2, 0, 1)
    assert abs(s.se - 1.0) < 1e-12 and abs(s.ppv - 2 / 3) < 1e-12
    whole = score_record(ref, det, fs)
    assert (whole.tp, whole.fn, whole.fp) == (3, 1, 2)
    mean_ms, sd_ms = score_record(ref, det, fs, start=108_000, exclude=spans).offset_stats_ms(fs)
    assert abs(mean_ms - 5 * 1000 / fs) < 1e-9 and abs(sd_ms - 5 * 1000 / fs) < 1e-9


def test_open_vf_episode_runs_to_the_end() -> None:
    assert excluded_intervals(np.array([10, 20]), np.array(["N", "["]), 99) == [(20, 99)]
