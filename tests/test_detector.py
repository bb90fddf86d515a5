"""Online Pan-Tompkins on signals with known beats, and on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.detector.pantompkins import DetectorConfig, PanTompkinsDetector
from ecg_monitor.evaluation.ec57 import match_beats
from synthetic_ecg import FS, beat_train, regular_times

WINDOW = int(0.15 * FS)


def detect(x: np.ndarray, chunk: int = 90) -> list:
    det = PanTompkinsDetector(FS)
    beats = [b for i in range(0, len(x), chunk) for b in det.update(x[i : i + chunk])]
    return beats + det.flush()


def marks(beats: list) -> np.ndarray:
    return np.array([b.sample for b in beats], dtype=np.int64)


def assert_all_found(beats: list, truth: np.ndarray, tol_ms: float = 20.0) -> None:
    m = match_beats(truth, marks(beats), WINDOW)
    assert m.missed.size == 0, f"missed beats at {truth[m.missed] / FS} s"
    assert m.extra.size == 0, f"invented beats at {marks(beats)[m.extra] / FS} s"
    err = marks(beats)[m.pairs[:, 1]] - truth[m.pairs[:, 0]]
    assert np.max(np.abs(err)) * 1000 / FS <= tol_ms


def test_regular_rhythm_every_beat_once_and_on_the_r_peak() -> None:
    x, truth = beat_train(regular_times(0.5, 30, 72), 30)
    beats = detect(x)
    assert_all_found(beats, truth, tol_ms=8.0)
    delays = np.array([b.emitted_at - b.sample for b in beats[3:]]) / FS
    assert np.all(delays > 0) and np.all(delays < 0.45)


def test_four_second_pause_invents_nothing() -> None:
    times = regular_times(0.5, 12, 75) + regular_times(16.5, 30, 75)
    x, truth = beat_train(times, 30)
    beats = detect(x)
    assert_all_found(beats, truth)
    assert not any(12.0 * FS < b.sample < 16.4 * FS for b in beats)


def test_run_at_180_bpm_after_sinus_rhythm() -> None:
    times = regular_times(0.5, 15, 70) + regular_times(15.2, 30, 180)
    x, truth = beat_train(times, 30.5, t_height=0.2)
    assert_all_found(detect(x), truth)


def test_tall_t_waves_are_not_beats() -> None:
    x, truth = beat_train(regular_times(0.5, 30, 65), 30, t_height=0.9, qrs_height=1.0)
    assert_all_found(detect(x), truth)


@pytest.mark.parametrize("chunk", [1, 7, 360, 20_000])
def test_beats_do_not_depend_on_chunk_size_synthetic(chunk: int) -> None:
    times = regular_times(0.5, 10, 70) + regular_times(10.3, 20, 160) + regular_times(24.5, 40, 55)
    x, _ = beat_train(times, 40, noise_mv=0.05)
    assert detect(x, chunk) == detect(x, 40 * 360)


# ------------------------------------------------------------------ bad input
def test_flat_line_and_silence_give_no_beat() -> None:
    assert detect(np.zeros(int(20 * FS))) == []
    assert detect(np.full(int(20 * FS), 2.5)) == []
    assert detect(np.random.default_rng(3).normal(0, 0.005, int(20 * FS))) == []


def test_all_nan_gives_no_beat_and_nan_trace() -> None:
    det = PanTompkinsDetector(FS)
    assert det.update(np.full(int(10 * FS), np.nan)) == []
    assert np.isnan(det.last_display).all()
    assert det.flush() == []


def test_gap_of_nan_invents_no_beat_and_detection_resumes() -> None:
    x, truth = beat_train(regular_times(0.5, 40, 72), 40)
    gap = (int(15 * FS), int(19 * FS))
    x[gap[0] : gap[1]] = np.nan
    x[gap[1] :] += 0.8  # the signal comes back at another level
    beats = detect(x)
    assert not any(gap[0] <= b.sample < gap[1] for b in beats)
    outside = truth[(truth < gap[0] - 0.1 * FS) | (truth > gap[1] + 0.1 * FS)]
    m = match_beats(outside, marks(beats), WINDOW)
    assert m.missed.size <= 1 and m.extra.size == 0  # at most the first beat after the gap


def test_saturated_stretch_invents_no_beat_and_detection_resumes() -> None:
    x, truth = beat_train(regular_times(0.5, 40, 72), 40)
    rail = (int(15 * FS), int(20 * FS))
    x[rail[0] : rail[1]] = 5.0
    beats = detect(x)
    assert not any(rail[0] + 0.2 * FS < b.sample < rail[1] for b in beats)
    after = truth[truth > rail[1] + 3 * FS]
    assert match_beats(after, marks([b for b in beats if b.sample > rail[1] + 3 * FS]), WINDOW).missed.size == 0


@pytest.mark.parametrize("scale", [10.0, 0.1])
def test_amplitude_change_is_followed(scale: float) -> None:
    x, truth = beat_train(regular_times(0.5, 60, 72), 60, noise_mv=0.002)
    x[int(20.17 * FS) :] *= scale  # between a T wave and the next P wave
    beats = detect(x)
    m = match_beats(truth, marks(beats), WINDOW)
    assert m.extra.size == 0
    late = truth[m.missed]
    assert np.all((late > 20 * FS) & (late < 26 * FS)), f"missed at {late / FS} s"
    ok = truth[truth > 26 * FS]
    assert match_beats(ok, marks(beats), WINDOW).missed.size == 0


@pytest.mark.parametrize("scale", [10.0, 0.1])
def test_scaled_record_from_the_start(scale: float) -> None:
    x, truth = beat_train(regular_times(0.5, 30, 72), 30, noise_mv=0.001)
    assert_all_found(detect(x * scale), truth)


def test_mains_notch_cleans_the_trace_and_keeps_the_beats() -> None:
    x, truth = beat_train(regular_times(0.5, 20, 72), 20)
    hum = 0.2 * np.sin(2 * np.pi * 60.0 * np.arange(len(x)) / FS)
    det = PanTompkinsDetector(FS, DetectorConfig(notch_hz=60.0))
    beats = det.update(x + hum) + det.flush()
    assert_all_found(beats, truth)
    clean = PanTompkinsDetector(FS)
    clean.update(x)
    residue = det.display.get(int(10 * FS), int(20 * FS)) - clean.display.get(int(10 * FS), int(20 * FS))
    assert np.std(residue) < 0.03  # the 0.2 mV hum (0.14 mV RMS) is mostly gone
