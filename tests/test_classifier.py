"""The packaged int8 model: loads, labels hand-made beats sensibly, fails clearly on bad files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.detector.classifier import (
    SHIPPED_FP32_MODEL,
    SHIPPED_METADATA,
    SHIPPED_MODEL,
    BeatClassifier,
    ModelError,
    shipped_classifier,
)
from ecg_monitor.detector.features import RHYTHM_FEATURES, FeatureSpec
from ecg_monitor.detector.pipeline import SHIPPED, run_signal
from synthetic_ecg import FS, _wave, beat_train, regular_times

MAX_BYTES = 128 * 1024


def run(x: np.ndarray, chunk: int = 360, classifier=SHIPPED) -> list:
    return run_signal(x, FS, classifier, chunk)[0]


def label_near(beats: list, t_s: float) -> str:
    b = min(beats, key=lambda b: abs(b.sample - t_s * FS))
    assert abs(b.sample - t_s * FS) < 0.1 * FS
    return b.label


def with_ectopics(ectopic: str) -> tuple[np.ndarray, list[float]]:
    """Sinus rhythm at 72/min with premature beats at 30 %-early positions.

    ``"wide"``: ventricular-looking (no P wave, QRS 120+ ms, large, T wave opposite to the QRS);
    ``"narrow"``: atrial-looking (same QRS as the sinus beats, early P wave).
    """
    times = regular_times(0.6, 60.0, 72)
    early = [times[i] - 0.25 for i in range(12, len(times) - 2, 9)]
    sinus = [t for i, t in enumerate(times) if i not in range(12, len(times) - 2, 9)]
    x, _ = beat_train(sinus, 60.0)
    t = np.arange(x.size) / FS
    for e in early:
        if ectopic == "wide":
            x += _wave(t, e - 0.02, 0.035, 1.6) + _wave(t, e + 0.07, 0.03, -0.6) + _wave(t, e + 0.33, 0.07, -0.5)
        else:
            x += beat_train([e], 60.0, noise_mv=0.0)[0]
    return x, early


def test_shipped_model_is_small_and_described() -> None:
    assert SHIPPED_MODEL.stat().st_size <= MAX_BYTES
    meta = json.loads(SHIPPED_METADATA.read_text())
    assert meta["classes"] == list(AAMI_CLASSES)
    assert set(meta["training"]["records"]).isdisjoint(
        "100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234".split()
    )
    for c in "NSVF":
        assert len(meta["mean_saliency"][c]) == meta["features"]["window"]
    clf = shipped_classifier()
    assert clf.spec.window == meta["features"]["window"]


def test_batch_probabilities_match_one_by_one() -> None:
    clf = shipped_classifier()
    rng = np.random.default_rng(0)
    m = rng.normal(0, 0.3, (6, 2, clf.spec.window)).astype(np.float32)
    r = np.zeros((6, len(RHYTHM_FEATURES)), np.float32)
    r[:, :4] = 0.8
    batch = clf.predict(m, r)
    one = np.concatenate([clf.predict(m[i : i + 1], r[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(batch, one, atol=1e-6)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-4)


def test_wide_premature_beats_are_v_and_sinus_beats_n() -> None:
    x, early = with_ectopics("wide")
    beats = run(x)
    assert [label_near(beats, e) for e in early] == ["V"] * len(early)
    normal = [b.label for b in beats[5:] if all(abs(b.sample - e * FS) > 0.1 * FS for e in early)]
    assert normal.count("N") >= 0.95 * len(normal)


def test_narrow_premature_beats_are_s() -> None:
    x, early = with_ectopics("narrow")
    labels = [label_near(run(x), e) for e in early]
    assert labels.count("S") >= 0.8 * len(labels), labels


def test_labels_wait_for_the_window_and_gaps_give_q() -> None:
    x, _ = beat_train(regular_times(0.6, 40.0, 70), 40.0)
    x[int(20 * FS) : int(21 * FS)] = np.nan
    beats = run(x, chunk=50)
    post = shipped_classifier().spec.post
    assert all(b.emitted_at >= b.sample + post for b in beats if b.label != "Q")
    near_gap = [b for b in beats if 19.7 * FS < b.sample < 21.3 * FS]
    assert near_gap and all(b.label == "Q" and b.probabilities is None for b in near_gap)
    assert sum(b.label == "N" for b in beats) >= len(beats) - 6


def test_missing_model_names_the_file(tmp_path) -> None:
    shutil.copy(SHIPPED_METADATA, tmp_path / "m.json")
    with pytest.raises(ModelError, match=str(tmp_path / "m.onnx")):
        BeatClassifier(tmp_path / "m.onnx")


def test_corrupt_model_names_the_file(tmp_path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(SHIPPED_MODEL.read_bytes()[:1000])
    shutil.copy(SHIPPED_METADATA, tmp_path / "m.json")
    with pytest.raises(ModelError, match=str(bad)):
        BeatClassifier(bad)


def test_missing_or_foreign_metadata_names_the_file(tmp_path) -> None:
    shutil.copy(SHIPPED_MODEL, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=str(tmp_path / "m.json")):
        BeatClassifier(tmp_path / "m.onnx")
    meta = json.loads(SHIPPED_METADATA.read_text())
    meta["features"]["rhythm_features"] = ["post_rr_s"]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"trained on rhythm features \['post_rr_s'\].*this runtime computes \['pre_rr_s'"):
        BeatClassifier(tmp_path / "m.onnx")


def test_model_not_matching_the_spec_it_is_loaded_with_names_both() -> None:
    assert BeatClassifier(SHIPPED_MODEL, SHIPPED_METADATA, spec=FeatureSpec()).spec == FeatureSpec()
    with pytest.raises(ModelError) as err:
        BeatClassifier(SHIPPED_MODEL, SHIPPED_METADATA, spec=FeatureSpec(pre_s=0.3, context_beats=8))
    msg = str(err.value)
    assert str(SHIPPED_MODEL) in msg
    assert "trained with feature spec {'pre_s': 0.25, 'context_beats': 16}" in msg
    assert "loaded with {'pre_s': 0.3, 'context_beats': 8}" in msg


def test_fp32_and_int8_agree_on_hand_made_beats() -> None:
    x, _ = with_ectopics("wide")
    int8 = run(x)
    fp32 = run(x, classifier=BeatClassifier(SHIPPED_FP32_MODEL, SHIPPED_METADATA))
    agree = np.mean([a.label == b.label for a, b in zip(int8, fp32)])
    assert agree >= 0.97


def test_labels_and_delays_do_not_depend_on_chunking() -> None:
    x, _ = with_ectopics("wide")
    x = x[: int(25 * FS)]

    ref = run(x, 360)
    assert len(ref) > 20
    for chunk in (1, 97, 5000):
        got = run(x, chunk)
        assert [(b.sample, b.emitted_at, b.label) for b in got] == [(b.sample, b.emitted_at, b.label) for b in ref]
        for a, b in zip(got, ref):
            assert (a.probabilities is None) == (b.probabilities is None)
            if a.probabilities is not None:
                np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
