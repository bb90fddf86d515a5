"""``ecg-train``: train the beat classifier on 60 patients (MIT-BIH DS1 without 201, plus the SVDB
training half 857-894 given with ``--extra-data-dir``), pick the design by patient-wise
cross-validation over them, export it to ONNX and quantize it to int8.

No test record can enter: :func:`ecg_monitor.training.dataset.check_training_records` refuses
any record outside ``DS1_TRAIN`` and SVDB 857-894 (so all of DS2, 201 = the patient of DS2's 202,
and SVDB 800-856) before a file is read, and everything here (folds, design, class offsets,
calibration, saliency) is computed from the beats it loaded.

Two steps, so that the final training stays short: ``--cv-out cv.json`` runs the cross-validation
of the candidate designs and writes their scores and the chosen one; ``--from-cv cv.json`` trains
the final model with that design and its class offsets (without ``--from-cv`` and with ``--folds``
>= 2 both happen in one run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.detector.classifier import BeatClassifier
from ecg_monitor.detector.features import (
    BASE_RHYTHM_FEATURES,
    MORPHOLOGY_CHANNELS,
    RHYTHM_FEATURES,
    TEMPLATE_FEATURES,
    FeatureSpec,
)
from ecg_monitor.evaluation.classmetrics import MACRO_CLASSES, class_scores, confusion, macro_f1
from ecg_monitor.evaluation.labels import MAPPING_NOTE
from ecg_monitor.replay import DS1_TRAIN
from ecg_monitor.training.augment import Augmenter, load_noise
from ecg_monitor.replay import RecordError
from ecg_monitor.training.dataset import (
    BeatSet,
    TrainingDataError,
    check_training_records,
    folder_records,
    load_beats,
)
from ecg_monitor.training.export import export_fp32, quantize_int8
from ecg_monitor.training.fit import FitConfig, fit, predict_logits
from ecg_monitor.training.model import Architecture, BeatNet
from ecg_monitor.training.progress import Progress
from ecg_monitor.training.saliency import mean_class_saliency

@dataclass(frozen=True)
class Candidate:
    """One design compared by cross-validation."""

    features: tuple[str, ...]  # rhythm/template inputs the network reads
    config: FitConfig  # loss (focal strength) and class balance of the sampling
    members: int = 1  # networks averaged


#: Designs compared by cross-validation. Single networks, so that two seeds x five folds of
#: every design fit the CPU budget; 3-member ensembles of the base and template inputs besides.
_LOSS = FitConfig(focal_gamma=1.0, balance=0.75)
CANDIDATES: dict[str, Candidate] = {
    "base": Candidate(BASE_RHYTHM_FEATURES, _LOSS),
    "template": Candidate(BASE_RHYTHM_FEATURES + TEMPLATE_FEATURES, _LOSS),
    "template+af": Candidate(RHYTHM_FEATURES, _LOSS),
    "template+af focal2 balanced": Candidate(RHYTHM_FEATURES, FitConfig(focal_gamma=2.0, balance=1.0)),
    "template x3": Candidate(BASE_RHYTHM_FEATURES + TEMPLATE_FEATURES, _LOSS, members=3),
    "base x3": Candidate(BASE_RHYTHM_FEATURES, _LOSS, members=3),
}
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


#: A class enters a fold's macro F1 only with at least this many beats in the fold (F is mostly
#: one patient, 208, so most folds have none).
MIN_FOLD_BEATS = 20


def fold_scores(beats: BeatSet, logits: np.ndarray, offsets: np.ndarray, folds: list[list[str]]) -> list[dict]:
    """Per fold: Se, +P of each class and the macro F1 over the classes the fold has."""
    out = []
    for held in folds:
        m = np.isin(beats.record, held)
        cm, s = scores_of(beats.label[m], logits[m], offsets)
        present = [c for i, c in enumerate(AAMI_CLASSES) if c in MACRO_CLASSES and cm[i].sum() >= MIN_FOLD_BEATS]
        out.append({"macro_f1": float(np.mean([s[c].f1 for c in present])),
                    **{c: (s[c].se, s[c].ppv) for c in present}})
    return out


def mean_spread(values: list[float]) -> dict:
    v = np.array([x for x in values if not np.isnan(x)])
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std()), 4),
            "min": round(float(v.min()), 4), "max": round(float(v.max()), 4), "n": int(v.size)} if v.size else {}


def score_candidate(beats: BeatSet, folds: list[list[str]], name: str, cfg: dict, inputs: list[str], members: int,
                    logits: list[np.ndarray]) -> dict:
    """Scores of one design from its out-of-fold logits (one array per seed); the class offsets
    are tuned on all of them together."""
    offsets = tune_offsets(np.tile(beats.label, len(logits)), np.concatenate(logits))
    pooled = [summary(scores_of(beats.label, lg, offsets)[0]) for lg in logits]
    per_fold = [f for lg in logits for f in fold_scores(beats, lg, offsets, folds)]
    return {
        "name": name, "config": cfg, "rhythm_inputs": inputs, "members": members, "seeds_run": len(logits),
        "class_offsets": offsets.tolist(),
        "pooled_macro_f1": mean_spread([p["macro_f1"] for p in pooled]),
        "fold_macro_f1": mean_spread([f["macro_f1"] for f in per_fold]),
        "fold_per_class": {c: {"se": mean_spread([100 * f[c][0] for f in per_fold if c in f]),
                               "ppv": mean_spread([100 * f[c][1] for f in per_fold if c in f])}
                           for c in MACRO_CLASSES},
        "pooled": pooled,
    }


def with_inputs(arch: Architecture, features: tuple[str, ...]) -> Architecture:
    return replace(arch, rhythm_inputs=tuple(RHYTHM_FEATURES.index(f) for f in features))


def run_cv(beats: BeatSet, k: int, names: list[str], seeds: list[int], arch: Architecture,
           augment: Augmenter | None, override: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """Every candidate design over the same patient-wise folds; the best mean pooled macro F1
    wins. Also returns the out-of-fold logits, by ``name|seed``."""
    folds = patient_folds(beats, k)
    results, oof = [], {}
    for name in names:
        c = CANDIDATES[name]
        cfg = replace(c.config, **override)
        design = replace(with_inputs(arch, c.features), members=c.members)
        logits = [cross_validate(beats, folds, cfg, design, augment, seed, f"cv {name} seed {seed}") for seed in seeds]
        oof |= {f"{name}|{seed}": lg for seed, lg in zip(seeds, logits)}
        r = score_candidate(beats, folds, name, cfg.to_dict(), list(c.features), c.members, logits)
        results.append(r)
        print(f"cv {name}: macro F1 pooled {r['pooled_macro_f1']['mean']:.4f} +- {r['pooled_macro_f1']['sd']:.4f} "
              f"(seeds), per fold {r['fold_macro_f1']['mean']:.4f} +- {r['fold_macro_f1']['sd']:.4f}", file=sys.stderr)
    chosen = max(results, key=lambda r: r["pooled_macro_f1"]["mean"])
    return {"folds": folds, "seeds": seeds, "candidates": results, "chosen": chosen["name"]}, oof


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
    int8 = quantize_int8(fp32, out_dir / f"{MODEL_NAME}.onnx", {"morphology": calib.morphology, "rhythm": calib.rhythm})
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
    meta["int8_vs_fp32_train"] = {
        "agreement": round(float(np.mean(p32 == p8)), 5),
        "fp32": summary(confusion(beats.label, p32)), "int8": summary(confusion(beats.label, p8)),
    }
    return meta  # the caller writes the final metadata (with the training time)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ecg-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with the MIT-BIH records (mitdb)")
    p.add_argument("--out-dir", required=True, type=Path, help="where the .onnx files and metadata go")
    p.add_argument("--extra-data-dir", action="append", default=[], metavar="DIR",
                   help="another training database, e.g. ../shared/data/svdb-train (repeatable)")
    p.add_argument("--extra-records", help="records of the extra folders (default: all they list)")
    p.add_argument("--noise-dir", help="folder with the noise records bw, em, ma (default: DATA_DIR/../noise)")
    p.add_argument("--records", default=",".join(DS1_TRAIN), help="MIT-BIH training records (DS1_TRAIN only)")
    p.add_argument("--cache", type=Path, help=".npz cache of the detector/feature pass (reused while records and features match)")
    p.add_argument("--folds", type=int, default=5, help="patient-wise CV folds for model selection (0: no CV)")
    p.add_argument("--seeds", default="0,1", help="seeds each CV candidate is run with")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help=f"designs to cross-validate ({', '.join(CANDIDATES)})")
    p.add_argument("--cv-out", type=Path, help="write the cross-validation results here and stop")
    p.add_argument("--from-cv", type=Path, nargs="+", help="train the design chosen in these cross-validation results")
    p.add_argument("--epochs", type=int, help="override the epochs of every configuration")
    p.add_argument("--epoch-size", type=int, help="override the beats drawn per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p.parse_args(argv)


def split(text: str | None) -> list[str]:
    return [r.strip() for r in (text or "").split(",") if r.strip()]


def training_sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(record, folder) of every training record, all checked by the held-out guard before any
    record file is read."""
    sources = [(r, args.data_dir) for r in split(args.records)]
    wanted = split(args.extra_records)
    for folder in args.extra_data_dir:
        listed = folder_records(folder)
        sources += [(r, folder) for r in (wanted or listed) if r in listed]
        missing = sorted(set(wanted) - set(listed)) if len(args.extra_data_dir) == 1 else []
        if missing:
            raise TrainingDataError(f"extra data folder {folder} does not list records {missing}")
    check_training_records([r for r, _ in sources])
    return sources


