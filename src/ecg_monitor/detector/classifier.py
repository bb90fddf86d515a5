"""AAMI beat classification with the packaged int8 ONNX model (onnxruntime only, no torch).

The model file comes with a JSON metadata file that says which classes it outputs and which
features it was trained on; a model whose features differ from what the runtime computes, or a
file that is missing or damaged, raises :class:`ModelError` naming the file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ecg_monitor.detector.beats import AAMI_CLASSES, UNCLASSIFIED, Beat
from ecg_monitor.detector.features import MORPHOLOGY_CHANNELS, RHYTHM_FEATURES, BeatFeatures, FeatureSpec

MODEL_DIR = Path(__file__).with_name("models")
#: The int8 model the pipeline uses by default, and its metadata.
SHIPPED_MODEL = MODEL_DIR / "beat_classifier.onnx"
SHIPPED_METADATA = MODEL_DIR / "beat_classifier.json"
#: The float model it was quantized from (for the int8-vs-fp32 report and saliency).
SHIPPED_FP32_MODEL = MODEL_DIR / "beat_classifier_fp32.onnx"

INPUT_NAMES = ("morphology", "rhythm")


class ModelError(Exception):
    """A packaged model (the beat classifier and its metadata, or the QRS network) is missing,
    damaged or does not fit the runtime."""


def load_metadata(path: str | Path) -> dict:
    """Read and check a model's metadata file."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"beat classifier metadata {path} not found") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"beat classifier metadata {path} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("features"), dict) or "classes" not in meta:
        raise ModelError(f"beat classifier metadata {path} lacks 'classes' or 'features'")
    if tuple(meta["classes"]) != AAMI_CLASSES:
        raise ModelError(f"beat classifier metadata {path}: classes {meta['classes']} are not {AAMI_CLASSES}")
    feats = meta["features"]
    theirs = (tuple(feats.get("rhythm_features", ())), tuple(feats.get("morphology_channels", ())))
    if theirs != (RHYTHM_FEATURES, MORPHOLOGY_CHANNELS):
        raise ModelError(
            f"beat classifier metadata {path}: the model was trained on rhythm features {list(theirs[0])} and "
            f"morphology {list(theirs[1])}, but this runtime computes {list(RHYTHM_FEATURES)} and "
            f"{list(MORPHOLOGY_CHANNELS)}"
        )
    return meta


def check_spec(model: Path, trained: FeatureSpec, loaded: FeatureSpec) -> None:
    """Refuse a model whose feature spec differs from the one it is loaded with, naming both."""
    diff = {k: (v, getattr(loaded, k)) for k, v in vars(trained).items() if getattr(loaded, k) != v}
    if diff:
        raise ModelError(
            f"beat classifier model {model} was trained with feature spec "
            f"{ {k: a for k, (a, _) in diff.items()} } but is loaded with { {k: b for k, (_, b) in diff.items()} }"
        )


class BeatClassifier:
    """An onnxruntime session over a beat model; ``classify`` labels beats in one batch."""

    def __init__(
        self,
        model_path: str | Path = SHIPPED_MODEL,
        metadata_path: str | Path | None = None,
        threads: int = 1,
        spec: FeatureSpec | None = None,
    ) -> None:
        """``spec``: the feature spec the caller computes features with (default: the model's own)."""
        self.model_path = Path(model_path)
        self.metadata_path = Path(metadata_path) if metadata_path is not None else self.model_path.with_suffix(".json")
        self.metadata = load_metadata(self.metadata_path)
        self.spec = FeatureSpec.from_dict(self.metadata["features"])
        if spec is not None:
            check_spec(self.model_path, self.spec, spec)
        if not self.model_path.is_file():
            raise ModelError(f"beat classifier model {self.model_path} not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several types for a damaged file
            raise ModelError(f"beat classifier model {self.model_path} is damaged: {exc}") from None
        self._check_inputs()

    def _check_inputs(self) -> None:
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        expected = {
            "morphology": [len(MORPHOLOGY_CHANNELS), self.spec.window],
            "rhythm": [len(RHYTHM_FEATURES)],
        }
        for name, shape in expected.items():
            if name not in inputs or list(inputs[name][1:]) != shape:
                raise ModelError(
                    f"beat classifier model {self.model_path}: input {name!r} should be (batch, "
                    f"{', '.join(map(str, shape))}), the file has {inputs}"
                )

    def predict(self, morphology: np.ndarray, rhythm: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (batch, 5), for stacked feature arrays."""
        feeds = {"morphology": np.asarray(morphology, np.float32), "rhythm": np.asarray(rhythm, np.float32)}
        return self._session.run(None, feeds)[0]

    def classify(self, ready: list[tuple[Beat, BeatFeatures]]) -> list[Beat]:
        """Label beats in one batch; beats with an unusable window become Q without the model."""
        usable = [i for i, (_, f) in enumerate(ready) if f.usable]
        probs = (
            self.predict(np.stack([ready[i][1].morphology for i in usable]),
                         np.stack([ready[i][1].rhythm for i in usable]))
            if usable else np.zeros((0, len(AAMI_CLASSES)), np.float32)
        )
        labels = iter(zip(probs.argmax(axis=1).tolist(), probs.tolist()))  # of the usable beats, in order
        out = []
        for b, f in ready:
            if f.usable:
                best, p = next(labels)
                out.append(b.labelled(AAMI_CLASSES[best], tuple(p), f.short_history))
            else:
                out.append(b.labelled(UNCLASSIFIED, None, f.short_history))
        return out


@lru_cache(maxsize=1)
def shipped_classifier() -> BeatClassifier:
    """The packaged int8 classifier, loaded once per process."""
    return BeatClassifier(SHIPPED_MODEL, SHIPPED_METADATA, spec=FeatureSpec())
