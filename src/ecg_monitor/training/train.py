"""``ecg-train``: train the beat classifier on DS1, pick hyper-parameters by patient-wise
cross-validation inside DS1, export it to ONNX and quantize it to int8.

No DS2 record can enter: :func:`ecg_monitor.training.dataset.check_training_records` refuses
any record outside ``DS1_TRAIN`` (DS1 without 201, the patient of DS2's 202) before a file is
read, and everything here (folds, hyper-parameters, class offsets, calibration, saliency) is
computed from the beats it loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.detector.classifier import BeatClassifier
from ecg_monitor.detector.features import MORPHOLOGY_CHANNELS, RHYTHM_FEATURES, FeatureSpec
from ecg_monitor.evaluation.classmetrics import MACRO_CLASSES, class_scores, confusion, macro_f1
from ecg_monitor.evaluation.labels import MAPPING_NOTE
from ecg_monitor.replay import DS1_TRAIN
from ecg_monitor.training.augment import Augmenter, load_noise
from ecg_monitor.training.dataset import BeatSet, check_training_records, load_beats
from ecg_monitor.training.export import export_fp32, quantize_int8
from ecg_monitor.training.fit import FitConfig, fit, predict_logits
from ecg_monitor.training.model import Architecture, BeatNet
from ecg_monitor.training.progress import Progress
from ecg_monitor.training.saliency import mean_class_saliency

#: Hyper-parameter candidates compared by cross-validation (focal loss strength x class balance).
GRID: tuple[FitConfig, ...] = (
    FitConfig(focal_gamma=2.0, balance=1.0),
    FitConfig(focal_gamma=1.0, balance=0.75),
)
OFFSET_GRID = np.arange(-3.0, 3.01, 0.25)
MODEL_NAME = "beat_classifier"


def patient_folds(beats: BeatSet, k: int) -> list[list[str]]:
    """Records in ``k`` folds, spreading each record's share of the S, V and F beats evenly."""
    names = sorted(set(beats.record))
    rare = [AAMI_CLASSES.index(c) for c in ("S", "V", "F")]
    share = np.array([[np.sum((beats.record == r) & (beats.label == c)) for c in rare] for r in names], float)
    share /= np.maximum(share.sum(axis=0), 1)
    folds: list[list[str]] = [[] for _ in range(k)]
    load = np.zeros((k, len(rare)))
    for i in np.argsort(-share.max(axis=1), kind="stable"):
        f = min(range(k), key=lambda j: ((load[j] + share[i]).max(), len(folds[j])))
        folds[f].append(names[i])
        load[f] += share[i]
    return [sorted(f) for f in folds]


def scores_of(label: np.ndarray, logits: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, dict]:
    cm = confusion(label, np.argmax(logits + offsets, axis=1))
    return cm, class_scores(cm)


def tune_offsets(label: np.ndarray, logits: np.ndarray, passes: int = 3) -> np.ndarray:
    """Class-prior offsets on the logits of S, V and F maximising macro F1 (coordinate search)."""
    off = np.zeros(len(AAMI_CLASSES))
    for _ in range(passes):
        for c in (AAMI_CLASSES.index(x) for x in MACRO_CLASSES[1:]):
            best = max(OFFSET_GRID, key=lambda g: (macro_f1(scores_of(label, logits, _with(off, c, g))[1]), -abs(g)))
            off[c] = best
    return off


def _with(off: np.ndarray, c: int, value: float) -> np.ndarray:
    out = off.copy()
    out[c] = value
    return out


def cross_validate(beats: BeatSet, folds: list[list[str]], cfg: FitConfig, arch: Architecture,
                   augment: Augmenter | None, seed: int, label: str) -> np.ndarray:
    """Out-of-fold logits: each fold predicted by a network trained on the other folds' patients."""
    logits = np.zeros((len(beats), len(AAMI_CLASSES)), np.float32)
    for i, held in enumerate(folds):
        test = np.isin(beats.record, held)
        net = fit(beats.subset(~test), cfg, arch, augment, seed + i, Progress(f"{label} fold {i + 1}/{len(folds)}"))
        logits[test] = predict_logits(net, beats.subset(test))
    return logits


def summary(cm: np.ndarray) -> dict:
    """Confusion matrix and scores as plain JSON (an undefined score is null)."""
    s = class_scores(cm)
    r = lambda x: None if np.isnan(x) else round(x, 4)  # noqa: E731 - local formatter
    return {
        "confusion": cm.tolist(),
        "per_class": {c: {"se": r(v.se), "ppv": r(v.ppv), "f1": r(v.f1)} for c, v in s.items()},
        "macro_f1": r(macro_f1(s)),
    }


