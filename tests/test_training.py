"""Training: DS2 is refused; a tiny run goes all the way from records to an int8 model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecg_monitor.detector.classifier import BeatClassifier
from ecg_monitor.detector.features import RHYTHM_FEATURES
from ecg_monitor.replay import DS1_TRAIN, DS2
from ecg_monitor.training.dataset import BeatSet, HeldOutDataError, check_training_records, load_beats
from ecg_monitor.training.model import Architecture, load_from_onnx
from ecg_monitor.training.train import main, patient_folds


@pytest.mark.parametrize("names", [["101", "100"], list(DS2), ["201"], ["102"]])
def test_records_outside_ds1_train_are_refused(names: list[str]) -> None:
    with pytest.raises(HeldOutDataError):
        check_training_records(names)


def test_refused_before_any_file_is_read(tmp_path) -> None:
    with pytest.raises(HeldOutDataError):
        load_beats(["106", "232"], tmp_path / "no-such-folder", spec=None)
    with pytest.raises(HeldOutDataError):
        main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--records", "101,232"])


def test_ds1_train_is_accepted() -> None:
    assert check_training_records(list(DS1_TRAIN)) == list(DS1_TRAIN)
    assert "201" not in DS1_TRAIN and not set(DS1_TRAIN) & set(DS2)


def test_folds_split_patients() -> None:
    rng = np.random.default_rng(0)
    names = np.array([f"r{i}" for i in range(9)]).repeat(50)
    beats = BeatSet(np.zeros((450, 2, 4), np.float32), np.zeros((450, 3), np.float32),
                    rng.integers(0, 4, 450), names)
    folds = patient_folds(beats, 3)
    flat = [r for f in folds for r in f]
    assert sorted(flat) == sorted(set(names)) and len(flat) == len(set(flat))
    assert all(folds)


def test_tiny_training_run_exports_a_working_int8_model(data_dir, tmp_path) -> None:
    out = tmp_path / "model"
    assert main(["--data-dir", str(data_dir), "--out-dir", str(out), "--records", "101,106",
                 "--epochs", "1", "--epoch-size", "512", "--folds", "0"]) == 0
    meta = json.loads((out / "beat_classifier.json").read_text())
    assert meta["training"]["records"] == ["101", "106"]
    int8 = BeatClassifier(out / "beat_classifier.onnx")
    fp32 = BeatClassifier(out / "beat_classifier_fp32.onnx", out / "beat_classifier.json")
    rng = np.random.default_rng(0)
    m = rng.normal(0, 0.3, (32, 2, int8.spec.window)).astype(np.float32)
    r = np.abs(rng.normal(0.8, 0.1, (32, len(RHYTHM_FEATURES)))).astype(np.float32)
    p8, p32 = int8.predict(m, r), fp32.predict(m, r)
    assert p8.shape == (32, 5) and np.allclose(p8.sum(axis=1), 1, atol=1e-3)
    assert (out / "beat_classifier.onnx").stat().st_size < (out / "beat_classifier_fp32.onnx").stat().st_size
    assert meta["int8_vs_fp32_ds1"]["agreement"] > 0.9
    net = load_from_onnx(out / "beat_classifier_fp32.onnx", Architecture.from_dict(meta["architecture"]))
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(m), torch.from_numpy(r)).numpy(), p32, atol=1e-5)
