"""Read WFDB records as the pipeline wants them: one lead, in mV, at 360 Hz.

Records come from a local folder (``--data-dir`` or ``ECG_MONITOR_DATA``) or, when not found
there, from PhysioNet through wfdb. Every failure becomes a :class:`RecordError` whose message
says what was tried, so a user never sees a traceback wall for a missing or damaged file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import resample_poly

from ecg_monitor import PIPELINE_FS

DATA_ENV = "ECG_MONITOR_DATA"
DEFAULT_PN_DIR = "mitdb"
#: Lead policy: MLII where the record has it (MIT-BIH); else II; else the first ECG lead
#: (SVDB's ECG1, which training on SVDB uses too, so live and training agree).
PREFERRED_LEADS = ("MLII", "II", "ECG", "ECG1")
#: Bytes per sample of the WFDB signal formats, to tell a truncated file from a damaged one.
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
                     "24": 3, "32": 4}
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nu": 1.0}


class RecordError(Exception):
    """A record could not be used; the message says why and what to do."""


class RecordNotFoundError(RecordError):
    """No such record locally, and PhysioNet could not provide it."""


class CorruptRecordError(RecordError):
    """The header or signal file is damaged or truncated."""


class NoUsableLeadError(RecordError):
    """The record has no lead the pipeline can use."""


@dataclass(frozen=True)
class Record:
    """One ECG lead ready for the pipeline."""

    name: str
    signal: np.ndarray  # mV, float64, NaN where the source had no valid sample
    fs: float  # pipeline rate (360 Hz)
    source_fs: float  # the record's own rate
    lead: str
    source_length: int  # samples at the record's own rate

    @property
    def duration_s(self) -> float:
        return len(self.signal) / self.fs

    def to_source_samples(self, samples: np.ndarray) -> np.ndarray:
        """Map pipeline sample indices back to the record's own sample numbering."""
        idx = np.rint(np.asarray(samples, dtype=float) * self.source_fs / self.fs).astype(np.int64)
        return np.clip(idx, 0, max(self.source_length - 1, 0))

    def from_source_samples(self, samples: np.ndarray) -> np.ndarray:
        """Map the record's own sample numbers to pipeline sample indices."""
        idx = np.rint(np.asarray(samples, dtype=float) * self.fs / self.source_fs).astype(np.int64)
        return np.clip(idx, 0, max(len(self.signal) - 1, 0))


@dataclass(frozen=True)
class Annotations:
    """Reference annotations of a record, positions at the record's own rate."""

    record: str
    sample: np.ndarray  # int64, record's own numbering
    symbol: np.ndarray  # str
    aux_note: np.ndarray  # str
    fs: float
    subtype: np.ndarray | None = None  # int; for noise ``~``: bits 0-3 noisy, 4-7 unreadable lead, -1 all unreadable


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local record folder: the explicit argument, else ``$ECG_MONITOR_DATA``, else none."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    return Path(chosen).expanduser() if chosen is not None else None


def _local_base(name: str, data_dir: Path | None) -> Path | None:
    """Path (without extension) of a local record, looking in ``DIR`` and ``DIR/mitdb``."""
    if data_dir is None:
        return None
    for folder in (data_dir, data_dir / DEFAULT_PN_DIR):
        if (folder / f"{name}.hea").is_file():
            return folder / name
    return None


def _not_found(name: str, data_dir: Path | None, reason: str) -> RecordNotFoundError:
    where = (
        f"in {data_dir} (and {data_dir / DEFAULT_PN_DIR})"
        if data_dir is not None
        else f"locally (no --data-dir, ${DATA_ENV} not set)"
    )
    if data_dir is not None and not data_dir.is_dir():
        where = f"in {data_dir}, which is not a folder"
    return RecordNotFoundError(
        f"record {name!r} not found {where}, and {reason}. "
        f"Point --data-dir or ${DATA_ENV} at a folder holding {name}.hea and its .dat files."
    )


