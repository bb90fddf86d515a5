"""The alarm log: a subscriber that appends one CSV row per alarm event, on disk at once.

Each row is written, flushed and fsync-ed before the next message is read, so a crash (of this
process, the worker or the machine) loses no row already logged. When the file cannot be
written (unwritable folder, disk full) the error is printed loudly on every failed attempt, the
rows are kept in memory and retried with the next event, and monitoring goes on: the log is
never a reason to stop watching the patient.

When the worker is restarted, the alarms the old worker had open are closed with an ``end``
row saying so, and the restart itself is logged as a ``worker_restarted`` onset/end pair.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ecg_monitor.app import runtime
from ecg_monitor.outputs.listener import Listener
from ecg_monitor.streamer.messages import Message

COLUMNS = ("wall_time", "source", "record_time_s", "alarm", "priority", "event", "heart_rate_bpm",
           "detail", "sample", "worker")
MAX_PENDING = 100000
RETRY_S = 5.0


def wall_time() -> str:
    """Now, ISO 8601 with the local UTC offset, to the millisecond."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


class AlarmCsv:
    """Append-only CSV file of alarm rows; every row is durable when ``write`` returns True."""

    def __init__(self, path: Path, columns: tuple[str, ...] = COLUMNS) -> None:
        self.path = Path(path)
        self.columns = columns
        self.pending: list[dict] = []
        self.written = 0
        self.failures = 0
        self.last_attempt = 0.0

    def _line(self, row: dict) -> str:
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, extrasaction="ignore", lineterminator="\n").writerow(row)
        return buf.getvalue()

    def write(self, row: dict | None = None) -> bool:
        """Append ``row`` (and any row a past failure held back); False if the disk refused.
        Without a row: create the file with its header, or retry what is held back."""
        if row is not None and len(self.pending) < MAX_PENDING:
            self.pending.append(row)
        self.last_attempt = time.monotonic()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                text = "".join(self._line(r) for r in self.pending)
                if os.fstat(fd).st_size == 0:
                    text = ",".join(self.columns) + "\n" + text
                data = text.encode("utf-8")
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.failures += 1
            print(f"\n!!! ALARM LOG NOT WRITTEN: {self.path}: {exc.strerror or exc} "
                  f"({len(self.pending)} alarm row(s) held in memory; monitoring continues) !!!\n",
                  file=sys.stderr, flush=True)
            return False
        self.written += len(self.pending)
        self.pending = []
        return True


@dataclass(frozen=True)
class AlarmLogConfig:
    events: str  # the worker's events endpoint
    path: Path
    exit_on_end: bool = False  # stop after the source's end has been logged (headless replay)


def alarm_row(h: dict, **fields) -> dict:
    """The CSV row of one ``alarm`` message's header (``fields``: extra columns, e.g. the
    patient); an end row's detail starts with how long the alarm lasted."""
    detail = h["detail"]
    if h.get("lasted_s") is not None:
        detail = "; ".join(filter(None, (f"lasted {h['lasted_s']:.1f} s", detail)))
    return {"wall_time": wall_time(), "source": h["source"], "worker": h["worker"],
            "record_time_s": h["record_time_s"], "alarm": h["alarm"], "priority": h["priority"],
            "event": h["event"], "heart_rate_bpm": "" if h["heart_rate_bpm"] is None else h["heart_rate_bpm"],
            "detail": detail, "sample": h["sample"], **fields}


class AlarmLogger:
    """Turns ``alarm`` messages (and worker restarts seen in ``status``) into CSV rows."""

    def __init__(self, cfg: AlarmLogConfig) -> None:
        self.cfg = cfg
        self.csv = AlarmCsv(cfg.path)
        self.worker: str | None = None
        self.open: dict[str, dict] = {}  # alarm -> its onset row, while the current worker has it on

    def _row(self, msg: Message, **fields) -> dict:
        h = msg.header
        return {"wall_time": wall_time(), "source": h["source"], "worker": h["worker"], **fields}

    def _worker_changed(self, msg: Message) -> None:
        old, self.worker = self.worker, msg["worker"]
        if old is None or old == self.worker:
            return
        detail = f"detector worker restarted ({old} -> {self.worker}); alarm state reset"
        for alarm, onset in list(self.open.items()):
            self.csv.write({**onset, "wall_time": wall_time(), "event": "end", "detail": detail,
                            "worker": self.worker})
        self.open.clear()
        for event in ("onset", "end"):
            self.csv.write(self._row(msg, record_time_s="", alarm="worker_restarted", priority="medium",
                                     event=event, heart_rate_bpm="", detail=detail, sample=""))

    def handle(self, msg: Message) -> bool:
        self._worker_changed(msg)
        if msg.kind == "alarm":
            row = alarm_row(msg.header)
            if msg["event"] == "onset":
                self.open[msg["alarm"]] = row
            else:
                self.open.pop(msg["alarm"], None)
            self.csv.write(row)
        elif msg.kind == "status" and msg["source_state"] == "ended" and self.cfg.exit_on_end:
            return False
        return True

    def finish(self) -> int:
        """Last try at the rows held back; if they still cannot be written, say so loudly and
        return ``EXIT_DATA_LOST``, so the monitor cannot end with exit code 0 over a lost row."""
        if self.csv.pending and not self.csv.write():
            print(f"\n!!! {len(self.csv.pending)} ALARM ROW(S) LOST: never written to {self.cfg.path} !!!\n",
                  file=sys.stderr, flush=True)
            return runtime.EXIT_DATA_LOST
        return 0

    def idle(self) -> None:
        """Retry rows a failed write held back, every few seconds."""
        if self.csv.pending and time.monotonic() - self.csv.last_attempt >= RETRY_S:
            self.csv.write()


def check_writable(path: Path) -> None:
    """Create the log's folder and open the log for appending, or raise ``OSError``: run before
    any process starts, so a log that cannot even be created stops the monitor with one line.
    (A disk that fills later is the loud retry path above.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))


def run(cfg: AlarmLogConfig, ready=None, child: bool = True) -> int:
    """Entry point of the alarm-log process; ``EXIT_DATA_LOST`` when rows were never written."""
    stop = runtime.StopFlag(child=child, name="ecg-alarm-log")
    logger = AlarmLogger(cfg)
    logger.csv.write()  # the header now: an unwritable log is reported before the first alarm
    listener = Listener(cfg.events, (b"alarm", b"status"), stop)
    try:
        listener.run(logger.handle, ready, logger.idle)
    finally:
        listener.close()
    return logger.finish()
