"""MIT-BIH (any WFDB) record replay as a :class:`~ecg_monitor.streamer.source.Source`."""

from __future__ import annotations

import os

from ecg_monitor.replay.records import Record, read_record
from ecg_monitor.streamer.source import Chunk, Source, SourceError, SourceState


class ReplaySource(Source):
    """Plays one lead of a record from ``start_s`` to its end (``--duration`` is the publisher's).

    Sample numbers are the record's pipeline-rate indices (the record's own numbering for the
    360 Hz MIT-BIH records), so ``--start 60`` starts at sample 21600, not 0.
    """

    realtime = False

    def __init__(self, record: Record, start_s: float = 0.0) -> None:
        super().__init__()
        self.record = record
        self.source_id = f"replay:{record.name}"
        self.fs = record.fs
        self._pos = int(round(start_s * record.fs))
        if not 0 <= self._pos < len(record.signal):
            raise SourceError(
                f"--start {start_s} s is outside record {record.name} (0 to {record.duration_s:.0f} s)"
            )
        self._first = self._pos

    @classmethod
    def open(cls, name: str, data_dir: str | os.PathLike[str] | None, start_s: float = 0.0) -> ReplaySource:
        """Read the record now, so a bad name or folder fails before any process starts."""
        return cls(read_record(name, data_dir), start_s)

    @property
    def duration_s(self) -> float:
        return (len(self.record.signal) - self._first) / self.fs

    def read(self, max_samples: int, timeout: float = 0.1) -> Chunk | None:
        if self._state is not SourceState.CONNECTED:
            return None
        if self._pos >= len(self.record.signal):
            self._state = SourceState.ENDED
            return None
        end = min(self._pos + max_samples, len(self.record.signal))
        chunk = Chunk(self._pos, self.record.signal[self._pos : end])
        self._pos = end
        return chunk

    def counters(self) -> dict[str, int | float | str]:
        return {"position": self._pos, "length": len(self.record.signal)}
