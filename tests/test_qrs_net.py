"""The learned QRS detector: the packaged int8 network, streamed, and its fusion with Pan-Tompkins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecg_monitor.detector import beat_fusion
from ecg_monitor.detector.pipeline import stream_signal
from ecg_monitor.detector.qrs_net import SHIPPED_QRS_MODEL, QRSModel, QRSModelError, StreamingQRSProbability
from ecg_monitor.evaluation.ec57 import SKIP_S, match_beats, match_window, reference_beats, score_record
from ecg_monitor.replay import read_record
from ecg_monitor.replay.noise import add_noise
from ecg_monitor.replay.records import resolve_data_dir


def test_a_damaged_or_foreign_network_file_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "qrs_net.onnx"
    bad.write_bytes(SHIPPED_QRS_MODEL.read_bytes()[:5000])
    with pytest.raises(QRSModelError, match="qrs_net.onnx could not be loaded"):
        QRSModel(bad)
    foreign = Path(__file__).parents[1] / "src/ecg_monitor/detector/models/beat_classifier.onnx"
    with pytest.raises(QRSModelError, match="was built for an unknown layout"):
        QRSModel(foreign)


@pytest.fixture(scope="module")
def noisy_105(data_dir: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Record 105 with em noise at 0 dB (nst's protocol), first 10 min."""
    rec = read_record("105", data_dir)
    ref = reference_beats(rec, str(data_dir))
    noise = read_record("em", resolve_data_dir(data_dir).parent / "noise", pn_dir="nstdb").signal
    x = add_noise(rec.signal, ref.samples, noise, rec.fs, 0.0, ref.symbols)[: int(600 * rec.fs)]
    return x, ref.samples[ref.samples < len(x)], rec.fs


def test_network_steps_are_the_same_bits_whatever_the_chunking(noisy_105) -> None:
    x = noisy_105[0][: 360 * 120]
    whole = StreamingQRSProbability().update(x)
    assert len(whole) == len(x) // 3
    for chunk in (1, 18, 997):
        s = StreamingQRSProbability()
        parts = np.concatenate([s.update(x[i : i + chunk]) for i in range(0, len(x), chunk)])
        assert np.array_equal(parts, whole)
    assert 0.05 < np.mean(whole > 0.5) < 0.3  # QRS steps are there, and a minority


def test_fused_beats_cut_the_false_beats_pan_tompkins_counts_in_electrode_motion(noisy_105) -> None:
    """105 with em at 0 dB, minutes 5-10 (2 min noisy, 3 clean), EC57 scoring: Pan-Tompkins alone
    Se 90.4 %, +P 70.7 %, 156 false beats; fused Se 94.7 %, +P 86.4 %, 62 false."""
    x, ref, fs = noisy_105
    scores = {}
    for qrs in (None, "shipped"):
        det = np.array([b.sample for o in stream_signal(x, fs, classifier=None, chunk=36000, qrs_model=qrs)
                        for b in o.beats])
        scores[qrs] = score_record(ref, det, fs, int(SKIP_S * fs))
    alone, fused = scores[None], scores["shipped"]
    assert fused.fp <= 0.75 * alone.fp, (alone, fused)
    assert fused.ppv > alone.ppv + 0.05 and fused.se > alone.se - 0.06, (alone, fused)


def test_in_noise_an_early_beat_needs_the_networks_conviction(noisy_105, monkeypatch) -> None:
    """105 with em at 0 dB, first 10 min: early beats (before 0.7 of the median recent RR) that
    the network's peak puts under 0.4 are dropped in noise although Pan-Tompkins took them too;
    37 beats go, 33 of them false, and no beat appears that was not there."""
    x, ref, fs = noisy_105

    def fused() -> np.ndarray:
        return np.array([b.sample for o in stream_signal(x, fs, classifier=None, chunk=36000) for b in o.beats])

    kept = fused()
    monkeypatch.setattr(beat_fusion, "EARLY_WEAK", 0.0)  # every early beat with a partner kept
    every = fused()
    removed = np.setdiff1d(every, kept)
    assert len(np.setdiff1d(kept, every)) == 0
    assert len(removed) >= 30
    false = match_beats(np.sort(ref), removed, match_window(fs)).extra
    assert len(false) >= 0.85 * len(removed), (len(false), len(removed))


def test_on_clean_signal_the_fused_beats_are_pan_tompkins_beats_even_one_a_search_back_brings_late(
        data_dir: Path) -> None:
    """Clean 111, first 10 min: the network is sure of the beat at 197563 (p 0.89), but
    Pan-Tompkins finds it only by search-back, 249 samples (0.7 s) after it; in clean signal the
    fusion waits for Pan-Tompkins' verdict instead of dropping the beat as a lone P wave (it did,
    and lost 9 such beats of 111 in all)."""
    x = read_record("111", data_dir).signal[: int(600 * 360)]
    runs = {(qrs, chunk): [b for o in stream_signal(x, 360.0, classifier=None, chunk=chunk, qrs_model=qrs)
                           for b in o.beats] for qrs in (None, "shipped") for chunk in (18, 36000)}
    alone, fused = runs[(None, 18)], runs[("shipped", 18)]
    assert [b.sample for b in fused] == [b.sample for b in alone] and len(fused) == 697
    late = next(b for b in fused if abs(b.sample - 197563) <= 54)
    assert late.search_back and late.emitted_at - late.sample == 249
    assert [(b.sample, b.emitted_at) for b in runs[("shipped", 36000)]] == [(b.sample, b.emitted_at) for b in fused]


def test_ecg_eval_noise_scores_the_fused_detector_unless_told_pan_tompkins(data_dir: Path) -> None:
    """The evaluation scores the monitor's fused beats; ``--pan-tompkins`` scores Pan-Tompkins
    alone: more false beats on 105 with em."""
    import subprocess
    import sys

    def false_beats(*extra: str) -> int:
        out = subprocess.run([sys.executable, "-m", "ecg_monitor.evaluation.cli", "noise", "--data-dir", str(data_dir),
                              "--records", "105", "--noise", "em", "--snr", "0", "--chunk-size", "36000", *extra],
                             capture_output=True, text=True, check=True).stdout
        row = next(line for line in out.splitlines() if line.split()[:1] == ["ours"])
        return int(row.split()[3])

    fused, alone = false_beats(), false_beats("--pan-tompkins")
    assert fused < 0.8 * alone, (alone, fused)
