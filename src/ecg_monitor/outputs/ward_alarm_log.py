"""``ecg-monitor-alarm-log``: every patient's alarms from NATS into one CSV with a patient column.

A durable consumer (``alarm-log``) of the events stream's ``ecg.*.alarms``: each row is written
and fsync-ed (:class:`~ecg_monitor.outputs.alarm_log.AlarmCsv`) before its message is acknowledged, so a
log stopped or killed mid-stream resumes where it was and misses no alarm; a row already in the
file (killed between the write and the ack) is not written twice.

    ecg-monitor-alarm-log --nats-url nats://station:4222 --csv ward-alarms.csv
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path

from ecg_monitor.app import runtime
from ecg_monitor.outputs.alarm_log import COLUMNS, AlarmCsv, alarm_row
from ecg_monitor.streamer.messages import MessageError, decode
from ecg_monitor.transport.natsclient import EVENTS, NatsClient, NatsUnavailable, to_frames
from ecg_monitor.workers.cli import DEFAULT_NATS_URL, DEFAULT_PARTITIONS

FLEET_COLUMNS = ("patient", *COLUMNS)
DURABLE = "alarm-log"


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in ("patient", "alarm", "event", "sample"))


def logged(path: Path) -> set[tuple[str, ...]]:
    """The alarms already in the file."""
    if not path.exists():
        return set()
    with path.open(newline="") as f:
        return {row_key(r) for r in csv.DictReader(f)}


async def subscribe(client: NatsClient, stop: runtime.StopFlag):
    """The durable consumer, asked again while the server is slow to answer (a busy machine)."""
    while not stop:
        try:
            return await client.js.pull_subscribe("ecg.*.alarms", durable=DURABLE, stream=EVENTS)
        except TimeoutError:  # nats-py raises its own and asyncio's
            await asyncio.sleep(0.5)
    return None


async def follow(client: NatsClient, log: AlarmCsv, stop: runtime.StopFlag) -> None:
    seen = logged(log.path)
    sub = await subscribe(client, stop)
    while sub is not None and not stop:
        try:
            msgs = await sub.fetch(100, timeout=0.5)
        except TimeoutError:  # nothing came (nats-py raises its own and asyncio's)
            continue
        for msg in msgs:
            try:
                header = decode(to_frames(msg.headers, msg.data)).header
                row = alarm_row(header, patient=header["patient"])
            except (MessageError, KeyError):
                await msg.term()  # malformed: counted by the server as terminated, never retried
                continue
            if row_key(row) not in seen:
                while not log.write(row):  # disk refused: loud, retried; the message stays unacked
                    await asyncio.sleep(5.0)
                seen.add(row_key(row))
            await msg.ack()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecg-monitor-alarm-log", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats-url", default=DEFAULT_NATS_URL, metavar="URL")
    parser.add_argument("--csv", type=Path, default=Path("ecg-monitor-fleet-alarms.csv"))
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    args = parser.parse_args(argv)
    stop = runtime.StopFlag(child=False, name="ecg-alarm-log")
    try:
        client = NatsClient(args.nats_url, args.partitions)
    except NatsUnavailable as exc:
        print(f"ecg-monitor-alarm-log: {exc}", file=sys.stderr)
        return 2
    log = AlarmCsv(args.csv, FLEET_COLUMNS)
    log.write()  # the header now: an unwritable log is reported before the first alarm
    print("ecg-monitor-alarm-log: ready", flush=True)
    try:
        client.call(follow(client, log, stop), timeout=None)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
