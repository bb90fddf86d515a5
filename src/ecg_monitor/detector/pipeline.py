"""The worker's causal pipeline as one node: samples in, filtered trace and labelled beats out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecg_monitor import PIPELINE_FS
from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.pantompkins import DetectorConfig, PanTompkinsDetector


@dataclass(frozen=True)
class PipelineOutput:
    """What one ``update`` produced: the display-band trace of the chunk and the finished beats."""

    start: int  # absolute index of filtered[0]
    filtered: np.ndarray  # 0.5-40 Hz ECG, mV
    beats: list[Beat] = field(default_factory=list)


class DetectorPipeline:
    """Filters -> Pan-Tompkins detector -> (classifier); a single ``update()`` per chunk."""

    def __init__(self, fs: float = PIPELINE_FS, config: DetectorConfig | None = None) -> None:
        self.fs = fs
        self.detector = PanTompkinsDetector(fs, config)

    @property
    def samples_seen(self) -> int:
        return self.detector.n

    def update(self, chunk: np.ndarray) -> PipelineOutput:
        start = self.detector.n
        beats = self.detector.update(chunk)
        return PipelineOutput(start=start, filtered=self.detector.last_display, beats=beats)

    def flush(self) -> list[Beat]:
        """End of stream (record over, source ended): finish the beats still pending."""
        return self.detector.flush()
