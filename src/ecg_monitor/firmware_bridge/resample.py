"""Streaming rate conversion of a device's samples to the pipeline rate.

The beat classifier and the detector's tuning are for 360 Hz, as replayed records are; devices
sample at 250, 500 or 1000 Hz. Conversion is causal and chunk-invariant: a linear-phase
anti-alias FIR (when the rate goes down) and linear interpolation at the output instants, with
the FIR's delay compensated so sample ``k`` of the output is the signal at time ``k / fs_out``.
A NaN (a gap) stays a gap: it poisons the FIR for its length, so a gap grows by at most
``len(taps)`` input samples and is never bridged by invented values.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import firwin


class StreamingResampler:
    """``process(chunk)`` returns every output sample the input so far determines."""

    def __init__(self, fs_in: float, fs_out: float) -> None:
        self.step = fs_in / fs_out  # input samples per output sample
        if fs_in > fs_out:
            numtaps = 2 * int(np.ceil(4 * self.step)) + 1
            self.taps = firwin(numtaps, 0.45 * fs_out, fs=fs_in)
        else:
            self.taps = np.ones(1)
        self.delay = (len(self.taps) - 1) / 2  # input samples
        self._history: np.ndarray | None = None  # the last len(taps) - 1 inputs
        self._prev = np.nan  # last filtered sample, for interpolating across chunks
        self._n_in = 0  # input samples consumed
        self._k = 0  # next output index

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return np.zeros(0)
        if self._history is None:  # start as if the first value had always been there, not from 0
            first = x[np.isfinite(x)][:1]
            self._history = np.full(len(self.taps) - 1, first[0] if first.size else 0.0)
        # Each output is one dot product over the same inputs however the stream is cut, so the
        # result does not depend on chunking, to the bit; a NaN leaves the window after len(taps).
        both = np.concatenate((self._history, x))
        f = np.convolve(both, self.taps, mode="valid")
        self._history = both[len(both) - len(self.taps) + 1 :]
        ext = np.concatenate(([self._prev], f))  # ext[j] is filtered sample n_in - 1 + j
        end = self._n_in + x.size
        ks = np.arange(self._k, int((end - self.delay) / self.step) + 2)
        pos = ks * self.step + self.delay
        i = np.floor(pos).astype(np.int64)
        keep = int(np.searchsorted(i, end - 2, side="right"))  # needs samples i and i + 1
        i, frac = i[:keep], (pos - np.floor(pos))[:keep]
        j = i - (self._n_in - 1)
        y = ext[j] * (1.0 - frac) + ext[j + 1] * frac
        self._k += keep
        self._n_in = end
        self._prev = float(f[-1])
        return y
