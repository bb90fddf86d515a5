"""The worker's causal pipeline as one node: samples in, filtered trace and labelled beats out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.detector.beat_fusion import REFINE, BeatFusion
from ecg_monitor.detector.beats import UNCLASSIFIED, Beat
from ecg_monitor.detector.classifier import BeatClassifier, shipped_classifier
from ecg_monitor.detector.features import BeatFeatureExtractor
from ecg_monitor.detector.pantompkins import DetectorConfig, PanTompkinsDetector
from ecg_monitor.detector.qrs_net import QRSModel, StreamingQRSProbability, shipped_qrs_model
from ecg_monitor.detector.quality import QUALITY_BLOCK_S, JudgedBlock

#: ``classifier`` / ``qrs_model`` value that loads the packaged int8 model.
SHIPPED = "shipped"


@dataclass(frozen=True)
class PipelineOutput:
    """What one ``update`` produced: the display-band trace of the chunk, the finished beats and
    the signal-quality verdicts of the 0.5 s blocks completed in it."""

    start: int  # absolute index of filtered[0]
    filtered: np.ndarray  # 0.5-40 Hz ECG, mV
    beats: list[Beat] = field(default_factory=list)
    quality: list[JudgedBlock] = field(default_factory=list)


class DetectorPipeline:
    """Filters -> Pan-Tompkins fused with the QRS network -> beat classifier; a single ``update()``
    per chunk.

    The beats are the QRS network's fused with Pan-Tompkins' (``beat_fusion.py``; the packaged
    network unless told otherwise): as good on clean records as Pan-Tompkins alone, and far fewer
    false beats in noise (see the README). ``qrs_model=None`` gives Pan-Tompkins' beats alone.
    Pan-Tompkins judges signal quality either way.

    With a classifier (the packaged model unless told otherwise) a beat is output once the
    samples its morphology window needs have arrived, labelled; the beats that are ready in one
    chunk are classified in one batch. With ``classifier=None`` beats are output as soon as the
    detector decides them, labelled Q (not classified).

    Never guess: a beat given out while the last judged block is unreadable (noise, flat,
    saturated, missing) is labelled Q, whatever the classifier said.
    """

    def __init__(
        self,
        fs: float = PIPELINE_FS,
        config: DetectorConfig | None = None,
        classifier: BeatClassifier | str | None = SHIPPED,
        qrs_model: QRSModel | str | None = SHIPPED,
    ) -> None:
        self.fs = fs
        self.detector = PanTompkinsDetector(fs, config)
        self.fusion: BeatFusion | None = None
        if qrs_model is not None:
            model = shipped_qrs_model() if qrs_model == SHIPPED else qrs_model
            if model.fs != fs:
                raise ValueError(f"the QRS network works at {model.fs} Hz, the pipeline at {fs} Hz")
            self.fusion = BeatFusion(self.detector.readability, int(round(QUALITY_BLOCK_S * fs)),
                                     StreamingQRSProbability(model))
        self.classifier = shipped_classifier() if classifier == SHIPPED else classifier
        self.features: BeatFeatureExtractor | None = None
        if self.classifier is not None:
            if self.classifier.spec.fs != fs:
                raise ValueError(f"the beat classifier works at {self.classifier.spec.fs} Hz, the pipeline at {fs} Hz")
            self.features = BeatFeatureExtractor(self.classifier.spec)

    @property
    def samples_seen(self) -> int:
        return self.detector.n

    def update(self, chunk: np.ndarray) -> PipelineOutput:
        start = self.detector.n
        beats = self.detector.update(chunk)
        filtered = self.detector.last_display
        if self.fusion is not None:
            beats = self.fusion.update(filtered, beats)
        if self.features is not None:
            beats = self.classifier.classify(self.features.update(chunk, filtered, beats))
        return PipelineOutput(start=start, filtered=filtered, beats=self._never_guess(beats),
                              quality=self.detector.last_quality)

    def _never_guess(self, beats: list[Beat]) -> list[Beat]:
        """Label Q the beats given out while the last block judged by then was unreadable, and
        (fused beats, which wait for it) those whose QRS touches an unreadable block."""
        judged, fused = self.detector.readability, self.fusion is not None
        return [b.labelled(UNCLASSIFIED, None, b.short_history)
                if b.label != UNCLASSIFIED and (judged.unreadable_at(b.emitted_at) or (
                    fused and judged.unreadable_over(b.sample - REFINE, b.sample + REFINE, b.emitted_at)))
                else b for b in beats]

    def flush(self) -> list[Beat]:
        """End of stream (record over, source ended): finish the beats still pending.

        Beats whose window the stream did not complete are labelled Q.
        """
        beats = self.detector.flush()
        if self.fusion is not None:
            beats = self.fusion.flush(beats)
        if self.features is not None:
            beats = self.classifier.classify(self.features.flush(beats))
        return self._never_guess(beats)


def stream_signal(
    signal: np.ndarray, fs: float = PIPELINE_FS, classifier: BeatClassifier | str | None = SHIPPED, chunk: int = 360,
    qrs_model: QRSModel | str | None = SHIPPED,
) -> Iterator[PipelineOutput]:
    """A whole recording through a fresh pipeline, chunk by chunk as live; the last output holds
    the beats the stream's end flushed (and no samples)."""
    pipeline = DetectorPipeline(fs, classifier=classifier, qrs_model=qrs_model)
    for i in range(0, len(signal), chunk):
        yield pipeline.update(signal[i : i + chunk])
    yield PipelineOutput(start=pipeline.samples_seen, filtered=np.zeros(0), beats=pipeline.flush())


def run_signal(
    signal: np.ndarray, fs: float = PIPELINE_FS, classifier: BeatClassifier | str | None = SHIPPED, chunk: int = 360,
    qrs_model: QRSModel | str | None = SHIPPED,
) -> tuple[list[Beat], np.ndarray]:
    """A whole recording through a fresh pipeline (offline evaluation and training): every beat,
    the stream's end flushed, and the display-band trace."""
    outs = list(stream_signal(signal, fs, classifier, chunk, qrs_model))
    return [b for o in outs for b in o.beats], np.concatenate([o.filtered for o in outs])
