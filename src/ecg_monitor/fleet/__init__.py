"""Fleet sources: many patients published through one transport (``ecg-monitor-fleet``)."""
