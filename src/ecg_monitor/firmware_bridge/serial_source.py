"""A USB-serial ECG front-end as a :class:`Source`, built to survive what real cables do.

A reader thread owns the port: it decodes frames (or ASCII lines), turns lost frames into NaN
samples of the right length (so sample numbers stay true to time and the detector sees a gap,
not a splice), and on a read error closes the port and reopens it with back-off until the
device is back. ``read`` only hands over what the thread has queued, so the streamer's poll
never blocks on the port. Every condition a user must know about is a state plus a ``detail``
line in ``counters()``: disconnected, no data, bytes but no valid frames (wrong baud/protocol),
lead off.
"""

from __future__ import annotations

import argparse
import errno
import grp
import os
import threading
import time
from collections import deque

import numpy as np
import serial
from serial.tools import list_ports

from ecg_monitor import PIPELINE_FS
from ecg_monitor.firmware_bridge.ascii import AsciiDecoder
from ecg_monitor.firmware_bridge.profiles import DeviceProfile, add_profile_arguments, profile_from_args
from ecg_monitor.firmware_bridge.protocol import STATUS_LEAD_OFF, Frame, FrameDecoder
from ecg_monitor.firmware_bridge.resample import StreamingResampler
from ecg_monitor.streamer.source import Chunk, Source, SourceError, SourceState, as_samples

READ_TIMEOUT_S = 0.05  # how long the reader thread blocks on the port before checking health
GAP_SLACK_S = 1.0  # a sequence gap may exceed the wall-clock silence by this much (buffering)
TIMESTAMP_UNITS = {"ms": 1e-3, "us": 1e-6}


def available_ports() -> str:
    """The serial ports the system knows, one per line, for error messages."""
    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    if not ports:
        return "  (none found: is the board plugged in and its USB driver loaded?)"
    return "\n".join(f"  {p.device}" + (f"  ({p.description})" if p.description not in ("", "n/a") else "")
                     for p in ports)


