"""The alarm CSV: one durable row per event, a loud error and no lost row when the disk refuses."""

from __future__ import annotations

import csv

from ecg_monitor.outputs.alarm_log import COLUMNS, AlarmCsv


def row(alarm: str, event: str) -> dict:
    return {"wall_time": "2025-01-01T00:00:00.000+00:00", "source": "synthetic", "record_time_s": 1.5,
            "alarm": alarm, "priority": "high", "event": event, "heart_rate_bpm": "", "detail": "a, \"quoted\" detail",
            "sample": 540, "worker": "1:0"}


def test_rows_are_on_disk_when_write_returns(tmp_path):
    log = AlarmCsv(tmp_path / "alarms.csv")
    assert log.write(row("asystole", "onset"))
    assert log.write(row("asystole", "end"))
    with (tmp_path / "alarms.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS) and [r["event"] for r in rows] == ["onset", "end"]
    assert rows[0]["detail"] == 'a, "quoted" detail'
    AlarmCsv(tmp_path / "alarms.csv").write(row("pause", "onset"))  # a restarted logger appends
    assert (tmp_path / "alarms.csv").read_text().count("wall_time") == 1


def test_unwritable_log_is_loud_and_keeps_rows_until_it_can_write(tmp_path, capsys):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    log = AlarmCsv(blocker / "alarms.csv")
    assert not log.write(row("asystole", "onset"))
    assert not log.write(row("asystole", "end"))
    assert "ALARM LOG NOT WRITTEN" in capsys.readouterr().err and len(log.pending) == 2
    blocker.unlink()
    blocker.mkdir()
    assert log.write()  # the retry writes what was held back, in order
    with (blocker / "alarms.csv").open() as fh:
        assert [r["event"] for r in csv.DictReader(fh)] == ["onset", "end"]
    assert log.written == 2 and not log.pending
