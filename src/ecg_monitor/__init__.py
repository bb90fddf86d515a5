"""ecg-monitor: a real-time streaming ECG monitor.

Data flow (one sub-package per stage):
``replay`` / ``firmware_bridge`` (sources) -> ``streamer`` (ZeroMQ publisher)
-> ``detector`` (causal worker pipeline) -> ``gui`` / alarm log.
"""

__version__ = "0.1.0"

#: Sampling rate of the whole pipeline; other rates are resampled on input.
PIPELINE_FS = 360.0
