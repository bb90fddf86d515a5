"""``ecg-eval detect`` end to end, as a user runs it."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import wfdb

from ecg_monitor.evaluation.cli import build_parser
from ecg_monitor.evaluation.ec57 import BEAT_SYMBOLS


def ecg_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecg_monitor.evaluation.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_detect_writes_csv_and_prints_the_ec57_report(data_dir: Path, tmp_path: Path) -> None:
    out = ecg_eval("detect", "--data-dir", str(data_dir), "--records", "100", "--out-dir", str(tmp_path),
                   "--chunk-size", "97")
    assert out.returncode == 0, out.stderr
    assert "[1/1] 100" in out.stderr  # progress
    gross = next(line for line in out.stdout.splitlines() if line.strip().startswith("gross")).split()
    tp, fn, fp = int(gross[1]), int(gross[2]), int(gross[3])
    assert tp > 1890 and fn <= 3 and fp <= 3
    assert "R-mark offset" in out.stdout and "emission delay" in out.stdout
    with (tmp_path / "100.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"sample", "label"} <= set(rows[0])
    ann = wfdb.rdann(str(data_dir / "100"), "atr")
    ref = ann.sample[np.isin(ann.symbol, sorted(BEAT_SYMBOLS))]
    assert abs(len(rows) - len(ref)) <= 3
    assert all(r["label"] in {"N", "S", "V", "F", "Q"} for r in rows)


def test_detect_writes_wfdb_annotations_bxb_can_read(data_dir: Path, tmp_path: Path) -> None:
    out = ecg_eval("detect", "--data-dir", str(data_dir), "--records", "208", "--out-dir", str(tmp_path),
                   "--format", "wfdb", "--chunk-size", "65000")
    assert out.returncode == 0, out.stderr
    ann = wfdb.rdann(str(tmp_path / "208"), "test")
    assert 2900 < len(ann.sample) < 3000 and set(ann.symbol) <= {"N", "A", "V", "F", "Q"}
    assert np.all(np.diff(ann.sample) > 0)


def test_detect_scores_and_times_a_peer_detector_on_the_same_records(data_dir: Path) -> None:
    out = ecg_eval("detect", "--data-dir", str(data_dir), "--records", "100,101", "--peer", "xqrs", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in progress] == ["[1/2] 100", "[2/2] 101"] and "xqrs Se" in progress[0]
    peer = next(line for line in out.stdout.splitlines() if line.strip().startswith("xqrs")).split()
    tp, fn, fp = int(peer[1]), int(peer[2]), int(peer[3])
    assert 3000 < tp < 3500 and fn + fp < 100  # 100 and 101 hold 1,901 + 1,524 beats after 5 min
    timing = next(line for line in out.stdout.splitlines() if line.startswith("detection time"))
    assert "ours" in timing and "xqrs" in timing and "faster" in timing


def test_bad_record_spec_is_refused_clearly(data_dir: Path) -> None:
    out = ecg_eval("detect", "--data-dir", str(data_dir), "--records", "100,nope")
    assert out.returncode == 2 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_every_command_and_option_is_described_with_its_default() -> None:
    parser = build_parser()
    assert "examples:" in parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, (name, action.dest)
        text = command.format_help()
        assert "site-packages" not in text and "/src/ecg_monitor/" not in text, name
    assert "(default: 36000)" in sub.choices["detect"].format_help()
    assert "(default: 12,6,0)" in sub.choices["noise"].format_help()