def merge_cv(paths: list[Path], beats: BeatSet) -> dict:
    """Cross-validation results run in parts on the same folds (e.g. one process per seed), one
    choice over all their candidates; a design run in several parts is scored again from all its
    out-of-fold logits (the .npz beside each result)."""
    parts = [json.loads(p.read_text()) for p in paths]
    if any(p["folds"] != parts[0]["folds"] for p in parts):
        raise TrainingDataError(f"cross-validation results {[str(p) for p in paths]} used different folds")
    by_name: dict[str, list[tuple[Path, dict]]] = {}
    for path, part in zip(paths, parts):
        for c in part["candidates"]:
            by_name.setdefault(c["name"], []).append((path, c))
    candidates = []
    for name, runs in by_name.items():
        if len(runs) == 1:
            candidates.append(runs[0][1])
            continue
        logits = []
        for path, _ in runs:
            with np.load(path.with_suffix(".npz")) as z:
                logits += [z[k] for k in sorted(z.files) if k.startswith(f"{name}|")]
        c = runs[0][1]
        candidates.append(score_candidate(beats, parts[0]["folds"], name, c["config"], c["rhythm_inputs"],
                                          c["members"], logits))
    best = max(candidates, key=lambda c: c["pooled_macro_f1"]["mean"])
    return {**parts[0], "candidates": candidates, "chosen": best["name"]}


