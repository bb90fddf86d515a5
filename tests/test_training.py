"""Training: test records are refused before any file is read; bad training input gets a clear
reason; a tiny run (one MIT-BIH and one SVDB record, one epoch) goes all the way to an int8 model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecg_monitor.detector.classifier import BeatClassifier
from ecg_monitor.detector.features import RHYTHM_FEATURES
from ecg_monitor.replay import DS1_TRAIN, DS2, read_annotations, read_record
from ecg_monitor.replay.splits import SVDB_TRAIN, TRAINING_RECORDS
from ecg_monitor.training.dataset import (
    BeatSet,
    HeldOutDataError,
    TrainingDataError,
    check_training_records,
    load_beats,
    record_beats,
)
from ecg_monitor.training.model import Architecture, load_from_onnx
from ecg_monitor.training.train import main, patient_folds


@pytest.fixture(scope="module")
def svdb_dir(data_dir) -> Path:
    """The SVDB training half beside the MIT-BIH folder (../shared/data/svdb-train in CI)."""
    path = data_dir.parent / "svdb-train"
    if not (path / "857.hea").is_file():
        pytest.fail(f"no SVDB training records at {path}")
    return path


@pytest.mark.parametrize("names", [["101", "100"], list(DS2), ["201"], ["102"], ["800"], ["857", "856"], ["999"]])
def test_records_outside_the_training_pool_are_refused(names: list[str]) -> None:
    with pytest.raises(HeldOutDataError):
        check_training_records(names)


def test_refused_before_any_file_is_read(tmp_path) -> None:
    nowhere = tmp_path / "no-such-folder"
    with pytest.raises(HeldOutDataError, match="DS2"):
        load_beats([("106", nowhere), ("232", nowhere)], spec=None)
    with pytest.raises(HeldOutDataError, match="800-856"):
        load_beats([("857", nowhere), ("820", nowhere)], spec=None)
    with pytest.raises(HeldOutDataError):
        main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--records", "101,232"])
    # An extra folder that lists an SVDB test record: refused from its listing, no record file read
    # (there is none to read: a read would fail with another error).
    extra = tmp_path / "svdb"
    extra.mkdir()
    (extra / "RECORDS").write_text("857\n820\n")
    with pytest.raises(HeldOutDataError, match=r"\['820'\]"):
        main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--records", "101",
              "--extra-data-dir", str(extra)])


def test_training_pool_is_accepted() -> None:
    assert check_training_records(list(TRAINING_RECORDS)) == list(TRAINING_RECORDS)
    assert len(TRAINING_RECORDS) == 59 and SVDB_TRAIN[0] == "857" and SVDB_TRAIN[-1] == "894"
    assert "201" not in DS1_TRAIN and not set(DS1_TRAIN) & set(DS2)


def test_missing_or_empty_extra_folder_is_named(data_dir, tmp_path, capsys) -> None:
    base = ["--data-dir", str(data_dir), "--out-dir", str(tmp_path / "out"), "--records", "101"]
    assert main([*base, "--extra-data-dir", str(tmp_path / "nope")]) == 2
    assert f"extra data folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*base, "--extra-data-dir", str(tmp_path / "empty")]) == 2
    assert f"extra data folder {tmp_path / 'empty'} holds no WFDB records" in capsys.readouterr().err


def write_slice(folder: Path, name: str, source: Path, seconds: float, fs: float, with_beats: bool = True) -> None:
    """The first ``seconds`` of a real record, rewritten at ``fs`` (annotations moved with it)."""
    rec = read_record(source.name, source.parent)
    n = int(seconds * rec.fs)
    t = np.arange(int(seconds * fs)) / fs
    x = np.interp(t, np.arange(n) / rec.fs, rec.signal[:n])[:, None]
    wfdb.wrsamp(name, fs=fs, units=["mV"], sig_name=[rec.lead], p_signal=x, fmt=["16"], adc_gain=[200.0],
                baseline=[0], write_dir=str(folder))
    ann = read_annotations(source.name, source.parent)
    keep = (ann.sample < seconds * ann.fs) & (np.isin(ann.symbol, ["N", "V", "A"]) if with_beats else (ann.symbol == "+"))
    if keep.any():
        wfdb.wrann(name, "atr", np.round(ann.sample[keep] * fs / ann.fs).astype(np.int64), ann.symbol[keep].tolist(),
                   aux_note=ann.aux_note[keep].tolist(), fs=fs, write_dir=str(folder))


def test_record_at_an_unexpected_rate_is_resampled(data_dir, tmp_path) -> None:
    write_slice(tmp_path, "119", data_dir / "119", 120, 250.0)
    got = record_beats("119", tmp_path, None)
    ref = read_annotations("119", tmp_path)
    assert len(got) >= 0.95 * len(ref.sample)
    counts = np.bincount(got.label, minlength=5)
    expected = np.bincount([{"N": 0, "V": 2, "A": 1}[s] for s in ref.symbol], minlength=5)
    assert np.abs(counts - expected).max() <= 3 and counts[2] > 20


def test_record_without_beat_annotations_is_refused(data_dir, tmp_path) -> None:
    write_slice(tmp_path, "101", data_dir / "101", 30, 360.0, with_beats=False)  # rhythm labels only
    with pytest.raises(TrainingDataError, match="record 101 refused for training: .*no beat annotation"):
        record_beats("101", tmp_path, None)
    (tmp_path / "101.atr").unlink()
    with pytest.raises(TrainingDataError, match="record 101 refused for training: no beat annotations"):
        record_beats("101", tmp_path, None)


def test_folds_split_patients() -> None:
    rng = np.random.default_rng(0)
    names = np.array([f"r{i}" for i in range(9)]).repeat(50)
    beats = BeatSet(np.zeros((450, 2, 4), np.float32), np.zeros((450, 3), np.float32),
                    rng.integers(0, 4, 450), names)
    folds = patient_folds(beats, 3)
    flat = [r for f in folds for r in f]
    assert sorted(flat) == sorted(set(names)) and len(flat) == len(set(flat))
    assert all(folds)


def test_tiny_training_run_exports_a_working_int8_model(data_dir, svdb_dir, tmp_path) -> None:
    out = tmp_path / "model"
    assert main(["--data-dir", str(data_dir), "--out-dir", str(out), "--records", "106",
                 "--extra-data-dir", str(svdb_dir), "--extra-records", "857",
                 "--epochs", "1", "--epoch-size", "512", "--folds", "0"]) == 0
    meta = json.loads((out / "beat_classifier.json").read_text())
    assert meta["training"]["records"] == ["106", "857"]
    assert sum(meta["training"]["beats_per_class"].values()) > 3500
    int8 = BeatClassifier(out / "beat_classifier.onnx")
    fp32 = BeatClassifier(out / "beat_classifier_fp32.onnx", out / "beat_classifier.json")
    rng = np.random.default_rng(0)
    m = rng.normal(0, 0.3, (32, 2, int8.spec.window)).astype(np.float32)
    r = np.abs(rng.normal(0.8, 0.1, (32, len(RHYTHM_FEATURES)))).astype(np.float32)
    p8, p32 = int8.predict(m, r), fp32.predict(m, r)
    assert p8.shape == (32, 5) and np.allclose(p8.sum(axis=1), 1, atol=1e-3)
    assert (out / "beat_classifier.onnx").stat().st_size < (out / "beat_classifier_fp32.onnx").stat().st_size
    assert meta["int8_vs_fp32_train"]["agreement"] > 0.9
    net = load_from_onnx(out / "beat_classifier_fp32.onnx", Architecture.from_dict(meta["architecture"]))
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(m), torch.from_numpy(r)).numpy(), p32, atol=1e-5)
