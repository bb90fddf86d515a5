"""``ecg-eval noise``: detection under PhysioNet's noise stress test (nst), EC57 scoring.

Each record gets em or ma noise at each SNR the way ``nst`` adds it (``replay/noise.py``), runs
through the streaming pipeline as live, and is scored beat by beat with EC57 rules (first 5 min
and VF/flutter episodes skipped). Two figures for ours: every beat (the EC57 figure), and the
beats outside the 0.5 s blocks the pipeline itself announced unreadable (with the share of
scored time those blocks cover). A peer detector (``--peer xqrs``: wfdb's XQRS, whole record at
once, not causal) runs on the same noisy signals in the same command.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ecg_monitor.detector.pipeline import SHIPPED, PipelineOutput, stream_signal
from ecg_monitor.evaluation.ec57 import SKIP_S, DetectionScore, inside_spans, pct, reference_beats, score_record
from ecg_monitor.evaluation.options import add_detector_option, qrs_option
from ecg_monitor.evaluation.peers import PEERS
from ecg_monitor.replay import parse_record_spec, read_record
from ecg_monitor.replay.noise import add_noise
from ecg_monitor.replay.records import resolve_data_dir

#: Targets of issue 11 per SNR (dB): (Se, +P) in %.
TARGETS = {6.0: (99.0, 95.0), 0.0: (95.0, 85.0)}


@dataclass
class StressResult:
    """One record with one noise at one SNR."""

    name: str
    kind: str
    snr: float
    ours: DetectionScore  # every beat
    readable: DetectionScore  # outside the blocks the pipeline announced unreadable
    scored_s: float
    excluded_s: float  # scored time inside those blocks
    peer: DetectionScore | None


def unreadable_spans(outs: list[PipelineOutput]) -> list[tuple[int, int]]:
    """Runs of blocks judged unreadable, as inclusive sample spans."""
    spans: list[tuple[int, int]] = []
    for j in (j for o in outs for j in o.quality if j.quality.unreadable):
        if spans and spans[-1][1] == j.start - 1:
            spans[-1] = (spans[-1][0], j.stop - 1)
        else:
            spans.append((j.start, j.stop - 1))
    return spans


@lru_cache(maxsize=4)
def _noise(kind: str, noise_dir: Path | None) -> np.ndarray:
    return read_record(kind, noise_dir, pn_dir="nstdb").signal


def stress_record(job: tuple[str, str, float], data_dir: str | None, noise_dir: Path | None,
                  chunk: int, peer: str | None, qrs_model: str | None = SHIPPED) -> StressResult:
    """Add the noise to one record, detect, and score ours (and the peer)."""
    name, kind, snr = job
    rec = read_record(name, data_dir)
    ref = reference_beats(rec, data_dir)
    x = add_noise(rec.signal, ref.samples, _noise(kind, noise_dir), rec.fs, snr, ref.symbols)
    outs = list(stream_signal(x, rec.fs, classifier=None, chunk=chunk, qrs_model=qrs_model))  # labels do not change the scores
    det = np.array([b.sample for o in outs for b in o.beats], dtype=np.int64)
    start = int(SKIP_S * rec.fs)
    spans = unreadable_spans(outs)
    t = np.arange(len(x))
    scored = (t >= start) & ~inside_spans(t, ref.flutter)
    return StressResult(
        name, kind, snr,
        ours=score_record(ref.samples, det, rec.fs, start, ref.flutter),
        readable=score_record(ref.samples, det, rec.fs, start, ref.flutter + spans),
        scored_s=float(scored.sum()) / rec.fs,
        excluded_s=float((scored & inside_spans(t, spans)).sum()) / rec.fs,
        peer=score_record(ref.samples, PEERS[peer](x, rec.fs), rec.fs, start, ref.flutter) if peer else None,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("noise", help="Se/+P under nst noise stress (em/ma at given SNRs), with a peer")
    p.add_argument("--data-dir", help="folder with MIT-BIH records (default: $ECG_MONITOR_DATA)")
    p.add_argument("--noise-dir", type=Path,
                   help="folder with the NST noise records em/ma/bw (default: ../noise beside the data folder)")
    p.add_argument("--records", default="all", help="all, ds1, ds2 or a comma list of records to add noise to (default: all)")
    p.add_argument("--noise", default="em,ma", help="comma list of noise records (default: em,ma)")
    p.add_argument("--snr", default="12,6,0", help="comma list of SNRs in dB (default: 12,6,0)")
    p.add_argument("--peer", choices=sorted(PEERS), help="also score this detector on the same signals")
    p.add_argument("--plot", type=Path, help="write a PNG of Se and +P against SNR here")
    p.add_argument("--jobs", type=int, default=1, help="records processed in parallel (default: 1)")
    p.add_argument("--chunk-size", type=int, default=360, help="samples per chunk fed to the pipeline (default: 360)")
    add_detector_option(p)
    p.set_defaults(func=run)


def _noise_dir(args: argparse.Namespace) -> Path | None:
    if args.noise_dir is not None:
        return args.noise_dir
    data = resolve_data_dir(args.data_dir)
    return data.parent / "noise" if data is not None else None


def _sum(scores: list[DetectionScore]) -> DetectionScore:
    total = DetectionScore()
    for s in scores:
        total = total + DetectionScore(s.tp, s.fn, s.fp)
    return total


def _row(label: str, s: DetectionScore) -> str:
    return f"{label:>14} {s.tp:7d} {s.fn:6d} {s.fp:6d} {pct(s.se)} {pct(s.ppv)}"


def format_report(results: list[StressResult], peer: str | None) -> str:
    """Per noise and SNR, then per SNR over both noises (gross), with the targets checked."""
    lines = [
        "Noise stress test (nst protocol: 5 min clean, then 2 min noisy / 2 min clean; SNR = 10 log10(S/N),",
        "S = (QRS peak-to-peak)^2/8, N = noise RMS^2, as nst). EC57 scoring: first 5 min and VF/flutter skipped.",
        "'ours' scores every beat; 'ours-readable' leaves out the 0.5 s blocks our pipeline announced",
        "unreadable (excl% = share of scored time left out)"
        + (f"; '{peer}' is wfdb's detector on the same signals." if peer else "."),
        f"{'':>14} {'TP':>7} {'FN':>6} {'FP':>6} {'Se%':>6} {'+P%':>6}",
    ]
    groups: dict[tuple[str, float], list[StressResult]] = {}
    for r in results:
        groups.setdefault((r.kind, r.snr), []).append(r)
    for kind in dict.fromkeys(r.kind for r in results):
        for snr in dict.fromkeys(r.snr for r in results):
            lines += _block(f"{kind} {snr:g} dB", groups[(kind, snr)], peer)
    for snr in dict.fromkeys(r.snr for r in results):
        rs = [r for r in results if r.snr == snr]
        lines += _block(f"gross {snr:g} dB", rs, peer)
        if snr in TARGETS:
            se_t, ppv_t = TARGETS[snr]
            for what, s in (("ours", _sum([r.ours for r in rs])), ("ours-readable", _sum([r.readable for r in rs]))):
                ok = 100 * s.se >= se_t and 100 * s.ppv >= ppv_t
                lines.append(f"{'':>14} target Se >= {se_t:g}, +P >= {ppv_t:g}: {what} {'MET' if ok else 'NOT met'}")
    lines.append(f"records: {len({r.name for r in results})} ({', '.join(dict.fromkeys(r.name for r in results))})")
    return "\n".join(lines)


def _block(title: str, rs: list[StressResult], peer: str | None) -> list[str]:
    excl = 100 * sum(r.excluded_s for r in rs) / max(sum(r.scored_s for r in rs), 1e-9)
    out = [f"{title}:", _row("ours", _sum([r.ours for r in rs])),
           _row("ours-readable", _sum([r.readable for r in rs])) + f"  excl {excl:5.1f}%"]
    if peer:
        out.append(_row(peer, _sum([r.peer for r in rs])))
    return out


def plot(results: list[StressResult], peer: str | None, path: Path) -> None:
    """Se and +P against SNR: ours (every beat and readable-only) and the peer, per noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    series = [("ours", lambda r: r.ours, "C0"), ("ours-readable", lambda r: r.readable, "C2")]
    if peer:
        series.append((peer, lambda r: r.peer, "C3"))
    snrs = sorted({r.snr for r in results})
    for kind, style in zip(dict.fromkeys(r.kind for r in results), ("-o", "--s", ":^")):
        for label, get, colour in series:
            scores = [_sum([get(r) for r in results if r.kind == kind and r.snr == s]) for s in snrs]
            for ax, value in zip(axes, (lambda s: s.se, lambda s: s.ppv)):
                ax.plot(snrs, [100 * value(s) for s in scores], style, color=colour, label=f"{label}, {kind}")
    for ax, name in zip(axes, ("Se %", "+P %")):
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    for snr, (se_t, ppv_t) in TARGETS.items():
        axes[0].plot(snr, se_t, "k_", markersize=14)
        axes[1].plot(snr, ppv_t, "k_", markersize=14)
    axes[1].legend(fontsize=7)
    n = len({r.name for r in results})
    fig.suptitle(f"Noise stress test, {n} MIT-BIH records (black ticks: targets)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    names = parse_record_spec(args.records)
    kinds = [k.strip() for k in args.noise.split(",") if k.strip()]
    snrs = [float(s) for s in args.snr.split(",") if s.strip()]
    jobs = [(n, k, s) for k in kinds for s in snrs for n in names]
    work = partial(stress_record, data_dir=args.data_dir, noise_dir=_noise_dir(args),
                   chunk=args.chunk_size, peer=args.peer, qrs_model=qrs_option(args))
    results = []
    with Pool(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        for i, r in enumerate(pool.imap(work, jobs) if pool else map(work, jobs), 1):
            print(f"[{i}/{len(jobs)}] {r.kind} {r.snr:g} dB {r.name}: Se {pct(r.ours.se)} +P {pct(r.ours.ppv)}",
                  file=sys.stderr, flush=True)
            results.append(r)
    print(format_report(results, args.peer))
    if args.plot is not None:
        plot(results, args.peer, args.plot)
        print(f"plot written to {args.plot}")
    return 0
