"""``ecg-eval detect``: run the streaming pipeline over records, write beats, print an EC57 report."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import wfdb

from ecg_monitor.detector.beats import Beat
from ecg_monitor.detector.pipeline import SHIPPED, run_signal
from ecg_monitor.evaluation.ec57 import (
    SKIP_S,
    DetectionScore,
    ReferenceBeats,
    pct,
    reference_beats,
    score_record,
)
from ecg_monitor.evaluation.options import add_detector_option, qrs_option
from ecg_monitor.evaluation.peers import PEERS
from ecg_monitor.replay import parse_record_spec, read_record
from ecg_monitor.replay.records import Record

#: Annotation symbol written for each AAMI class in WFDB output (bxb maps A to S).
WFDB_SYMBOL = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}


@dataclass
class RecordResult:
    """Beats found in one record and how they score."""

    name: str
    record: Record
    beats: list[Beat]
    ec57: DetectionScore
    whole: DetectionScore
    seconds: float  # pipeline compute time
    peer: DetectionScore | None = None  # the --peer detector's EC57 score on the same signal
    peer_seconds: float = 0.0


def detect_record(record: Record, chunk_size: int, qrs_model: str | None = SHIPPED) -> tuple[list[Beat], float]:
    """Stream a record through a fresh pipeline in chunks; return beats and compute seconds."""
    t0 = time.perf_counter()
    beats, _ = run_signal(record.signal, record.fs, chunk=chunk_size, qrs_model=qrs_model)
    return beats, time.perf_counter() - t0


def evaluate_record(name: str, data_dir: str | None, chunk_size: int, peer: str | None = None,
                    qrs_model: str | None = SHIPPED) -> RecordResult:
    """Read a record, run the pipeline (and ``peer``, if named) over it and score it against its annotations."""
    record = read_record(name, data_dir)
    reference = reference_beats(record, data_dir)
    result = evaluate_signal(name, record, reference, chunk_size, qrs_model)
    if peer is not None:
        t0 = time.perf_counter()
        peaks = PEERS[peer](record.signal, record.fs)
        result.peer_seconds = time.perf_counter() - t0
        result.peer = score_record(reference.samples, peaks, record.fs, start=int(SKIP_S * record.fs),
                                   exclude=reference.flutter)
    return result


def evaluate_signal(name: str, record: Record, reference: ReferenceBeats, chunk_size: int,
                    qrs_model: str | None = SHIPPED) -> RecordResult:
    """Run the pipeline over ``record`` (possibly altered, e.g. noisy) and score it."""
    beats, seconds = detect_record(record, chunk_size, qrs_model)
    ref, vf = reference.samples, reference.flutter
    det = np.array([b.sample for b in beats], dtype=np.int64)
    return RecordResult(
        name=name,
        record=record,
        beats=beats,
        ec57=score_record(ref, det, record.fs, start=int(SKIP_S * record.fs), exclude=vf),
        whole=score_record(ref, det, record.fs),
        seconds=seconds,
    )


def write_beats(result: RecordResult, out_dir: Path, fmt: str) -> Path:
    """Write beats with R marks in the record's own sample numbering."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = result.record
    own = rec.to_source_samples(np.array([b.sample for b in result.beats], dtype=np.int64))
    if fmt == "wfdb":
        symbols = [WFDB_SYMBOL.get(b.label, "Q") for b in result.beats]
        wfdb.wrann(result.name, "test", own, symbols, fs=rec.source_fs, write_dir=str(out_dir))
        return out_dir / f"{result.name}.test"
    path = out_dir / f"{result.name}.csv"
    with path.open("w") as fh:
        fh.write(BEATS_CSV_HEADER)
        fh.writelines(beat_csv_row(b, int(s), rec.fs, rec.source_fs) for b, s in zip(result.beats, own))
    return path


BEATS_CSV_HEADER = "sample,time_s,label,delay_ms,search_back\n"


def beat_csv_row(beat: Beat, own_sample: int, fs: float, own_fs: float) -> str:
    """One beats-CSV row (also written by the monitor's ``--beats-csv``): the R mark in the
    record's own numbering ``own_sample`` at ``own_fs``, the decision delay from ``fs`` samples."""
    delay = (beat.emitted_at - beat.sample) * 1000.0 / fs
    return f"{own_sample},{own_sample / own_fs:.4f},{beat.label},{delay:.1f},{int(beat.search_back)}\n"