def _network_reason(exc: Exception) -> str:
    """Why PhysioNet did not provide a record, in a few words (the library's own message runs
    to hundreds of characters of connection-pool detail)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"PhysioNet answered HTTP {response.status_code}"
    if isinstance(exc, OSError):  # requests' ConnectionError and timeouts are OSErrors too
        return "PhysioNet could not be reached (offline?)"
    text = f"{type(exc).__name__}: {exc}"
    return "PhysioNet failed: " + (text if len(text) <= 100 else text[:97] + "...")


def _truncation(base: Path) -> str | None:
    """``'100.dat holds 66,667 of 650,000 samples'`` when a signal file is shorter than its
    header says, else None."""
    try:
        header = wfdb.rdheader(str(base))
    except Exception:  # an unreadable header: damaged, not truncated
        return None
    files = list(header.file_name or [])
    offsets = list(header.byte_offset or [None] * len(files))
    for fname in dict.fromkeys(files):
        first = files.index(fname)
        per_sample = _BYTES_PER_SAMPLE.get(str(header.fmt[first]))
        path = base.parent / fname
        if per_sample is None or not header.sig_len or not path.is_file():
            continue
        size = path.stat().st_size - (offsets[first] or 0)
        held = math.ceil(size / (per_sample * files.count(fname)))
        if held < header.sig_len:
            return f"{fname} holds {held:,} of {header.sig_len:,} samples"
    return None


def _read_wfdb(name: str, data_dir: Path | None, pn_dir: str, reader, **kwargs):
    """Run a wfdb reader on the local copy, else on PhysioNet, translating its errors."""
    base = _local_base(name, data_dir)
    if base is None:
        try:
            return reader(name, pn_dir=pn_dir, **kwargs)
        except Exception as exc:  # wfdb raises many types for network and HTTP failures
            raise _not_found(name, data_dir, _network_reason(exc)) from None
    try:
        return reader(str(base), **kwargs)
    except FileNotFoundError as exc:
        raise RecordNotFoundError(f"record {name!r} at {base}: missing file {exc.filename}") from None
    except Exception as exc:
        short = _truncation(base)
        if short is not None:
            raise CorruptRecordError(f"record {name!r} at {base} is truncated: {short}") from None
        raise CorruptRecordError(
            f"record {name!r} at {base} is damaged or truncated: {type(exc).__name__}: {exc}"
        ) from None


def _choose_lead(rec, lead: str | None) -> int:
    names = [str(n) for n in (rec.sig_name or [])]
    if not names:
        raise NoUsableLeadError(f"record {rec.record_name!r} has no signals")
    usable = [np.isfinite(rec.p_signal[:, i]).any() for i in range(len(names))]
    if lead is not None:
        if lead not in names:
            raise NoUsableLeadError(f"record {rec.record_name!r} has no lead {lead!r}; leads: {names}")
        i = names.index(lead)
        if not usable[i]:
            raise NoUsableLeadError(f"record {rec.record_name!r}: lead {lead!r} holds no valid sample")
        return i
    order = [names.index(p) for p in PREFERRED_LEADS if p in names] + list(range(len(names)))
    for i in order:
        if usable[i]:
            return i
    raise NoUsableLeadError(f"record {rec.record_name!r}: no lead holds a valid sample (leads {names})")


def _resample(x: np.ndarray, source_fs: float, fs: float) -> np.ndarray:
    """Polyphase resampling that keeps NaN gaps as gaps instead of smearing them."""
    ratio = Fraction(fs / source_fs).limit_denominator(1000)
    bad = ~np.isfinite(x)
    filled = x.copy()
    if bad.any():
        good = np.flatnonzero(~bad)
        filled[bad] = np.interp(np.flatnonzero(bad), good, x[good])
    y = resample_poly(filled, ratio.numerator, ratio.denominator)
    if bad.any():
        src = np.minimum((np.arange(len(y)) * source_fs / fs).astype(np.int64), len(x) - 1)
        y[bad[src]] = np.nan
    return y


def read_record(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    lead: str | None = None,
    fs: float = PIPELINE_FS,
    pn_dir: str = DEFAULT_PN_DIR,
) -> Record:
    """Read one lead of a record in mV at ``fs`` (MLII by default, else the first usable lead)."""
    folder = resolve_data_dir(data_dir)
    rec = _read_wfdb(name, folder, pn_dir, wfdb.rdrecord, physical=True)
    if rec.p_signal is None or rec.p_signal.ndim != 2 or rec.p_signal.shape[0] == 0:
        raise CorruptRecordError(f"record {name!r}: no samples could be read")
    if rec.sig_len and rec.p_signal.shape[0] != rec.sig_len:
        raise CorruptRecordError(
            f"record {name!r}: header promises {rec.sig_len} samples, file holds {rec.p_signal.shape[0]}"
        )
    i = _choose_lead(rec, lead)
    unit = str((rec.units or ["mV"] * (i + 1))[i]).strip().lower()
    scale = _UNIT_TO_MV.get(unit)
    if scale is None:
        raise NoUsableLeadError(f"record {name!r}: lead {rec.sig_name[i]!r} is in {unit!r}, not a voltage")
    x = rec.p_signal[:, i].astype(np.float64) * scale
    source_fs = float(rec.fs)
    if source_fs <= 0:
        raise CorruptRecordError(f"record {name!r}: header gives sampling rate {rec.fs}")
    if source_fs != fs:
        x = _resample(x, source_fs, fs)
    return Record(
        name=name, signal=x, fs=float(fs), source_fs=source_fs, lead=str(rec.sig_name[i]),
        source_length=int(rec.p_signal.shape[0]),
    )


def read_annotations(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    extension: str = "atr",
    pn_dir: str = DEFAULT_PN_DIR,
) -> Annotations:
    """Read a record's reference annotations (positions at the record's own rate)."""
    folder = resolve_data_dir(data_dir)
    ann = _read_wfdb(name, folder, pn_dir, wfdb.rdann, extension=extension)
    aux = ann.aux_note if ann.aux_note is not None else [""] * len(ann.sample)
    return Annotations(
        record=name,
        sample=np.asarray(ann.sample, dtype=np.int64),
        symbol=np.asarray(ann.symbol, dtype=str),
        aux_note=np.asarray([a.rstrip("\x00") for a in aux], dtype=str),
        fs=float(ann.fs) if ann.fs else PIPELINE_FS,
        subtype=np.asarray(ann.subtype if ann.subtype is not None else np.zeros(len(ann.sample)), dtype=np.int64),
    )


def iter_chunks(signal: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Cut a signal into consecutive chunks of ``size`` samples (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, len(signal), size):
        yield signal[start : start + size]
