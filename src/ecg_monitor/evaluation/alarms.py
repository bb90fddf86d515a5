"""``ecg-eval alarms``: the monitor's alarms against events derived from the annotations.

Reference events come from the same rule code the worker runs (``detector.rules``), fed with the
annotated beats (AAMI labels, no decision delay, no hold: each run by the definition); VT runs
from beat labels, extreme brady- and tachycardia from RR runs, asystole from RR gaps; ventricular
fibrillation is every annotated flutter/fibrillation interval ``[`` ... ``]`` of at least 4 s
(its event is 4 s after ``[``), and beat rules treat those intervals as unusable signal.

An event is detected when the monitor decides that alarm's onset from 2 s before to 10 s after
it (an onset withheld for noise counts when it was raised, not at its back-dated onset), or when
an episode of its kind (VT and VF are one) raised earlier is still on; time to alarm is the
decision minus the event time, for events met by a new onset. Per type, an onset not within 2 s before to 10 s
after a reference episode of its type is a false alarm. Over all life-threatening types, a new
life-threatening episode (an escalation VT -> VF is not one) is false unless it falls within a
reference life-threatening episode of any type (the PhysioNet/CinC 2015 view: a VT alarm in VF
is a true alarm). Onsets per reference episode counts the onsets of a type inside its detected
reference episodes (chatter: 1.0 is one onset per episode).

``--noise em --snr 6`` adds nst-style noise (``replay.noise``); a record without life-threatening
events then counts every life-threatening alarm as false, and each noisy stretch must be
announced by a technical alarm (``signal_noisy``, ``ecg_noisy``, ``lead_off`` or ``signal_saturated``
active at some time inside it); the stretches that were not are listed per record (``--per-record``) and
counted by their start time (nst's stretches start at the same times in every record, over the
same part of the noise record, so a count there points at that part of the noise). With or without
noise, the noise alarms' burden is reported: ``signal_noisy`` and ``ecg_noisy`` onsets per hour
and the share of the time either is on, with the records they came from (on clean records a
monitor that calls the ECG noisy too often gets ignored).

The detected alarms come from the streaming pipeline and alarm engine run in-process over the
record in chunks (the worker does exactly this; both are chunk-invariant). ``--labels reference``
gives each detected beat the label of the annotated beat it matches, to separate the alarm
logic from classifier errors.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.episodes import ESCALATION, REQUIRED, AlarmBook, AlarmEvent
from ecg_monitor.detector.pipeline import SHIPPED, DetectorPipeline, PipelineOutput
from ecg_monitor.detector.rules import Criteria, RhythmRules
from ecg_monitor.evaluation.ec57 import AAMI_OF_SYMBOL, reference_at, reference_beats
from ecg_monitor.evaluation.noise import _noise_dir
from ecg_monitor.evaluation.options import add_detector_option, qrs_option
from ecg_monitor.replay import iter_chunks, parse_record_spec, read_record
from ecg_monitor.replay.noise import add_noise, nst_mask
from ecg_monitor.replay.records import Record

BEFORE_S, AFTER_S = 2.0, 10.0
SHORT = {"asystole": "ASY", "extreme_bradycardia": "BRADY", "extreme_tachycardia": "TACHY",
         "ventricular_tachycardia": "VT", "ventricular_fibrillation": "VF"}
TECHNICAL = ("signal_noisy", "ecg_noisy", "lead_off", "signal_saturated")
#: The technical alarms that say the ECG is noisy (the burden a user sees on clean signal).
NOISE_ALARMS = ("signal_noisy", "ecg_noisy")


@dataclass(frozen=True)
class Episode:
    """An alarm from ``onset`` (the sample its definition is met) to ``end``; ``decided``: the
    sample the onset was raised; ``escalation``: a VT episode turned VF, not a new episode."""

    alarm: str
    onset: int
    end: int
    decided: int = -1
    escalation: bool = False
    begin: int = -1  # where the condition starts when before ``onset`` (flutter before its 4 s)

    @property
    def raised(self) -> int:
        return self.onset if self.decided < 0 else self.decided


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


def _episodes(events: list[AlarmEvent], end: int) -> list[Episode]:
    """Pair onset and end events into episodes (one still open runs to ``end``)."""
    open_: dict[str, AlarmEvent] = {}
    out = []
    for e in events:
        if e.event == "onset":
            open_[e.alarm] = e
        elif e.alarm in open_:
            o = open_.pop(e.alarm)
            out.append(Episode(e.alarm, o.sample, e.sample, o.decided, o.escalation))
    out.extend(Episode(a, o.sample, end, o.decided, o.escalation) for a, o in open_.items())
    return out


def reference_episodes(ref: Reference, fs: float, end: int, criteria: Criteria | None = None) -> list[Episode]:
    """The required alarms' episodes by the monitor's own definitions, from the annotations."""
    book = AlarmBook(fs, hold=False)
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
    episodes = [ep for ep in _episodes(book.events, end) if ep.alarm in REQUIRED and not ep.escalation]
    episodes += [Episode("ventricular_fibrillation", int(a + vf_s * fs), b, begin=a) for a, b in ref.flutter
                 if b - a >= vf_s * fs]
    return episodes


def relabel(beats: list[Beat], ref: Reference, fs: float) -> list[Beat]:
    """Detected beats with the label of the annotated beat they match (Q when none)."""
    labels = reference_at(ref.samples, ref.labels, np.array([b.sample for b in beats], np.int64), fs, "Q")
    return [Beat(b.sample, b.emitted_at, str(lab), b.search_back) for b, lab in zip(beats, labels)]


def detected_episodes(signal: np.ndarray, fs: float, chunk_size: int, ref: Reference | None = None,
                      qrs_model: str | None = SHIPPED) -> list[Episode]:
    """Run the pipeline and the alarm engine over a signal; with ``ref``, oracle labels."""
    pipeline = DetectorPipeline(fs, qrs_model=qrs_model)
    chunks = list(iter_chunks(signal, chunk_size))
    outs = [pipeline.update(c) for c in chunks]
    if ref is not None:
        beats = iter(relabel([b for o in outs for b in o.beats], ref, fs))
        outs = [PipelineOutput(o.start, o.filtered, [next(beats) for _ in o.beats], o.quality) for o in outs]
    return engine_episodes(chunks, outs, fs)


def engine_episodes(chunks: list[np.ndarray], outs: list[PipelineOutput], fs: float) -> list[Episode]:
    """The alarm engine over a stream's chunks and their pipeline outputs, closed at its end."""
    engine = AlarmEngine(fs)
    events = [e for c, o in zip(chunks, outs) for e in engine.update(c, o)]
    return _episodes(events + engine.close("end of record"), engine.n)


