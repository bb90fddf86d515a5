"""Beat classifier speed: per-beat inference time of the packaged int8 model (and the fp32 one).

Each beat of the records is classified on its own (batch of one, as when a single beat becomes
ready in a chunk), timing ``BeatClassifier.classify`` - stacking the features, the onnxruntime
call and labelling - and prints mean, median, p99 and max; then batches of 8, the feature
extraction's CPU time per beat, and the whole pipeline's speed with and without the classifier.

    python benchmarks/bench_classifier.py --data-dir ../shared/data/mitdb --records 208,119
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import onnxruntime

from ecg_monitor.detector.classifier import (
    SHIPPED_FP32_MODEL,
    SHIPPED_METADATA,
    SHIPPED_MODEL,
    BeatClassifier,
)
from ecg_monitor.detector.features import extract_features
from ecg_monitor.detector.pipeline import run_signal
from ecg_monitor.replay import parse_record_spec, read_record


def pipeline_seconds(signal: np.ndarray, fs: float, classifier) -> tuple[float, list, np.ndarray]:
    """Stream a record through the pipeline; seconds, beats and display-band trace."""
    t0 = time.perf_counter()
    beats, filtered = run_signal(signal, fs, classifier)
    return time.perf_counter() - t0, beats, filtered


def per_beat_us(classifier: BeatClassifier, ready: list, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and CPU (this thread) microseconds per beat for each call.

    onnxruntime runs a one-thread session on the calling thread, so the CPU time is the work
    itself, while the wall time also holds any wait for a core another process was using.
    """
    for i in range(min(50, len(ready))):  # warm-up
        classifier.classify(ready[i : i + batch])
    wall, cpu = [], []
    for i in range(0, len(ready) - batch + 1, batch):
        t0, c0 = time.perf_counter(), time.thread_time()
        classifier.classify(ready[i : i + batch])
        wall.append((time.perf_counter() - t0) / batch)
        cpu.append((time.thread_time() - c0) / batch)
    return np.array(wall) * 1e6, np.array(cpu) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--records", default="208,119")
    args = ap.parse_args()
    int8 = BeatClassifier(SHIPPED_MODEL, SHIPPED_METADATA)
    fp32 = BeatClassifier(SHIPPED_FP32_MODEL, SHIPPED_METADATA)
    ready, plain_s, full_s, feature_s, n_beats, samples, fs = [], 0.0, 0.0, 0.0, 0, 0, 360.0
    for name in parse_record_spec(args.records):
        rec = read_record(name, args.data_dir)
        fs, samples = rec.fs, samples + len(rec.signal)
        t, beats, filtered = pipeline_seconds(rec.signal, rec.fs, None)
        plain_s += t
        full_s += pipeline_seconds(rec.signal, rec.fs, int8)[0]
        c0 = time.thread_time()
        feats = extract_features(rec.signal, filtered, beats, int8.spec)
        feature_s, n_beats = feature_s + time.thread_time() - c0, n_beats + len(feats)
        ready += [r for r in feats if r[1].usable]
    print(f"{platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, 1 thread; "
          f"{len(ready)} beats of {args.records}")
    print(f"model sizes: int8 {SHIPPED_MODEL.stat().st_size:,} bytes, fp32 {SHIPPED_FP32_MODEL.stat().st_size:,} bytes")
    print(f"{'model':>5} {'batch':>5} {'clock':>5} {'mean us':>8} {'median':>8} {'p99':>8} {'max':>8}  (per beat)")
    for label, clf in (("int8", int8), ("fp32", fp32)):
        for batch in (1, 8):
            for clock, us in zip(("wall", "cpu"), per_beat_us(clf, ready, batch)):
                print(f"{label:>5} {batch:5d} {clock:>5} {us.mean():8.1f} {np.median(us):8.1f} "
                      f"{np.percentile(us, 99):8.1f} {us.max():8.1f}")
    print(f"features: {feature_s / n_beats * 1e6:.1f} us CPU per beat ({n_beats} beats)")
    print(f"load average while measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    for label, secs in (("detector only", plain_s), ("detector + int8 classifier", full_s)):
        print(f"pipeline, {label}: {samples / secs / fs:,.0f} x real time")


if __name__ == "__main__":
    main()
