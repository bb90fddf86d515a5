"""Confusion matrices and per-class Se, +P and F1 for AAMI beat classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecg_monitor.detector.beats import AAMI_CLASSES

#: Classes whose F1 is averaged into the macro F1 (Q is too rare to score, as in the literature).
MACRO_CLASSES: tuple[str, ...] = ("N", "S", "V", "F")


def confusion(reference: np.ndarray, predicted: np.ndarray, n: int = len(AAMI_CLASSES)) -> np.ndarray:
    """Counts with reference class indices as rows and predicted ones as columns."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(reference, np.int64), np.asarray(predicted, np.int64)), 1)
    return cm


@dataclass(frozen=True)
class ClassScore:
    se: float
    ppv: float
    f1: float


def class_scores(cm: np.ndarray, missed: np.ndarray | None = None, extra: np.ndarray | None = None) -> dict[str, ClassScore]:
    """Se, +P and F1 per class; ``missed`` (per reference class) count against Se, ``extra``
    (detections without a reference beat, per predicted class) against +P."""
    k = len(AAMI_CLASSES)
    missed = np.zeros(k, np.int64) if missed is None else missed
    extra = np.zeros(k, np.int64) if extra is None else extra
    out = {}
    for i, c in enumerate(AAMI_CLASSES):
        tp = cm[i, i]
        ref, pred = cm[i].sum() + missed[i], cm[:, i].sum() + extra[i]
        se = tp / ref if ref else float("nan")
        ppv = tp / pred if pred else float("nan")
        f1 = 2 * tp / (ref + pred) if ref + pred else float("nan")
        out[c] = ClassScore(float(se), float(ppv), float(f1))
    return out


def macro_f1(scores: dict[str, ClassScore]) -> float:
    """Mean F1 over N, S, V, F (a class with no beats at all counts as 0)."""
    return float(np.mean([0.0 if np.isnan(scores[c].f1) else scores[c].f1 for c in MACRO_CLASSES]))
