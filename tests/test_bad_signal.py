"""Bad input: a source that turns to noise, a flat line, a rail, NaN bursts, mains hum or
baseline steps for minutes. No beat is invented (or it is labelled Q), the stretch is judged
unreadable by quality.py, detection comes back within 5 s of clean signal, and the alarm engine
shows a technical alarm and invents no life-threatening one. A fast run of alike wide beats is
a rhythm, not noise, also for the "ECG noisy" advisory."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.episodes import REQUIRED
from ecg_monitor.detector.pantompkins import DetectorConfig
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.detector.quality import BlockQuality, BlockQualityStream, JudgedBlock, Readability
from ecg_monitor.evaluation.ec57 import match_beats
from synthetic_ecg import FS, beat_train, regular_times, wide_train

WINDOW = int(0.15 * FS)
BAD = (30.0, 150.0)  # the bad stretch, s: two minutes
END = 180.0
RESUME_S = 5.0


def _pure_noise(x: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Electrode-motion-like: drifting baseline plus broadband noise, no ECG under it."""
    drift = np.cumsum(rng.normal(0, 0.02, t.size))
    return drift - np.convolve(drift, np.ones(720) / 720, "same") + rng.normal(0, 0.4, t.size)


def _flat(x, t, rng):
    return np.full(t.size, x[0])


def _rail(x, t, rng):
    return np.full(t.size, 5.0)


def _nan_bursts(x, t, rng):
    y = x.copy()
    y[(t % 3.0) < 1.2] = np.nan  # 1.2 s of nothing every 3 s
    return y


def _hum(hz: float) -> Callable:
    def add(x, t, rng):
        return x + 1.0 * np.sin(2 * np.pi * hz * t)
    return add


def _steps(x, t, rng):
    return x + 5.0 * (np.floor(t / 7.0) % 2)  # +5 mV / back every 7 s


CASES = {
    "noise": (_pure_noise, False),  # (how the stretch is made, whether real beats remain in it)
    "flat": (_flat, False),
    "rail": (_rail, False),
    "nan_bursts": (_nan_bursts, True),
    "hum_50": (_hum(50.0), True),
    "hum_60": (_hum(60.0), True),
    "steps_5mv": (_steps, True),
}


def clean_signal() -> tuple[np.ndarray, np.ndarray]:
    return beat_train(regular_times(0.5, END, 72), END, noise_mv=0.01)


def scenario(kind: str) -> tuple[np.ndarray, np.ndarray]:
    x, truth = clean_signal()
    a, b = (int(s * FS) for s in BAD)
    x[a:b] = CASES[kind][0](x[a:b], np.arange(b - a) / FS, np.random.default_rng(5))
    return x, truth


