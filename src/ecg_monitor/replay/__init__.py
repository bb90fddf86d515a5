"""Recorded ECG sources: WFDB records (local folder or PhysioNet), record splits, noise."""

from ecg_monitor.replay.records import (
    Annotations,
    CorruptRecordError,
    NoUsableLeadError,
    Record,
    RecordError,
    RecordNotFoundError,
    iter_chunks,
    read_annotations,
    read_record,
    resolve_data_dir,
)
from ecg_monitor.replay.splits import ALL_RECORDS, DS1, DS1_TRAIN, DS2, PACED, parse_record_spec

__all__ = [
    "ALL_RECORDS",
    "Annotations",
    "CorruptRecordError",
    "DS1",
    "DS1_TRAIN",
    "DS2",
    "NoUsableLeadError",
    "PACED",
    "Record",
    "RecordError",
    "RecordNotFoundError",
    "iter_chunks",
    "parse_record_spec",
    "read_annotations",
    "read_record",
    "resolve_data_dir",
]
