"""The single-patient monitor's processes: ``ecg-monitor`` (``cli``), the supervisor that starts,
restarts and stops them, the live view's source control, and the plumbing every process shares
(``runtime``: endpoints, stop flag, dying with the parent)."""