def calibration_sample(beats: BeatSet, per_class: int, seed: int) -> BeatSet:
    """Up to ``per_class`` beats of each class, so rare morphologies set the int8 ranges too."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([
        rng.permutation(np.flatnonzero(beats.label == c))[:per_class] for c in range(len(AAMI_CLASSES))
    ])
    return beats.subset(np.sort(idx))


def export_model(net: BeatNet, beats: BeatSet, out_dir: Path, meta: dict, seed: int) -> dict:
    """Write the fp32 and int8 ONNX files (and the metadata they load with); check both against
    torch; return the metadata with the int8/fp32 comparison added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = export_fp32(net, out_dir / f"{MODEL_NAME}_fp32.onnx")
    calib = calibration_sample(beats, 512, seed)
    int8 = quantize_int8(fp32, out_dir / f"{MODEL_NAME}.onnx", calib.morphology, calib.rhythm)
    meta_path = out_dir / f"{MODEL_NAME}.json"
    meta = {**meta, "sizes_bytes": {"int8": int8.stat().st_size, "fp32": fp32.stat().st_size}}
    meta_path.write_text(json.dumps(meta, indent=1))
    with torch.no_grad():
        ref = net(torch.from_numpy(beats.morphology[:512]), torch.from_numpy(beats.rhythm[:512])).numpy()
    probs32 = BeatClassifier(fp32, meta_path).predict(beats.morphology, beats.rhythm)
    got = probs32[:512]
    if not np.allclose(ref, got, atol=1e-4):
        raise RuntimeError(f"{fp32} disagrees with the torch network (max diff {np.abs(ref - got).max():.2g})")
    p32 = probs32.argmax(axis=1)
    p8 = BeatClassifier(int8, meta_path).predict(beats.morphology, beats.rhythm).argmax(axis=1)
    meta["int8_vs_fp32_ds1"] = {
        "agreement": round(float(np.mean(p32 == p8)), 5),
        "fp32": summary(confusion(beats.label, p32)), "int8": summary(confusion(beats.label, p8)),
    }
    return meta  # the caller writes the final metadata (with the training time)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ecg-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with the MIT-BIH records (mitdb)")
    p.add_argument("--out-dir", required=True, type=Path, help="where the .onnx files and metadata go")
    p.add_argument("--noise-dir", help="folder with the noise records bw, em, ma (default: DATA_DIR/../noise)")
    p.add_argument("--records", default=",".join(DS1_TRAIN), help="training records (DS1_TRAIN only)")
    p.add_argument("--folds", type=int, default=7, help="patient-wise CV folds for model selection (0: no CV)")
    p.add_argument("--epochs", type=int, help="override the epochs of every configuration")
    p.add_argument("--epoch-size", type=int, help="override the beats drawn per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    names = check_training_records([r.strip() for r in args.records.split(",") if r.strip()])
    spec = FeatureSpec()
    arch = Architecture(channels=len(MORPHOLOGY_CHANNELS), window=spec.window, rhythm=len(RHYTHM_FEATURES))
    grid = [replace(c, **{k: v for k, v in (("epochs", args.epochs), ("epoch_size", args.epoch_size)) if v})
            for c in GRID]

    beats = load_beats(names, args.data_dir, spec, Progress("features").step)
    noise_dir = Path(args.noise_dir) if args.noise_dir else Path(args.data_dir).resolve().parent / "noise"
    noise = load_noise(noise_dir, spec) if (noise_dir / "bw.hea").is_file() else []
    if not noise:
        print(f"ecg-train: no noise records in {noise_dir}; training without recorded-noise augmentation", file=sys.stderr)
    augment = Augmenter(noise, centre=spec.pre // spec.decimate)

    cv: dict = {"folds": [], "candidates": []}
    cfg, offsets = grid[0], np.zeros(len(AAMI_CLASSES))
    if args.folds >= 2:
        folds = patient_folds(beats, args.folds)
        cv["folds"] = folds
        best = -1.0
        for j, c in enumerate(grid):
            logits = cross_validate(beats, folds, c, arch, augment, args.seed, f"cv {j + 1}/{len(grid)}")
            off = tune_offsets(beats.label, logits)
            result = {"config": c.to_dict(), "class_offsets": off.tolist(),
                      **summary(scores_of(beats.label, logits, off)[0])}
            cv["candidates"].append(result)
            print(f"cv {j + 1}/{len(grid)}: gamma {c.focal_gamma} balance {c.balance}: macro F1 "
                  f"{result['macro_f1']:.4f}, offsets {np.round(off, 2).tolist()}", file=sys.stderr)
            if result["macro_f1"] > best:
                best, cfg, offsets, cv["chosen"] = result["macro_f1"], c, off, j

    net = fit(beats, cfg, arch, augment, args.seed, Progress("final model"))
    net.logit_offset.copy_(torch.as_tensor(offsets, dtype=torch.float32))
    counts = np.bincount(beats.label, minlength=len(AAMI_CLASSES))
    meta = {
        "classes": list(AAMI_CLASSES),
        "class_mapping": MAPPING_NOTE,
        "format": "ONNX, int8 weights (per channel) and activations (QOperator), onnxruntime static quantization "
                  "calibrated on DS1 training beats; output: class probabilities",
        "features": spec.to_dict(),
        "architecture": arch.to_dict(),
        "training": {
            "records": names,
            "beats_per_class": dict(zip(AAMI_CLASSES, counts.tolist())),
            "test_data": "none: records outside DS1_TRAIN (all of DS2, and 201 = patient of DS2's 202) are refused",
            "beat_source": "the live detector's beats, labelled by the reference beat within 150 ms",
            "config": cfg.to_dict(),
            "class_offsets": offsets.tolist(),
            "seed": args.seed,
            "augmentation": {"noise_records": bool(noise), **{k: v for k, v in vars(augment).items() if k != "noise"}},
        },
        "cross_validation_ds1": cv,
        "mean_saliency": mean_class_saliency(net, beats.morphology, beats.rhythm, beats.label, seed=args.seed),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    meta = export_model(net, beats, args.out_dir, meta, args.seed)
    minutes = (time.perf_counter() - t0) / 60
    meta["training"]["minutes"] = round(minutes, 1)
    (args.out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
    print(f"ecg-train: {len(beats)} beats of {len(names)} records, config {cfg.to_dict()}", file=sys.stderr)
    print(f"ecg-train: int8 model {meta['sizes_bytes']['int8']} bytes, fp32 {meta['sizes_bytes']['fp32']} bytes; "
          f"int8/fp32 agreement on DS1 {meta['int8_vs_fp32_ds1']['agreement']:.4f}; {minutes:.1f} min; "
          f"written to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
