"""Many real-time feeds through fleet workers: worker CPU, per-feed cost, per-beat latency.

N MIT-BIH feeds (``ecg-monitor-fleet``'s replays: records cycled, a minute further in per round)
are sent at real time in 18-sample (50 ms) chunks for ``--seconds``, first through ONE worker process on ZeroMQ, then
through ``--nats-workers`` worker processes on NATS JetStream (a local nats-server from the
wheel). Worker CPU is read from /proc over the streaming time after a warm-up; per-beat compute
(chunk receipt -> labelled beat published) and end-to-end (send -> published) latency come from
the workers' status messages.

    python benchmarks/bench_fleet.py --data-dir ../shared/data/mitdb --feeds 100 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import zmq

from ecg_monitor import runtime
from ecg_monitor.fleet.cli import fleet_sources
from ecg_monitor.fleet.publisher import FleetPublisher
from ecg_monitor.replay.splits import ALL_RECORDS
from ecg_monitor.streamer.messages import decode
from ecg_monitor.transport.base import ChunkSender

CHUNK = 18
WARMUP_S = 5.0
DRAIN_S = 1.5
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(publisher: FleetPublisher, pids: list[int]) -> tuple[float, float]:
    """Run the fleet at real time, then let the workers drain for :data:`DRAIN_S`: their CPU
    (cores) while streaming after the warm-up, and their CPU seconds over the whole run."""
    done = threading.Event()
    t = threading.Thread(target=lambda: (publisher.run(), done.set()))
    start = sum(cpu_s(p) for p in pids)
    t0 = time.monotonic()
    t.start()
    done.wait(WARMUP_S)
    cpu0, t_cpu0 = sum(cpu_s(p) for p in pids), time.monotonic()
    t.join()
    cpu = (sum(cpu_s(p) for p in pids) - cpu0) / (time.monotonic() - t_cpu0)
    lag = time.monotonic() - t0 - publisher.duration_s
    if lag > 0.5:
        print(f"  (the sender fell {lag:.1f} s behind real time)")
    time.sleep(DRAIN_S)
    return cpu, sum(cpu_s(p) for p in pids) - start


def publisher(args: argparse.Namespace, sender: ChunkSender) -> FleetPublisher:
    records = list(ALL_RECORDS[: args.records])
    return FleetPublisher(fleet_sources(args.feeds, records, args.data_dir), sender, 1.0, CHUNK, args.seconds + WARMUP_S)


def report(name: str, n: int, cpu: tuple[float, float], statuses: dict[str, dict], workers: int,
           seconds: float) -> None:
    lat = [s["latency_ms"] for s in statuses.values()]
    processed_s = sum(s["samples"] for s in statuses.values()) / 360.0
    done = processed_s / (n * seconds)
    comp = max(lat, key=lambda s: s["compute"]["n"])  # worker-wide windows: one per worker
    beats = sum(sum(s["beats_by_class"].values()) for s in statuses.values())
    cont = {k: sum(s["continuity"][k] for s in statuses.values()) for k in ("gaps", "lost_chunks", "duplicates")}
    p50 = max(s["compute"]["p50"] or 0 for s in lat)
    p99 = max(s["compute"]["p99"] or 0 for s in lat)
    e2e = max(s["end_to_end"]["p99"] or 0 for s in lat)
    print(f"  {name}: {len(statuses)} feeds reported, {100 * done:.0f} % of the signal processed when sending "
          f"ended (+{DRAIN_S} s), {beats} beats, continuity {cont}, end-to-end p99 {e2e:.1f} ms "
          f"(window {comp['compute']['n']} beats)")
    per_feed = 100 * cpu[1] / processed_s  # CPU seconds per second of one feed's signal
    print(f"  per feed: {per_feed:.2f} % of one core (worker CPU seconds per signal second processed), "
          f"so {100 / per_feed:.0f} real-time feeds per core")
    where = "worker" if workers == 1 else f"{workers} workers"
    kept = "kept up" if done >= 0.99 else f"fell behind: {100 * done:.0f} % processed"
    print(f"{n} feeds: {where} CPU {100 * cpu[0]:.0f} % of one core, per-beat compute p50 {p50:.1f} ms "
          f"p99 {p99:.1f} ms ({kept})")


def run_zmq(args: argparse.Namespace) -> None:
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
        cpu = measure(publisher(args, sender), [proc.pid])
    finally:
        running = False
        t.join()
        sender.close()
        proc.terminate()
        proc.wait(10)
        sub.close()
        ctx.term()
        ep.cleanup()
    report("ZeroMQ, one worker", args.feeds, cpu, statuses, 1, args.seconds + WARMUP_S)


def run_nats(args: argparse.Namespace) -> None:
    workers, partitions = args.nats_workers, args.partitions
    from ecg_monitor.transport.nats import NatsChunkSender
    from ecg_monitor.transport.natsclient import to_frames
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
            cpu = measure(publisher(args, sender), [p.pid for p in procs])
        finally:
            sender.close()
            for p in procs:
                p.terminate()
                p.wait(10)
    report(f"NATS JetStream, {workers} workers", args.feeds, cpu, statuses, workers, args.seconds + WARMUP_S)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--transport", choices=("zmq", "nats", "both"), default="both")
    p.add_argument("--nats-workers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--records", type=int, default=len(ALL_RECORDS), help="replay the first N MIT-BIH records")
    args = p.parse_args()
    print(f"{args.feeds} feeds, {args.seconds:.0f} s at real time, {CHUNK}-sample chunks "
          f"(+{WARMUP_S:.0f} s warm-up), on {os.cpu_count()} CPUs")
    if args.transport in ("zmq", "both"):
        run_zmq(args)
    if args.transport in ("nats", "both"):
        run_nats(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
