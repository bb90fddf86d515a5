"""SerialSource on real pseudo-terminals fed by ``ecg-monitor-sim``: unplug, faults, bad ports."""

from __future__ import annotations

import grp
import os
import pty
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from serial_sim import Recorder, simulator, stream_through

from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.evaluation.ec57 import match_beats
from ecg_monitor.firmware_bridge.profiles import PROFILES
from ecg_monitor.firmware_bridge.serial_source import SerialSource, check_port
from ecg_monitor.streamer.source import SourceError, SourceState
from ecg_monitor.streamer.synthetic import SyntheticSource

MITDB = PROFILES["mitdb"]
FRAME = 10  # the simulator's default samples per frame


def test_unplug_for_3_s_reconnects_within_2_s_and_marks_the_gap() -> None:
    sim, src, rec = stream_through(MITDB, "--seconds", "10", "--disconnect-at", "2", "--disconnect-for", "3")
    unplugged, back = sim.event_time("unplugged"), sim.event_time("plugged in again")
    lost = [t for t, s, _ in rec.states if s is SourceState.DISCONNECTED and t >= unplugged]
    again = [t for t, s, _ in rec.states if s is SourceState.CONNECTED and t > unplugged]
    assert lost and lost[0] - unplugged < 0.5, rec.states
    assert again and again[0] - back < 2.0, (back, rec.states)

    x = rec.samples
    c = src.counters()
    assert len(x) == 3600  # 10 s of device time: sample numbers stay true to time
    gap = np.flatnonzero(np.isnan(x))
    assert c["gap_events"] == c["seq_gaps"] == 1 and c["reconnects"] == 1
    assert len(gap) == c["gap_samples"] == FRAME * c["frames_lost"]
    assert gap[-1] - gap[0] + 1 == len(gap)  # one block
    assert gap[0] == 2 * 360  # starts where the cable was pulled
    assert 3.0 * 360 <= len(gap) <= 5.0 * 360  # 3 s out + the time to reopen the port

    # Outside the gap every sample is the device's, exactly (200 counts/mV is lossless here).
    synthetic = SyntheticSource(seed=0)
    synthetic.start()
    truth = np.rint(synthetic.read(3600).samples * 200) / 200
    assert np.array_equal(x, np.where(np.isnan(x), np.nan, truth), equal_nan=True)
    # The detector neither invents a beat at the gap edges nor loses one away from them.
    got = np.array([b.sample for b in DetectorPipeline(MITDB.fs, classifier=None).update(x).beats])
    ref = np.array([b.sample for b in DetectorPipeline(MITDB.fs, classifier=None).update(truth).beats])
    assert not ((got >= gap[0]) & (got <= gap[-1])).any()
    m = match_beats(ref, got, window=54)
    assert len(m.extra) == 0
    assert all(gap[0] - 54 <= ref[i] <= gap[-1] + 54 for i in m.missed)  # only beats the gap hid
    assert (got > gap[-1]).sum() >= 3  # monitoring resumed


def test_faulty_cable_every_frame_accounted_for() -> None:
    """Corrupted and dropped frames become NaN of the right length, garbage is discarded."""
    sim, src, rec = stream_through(MITDB, "--seconds", "20", "--speed", "4", "--corrupt-rate", "0.05",
                                   "--drop-rate", "0.05", "--garbage-rate", "0.1", "--seed", "5")
    c = src.counters()
    x = rec.samples
    assert c["frames"] == sim.stat("sent")
    assert c["crc_errors"] + c["malformed"] >= sim.stat("corrupted")
    assert c["bytes_discarded"] > 0 and c["seq_restarts"] == 0
    assert np.isnan(x).sum() == c["gap_samples"] == FRAME * c["frames_lost"]
    assert len(x) == FRAME * (c["frames"] + c["frames_lost"])
    lost_in_stream = sim.stat("dropped") + sim.stat("corrupted")
    assert c["frames_lost"] <= lost_in_stream <= c["frames_lost"] + 3  # the last frames may be lost unseen


def test_ascii_with_timestamps_sees_lost_lines() -> None:
    uno = PROFILES["ad8232-uno"]
    _, src, rec = stream_through(uno, "--profile", "ad8232-uno", "--timestamps", "--seconds", "8",
                                   "--speed", "4", "--drop-rate", "0.05", "--seed", "2")
    c = src.counters()
    x = rec.samples
    assert c["protocol"] == "ascii" and c["bad_lines"] == 0 and c["seq_gaps"] > 0
    assert np.isnan(x).sum() == c["samples_lost"] == c["gap_samples"]
    assert abs(len(x) - 8 * 360) <= FRAME * 3  # true to time within the frames lost at the end
    assert np.nanmax(np.abs(x)) < 5.0  # counts -> mV with the Uno's scaling


