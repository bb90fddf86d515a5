"""Where a fleet worker's time goes at live chunk sizes: cProfile over N feeds, in one process.

The chunk and source messages ``ecg-monitor-fleet`` would send (N MIT-BIH replays, 18-sample
chunks, states once a second) are built first; then one :class:`FleetWorker` takes them tick by
tick (one chunk per feed, as at real time) with status every 0.5 s of signal, publishing through
a real ZeroMQ PUB socket, under cProfile. It prints the worker's CPU per second of one feed's
signal and the functions that took the most time.

    python benchmarks/profile_fleet.py --data-dir ../shared/data/mitdb --feeds 100 --seconds 20
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import sys
import tempfile
import time

import zmq

from ecg_monitor import PIPELINE_FS
from ecg_monitor.app import runtime
from ecg_monitor.fleet.cli import fleet_sources
from ecg_monitor.fleet.publisher import FleetPublisher
from ecg_monitor.replay.splits import ALL_RECORDS
from ecg_monitor.transport.base import ChunkSender, Delivery, WorkerLink
from ecg_monitor.workers.fleet import FleetWorker

CHUNK = 18
STATUS_EVERY_S = 0.5


class Recorder(ChunkSender):
    """Keeps every message a fleet publisher sends, in order."""

    def __init__(self) -> None:
        self.frames: list[list[bytes]] = []

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        self.frames.append(frames)
        return True

    def close(self) -> None:
        pass


class PubLink(WorkerLink):
    """Results out through a real ZeroMQ PUB socket; input is handed over by the driver."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.pub = runtime.socket(self.ctx, zmq.PUB, hwm=20000)
        self.pub.bind(endpoint)

    def receive(self, timeout_s: float) -> list[Delivery]:
        return []

    def publish(self, patient: str | None, kind: str, frames: list[bytes], msg_id: str | None = None) -> None:
        self.pub.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        self.pub.close()
        self.ctx.term()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--top", type=int, default=25, help="functions to list")
    p.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    args = p.parse_args()
    rec = Recorder()
    FleetPublisher(fleet_sources(args.feeds, list(ALL_RECORDS), args.data_dir), rec, math.inf, CHUNK,
                   args.seconds).run()
    folder = tempfile.mkdtemp(prefix="ecg-monitor-profile-")
    link = PubLink(f"ipc://{folder}/events")
    worker = FleetWorker(link, single=False)
    per_status = int(round(STATUS_EVERY_S * PIPELINE_FS / CHUNK)) * args.feeds  # messages per status round
    batches = [rec.frames[i:i + per_status] for i in range(0, len(rec.frames), per_status)]
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    for batch in batches:
        for i in range(0, len(batch), args.feeds):  # one tick: a message per feed, as at real time
            worker.handle_all([Delivery(f) for f in batch[i:i + args.feeds]])
        worker.publish_status()
    prof.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    link.close()
    signal_s = args.feeds * args.seconds
    print(f"{args.feeds} feeds x {args.seconds:.0f} s, {len(rec.frames)} messages: {cpu:.2f} s CPU "
          f"({wall:.2f} s wall) under cProfile, {100 * cpu / signal_s:.2f} % of one core per feed")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:20000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
