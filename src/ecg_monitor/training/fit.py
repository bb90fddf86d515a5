"""Fitting the beat network: class-balanced sampling, focal loss, augmentation, fixed seeds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ecg_monitor.detector.beats import AAMI_CLASSES
from ecg_monitor.training.augment import Augmenter
from ecg_monitor.training.dataset import BeatSet
from ecg_monitor.training.model import Architecture, BeatNet
from ecg_monitor.training.progress import Progress

Q = AAMI_CLASSES.index("Q")


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 10
    epoch_size: int = 16384  # beats drawn per epoch
    batch: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-3
    focal_gamma: float = 2.0
    balance: float = 0.5  # class weight = (count / largest count) ** -balance

    def to_dict(self) -> dict:
        return asdict(self)


def sampling_weights(label: np.ndarray, balance: float) -> np.ndarray:
    """Per-beat probability of being drawn, flattening the class sizes by ``balance``.

    Q (a handful of beats in DS1) is not boosted: it is mostly the rule-based label of
    unclassifiable windows, and repeating eight beats thousands of times would only overfit.
    """
    counts = np.bincount(label, minlength=len(AAMI_CLASSES)).astype(float)
    w = np.where(counts > 0, (np.maximum(counts, 1) / counts.max()) ** -balance, 0.0)
    w[Q] = 1.0 if counts[Q] else 0.0
    p = w[label]
    return p / p.sum()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Cross-entropy scaled by (1 - p_true) ** gamma: easy beats teach less (Lin et al. 2017)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (((1 - torch.exp(-ce)) ** gamma) * ce).mean()


def fit(
    beats: BeatSet, cfg: FitConfig, arch: Architecture, augment: Augmenter | None, seed: int,
    progress: Progress | None = None,
) -> BeatNet:
    """Train a fresh network on ``beats``, each member from its own seed; the same seed gives
    the same network."""
    torch.manual_seed(seed)
    net = BeatNet(arch)
    net.set_rhythm_scaling(beats.rhythm)
    p = sampling_weights(beats.label, cfg.balance)
    per_member = cfg.epochs * (cfg.epoch_size // cfg.batch)
    for k in range(arch.members):
        rng = np.random.default_rng([seed, k])
        opt = torch.optim.AdamW(net.members[k].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=per_member)
        net.train()
        for step in range(per_member):
            i = rng.choice(len(beats), size=cfg.batch, p=p)
            m, r = beats.morphology[i], beats.rhythm[i]
            if augment is not None:
                m, r = augment(m, rng), augment.rhythm(r, rng)
            loss = focal_loss(net.logits(torch.from_numpy(m), torch.from_numpy(r), member=k),
                              torch.from_numpy(beats.label[i]), cfg.focal_gamma)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            done = k * per_member + step + 1
            if progress is not None and (done % 8 == 0 or done == per_member * arch.members):
                progress.step(done, per_member * arch.members,
                              f"member {k + 1}/{arch.members} epoch {step * cfg.batch // cfg.epoch_size + 1}/{cfg.epochs} "
                              f"loss {loss.item():.4f}")
    return net.eval()


@torch.no_grad()
def predict_logits(net: BeatNet, beats: BeatSet, batch: int = 4096) -> np.ndarray:
    """Logits (before the class offsets) for every beat."""
    net = net.eval()
    out = [
        net.logits(torch.from_numpy(beats.morphology[i : i + batch]), torch.from_numpy(beats.rhythm[i : i + batch]))
        for i in range(0, len(beats), batch)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, len(AAMI_CLASSES)), np.float32)
