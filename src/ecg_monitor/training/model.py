"""The dual-stream beat network: a 1-D CNN on the morphology, an MLP on the rhythm, fused.

The CNN sees the beat, the patient's usual beat and their difference: what sets a ventricular
beat apart is how it differs from the patient's own norm, which generalises across patients
better than its absolute shape.

Input standardisation of the rhythm features and the class-prior offsets chosen by
cross-validation are buffers of the network, so the exported ONNX file holds everything the
runtime needs and outputs probabilities directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """Sizes of the network (stored in the model metadata to rebuild it for saliency)."""

    channels: int = 2
    window: int = 117
    rhythm: int = 10
    classes: int = 5
    conv: tuple[int, ...] = (12, 16, 24)
    kernels: tuple[int, ...] = (7, 5, 5)
    morph_hidden: int = 24
    rhythm_hidden: int = 16
    fused_hidden: int = 32
    dropout: float = 0.2
    difference: bool = True  # add beat minus usual beat as a channel inside the network
    members: int = 3
    rhythm_inputs: tuple[int, ...] = ()  # columns of the rhythm input the network reads (empty: all)

    @property
    def rhythm_used(self) -> list[int]:
        return list(self.rhythm_inputs) or list(range(self.rhythm))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class DualStream(nn.Module):
    """One network: morphology CNN and rhythm MLP, concatenated, then a small head -> logits."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width, length = arch.channels + arch.difference, arch.window
        for out, k in zip(arch.conv, arch.kernels):
            layers += [nn.Conv1d(width, out, k, padding=k // 2), nn.ReLU(), nn.MaxPool1d(2)]
            width, length = out, length // 2
        self.cnn = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * length, arch.morph_hidden), nn.ReLU())
        self.mlp = nn.Sequential(
            nn.Linear(len(arch.rhythm_used), arch.rhythm_hidden), nn.ReLU(),
            nn.Linear(arch.rhythm_hidden, arch.rhythm_hidden), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Dropout(arch.dropout),
            nn.Linear(arch.morph_hidden + arch.rhythm_hidden, arch.fused_hidden), nn.ReLU(),
            nn.Linear(arch.fused_hidden, arch.classes),
        )

    def forward(self, morphology: torch.Tensor, rhythm: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.cnn(morphology), self.mlp(rhythm)], dim=1))


class BeatNet(nn.Module):
    """``members`` dual-stream networks trained from different seeds, logits averaged (less
    variance on unseen patients), -> 5 class probabilities; ``logits`` for training."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.members = nn.ModuleList(DualStream(arch) for _ in range(arch.members))
        self.register_buffer("rhythm_mean", torch.zeros(arch.rhythm))
        self.register_buffer("rhythm_std", torch.ones(arch.rhythm))
        self.register_buffer("logit_offset", torch.zeros(arch.classes))

    def set_rhythm_scaling(self, rhythm: np.ndarray) -> None:
        """Standardise the rhythm inputs with statistics of the training beats."""
        self.rhythm_mean.copy_(torch.as_tensor(rhythm.mean(axis=0)))
        self.rhythm_std.copy_(torch.as_tensor(np.maximum(rhythm.std(axis=0), 1e-3)))

    def logits(self, morphology: torch.Tensor, rhythm: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Mean logits of the members (or of one ``member``), before the class offsets."""
        if self.arch.difference:
            morphology = torch.cat([morphology, morphology[:, :1] - morphology[:, 1:2]], dim=1)
        r = ((rhythm - self.rhythm_mean) / self.rhythm_std)[:, self.arch.rhythm_used]
        if member is not None:
            return self.members[member](morphology, r)
        return torch.stack([m(morphology, r) for m in self.members]).mean(dim=0)

    def forward(self, morphology: torch.Tensor, rhythm: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(morphology, rhythm) + self.logit_offset, dim=1)


def load_from_onnx(path: str | Path, arch: Architecture) -> BeatNet:
    """Rebuild the torch network from the weights in its float ONNX export (for saliency)."""
    import onnx
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    net = BeatNet(arch)
    state = net.state_dict()
    missing = sorted(set(state) - set(weights))
    if missing:
        raise ValueError(f"{path} lacks weights {missing}; it is not a float export of this network")
    net.load_state_dict({k: torch.as_tensor(weights[k].copy()) for k in state})
    return net.eval()
