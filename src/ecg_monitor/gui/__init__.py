"""Desktop live view (PySide6 + pyqtgraph): a ZeroMQ subscriber of the detector worker."""

from ecg_monitor.gui.qtcompat import check_pyside

check_pyside()  # before any widget exists (see qtcompat)