@dataclass
class TypeScore:
    events: int = 0
    detected: int = 0
    false_alarms: int = 0
    onsets_in_episodes: int = 0
    delays_s: list[float] = field(default_factory=list)

    def __add__(self, other: TypeScore) -> TypeScore:
        return TypeScore(self.events + other.events, self.detected + other.detected,
                         self.false_alarms + other.false_alarms, self.onsets_in_episodes + other.onsets_in_episodes,
                         self.delays_s + other.delays_s)


@dataclass
class RecordScore:
    types: dict[str, TypeScore]
    false_lt: int  # new life-threatening episodes outside every reference life-threatening episode


def _within(t: int, eps: list[Episode], before: int, after: int) -> bool:
    return any(min(e.onset, e.begin if e.begin >= 0 else e.onset) - before <= t <= e.end + after for e in eps)


def _group(alarm: str) -> tuple[str, ...]:
    """Alarms that are one episode: an event of a VT/VF type is met by either."""
    return ESCALATION if alarm in ESCALATION else (alarm,)


def score(reference: list[Episode], detected: list[Episode], fs: float) -> RecordScore:
    before, after = int(BEFORE_S * fs), int(AFTER_S * fs)
    types = {}
    for alarm in REQUIRED:
        ref = [e for e in reference if e.alarm == alarm]
        raised = np.array(sorted(e.raised for e in detected if e.alarm == alarm), dtype=np.int64)
        group = [e for e in detected if e.alarm in _group(alarm)]
        s = TypeScore(events=len(ref))
        for e in ref:
            hit = raised[(raised >= e.onset - before) & (raised <= e.onset + after)]
            ongoing = any(d.raised < e.onset - before and d.end >= e.onset - before for d in group)
            if hit.size or ongoing:
                s.detected += 1
                s.onsets_in_episodes += int(((raised >= e.onset - before) & (raised <= e.end + after)).sum())
            if hit.size and not ongoing:
                s.delays_s.append(float(hit[0] - e.onset) / fs)
        s.false_alarms = sum(not _within(int(t), ref, before, after) for t in raised)
        types[alarm] = s
    lt = [e for e in detected if e.alarm in REQUIRED and not e.escalation]
    false_lt = sum(not _within(e.raised, reference, before, after) for e in lt)
    return RecordScore(types, false_lt)


