"""Training beats: the live detector's own beats on DS1 records, labelled from the reference.

Each record is streamed through the detector exactly as live (``DetectorPipeline`` without a
classifier), the features come from :func:`ecg_monitor.detector.features.extract_features` (the
code the pipeline runs), and a detected beat takes the AAMI class of the reference beat it
matches within 150 ms. Detections without a reference beat stay in the rhythm history but are
not trained on. Only records in :data:`ecg_monitor.replay.splits.DS1_TRAIN` may be loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.beats import AAMI_CLASSES, Beat
from ecg_monitor.detector.features import FeatureSpec, extract_features
from ecg_monitor.detector.pipeline import run_signal
from ecg_monitor.evaluation.ec57 import reference_at, reference_beats
from ecg_monitor.evaluation.labels import CLASS_OF_SYMBOL
from ecg_monitor.replay import DS1_TRAIN, DS2, read_record
from ecg_monitor.replay.records import Record

NO_LABEL = -1


class HeldOutDataError(ValueError):
    """A record of the test set (DS2) or of a test patient was asked for in training."""


def check_training_records(names: list[str]) -> list[str]:
    """Allow only DS1 records of patients absent from DS2; raise otherwise."""
    names = list(names)
    test = sorted(set(names) & set(DS2))
    if test:
        raise HeldOutDataError(f"records {test} are in DS2, the test set: they may not be trained or tuned on")
    other = sorted(set(names) - set(DS1_TRAIN))
    if other:
        raise HeldOutDataError(
            f"records {other} are not in DS1_TRAIN ({' '.join(DS1_TRAIN)}); 201 is the patient of DS2's 202"
        )
    if not names:
        raise ValueError("no training records")
    return names


def reference_labels(record: Record, beats: list[Beat], data_dir: str | os.PathLike[str] | None) -> np.ndarray:
    """Class index of the reference beat each detected beat matches, else NO_LABEL."""
    ref = reference_beats(record, data_dir)
    classes = np.array([AAMI_CLASSES.index(CLASS_OF_SYMBOL[s]) for s in ref.symbols], dtype=np.int64)
    return reference_at(ref.samples, classes, np.array([b.sample for b in beats], np.int64), record.fs, NO_LABEL)


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


def record_beats(name: str, data_dir: str | os.PathLike[str] | None, spec: FeatureSpec) -> BeatSet:
    """Labelled, classifiable beats of one training record."""
    check_training_records([name])
    record = read_record(name, data_dir)
    beats, filtered = run_signal(record.signal, record.fs, classifier=None)
    ready = extract_features(record.signal, filtered, beats, spec)
    labels = reference_labels(record, beats, data_dir)
    keep = np.array([f.usable for _, f in ready], dtype=bool) & (labels != NO_LABEL)
    feats = [f for (_, f), k in zip(ready, keep) if k]
    return BeatSet(
        morphology=np.stack([f.morphology for f in feats]),
        rhythm=np.stack([f.rhythm for f in feats]),
        label=labels[keep],
        record=np.full(len(feats), name),
    )


def load_beats(names: list[str], data_dir: str | os.PathLike[str] | None, spec: FeatureSpec, progress=None) -> BeatSet:
    """Beats of several training records (DS1_TRAIN only)."""
    sets = []
    for i, name in enumerate(check_training_records(names)):
        sets.append(record_beats(name, data_dir, spec))
        if progress is not None:
            progress(i + 1, len(names), f"record {name}")
    return BeatSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("morphology", "rhythm", "label", "record")))
