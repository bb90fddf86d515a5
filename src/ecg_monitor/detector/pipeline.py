"""The worker's causal pipeline as one node: samples in, filtered trace and labelled beats out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.classifier import BeatClassifier, shipped_classifier
from ecg_monitor.detector.features import BeatFeatureExtractor
from ecg_monitor.detector.pantompkins import DetectorConfig, PanTompkinsDetector

#: ``classifier`` value that loads the packaged int8 model.
SHIPPED = "shipped"


@dataclass(frozen=True)
class PipelineOutput:
    """What one ``update`` produced: the display-band trace of the chunk and the finished beats."""

    start: int  # absolute index of filtered[0]
    filtered: np.ndarray  # 0.5-40 Hz ECG, mV
    beats: list[Beat] = field(default_factory=list)


class DetectorPipeline:
    """Filters -> Pan-Tompkins detector -> beat classifier; a single ``update()`` per chunk.

    With a classifier (the packaged model unless told otherwise) a beat is output once the
    samples its morphology window needs have arrived, labelled; the beats that are ready in one
    chunk are classified in one batch. With ``classifier=None`` beats are output as soon as the
    detector decides them, labelled Q (not classified).
    """

    def __init__(
        self,
        fs: float = PIPELINE_FS,
        config: DetectorConfig | None = None,
        classifier: BeatClassifier | str | None = SHIPPED,
    ) -> None:
        self.fs = fs
        self.detector = PanTompkinsDetector(fs, config)
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
        if self.features is not None:
            beats = self.classifier.classify(self.features.update(chunk, filtered, beats))
        return PipelineOutput(start=start, filtered=filtered, beats=beats)

    def flush(self) -> list[Beat]:
        """End of stream (record over, source ended): finish the beats still pending.

        Beats whose window the stream did not complete are labelled Q.
        """
        beats = self.detector.flush()
        if self.features is None:
            return beats
        return self.classifier.classify(self.features.flush(beats))


def run_signal(
    signal: np.ndarray, fs: float = PIPELINE_FS, classifier: BeatClassifier | str | None = SHIPPED, chunk: int = 360
) -> tuple[list[Beat], np.ndarray]:
    """A whole recording through a fresh pipeline, chunk by chunk as live (offline evaluation and
    training): every beat, the stream's end flushed, and the display-band trace."""
    pipeline = DetectorPipeline(fs, classifier=classifier)
    outs = [pipeline.update(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    beats = [b for o in outs for b in o.beats] + pipeline.flush()
    return beats, np.concatenate([o.filtered for o in outs]) if outs else np.zeros(0)
