"""Device profiles: how to turn a front-end's ADC counts into millivolts at the electrodes.

``mV = (counts - offset) / counts_per_mv``. The numbers follow the parts' data sheets and the
usual breakout boards; a board with other resistors or references is described on the command
line (``--fs``, ``--adc-gain``, ``--adc-offset``) on top of the closest profile.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import numpy as np

PROTOCOLS = ("framed", "ascii")


@dataclass(frozen=True)
class DeviceProfile:
    """Sampling rate, ADC scaling and wire protocol of one kind of device."""

    name: str
    description: str
    fs: float
    counts_per_mv: float
    offset: float = 0.0  # counts at 0 mV
    protocol: str = "framed"
    adc_min: int = -32768
    adc_max: int = 32767

    def to_mv(self, counts: np.ndarray) -> np.ndarray:
        return (np.asarray(counts, dtype=np.float64) - self.offset) / self.counts_per_mv

    def to_counts(self, mv: np.ndarray) -> np.ndarray:
        """ADC counts of a signal in mV, clipped to the ADC range (NaN becomes ``offset``)."""
        x = np.nan_to_num(np.asarray(mv, dtype=np.float64) * self.counts_per_mv + self.offset,
                          nan=self.offset)
        return np.clip(np.rint(x), self.adc_min, self.adc_max).astype(np.int64)

    def with_overrides(self, fs: float | None = None, counts_per_mv: float | None = None,
                       offset: float | None = None, protocol: str | None = None) -> DeviceProfile:
        """This profile with the command-line values that were given."""
        given = {"fs": fs, "counts_per_mv": counts_per_mv, "offset": offset, "protocol": protocol}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(
            "mitdb", "MIT-BIH resolution: 360 Hz, 200 counts/mV (11-bit, 10 mV range); the "
            "simulator's default, lossless for MIT-BIH records", fs=360.0, counts_per_mv=200.0),
        DeviceProfile(
            "ad8232-esp32", "AD8232 breakout (gain 1100) on an ESP32 12-bit ADC over 3.3 V, "
            "reference at mid-supply; our firmware sampling at 360 Hz",
            fs=360.0, counts_per_mv=1100 * 4095 / 3300, offset=2048.0, adc_min=0, adc_max=4095),
        DeviceProfile(
            "ad8232-uno", "AD8232 breakout (gain 1100) on an Arduino Uno 10-bit ADC over 5 V, "
            "the classic analogRead sketch printing lines", fs=360.0,
            counts_per_mv=1100 * 1023 / 5000, offset=512.0, protocol="ascii", adc_min=0, adc_max=1023),
        DeviceProfile(
            "ads1292", "ADS1292 at 500 SPS, PGA gain 6, 2.42 V reference; our firmware sends "
            "the 24-bit code shifted right by 8 (12.3 uV per count)",
            fs=500.0, counts_per_mv=6 * (1 << 23) / 2420.0 / 256),
    )
}

DEFAULT_PROFILE = "mitdb"


def add_profile_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Options that describe the device; shared by ``ecg-monitor --serial`` and the simulator."""
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help=f"device profile (default {DEFAULT_PROFILE}): " + "; ".join(
                            f"{p.name}: {p.fs:g} Hz, {p.counts_per_mv:.4g} counts/mV, {p.protocol}"
                            for p in PROFILES.values()))
    parser.add_argument("--protocol", choices=PROTOCOLS, help="wire protocol (default: the profile's)")
    parser.add_argument("--fs", type=float, metavar="HZ", help="sampling rate (default: the profile's)")
    parser.add_argument("--adc-gain", type=float, metavar="COUNTS_PER_MV",
                        help="ADC counts per mV at the electrodes (default: the profile's)")
    parser.add_argument("--adc-offset", type=float, metavar="COUNTS",
                        help="ADC counts at 0 mV (default: the profile's)")


def profile_from_args(args: argparse.Namespace) -> DeviceProfile:
    """The chosen profile with the values given on the command line; ``ValueError`` if absurd."""
    profile = PROFILES[args.profile or DEFAULT_PROFILE].with_overrides(
        fs=args.fs, counts_per_mv=args.adc_gain, offset=args.adc_offset, protocol=args.protocol)
    if not profile.fs > 0:
        raise ValueError(f"--fs must be > 0, got {profile.fs:g}")
    if profile.counts_per_mv == 0:
        raise ValueError("--adc-gain must not be 0")
    return profile
