"""The headless console: a subscriber that prints alarms and source events at once and a status
line every few seconds (the worker's status as it arrives, so lines stay in the order things
happened and none is printed twice), and optionally writes every beat (``--beats-csv``) and
final statistics (``--stats-json``)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ecg_monitor.app import runtime
from ecg_monitor.detector.beats import Beat
from ecg_monitor.evaluation.detect import BEATS_CSV_HEADER, beat_csv_row
from ecg_monitor.firmware_bridge.serial_source import fault_summary
from ecg_monitor.outputs.listener import Listener
from ecg_monitor.streamer.messages import Message

NO_DATA_S = 2.0


@dataclass(frozen=True)
class ConsoleConfig:
    events: str  # the worker's events endpoint
    every_s: float = 2.0  # status line period (wall clock)
    beats_csv: Path | None = None
    stats_json: Path | None = None
    own_fs: float | None = None  # rate of the source's own sample numbering (beats CSV)
    exit_on_end: bool = True
    queueing: bool = False  # paced source at --speed max: end-to-end times are queueing


def _ms(x: float | None) -> str:
    return "  -  " if x is None else f"{x:5.2f}"


def status_line(st: dict, queueing: bool = False) -> str:
    """One line: record time, HR, beats by class, alarms, continuity, latency, source.

    ``queueing``: the source is sent as fast as the worker takes it (``--speed max``), so the
    time from a sample's send to its beat is mostly the wait in the queue, not latency: only
    the worker's compute time is shown then."""
    hr = st.get("heart_rate_bpm")
    classes = " ".join(f"{c} {n}" for c, n in st.get("beats_by_class", {}).items()) or "-"
    alarms = ", ".join(f"{a['alarm']}({a['priority']})" for a in st.get("active_alarms", [])) or "none"
    c = st["continuity"]
    lat = st["latency_ms"]
    source = st["source_state"]
    age = st.get("data_age_s")
    if source == "connected" and age is not None and age > NO_DATA_S:
        source = f"NO DATA for {age:.1f} s"
    elif source == "disconnected" and age is not None:
        source = f"disconnected, no data for {age:.1f} s"
    device = fault_summary(st.get("source_counters") or {})
    device = f" | {device}" if device else ""
    e2e = "e2e: queueing at --speed max" if queueing else f"e2e {_ms(lat['end_to_end']['p99'])} ms"
    return (f"t {st.get('record_time_s', 0):8.1f} s | HR {'---' if hr is None else f'{hr:3.0f}'} | "
            f"beats {classes} | alarms: {alarms} | chunks gaps {c.get('gaps', 0)} dup {c.get('duplicates', 0)} "
            f"lost {c.get('lost_chunks', 0)} bad {c.get('malformed', 0) + c.get('foreign', 0)}"
            f"{device} | "
            f"latency p99 {_ms(lat['compute']['p99'])} ms ({e2e}) | "
            f"source {source} | worker restarts {st['incarnation']}")


def alarm_line(h: dict) -> str:
    """One line per alarm event; an end says how long the alarm lasted (the worker's
    ``lasted_s``), and the worker's detail stands after a bar so it cannot read as another
    message."""
    hr = "" if h["heart_rate_bpm"] is None else f", HR {h['heart_rate_bpm']:.0f}"
    lasted = "" if h.get("lasted_s") is None else f", lasted {h['lasted_s']:.1f} s"
    detail = f" | {h['detail']}" if h["detail"] else ""
    return (f"ALARM {h['event']:5s} {h['alarm']} [{h['priority'].upper()}] at {h['record_time_s']:.1f} s"
            f"{hr}{lasted}{detail}")


