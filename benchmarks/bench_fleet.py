"""Many real-time feeds through fleet workers: worker CPU, per-feed cost, per-beat latency, and
whether every chunk was processed, read beside the load of the (shared) machine.

N MIT-BIH feeds (``ecg-monitor-fleet``'s replays: records cycled, a minute further in per round)
are sent at real time in 18-sample (50 ms) chunks for ``--seconds`` (after a warm-up), first
through ONE worker process on ZeroMQ, then through ``--nats-workers`` worker processes on NATS
JetStream (a local nats-server from the wheel; the sender publishes as ``ecg-monitor-fleet`` does,
each chunk kept until the stream acknowledged storing it). Over the streaming time after the warm-up it reads
from /proc the CPU of the workers, of this process (the sender), of nats-server and of every other
process on the machine, so the figures can be read honestly on a busy box. After the last chunk is
sent it waits until the workers have processed every chunk sent (or ``--drain`` seconds): a chunk
never processed is shown as dropped. Per-beat compute (chunk taken by the worker -> labelled beat
published) and end-to-end (chunk sent -> published, queueing included) latency come from the
workers' status messages.

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
from dataclasses import dataclass

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.fleet.cli import fleet_sources
from ecg_monitor.fleet.publisher import FleetPublisher
from ecg_monitor.replay.splits import ALL_RECORDS
from ecg_monitor.streamer.messages import decode
from ecg_monitor.transport.base import ChunkSender
from ecg_monitor.workers.cli import home_partitions

CHUNK = 18
WARMUP_S = 5.0
#: The workers kept up when every chunk was processed this soon after the last one was sent and
#: 99 % of beats were published this soon after their chunk was sent (queueing included).
KEPT_UP_S = 1.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Load:
    """CPU seconds at one moment: the workers, this process, a broker, the whole machine."""

    t: float
    workers: float
    me: float
    broker: float
    machine: float

    @classmethod
    def now(cls, workers: list[int], broker: int | None) -> Load:
        return cls(time.monotonic(), sum(cpu_s(p) for p in workers), cpu_s(os.getpid()),
                   cpu_s(broker) if broker else 0.0, machine_busy_s())


@dataclass
class Run:
    sent: int  # chunks sent
    unsent: int  # chunks made but not taken by the sender (its outbox full: the broker away or too slow)
    worker_cores: float  # workers' CPU while streaming after the warm-up, in cores
    worker_cpu_s: float  # workers' CPU seconds over the whole run, drain included
    load: str  # what else used the machine meanwhile
    sender_lag_s: float  # how far the sender ended behind real time
    drained_s: float | None  # seconds after the last send until every chunk was processed (None: never)
    drain_s: float  # how long it waited at most


def measure(publisher: FleetPublisher, pids: list[int], broker: int | None, statuses: dict[str, dict],
            drain_s: float) -> Run:
    """Send the fleet at real time, then wait until the workers report every chunk processed."""
    sent: list[int] = []
    t = threading.Thread(target=lambda: sent.append(publisher.run()))
    start = Load.now(pids, broker)
    t.start()
    t.join(WARMUP_S)
    a = Load.now(pids, broker)
    load_before = os.getloadavg()[0]
    t.join()
    b = Load.now(pids, broker)
    wall = b.t - a.t
    cores = {k: (getattr(b, k) - getattr(a, k)) / wall for k in ("workers", "me", "broker", "machine")}
    others = cores["machine"] - cores["workers"] - cores["me"] - cores["broker"]
    load = (f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f}; while streaming: workers "
            f"{cores['workers']:.2f}, sender {cores['me']:.2f}, "
            + (f"nats-server {cores['broker']:.2f}, " if broker else "")
            + f"other processes {max(others, 0.0):.2f} cores")
    drained = None
    while time.monotonic() - b.t < drain_s:
        if processed(statuses) >= sent[0]:
            drained = time.monotonic() - b.t
            break
        time.sleep(0.05)
    time.sleep(0.6)  # one more status round: the figures of the last chunks
    end = Load.now(pids, broker)
    return Run(sent[0], sum(p.unsent for p in publisher.patients.values()), cores["workers"], end.workers - start.workers, load,
               b.t - start.t - publisher.duration_s, drained, drain_s)


def processed(statuses: dict[str, dict]) -> int:
    """Chunks the workers processed, each once (a chunk a broker delivered again is a duplicate)."""
    return sum(s["continuity"]["chunks"] - s["continuity"]["duplicates"] for s in statuses.values())


def publisher(args: argparse.Namespace, sender: ChunkSender) -> FleetPublisher:
    records = list(ALL_RECORDS[: args.records])
    return FleetPublisher(fleet_sources(args.feeds, records, args.data_dir), sender, 1.0, CHUNK, args.seconds + WARMUP_S)


def report(name: str, n: int, run: Run, statuses: dict[str, dict], workers: int) -> None:
    lat = [s["latency_ms"] for s in statuses.values()]
    done = processed(statuses)
    processed_s = sum(s["samples"] for s in statuses.values()) / 360.0
    cont = {k: sum(s["continuity"][k] for s in statuses.values()) for k in ("gaps", "lost_chunks", "duplicates")}
    grouped = sum({s["worker"]: s["fleet"].get("grouped", 0) for s in statuses.values()}.values())  # per worker (0: older)
    beats = sum(sum(s["beats_by_class"].values()) for s in statuses.values())
    window = max(s["compute"]["n"] for s in lat)  # worker-wide windows: one per worker
    p50 = max(s["compute"]["p50"] or 0 for s in lat)
    p99 = max(s["compute"]["p99"] or 0 for s in lat)
    e2e = max(s["end_to_end"]["p99"] or 0 for s in lat)
    print(f"  {name}: {run.load}")
    if run.sender_lag_s > 0.5:
        print(f"  (the sender fell {run.sender_lag_s:.1f} s behind real time)")
    dropped = run.sent - done
    drain = (f"all processed {run.drained_s:.1f} s after the last was sent" if run.drained_s is not None
             else f"NOT all processed {run.drain_s:.0f} s after the last was sent")
    print(f"  chunks: {run.sent} sent ({run.unsent} not taken by the sender), {done} processed "
          f"({100 * done / run.sent:.1f} %), {dropped} dropped; {drain}; continuity {cont}; {grouped} taken with "
          f"the one before")
    print(f"  {len(statuses)} feeds reported, {beats} beats; end-to-end p99 {e2e:.1f} ms "
          f"(latency window {window} beats)")
    per_feed = 100 * run.worker_cpu_s / processed_s  # CPU seconds per second of one feed's signal
    print(f"  per feed: {per_feed:.2f} % of one core (worker CPU seconds per signal second processed), "
          f"so {100 / per_feed:.0f} real-time feeds per core")
    where = "worker" if workers == 1 else f"{workers} workers"
    e2e_text = f"end-to-end p99 {e2e / 1000:.2f} s"
    drained = run.drained_s if run.drained_s is not None else run.drain_s
    kept = (f"fell behind: {dropped} chunks not processed {run.drain_s:.0f} s after sending ended, {run.unsent} "
            f"not taken by the sender" if dropped or run.unsent else
            f"kept up: 100 % of chunks processed, none dropped, {e2e_text}"
            if drained <= KEPT_UP_S and e2e <= 1000 * KEPT_UP_S else
            f"fell behind: {e2e_text}, all processed {drained:.1f} s after sending ended")
    print(f"{n} feeds: {where} CPU {100 * run.worker_cores:.0f} % of one core, per-beat compute p50 {p50:.1f} ms "
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
        run = measure(publisher(args, sender), [proc.pid], None, statuses, args.drain)
    finally:
        running = False
        t.join()
        sender.close()
        proc.terminate()
        proc.wait(10)
        sub.close()
        ctx.term()
        ep.cleanup()
    report("ZeroMQ, one worker", args.feeds, run, statuses, 1)


def run_nats(args: argparse.Namespace) -> None:
    workers, partitions = args.nats_workers, args.partitions
    from ecg_monitor.transport.nats import NatsChunkSender
    from ecg_monitor.transport.natsclient import to_frames
    from ecg_monitor.transport.server import LocalNatsServer
    statuses: dict[str, dict] = {}
    with LocalNatsServer() as srv:
        homes = home_partitions(partitions, workers)
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
            run = measure(publisher(args, sender), [p.pid for p in procs], srv.proc.pid, statuses, args.drain)
        finally:
            sender.close()
            for p in procs:
                p.terminate()
                p.wait(10)
    report(f"NATS JetStream, {workers} workers", args.feeds, run, statuses, workers)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--transport", choices=("zmq", "nats", "both"), default="both")
    p.add_argument("--nats-workers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--records", type=int, default=len(ALL_RECORDS), help="replay the first N MIT-BIH records")
    p.add_argument("--drain", type=float, default=30.0, metavar="SEC",
                   help="after sending, wait this long at most for every chunk to be processed (default 30)")
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