def run_pipeline(x: np.ndarray, chunk: int = 500, config: DetectorConfig | None = None):
    pipe = DetectorPipeline(FS, config)
    outs = [pipe.update(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    beats = [b for o in outs for b in o.beats] + pipe.flush()
    return beats, [j for o in outs for j in o.quality]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_stretch_invents_nothing_is_announced_and_detection_resumes(kind: str) -> None:
    x, truth = scenario(kind)
    beats, blocks = run_pipeline(x)
    a, b = (int(s * FS) for s in BAD)
    marks = np.array([bt.sample for bt in beats], dtype=np.int64)
    labels = np.array([bt.label for bt in beats])
    m = match_beats(truth, marks, WINDOW)
    real = np.zeros(len(beats), dtype=bool)
    if CASES[kind][1]:
        real[m.pairs[:, 1]] = True

    # no beat is invented in the bad stretch, or it is labelled Q (never guess)
    inside = (marks >= a) & (marks < b)
    guessed = inside & ~real & (labels != "Q")
    assert not guessed.any(), f"invented beats at {marks[guessed] / FS} s labelled {labels[guessed]}"

    # the stretch is announced: by the pipeline's blocks and by quality.py alone (the alarms' view);
    # NaN bursts: each block mostly missing; steps: each step's block or the next
    def announced(judged) -> float:
        sel = [j for j in judged if a + 2 * FS <= j.start and j.stop <= b]
        bad = np.array([j.quality.unreadable for j in sel])
        if kind == "nan_bursts":
            return np.mean(bad[[np.isnan(x[j.start : j.stop]).mean() >= 0.5 for j in sel]])
        if kind == "steps_5mv":
            at = np.flatnonzero([np.ptp(x[j.start - 1 : j.stop]) > 4 for j in sel])
            return np.mean(bad[at] | bad[np.minimum(at + 1, len(sel) - 1)])
        return np.mean(bad)

    raw_only = BlockQualityStream(FS, int(0.5 * FS)).update(x)
    assert announced(blocks) >= 0.9 and announced(raw_only) >= 0.9, (announced(blocks), announced(raw_only))
    clean_after = [j for j in blocks if j.start >= b + RESUME_S * FS]
    assert not any(j.quality.unreadable for j in clean_after)

    # every beat from 5 s after the stretch is found again, and classified (not Q: the last
    # beat's window is cut by the end of the stream)
    after = truth[(truth > b + RESUME_S * FS) & (truth < (END - 1) * FS)]
    late = match_beats(after, marks, WINDOW)
    assert late.missed.size == 0, f"missed at {after[late.missed] / FS} s"
    assert np.all(labels[late.pairs[:, 1]] != "Q")
    # and nothing was lost before it
    before = truth[truth < a - FS]
    assert match_beats(before[5:], marks, WINDOW).missed.size == 0


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_stretch_raises_a_technical_alarm_and_no_life_threatening_one(kind: str) -> None:
    """Shown within 5 s of the first bad sample (for steps: the first step, 7 s in)."""
    x, _ = scenario(kind)
    clean, _ = clean_signal()
    pipe, engine = DetectorPipeline(FS), AlarmEngine(FS)
    events = [e for i in range(0, len(x), 360) for e in engine.update(x[i : i + 360], pipe.update(x[i : i + 360]))]
    invented = [e for e in events if e.alarm in REQUIRED]
    assert not invented, invented
    first_bad = int(np.argmax(~np.isclose(x, clean)))
    technical = [e for e in events if e.event == "onset" and e.alarm in ("signal_noisy", "lead_off", "signal_saturated")]
    assert technical and first_bad <= technical[0].sample <= first_bad + 5 * FS, (first_bad, technical)


def test_fast_run_of_alike_wide_beats_is_a_rhythm_not_noise() -> None:
    """Sinus, 15 s of wide beats at 180 /min (VT-like: crowds the sinus rhythm and fills the QRS
    band), sinus again: no block is unreadable and no beat of the run is labelled Q. Without the
    likeness of the beats (``alike_min_beats`` out of reach) the same run is called noise."""
    n = int(60 * FS)
    sinus, _ = beat_train(regular_times(0.5, 30, 72) + regular_times(45.5, 60, 72), 60, noise_mv=0.02)
    x = sinus + wide_train(regular_times(30.2, 45, 180), 60)[:n]
    beats, blocks = run_pipeline(x)
    assert not [j.start / FS for j in blocks if j.quality.unreadable]
    assert [bt.label for bt in beats if 30 * FS < bt.sample < 45 * FS].count("Q") == 0
    beats, blocks = run_pipeline(x, config=DetectorConfig(alike_min_beats=10**6))
    assert any(j.quality.crowded for j in blocks if 30 * FS < j.start < 45 * FS)
    assert [bt.label for bt in beats if 30 * FS < bt.sample < 45 * FS].count("Q") >= 1


def test_noise_advisory_stays_quiet_on_clean_ecg_and_on_a_vt_run() -> None:
    """Sinus, 15 s of alike wide beats at 180 /min, sinus: no noise alarm at all. The run fills
    the QRS band (the noise ratio alone would call it noise) but its beats are alike, so the
    advisory's second sign never comes."""
    n = int(60 * FS)
    sinus, _ = beat_train(regular_times(0.5, 30, 72) + regular_times(45.5, 60, 72), 60, noise_mv=0.02)
    x = sinus + wide_train(regular_times(30.2, 45, 180), 60)[:n]
    pipe, engine = DetectorPipeline(FS), AlarmEngine(FS)
    cfg, events, ratios, unlike = engine.advisory.cfg, [], [], []
    for i in range(0, n, 360):
        events += engine.update(x[i : i + 360], pipe.update(x[i : i + 360]))
        ratios.append(engine.advisory.ratio)
        unlike.append(engine.advisory.unlike)
    assert not [e for e in events if e.alarm in ("ecg_noisy", "signal_noisy")]
    assert max(ratios) > cfg.ratio and max(unlike) < cfg.unlike / 10


def test_clean_signal_is_never_announced_noisy() -> None:
    x, truth = beat_train(regular_times(0.5, 60, 72) + regular_times(60.3, 90, 150), 90, noise_mv=0.02)
    beats, blocks = run_pipeline(x)
    assert not any(j.quality.unreadable for j in blocks)
    assert sum(bt.label == "Q" for bt in beats) <= 2  # the first beats, with no history


def test_quality_verdicts_do_not_depend_on_chunk_size() -> None:
    x, _ = scenario("noise")
    x = x[: int(60 * FS)]
    ref = run_pipeline(x, chunk=len(x))
    for chunk in (1, 7, 333):
        assert run_pipeline(x, chunk) == ref


def test_readability_is_the_last_block_judged_by_a_time() -> None:
    """The one record behind the detector's thresholds and the pipeline's Q labels: the last
    block ending at or before a time decides; a new update keeps the last ``KEEP`` blocks; and a
    fused beat asks whether any block judged by its time holds its QRS."""
    noisy, clean = BlockQuality(noisy=True), BlockQuality()
    r = Readability()
    assert not r.unreadable_at(10**6)  # nothing judged yet
    for start, q in ((0, clean), (180, noisy), (360, clean)):
        r.add(JudgedBlock(start, start + 180, q))
    assert [r.unreadable_at(t) for t in (179, 180, 359, 360, 539, 540)] == [False, False, False, True, True, False]
    r.new_update()
    r.add(JudgedBlock(540, 720, noisy))
    assert [r.unreadable_at(t) for t in (539, 540, 719, 720)] == [True, False, False, True]
    # a beat at 355 whose QRS reaches 380: block 360..540 is clean, 180..360 noisy
    assert r.unreadable_over(330, 380, 720) and not r.unreadable_over(400, 520, 720)
    assert not r.unreadable_over(560, 600, 719) and r.unreadable_over(560, 600, 720)  # judged at 720
    for start in range(720, 720 + 180 * Readability.KEEP, 180):
        r.add(JudgedBlock(start, start + 180, clean))
    r.new_update()
    assert not r.unreadable_over(0, 10**6, 10**6)  # the noisy blocks are forgotten