def chosen_design(cv: dict) -> tuple[tuple[str, ...], FitConfig, int, np.ndarray]:
    best = next(c for c in cv["candidates"] if c["name"] == cv["chosen"])
    return tuple(best["rhythm_inputs"]), FitConfig(**best["config"]), best["members"], np.array(best["class_offsets"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        sources = training_sources(args)
    except TrainingDataError as exc:
        print(f"ecg-train: {exc}", file=sys.stderr)
        return 2
    names = [r for r, _ in sources]
    spec = FeatureSpec()
    arch = Architecture(channels=len(MORPHOLOGY_CHANNELS), window=spec.window, rhythm=len(RHYTHM_FEATURES))
    override = {k: v for k, v in (("epochs", args.epochs), ("epoch_size", args.epoch_size)) if v}

    try:
        beats = load_beats(sources, spec, Progress("features").step, cache=args.cache)
    except (TrainingDataError, RecordError) as exc:
        print(f"ecg-train: {exc}", file=sys.stderr)
        return 2
    noise_dir = Path(args.noise_dir) if args.noise_dir else Path(args.data_dir).resolve().parent / "noise"
    noise = load_noise(noise_dir, spec) if (noise_dir / "bw.hea").is_file() else []
    if not noise:
        print(f"ecg-train: no noise records in {noise_dir}; training without recorded-noise augmentation", file=sys.stderr)
    augment = Augmenter(noise, centre=spec.pre // spec.decimate)

    default = CANDIDATES["template"]  # without CV (--folds 0): the shipped inputs, one network
    feats, cfg, members, offsets = default.features, default.config, default.members, np.zeros(len(AAMI_CLASSES))
    cv: dict = {}
    if args.from_cv:
        cv = merge_cv(args.from_cv, beats)
        feats, cfg, members, offsets = chosen_design(cv)
    elif args.folds >= 2:
        cv, oof = run_cv(beats, args.folds, split(args.candidates), [int(x) for x in split(args.seeds)], arch, augment,
                         override)
        if args.cv_out is not None:
            np.savez(args.cv_out.with_suffix(".npz"), **oof)
            args.cv_out.parent.mkdir(parents=True, exist_ok=True)
            args.cv_out.write_text(json.dumps({**cv, "minutes": round((time.perf_counter() - t0) / 60, 1)}, indent=1))
            print(f"ecg-train: cross-validation written to {args.cv_out}; chosen {cv['chosen']}", file=sys.stderr)
            return 0
        feats, cfg, members, offsets = chosen_design(cv)
    cfg = replace(cfg, **override)
    arch = replace(with_inputs(arch, feats), members=members)

    t_fit = time.perf_counter()
    net = fit(beats, cfg, arch, augment, args.seed, Progress("final model"))
    net.logit_offset.copy_(torch.as_tensor(offsets, dtype=torch.float32))
    counts = np.bincount(beats.label, minlength=len(AAMI_CLASSES))
    meta = {
        "classes": list(AAMI_CLASSES),
        "class_mapping": MAPPING_NOTE,
        "format": "ONNX, int8 weights (per channel) and activations (QOperator), onnxruntime static quantization "
                  "calibrated on training beats; output: class probabilities",
        "features": spec.to_dict(),
        "architecture": arch.to_dict(),
        "training": {
            "records": names,
            "folders": sorted({str(d) for _, d in sources}),
            "beats_per_class": dict(zip(AAMI_CLASSES, counts.tolist())),
            "test_data": "none: records outside DS1_TRAIN and SVDB 857-894 (all of DS2, 201 = patient of DS2's 202, "
                         "SVDB 800-856) are refused",
            "beat_source": "the live detector's beats, labelled by the reference beat within 150 ms; beats in VF/flutter "
                           "and unreadable stretches left out",
            "lead_policy": "MLII, else II, else ECG, else ECG1 (SVDB: ECG1), as at run time",
            "rhythm_inputs": list(feats),
            "config": cfg.to_dict(),
            "class_offsets": offsets.tolist(),
            "seed": args.seed,
            "augmentation": {"noise_records": bool(noise), **{k: v for k, v in vars(augment).items() if k != "noise"}},
        },
        "cross_validation": {k: v for k, v in cv.items() if k != "candidates"}
        | {"candidates": [{k: v for k, v in c.items() if k != "pooled"} for c in cv.get("candidates", [])]},
        "mean_saliency": mean_class_saliency(net, beats.morphology, beats.rhythm, beats.label, seed=args.seed),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    meta = export_model(net, beats, args.out_dir, meta, args.seed)
    minutes = (time.perf_counter() - t0) / 60
    meta["training"]["minutes"] = round(minutes, 1)
    meta["training"]["fit_minutes"] = round((time.perf_counter() - t_fit) / 60, 1)
    (args.out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
    print(f"ecg-train: {len(beats)} beats of {len(names)} records, inputs {len(feats)} rhythm features, "
          f"config {cfg.to_dict()}", file=sys.stderr)
    print(f"ecg-train: int8 model {meta['sizes_bytes']['int8']} bytes, fp32 {meta['sizes_bytes']['fp32']} bytes; "
          f"int8/fp32 agreement on training beats {meta['int8_vs_fp32_train']['agreement']:.4f}; {minutes:.1f} min; "
          f"written to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
