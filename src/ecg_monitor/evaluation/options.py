"""Command-line options shared by the evaluation commands."""

from __future__ import annotations

import argparse

from ecg_monitor.detector.pipeline import SHIPPED


def add_detector_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pan-tompkins", action="store_true",
                   help="Pan-Tompkins' beats alone, without the learned QRS network fused in "
                        "(the monitor's default is the fusion; see the README)")


def qrs_option(args: argparse.Namespace) -> str | None:
    """The pipeline's ``qrs_model`` the options ask for."""
    return None if args.pan_tompkins else SHIPPED
