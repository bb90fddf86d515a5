"""``ecg-eval``: offline evaluation commands (one sub-command per module)."""

from __future__ import annotations

import argparse
import sys

from ecg_monitor.detector.classifier import ModelError
from ecg_monitor.evaluation import alarms, classify, detect, explain, noise
from ecg_monitor.replay.records import RecordError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (detect, noise, classify, explain, alarms):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RecordError, ModelError) as exc:
        print(f"\necg-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
