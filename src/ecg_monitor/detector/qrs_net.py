"""The learned QRS detector's runtime: the packaged int8 ONNX network, streamed.

The network (trained by ``training/qrs_train.py``) reads the display-band ECG at 360 Hz and gives,
every 3 samples, the probability that an R peak lies 200 ms (``DELAY``) before the newest sample:
its look-ahead is those 200 ms, about what Pan-Tompkins needs before it decides a peak. Its
convolutions have no padding here, so each step is computed from exactly the 771 samples before
it, whichever chunk they came in; with int8 arithmetic the steps are the same bits whatever the
chunking.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ecg_monitor.detector.classifier import ModelError

MODEL_DIR = Path(__file__).with_name("models")
SHIPPED_QRS_MODEL = MODEL_DIR / "qrs_net.onnx"

STRIDE = 3  # input samples per output step
FIRST_KERNEL = 9
DILATIONS = (1, 2, 4, 8, 16, 32, 64)
#: Samples between the R peak a step speaks of and the newest sample it has seen (200 ms).
DELAY = 72
#: Input samples one output step depends on (2.1 s).
RECEPTIVE_FIELD = FIRST_KERNEL + STRIDE * 2 * sum(DILATIONS)
FS = 360.0


class QRSModelError(ModelError):
    """The QRS network file is missing, damaged or does not fit this runtime (a ``ModelError``, so
    the monitor refuses to start on it as on a bad classifier)."""


class QRSModel:
    """One onnxruntime session on the network; ``probabilities`` runs it on a stretch of input."""

    def __init__(self, path: str | Path = SHIPPED_QRS_MODEL) -> None:
        path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one feed's steps are small; a worker hosts many feeds
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for missing and damaged files
            raise QRSModelError(f"QRS network {path} could not be loaded: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        layout = json.loads(meta.get("layout", "{}"))
        if layout != {"fs": FS, "stride": STRIDE, "delay": DELAY, "receptive_field": RECEPTIVE_FIELD}:
            raise QRSModelError(f"QRS network {path} was built for {layout or 'an unknown layout'}, "
                                f"not fs {FS}, stride {STRIDE}, delay {DELAY}, receptive field {RECEPTIVE_FIELD}")
        self.input = self.session.get_inputs()[0].name
        self.fs = FS

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Steps for ``x`` (length ``RECEPTIVE_FIELD - STRIDE + 3k``): k probabilities."""
        logits = self.session.run(None, {self.input: x.astype(np.float32, copy=False)[None, None]})[0][0]
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


@lru_cache(maxsize=1)
def shipped_qrs_model() -> QRSModel:
    """The packaged network, loaded once per process (sessions are thread-safe to run)."""
    return QRSModel()


class StreamingQRSProbability:
    """Display-band samples in, the probability steps they complete out; one ``update`` per chunk.

    Step ``j`` ends at sample ``3j + 2`` and speaks of an R peak at ``3j + 2 - DELAY``. Before the
    stream began the input counts as zeros (no QRS there).
    """

    def __init__(self, model: QRSModel | None = None) -> None:
        self.model = model or shipped_qrs_model()
        self._past = np.zeros(RECEPTIVE_FIELD - STRIDE, np.float32)
        self._partial = np.zeros(0, np.float32)
        self.steps = 0  # steps given out so far

    def update(self, filtered: np.ndarray) -> np.ndarray:
        """The new steps' probabilities (missing samples count as zeros)."""
        x = np.concatenate([self._partial, np.nan_to_num(np.asarray(filtered, np.float32))])
        whole = len(x) // STRIDE * STRIDE
        self._partial = x[whole:]
        if whole == 0:
            return np.zeros(0)
        inp = np.concatenate([self._past, x[:whole]])
        self._past = inp[whole:]
        self.steps += whole // STRIDE
        return self.model.probabilities(inp)
