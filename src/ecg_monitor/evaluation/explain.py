"""``ecg-eval explain``: which samples of a beat drove its label (integrated gradients).

The record is streamed through the live pipeline (int8 model); for the chosen beats the torch
network, rebuilt from the packaged float model, attributes the probability of the label to the
samples of the beat window. The PNG shows each beat coloured by |attribution| over the patient's
usual beat, with the class probabilities and the reference label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.classifier import SHIPPED_FP32_MODEL, SHIPPED_METADATA, SHIPPED_MODEL, BeatClassifier
from ecg_monitor.detector.features import extract_features
from ecg_monitor.detector.pipeline import run_signal
from ecg_monitor.evaluation.ec57 import reference_at, reference_beats
from ecg_monitor.evaluation.labels import CLASS_OF_SYMBOL
from ecg_monitor.replay import Record, RecordError, read_record


def pick_beats(labels: list[str], n: int) -> list[int]:
    """Up to ``n`` beat indices, taking the predicted classes in turn, spread over the record."""
    by_class = {c: [i for i, lab in enumerate(labels) if lab == c] for c in AAMI_CLASSES}
    queues = {c: list(np.array(v)[np.linspace(0, len(v) - 1, min(n, len(v))).astype(int)])
              for c, v in by_class.items() if v}
    chosen: list[int] = []
    while len(chosen) < n and any(queues.values()):
        for c in AAMI_CLASSES:
            if queues.get(c) and len(chosen) < n:
                chosen.append(int(queues[c].pop(0)))
    return sorted(set(chosen))


def reference_symbols(record: Record, data_dir: str | None, beats: list[Beat]) -> list[str]:
    """The reference symbol (and AAMI class) of each beat, '-' where none is within 150 ms."""
    try:
        ref = reference_beats(record, data_dir)
    except RecordError:  # a record without reference annotations can still be explained
        return ["-"] * len(beats)
    symbols = reference_at(ref.samples, ref.symbols, np.array([b.sample for b in beats], np.int64), record.fs, "")
    return [f"{s} ({CLASS_OF_SYMBOL[s]})" if s else "-" for s in symbols]


def plot(path: Path, name: str, fs: float, spec, beats, morph, saliency, refs) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(beats)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 1, 3.0 * rows + 0.4), squeeze=False,
                             layout="constrained")
    t = (np.arange(spec.window) * spec.decimate + spec.decimate / 2 - spec.pre) * 1000.0 / spec.fs
    for ax, b, m, s, ref in zip(axes.flat, beats, morph, saliency, refs):
        ax.plot(t, m[1], color="0.6", lw=1, ls="--", label="usual beat")
        sc = ax.scatter(t, m[0], c=s, cmap="inferno_r", s=8, vmin=0, vmax=1)
        ax.plot(t, m[0], color="0.2", lw=0.6)
        probs = " ".join(f"{c}{p:.2f}" for c, p in zip(AAMI_CLASSES, b.probabilities or ()))
        ax.set_title(f"t={b.sample / fs:.1f}s  {b.label}  ref {ref}\n{probs}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes, shrink=0.6, label="|integrated gradient| (per beat, max 1)")
    fig.suptitle(f"record {name}: beats (x: ms from the R mark; y: units of the usual QRS amplitude; "
                 "dashed: usual beat) coloured by saliency", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="PNG of beats with saliency overlay and class probabilities")
    p.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    p.add_argument("--record", required=True, help="record name, e.g. 208")
    p.add_argument("--beats", type=int, default=12, help="how many beats to show (classes taken in turn)")
    p.add_argument("--out", type=Path, help="PNG path (default out/explain/<record>.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ecg_monitor.training.model import Architecture, load_from_onnx
    from ecg_monitor.training.saliency import integrated_gradients

    record = read_record(args.record, args.data_dir)
    int8 = BeatClassifier(SHIPPED_MODEL, SHIPPED_METADATA)
    found, filtered = run_signal(record.signal, record.fs, classifier=None)
    feats = extract_features(record.signal, filtered, found, int8.spec)  # one pass: labels and saliency
    beats = int8.classify(feats)
    chosen = pick_beats([b.label for b in beats], max(1, args.beats))
    chosen = [i for i in chosen if feats[i][1].usable]
    morph = np.stack([feats[i][1].morphology for i in chosen])
    rhythm = np.stack([feats[i][1].rhythm for i in chosen])
    net = load_from_onnx(SHIPPED_FP32_MODEL, Architecture.from_dict(int8.metadata["architecture"]))
    target = np.array([AAMI_CLASSES.index(beats[i].label) for i in chosen])
    sal = np.abs(integrated_gradients(net, morph, rhythm, target)[:, 0])
    sal /= np.maximum(sal.max(axis=1, keepdims=True), 1e-12)
    refs = reference_symbols(record, args.data_dir, beats)
    out = args.out or Path("out/explain") / f"{args.record}.png"
    plot(out, args.record, record.fs, int8.spec, [beats[i] for i in chosen], morph, sal, [refs[i] for i in chosen])
    for i in chosen:
        b = beats[i]
        print(f"beat at {b.sample / record.fs:8.2f} s: {b.label}  ref {refs[i]:<8} p = "
              + " ".join(f"{c} {p:.3f}" for c, p in zip(AAMI_CLASSES, b.probabilities or ())))
    print(f"figure written: {out}")
    return 0
