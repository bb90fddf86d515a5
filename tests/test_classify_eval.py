"""``ecg-eval classify`` and ``ecg-eval explain`` on one record each (report, figures, saliency)."""

from __future__ import annotations

import numpy as np

from ecg_monitor.evaluation.classify import Tally, tally
from ecg_monitor.evaluation.cli import main


def test_tally_counts_missed_and_extra_beats() -> None:
    ref = np.array([100, 400, 700, 1000])
    det = np.array([102, 405, 1300])
    t = tally(ref, np.array([0, 2, 1, 0]), det, np.array([0, 1, 3]), window=54)
    assert t.cm[0, 0] == 1 and t.cm[2, 1] == 1
    assert t.missed.tolist() == [1, 1, 0, 0, 0] and t.extra.tolist() == [0, 0, 0, 1, 0]
    s = (t + Tally()).scores
    assert s["N"].se == 0.5 and s["V"].se == 0.0 and np.isnan(s["Q"].se)


def test_classify_report_and_figures(data_dir, tmp_path, capsys) -> None:
    assert main(["classify", "--data-dir", str(data_dir), "--records", "119,102", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "records (119)" in out  # paced 102 left out
    for part in ("end to end, int8", "reference int8", "end-to-end fp32", "macro F1", "missed", "extra",
                 "label delay", "bxb mapping", "de Chazal"):
        assert part in out, part
    assert (tmp_path / "confusion_end_to_end_int8.png").stat().st_size > 1000
    assert (tmp_path / "per_record_end_to_end_int8.png").stat().st_size > 1000


def test_classify_runs_on_another_database(data_dir, tmp_path, capsys) -> None:
    svdb = data_dir.parent / "svdb-train"  # 128 Hz, leads ECG1/ECG2: resampled, ECG1 used
    assert main(["classify", "--data-dir", str(svdb), "--records", "857", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "records (857)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("857 "))
    assert int(row.split()[1]) > 2000  # reference beats of 857 scored


def test_explain_writes_saliency_figure(data_dir, tmp_path, capsys) -> None:
    png = tmp_path / "208.png"
    assert main(["explain", "--data-dir", str(data_dir), "--record", "208", "--beats", "4", "--out", str(png)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("beat at")]
    assert len(lines) == 4 and png.stat().st_size > 1000
