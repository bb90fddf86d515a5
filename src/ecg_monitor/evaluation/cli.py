"""``ecg-eval``: offline evaluation commands (one sub-command per module)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecg_monitor.detector.classifier import ModelError
from ecg_monitor.evaluation import alarms, classify, detect, explain, noise
from ecg_monitor.replay.records import RecordError


EXAMPLES = """examples:
  ecg-eval detect --data-dir ../shared/data/mitdb --records all --out-dir out/beats
  ecg-eval noise --data-dir ../shared/data/mitdb --records 100,103 --snr 12,6
  ecg-eval classify --data-dir ../shared/data/mitdb --records ds2
  ecg-eval explain --data-dir ../shared/data/mitdb --record 208 --beats 12
  ecg-eval alarms --data-dir ../shared/data/mitdb --records all --per-record

ecg-eval COMMAND --help describes a command and its options."""


class _CommandHelp(argparse.HelpFormatter):
    """Each option's help ends with its default, unless it has none or the help names it; a
    packaged file is named, not spelled out as a path into site-packages."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        if isinstance(default, Path) and default.is_absolute():
            default = f"the packaged {default.name}"
        return f"{text} (default: {default})".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg-eval", epilog=EXAMPLES,
                                     description="Offline evaluation of the monitor's detector, classifier "
                                                 "and alarms on MIT-BIH records.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (detect, noise, classify, explain, alarms):
        module.add_parser(sub)
    for action in sub._choices_actions:  # each command's one-line help is its description too
        command = sub.choices[action.dest]
        command.formatter_class = _CommandHelp
        command.description = command.description or action.help[:1].upper() + action.help[1:] + "."
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
