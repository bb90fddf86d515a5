"""``ecg-eval noise``: detection under the noise stress test (nst-style em/ma noise at given SNRs)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ecg_monitor.evaluation.detect import evaluate_signal
from ecg_monitor.evaluation.ec57 import DetectionScore, reference_beats
from ecg_monitor.replay import parse_record_spec, read_record
from ecg_monitor.replay.noise import add_noise
from ecg_monitor.replay.records import resolve_data_dir

#: Clean records commonly used for noise stress tests (nst's 118 and 119, plus quiet sinus ones).
DEFAULT_RECORDS = "100,103,118,119"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("noise", help="Se/+P with MIT-BIH NST noise added at given SNRs")
    p.add_argument("--data-dir", help="folder with MIT-BIH records (default: $ECG_MONITOR_DATA)")
    p.add_argument("--noise-dir", type=Path,
                   help="folder with the NST noise records em/ma/bw (default: ../noise beside the data folder)")
    p.add_argument("--records", default=DEFAULT_RECORDS, help="comma list of records to add noise to")
    p.add_argument("--noise", default="em,ma", help="comma list of noise records")
    p.add_argument("--snr", default="12,6", help="comma list of SNRs in dB")
    p.add_argument("--chunk-size", type=int, default=360, help="samples per chunk fed to the pipeline")
    p.set_defaults(func=run)


def _noise_dir(args: argparse.Namespace) -> Path | None:
    if args.noise_dir is not None:
        return args.noise_dir
    data = resolve_data_dir(args.data_dir)
    return data.parent / "noise" if data is not None else None


def run(args: argparse.Namespace) -> int:
    names = parse_record_spec(args.records)
    kinds = [k.strip() for k in args.noise.split(",") if k.strip()]
    snrs = [float(s) for s in args.snr.split(",") if s.strip()]
    noise_dir = _noise_dir(args)
    noises = {k: read_record(k, noise_dir, pn_dir="nstdb").signal for k in kinds}
    print("Noise stress test (EC57 rules; noise in nst's protocol: 2 min noisy / 2 min clean after 5 min)")
    print(f"{'noise':>6} {'SNR dB':>7} {'TP':>6} {'FN':>5} {'FP':>5} {'Se%':>7} {'+P%':>7}")
    clean = {n: read_record(n, args.data_dir) for n in names}
    refs = {n: reference_beats(rec, args.data_dir) for n, rec in clean.items()}
    for kind in kinds:
        for snr in snrs:
            total = DetectionScore()
            for name, rec in clean.items():
                print(f"  {kind} {snr:g} dB {name} ...", file=sys.stderr, flush=True)
                noisy = replace(rec, signal=add_noise(rec.signal, refs[name].samples, noises[kind], rec.fs, snr))
                total = total + evaluate_signal(name, noisy, refs[name], args.chunk_size).ec57
            print(f"{kind:>6} {snr:7g} {total.tp:6d} {total.fn:5d} {total.fp:5d} "
                  f"{100 * total.se:7.2f} {100 * total.ppv:7.2f}")
    print(f"records: {', '.join(names)}")
    return 0

