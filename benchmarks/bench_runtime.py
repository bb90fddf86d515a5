"""Streaming runtime figures: per-beat latency at real-time pace, throughput at --speed max.

Runs the real monitor (streamer -> ZeroMQ -> worker -> console, all separate processes) twice
on one record and prints what its ``--stats-json`` says:

* ``--speed 1`` for ``--seconds`` of signal: compute latency (receipt of the chunk that completed
  a beat -> labelled beat published) and end-to-end latency (the chunk's source timestamp ->
  published), p50/p95/p99/max;
* ``--speed max`` over the whole record: samples/s and x real time through the whole chain.

    python benchmarks/bench_runtime.py --data-dir ../shared/data/mitdb --record 208 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run_monitor(record: str, data_dir: str | None, speed: str, seconds: float | None, chunk: int,
                extra: tuple[str, ...] = (), tmp: Path | None = None) -> dict:
    """One headless monitor run (``extra`` appended to its command line) -> its ``--stats-json``;
    files go to ``tmp``, a fresh temporary folder when None."""
    if tmp is None:
        with tempfile.TemporaryDirectory() as fresh:
            return run_monitor(record, data_dir, speed, seconds, chunk, extra, Path(fresh))
    stats = tmp / "stats.json"
    cmd = [sys.executable, "-m", "ecg_monitor.app.cli", "--replay", record, "--headless", "--speed", speed,
           "--chunk", str(chunk), "--stats-json", str(stats), "--alarms-csv", str(tmp / "alarms.csv"),
           "--status-every", "1000", *extra]
    if seconds is not None:
        cmd += ["--duration", str(seconds)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(stats.read_text())


def latency_line(name: str, s: dict) -> str:
    return (f"  {name:12s} p50 {s['p50']:7.2f} ms  p95 {s['p95']:7.2f} ms  p99 {s['p99']:7.2f} ms  "
            f"max {s['max']:7.2f} ms  ({s['n']} beats)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--record", default="208")
    p.add_argument("--seconds", type=float, default=60.0, help="signal streamed at --speed 1")
    p.add_argument("--chunk", type=int, default=18, help="samples per message (18 = 50 ms)")
    args = p.parse_args()

    live = run_monitor(args.record, args.data_dir, "1", args.seconds, args.chunk)
    lat = live["latency_ms"]
    print(f"record {args.record}, {live['signal_s']:.0f} s at --speed 1, {args.chunk}-sample chunks:")
    print(latency_line("compute", lat["compute"]))
    print(latency_line("end-to-end", lat["end_to_end"]))
    print(f"  continuity {live['continuity']}")

    fast = run_monitor(args.record, args.data_dir, "max", None, args.chunk)
    print(f"record {args.record}, whole ({fast['signal_s']:.0f} s) at --speed max:")
    print(f"  {fast['samples_per_s']:,} samples/s = {fast['x_realtime']} x real time through streamer -> worker "
          f"-> console ({fast['stream_wall_s']:.1f} s wall, worker busy {fast['busy_s']:.1f} s); "
          f"beats {sum(fast['beats_by_class'].values())} published, {fast['beats_received']} received")
    return 0


if __name__ == "__main__":
    sys.exit(main())
