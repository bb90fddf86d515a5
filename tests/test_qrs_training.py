"""Training and export of the QRS network: honest data, and a file the runtime accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from ecg_monitor.detector.qrs_net import QRSModel, StreamingQRSProbability  # noqa: E402
from ecg_monitor.replay.noise import nst_mask  # noqa: E402
from ecg_monitor.training import qrs_train  # noqa: E402


@pytest.fixture(scope="module")
def folders(data_dir: Path) -> tuple[Path, Path]:
    svdb, noise = data_dir.parent / "svdb-train", data_dir.parent / "noise"
    if not (svdb / "RECORDS").exists():
        pytest.skip(f"no SVDB training records in {svdb}")
    return svdb, noise


def test_training_noise_never_overlaps_what_the_stress_test_adds(folders) -> None:
    """The MIT-BIH records and the noise records are both 650000 samples: the stress test adds
    noise sample k to record sample k, in nst's noisy stretches only."""
    spans = qrs_train.unused_spans(650000)
    noisy = nst_mask(650000, qrs_train.FS)
    assert len(spans) == 7 and spans[0] == (0, 300 * 360)
    assert not any(noisy[s:e].any() for s, e in spans)
    assert sum(e - s for s, e in spans) == (~noisy).sum()  # every clean stretch
    pieces = qrs_train.read_noise(folders[1])
    assert [len(p) for p in pieces["em"][::2]] == [e - s for s, e in spans]


def test_a_few_training_steps_export_a_network_the_runtime_runs(folders, tmp_path: Path) -> None:
    leads = [lead for lead in qrs_train.read_svdb(folders[0]) if lead.patient < "866"]  # 9 patients
    net, log = qrs_train.train(leads, qrs_train.read_noise(folders[1]), steps=3)
    assert len(log) == 1 and "held-out loss" in log[0]
    calibration, _ = qrs_train.Windows(leads, qrs_train.read_noise(folders[1]), seed=1).batch(4)
    model = QRSModel(qrs_train.export(net, calibration[:, 0].numpy(), tmp_path / "models" / "new"))
    p = StreamingQRSProbability(model).update(leads[0].x[:3600])
    assert p.shape == (1200,) and np.all((p >= 0) & (p <= 1))


def test_augmented_windows_keep_their_r_marks_on_the_r_waves(folders) -> None:
    """Stretched in time and mixed from both leads, a training window's R marks must still sit on
    its R waves, or the network would learn to fire beside them."""
    leads = [lead for lead in qrs_train.read_svdb(folders[0]) if lead.patient < "860"]
    windows = qrs_train.Windows(leads, {}, seed=3, augment=True)
    on, beside = [], []
    for _ in range(20):
        y, peaks, _ = windows._augmented()
        y = y - np.median(y)
        peaks = peaks[(peaks >= 200) & (peaks < qrs_train.WINDOW - 200)]
        on += [np.abs(y[p - 5 : p + 6]).max() for p in peaks]
        beside += [np.abs(y[p + 140 : p + 151]).max() for p in peaks]  # 0.4 s later: the T wave
    assert len(on) > 150 and np.median(on) > 2.5 * np.median(beside)
