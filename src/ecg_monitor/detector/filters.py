"""Causal IIR/FIR filters whose state carries across chunks.

Every stage keeps its state between chunks and computes each output sample the same way
whatever the chunking (the IIR stages sample by sample with scipy's ``sosfilt`` kernel, the FIR
stages as one full dot product per output), so a record filtered in chunks of any size gives the
same numbers, to the last bit, as in one shot: the beats found downstream then do not depend on
how the samples were packed.

Live chunks are small (18 samples, 50 ms), and there the public calls cost far more than the
filtering: ``sosfilt`` spends about 50 us per call checking and reshaping its arguments around a
3 us kernel, ``lfilter`` with an FIR kernel about 30 us around one ``np.convolve``. A fleet worker
makes four such calls per chunk per patient, so the streaming classes call scipy's compiled
second-order-sections kernel and ``np.convolve`` directly, on arguments they keep in the right shape.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, group_delay, iirnotch, sos2tf, sosfilt, sosfilt_zi, tf2sos

try:  # the kernel behind sosfilt (scipy >= 1.2): filters rows of x in place, updating zi
    from scipy.signal._sosfilt import _sosfilt as _sos_kernel
except ImportError:  # a scipy that moved it: the public call, slower on small chunks, same numbers
    def _sos_kernel(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
        x[0], zi[0] = sosfilt(sos, x[0], zi=zi[0])

#: Pass band of the display / classification filter (Hz): keeps QRS and ST, drops wander and EMG.
DISPLAY_BAND = (0.5, 40.0)
#: Pass band of the Pan-Tompkins QRS filter (Hz): where QRS energy dominates P and T waves.
QRS_BAND = (5.0, 15.0)


def design_display_filter(fs: float, band: tuple[float, float] = DISPLAY_BAND,
                          notch_hz: float | None = None) -> np.ndarray:
    """Second-order-sections band-pass (plus optional mains notch) for display and classification."""
    sos = butter(2, band, btype="bandpass", fs=fs, output="sos")
    if notch_hz is not None:
        if not 0 < notch_hz < fs / 2:
            raise ValueError(f"notch at {notch_hz} Hz is outside 0..{fs / 2} Hz")
        b, a = iirnotch(notch_hz, Q=30.0, fs=fs)
        sos = np.vstack([sos, tf2sos(b, a)])
    return sos


def design_qrs_filter(fs: float, band: tuple[float, float] = QRS_BAND) -> np.ndarray:
    """Band-pass that favours QRS complexes over P/T waves, muscle noise and baseline wander."""
    return butter(2, band, btype="bandpass", fs=fs, output="sos")


class StreamingSOS:
    """``sosfilt`` with state kept between chunks.

    The state starts at the steady state for the first sample, so a record that begins with a DC
    offset does not ring for seconds at start-up.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self._zi: np.ndarray | None = None  # (1, sections, 2): the kernel's layout, updated in place

    def update(self, chunk: np.ndarray) -> np.ndarray:
        y = np.array(chunk, dtype=np.float64, ndmin=1).reshape(1, -1)  # a copy: filtered in place
        if y.size == 0:
            return y[0]
        if self._zi is None:
            self._zi = (sosfilt_zi(self.sos) * y[0, 0])[np.newaxis]
        _sos_kernel(self.sos, y, self._zi)
        return y[0]


class GapHold:
    """Replaces missing samples (NaN) by the last valid value, across chunks.

    Filters fed a held value instead of NaN do not blow up; callers keep their own validity mask
    so that nothing found in a held stretch is taken for signal.
    """

    def __init__(self) -> None:
        self._value = 0.0

    def fill(self, x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """``x`` with its gaps held; ``valid``: ``np.isfinite(x)``, when the caller has it."""
        valid = np.isfinite(x) if valid is None else valid
        if valid.all():
            if x.size:
                self._value = float(x[-1])
            return x
        x = x.copy()
        idx = np.where(valid, np.arange(x.size), -1)
        np.maximum.accumulate(idx, out=idx)
        before = idx < 0
        x[before] = self._value
        x[~before] = x[idx[~before]]
        self._value = float(x[-1])
        return x


class StreamingFIR:
    """An FIR filter (``lfilter`` with ``a = [1]``, zero initial history) whose output does not
    depend on how the input is split, to the last bit.

    ``lfilter`` carries partial sums across calls, so the same sample sums in another order at
    another split, and a threshold met by 1e-14 flips. Here every output is one full-length dot
    product over the input samples it needs (the last ``len(taps) - 1`` kept from earlier calls),
    computed the same way whatever the chunking.
    """

    def __init__(self, taps: np.ndarray) -> None:
        self.taps = np.asarray(taps, dtype=np.float64)
        self._history = np.zeros(len(self.taps) - 1)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.size == 0:
            return x.copy()
        span = np.concatenate([self._history, x])
        self._history = span[x.size :]
        return np.convolve(span, self.taps, "valid")


def derivative_taps(fs: float) -> np.ndarray:
    """Pan-Tompkins five-point derivative, scaled to units per second."""
    return np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * fs / 8.0


def integration_taps(fs: float, window_s: float = 0.150) -> np.ndarray:
    """Moving-window integrator (mean over ``window_s``), about one QRS wide."""
    n = max(1, int(round(window_s * fs)))
    return np.full(n, 1.0 / n)


def delay_samples(sos: np.ndarray, fs: float, at_hz: float = 15.0) -> int:
    """Group delay of a filter at QRS frequencies, in whole samples, to place marks where R is."""
    _, gd = group_delay(sos2tf(sos), w=[at_hz], fs=fs)
    return int(round(float(gd[0])))


def one_shot(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Filter a whole signal exactly as :class:`StreamingSOS` would chunk by chunk (for offline use)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    return sosfilt(sos, x, zi=sosfilt_zi(sos) * x[0])[0]


__all__ = [
    "DISPLAY_BAND",
    "GapHold",
    "QRS_BAND",
    "StreamingFIR",
    "StreamingSOS",
    "delay_samples",
    "derivative_taps",
    "design_display_filter",
    "design_qrs_filter",
    "integration_taps",
    "one_shot",
]