@dataclass(frozen=True)
class Stretch:
    """One noisy stretch (seconds) and how long after its start a technical alarm first covered
    it (None: never, the stretch went unannounced)."""

    start_s: float
    end_s: float
    delay_s: float | None


def announced(detected: list[Episode], mask: np.ndarray, fs: float) -> list[Stretch]:
    """The noisy stretches of ``mask``, each with the delay to the technical alarm that covered it."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    tech = [e for e in detected if e.alarm in TECHNICAL]
    out = []
    for a, b in zip(edges[::2], edges[1::2]):
        starts = [max(e.raised, a) for e in tech if e.raised < b and e.end > a]
        out.append(Stretch(a / fs, b / fs, (min(starts) - a) / fs if starts else None))
    return out


@dataclass
class NoiseBurden:
    """How many noise episodes each noise alarm opened (its escalations are the same episode)
    and how long each was shown; ``either``: the time one of them was."""

    onsets: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)

    def __add__(self, other: NoiseBurden) -> NoiseBurden:
        return NoiseBurden(self.onsets + other.onsets, self.seconds + other.seconds)


def noise_burden(detected: list[Episode], n: int, fs: float) -> NoiseBurden:
    """The noise alarms of one record of ``n`` samples."""
    on = {a: np.zeros(n, dtype=bool) for a in NOISE_ALARMS}
    burden = NoiseBurden()
    for e in detected:
        if e.alarm in NOISE_ALARMS:
            burden.onsets[e.alarm] += not e.escalation
            on[e.alarm][max(e.onset, 0) : min(e.end, n)] = True
    for a, mask in on.items():
        burden.seconds[a] = float(mask.sum()) / fs
    burden.seconds["either"] = float(np.logical_or.reduce(list(on.values())).sum()) / fs
    return burden


def format_burden(burden: NoiseBurden, per_record: dict[str, int], hours: float) -> str:
    """The noise alarms per hour, the share of the time they were on, and the records they came from."""
    share = lambda key: f"{100 * burden.seconds[key] / (hours * 3600):.2f} %"  # noqa: E731
    parts = [f"{burden.onsets[a]} opened by {a} ({burden.onsets[a] / hours:.2f}/h), {a} on {share(a)} of the time"
             for a in NOISE_ALARMS]
    total = sum(burden.onsets[a] for a in NOISE_ALARMS)
    worst = sorted(((n, name) for name, n in per_record.items() if n), key=lambda x: (-x[0], x[1]))
    where = ", ".join(f"{name} {n}" for n, name in worst) or "none"
    return (f"noise technical alarms: {total} episodes in {hours:.1f} h = {total / hours:.2f}/h, on {share('either')} "
            f"of the time; {'; '.join(parts)}\nnoise alarm episodes by record: {where}")


def format_report(totals: dict[str, TypeScore], false_lt: int, hours: float, title: str) -> str:
    lines = [title, f"{'alarm':26s} {'events':>6} {'detected':>8} {'Se%':>6} {'false':>6} {'FA/h':>6} "
                    f"{'median time to alarm':>21} {'onsets/episode':>15}"]
    for alarm, s in totals.items():
        se = f"{100 * s.detected / s.events:6.1f}" if s.events else "   n/a"
        delay = f"{np.median(s.delays_s):+.1f} s" if s.delays_s else "n/a"
        chatter = f"{s.onsets_in_episodes / s.detected:.2f}" if s.detected else "n/a"
        lines.append(f"{alarm:26s} {s.events:6d} {s.detected:8d} {se} {s.false_alarms:6d} "
                     f"{s.false_alarms / hours:6.2f} {delay:>21} {chatter:>15}")
    detected = sum(s.detected for s in totals.values())
    onsets = sum(s.onsets_in_episodes for s in totals.values())
    lines.append(f"life-threatening, any type: {false_lt} false in {hours:.1f} h = {false_lt / hours:.2f}/h; "
                 f"onsets per detected reference episode {onsets / max(detected, 1):.2f}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alarms", help="score the five required alarms against annotation-derived events",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    p.add_argument("--records", default="all", help="all, ds1, ds2 or a comma list such as 203,207")
    p.add_argument("--chunk-size", type=int, default=360, help="samples per chunk fed to the pipeline")
    add_detector_option(p)
    p.add_argument("--labels", choices=("pipeline", "reference"), default="pipeline",
                   help="beat labels for the alarm rules: the classifier's, or the matched annotation's")
    p.add_argument("--noise", choices=("em", "ma", "bw"),
                   help="add this MIT-BIH NST noise record the way nst does (2 min noisy / 2 min clean after 5 min)")
    p.add_argument("--snr", type=float, default=6.0, help="SNR of the noisy stretches in dB (with --noise)")
    p.add_argument("--noise-dir", help="folder with the NST noise records (default: ../noise beside the data folder)")
    p.add_argument("--per-record", action="store_true", help="also list each record's events and false alarms")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = parse_record_spec(args.records)
    noise = read_record(args.noise, _noise_dir(args), pn_dir="nstdb").signal if args.noise else None
    totals = {a: TypeScore() for a in REQUIRED}
    hours, false_lt, stretches = 0.0, 0, []
    burden, noise_onsets = NoiseBurden(), {}
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", end="", file=sys.stderr, flush=True)
        record = read_record(name, args.data_dir)
        ref = read_reference(record, args.data_dir)
        signal = record.signal if noise is None else add_noise(record.signal, ref.samples, noise, record.fs, args.snr)
        reference = reference_episodes(ref, record.fs, len(signal))
        detected = detected_episodes(signal, record.fs, args.chunk_size, ref if args.labels == "reference" else None,
                                     qrs_option(args))
        s = score(reference, detected, record.fs)
        missed = ""
        if noise is not None:
            mine = announced(detected, nst_mask(len(signal), record.fs), record.fs)
            stretches += mine
            missed = ", ".join(f"{st.start_s:.0f}-{st.end_s:.0f} s" for st in mine if st.delay_s is None)
        mine_burden = noise_burden(detected, len(signal), record.fs)
        burden, noise_onsets[name] = burden + mine_burden, sum(mine_burden.onsets.values())
        totals = {a: totals[a] + s.types[a] for a in REQUIRED}
        false_lt += s.false_lt
        hours += record.duration_s / 3600.0
        summary = " ".join(f"{SHORT[a]} {t.detected}/{t.events} FA {t.false_alarms}"
                           for a, t in s.types.items() if t.events or t.false_alarms)
        summary = " ".join(part for part in (summary, f"false LT {s.false_lt}" if s.false_lt else "",
                                             f"unannounced noisy stretch {missed}" if missed else "") if part)
        print(f" {summary or 'no events, no alarms'}", file=sys.stderr, flush=True)
        if args.per_record and summary:
            print(f"{name}: {summary}")
    noisy = f", {args.noise} noise at {args.snr:g} dB" if noise is not None else ""
    print(format_report(totals, false_lt, hours, f"Alarms on {len(names)} records ({hours:.1f} h{noisy}), beat labels "
                                                 f"from {args.labels}; detected = onset within -{BEFORE_S:g}/+{AFTER_S:g} s"))
    print(format_burden(burden, noise_onsets, hours))
    if noise is not None:
        delays = [st.delay_s for st in stretches if st.delay_s is not None]
        median = f"{np.median(delays):.1f} s" if delays else "n/a"
        print(f"noisy stretches announced by a technical alarm: {len(delays)}/{len(stretches)} "
              f"(median delay from the stretch's start {median})")
        missed = Counter(round(st.start_s) for st in stretches if st.delay_s is None)
        if missed:
            print("unannounced stretches by their start: " + ", ".join(f"{k} s: {n}" for k, n in sorted(missed.items())))
    return 0
