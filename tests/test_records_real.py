"""The detector on real MIT-BIH records: accuracy, chunk invariance, record reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecg_monitor.detector.pantompkins import PanTompkinsDetector
from ecg_monitor.evaluation.ec57 import SKIP_S, reference_beats, score_record
from ecg_monitor.replay import iter_chunks, read_record


def run(signal: np.ndarray, fs: float, chunk: int) -> list:
    det = PanTompkinsDetector(fs)
    beats = [b for c in iter_chunks(signal, chunk) for b in det.update(c)]
    return beats + det.flush()


@pytest.mark.parametrize("name", ["100", "208"])
def test_record_reaches_995_se_and_ppv(data_dir: Path, name: str) -> None:
    rec = read_record(name, data_dir)
    ref = reference_beats(rec, str(data_dir))
    det = np.array([b.sample for b in run(rec.signal, rec.fs, 360)])
    s = score_record(ref.samples, det, rec.fs, start=int(SKIP_S * rec.fs), exclude=ref.flutter)
    assert s.se >= 0.995 and s.ppv >= 0.995, (s.tp, s.fn, s.fp)
    mean_ms, sd_ms = s.offset_stats_ms(rec.fs)
    assert abs(mean_ms) < 10 and sd_ms < 15


def test_chunk_sizes_give_identical_beats_on_208(data_dir: Path) -> None:
    x = read_record("208", data_dir).signal[: 190 * 360]  # PVC-rich; 190 s keeps chunk size 1 quick
    reference = run(x, 360.0, 65_000)
    assert len(reference) > 200
    for chunk in (1, 7, 360):
        assert run(x, 360.0, chunk) == reference, f"chunk size {chunk} changed the beats"


def test_record_is_mlii_in_mv_at_360(data_dir: Path) -> None:
    rec = read_record("100", data_dir)
    assert rec.lead == "MLII" and rec.fs == 360.0 and len(rec.signal) == 650_000
    assert 0.5 < np.percentile(rec.signal, 99.9) - np.percentile(rec.signal, 0.1) < 5.0  # mV, not adu


def test_record_without_mlii_takes_the_first_lead(data_dir: Path) -> None:
    assert read_record("102", data_dir).lead == "V5"
