"""``ecg-monitor-worker``: one fleet worker process on ZeroMQ or NATS JetStream.

    ecg-monitor-worker --transport zmq --chunks tcp://0.0.0.0:5555 --events tcp://0.0.0.0:5556
    ecg-monitor-worker --transport nats --nats-url nats://station:4222 --partitions 8 --home 0,2,4,6

On NATS every worker is hot standby for the partitions that are not its home ones.
"""

from __future__ import annotations

import argparse
import sys

from ecg_monitor.app import runtime
from ecg_monitor.detector.classifier import shipped_classifier
from ecg_monitor.transport.base import WorkerLink
from ecg_monitor.workers.fleet import FleetWorker

DEFAULT_PARTITIONS = 8
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def home_partitions(partitions: int, workers: int) -> list[str]:
    """``--home`` for each of ``workers`` workers: the partitions dealt out in turn."""
    return [",".join(str(k) for k in range(w, partitions, workers)) for w in range(workers)]


def add_transport_arguments(parser: argparse.ArgumentParser) -> None:
    """``--transport`` and its options, shared by workers and fleet sources."""
    parser.add_argument("--transport", choices=("zmq", "nats"), default="zmq")
    parser.add_argument("--nats-url", default=DEFAULT_NATS_URL, metavar="URL")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="NATS partitions (default 8)")


def open_link(args: argparse.Namespace) -> WorkerLink:
    if args.transport == "nats":
        from ecg_monitor.transport.nats import NatsWorkerLink
        home = {int(k) for k in args.home.split(",") if k} if args.home else set(range(args.partitions))
        return NatsWorkerLink(args.nats_url, args.partitions, home)
    from ecg_monitor.transport.zeromq import ZmqWorkerLink
    return ZmqWorkerLink(args.chunks, args.events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecg-monitor-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_transport_arguments(parser)
    parser.add_argument("--chunks", default="tcp://0.0.0.0:5555", metavar="ENDPOINT", help="zmq: bind, chunks")
    parser.add_argument("--events", default="tcp://0.0.0.0:5556", metavar="ENDPOINT", help="zmq: bind, results")
    parser.add_argument("--home", default="", metavar="K,K", help="nats: home partitions (default all)")
    parser.add_argument("--patients", default="", metavar="ID,ID", help="accept only these patient ids")
    parser.add_argument("--status-every", type=float, default=0.5, metavar="SEC")
    args = parser.parse_args(argv)
    stop = runtime.StopFlag(child=False, name="ecg-fleet-worker")
    shipped_classifier()  # loaded before pulling: a standby's delay counts from a worker that can work
    try:
        link = open_link(args)
    except RuntimeError as exc:  # NatsUnavailable: one line naming the URL
        print(f"ecg-monitor-worker: {exc}", file=sys.stderr)
        return 2
    roster = frozenset(p for p in args.patients.split(",") if p) or None
    print(f"ecg-monitor-worker: ready on {args.transport}", flush=True)
    try:
        return FleetWorker(link, stop, status_every_s=args.status_every, roster=roster, single=False).run()
    finally:
        link.close()


if __name__ == "__main__":
    sys.exit(main())
