"""Record reading on generated WFDB files: resampling, lead choice and every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecg_monitor.detector.pantompkins import PanTompkinsDetector
from ecg_monitor.replay import records
from ecg_monitor.replay.records import (
    CorruptRecordError,
    NoUsableLeadError,
    RecordNotFoundError,
    read_annotations,
    read_record,
)
from synthetic_ecg import beat_train, regular_times


def write_record(folder: Path, name: str, fs: float, leads: dict[str, np.ndarray], units: str = "mV") -> None:
    sig = np.column_stack(list(leads.values()))
    wfdb.wrsamp(name, fs=fs, units=[units] * sig.shape[1], sig_name=list(leads), p_signal=sig,
                fmt=["16"] * sig.shape[1], adc_gain=[200.0] * sig.shape[1], baseline=[0] * sig.shape[1],
                write_dir=str(folder))


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """PhysioNet is the one outer edge we fake: make every download fail as it does offline."""
    def refuse(*args, **kwargs):
        raise ConnectionError("no route to physionet.org (test: offline)")

    real_rdrecord, real_rdann = wfdb.rdrecord, wfdb.rdann
    monkeypatch.setattr(records.wfdb, "rdrecord", lambda n, pn_dir=None, **kw: refuse() if pn_dir else real_rdrecord(n, **kw))
    monkeypatch.setattr(records.wfdb, "rdann", lambda n, ext, pn_dir=None, **kw: refuse() if pn_dir else real_rdann(n, ext, **kw))


def test_250hz_record_is_resampled_and_marks_map_back(tmp_path: Path) -> None:
    fs = 250.0
    t = np.arange(int(20 * fs)) / fs
    pulse = np.exp(-0.5 * ((t - 7.3) / 0.01) ** 2)
    write_record(tmp_path, "r250", fs, {"MLII": np.sin(2 * np.pi * 1.3 * t) + pulse})
    rec = read_record("r250", tmp_path)
    assert rec.fs == 360.0 and rec.source_fs == 250.0 and len(rec.signal) == int(20 * 360)
    t360 = np.arange(len(rec.signal)) / 360.0
    expected = np.sin(2 * np.pi * 1.3 * t360) + np.exp(-0.5 * ((t360 - 7.3) / 0.01) ** 2)
    np.testing.assert_allclose(rec.signal[100:-100], expected[100:-100], atol=0.02)
    peak = int(np.argmax(rec.signal - np.sin(2 * np.pi * 1.3 * t360)))
    assert abs(rec.to_source_samples(np.array([peak]))[0] - int(7.3 * fs)) <= 1


def test_128hz_record_detects_beats_at_the_right_place(tmp_path: Path) -> None:
    fs = 128.0
    x360, truth = beat_train(regular_times(0.5, 20, 70), 20)
    t = np.arange(int(20 * fs)) / fs
    write_record(tmp_path, "r128", fs, {"ECG": np.interp(t, np.arange(len(x360)) / 360.0, x360)})
    rec = read_record("r128", tmp_path)
    det = PanTompkinsDetector(rec.fs)
    beats = det.update(rec.signal) + det.flush()
    assert len(beats) == len(truth)
    own = rec.to_source_samples(np.array([b.sample for b in beats]))
    assert np.max(np.abs(own / fs - truth / 360.0)) < 0.03


def test_lead_choice_prefers_mlii_and_accepts_a_named_lead(tmp_path: Path) -> None:
    x = np.zeros(1000)
    write_record(tmp_path, "two", 360.0, {"V1": x + 0.1, "MLII": x + 0.2})
    assert read_record("two", tmp_path).lead == "MLII"
    assert read_record("two", tmp_path, lead="V1").lead == "V1"
    with pytest.raises(NoUsableLeadError, match="no lead 'V5'"):
        read_record("two", tmp_path, lead="V5")


def test_microvolt_record_is_converted_to_mv(tmp_path: Path) -> None:
    write_record(tmp_path, "uv", 360.0, {"MLII": np.full(500, 150.0)}, units="uV")
    assert np.allclose(read_record("uv", tmp_path).signal, 0.15)


def test_record_with_no_valid_sample_is_refused(tmp_path: Path) -> None:
    write_record(tmp_path, "dead", 360.0, {"MLII": np.full(500, np.nan), "V1": np.full(500, np.nan)})
    with pytest.raises(NoUsableLeadError, match="no lead holds a valid sample"):
        read_record("dead", tmp_path)


def test_missing_record_names_where_it_looked(tmp_path: Path, offline: None) -> None:
    with pytest.raises(RecordNotFoundError) as err:
        read_record("999", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "999" in msg and "ECG_MONITOR_DATA" in msg
    assert "PhysioNet could not be reached (offline?)" in msg and "no route" not in msg  # short, not the socket's story
    with pytest.raises(RecordNotFoundError, match="not a folder"):
        read_record("100", tmp_path / "nowhere")
    with pytest.raises(RecordNotFoundError):
        read_annotations("999", tmp_path)


def test_no_data_dir_falls_back_to_physionet(monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    monkeypatch.delenv("ECG_MONITOR_DATA", raising=False)
    with pytest.raises(RecordNotFoundError, match=r"no --data-dir, \$ECG_MONITOR_DATA not set"):
        read_record("100")


def test_truncated_signal_file_is_a_clear_error(tmp_path: Path) -> None:
    write_record(tmp_path, "cut", 360.0, {"MLII": np.zeros(3600)})
    dat = tmp_path / "cut.dat"
    dat.write_bytes(dat.read_bytes()[:1001])
    with pytest.raises(CorruptRecordError, match=r"cut.dat holds 501 of 3,600 samples$"):
        read_record("cut", tmp_path)


def test_corrupt_header_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.hea").write_text("this is not a header\n\x00\x01garbage\n")
    with pytest.raises(CorruptRecordError, match="bad"):
        read_record("bad", tmp_path)


def test_cli_reports_a_missing_record_without_a_traceback(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ecg_monitor.evaluation.cli", "detect", "--data-dir",
                          str(tmp_path / "none"), "--records", "100"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "not a folder" in out.stderr and "Traceback" not in out.stderr
