"""``ecg-monitor-sim``: a serial ECG device on a pseudo-terminal, for demos and tests.

It opens a pty, prints a stable path to it (a symlink in a private folder) on stdout, waits for a
reader like a board that resets when its port is opened, and streams a record or the synthetic
ECG at real-time pace in the framed or ASCII protocol, with the faults of real cables on demand:
corrupted bytes, garbage, dropped frames and an unplug. Unplugging closes the pty, so the reader
sees exactly what a pulled USB cable gives (a read error, then no such device); plugging in opens
a new pty and re-points the symlink, as udev re-creates ``/dev/serial/by-id/...`` links.

Events go to stderr with ``time.monotonic()`` stamps, so tests can time the reconnect.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import sys
import tempfile
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_monitor.firmware_bridge.ascii import encode_line
from ecg_monitor.firmware_bridge.profiles import DeviceProfile, add_profile_arguments, profile_from_args
from ecg_monitor.firmware_bridge.protocol import MAX_SAMPLES, STATUS_LEAD_OFF, encode_frame
from ecg_monitor.replay import RecordError, read_record
from ecg_monitor.replay.source import ReplaySource
from ecg_monitor.streamer.source import Source, SourceError
from ecg_monitor.streamer.synthetic import SyntheticSource

STALL_TIMEOUT_MS = 1000  # a reader that takes nothing for this long loses the bytes (no flow control)
LINGER_S = 0.5  # closing a pty flushes what the reader has not read yet: give it time first


def log(message: str) -> None:
    print(f"ecg-monitor-sim [t={time.monotonic():.3f}] {message}", file=sys.stderr, flush=True)


class PtyPort:
    """The device end of a pseudo-terminal, reachable through a symlink that survives replugs."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.tty_name = ""

    def plug(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)  # no echo or line editing on bytes written before the reader sets it up
        self.tty_name = os.ttyname(slave)
        os.close(slave)  # from now on POLLHUP on the master means: no reader
        os.set_blocking(master, False)
        self.master = master
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.tty_name)
        tmp.replace(self.link)

    def unplug(self) -> None:
        """Close the pty: the reader's next read fails and the device node disappears."""
        self.link.unlink(missing_ok=True)
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def _events(self, timeout_ms: int) -> int:
        poller = select.poll()
        poller.register(self.master, select.POLLOUT)
        return sum(ev for _, ev in poller.poll(timeout_ms))

    def reader_present(self) -> bool:
        return self.master is not None and not self._events(0) & select.POLLHUP

    def wait_for_reader(self) -> None:
        while not self.reader_present():
            time.sleep(0.02)

    def write(self, data: bytes) -> bool:
        """Write all of ``data`` if someone is reading; ``False`` if (some of) it was lost."""
        if not self.reader_present():
            return False
        view = memoryview(data)
        while view:
            events = self._events(STALL_TIMEOUT_MS)
            if events & select.POLLHUP or not events & select.POLLOUT:
                return False
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                continue
        return True


@dataclass
class FaultPlan:
    """Which faults to inject, drawn from one seeded generator so a run can be repeated."""

    corrupt_rate: float = 0.0
    garbage_rate: float = 0.0
    drop_rate: float = 0.0
    disconnect_at: float | None = None
    disconnect_for: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def mangle(self, data: bytes) -> tuple[bytes, str]:
        """The bytes actually sent for one frame and what was done to them."""
        rng = self.rng
        if rng.random() < self.drop_rate:
            return b"", "dropped"
        what = "sent"
        if rng.random() < self.corrupt_rate:
            inner = slice(1, len(data) - 1) if data[:1] == b"\x00" else slice(0, len(data))
            k = int(rng.integers(inner.start, inner.stop))
            data = data[:k] + bytes([(data[k] + int(rng.integers(1, 256))) % 256]) + data[k + 1:]
            what = "corrupted"
        if rng.random() < self.garbage_rate:
            data += rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
        return data, what


