"""The causal QRS network (torch side): display-band ECG at 360 Hz in, one logit per 3 samples
that an R peak lies within ``TOL`` samples of ``DELAY`` samples before the newest input.

Every convolution is causal (padded on the left only), so the output at any step depends on the
past and on ``DELAY`` samples of look-ahead, nothing more; the runtime runs the same graph with
no padding over the receptive field it keeps (``detector/qrs_net.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecg_monitor.detector.qrs_net import DELAY, DILATIONS, FIRST_KERNEL, STRIDE

#: Samples either side of a reference R mark that count as "an R peak here" (36 ms).
TOL = 13


class QRSNet(nn.Module):
    """Strided input convolution, then residual dilated convolutions: about 2.1 s of past."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, channels, FIRST_KERNEL, stride=STRIDE)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d) for d in DILATIONS)
        self.mix = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in DILATIONS)
        self.out = nn.Conv1d(channels, 1, 1)
        self.pad = True  # training pads the left edge with zeros; export runs "valid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, steps) logits."""
        pad = self.pad
        h = F.relu(self.inp(F.pad(x, (FIRST_KERNEL - STRIDE, 0)) if pad else x))
        for conv, mix, d in zip(self.blocks, self.mix, DILATIONS):
            branch = mix(F.relu(conv(F.pad(h, (2 * d, 0)) if pad else h)))
            h = F.relu((h if pad else h[..., 2 * d :]) + branch)
        return self.out(h)[:, 0]


def step_ends(samples: int) -> np.ndarray:
    """The input sample each output step ends at (training layout: zero padding on the left)."""
    return np.arange(samples // STRIDE) * STRIDE + STRIDE - 1


def targets(peaks: np.ndarray, samples: int) -> np.ndarray:
    """1 where an R mark lies within ``TOL`` samples of the time each step labels, else 0."""
    tau = step_ends(samples) - DELAY
    if len(peaks) == 0:
        return np.zeros(len(tau), np.float32)
    j = np.searchsorted(peaks, tau)
    after = np.abs(peaks[np.clip(j, 0, len(peaks) - 1)] - tau)
    before = np.abs(peaks[np.clip(j - 1, 0, len(peaks) - 1)] - tau)
    return (np.minimum(before, after) <= TOL).astype(np.float32)
