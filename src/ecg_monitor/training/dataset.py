"""Training beats: the live detector's own beats on the training records, labelled from the reference.

Each record is read as at run time (one lead by :data:`ecg_monitor.replay.records.PREFERRED_LEADS`,
resampled to 360 Hz when it comes at another rate, e.g. SVDB's 128 Hz), streamed through the
detector exactly as live (``DetectorPipeline`` without a classifier), the features come from
:func:`ecg_monitor.detector.features.extract_features` (the code the pipeline runs), and a detected
beat takes the AAMI class of the reference beat it matches within 150 ms. Detections without a
reference beat stay in the rhythm history but are not trained on, nor are beats inside
ventricular flutter/fibrillation episodes or stretches annotated unreadable.

Only records in :data:`ecg_monitor.replay.splits.TRAINING_RECORDS` (MIT-BIH DS1 without 201, SVDB
857-894) may be loaded: :func:`check_training_records` refuses any other before a file is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.features import FeatureSpec, extract_features
from ecg_monitor.detector.pipeline import run_signal
from ecg_monitor.evaluation.ec57 import inside_spans, reference_at, reference_beats
from ecg_monitor.evaluation.labels import CLASS_OF_SYMBOL
from ecg_monitor.replay import DS2, RecordNotFoundError, read_annotations, read_record
from ecg_monitor.replay.records import Record
from ecg_monitor.replay.splits import DS1_TRAIN, SVDB, SVDB_TRAIN, TRAINING_RECORDS

NO_LABEL = -1
#: Rhythm annotations of ventricular flutter/fibrillation (besides the ``[`` ``]`` episodes).
VF_RHYTHMS = ("(VFL", "(VF", "(VFIB")


class HeldOutDataError(ValueError):
    """A record of a test set (MIT-BIH DS2, SVDB 800-856) or of a test patient was asked for in training."""


class TrainingDataError(ValueError):
    """A training folder or record cannot be used (missing folder, no beat annotations)."""


def check_training_records(names: list[str]) -> list[str]:
    """Allow only DS1_TRAIN and SVDB 857-894; raise :class:`HeldOutDataError` otherwise."""
    names = list(names)
    test = sorted(set(names) & set(DS2))
    if test:
        raise HeldOutDataError(f"records {test} are in DS2, the test set: they may not be trained or tuned on")
    svdb_test = sorted(set(names) & (set(SVDB) - set(SVDB_TRAIN)), key=int)
    if svdb_test:
        raise HeldOutDataError(
            f"records {svdb_test} are in SVDB's test half (800-856): only 857-894 may be trained or tuned on"
        )
    other = sorted(set(names) - set(TRAINING_RECORDS))
    if other:
        raise HeldOutDataError(
            f"records {other} are not training records (MIT-BIH DS1_TRAIN {' '.join(DS1_TRAIN)}; "
            "SVDB 857-894); 201 is the patient of DS2's 202"
        )
    if not names:
        raise ValueError("no training records")
    return names


def folder_records(folder: str | os.PathLike[str]) -> list[str]:
    """The records of a data folder (its RECORDS file, else its .hea files), with a clear error
    when the folder is missing or unreadable."""
    path = Path(folder)
    if not path.is_dir():
        raise TrainingDataError(f"extra data folder {path} does not exist or is not a folder")
    try:
        listed = (path / "RECORDS").read_text().split() if (path / "RECORDS").is_file() else []
        names = listed or sorted(p.stem for p in path.glob("*.hea"))
    except OSError as exc:
        raise TrainingDataError(f"extra data folder {path} is unreadable: {exc}") from None
    if not names:
        raise TrainingDataError(f"extra data folder {path} holds no WFDB records (no RECORDS file, no .hea file)")
    return names


def excluded_spans(record: Record, data_dir: str | os.PathLike[str] | None, flutter: list) -> list[tuple[int, int]]:
    """VF/flutter episodes and unreadable stretches (noise ``~`` marking a lead, or all leads,
    unreadable, up to the next ``~``), in pipeline samples."""
    ann = read_annotations(record.name, data_dir)
    at = record.from_source_samples(ann.sample)
    end = len(record.signal)
    spans = list(flutter)
    sub = ann.subtype if ann.subtype is not None else np.zeros(len(at), np.int64)
    noise = np.flatnonzero(ann.symbol == "~")
    for j, i in enumerate(noise):
        if sub[i] == -1 or sub[i] & 0xF0:
            spans.append((int(at[i]), int(at[noise[j + 1]]) if j + 1 < len(noise) else end))
    rhythm = np.flatnonzero(ann.symbol == "+")
    for j, i in enumerate(rhythm):
        if ann.aux_note[i] in VF_RHYTHMS:
            spans.append((int(at[i]), int(at[rhythm[j + 1]]) if j + 1 < len(rhythm) else end))
    return spans


@dataclass
class BeatSet:
    """Feature arrays of many beats with their labels and the record each came from."""

    morphology: np.ndarray  # (n, channels, window) float32
    rhythm: np.ndarray  # (n, features) float32
    label: np.ndarray  # (n,) class index into AAMI_CLASSES
    record: np.ndarray  # (n,) record name

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, mask: np.ndarray) -> BeatSet:
        return BeatSet(self.morphology[mask], self.rhythm[mask], self.label[mask], self.record[mask])

    @staticmethod
    def concat(sets: list[BeatSet]) -> BeatSet:
        return BeatSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("morphology", "rhythm", "label", "record")))


def record_beats(name: str, data_dir: str | os.PathLike[str] | None, spec: FeatureSpec | None) -> BeatSet:
    """Labelled, classifiable beats of one training record."""
    check_training_records([name])
    record = read_record(name, data_dir)
    try:
        ref = reference_beats(record, data_dir)
    except RecordNotFoundError as exc:
        raise TrainingDataError(f"record {name} refused for training: no beat annotations ({exc})") from None
    if not len(ref.samples):
        raise TrainingDataError(f"record {name} refused for training: its annotation file holds no beat annotation")
    # Pan-Tompkins' beats, as the shipped classifier learnt (before the fusion; fused beats keep
    # Pan-Tompkins' R marks, so they give the classifier the same windows)
    beats, filtered = run_signal(record.signal, record.fs, classifier=None, qrs_model=None)
    ready = extract_features(record.signal, filtered, beats, spec)
    at = np.array([b.sample for b, _ in ready], np.int64)
    classes = np.array([AAMI_CLASSES.index(CLASS_OF_SYMBOL[s]) for s in ref.symbols], dtype=np.int64)
    labels = reference_at(ref.samples, classes, at, record.fs, NO_LABEL)
    keep = np.array([f.usable for _, f in ready], dtype=bool) & (labels != NO_LABEL)
    keep &= ~inside_spans(at, excluded_spans(record, data_dir, ref.flutter))
    feats = [f for (_, f), k in zip(ready, keep) if k]
    if not feats:
        raise TrainingDataError(f"record {name} refused for training: no detected beat matches a usable reference beat")
    return BeatSet(
        morphology=np.stack([f.morphology for f in feats]),
        rhythm=np.stack([f.rhythm for f in feats]),
        label=labels[keep],
        record=np.full(len(feats), name),
    )


def load_beats(
    sources: list[tuple[str, str | os.PathLike[str] | None]], spec: FeatureSpec | None, progress=None,
    cache: Path | None = None,
) -> BeatSet:
    """Beats of the training records, given as (record, folder) pairs; all are checked against
    the held-out guard before any file is read. With ``cache``, the detector and feature pass is
    stored in that .npz and reused while the records and feature spec are the same."""
    names = check_training_records([n for n, _ in sources])
    key = json.dumps({"records": names, "features": (spec or FeatureSpec()).to_dict()}, sort_keys=True)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return BeatSet(z["morphology"], z["rhythm"], z["label"], z["record"])
    sets = []
    for i, (name, folder) in enumerate(sources):
        sets.append(record_beats(name, folder, spec))
        if progress is not None:
            progress(i + 1, len(sources), f"record {name}")
    out = BeatSet.concat(sets)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=key, morphology=out.morphology, rhythm=out.rhythm, label=out.label, record=out.record)
    return out
