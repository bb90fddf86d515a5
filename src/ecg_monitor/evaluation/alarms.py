"""``ecg-eval alarms``: the monitor's alarms against events derived from the annotations.

Reference events come from the same rule code the worker runs (``detector.rules``), fed with the
annotated beats (AAMI labels, no decision delay): VT runs from beat labels, extreme brady- and
tachycardia from RR runs, asystole from RR gaps; ventricular fibrillation is every annotated
flutter/fibrillation interval ``[`` ... ``]`` of at least 4 s (its event is 4 s after ``[``),
and beat rules treat those intervals as unusable signal. An event is detected when the monitor
raises that alarm from 2 s before to 10 s after it; an onset that is not within 2 s before to
10 s after the end of a reference episode of its type is a false alarm. Time to alarm is the
onset minus the event time.

The detected alarms come from the streaming pipeline and alarm engine run in-process over the
record in chunks (the worker does exactly this; both are chunk-invariant). ``--labels reference``
gives each detected beat the label of the annotated beat it matches, to separate the alarm
logic from classifier errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.pipeline import DetectorPipeline, PipelineOutput
from ecg_monitor.detector.rules import REQUIRED, AlarmBook, Criteria, RhythmRules
from ecg_monitor.evaluation.ec57 import AAMI_OF_SYMBOL, reference_at, reference_beats
from ecg_monitor.replay import iter_chunks, parse_record_spec, read_record
from ecg_monitor.replay.records import Record

BEFORE_S, AFTER_S = 2.0, 10.0
SHORT = {"asystole": "ASY", "extreme_bradycardia": "BRADY", "extreme_tachycardia": "TACHY",
         "ventricular_tachycardia": "VT", "ventricular_fibrillation": "VF"}


@dataclass(frozen=True)
class Episode:
    """An alarm condition from ``onset`` (the sample its definition is met) to ``end``."""

    alarm: str
    onset: int
    end: int


@dataclass
class Reference:
    """Annotated beats (pipeline samples, AAMI labels) and flutter intervals of one record."""

    samples: np.ndarray
    labels: np.ndarray
    flutter: list[tuple[int, int]]


def read_reference(record: Record, data_dir: str | None) -> Reference:
    """The annotated beats with their EC57 (bxb) classes, the labels the alarm rules take."""
    ref = reference_beats(record, data_dir)
    labels = np.array([AAMI_OF_SYMBOL[s] for s in ref.symbols], dtype=str)
    return Reference(ref.samples, labels, ref.flutter)


def _episodes(events, end: int) -> list[Episode]:
    """Pair onset and end events into episodes (one still open runs to ``end``)."""
    open_, out = {}, []
    for e in events:
        if e.event == "onset":
            open_[e.alarm] = e.sample
        elif e.alarm in open_:
            out.append(Episode(e.alarm, open_.pop(e.alarm), e.sample))
    out.extend(Episode(a, s, end) for a, s in open_.items())
    return out


def reference_episodes(ref: Reference, fs: float, end: int, criteria: Criteria | None = None) -> list[Episode]:
    """The required alarms' episodes by the monitor's own definitions, from the annotations."""
    book = AlarmBook()
    rules = RhythmRules(fs, book, criteria)
    items = sorted([(s, 0, e, "") for s, e in ref.flutter] +
                   [(int(s), 1, 0, str(lab)) for s, lab in zip(ref.samples, ref.labels)])
    for t, kind, until, label in items + [(end + 1, 2, 0, "")]:
        while (due := rules.due()) is not None and due < t:
            rules.fire(due)
        if kind == 0:
            rules.mark_unusable(until)
        elif kind == 1:
            rules.beat(t, t, label)
    vf_s = (criteria or Criteria()).vf_s
    episodes = [ep for ep in _episodes(book.events, end) if ep.alarm in REQUIRED]
    episodes += [Episode("ventricular_fibrillation", int(a + vf_s * fs), b) for a, b in ref.flutter
                 if b - a >= vf_s * fs]
    return episodes


def relabel(beats: list[Beat], ref: Reference, fs: float) -> list[Beat]:
    """Detected beats with the label of the annotated beat they match (Q when none)."""
    labels = reference_at(ref.samples, ref.labels, np.array([b.sample for b in beats], np.int64), fs, "Q")
    return [Beat(b.sample, b.emitted_at, str(lab), b.search_back) for b, lab in zip(beats, labels)]


def detected_episodes(record: Record, chunk_size: int, ref: Reference | None = None) -> list[Episode]:
    """Run the pipeline and the alarm engine over the record; with ``ref``, oracle labels."""
    pipeline, engine = DetectorPipeline(record.fs), AlarmEngine(record.fs)
    chunks = list(iter_chunks(record.signal, chunk_size))
    outs = [pipeline.update(c) for c in chunks]
    if ref is not None:
        beats = iter(relabel([b for o in outs for b in o.beats], ref, record.fs))
        outs = [PipelineOutput(o.start, o.filtered, [next(beats) for _ in o.beats]) for o in outs]
    events = [e for c, o in zip(chunks, outs) for e in engine.update(c, o)]
    return _episodes(events, len(record.signal))


@dataclass
class TypeScore:
    events: int = 0
    detected: int = 0
    false_alarms: int = 0
    delays_s: list[float] = field(default_factory=list)

    def __add__(self, other: TypeScore) -> TypeScore:
        return TypeScore(self.events + other.events, self.detected + other.detected,
                         self.false_alarms + other.false_alarms, self.delays_s + other.delays_s)


def score(reference: list[Episode], detected: list[Episode], fs: float) -> dict[str, TypeScore]:
    before, after = int(BEFORE_S * fs), int(AFTER_S * fs)
    out = {}
    for alarm in REQUIRED:
        ref = [e for e in reference if e.alarm == alarm]
        onsets = np.array(sorted(e.onset for e in detected if e.alarm == alarm), dtype=np.int64)
        s = TypeScore(events=len(ref))
        for e in ref:
            hit = onsets[(onsets >= e.onset - before) & (onsets <= e.onset + after)]
            if hit.size:
                s.detected += 1
                s.delays_s.append(float(hit[0] - e.onset) / fs)
        for t in onsets:
            if not any(e.onset - before <= t <= e.end + after for e in ref):
                s.false_alarms += 1
        out[alarm] = s
    return out


def format_table(totals: dict[str, TypeScore], hours: float, title: str) -> str:
    lines = [title, f"{'alarm':26s} {'events':>6} {'detected':>8} {'Se%':>6} {'false':>6} {'FA/h':>6} "
                    f"{'median time to alarm':>21}"]
    for alarm, s in totals.items():
        se = f"{100 * s.detected / s.events:6.1f}" if s.events else "   n/a"
        delay = f"{np.median(s.delays_s):+.1f} s" if s.delays_s else "n/a"
        lines.append(f"{alarm:26s} {s.events:6d} {s.detected:8d} {se} {s.false_alarms:6d} "
                     f"{s.false_alarms / hours:6.2f} {delay:>21}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alarms", help="score the five required alarms against annotation-derived events")
    p.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    p.add_argument("--records", default="all", help="all, ds1, ds2 or a comma list such as 203,207")
    p.add_argument("--chunk-size", type=int, default=360, help="samples per chunk fed to the pipeline")
    p.add_argument("--labels", choices=("pipeline", "reference"), default="pipeline",
                   help="beat labels for the alarm rules: the classifier's, or the matched annotation's")
    p.add_argument("--per-record", action="store_true", help="also list each record's events and false alarms")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = parse_record_spec(args.records)
    totals = {a: TypeScore() for a in REQUIRED}
    hours = 0.0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", end="", file=sys.stderr, flush=True)
        record = read_record(name, args.data_dir)
        ref = read_reference(record, args.data_dir)
        reference = reference_episodes(ref, record.fs, len(record.signal))
        detected = detected_episodes(record, args.chunk_size, ref if args.labels == "reference" else None)
        scores = score(reference, detected, record.fs)
        totals = {a: totals[a] + scores[a] for a in REQUIRED}
        hours += record.duration_s / 3600.0
        summary = " ".join(f"{SHORT[a]} {s.detected}/{s.events} FA {s.false_alarms}"
                           for a, s in scores.items() if s.events or s.false_alarms)
        print(f" {summary or 'no events, no alarms'}", file=sys.stderr, flush=True)
        if args.per_record and summary:
            print(f"{name}: {summary}")
    print(format_table(totals, hours, f"Alarms on {len(names)} records ({hours:.1f} h), beat labels from "
                                      f"{args.labels}; detected = onset within -{BEFORE_S:g}/+{AFTER_S:g} s"))
    return 0
