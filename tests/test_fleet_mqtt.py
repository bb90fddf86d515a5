"""Wearables over MQTT: ``ecg-monitor-fleet --mqtt`` publishes patients' chunks with paho-mqtt
(MQTT 3.1.1, QoS 1) into a real nats-server's MQTT listener; a fleet worker on NATS takes them from
its partitions like any other chunks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from ecg_monitor.transport.server import LocalNatsServer, free_port
from test_fleet_nats import read_all, start_workers

PY = sys.executable


def test_fleet_over_mqtt_reaches_a_nats_worker_whole_and_in_order():
    with LocalNatsServer(mqtt=True) as srv:
        worker = start_workers(srv.url, ["0,1,2,3"])[0]  # creates the streams the MQTT chunks land in
        try:
            fleet = subprocess.run([PY, "-m", "ecg_monitor.fleet.cli", "--mqtt", f"127.0.0.1:{srv.mqtt_port}",
                                    "--patients", "3", "--speed", "4", "--duration", "20"],
                                   capture_output=True, text=True, timeout=60)
            assert fleet.returncode == 0, fleet.stderr
            time.sleep(2.0)  # the last chunks reach the worker
            events = asyncio.run(read_all(srv.url))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
    last = {m["patient"]: m for m in events if m.kind == "status"}
    assert sorted(last) == ["bed01", "bed02", "bed03"]
    for p, st in sorted(last.items()):
        c, sent = st["continuity"], st["source_counters"]["chunks"]
        beats = sum(st["beats_by_class"].values())
        print(f"{p} over MQTT: sent {sent}, received {c['chunks']}, gaps {c['gaps']}, lost {c['lost_chunks']}, "
              f"duplicates {c['duplicates']}, malformed {c['malformed']}, beats {beats}")
        assert st["source_state"] == "ended" and sent == 20 * 360 // 18
        assert (c["chunks"], c["gaps"], c["lost_chunks"], c["duplicates"], c["malformed"]) == (sent, 0, 0, 0, 0)
        assert beats >= 15  # 20 s of a synthetic patient


def test_unreachable_mqtt_listener_is_one_line():
    where = f"127.0.0.1:{free_port()}"
    proc = subprocess.run([PY, "-m", "ecg_monitor.fleet.cli", "--mqtt", where, "--patients", "1"],
                          capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and f"mqtt://{where}" in lines[0], proc.stderr
