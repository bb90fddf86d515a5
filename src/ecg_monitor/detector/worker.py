"""The detector worker process: chunks in, beats/trace/alarms/status out.

On ZeroMQ (the default) it binds both endpoints, so streamers (local or on another machine)
connect to ``chunks`` and any number of subscribers (live view, alarm log, headless console)
connect to ``events``. The PUB socket never blocks: a subscriber that falls behind loses its own
messages at its high-water mark, the worker and the other subscribers go on. Message schema:
``streamer.messages``. The one-patient monitor's messages name no patient and go to one feed;
messages that name a patient get a feed each (``ecg_monitor.workers.fleet``).

Standalone::

    python -m ecg_monitor.detector.worker --chunks tcp://0.0.0.0:5555 --events tcp://0.0.0.0:5556
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from ecg_monitor.app import runtime
from ecg_monitor.transport.zeromq import ZmqWorkerLink
from ecg_monitor.workers.fleet import FleetWorker


@dataclass(frozen=True)
class WorkerConfig:
    chunks: str  # bound PULL endpoint
    events: str  # bound PUB endpoint
    incarnation: int = 0  # 0 for the first worker, +1 per restart by the supervisor
    status_every_s: float = 0.5
    max_fill_s: float = 30.0  # longer gaps restart the stream instead of being NaN-filled
    settle_s: float = 0.0  # after binding, give subscribers this long to (re)connect


def run(cfg: WorkerConfig, ready=None, child: bool = True) -> int:
    """Entry point of the worker process (also used by the monitor's supervisor)."""
    stop = runtime.StopFlag(child=child, name="ecg-worker")
    link = ZmqWorkerLink(cfg.chunks, cfg.events)
    try:
        worker = FleetWorker(link, stop, cfg.incarnation, cfg.max_fill_s, cfg.status_every_s)
        if cfg.settle_s > 0:
            time.sleep(cfg.settle_s)
        return worker.run(ready)
    finally:
        link.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg_monitor.detector.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", required=True, metavar="ENDPOINT", help="bind: chunks from streamers")
    parser.add_argument("--events", required=True, metavar="ENDPOINT", help="bind: results for subscribers")
    args = parser.parse_args(argv)
    return run(WorkerConfig(args.chunks, args.events), child=False)


if __name__ == "__main__":
    sys.exit(main())
