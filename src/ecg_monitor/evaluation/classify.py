"""``ecg-eval classify``: score the beat classifier on records (DS2 by default, paced ones left out).

Four ways, each as a confusion matrix with per-class Se, +P and F1 and the macro F1 over N, S,
V, F:

* **end to end, int8** - records streamed through ``DetectorPipeline`` with the packaged int8
  model, our detected beats matched to the reference within 150 ms; reference beats with no
  detection are "missed" (they lower Se), detections with no reference beat are "extra" (they
  lower +P);
* **end to end, fp32** - the same beats and features through the float model;
* **reference positions, int8 / fp32** - the features computed at the reference beats (R marks
  placed on the largest deflection within 75 ms, as the detector places them), as papers do.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.classifier import (
    SHIPPED_FP32_MODEL,
    SHIPPED_METADATA,
    SHIPPED_MODEL,
    BeatClassifier,
)
from ecg_monitor.detector.features import extract_features
from ecg_monitor.detector.pipeline import run_signal
from ecg_monitor.evaluation.classmetrics import MACRO_CLASSES, class_scores, confusion, macro_f1
from ecg_monitor.evaluation.ec57 import (
    AAMI_OF_SYMBOL,
    inside_spans,
    match_beats,
    match_window,
    pct,
    reference_beats,
)
from ecg_monitor.evaluation.labels import CLASS_OF_SYMBOL, MAPPING_NOTE
from ecg_monitor.replay import PACED, parse_record_spec, read_record

K = len(AAMI_CLASSES)
MODES = ("end-to-end int8", "end-to-end fp32", "reference int8", "reference fp32")
SNAP_S = 0.075


@dataclass
class Tally:
    """Confusion counts (reference rows x predicted columns) plus missed and extra beats."""

    cm: np.ndarray = field(default_factory=lambda: np.zeros((K, K), np.int64))
    missed: np.ndarray = field(default_factory=lambda: np.zeros(K, np.int64))
    extra: np.ndarray = field(default_factory=lambda: np.zeros(K, np.int64))

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.cm + other.cm, self.missed + other.missed, self.extra + other.extra)

    @property
    def scores(self):
        return class_scores(self.cm, self.missed, self.extra)

    @property
    def macro_f1(self) -> float:
        return macro_f1(self.scores)


def tally(ref: np.ndarray, ref_cls: np.ndarray, det: np.ndarray, det_cls: np.ndarray, window: int) -> Tally:
    """Match detections to reference beats and count their classes."""
    m = match_beats(ref, det, window)
    return Tally(confusion(ref_cls[m.pairs[:, 0]], det_cls[m.pairs[:, 1]], K),
                 np.bincount(ref_cls[m.missed], minlength=K), np.bincount(det_cls[m.extra], minlength=K))


@dataclass
class RecordEval:
    name: str
    tallies: dict[str, Tally]
    bxb: Tally  # end-to-end int8 with e, j counted as S
    delays_ms: np.ndarray


def snap(filtered: np.ndarray, samples: np.ndarray, half: int) -> np.ndarray:
    """R marks on the largest |deflection| of the display-band ECG within ``half`` samples."""
    x = np.abs(np.nan_to_num(filtered))
    out = samples.copy()
    for i, s in enumerate(samples):
        lo = max(0, s - half)
        out[i] = lo + int(np.argmax(x[lo : s + half + 1]))
    return out


def classes_of(beats: list[Beat]) -> np.ndarray:
    return np.array([AAMI_CLASSES.index(b.label) for b in beats], dtype=np.int64)


def evaluate_record(name: str, data_dir: str | None, int8: BeatClassifier, fp32: BeatClassifier) -> RecordEval:
    record = read_record(name, data_dir)
    reference = reference_beats(record, data_dir)
    keep = ~inside_spans(reference.samples, reference.flutter)
    ref, symbols = reference.samples[keep], reference.symbols[keep]
    ref_cls = np.array([AAMI_CLASSES.index(CLASS_OF_SYMBOL[s]) for s in symbols], np.int64)
    window = match_window(record.fs)

    # One detector run and one feature pass (the pipeline's own code), so int8 and fp32 judge
    # the same features; beats in VF episodes are dropped only after classification.
    found, filtered = run_signal(record.signal, record.fs, classifier=None)
    e2e = extract_features(record.signal, filtered, found, int8.spec)
    ok = ~inside_spans(np.array([b.sample for b, _ in e2e], np.int64), reference.flutter)
    beats = [b for b, k in zip(int8.classify(e2e), ok) if k]
    beats_fp32 = [b for b, k in zip(fp32.classify(e2e), ok) if k]
    det = np.array([b.sample for b in beats], np.int64)
    ref_beats = [Beat(int(s), int(s)) for s in snap(filtered, ref, int(round(SNAP_S * record.fs)))]
    at_ref = extract_features(record.signal, filtered, ref_beats, int8.spec)
    det_cls = classes_of(beats)
    tallies = {
        "end-to-end int8": tally(ref, ref_cls, det, det_cls, window),
        "end-to-end fp32": tally(ref, ref_cls, det, classes_of(beats_fp32), window),
        "reference int8": tally(ref, ref_cls, ref, classes_of(int8.classify(at_ref)), window),
        "reference fp32": tally(ref, ref_cls, ref, classes_of(fp32.classify(at_ref)), window),
    }
    bxb_cls = np.array([AAMI_CLASSES.index(AAMI_OF_SYMBOL[s]) for s in symbols], np.int64)
    delays = np.array([b.emitted_at - b.sample for b in beats], float) * 1000.0 / record.fs
    return RecordEval(name, tallies, tally(ref, bxb_cls, det, det_cls, window), delays)


def format_confusion(t: Tally) -> list[str]:
    head = f"{'ref/pred':>10} " + " ".join(f"{c:>7}" for c in AAMI_CLASSES) + f" {'missed':>7}"
    rows = [head]
    for i, c in enumerate(AAMI_CLASSES):
        rows.append(f"{c:>10} " + " ".join(f"{v:7d}" for v in t.cm[i]) + f" {t.missed[i]:7d}")
    rows.append(f"{'extra':>10} " + " ".join(f"{v:7d}" for v in t.extra))
    return rows


def format_scores(t: Tally) -> list[str]:
    s = t.scores
    rows = [f"{'class':>10} {'Se%':>7} {'+P%':>7} {'F1':>7}"]
    for c in AAMI_CLASSES:
        rows.append(f"{c:>10} {pct(s[c].se):>7} {pct(s[c].ppv):>7} {s[c].f1:7.3f}")
    rows.append(f"{'macro F1':>10} ({','.join(MACRO_CLASSES)}) {t.macro_f1:.4f}")
    return rows


def format_records(results: list[RecordEval], mode: str) -> list[str]:
    rows = [f"{'record':>6} {'beats':>6} {'missed':>6} {'extra':>5} | "
            + " | ".join(f"{c}: {'n':>5} {'Se%':>6} {'+P%':>6}" for c in ("S", "V", "F")) + " | macroF1"]
    for r in results:
        t = r.tallies[mode]
        s = t.scores
        cells = " | ".join(f"{c}: {t.cm[i].sum() + t.missed[i]:5d} {pct(s[c].se)} {pct(s[c].ppv)}"
                           for c, i in (("S", 1), ("V", 2), ("F", 3)))
        n = t.cm.sum() + t.missed.sum()
        rows.append(f"{r.name:>6} {n:6d} {t.missed.sum():6d} {t.extra.sum():5d} | {cells} | {t.macro_f1:.3f}")
    return rows


def format_report(results: list[RecordEval], model: Path) -> str:
    gross = {m: sum((r.tallies[m] for r in results), Tally()) for m in MODES}
    bxb = sum((r.bxb for r in results), Tally())
    delays = np.concatenate([r.delays_ms for r in results])
    lines = [
        f"beat classification: {len(results)} records ({', '.join(r.name for r in results)}); model {model}",
        MAPPING_NOTE + " (bxb/EC57 would put e, j in S: see below)",
        "", "== end to end, int8 (our detected beats, 150 ms matching) ==",
        *format_confusion(gross[MODES[0]]), "", *format_scores(gross[MODES[0]]),
        "", "per record (end to end, int8):", *format_records(results, MODES[0]),
    ]
    for mode in MODES[1:]:
        lines += ["", f"== {mode} ==", *format_confusion(gross[mode]), *format_scores(gross[mode])]
    s = bxb.scores["S"]
    lines += [
        "",
        "summary          " + " ".join(f"{c + ' Se/+P':>14}" for c in MACRO_CLASSES) + "  macro F1",
        *(f"{m:<16} " + " ".join(f"{pct(gross[m].scores[c].se)}/{pct(gross[m].scores[c].ppv).strip():<7}"
                                 for c in MACRO_CLASSES) + f"  {gross[m].macro_f1:.4f}" for m in MODES),
        f"int8 - fp32 macro F1: end to end {gross[MODES[0]].macro_f1 - gross[MODES[1]].macro_f1:+.4f}, "
        f"reference positions {gross[MODES[2]].macro_f1 - gross[MODES[3]].macro_f1:+.4f}",
        f"S with e, j counted as S (bxb mapping), end to end int8: Se {pct(s.se)} +P {pct(s.ppv)}",
        f"label delay (R mark -> labelled beat output): median {np.median(delays):.0f} ms, "
        f"p95 {np.percentile(delays, 95):.0f} ms, max {np.max(delays):.0f} ms",
    ]
    return "\n".join(lines)


def save_figures(results: list[RecordEval], out_dir: Path) -> list[Path]:
    """Confusion matrix (row-normalised colours, counts) and per-record Se/+P bars for S and V."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    t = sum((r.tallies[MODES[0]] for r in results), Tally())
    table = np.vstack([np.column_stack([t.cm, t.missed]), np.append(t.extra, 0)])
    frac = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    cols, rows = [*AAMI_CLASSES, "missed"], [*AAMI_CLASSES, "extra"]
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for (i, j), v in np.ndenumerate(table):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(f"end to end, int8 - macro F1 {t.macro_f1:.3f}")
    fig.tight_layout()
    paths = [out_dir / "confusion_end_to_end_int8.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    x = np.arange(len(results))
    for ax, c in zip(axes, ("V", "S")):
        k = AAMI_CLASSES.index(c)
        tallies = [r.tallies[MODES[0]] for r in results]
        sc = [t.scores[c] for t in tallies]
        ax.bar(x - 0.2, [100 * s.se for s in sc], 0.4, label="Se")
        ax.bar(x + 0.2, [100 * s.ppv for s in sc], 0.4, label="+P")
        for xi, t in zip(x, tallies):
            ax.text(xi, 106, str(t.cm[k].sum() + t.missed[k]), ha="center", fontsize=7)
        ax.set_ylabel(f"{c} (%)")
        ax.set_ylim(0, 115)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1].set_xticks(x, [r.name for r in results])
    axes[0].set_title("per record, end to end, int8 (numbers: reference beats of the class)")
    fig.tight_layout()
    paths.append(out_dir / "per_record_end_to_end_int8.png")
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="score the beat classifier (DS2, end to end and at reference beats)")
    p.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    p.add_argument("--records", default="ds2", help="ds2 (default), ds1, all or a comma list; paced records are left out")
    p.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="int8 ONNX model (default: the packaged one)")
    p.add_argument("--fp32-model", type=Path, default=SHIPPED_FP32_MODEL, help="the float model it came from")
    p.add_argument("--metadata", type=Path, default=SHIPPED_METADATA, help="their metadata JSON")
    p.add_argument("--out-dir", type=Path, default=Path("out/classify"), help="where the PNG figures go")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = [n for n in parse_record_spec(args.records) if n not in PACED]
    int8 = BeatClassifier(args.model, args.metadata)
    fp32 = BeatClassifier(args.fp32_model, args.metadata)
    results = []
    for i, name in enumerate(names, 1):
        print(f"\r[{i}/{len(names)}] {name} ...", end="", file=sys.stderr, flush=True)
        results.append(evaluate_record(name, args.data_dir, int8, fp32))
    print(file=sys.stderr)
    print(format_report(results, args.model))
    for path in save_figures(results, args.out_dir):
        print(f"figure written: {path}")
    return 0
