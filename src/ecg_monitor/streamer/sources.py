"""Command-line source selection: the one place that maps arguments to a :class:`Source`.

``ecg-monitor`` and the standalone streamer both call :func:`add_source_arguments` and
:func:`open_source`. A new kind of feed adds its options in ``add_source_arguments`` and one
branch in ``open_source``. ``open_source`` runs in the monitor before any process starts, so
everything that can be checked early (record exists, port exists) must fail here with a
:class:`SourceError` or :class:`RecordError`; the returned source is then pickled into the
streamer process, where ``start()`` opens it.
"""

from __future__ import annotations

import argparse
import math
import os

from ecg_monitor.firmware_bridge.serial_source import add_serial_arguments, serial_source_from_args
from ecg_monitor.replay.records import DATA_ENV
from ecg_monitor.replay.source import ReplaySource
from ecg_monitor.streamer.source import Source, SourceError
from ecg_monitor.streamer.synthetic import SyntheticSource


def parse_speed(text: str) -> float:
    """``--speed``: a factor of real time (1 = live pace) or ``max`` (as fast as possible)."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("source (default: the synthetic device)")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--replay", metavar="RECORD", help="replay a WFDB record, e.g. 208")
    which.add_argument("--demo", action="store_true", help="the synthetic device (every alarm shows)")
    g.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the synthetic device")
    g.add_argument("--start", type=float, default=0.0, metavar="SEC", help="start this far into the source")
    g.add_argument("--duration", type=float, metavar="SEC", help="stop after this many seconds of signal")
    g.add_argument("--speed", type=parse_speed, default=1.0,
                   help="1 = real time (default), 10 = ten times faster, max = as fast as possible")
    g.add_argument("--chunk", type=int, default=18, metavar="N",
                   help="samples per message (default 18 = 50 ms at 360 Hz)")
    add_serial_arguments(parser, exclusive=which)


def absolute_data_dir(args: argparse.Namespace) -> None:
    """Make a relative ``--data-dir`` or ``$ECG_MONITOR_DATA`` absolute, against the folder the
    user started in: every process started later (and a later source request) then reads the
    same folder, whatever its own working directory."""
    if args.data_dir:
        args.data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    if os.environ.get(DATA_ENV):
        os.environ[DATA_ENV] = os.path.abspath(os.path.expanduser(os.environ[DATA_ENV]))


def open_source(args: argparse.Namespace) -> Source:
    """The source the arguments ask for (synthetic when none is named), checked but not started."""
    absolute_data_dir(args)
    if args.duration is not None and args.duration <= 0:
        raise SourceError(f"--duration must be > 0, got {args.duration}")
    if args.chunk < 1:
        raise SourceError(f"--chunk must be >= 1, got {args.chunk}")
    if args.serial:
        return serial_source_from_args(args)
    if args.replay:
        return ReplaySource.open(args.replay, args.data_dir, args.start)
    return SyntheticSource(seed=args.seed, start_s=args.start)