class Console:
    def __init__(self, cfg: ConsoleConfig, out: TextIO = sys.stdout) -> None:
        self.cfg, self.out = cfg, out
        self.last_status: dict | None = None
        self.source_state = "waiting"
        self.reconnects = 0
        self.next_print = time.monotonic() + cfg.every_s
        self.worker: str | None = None
        self.alarms: Counter[str] = Counter()
        self.beats_received = 0
        self.beats = None
        if cfg.beats_csv is not None:
            self.beats = Path(cfg.beats_csv).open("w")
            self.beats.write(BEATS_CSV_HEADER)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def handle(self, msg: Message) -> bool:
        if self.worker is not None and msg["worker"] != self.worker:
            self.say(f"*** detector worker restarted ({self.worker} -> {msg['worker']}) ***")
        self.worker = msg["worker"]
        if msg.kind == "alarm":
            h = msg.header
            if h["event"] == "onset":
                self.alarms[h["alarm"]] += 1
            self.say(alarm_line(h))
        elif msg.kind == "beats":
            self._write_beats(msg)
        elif msg.kind == "status":
            self._source_events(msg.header)
            self.last_status = msg.header
            ended = msg["source_state"] == "ended" and self.cfg.exit_on_end
            now = time.monotonic()
            if ended or now >= self.next_print:  # printed as it arrives: in order with the alarms
                self.say(status_line(msg.header, self.cfg.queueing))
                self.next_print = now + self.cfg.every_s
            if ended:
                detail = msg.header.get("source_detail") or ""
                self.say(f"source ended{': ' + detail if detail else ''}")
                return False
        return True

    def _source_events(self, st: dict) -> None:
        """An event line when the device is lost, comes back or was reopened (counted by the
        serial source), so a dropout shows when it happens, not only as a number."""
        counters = st.get("source_counters") or {}
        reconnects = counters.get("reconnects", 0)
        state, detail = st["source_state"], st.get("source_detail") or counters.get("detail") or ""
        if reconnects > self.reconnects:
            self.say(f"SOURCE {st['source']} reopened (reconnect {reconnects}){': ' + detail if detail else ''}")
        elif state != self.source_state and "disconnected" in (state, self.source_state):
            self.say(f"SOURCE {st['source']} {state}{': ' + detail if detail else ''}")
        self.reconnects, self.source_state = reconnects, state

    def _write_beats(self, msg: Message) -> None:
        self.beats_received += len(msg["beats"])
        if self.beats is None:
            return
        fs = msg["fs"]
        own_fs = self.cfg.own_fs or fs
        for b in msg["beats"]:
            beat = Beat(b["sample"], b["emitted_at"], b["label"], b["search_back"])
            self.beats.write(beat_csv_row(beat, int(round(b["sample"] * own_fs / fs)), fs, own_fs))
        self.beats.flush()

    def finish(self) -> None:
        if self.beats is not None:
            self.beats.close()
        if self.cfg.stats_json is not None:
            Path(self.cfg.stats_json).write_text(json.dumps(self.stats(), indent=2) + "\n")

    def stats(self) -> dict:
        st = self.last_status or {}
        wall = st.get("stream_wall_s") or 0.0
        fs = st.get("fs") or 0.0
        signal_s = st.get("samples", 0) / fs if fs else 0.0
        return {
            "source_state": st.get("source_state"),
            "signal_s": round(signal_s, 3),
            "stream_wall_s": wall,
            "x_realtime": round(signal_s / wall, 1) if wall else None,
            "samples_per_s": round(st.get("samples", 0) / wall) if wall else None,
            "busy_s": st.get("busy_s"),
            "beats_by_class": st.get("beats_by_class"),
            "beats_received": self.beats_received,
            "alarm_onsets": dict(self.alarms),
            "continuity": st.get("continuity"),
            "latency_ms": st.get("latency_ms"),
            "end_to_end_is_queueing": self.cfg.queueing,
            "source_counters": st.get("source_counters"),
            "worker_restarts": st.get("incarnation"),
        }


def run(cfg: ConsoleConfig, ready=None, child: bool = True) -> int:
    """Entry point of the headless console process."""
    stop = runtime.StopFlag(child=child, name="ecg-console")
    console = Console(cfg)
    listener = Listener(cfg.events, (b"alarm", b"beats", b"status"), stop)
    try:
        listener.run(console.handle, ready)
    finally:
        console.finish()
        listener.close()
    return 0