def test_ascii_without_timestamps_fills_an_unplug_from_the_clock() -> None:
    """Plain lines carry no sequence: after a reconnect the wall clock sizes the gap."""
    _, src, rec = stream_through(MITDB.with_overrides(protocol="ascii"), "--protocol", "ascii", "--seconds", "6",
                                   "--disconnect-at", "2", "--disconnect-for", "1.5")
    x = rec.samples
    gap = np.flatnonzero(np.isnan(x))
    assert src.counters()["gap_events"] == 1 and gap[-1] - gap[0] + 1 == len(gap)
    assert abs(gap[0] - 2 * 360) <= FRAME  # where the cable was pulled
    assert abs(len(x) - 6 * 360) <= 0.05 * 360  # true to time within 50 ms


@pytest.mark.parametrize(("device", "monitor"), [("ascii", "framed"), ("framed", "ascii")])
def test_wrong_protocol_says_no_valid_frames(device: str, monitor: str) -> None:
    with simulator("--protocol", device, "--seconds", "8") as sim:
        src = SerialSource(sim.port, MITDB.with_overrides(protocol=monitor))
        src.start()
        rec = Recorder(src)
        found = rec.wait_for(lambda r: src.state is SourceState.DISCONNECTED, timeout=5)
        detail = src.detail
        rec.stop()
    assert found, rec.states  # within 5 s of opening the port, 4.5 s of garbage
    assert "no valid frames" in detail and "--protocol" in detail and "--baud" in detail
    assert len(rec.samples) == 0


def test_silent_port_reports_no_data() -> None:
    master, slave = pty.openpty()
    try:
        src = SerialSource(os.ttyname(slave), MITDB, silence_s=0.5)
        src.start()
        rec = Recorder(src)
        found = rec.wait_for(lambda r: src.state is SourceState.DISCONNECTED, timeout=3)
        detail = src.detail
        rec.stop()
    finally:
        os.close(master)
        os.close(slave)
    assert found and "no data" in detail


def test_missing_port_lists_the_ports() -> None:
    with pytest.raises(SourceError, match=r"(?s)/dev/ttyNOPE0 does not exist.*Available ports:"):
        check_port("/dev/ttyNOPE0")
    with pytest.raises(SourceError, match="does not exist"):
        SerialSource("/dev/ttyNOPE0", MITDB).start()


def test_permission_denied_says_how_to_fix() -> None:
    """A tty of group dialout, opened by a user outside it, is refused: the message says the fix."""
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    if os.geteuid() == 0:
        os.chown(path, -1, grp.getgrnam("dialout").gr_gid)
        os.chmod(path, 0o660)  # as udev sets up /dev/ttyUSB*
    script = textwrap.dedent(f"""
        import os
        from ecg_monitor.firmware_bridge.profiles import PROFILES
        from ecg_monitor.firmware_bridge.serial_source import SerialSource, check_port
        from ecg_monitor.streamer.source import SourceError
        if os.geteuid() == 0:
            os.setgroups([]); os.setgid(65534); os.setuid(65534)
        else:
            os.chmod({path!r}, 0)
        for attempt in (lambda: check_port({path!r}), SerialSource({path!r}, PROFILES["mitdb"]).start):
            try:
                attempt()
            except SourceError as exc:
                print(exc)
    """)
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stderr
    for line in lines:
        assert f"no permission to open serial port {path}" in line and "usermod -aG" in line
        assert os.geteuid() != 0 or "group 'dialout'" in line


def test_500_hz_device_reaches_the_pipeline_at_360_hz() -> None:
    """An ADS1292 at 500 SPS: resampled on the fly, its beats are the 360 Hz signal's beats."""
    _, src, rec = stream_through(PROFILES["ads1292"], "--profile", "ads1292", "--seconds", "10", "--speed", "4")
    x = rec.samples
    assert src.fs == 360.0 and src.counters()["samples"] == 5000
    assert 3600 - 6 <= len(x) <= 3600 and np.isfinite(x).all()
    synthetic = SyntheticSource(seed=0)
    synthetic.start()
    truth = synthetic.read(3600).samples
    got = np.array([b.sample for b in DetectorPipeline(360.0).update(x).beats])  # with the classifier
    ref = np.array([b.sample for b in DetectorPipeline(360.0).update(truth).beats])
    m = match_beats(ref, got, window=7)  # 20 ms
    assert len(ref) >= 8 and len(m.pairs) == len(ref) == len(got)
