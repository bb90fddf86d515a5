"""Integrated gradients of the beat network with respect to the morphology input.

The attribution of a sample says how much it moved the probability of a class away from a flat
line (the baseline); the rhythm features are held at their real values.
"""

from __future__ import annotations

import numpy as np
import torch

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.training.model import BeatNet


def integrated_gradients(
    net: BeatNet, morphology: np.ndarray, rhythm: np.ndarray, target: np.ndarray, steps: int = 32
) -> np.ndarray:
    """Attributions, shape like ``morphology``, for the probability of class ``target`` per beat."""
    net = net.eval()
    x = torch.as_tensor(morphology, dtype=torch.float32)
    r = torch.as_tensor(rhythm, dtype=torch.float32)
    t = torch.as_tensor(target, dtype=torch.int64)
    total = torch.zeros_like(x)
    for alpha in (np.arange(steps) + 0.5) / steps:  # midpoint rule
        xa = (alpha * x).requires_grad_(True)
        p = net(xa, r).gather(1, t[:, None]).sum()
        (grad,) = torch.autograd.grad(p, xa)
        total += grad
    return (x * total / steps).numpy()


def mean_class_saliency(
    net: BeatNet, morphology: np.ndarray, rhythm: np.ndarray, label: np.ndarray, per_class: int = 200,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Mean |attribution| over the beat channel for each class's beats, scaled to a peak of 1."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(AAMI_CLASSES):
        idx = np.flatnonzero(label == k)
        if idx.size == 0:
            continue
        idx = rng.choice(idx, size=min(per_class, idx.size), replace=False)
        sal = np.abs(integrated_gradients(net, morphology[idx], rhythm[idx], label[idx])[:, 0]).mean(axis=0)
        out[name] = [round(float(v), 3) for v in sal / max(float(sal.max()), 1e-12)]
    return out