class Device:
    """Frames (or lines) from a :class:`Source` of mV samples, as the firmware would send them."""

    def __init__(self, source: Source, profile: DeviceProfile, frame_samples: int, timestamps: bool) -> None:
        self.source, self.profile = source, profile
        self.frame_samples = frame_samples
        self.timestamps = timestamps
        self.seq = 0
        self.samples = 0  # samples taken so far (the device's clock)

    def next_packet(self) -> bytes | None:
        chunk = self.source.read(self.frame_samples)
        if chunk is None or len(chunk.samples) == 0:
            return None
        counts = self.profile.to_counts(chunk.samples)
        missing = ~np.isfinite(chunk.samples)
        first = self.samples
        self.samples += len(counts)
        self.seq += 1
        if self.profile.protocol == "framed":
            status = STATUS_LEAD_OFF if missing.any() else 0
            return encode_frame(self.seq - 1, counts, status)
        return b"".join(
            b"!\r\n" if gone else encode_line(int(c), self._millis(first + i) if self.timestamps else None)
            for i, (c, gone) in enumerate(zip(counts, missing))
        )

    def _millis(self, sample: int) -> int:
        return int(sample * 1000 // self.profile.fs)


def open_signal(args: argparse.Namespace, profile: DeviceProfile) -> Source:
    if args.record:
        record = read_record(args.record, args.data_dir, args.lead, fs=profile.fs)
        source: Source = ReplaySource(record, args.start)
    else:
        source = SyntheticSource(seed=args.seed, start_s=args.start, fs=profile.fs)
    source.start()
    return source


def stream(port: PtyPort, device: Device, faults: FaultPlan, args: argparse.Namespace) -> dict[str, int]:
    """Send packets at the pace of the device's sampling clock until the signal or time runs out."""
    stats = dict.fromkeys(("sent", "dropped", "corrupted", "unheard", "unplugged"), 0)
    fs, speed = device.profile.fs, args.speed
    t0 = time.monotonic()
    plugged_again_at = None
    while args.seconds is None or device.samples < args.seconds * fs:
        start_s = device.samples / fs  # signal time of the packet's first sample
        packet = device.next_packet()
        if packet is None:
            if args.loop and args.record:
                device.source = open_signal(args, device.profile)
                continue
            break
        delay = t0 + device.samples / fs / speed - time.monotonic()  # sent once its last sample is taken
        if delay > 0:
            time.sleep(delay)
        if faults.disconnect_at is not None and plugged_again_at is None and start_s >= faults.disconnect_at:
            port.unplug()
            plugged_again_at = faults.disconnect_at + faults.disconnect_for
            log(f"unplugged for {faults.disconnect_for:g} s (signal time {start_s:.2f} s)")
        if port.master is None:
            if start_s < plugged_again_at:
                stats["unplugged"] += 1
                continue
            port.plug()
            log(f"plugged in again at signal time {start_s:.2f} s: {port.link} -> {port.tty_name}")
        data, what = faults.mangle(packet)
        if what != "sent":
            stats[what] += 1
        if data and not port.write(data):
            stats["unheard"] += 1
        elif what == "sent":
            stats["sent"] += 1
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-monitor-sim",
        description="Simulated serial ECG device on a pseudo-terminal: prints the port path on stdout, "
        "then streams until the signal ends. Connect with: ecg-monitor --serial PATH",
    )
    what = p.add_argument_group("signal")
    what.add_argument("--record", help="stream this WFDB record (default: the synthetic ECG)")
    what.add_argument("--data-dir", help="folder with WFDB records (default: $ECG_MONITOR_DATA, else PhysioNet)")
    what.add_argument("--lead", help="lead of the record (default MLII, else the first usable)")
    what.add_argument("--start", type=float, default=0.0, metavar="SEC", help="start this far into the signal")
    what.add_argument("--seconds", type=float, metavar="SEC", help="stop after this much signal")
    what.add_argument("--loop", action="store_true", help="play the record again and again")
    dev = p.add_argument_group("device")
    add_profile_arguments(dev)
    dev.add_argument("--frame-samples", type=int, default=10, metavar="N",
                     help=f"samples per frame or per write (1..{MAX_SAMPLES}, default 10)")
    dev.add_argument("--timestamps", action="store_true", help="ASCII: 'millis,value' lines")
    dev.add_argument("--speed", type=float, default=1.0, help="pace as a multiple of real time (default 1)")
    dev.add_argument("--link", type=Path, help="path of the port symlink (default: a fresh temp folder)")
    dev.add_argument("--no-wait", action="store_true", help="stream at once, not when a reader opens the port")
    dev.add_argument("--boot-delay", type=float, default=0.5, metavar="SEC",
                     help="pause between the reader opening the port and the first sample (default 0.5)")
    bad = p.add_argument_group("faults")
    bad.add_argument("--corrupt-rate", type=float, default=0.0, metavar="P",
                     help="probability that a frame gets one wrong byte")
    bad.add_argument("--garbage-rate", type=float, default=0.0, metavar="P",
                     help="probability of 1-64 random bytes after a frame")
    bad.add_argument("--drop-rate", type=float, default=0.0, metavar="P", help="probability that a frame is lost")
    bad.add_argument("--disconnect-at", type=float, metavar="SEC", help="unplug at this signal time")
    bad.add_argument("--disconnect-for", type=float, default=3.0, metavar="SEC",
                     help="how long the cable stays out (default 3)")
    bad.add_argument("--seed", type=int, default=0, help="random seed of faults and synthetic ECG")
    return p


def _check(args: argparse.Namespace) -> DeviceProfile:
    profile = profile_from_args(args)
    if not 1 <= args.frame_samples <= MAX_SAMPLES:
        raise ValueError(f"--frame-samples must be 1..{MAX_SAMPLES}, got {args.frame_samples}")
    if not args.speed > 0:
        raise ValueError(f"--speed must be > 0, got {args.speed}")
    for name in ("corrupt_rate", "garbage_rate", "drop_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1")
    return profile


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profile = _check(args)
        source = open_signal(args, profile)
    except (ValueError, RecordError, SourceError) as exc:
        print(f"ecg-monitor-sim: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    own_dir = None
    if args.link is None:
        own_dir = Path(tempfile.mkdtemp(prefix="ecg-sim-"))
        args.link = own_dir / "ttyECG"
    port = PtyPort(args.link)
    faults = FaultPlan(args.corrupt_rate, args.garbage_rate, args.drop_rate, args.disconnect_at,
                       args.disconnect_for, args.seed)
    device = Device(source, profile, args.frame_samples, args.timestamps)
    try:
        port.plug()
        print(port.link, flush=True)
        what = f"record {args.record}" if args.record else "synthetic ECG"
        log(f"{port.link} -> {port.tty_name}: {what}, {profile.protocol}, {profile.fs:g} Hz, "
            f"{profile.counts_per_mv:g} counts/mV")
        if not args.no_wait:
            log("waiting for a reader to open the port")
            port.wait_for_reader()
            time.sleep(args.boot_delay)
        log("streaming")
        stats = stream(port, device, faults, args)
        time.sleep(LINGER_S)
        log("done: " + ", ".join(f"{k} {v}" for k, v in stats.items()) + " frames")
    except KeyboardInterrupt:
        pass
    finally:
        port.unplug()
        if own_dir is not None:
            own_dir.rmdir()
        source.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
