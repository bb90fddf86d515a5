"""``ecg-monitor-fleet``: publish N patients at real time to fleet workers (ZeroMQ or NATS).

    ecg-monitor-fleet --patients 16 --replay 100,208,213 --data-dir DIR --transport nats --nats-url nats://station:4222
    ecg-monitor-fleet --patients 32 --connect tcp://worker-host:5555        # synthetic patients, ZeroMQ
    ecg-monitor-fleet --patients 16 --mqtt station:1883                     # as wearables: MQTT into nats-server

Patients are ``bed01``, ``bed02``...: with ``--replay`` they cycle through the records (each
repeat starts a minute further in); otherwise each is a synthetic device with its own seed.
"""

from __future__ import annotations

import argparse
import math
import sys

from ecg_monitor.app import runtime
from ecg_monitor.fleet.publisher import FleetPublisher
from ecg_monitor.replay.records import RecordError, read_record
from ecg_monitor.replay.source import ReplaySource
from ecg_monitor.streamer.source import Source
from ecg_monitor.streamer.sources import parse_speed
from ecg_monitor.streamer.synthetic import SyntheticSource
from ecg_monitor.transport.base import ChunkSender
from ecg_monitor.workers.cli import add_transport_arguments


def fleet_sources(n: int, records: list[str], data_dir: str | None, stagger_s: float = 0.0,
                  synthetic: int = 0) -> dict[str, Source]:
    """``bed01``..: replays cycling through ``records`` (a minute further in per round), else synthetic
    (patient i starts ``i * stagger_s`` into the scenario, so a ward shows different rhythms); the
    last ``synthetic`` beds are synthetic even when records are given (a mixed ward)."""
    loaded = {name: read_record(name, data_dir) for name in records}
    out: dict[str, Source] = {}
    for i in range(n):
        patient = f"bed{i + 1:02d}"
        if loaded and i < n - synthetic:
            rec = loaded[records[i % len(records)]]
            out[patient] = ReplaySource(rec, start_s=(60.0 * (i // len(records))) % max(rec.duration_s - 60.0, 1.0))
        else:
            out[patient] = SyntheticSource(seed=i, start_s=i * stagger_s)
    return out


def open_sender(args: argparse.Namespace, stop: runtime.StopFlag, fs: float) -> ChunkSender:
    if args.mqtt:
        from ecg_monitor.transport.mqtt import MqttChunkSender, parse_host_port
        return MqttChunkSender(*parse_host_port(args.mqtt))
    if args.transport == "nats":
        from ecg_monitor.transport.nats import NatsChunkSender
        return NatsChunkSender(args.nats_url, args.partitions, max(1, math.ceil(args.outbox * fs / args.chunk)))
    from ecg_monitor.transport.zeromq import ZmqChunkSender
    return ZmqChunkSender(args.connect, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecg-monitor-fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_transport_arguments(parser)
    parser.add_argument("--connect", default="tcp://127.0.0.1:5555", metavar="ENDPOINT", help="zmq: the worker")
    parser.add_argument("--mqtt", metavar="HOST:PORT",
                        help="publish as wearables do, MQTT 3.1.1 into nats-server's MQTT listener (not --transport)")
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--replay", default="", metavar="REC,REC", help="records to replay (default: synthetic)")
    parser.add_argument("--data-dir")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="with --replay: the last N patients are synthetic (default 0)")
    parser.add_argument("--stagger", type=float, default=0.0, metavar="SEC",
                        help="synthetic patient i starts i*SEC into its scenario (default 0)")
    parser.add_argument("--speed", type=parse_speed, default=1.0)
    parser.add_argument("--chunk", type=int, default=18, metavar="N")
    parser.add_argument("--duration", type=float, metavar="SEC")
    parser.add_argument("--outbox", type=float, default=60.0, metavar="SEC",
                        help="nats: signal kept per patient until the server confirms it stored it; beyond it, "
                             "while the server is away, new chunks are dropped and counted (default 60)")
    args = parser.parse_args(argv)
    stop = runtime.StopFlag(child=False, name="ecg-fleet")
    try:
        sources = fleet_sources(args.patients, [r for r in args.replay.split(",") if r], args.data_dir, args.stagger,
                                args.synthetic)
        sender = open_sender(args, stop, next(iter(sources.values())).fs)
    except (RecordError, RuntimeError, ValueError) as exc:
        print(f"ecg-monitor-fleet: {exc}", file=sys.stderr)
        return 2
    publisher = FleetPublisher(sources, sender, args.speed, args.chunk, args.duration, stop, say=say)
    try:
        publisher.run()
    finally:
        sender.close()
    for patient, n in sender.abandoned().items():  # never confirmed stored: counted, not lost silently
        publisher.patients[patient].unsent += n
    say(publisher.line())
    return 0


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
