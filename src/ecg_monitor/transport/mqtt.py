"""Chunks published the way a wearable would: MQTT 3.1.1 into nats-server's MQTT listener.

nats-server maps the MQTT topic ``ecg/<patient>/samples`` to the NATS subject
``ecg.<patient>.samples``, so the samples stream stores a device's chunks like any other and
workers take them from their partitions unchanged. MQTT 3.1.1 has no headers: the payload is the
NATS one (JSON header, ``0x00``, samples) and the kind is read from the JSON header
(:func:`ecg_monitor.transport.natsclient.to_frames`). QoS 1, so the broker acknowledges every
chunk and the client resends what was not acknowledged after a reconnect (with back-off). The
streams must exist (a worker or the station creates them when it connects).
"""

from __future__ import annotations

import os
import socket

import paho.mqtt.client as mqtt

from ecg_monitor.transport.base import ChunkSender
from ecg_monitor.transport.natsclient import to_message

INFLIGHT = 1000  # unacknowledged QoS 1 chunks before publish queues (16 patients send 320 a second)


class MqttUnavailable(RuntimeError):
    """The MQTT listener cannot be reached; the message names it."""


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); a ValueError that says what was expected."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:1883, got {text!r}")
    return host, int(port)


class MqttChunkSender(ChunkSender):
    """Publishes each patient's chunk and source messages on ``ecg/<patient>/samples``, QoS 1."""

    def __init__(self, host: str, port: int, client_id: str | None = None) -> None:
        self.where = f"mqtt://{host}:{port}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"ecg-fleet-{os.getpid()}",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.max_queued_messages_set(0)  # no limit: a chunk waits, it is never dropped
        self.client.reconnect_delay_set(min_delay=1, max_delay=8)
        try:
            self.client.connect(host, port, keepalive=30)
        except (OSError, socket.timeout) as exc:
            raise MqttUnavailable(f"MQTT listener unreachable at {self.where}: {exc}") from None
        self.client.loop_start()
        self.last: mqtt.MQTTMessageInfo | None = None

    def send(self, patient: str | None, frames: list[bytes]) -> bool:
        _, payload = to_message(frames)
        self.last = self.client.publish(f"ecg/{patient}/samples", payload, qos=1)
        return True

    def close(self) -> None:
        """Wait (up to 10 s) until the broker acknowledged what was sent, then disconnect."""
        if self.last is not None:
            try:
                self.last.wait_for_publish(10)
            except (RuntimeError, ValueError):  # not connected any more: nothing more to wait for
                pass
        self.client.disconnect()
        self.client.loop_stop()