def port_error(port: str, exc: BaseException) -> str:
    """A message that says what is wrong with ``port`` and how to fix it."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT or (code is None and not os.path.exists(port)):
        return f"serial port {port} does not exist. Available ports:\n{available_ports()}"
    if code in (errno.EACCES, errno.EPERM):
        try:
            gid = os.stat(port).st_gid
            group = grp.getgrgid(gid).gr_name if gid != 0 else None
        except (OSError, KeyError):
            group = "dialout"
        if group is None:  # root's alone: joining root is no fix, a udev rule is
            return (
                f"no permission to open serial port {port} (only root may). Fix: a udev rule giving "
                f'it to group dialout (SUBSYSTEM=="tty", GROUP="dialout", MODE="0660"), then '
                f"sudo usermod -aG dialout $USER and log in again (for this session only: "
                f"sudo chmod a+rw {port})."
            )
        return (
            f"no permission to open serial port {port} (it belongs to group {group!r}). Fix: "
            f"sudo usermod -aG {group} $USER, then log out and back in (for this session "
            f"only: sudo chmod a+rw {port})."
        )
    if code in (errno.EBUSY, errno.EAGAIN):
        return f"serial port {port} is busy: another program (a serial monitor?) has it open."
    return f"cannot open serial port {port}: {exc}"


def check_port(port: str) -> None:
    """Fail early, without opening the port (opening resets many boards), if it cannot work."""
    if not os.path.exists(port):
        raise SourceError(port_error(port, FileNotFoundError(errno.ENOENT, "not found")))
    if not os.access(port, os.R_OK | os.W_OK):
        raise SourceError(port_error(port, PermissionError(errno.EACCES, "permission denied")))


class SerialSource(Source):
    """ECG samples from a serial device (framed protocol or ASCII lines), in mV at 360 Hz.

    A device at another rate (``profile.fs``) is resampled on the fly (``resample.py``, causal and
    chunk-invariant; replayed records are resampled offline by ``replay.records``);
    counters (frames, samples, gaps) stay in the device's own samples.

    States: ``connected`` while the port is open and frames arrive; ``disconnected`` when the
    port went away (retried with back-off from ``backoff_s`` up to ``max_backoff_s``), when no
    byte came for ``silence_s``, or when bytes came but no valid frame for ``no_frames_s``;
    ``ended`` after ``stop()``.
    """

    realtime = True

    def __init__(
        self,
        port: str,
        profile: DeviceProfile,
        baud: int = 115200,
        timestamp_unit_s: float = 1e-3,
        silence_s: float = 2.0,
        no_frames_s: float = 3.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.port = port
        self.baud = baud
        self.profile = profile
        self.source_id = f"serial:{port}"
        self.fs = PIPELINE_FS
        self.timestamp_unit_s = timestamp_unit_s
        self.silence_s = silence_s
        self.no_frames_s = no_frames_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.detail = "not started"
        self._thread: threading.Thread | None = None  # threads and the port exist after start()

    # ------------------------------------------------------------------ Source interface
    def start(self) -> None:
        """Open the port (``SourceError`` with the fix if it cannot be) and start reading."""
        self._decoder = (AsciiDecoder(self.profile.fs, self.timestamp_unit_s) if self.profile.protocol == "ascii"
                         else FrameDecoder())
        self._resampler = StreamingResampler(self.profile.fs, self.fs) if self.profile.fs != self.fs else None
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._queue: deque[tuple[np.ndarray, float]] = deque()
        self._next_sample = 0
        self._last_frame: float | None = None  # arrival time of the newest frame
        self.gap_events = self.gap_samples = self.lead_off_frames = 0
        self.disconnects = self.reconnects = 0
        try:
            self._port = self._open()
        except (serial.SerialException, OSError) as exc:
            raise SourceError(port_error(self.port, exc)) from None
        self._opened(time.monotonic())
        self._thread = threading.Thread(target=self._run, name=f"serial-{self.port}", daemon=True)
        self._thread.start()

    def read(self, max_samples: int, timeout: float = 0.1) -> Chunk | None:
        if self._thread is None:
            return None
        with self._cond:
            if not self._queue and self._state is not SourceState.ENDED:
                self._cond.wait(timeout)
            if not self._queue:
                return None
            parts: list[np.ndarray] = []
            need = max_samples
            while need > 0 and self._queue:
                block, stamp = self._queue[0]
                if len(block) > need:
                    self._queue[0] = (block[need:], stamp)
                    block = block[:need]
                else:
                    self._queue.popleft()
                parts.append(block)
                need -= len(block)
            first = self._next_sample
            samples = as_samples(np.concatenate(parts))
            self._next_sample += len(samples)
        return Chunk(first, samples, stamp)

    def stop(self) -> None:
        self._set_state(SourceState.ENDED, "stopped")
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=2.0)
            self._close()
            with self._cond:
                self._cond.notify_all()

    def counters(self) -> dict[str, int | float | str]:
        out: dict[str, int | float | str] = {
            "port": self.port, "protocol": self.profile.protocol, "state": self._state.value,
            "detail": self.detail,
        }
        if self._thread is not None:
            out.update(self._decoder.count.as_dict())
            out.update(gap_events=self.gap_events, gap_samples=self.gap_samples,
                       lead_off_frames=self.lead_off_frames, disconnects=self.disconnects,
                       reconnects=self.reconnects)
        return out

    # ------------------------------------------------------------------ reader thread
    def _open(self) -> serial.Serial:
        return serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S, exclusive=True)

    def _opened(self, now: float) -> None:
        """A fresh port: forget the partial packet of the old one, restart the health clocks."""
        self._decoder.resync()
        self._last_byte = self._last_valid = now
        self._bytes_since_valid = 0
        self._set_state(SourceState.CONNECTED, f"{self.port} open, waiting for data")

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def _run(self) -> None:
        try:
            self._read_forever()
        except Exception as exc:  # a bug, not a cable: end the source visibly, keep the traceback
            self._set_state(SourceState.ENDED, f"serial reader failed: {exc!r}")
            raise

    def _read_forever(self) -> None:
        backoff = self.backoff_s
        while not self._stopping.is_set():
            if self._port is None:
                if self._stopping.wait(backoff):
                    break
                try:
                    self._port = self._open()
                except (serial.SerialException, OSError) as exc:
                    backoff = min(2 * backoff, self.max_backoff_s)
                    reason = os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc)
                    self._set_state(SourceState.DISCONNECTED,
                                    f"{self.port} gone ({reason}); retrying every {backoff:.1f} s")
                    continue
                backoff = self.backoff_s
                self.reconnects += 1
                self._opened(time.monotonic())
                continue
            try:
                data = self._port.read(1)
                if data:
                    data += self._port.read(self._port.in_waiting)
            except (serial.SerialException, OSError) as exc:
                self._close()
                self.disconnects += 1
                self._set_state(SourceState.DISCONNECTED, f"{self.port} lost ({exc}); reconnecting")
                continue
            self._ingest(data, time.monotonic())

    def _ingest(self, data: bytes, now: float) -> None:
        if data:
            self._last_byte = now
            self._bytes_since_valid += len(data)
            fs = self.profile.fs
            max_gap = None if self._last_frame is None else int((now - self._last_frame + GAP_SLACK_S) * fs)
            frames = self._decoder.feed(data, max_gap)
            if frames:
                self._accept(frames, now)
                return
        if now - self._last_byte > self.silence_s:
            self._set_state(SourceState.DISCONNECTED,
                            f"no data from {self.port} for {now - self._last_byte:.0f} s "
                            "(device off, reset or not streaming?)")
        elif now - self._last_valid > self.no_frames_s:
            self._set_state(SourceState.DISCONNECTED,
                            f"no valid frames from {self.port} in {now - self._last_valid:.0f} s "
                            f"({self._bytes_since_valid} bytes of garbage): wrong --baud or "
                            f"--protocol (now {self.baud} baud, {self.profile.protocol})?")

    def _accept(self, frames: list[Frame], now: float) -> None:
        """Queue the frames' samples in mV, a NaN block before each gap, lead-off as NaN."""
        blocks: list[np.ndarray] = []
        lead_off = False
        for k, frame in enumerate(frames):
            gap = frame.gap_samples
            if gap is None and k == 0 and self._last_frame is not None:
                # Continuity unknown (the device restarted): the wall clock says how long it was.
                batch = sum(len(f.counts) for f in frames)
                gap = max(int(round((now - self._last_frame) * self.profile.fs)) - batch, 0)
            if gap:
                self.gap_events += 1
                self.gap_samples += gap
                blocks.append(np.full(gap, np.nan))
            x = self.profile.to_mv(frame.counts)
            lead_off = bool(frame.status & STATUS_LEAD_OFF)
            if lead_off:
                self.lead_off_frames += 1
                x[:] = np.nan
            blocks.append(x)
        self._last_frame = self._last_valid = now
        self._bytes_since_valid = 0
        samples = np.concatenate(blocks)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        with self._cond:
            if samples.size:
                self._queue.append((samples, now))
            self._set_state(SourceState.CONNECTED, "lead off" if lead_off else "streaming")
            self._cond.notify_all()

    def _set_state(self, state: SourceState, detail: str) -> None:
        if self._state is SourceState.ENDED:
            return  # stop() has the last word over a reader thread that is still finishing
        self._state = state
        self.detail = detail


