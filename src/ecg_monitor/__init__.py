"""ecg-monitor: a real-time streaming ECG monitor.

Data flow (one sub-package per stage):
``replay`` / ``firmware_bridge`` / ``fleet`` (sources) -> ``streamer`` -> ``transport`` (ZeroMQ,
NATS) -> ``detector`` / ``workers`` (causal pipeline, many feeds per process) -> ``gui`` /
``station`` / ``outputs`` (console, alarm logs); ``app`` starts and supervises the processes.
"""

__version__ = "0.1.0"

#: Sampling rate of the whole pipeline; other rates are resampled on input.
PIPELINE_FS = 360.0
