"""Source control: the live view asks the monitor to play another source, or at another speed.

The view holds a DEALER socket (:class:`ControlClient`) connected to the monitor's ``control``
endpoint and sends ``control`` messages (``streamer/messages.py``); the supervisor polls its
ROUTER socket (:class:`ControlServer`) in the main loop it already runs and answers each request
with a ``reply``: ok, or refused and why. Neither side ever waits for the other, and the worker
is not involved. A request's ``argv`` holds ``ecg-monitor``'s own source options, parsed with
``add_source_arguments`` and opened with ``open_source`` (:func:`open_request`) before the
current streamer stops, so a bad record is refused and the current source keeps streaming.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.streamer.messages import Message, MessageError, decode, encode
from ecg_monitor.streamer.source import Source, SourceError
from ecg_monitor.streamer.sources import add_source_arguments, open_source

SOURCE_CMD = "source"


class _RequestParser(argparse.ArgumentParser):
    """Raises :class:`SourceError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise SourceError(message)


def open_request(argv: list[str], current: argparse.Namespace) -> tuple[Source, argparse.Namespace]:
    """The source ``argv`` asks for, checked but not started, and its parsed options.

    ``--data-dir`` and ``--chunk`` default to the monitor's (``current``); everything else to the
    command line's defaults, so a request always starts its source from ``--start`` (0 s).
    Raises :class:`SourceError` or ``RecordError`` with a one-line reason.
    """
    parser = _RequestParser(prog="source request", add_help=False)
    add_source_arguments(parser)
    parser.set_defaults(data_dir=current.data_dir, chunk=current.chunk)
    args = parser.parse_args(argv)
    return open_source(args), args


class ControlServer:
    """The supervisor's end: a bound ROUTER socket, read without blocking the main loop."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = runtime.socket(self.ctx, zmq.ROUTER, hwm=10)
        self.sock.bind(endpoint)

    def receive(self, timeout_s: float) -> list[tuple[bytes, list[str]]]:
        """``(peer, argv)`` of the source requests that arrive within ``timeout_s`` (the most it
        waits); malformed requests are answered ``refused`` here."""
        requests: list[tuple[bytes, list[str]]] = []
        if not self.sock.poll(int(timeout_s * 1000)):
            return requests
        while True:
            try:
                peer, *frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return requests
            try:
                msg = decode(frames)
                if msg.kind != "control" or msg["cmd"] != SOURCE_CMD:
                    raise MessageError(f"not a source request: {msg.kind} {msg.header.get('cmd')!r}")
            except MessageError as exc:
                self.reply(peer, "refused", f"bad request: {exc}")
                continue
            requests.append((peer, msg["argv"]))

    def reply(self, peer: bytes, result: str, detail: str) -> None:
        """Answer one request (dropped, never waited on, if the view has gone)."""
        self.sock.send_multipart([peer, *encode("reply", {"cmd": SOURCE_CMD, "result": result,
                                                          "detail": detail})], zmq.NOBLOCK)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class ControlClient:
    """The view's end: a DEALER socket; sending and reading replies never block."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = runtime.socket(self.ctx, zmq.DEALER, hwm=10)
        self.sock.connect(endpoint)

    def request_source(self, argv: list[str]) -> bool:
        """Ask for the source ``argv`` names; False when the request could not be queued."""
        try:
            self.sock.send_multipart(encode("control", {"cmd": SOURCE_CMD, "argv": list(argv)}), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def replies(self) -> list[Message]:
        """The replies queued so far (malformed ones dropped)."""
        out: list[Message] = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(decode(frames))
            except MessageError:
                continue

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
