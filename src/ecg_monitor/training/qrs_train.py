"""Train the causal QRS network and write the packaged int8 model.

Honest data: the ECG is the SVDB training patients (none of them is an MIT-BIH patient, so the
noise stress test over all 48 MIT-BIH records scores patients the network never saw), six of
them held out for choosing the checkpoint; the noise is the NST em/ma/bw records, taken only
from the stretches the nst protocol leaves clean (its first 5 min and every other 2 min), so no
noise sample the stress test adds is ever trained on.

    python -m ecg_monitor.training.qrs_train --svdb ../shared/data/svdb-train --noise ../shared/data/noise
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from scipy.signal import resample_poly, sosfilt, sosfilt_zi

from ecg_monitor.detector.filters import design_display_filter
from ecg_monitor.detector.qrs_net import DELAY, FS, MODEL_DIR, RECEPTIVE_FIELD, STRIDE
from ecg_monitor.evaluation.ec57 import BEAT_SYMBOLS
from ecg_monitor.replay.noise import gain_for, noise_rms, nst_mask, qrs_size, step_offsets
from ecg_monitor.training.dataset import check_training_records, folder_records
from ecg_monitor.training.export import OPSET, quantize_int8
from ecg_monitor.training.qrs_model import QRSNet, step_ends, targets

WINDOW = 3600  # training window, samples (10 s)
BURN_IN = 540  # steps ending before this sample are not scored: filter and receptive field start-up
NOISE_KINDS = {"em": 0.5, "ma": 0.35, "bw": 0.15}
SNR_DB = (-6.0, 18.0)
VALIDATION_PATIENTS = 6
VALIDATION_WINDOWS = 768
LEARNING_RATE = 2e-3


@dataclass
class Lead:
    x: np.ndarray  # mV at 360 Hz
    peaks: np.ndarray  # reference R marks (every beat type)
    qrs_pp: float  # nst's peak-to-peak QRS size
    patient: str


def read_svdb(folder: Path) -> list[Lead]:
    """Both leads of every SVDB record in ``folder``, resampled 128 -> 360 Hz."""
    import wfdb

    leads = []
    for name in check_training_records(folder_records(folder)):  # never SVDB's test half
        rec, ann = wfdb.rdrecord(str(folder / name)), wfdb.rdann(str(folder / name), "atr")
        sym = np.asarray(ann.symbol)
        beat = np.isin(sym, sorted(BEAT_SYMBOLS))
        peaks = np.round(ann.sample[beat] * FS / rec.fs).astype(np.int64)
        for ch in range(rec.p_signal.shape[1]):
            x = resample_poly(np.nan_to_num(rec.p_signal[:, ch]), int(FS), int(rec.fs))
            leads.append(Lead(x.astype(np.float32), peaks, qrs_size(x, peaks, FS, sym[beat]), name))
    return leads


def unused_spans(length: int) -> list[tuple[int, int]]:
    """The stretches of a noise record that nst's protocol never adds to a record of ``length``
    samples (the noise is aligned with the record from its start), long enough for a window."""
    unused = np.r_[0, (~nst_mask(length, FS)).astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(unused))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2]) if e - s > WINDOW]


def read_noise(folder: Path) -> dict[str, list[np.ndarray]]:
    """Per kind, both channels of the stretches the stress test never uses."""
    import wfdb

    pieces: dict[str, list[np.ndarray]] = {}
    for kind in NOISE_KINDS:
        sig = wfdb.rdrecord(str(folder / kind)).p_signal
        pieces[kind] = [sig[s:e, ch].astype(np.float32) for s, e in unused_spans(len(sig))
                        for ch in range(sig.shape[1])]
    return pieces


class Windows:
    """Random noisy 10 s windows, filtered as the pipeline filters, with their step targets.

    With ``augment`` (training), a window is also stretched in time by 0.8-1.25 (other heart
    rates and QRS widths) and is often a random mix of the patient's two leads (other leads'
    morphologies): the 32 training patients are few, and without them the network learnt their
    beats by heart (held-out loss rose after 500 steps)."""

    def __init__(self, leads: list[Lead], noise: dict[str, list[np.ndarray]], seed: int,
                 augment: bool = False) -> None:
        self.leads, self.noise, self.augment = leads, noise, augment
        self.rms = {k: float(np.mean([noise_rms(p, FS) for p in v])) for k, v in noise.items()}
        self.rng = np.random.default_rng(seed)
        self.sos = design_display_filter(FS)
        by_patient: dict[str, list[Lead]] = {}
        for lead in leads:
            by_patient.setdefault(lead.patient, []).append(lead)
        self.patients = [by_patient[name] for name in sorted(by_patient)]  # each patient's leads

    def one(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.augment:
            y, peaks, qrs_pp = self._augmented()
        else:
            lead = self.leads[rng.integers(len(self.leads))]
            s = int(rng.integers(0, len(lead.x) - WINDOW))
            y, qrs_pp = lead.x[s : s + WINDOW].astype(np.float64), lead.qrs_pp
            peaks = lead.peaks[(lead.peaks > s - 100) & (lead.peaks < s + WINDOW + 100)] - s
        if rng.random() > 0.15:
            for _ in range(1 if rng.random() < 0.7 else 2):
                y = y + self._noise(qrs_pp)
        y = y * np.exp(rng.uniform(np.log(0.4), np.log(2.5))) * (-1 if rng.random() < 0.2 else 1)
        y = y + rng.normal(0, 0.3)
        f = sosfilt(self.sos, y, zi=sosfilt_zi(self.sos) * y[0])[0]
        return f.astype(np.float32), targets(peaks, WINDOW)

    def _augmented(self) -> tuple[np.ndarray, np.ndarray, float]:
        """A time-stretched window of one lead or of a random mix of both: signal, R marks, QRS size."""
        rng = self.rng
        leads = self.patients[rng.integers(len(self.patients))]
        stretch = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) if rng.random() < 0.7 else 1.0
        span = int(np.ceil(WINDOW * stretch)) + 2
        s = int(rng.integers(0, len(leads[0].x) - span))
        if len(leads) == 2 and rng.random() < 0.6:
            w = rng.normal(size=2)
            w /= np.linalg.norm(w)
            raw = w[0] * leads[0].x[s : s + span].astype(np.float64) + w[1] * leads[1].x[s : s + span].astype(np.float64)
            qrs_pp = abs(w[0]) * leads[0].qrs_pp + abs(w[1]) * leads[1].qrs_pp
        else:
            lead = leads[rng.integers(len(leads))]
            raw, qrs_pp = lead.x[s : s + span].astype(np.float64), lead.qrs_pp
        y = np.interp(np.arange(WINDOW) * stretch, np.arange(span), raw)
        peaks = leads[0].peaks[(leads[0].peaks > s - 200) & (leads[0].peaks < s + span + 200)] - s
        return y, np.round(peaks / stretch).astype(np.int64), qrs_pp

    def _noise(self, qrs_pp: float) -> np.ndarray:
        """One noise kind at a random SNR (nst's definition), sometimes only over part of the window
        with nst's step-free offsets."""
        rng = self.rng
        kind = rng.choice(list(NOISE_KINDS), p=list(NOISE_KINDS.values()))
        piece = self.noise[kind][rng.integers(len(self.noise[kind]))]
        o = int(rng.integers(0, len(piece) - WINDOW))
        nz = piece[o : o + WINDOW].astype(np.float64)
        gain = gain_for(qrs_pp, self.rms[kind], rng.uniform(*SNR_DB))
        if rng.random() >= 0.3:
            return gain * nz
        env = np.full(WINDOW, gain)
        t0, t1 = np.sort(rng.integers(0, WINDOW, 2))
        env[:t0] = env[t1:] = 0.0
        return env * nz + step_offsets(nz, env)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ts = zip(*(self.one() for _ in range(n)))
        return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ts))


