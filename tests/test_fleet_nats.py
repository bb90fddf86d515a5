"""NATS JetStream fleet: two worker processes, 20 patients, one worker killed with SIGKILL mid-stream.

A real nats-server from the pip wheel (127.0.0.1, free port, temporary store), real worker
processes, chunks published at twice real time. After the kill the survivor must be pinned to
the dead worker's partitions within 3 s; in the events stream no alarm is lost or doubled, no
beat is doubled, and beats and alarms equal an uninterrupted run of the same signals; no chunk
came out of order (no gap, no lost chunk; repeats of unacknowledged chunks are cut and counted).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import nats
import numpy as np
import pytest

from ecg_monitor.streamer.messages import MessageError, decode
from ecg_monitor.transport.natsclient import EVENTS, SAMPLES, to_frames, to_message
from ecg_monitor.transport.server import LocalNatsServer
from fleet_helpers import chunk_messages, ended_message, patient_signal, reference

PATIENTS, PARTITIONS, SECONDS, SPEED, CHUNK = 20, 4, 24.0, 2.0, 90
KILL_AT_S = 6.0  # wall seconds after the first chunk


def start_workers(url: str, homes: list[str]) -> list[subprocess.Popen]:
    """Worker processes started together, returned once each says it is ready."""
    procs = [subprocess.Popen([sys.executable, "-m", "ecg_monitor.workers.cli", "--transport", "nats",
                               "--nats-url", url, "--partitions", str(PARTITIONS), "--home", home],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for home in homes]
    for proc in procs:
        line = proc.stdout.readline()
        assert "ready" in line, proc.stderr.read()
    return procs


async def stream_and_kill(url: str, workers: list[subprocess.Popen], signals: dict[str, object]) -> dict:
    nc = await nats.connect(url)
    seen: dict[str, list[tuple[float, str]]] = defaultdict(list)  # patient -> (receipt, worker)

    async def on_event(msg) -> None:
        m = decode(to_frames(msg.headers, msg.data))
        seen[m["patient"]].append((time.monotonic(), m["worker"]))

    await nc.subscribe("ecg.*.trace", cb=on_event)
    msgs = {p: chunk_messages(p, x, CHUNK) for p, x in signals.items()}
    n = max(len(m) for m in msgs.values())
    t0, killed, victim = time.monotonic(), None, None
    for k in range(n):
        await asyncio.sleep(max(0.0, t0 + k * CHUNK / (360.0 * SPEED) - time.monotonic()))
        for p, m in msgs.items():
            headers, payload = to_message(m[k])
            await nc.publish(f"ecg.{p}.samples", payload, headers=headers)
        if killed is None and time.monotonic() - t0 >= KILL_AT_S:
            owners = {w for p in seen for _, w in seen[p][-1:]}
            victim = next(w for w in workers if any(o.startswith(f"{w.pid}:") for o in owners))
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
    for p, x in signals.items():
        headers, payload = to_message(ended_message(p, len(x)))
        await nc.publish(f"ecg.{p}.samples", payload, headers=headers)
    await nc.flush()
    await asyncio.sleep(3.0)
    moved = {p: min(t for t, w in seen[p] if t > killed and not w.startswith(f"{victim.pid}:")) - killed
             for p in seen if any(t < killed and w.startswith(f"{victim.pid}:") for t, w in seen[p])}
    events = await read_events(nc)
    await nc.close()
    return {"moved": moved, "events": events, "victim": victim}


async def read_events(nc, stream: str = EVENTS) -> list:
    """Every message of a stream, in order (None for one that does not decode: the samples stream
    holds the test's garbage)."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    sub = await js.pull_subscribe(">", stream=stream)
    out = []
    while len(out) < info.state.messages:
        for msg in await sub.fetch(500, timeout=5):
            await msg.ack()
            try:
                out.append(decode(to_frames(msg.headers, msg.data)))
            except MessageError:
                out.append(None)
    return out


def stored_chunks(url: str) -> dict[str, list[int]]:
    """Each fleet patient's chunk sequence numbers as the samples stream holds them, in order."""
    out: dict[str, list[int]] = defaultdict(list)
    for m in asyncio.run(read_all(url, SAMPLES)):
        if m is not None and m.kind == "chunk" and m["source"] != "intruder":
            out[m["patient"]].append(m["seq"])
    return out


def wait_stored(url: str, n: int) -> None:
    """Return as soon as the samples stream holds ``n`` messages (polled about every millisecond)."""
    async def poll() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            try:
                if (await js.stream_info(SAMPLES)).state.messages >= n:
                    break
            except nats.errors.Error:  # the stream is not there yet
                pass
            await asyncio.sleep(0.001)
        await nc.close()
    asyncio.run(poll())


def stop_fleet_and_read(url: str, fleet: subprocess.Popen) -> tuple[list, dict[str, list[int]]]:
    """SIGTERM the fleet (it ends its sources and waits for the last acks), give the ends 2 s to
    reach the worker; then every event and the fleet's chunks as stored."""
    fleet.send_signal(signal.SIGTERM)
    assert fleet.wait(20) == 0
    time.sleep(2.0)
    return asyncio.run(read_all(url)), stored_chunks(url)


def crash(srv: LocalNatsServer) -> None:
    """The server hangs for 0.3 s, then dies (SIGSTOP, SIGKILL): what clients wrote meanwhile sits
    unread in its sockets and is lost with it, as in a real crash under load."""
    os.kill(srv.proc.pid, signal.SIGSTOP)
    time.sleep(0.3)
    srv.kill()


def start_fleet(url: str, patients: int, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """A fleet process and the console lines it prints (read on a thread as they come)."""
    proc = subprocess.Popen([sys.executable, "-m", "ecg_monitor.fleet.cli", "--transport", "nats", "--nats-url", url,
                             "--partitions", str(PARTITIONS), "--patients", str(patients), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_killed_worker_hands_its_patients_over_without_losing_or_doubling_anything():
    signals = {f"bed{i:02d}": patient_signal(i, SECONDS) for i in range(PATIENTS)}
    with LocalNatsServer() as srv:
        workers = start_workers(srv.url, ["0,1", "2,3"])
        try:
            time.sleep(0.5)
            result = asyncio.run(stream_and_kill(srv.url, workers, signals))
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    w.wait(10)
    moved = result["moved"]
    print(f"takeover of {len(moved)} patients: max {max(moved.values(), default=0):.2f} s")
    assert 0 < len(moved) < PATIENTS  # the victim had some patients, not all
    assert max(moved.values()) <= 3.0, moved
    beats, alarms, last_status = defaultdict(list), defaultdict(list), {}
    for m in result["events"]:
        if m.kind == "beats":
            beats[m["patient"]] += [(b["sample"], b["label"], m["worker"]) for b in m["beats"]]
        elif m.kind == "alarm":
            alarms[m["patient"]].append((m["alarm"], m["event"], m["sample"]))
        elif m.kind == "status":
            last_status[m["patient"]] = m
    assert sum(len(a) for a in alarms.values()) >= 2  # patients 0 and 1 raise alarms
    for i, (p, x) in enumerate(signals.items()):
        ref = reference(p, x, CHUNK)
        assert alarms[p] == ref["alarms"], p  # none lost, none doubled, same samples
        got = [(s, lab) for s, lab, _ in beats[p]]
        assert len(set(s for s, _ in got)) == len(got), p  # no beat published twice
        assert got == ref["beats"], p
        cont = last_status[p]["continuity"]  # a chunk out of order would show as a gap and a lost chunk;
        assert (cont["gaps"], cont["lost_chunks"], cont["restarts"]) == (0, 0, 0), (p, cont)  # repeats are cut
        assert last_status[p]["source_state"] == "ended"
    takeovers = [m["fleet"]["takeovers"] for m in last_status.values()]
    assert max(takeovers) == len(moved)
    assert {m["fleet"]["transport"] for m in last_status.values()} == {"connected"}
    survivor = {m["fleet"]["feeds"]: m["fleet"]["lag"] for m in last_status.values()}[PATIENTS]
    assert survivor == {f"part-{k}": 0 for k in range(PARTITIONS)}  # holds every partition, nothing waiting


@pytest.mark.parametrize("command", [
    ["ecg_monitor.workers.cli", "--transport", "nats"],
    ["ecg_monitor.fleet.cli", "--transport", "nats", "--patients", "2"],
    ["ecg_monitor.outputs.ward_alarm_log"],
    ["ecg_monitor.app.cli", "--station"],
    ["ecg_monitor.app.cli", "--station", "--fleet", "2", "--demo"],  # checked before the ward's processes start
], ids=["worker", "fleet", "alarm-log", "station", "station-ward"])
def test_unreachable_server_is_one_line_naming_the_url(command):
    from ecg_monitor.transport.server import free_port
    url = f"nats://127.0.0.1:{free_port()}"
    proc = subprocess.run([sys.executable, "-m", *command, "--nats-url", url], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "unreachable" in lines[0], proc.stderr


def test_server_killed_and_restarted_mid_stream_every_chunk_is_received_or_counted():
    """nats-server crashing under a worker, a fleet of 4 patients and a station reader, right
    after the fleet's first chunks and again mid-stream for 2 s, each time restarted on its store:
    everyone reconnects and says so; every chunk the fleet made was stored once, in order (the
    fleet resends what the stream had not acknowledged) and processed once by the worker; a chunk
    lost before the broker (bed09's, published without acks by the test) is counted as a gap; bad
    messages on a subject are refused and counted."""
    from ecg_monitor.streamer.messages import encode
    from ecg_monitor.transport.nats import NatsEventReader

    def intruder(patient: str) -> tuple[dict, bytes]:
        return to_message(encode("chunk", {"source": "intruder", "seq": 5, "first_sample": 90, "fs": 360.0,
                                           "t_source": 0.0, "patient": patient}, np.zeros(18)))

    bad = [("bed01", (None, b"garbage")),  # malformed: no kind, no header
           ("bed01", intruder("bed02")),  # on bed01's subject, naming bed02: unknown patient
           ("bed01", intruder("bed01"))]  # a second source for bed01: duplicate patient
    # bed09: 40 chunks from the test, chunk 12 lost on its way (before the broker), 20-39 after the outage
    bed09 = [("bed09", to_message(m)) for m in chunk_messages("bed09", patient_signal(9, 40 * 0.05), 18)]
    ended = encode("source", {"source": "sim-bed09", "state": "ended", "fs": 360.0, "next_sample": 720,
                              "counters": {"chunks": 40}, "detail": "", "patient": "bed09"})
    # the malformed and unknown ones before the outage: their acks may die with the server, so they
    # come again and must not be counted twice; the intruder after it (the feed counts a foreign
    # source's chunk each time it sees one)
    before, after = bad[:2] + bed09[:12] + bed09[13:20], bad[2:] + bed09[20:] + [("bed09", to_message(ended))]

    async def inject(url: str, messages: list) -> None:
        nc = await nats.connect(url)
        for patient, (headers, payload) in messages:
            await nc.publish(f"ecg.{patient}.samples", payload, headers=headers)
        await nc.flush()
        await nc.close()

    with LocalNatsServer() as srv:
        worker = start_workers(srv.url, [",".join(map(str, range(PARTITIONS)))])[0]
        fleet, fleet_lines = start_fleet(srv.url, 4)
        wait_stored(srv.url, 4)  # the 4 patients' first states: their first chunks are in flight
        crash(srv)
        time.sleep(1.0)
        srv.start()
        reader = NatsEventReader(srv.url, PARTITIONS)
        try:
            seen: set[str] = set()  # every patient's results on the station reader: the fleet streams
            deadline = time.monotonic() + 30.0
            while len(seen) < 4 and time.monotonic() < deadline:
                reader.drain(lambda m: seen.add(m.header.get("patient")), 0.05)
                time.sleep(0.05)
            asyncio.run(inject(srv.url, before))
            done = {}  # bed09's chunks the worker reports done: a server killed before it stores
            deadline = time.monotonic() + 30.0  # what it was sent would lose them (counted nowhere)
            while done.get("chunks", 0) < 19 and time.monotonic() < deadline:
                reader.drain(lambda m: m.kind == "status" and m["patient"] == "bed09"
                             and done.update(m["continuity"]), 0.05)
                time.sleep(0.05)
            crash(srv)
            away = set()
            for _ in range(20):
                time.sleep(0.1)
                away.add(reader.state())
            srv.start()
            asyncio.run(inject(srv.url, after))
            deadline = time.monotonic() + 10.0  # back-off: 0.5 s, 1 s, 2 s... between attempts
            while reader.state() != "connected" and time.monotonic() < deadline:
                time.sleep(0.1)
            back = reader.state()
            time.sleep(2.0)  # the fleet goes on after the outage
            events, stored = stop_fleet_and_read(srv.url, fleet)
        finally:
            reader.close()
            for proc in (fleet, worker):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
    worker_err, fleet_err = worker.stderr.read(), fleet.stderr.read()
    print(worker_err, fleet_err, "\n".join(fleet_lines))
    assert any("transport reconnecting, outbox" in line for line in fleet_lines), fleet_lines
    assert fleet_lines[-1].endswith("0 unsent | transport closed, outbox 0"), fleet_lines
    assert away == {"reconnecting"} and back == "connected"
    for err in (worker_err, fleet_err):
        assert f"NATS {srv.url}: disconnected; reconnecting" in err and "reconnected after" in err, err
    last = {m["patient"]: m for m in events if m.kind == "status"}
    assert sorted(last) == ["bed01", "bed02", "bed03", "bed04", "bed09"]
    for p, st in sorted(last.items()):
        c, sent = st["continuity"], st["source_counters"]["chunks"]
        print(f"{p}: sent {sent}, processed {c['chunks'] - c['duplicates']}, repeats cut {c['duplicates']}, "
              f"lost {c['lost_chunks']} in {c['gaps']} gaps ({c['gap_samples']} samples)")
        assert st["source_state"] == "ended" and sent >= 40
        assert c["chunks"] - c["duplicates"] + c["lost_chunks"] == sent, (p, c, sent)  # none lost silently
        assert (c["gaps"] > 0) == (c["lost_chunks"] > 0) and c["gap_samples"] == 18 * c["lost_chunks"]
        assert c["restarts"] == 0
        if p != "bed09":  # the fleet's: stored once each, in order, and none lost (repeats cut are the
            assert stored[p] == list(range(sent)), (p, stored[p])  # worker's acks lost in a crash)
            assert (c["chunks"] - c["duplicates"], c["lost_chunks"], st["source_counters"]["unsent"]) == (sent, 0, 0)
    assert (last["bed09"]["continuity"]["lost_chunks"], last["bed09"]["continuity"]["gaps"]) == (1, 1)
    fleet_counts = last["bed01"]["fleet"]
    print("refused:", {k: fleet_counts[k] for k in ("malformed", "unknown_patient", "duplicate_patient")})
    assert (fleet_counts["malformed"], fleet_counts["unknown_patient"], fleet_counts["duplicate_patient"]) == (1, 1, 1)
    assert last["bed01"]["continuity"]["foreign"] == 1  # the intruder, refused by bed01's feed


async def read_all(url: str, stream: str = EVENTS) -> list:
    nc = await nats.connect(url)
    try:
        return await read_events(nc, stream)
    finally:
        await nc.close()


def test_server_away_longer_than_the_outbox_holds_dropped_chunks_are_counted_by_fleet_and_worker():
    """A fleet keeping 0.5 s of chunks per patient, the server crashing for 2 s (3.5 s until the
    fleet's back-off finds it again): the oldest chunks wait and are stored, the newer ones that
    find the outbox full are dropped and counted per patient by the fleet (its status and console
    line), and the worker counts exactly those (one gap; more only if acks were too slow to free
    the outbox between two ticks)."""
    with LocalNatsServer() as srv:
        worker = start_workers(srv.url, [",".join(map(str, range(PARTITIONS)))])[0]
        fleet, fleet_lines = start_fleet(srv.url, 2, "--outbox", "0.5")
        try:
            wait_stored(srv.url, 20)
            crash(srv)
            time.sleep(2.0)
            srv.start()
            deadline = time.monotonic() + 10.0
            while not any("transport connected" in line for line in fleet_lines) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # streaming again
            events, stored = stop_fleet_and_read(srv.url, fleet)
        finally:
            for proc in (fleet, worker):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
    print("\n".join(fleet_lines))
    last = {m["patient"]: m for m in events if m.kind == "status"}
    assert sorted(last) == ["bed01", "bed02"]
    for p, st in sorted(last.items()):
        c, made, unsent = st["continuity"], st["source_counters"]["chunks"], st["source_counters"]["unsent"]
        print(f"{p}: made {made}, dropped at the fleet (outbox full) {unsent}, processed "
              f"{c['chunks'] - c['duplicates']}, lost {c['lost_chunks']} in {c['gaps']} gaps ({c['gap_samples']} samples)")
        assert unsent > 10  # more than the outbox held: 20 chunks a second for 3 s and more
        assert (c["lost_chunks"], c["gap_samples"]) == (unsent, 18 * unsent) and c["gaps"] >= 1
        assert c["chunks"] - c["duplicates"] + unsent == made
        held = stored[p]  # in order, each once, all but the dropped ones
        assert held == sorted(set(held)) and len(held) + unsent == made, held
    assert any("transport reconnecting, outbox" in line and "unsent (bed01" in line for line in fleet_lines)
    final = fleet_lines[-1]
    assert final.startswith(f"fleet: 2 patients, chunks {sum(st['source_counters']['chunks'] for st in last.values())} "
                            f"made, {sum(st['source_counters']['unsent'] for st in last.values())} unsent"), final


def test_alarm_log_killed_mid_stream_resumes_without_missing_or_doubling_a_row(tmp_path):
    from ecg_monitor.streamer.messages import encode
    path = tmp_path / "alarms.csv"

    def alarms(first: int, n: int) -> list[list[bytes]]:
        return [encode("alarm", {"source": "sim", "worker": "1:0", "alarm": "pause", "priority": "medium",
                                 "event": ("onset", "end")[i % 2], "sample": 1000 * i, "record_time_s": i * 2.78,
                                 "heart_rate_bpm": None, "detail": "", "patient": f"bed{i % 3:02d}"})
                for i in range(first, first + n)]

    async def publish(url: str, frames_list: list[list[bytes]]) -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for frames in frames_list:
            headers, payload = to_message(frames)
            await js.publish(f"ecg.{decode(frames)['patient']}.alarms", payload, headers=headers)
        await nc.close()

    def rows() -> list[str]:
        return path.read_text().splitlines()[1:] if path.exists() else []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "ecg_monitor.outputs.ward_alarm_log", "--nats-url", srv.url,
                                 "--csv", str(path), "--partitions", str(PARTITIONS)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "ready" in proc.stdout.readline(), proc.stderr.read()
        return proc

    def wait_rows(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(rows()) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    with LocalNatsServer() as srv:
        log = start()
        asyncio.run(publish(srv.url, alarms(0, 10)))
        wait_rows(10)
        os.kill(log.pid, signal.SIGKILL)
        log.wait()
        asyncio.run(publish(srv.url, alarms(10, 10)))  # while no log runs
        log = start()
        wait_rows(20)
        time.sleep(0.5)  # nothing more may come
        log.send_signal(signal.SIGTERM)
        log.wait(10)
    got = rows()
    assert path.read_text().splitlines()[0].startswith("patient,wall_time,source")
    assert len(got) == 20
    assert sorted(int(r.split(",")[-2]) for r in got) == [1000 * i for i in range(20)]  # sample column
    assert {r.split(",")[0] for r in got} == {"bed00", "bed01", "bed02"}
