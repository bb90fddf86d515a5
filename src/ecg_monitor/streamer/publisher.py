"""The streamer process: reads a :class:`Source` and pushes its chunks to the detector worker.

Paced sources (replay, synthetic) are sent at ``speed`` times real time, measured from the
first chunk so that a late send is caught up rather than drifting; ``speed = inf`` sends as
fast as the worker takes them (ZeroMQ PUSH blocks at the high-water mark, so nothing is lost).
Live devices (``Source.realtime``) are sent as they arrive. Every state change of the source,
and its counters once a second, go to the worker as ``source`` messages; the last one says
``ended`` and is repeated while the streamer stays connected after the end (ZeroMQ may drop what
a worker has not taken yet when the sending process exits).

Standalone, to feed a worker on another machine::

    python -m ecg_monitor.streamer.publisher --replay 208 --connect tcp://worker-host:5555
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

from ecg_monitor.app import runtime
from ecg_monitor.replay.records import RecordError
from ecg_monitor.streamer.messages import encode
from ecg_monitor.streamer.source import Chunk, Source, SourceError, SourceState
from ecg_monitor.streamer.sources import add_source_arguments, open_source
from ecg_monitor.transport.zeromq import ZmqChunkSender

STATE_EVERY_S = 1.0
SEND_HWM = 2000  # chunks queued while the worker is busy or restarting (100 s at 50 ms)


@dataclass(frozen=True)
class PublisherConfig:
    endpoint: str  # the worker's chunk endpoint, connected to
    speed: float = 1.0  # x real time; math.inf = as fast as possible
    chunk: int = 18  # samples per message
    duration_s: float | None = None  # stop after this much signal
    end_hold_s: float | None = None  # after the end, stay connected this long (None: until stopped)


class Publisher:
    """Sends one source's chunks and state messages over a PUSH socket."""

    def __init__(self, source: Source, cfg: PublisherConfig, stop: runtime.StopFlag) -> None:
        self.source, self.cfg, self.stop = source, cfg, stop
        self.sender = ZmqChunkSender(cfg.endpoint, stop, hwm=SEND_HWM)
        self.seq = 0
        self.next_sample = 0
        # How the source is played, for the live view's source picker: a device sets its own pace.
        self.speed = "device" if source.realtime else "max" if math.isinf(cfg.speed) else f"{cfg.speed:g}"

    def _send(self, frames: list[bytes]) -> bool:
        """Send, waiting while the worker's queue is full, unless asked to stop."""
        return self.sender.send(None, frames)

    def _state(self, state: SourceState, detail: str = "") -> None:
        s = self.source
        self._send(encode("source", {
            "source": s.source_id, "state": state.value, "fs": s.fs, "next_sample": self.next_sample,
            "counters": {"chunks": self.seq, "speed": self.speed, **s.counters()}, "detail": detail,
        }))

    def _send_chunk(self, chunk: Chunk, due: float | None) -> bool:
        """Send one chunk, first waiting until ``due`` (paced sources; also its timestamp)."""
        if due is not None:
            time.sleep(max(due - time.monotonic(), 0.0))
        stamp = chunk.timestamp if chunk.timestamp is not None else due if due is not None else time.monotonic()
        header = {"source": self.source.source_id, "seq": self.seq, "first_sample": chunk.first_sample,
                  "fs": self.source.fs, "t_source": stamp}
        if not self._send(encode("chunk", header, chunk.samples)):
            return False
        self.seq += 1
        self.next_sample = chunk.first_sample + chunk.samples.size
        return True

    def run(self) -> int:
        s, cfg = self.source, self.cfg
        try:
            s.start()
        except SourceError as exc:
            self._state(SourceState.ENDED, f"could not start: {exc}")
            print(f"ecg-monitor streamer: {exc}", file=sys.stderr)
            return 1
        limit = None if cfg.duration_s is None else int(round(cfg.duration_s * s.fs))
        paced = not s.realtime and math.isfinite(cfg.speed)
        state, sent, t0, last_state = s.state, 0, time.monotonic(), 0.0
        self._state(state)
        while not self.stop and (limit is None or sent < limit):
            want = cfg.chunk if limit is None else min(cfg.chunk, limit - sent)
            chunk = s.read(want, timeout=0.1)
            if chunk is not None and chunk.samples.size:
                if not self._send_chunk(chunk, t0 + (sent + chunk.samples.size) / (s.fs * cfg.speed)
                                        if paced else None):
                    break
                sent += chunk.samples.size
            now = time.monotonic()
            if s.state is not state or now - last_state >= STATE_EVERY_S:
                state, last_state = s.state, now
                if state is SourceState.ENDED:
                    break
                self._state(state)
        detail = "stopped" if self.stop else ("duration reached" if limit is not None and sent >= limit
                                              else "end of source")
        s.stop()
        self._state(SourceState.ENDED, detail)
        self._hold(detail)
        return 0

    def _hold(self, detail: str) -> None:
        """Keep the socket open after the end, repeating it once a second: a worker far behind
        (``--speed max``) still gets every queued chunk, and a restarted one learns of the end."""
        hold = self.cfg.end_hold_s
        until = math.inf if hold is None else time.monotonic() + hold
        while not self.stop and time.monotonic() < until:
            time.sleep(min(STATE_EVERY_S, max(until - time.monotonic(), 0.0)))
            if not self.stop:
                self._state(SourceState.ENDED, detail)

    def close(self) -> None:
        """Close, lingering (at most 5 s) for undelivered messages unless asked to stop."""
        self.sender.close()


def run(source: Source, cfg: PublisherConfig, ready=None, child: bool = True) -> int:
    """Entry point of the streamer process (also used by the monitor's supervisor)."""
    pub = Publisher(source, cfg, runtime.StopFlag(child=child, name="ecg-streamer"))
    if ready is not None:
        ready.set()
    try:
        return pub.run()
    finally:
        pub.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg_monitor.streamer.publisher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connect", required=True, metavar="ENDPOINT", help="the worker's chunk endpoint")
    parser.add_argument("--hold", type=float, default=10.0, metavar="SEC",
                        help="stay connected this long after the end of the source (default 10)")
    add_source_arguments(parser)
    args = parser.parse_args(argv)
    try:
        source = open_source(args)
    except (SourceError, RecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(source, PublisherConfig(args.connect, args.speed, args.chunk, args.duration, args.hold), child=False)


if __name__ == "__main__":
    sys.exit(main())
