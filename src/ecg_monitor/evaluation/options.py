"""Command-line options shared by the evaluation commands."""

from __future__ import annotations

import argparse

from ecg_monitor.detector.pipeline import SHIPPED


def add_qrs_net_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--qrs-net", action="store_true",
                   help="fuse Pan-Tompkins with the learned QRS network (fewer false beats in noise; see the README)")


def qrs_option(args: argparse.Namespace) -> str | None:
    """The pipeline's ``qrs_model`` the options ask for."""
    return SHIPPED if args.qrs_net else None