def fault_summary(counters: dict) -> str:
    """What went wrong on the line, from ``counters()`` as status messages carry it ('' for
    sources that are not serial): damaged frames (CRC errors; bad lines in ASCII), lost frames
    (lost samples in ASCII), gaps and reconnects. The console and the live view show this."""
    if "port" not in counters:
        return ""
    ascii_lines = "bad_lines" in counters
    bad = counters.get("bad_lines" if ascii_lines else "crc_errors", 0)
    lost = counters.get("samples_lost" if ascii_lines else "frames_lost", 0)
    return (f"device {'bad lines' if ascii_lines else 'crc'} {bad} lost {lost} "
            f"gaps {counters.get('gap_events', 0)} reconnects {counters.get('reconnects', 0)}")


def add_serial_arguments(parser: argparse.ArgumentParser, exclusive: argparse._MutuallyExclusiveGroup | None = None) -> None:
    """``--serial PORT`` (in ``exclusive`` with the other sources, if given) and the device options."""
    (exclusive or parser).add_argument(
        "--serial", metavar="PORT", help="a serial ECG device, e.g. /dev/ttyUSB0 (docs/wire_protocol.md)")
    g = parser.add_argument_group("serial device (with --serial)")
    g.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    add_profile_arguments(g)
    g.add_argument("--timestamp-unit", choices=sorted(TIMESTAMP_UNITS), default="ms",
                   help="unit of the time stamps of 'timestamp,value' ASCII lines (default ms)")


def serial_source_from_args(args: argparse.Namespace) -> SerialSource:
    """The serial source the arguments describe, port checked but not opened."""
    try:
        profile = profile_from_args(args)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    if args.baud <= 0:
        raise SourceError(f"--baud must be > 0, got {args.baud}")
    check_port(args.serial)
    return SerialSource(args.serial, profile, baud=args.baud,
                        timestamp_unit_s=TIMESTAMP_UNITS[args.timestamp_unit])
