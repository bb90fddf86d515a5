"""Many real-time feeds through fleet workers: worker CPU, per-feed cost, per-beat latency.

N MIT-BIH feeds (records cycled, each patient at its own offset) are sent at real time in
18-sample (50 ms) chunks for ``--seconds``, first through ONE worker process on ZeroMQ, then
through ``--nats-workers`` worker processes on NATS JetStream (a local nats-server from the
wheel). Worker CPU is read from /proc over the streaming time after a warm-up; per-beat compute
(chunk receipt -> labelled beat published) and end-to-end (send -> published) latency come from
the workers' status messages.

    python benchmarks/bench_fleet.py --data-dir ../shared/data/mitdb --feeds 100 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import zmq

from ecg_monitor import runtime
from ecg_monitor.replay.records import read_record
from ecg_monitor.replay.splits import ALL_RECORDS
from ecg_monitor.streamer.messages import decode, encode
from ecg_monitor.transport.base import ChunkSender

CHUNK = 18
WARMUP_S = 5.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def signals(data_dir: str, feeds: int, seconds: float) -> dict[str, np.ndarray]:
    need = int((seconds + WARMUP_S) * 360)
    records = {name: read_record(name, data_dir).signal for name in ALL_RECORDS[: min(feeds, len(ALL_RECORDS))]}
    names = list(records)
    out = {}
    for i in range(feeds):
        x = records[names[i % len(names)]]
        start = (i // len(names)) * 360 * 60 % max(len(x) - need, 1)
        out[f"p{i:03d}"] = x[start : start + need]
    return out


def stream(sender: ChunkSender, feeds: dict[str, np.ndarray], pids: list[int]) -> float:
    """Send every feed at real time; return the workers' CPU seconds after the warm-up, per second."""
    n = min(len(x) for x in feeds.values()) // CHUNK
    t0 = time.monotonic()
    cpu0 = t_cpu0 = None
    for k in range(n):
        due = t0 + (k + 1) * CHUNK / 360.0
        time.sleep(max(0.0, due - time.monotonic()))
        if cpu0 is None and time.monotonic() - t0 >= WARMUP_S:
            cpu0, t_cpu0 = sum(cpu_s(p) for p in pids), time.monotonic()
        for p, x in feeds.items():
            sender.send(p, encode("chunk", {"source": p, "seq": k, "first_sample": k * CHUNK, "fs": 360.0,
                                            "t_source": time.monotonic(), "patient": p}, x[k * CHUNK : (k + 1) * CHUNK]))
    lag = time.monotonic() - (t0 + n * CHUNK / 360.0)
    if lag > 1.0:
        print(f"  (the sender fell {lag:.1f} s behind real time)")
    return (sum(cpu_s(p) for p in pids) - cpu0) / (time.monotonic() - t_cpu0)


def report(name: str, n: int, cpu: float, statuses: dict[str, dict], workers: int) -> None:
    lat = [s["latency_ms"] for s in statuses.values()]
    comp = max(lat, key=lambda s: s["compute"]["n"])  # worker-wide windows: one per worker
    beats = sum(sum(s["beats_by_class"].values()) for s in statuses.values())
    cont = {k: sum(s["continuity"][k] for s in statuses.values()) for k in ("gaps", "lost_chunks", "duplicates")}
    p50 = max(s["compute"]["p50"] or 0 for s in lat)
    p99 = max(s["compute"]["p99"] or 0 for s in lat)
    e2e = max(s["end_to_end"]["p99"] or 0 for s in lat)
    print(f"  {name}: {len(statuses)} feeds reported, {beats} beats, continuity {cont}, "
          f"end-to-end p99 {e2e:.1f} ms (window {comp['compute']['n']} beats)")
    print(f"  per feed: {100 * cpu / n:.2f} % of one core")
    where = "worker" if workers == 1 else f"{workers} workers"
    print(f"{n} feeds: {where} CPU {100 * cpu:.0f} % of one core, per-beat compute p50 {p50:.1f} ms p99 {p99:.1f} ms")


def run_zmq(feeds: dict[str, np.ndarray]) -> None:
    from ecg_monitor.transport.zeromq import ZmqChunkSender
    folder = tempfile.mkdtemp(prefix="ecg-monitor-bench-")
    ep = runtime.Endpoints(f"ipc://{folder}/chunks", f"ipc://{folder}/events")
    proc = subprocess.Popen([sys.executable, "-m", "ecg_monitor.workers.cli", "--chunks", ep.chunks,
                             "--events", ep.events], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    ctx = zmq.Context()
    sub = runtime.socket(ctx, zmq.SUB, hwm=100000)
    sub.subscribe(b"status")
    sub.connect(ep.events)
    statuses: dict[str, dict] = {}
    running = True

    def listen() -> None:
        while running:
            if sub.poll(200):
                m = decode(sub.recv_multipart())
                statuses[m["patient"]] = m.header

    t = threading.Thread(target=listen)
    t.start()
    sender = ZmqChunkSender(ep.chunks, hwm=100000)
    try:
        cpu = stream(sender, feeds, [proc.pid])
        time.sleep(1.5)
    finally:
        running = False
        t.join()
        sender.close()
        proc.terminate()
        proc.wait(10)
        sub.close()
        ctx.term()
        ep.cleanup()
    report("ZeroMQ, one worker", len(feeds), cpu, statuses, 1)


def run_nats(feeds: dict[str, np.ndarray], workers: int, partitions: int) -> None:
    from ecg_monitor.transport.nats import NatsChunkSender, to_frames
    from ecg_monitor.transport.server import LocalNatsServer
    statuses: dict[str, dict] = {}
    with LocalNatsServer() as srv:
        homes = [",".join(str(k) for k in range(partitions) if k % workers == w) for w in range(workers)]
        procs = [subprocess.Popen([sys.executable, "-m", "ecg_monitor.workers.cli", "--transport", "nats",
                                   "--nats-url", srv.url, "--partitions", str(partitions), "--home", h],
                                  stdout=subprocess.PIPE, text=True) for h in homes]
        for p in procs:
            p.stdout.readline()
        sender = NatsChunkSender(srv.url, partitions)

        async def on_status(msg) -> None:
            m = decode(to_frames(msg.headers, msg.data))
            statuses[m["patient"]] = m.header

        sender.client.call(sender.client.nc.subscribe("ecg.*.status", cb=on_status))
        try:
            cpu = stream(sender, feeds, [p.pid for p in procs])
            time.sleep(1.5)
        finally:
            sender.close()
            for p in procs:
                p.terminate()
                p.wait(10)
    report(f"NATS JetStream, {workers} workers", len(feeds), cpu, statuses, workers)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--transport", choices=("zmq", "nats", "both"), default="both")
    p.add_argument("--nats-workers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=8)
    args = p.parse_args()
    feeds = signals(args.data_dir, args.feeds, args.seconds)
    print(f"{args.feeds} feeds, {args.seconds:.0f} s at real time, {CHUNK}-sample chunks "
          f"(+{WARMUP_S:.0f} s warm-up), on {os.cpu_count()} CPUs")
    if args.transport in ("zmq", "both"):
        run_zmq(feeds)
    if args.transport in ("nats", "both"):
        run_nats(feeds, args.nats_workers, args.partitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
