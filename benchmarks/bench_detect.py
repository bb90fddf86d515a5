"""Detection speed: our online Pan-Tompkins against wfdb's xqrs on the same records, same run.

Prints samples/s and x real time for each, and the speed ratio. Our detector is fed in chunks
(as the worker is); xqrs gets the whole record at once (its only mode). ``--stages`` also splits
the whole pipeline's time (chunks of 36000, as ``ecg-eval detect``) into detector, beat features
and classifier, to show where the time goes.

    python benchmarks/bench_detect.py --data-dir ../shared/data/mitdb --records 100,208,203 --stages
"""

from __future__ import annotations

import argparse
import time

from wfdb import processing

from ecg_monitor.detector.pantompkins import PanTompkinsDetector
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.replay import iter_chunks, parse_record_spec, read_record


def time_ours(signal, fs: float, chunk: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    det = PanTompkinsDetector(fs)
    n = sum(len(det.update(c)) for c in iter_chunks(signal, chunk)) + len(det.flush())
    return time.perf_counter() - t0, n


def time_stages(signal, fs: float, chunk: int) -> tuple[float, float, float]:
    """Seconds in the pipeline's detector, beat features and classifier over one record."""
    pipe = DetectorPipeline(fs)
    spent = [0.0, 0.0, 0.0]
    for c in iter_chunks(signal, chunk):
        t0 = time.perf_counter()
        beats = pipe.detector.update(c)
        t1 = time.perf_counter()
        ready = pipe.features.update(c, pipe.detector.last_display, beats)
        t2 = time.perf_counter()
        pipe.classifier.classify(ready)
        t3 = time.perf_counter()
        spent = [spent[0] + t1 - t0, spent[1] + t2 - t1, spent[2] + t3 - t2]
    return spent[0], spent[1], spent[2]


def time_xqrs(signal, fs: float) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = len(processing.xqrs_detect(signal, fs=fs, verbose=False))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--records", default="100,208,203")
    ap.add_argument("--chunk-sizes", default="36,360,3600")
    ap.add_argument("--stages", action="store_true", help="also split the whole pipeline's time by stage")
    args = ap.parse_args()
    chunks = [int(c) for c in args.chunk_sizes.split(",")]
    totals = {c: 0.0 for c in chunks}
    xqrs_total, samples, fs = 0.0, 0, 360.0
    print(f"{'record':>7} {'xqrs s':>8} " + " ".join(f"{'ours@' + str(c) + ' s':>12}" for c in chunks))
    for name in parse_record_spec(args.records):
        rec = read_record(name, args.data_dir)
        fs, samples = rec.fs, samples + len(rec.signal)
        tx, _ = time_xqrs(rec.signal, rec.fs)
        xqrs_total += tx
        row = []
        for c in chunks:
            t, _ = time_ours(rec.signal, rec.fs, c)
            totals[c] += t
            row.append(f"{t:12.3f}")
        print(f"{name:>7} {tx:8.3f} " + " ".join(row))
    rate = samples / xqrs_total
    print(f"\nxqrs: {rate:,.0f} samples/s = {rate / fs:,.0f} x real time")
    for c in chunks:
        rate = samples / totals[c]
        print(f"ours, chunks of {c:>5}: {rate:,.0f} samples/s = {rate / fs:,.0f} x real time, "
              f"{xqrs_total / totals[c]:.1f} x faster than xqrs")
    if args.stages:
        print(f"\n{'record':>7} {'detector s':>11} {'features s':>11} {'classifier s':>13}")
        for name in parse_record_spec(args.records):
            rec = read_record(name, args.data_dir)
            print(f"{name:>7} " + " ".join(f"{t:{w}.3f}" for t, w in zip(time_stages(rec.signal, rec.fs, 36000), (11, 11, 13))))


if __name__ == "__main__":
    main()
