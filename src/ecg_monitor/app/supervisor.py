"""The monitor's process supervisor: start children in order, restart a dead worker, stop all.

Children fork from a forkserver that has imported their modules once, so a restarted worker is
up in a fraction of a second, and no child inherits the supervisor's sockets or threads. Each
child reports ready through an Event; a dead worker is restarted at once, unless it keeps
dying (a crash loop ends the monitor with an error).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import zmq

from ecg_monitor.app import runtime
from ecg_monitor.detector import worker
from ecg_monitor.streamer.messages import encode
from ecg_monitor.streamer.source import Source, SourceState


def log(text: str) -> None:
    print(f"[ecg-monitor] {text}", file=sys.stderr, flush=True)


PRELOAD = ["ecg_monitor.detector.worker", "ecg_monitor.streamer.publisher", "ecg_monitor.outputs.alarm_log",
           "ecg_monitor.outputs.console"]
READY_TIMEOUT_S = 60.0
RESTART_SETTLE_S = 0.2  # a restarted worker waits this long for subscribers to reconnect
STOP_TIMEOUT_S = 5.0
CRASH_LOOP_S, CRASH_LOOP_RESTARTS = 30.0, 5  # more worker deaths than this in that long: give up


@dataclass
class Child:
    """One supervised process: what to run, whether to restart it, and its current process."""

    name: str
    target: Callable[..., int]
    args: tuple
    restart: bool = False
    proc: mp.Process | None = None
    ready: object = None
    starts: int = 0


def _exit_with(target: Callable[..., int], *args) -> None:
    """Run a child's entry point and make its return value the process's exit code."""
    sys.exit(target(*args))


class Supervisor:
    def __init__(self, endpoints: runtime.Endpoints, stop: runtime.StopFlag) -> None:
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.endpoints = endpoints
        self.stop = stop
        self.children: list[Child] = []
        self.restarts: list[float] = []

    def start(self, child: Child, wait: bool = True) -> None:
        """Start (or restart) a child; with ``wait``, block until it says it is ready."""
        child.ready = self.ctx.Event()
        child.proc = self.ctx.Process(target=_exit_with, args=(child.target, *child.args, child.ready),
                                      name=child.name)
        sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: Ctrl-C is the supervisor's
        try:
            child.proc.start()
        finally:
            signal.signal(signal.SIGINT, sigint)
        child.starts += 1
        if child not in self.children:
            self.children.append(child)
        if wait:
            self.wait_ready([child])

    def wait_ready(self, children: list[Child]) -> None:
        t0 = time.monotonic()
        for child in children:
            while not child.ready.wait(0.05):
                if not child.proc.is_alive():
                    raise RuntimeError(f"{child.name} exited during start-up (code {child.proc.exitcode})")
                if self.stop:
                    return  # stopping (e.g. SIGTERM to the whole process group): no error to report
                if time.monotonic() - t0 > READY_TIMEOUT_S:
                    raise RuntimeError(f"{child.name} not ready after {time.monotonic() - t0:.0f} s")

    def keep_alive(self, wk: Child, subs: list[Child]) -> None:
        """Restart the worker whenever it is gone, and a restartable subscriber that failed."""
        if self.stop:
            return
        if not wk.proc.is_alive():
            self.restart_worker(wk)
        for child in subs:
            if child.restart and child.proc.exitcode not in (None, 0, runtime.EXIT_DATA_LOST):
                log(f"{child.name} died (exit code {child.proc.exitcode}); restarting it")
                self.start(child, wait=False)

    def restart_worker(self, child: Child) -> None:
        code = child.proc.exitcode
        t0 = time.monotonic()
        self.restarts = [t for t in self.restarts if t0 - t < CRASH_LOOP_S] + [t0]
        if len(self.restarts) > CRASH_LOOP_RESTARTS:
            raise RuntimeError(f"the detector worker died {len(self.restarts)} times in {CRASH_LOOP_S:.0f} s")
        cfg: worker.WorkerConfig = child.args[0]
        child.args = (replace(cfg, incarnation=child.starts, settle_s=RESTART_SETTLE_S),)
        self.start(child)
        log(f"detector worker died (exit code {code}); restarted as incarnation {child.starts - 1} "
            f"in {time.monotonic() - t0:.2f} s")

    def end_of_source(self, source: Source, detail: str) -> None:
        """Tell the worker that ``source`` ended (its streamer died, or was replaced, without
        saying so)."""
        ctx = zmq.Context()
        sock = runtime.socket(ctx, zmq.PUSH, linger_ms=1000)
        sock.connect(self.endpoints.chunks)
        sock.send_multipart(encode("source", {
            "source": source.source_id, "state": SourceState.ENDED.value, "fs": source.fs,
            "next_sample": 0, "counters": {}, "detail": detail,
        }))
        sock.close()
        ctx.term()

    def shutdown(self) -> None:
        """Stop children in start order reversed (streamer first)."""
        for child in reversed(self.children):
            self.stop_child(child)

    @staticmethod
    def stop_child(child: Child) -> None:
        """SIGTERM one child and wait for it, escalating to SIGKILL."""
        if child.proc is not None and child.proc.is_alive():
            child.proc.terminate()
            child.proc.join(STOP_TIMEOUT_S)
            if child.proc.is_alive():
                log(f"{child.name} did not stop; killing it")
                child.proc.kill()
                child.proc.join()
