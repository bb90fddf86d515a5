"""Beat features: causal, chunk-invariant, identical in training and streaming, bad input handled."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.features import (
    RHYTHM_FEATURES,
    BeatFeatureExtractor,
    FeatureSpec,
    extract_features,
)
from ecg_monitor.detector.filters import design_display_filter, one_shot
from ecg_monitor.detector.pipeline import DetectorPipeline, run_signal
from ecg_monitor.replay import iter_chunks, read_record
from ecg_monitor.training.dataset import record_beats
from synthetic_ecg import FS, _wave, beat_train, regular_times
from test_classifier import with_ectopics

SPEC = FeatureSpec()
PRE_LOCAL = RHYTHM_FEATURES.index("log_pre_over_local")


def synthetic(duration_s: float = 40.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[Beat]]:
    """Raw ECG, its display-band trace and beats at the true R peaks (irregular, with ectopics)."""
    times = regular_times(0.6, duration_s - 0.6, 70)
    times = sorted(t - 0.25 if i % 7 == 3 else t for i, t in enumerate(times))
    raw, r = beat_train(times, duration_s, seed=seed)
    return raw, one_shot(design_display_filter(FS), raw), [Beat(int(s), int(s) + 120) for s in r]


def same(a: list, b: list) -> None:
    assert [x.sample for x, _ in a] == [x.sample for x, _ in b]
    for (_, fa), (_, fb) in zip(a, b):
        np.testing.assert_array_equal(fa.morphology, fb.morphology)
        np.testing.assert_array_equal(fa.rhythm, fb.rhythm)
        assert fa.usable == fb.usable and fa.short_history == fb.short_history


def test_features_use_nothing_after_the_emission_point() -> None:
    raw, filt, beats = synthetic()
    base = extract_features(raw, filt, beats)
    k = len(beats) // 2
    cut = beats[k].sample + SPEC.post  # the beat's label is due here
    noisy = raw.copy()
    noisy[cut:] += np.random.default_rng(1).normal(0, 2.0, noisy.size - cut)
    # Future beats are shifted, dropped and invented; the band-pass is causal like the live one.
    future = [Beat(b.sample + 17, b.emitted_at + 17) for b in beats[k + 1 :: 2]]
    changed = extract_features(noisy, one_shot(design_display_filter(FS), noisy), beats[: k + 1] + future)
    same(base[: k + 1], changed[: k + 1])


@pytest.mark.parametrize("chunk", [1, 37, 360, 5000])
def test_streaming_in_chunks_equals_offline(chunk: int) -> None:
    raw, filt, beats = synthetic(20.0)
    offline = extract_features(raw, filt, beats)
    ex = BeatFeatureExtractor(SPEC)
    streamed, pos = [], 0
    for c in iter_chunks(raw, chunk):
        end = pos + len(c)
        # beats arrive when the detector would emit them: after their R mark
        new = [b for b in beats if pos <= b.emitted_at < end]
        streamed += ex.update(c, filt[pos:end], new)
        pos = end
    streamed += ex.flush([b for b in beats if b.emitted_at >= pos])
    same(offline, streamed)
    assert all(b.emitted_at >= b.sample + SPEC.post for b, f in streamed if f.usable)


def test_short_history_is_flagged_and_neutral() -> None:
    raw, filt, beats = synthetic(20.0)
    out = extract_features(raw, filt, beats)
    flags = [f.short_history for _, f in out]
    assert flags[:3] == [True, True, True] and not any(flags[3:])
    first = out[0][1].rhythm
    assert first[RHYTHM_FEATURES.index("pre_rr_s")] == pytest.approx(SPEC.default_rr_s)
    assert first[PRE_LOCAL] == 0.0 and first[RHYTHM_FEATURES.index("log_pre_over_long")] == 0.0


def test_gap_makes_windows_unusable_and_restarts_the_rhythm_history() -> None:
    raw, filt, beats = synthetic(30.0)
    gap = (int(12.0 * FS), int(13.0 * FS))
    raw, filt = raw.copy(), filt.copy()
    raw[gap[0] : gap[1]] = np.nan
    filt[gap[0] : gap[1]] = np.nan
    out = extract_features(raw, filt, beats)
    for b, f in out:
        lo, hi = b.sample - SPEC.pre, b.sample + SPEC.post
        touches = lo < gap[1] + SPEC.settle_s * FS and hi > gap[0]
        assert f.usable != touches, b.sample
    after = [f for b, f in out if b.sample > gap[1]]
    assert [f.short_history for f in after[:4]] == [True, True, True, False]


def test_flat_saturated_stretch_is_unusable() -> None:
    raw, filt, beats = synthetic(20.0)
    raw = raw.copy()
    b = beats[10].sample
    raw[b - 10 : b + 30] = 5.0  # amplifier at its rail through the QRS
    out = dict((x.sample, f) for x, f in extract_features(raw, filt, beats))
    assert not out[b].usable
    assert out[beats[11].sample].usable and out[beats[9].sample].usable


def test_window_at_stream_start_and_end_is_unusable() -> None:
    raw, filt, _ = synthetic(10.0)
    beats = [Beat(20, 140), Beat(400, 520), Beat(len(raw) - 30, len(raw))]
    usable = [f.usable for _, f in extract_features(raw, filt, beats)]
    assert usable == [False, True, False]


def test_training_features_equal_the_live_pipeline_features(data_dir) -> None:
    """The training set of a record holds exactly what the streaming node computes for it."""
    name = "119"
    train = record_beats(name, data_dir, SPEC)
    record = read_record(name, data_dir)
    pipeline = DetectorPipeline(record.fs, classifier=None)
    ex = BeatFeatureExtractor(SPEC)
    live = []
    for c in iter_chunks(record.signal, 250):
        out = pipeline.update(c)
        live += ex.update(c, out.filtered, out.beats)
    live += ex.flush(pipeline.flush())
    usable = np.array([f.morphology for _, f in live if f.usable])
    rhythm = np.array([f.rhythm for _, f in live if f.usable])
    # training drops detections without a reference beat; everything it keeps is in the stream
    index = {m.tobytes(): i for i, m in enumerate(usable)}
    rows = [index[m.tobytes()] for m in train.morphology]
    np.testing.assert_array_equal(rhythm[rows], train.rhythm)
    assert len(rows) >= 0.99 * len(usable)


def test_template_features_tell_a_wide_beat_from_the_usual_one() -> None:
    """Wide, large premature complexes (no P wave, broad QRS, opposite T), found by the live
    detector: low correlation with the usual beat, wider and taller than it; the sinus beats
    match their template."""
    x, early = with_ectopics("wide")
    beats, filtered = run_signal(x, FS, classifier=None)
    feats = extract_features(x, filtered, beats)
    col = [RHYTHM_FEATURES.index(n) for n in ("template_correlation", "log_qrs_width_ratio", "log_amplitude_ratio")]
    is_wide = [min(abs(b.sample / FS - e) for e in early) < 0.1 for b, _ in feats]
    ectopic = np.median([f.rhythm[col] for (_, f), w in zip(feats, is_wide) if f.usable and w], axis=0)
    normal = np.median([f.rhythm[col] for (_, f), w in list(zip(feats, is_wide))[20:] if f.usable and not w], axis=0)
    assert sum(is_wide) == len(early)
    assert normal[0] > 0.95 and abs(normal[1]) < 0.1 and abs(normal[2]) < 0.1
    assert ectopic[0] < 0.8 and ectopic[1] > 0.3 and ectopic[2] > 0.3


def test_af_context_is_high_in_an_irregular_rhythm_and_low_with_isolated_ectopics() -> None:
    rng = np.random.default_rng(3)
    af = np.cumsum(rng.uniform(0.45, 1.1, 60)) + 0.6
    raw, r = beat_train(list(af[af < 39.0]), 40.0)
    feats = extract_features(raw, one_shot(design_display_filter(FS), raw), [Beat(int(s), int(s) + 120) for s in r])
    ctx = RHYTHM_FEATURES.index("context_irregularity"), RHYTHM_FEATURES.index("context_jump_fraction")
    irregular = np.array([f.rhythm[list(ctx)] for _, f in feats[20:]])
    raw, _, beats = synthetic(40.0)  # regular rhythm, one premature beat in seven
    regular = np.array([f.rhythm[list(ctx)] for _, f in extract_features(raw, one_shot(design_display_filter(FS), raw), beats)[20:]])
    assert np.median(irregular[:, 0]) > 0.2 and np.median(irregular[:, 1]) > 0.7
    assert np.median(regular[:, 0]) < 0.05 and np.median(regular[:, 1]) < 0.5


def wide_beats(x: np.ndarray, times: list[float]) -> np.ndarray:
    """Add ventricular-looking complexes (no P wave, broad large QRS, opposite T) at ``times``."""
    t = np.arange(x.size) / FS
    for e in times:
        x = x + _wave(t, e - 0.02, 0.035, 1.6) + _wave(t, e + 0.07, 0.03, -0.6) + _wave(t, e + 0.33, 0.07, -0.5)
    return x


def template_correlation(x: np.ndarray, beats: list[float], spec: FeatureSpec = SPEC) -> np.ndarray:
    out = extract_features(x, one_shot(design_display_filter(FS), x), [Beat(int(FS * b), int(FS * b) + 120) for b in beats], spec)
    return np.array([f.rhythm[RHYTHM_FEATURES.index("template_correlation")] for _, f in out])


def test_a_run_of_ventricular_beats_does_not_become_the_usual_beat() -> None:
    """30 wide beats at 150/min after sinus rhythm: the run's late beats are still unlike the
    usual beat (the old rule, any on-time beat joins, made them the norm after ~16)."""
    sinus = regular_times(0.6, 20.0, 72) + regular_times(32.2, 45.0, 72)
    run = list(20.0 + 0.4 * np.arange(30))
    x = wide_beats(beat_train(sinus, 45.0)[0], run)
    beats = sorted(sinus + run)
    late = [beats.index(t) for t in run[8:]]
    corr = template_correlation(x, beats)
    assert np.max(corr[late]) < 0.5
    assert np.min(corr[[beats.index(t) for t in sinus[5:]]]) > 0.9  # sinus beats before and after match
    old_rule = template_correlation(x, beats, FeatureSpec(admit_correlation=-1.0, admit_amplitude_ratio=1e9))
    assert np.min(old_rule[late[-8:]]) > 0.9


def test_the_usual_beat_relearns_when_the_patients_beat_changes_for_good() -> None:
    """Sinus beats, then every beat wide at the same rate (a bundle branch block that stays):
    the usual beat ignores them for ``relearn_s``, then learns the new shape."""
    narrow, wide = regular_times(0.6, 30.0, 72), regular_times(30.0 + 60 / 72, 90.0, 72)
    x = wide_beats(beat_train(narrow, 90.0)[0], wide)
    corr = template_correlation(x, narrow + wide)
    at = np.array(narrow + wide)
    assert np.max(corr[(at > 32.0) & (at < 30.0 + SPEC.relearn_s)]) < 0.5
    assert np.min(corr[at > 30.0 + SPEC.relearn_s + 5.0]) > 0.9