def format_report(results: list[RecordResult], peer_name: str = "peer") -> str:
    lines = [
        "EC57 beat-by-beat (150 ms window; EC57 columns skip the first 5 min and VF/flutter episodes;",
        "'whole' columns score every sample of the record)",
        f"{'record':>8} {'TP':>6} {'FN':>5} {'FP':>5} {'Se%':>6} {'+P%':>6} | {'TP':>6} {'FN':>5} {'FP':>5} {'Se%':>6} {'+P%':>6}",
    ]
    gross, whole = DetectionScore(), DetectionScore()
    for r in results:
        e, w = r.ec57, r.whole
        gross, whole = gross + e, whole + w
        lines.append(
            f"{r.name:>8} {e.tp:6d} {e.fn:5d} {e.fp:5d} {pct(e.se)} {pct(e.ppv)} | "
            f"{w.tp:6d} {w.fn:5d} {w.fp:5d} {pct(w.se)} {pct(w.ppv)}"
        )
    lines.append(
        f"{'gross':>8} {gross.tp:6d} {gross.fn:5d} {gross.fp:5d} {pct(gross.se)} {pct(gross.ppv)} | "
        f"{whole.tp:6d} {whole.fn:5d} {whole.fp:5d} {pct(whole.se)} {pct(whole.ppv)}"
    )
    fs = results[0].record.fs if results else 360.0
    mean, sd = gross.offset_stats_ms(fs)
    beats = [b for r in results for b in r.beats]
    samples = sum(len(r.record.signal) for r in results)
    seconds = sum(r.seconds for r in results)
    lines.append(f"R-mark offset vs reference: mean {mean:+.1f} ms, jitter (SD) {sd:.1f} ms")
    if beats:
        detected = np.array([(b.detected_at if b.detected_at is not None else b.emitted_at) - b.sample
                             for b in beats], dtype=float) * 1000.0 / fs
        labelled = np.array([b.emitted_at - b.sample for b in beats], dtype=float) * 1000.0 / fs
        for what, d in (("beat decided", detected), ("labelled beat out", labelled)):
            lines.append(f"emission delay (R peak -> {what}): median {np.median(d):.0f} ms, "
                         f"p95 {np.percentile(d, 95):.0f} ms")
    if seconds > 0:
        lines.append(
            f"pipeline speed: {samples / seconds:,.0f} samples/s = {samples / fs / seconds:,.0f} x real time"
        )
    peers = [r for r in results if r.peer is not None]
    if peers:
        score = sum((r.peer for r in peers), DetectionScore())
        peer_seconds = sum(r.peer_seconds for r in peers)
        lines.append(f"{peer_name:>8} {score.tp:6d} {score.fn:5d} {score.fp:5d} {pct(score.se)} {pct(score.ppv)}"
                     "   (EC57 columns, same signals)")
        lines.append(f"detection time: ours {seconds:.2f} s, {peer_name} {peer_seconds:.2f} s "
                     f"(ours {peer_seconds / seconds:.1f}x faster)")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect beats in records and score them the EC57 way")
    p.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    p.add_argument("--records", default="all", help="all, ds1, ds2 or a comma list such as 100,208")
    p.add_argument("--out-dir", type=Path, help="write <record>.csv (or .test) beat files here")
    p.add_argument("--chunk-size", type=int, default=36000,
                   help="samples per chunk fed to the pipeline; beats do not depend on it (tested), only speed")
    add_detector_option(p)
    p.add_argument("--format", choices=("csv", "wfdb"), default="csv",
                   help="beat file format: csv, or wfdb <record>.test annotations for bxb")
    p.add_argument("--peer", choices=sorted(PEERS),
                   help="also run this detector on the same records, scored and timed the same way")
    p.add_argument("--jobs", type=int, default=1, help="records processed in parallel")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = parse_record_spec(args.records)
    jobs = [(name, args.data_dir, args.chunk_size, args.peer, qrs_option(args)) for name in names]
    results = []
    with get_context("fork").Pool(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        for i, r in enumerate(pool.imap(_evaluate_job, jobs) if pool else map(_evaluate_job, jobs), 1):
            results.append(r)
            if args.out_dir is not None:
                write_beats(r, args.out_dir, args.format)
            peer = f", {args.peer} Se {pct(r.peer.se)} +P {pct(r.peer.ppv)}" if r.peer is not None else ""
            print(f"[{i}/{len(names)}] {r.name}: {len(r.beats)} beats, Se {pct(r.ec57.se)} +P {pct(r.ec57.ppv)}"
                  f"{peer}", file=sys.stderr, flush=True)
    print(format_report(results, args.peer or "peer"))
    if args.out_dir is not None:
        print(f"beats written to {args.out_dir} ({args.format}; labels N S V F Q from the int8 beat "
              "classifier, Q = unclassifiable window; delay_ms = R peak -> labelled beat)")
    return 0


def _evaluate_job(job: tuple[str, str | None, int, str | None]) -> RecordResult:
    return evaluate_record(*job)