def train(leads: list[Lead], noise: dict[str, list[np.ndarray]], steps: int, seed: int = 0) -> tuple[QRSNet, list[str]]:
    """One-cycle AdamW on random augmented windows; the checkpoint with the lowest loss on the
    held-out patients' (plain) windows is kept."""
    torch.manual_seed(seed)
    patients = sorted({lead.patient for lead in leads})
    held = set(patients[-VALIDATION_PATIENTS:])
    train_set = Windows([lead for lead in leads if lead.patient not in held], noise, seed, augment=True)
    vx, vt = Windows([lead for lead in leads if lead.patient in held], noise, seed + 123).batch(VALIDATION_WINDOWS)
    scored = torch.from_numpy((step_ends(WINDOW) >= BURN_IN).astype(np.float32))

    def loss_of(net: QRSNet, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        bce = torch.nn.functional.binary_cross_entropy_with_logits(net(x), t, reduction="none")
        return (bce * scored).sum() / scored.sum() / len(x)

    def held_out_loss(net: QRSNet) -> float:
        with torch.no_grad():
            return sum(float(loss_of(net, x, t)) * len(x) for x, t in zip(vx.split(128), vt.split(128))) / len(vx)

    net = QRSNet()
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=steps, pct_start=0.1)
    best, best_state, log, t0 = np.inf, None, [], time.time()
    for i in range(steps):
        loss = loss_of(net, *train_set.batch(32))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (i + 1) % 250 == 0 or i + 1 == steps:
            val = held_out_loss(net)
            if val < best:
                best, best_state = val, {k: v.clone() for k, v in net.state_dict().items()}
            log.append(f"step {i + 1}: train loss {loss.item():.4f}, held-out loss {val:.4f}{' (best)' if val == best else ''}, {time.time() - t0:.0f} s")
            print(log[-1], flush=True)
    net.load_state_dict(best_state)
    return net, log


def export(net: QRSNet, calibration: np.ndarray, out_dir: Path) -> Path:
    """int8 ONNX with no padding (the runtime keeps the receptive field) and its layout stamped in,
    in ``out_dir`` (made if missing: a training's result is not lost to a folder not there yet)."""
    net = net.eval()
    net.pad = False
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "qrs_net.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.zeros(1, 1, RECEPTIVE_FIELD - STRIDE + 30), str(fp32),
                              input_names=["ecg"], output_names=["logits"],
                              dynamic_axes={"ecg": {0: "batch", 2: "samples"}, "logits": {0: "batch", 1: "steps"}},
                              opset_version=OPSET, dynamo=False)
        quantize_int8(fp32, out, {"ecg": calibration[:, None]})
    model = onnx.load(str(out))
    layout = {"fs": FS, "stride": STRIDE, "delay": DELAY, "receptive_field": RECEPTIVE_FIELD}
    onnx.helper.set_model_props(model, {"layout": json.dumps(layout)})
    onnx.save(model, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--svdb", type=Path, required=True, help="folder with the SVDB training records")
    p.add_argument("--noise", type=Path, required=True, help="folder with the NST noise records em, ma, bw")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    leads, noise = read_svdb(args.svdb), read_noise(args.noise)
    net, log = train(leads, noise, args.steps)
    calibration, _ = Windows(leads, noise, seed=7).batch(64)
    path = export(net, calibration[:, 0].numpy(), args.out)
    (args.out / "qrs_net.log").write_text("\n".join(log) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
