"""Soak: N concurrent Pipecat relay sessions (mock tier) churning for a while.

    python -m bench.soak [--sessions 8] [--minutes 10] [--lifetime 20-60]
                         [--ramp 2,4,8,12,16] [--ramp-seconds 30]

``protoface api``, ``protoface supervisor`` and one ``protoface worker`` run as
separate processes on an embedded nats-server. The load generator keeps ``--sessions``
clients busy: each creates a session, opens the relay socket, streams speech-rate audio
(20 ms records on the wall clock) and reads the frames back for a random lifetime, then
ends the session (``POST /end``) and starts another. It reports:

* **memory**: the worker's and the API's RSS, sampled every 5 s; growth = last sample
  against the sample at the end of warm-up (the first 20 % of the run, at least 30 s).
  Target: < 5 %.
* **lost events**: every create and end answered 2xx, looked up afterwards in the event
  log (folded independently of any projection): sessions missing, or acknowledged ends
  not terminal. Target: 0.
* **frame pacing**: per session, each VIDEO record's arrival time against its own
  ``timestamp_ms`` (the pacer's schedule), relative to the session's earliest frame:
  jitter = |Δarrival − Δtimestamp| between consecutive frames, p50/p99 over all
  frames. Target: p99 ≤ 5 ms. A frame is *late* when it arrives more than one frame
  interval (40 ms) behind its schedule.
* **sessions per worker** (``--ramp``): the same load at each N for ``--ramp-seconds``
  on one worker; the largest N whose late frames stay ≤ 1 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from bench.api_create import Proc, create_key, wait_http
from protoface.api.config import load_keyring
from protoface.domain import session as s
from protoface.streams import records
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats, free_port

RATE = 16_000
CHUNK = bytes(640)  # 20 ms of 16 kHz PCM16 (quiet; the mock renders every tick anyway)
FRAME_MS = 40.0


@dataclass
class Stats:
    created: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    refused: dict[int, int] = field(default_factory=dict)
    jitter_ms: list[float] = field(default_factory=list)
    frames: int = 0
    late: int = 0
    errors: int = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def one_session(http: httpx.AsyncClient, key: str, lifetime: float, stats: Stats) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    created = await http.post("/v1/pipecat/sessions", headers=headers,
                              json={"avatar_id": "av_stock_001", "quality": "mock"})
    if created.status_code != 201:
        stats.refused[created.status_code] = stats.refused.get(created.status_code, 0) + 1
        await asyncio.sleep(0.5)
        return
    body = created.json()
    session_id, relay = body["session"]["id"], body["relay"]
    stats.created.add(session_id)
    try:
        async with websockets.connect(
            relay["media_url"], subprotocols=[relay["protocol"]],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Bearer {relay['media_token']}"},
            max_size=None, open_timeout=20,
        ) as socket:
            sender = asyncio.create_task(speak(socket))
            try:
                await asyncio.wait_for(listen(socket, stats), lifetime)
            except TimeoutError:
                pass
            finally:
                sender.cancel()
    except (OSError, websockets.WebSocketException):
        stats.errors += 1
    ended = await http.post(f"/v1/sessions/{session_id}/end", headers=headers)
    if ended.status_code == 200:
        stats.ended.add(session_id)


async def speak(socket: websockets.ClientConnection) -> None:
    record = records.encode(records.Kind.AUDIO, {"sample_rate": RATE, "num_channels": 1}, CHUNK)
    started = time.monotonic()
    n = 0
    while True:
        await socket.send(record)
        n += 1
        await asyncio.sleep(max(0.0, started + n * 0.02 - time.monotonic()))


async def listen(socket: websockets.ClientConnection, stats: Stats) -> None:
    origin: tuple[float, float] | None = None  # (arrival, timestamp_ms) of the earliest frame
    previous: tuple[float, float] | None = None
    async for message in socket:
        now = time.monotonic() * 1000
        if not isinstance(message, bytes):
            continue
        record = records.decode(message, max_bytes=64 * 1024 * 1024)
        if record.kind is not records.Kind.VIDEO:
            continue
        ts = float(record.header["timestamp_ms"])
        stats.frames += 1
        if origin is None or now - ts < origin[0] - origin[1]:
            origin = (now, ts)  # the session's fastest delivery defines its schedule
        if (now - origin[0]) - (ts - origin[1]) > FRAME_MS:
            stats.late += 1
        if previous is not None:
            stats.jitter_ms.append(abs((now - previous[0]) - (ts - previous[1])))
        previous = (now, ts)


async def load(api_url: str, key: str, sessions: int, seconds: float,
               lifetime: tuple[float, float], on_tick: object = None) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            await one_session(http, key, min(left, random.uniform(*lifetime)), stats)

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(sessions)))
    return stats


async def check_log(nats_url: str, stats: Stats) -> tuple[int, int]:
    """(acknowledged creates missing from the log, acknowledged ends not terminal)."""
    log = await EventLog.connect(nats_url, timeout=10)
    states: dict[str, s.Session] = {}
    try:
        async for batch in log.replay_raw(1):
            for stored in batch.decoded():
                if isinstance(stored.event, s.SessionEvent):
                    state = s.evolve(states.get(stored.event.session_id), stored.event)
                    if state is not None:
                        states[stored.event.session_id] = state
    finally:
        await log.close()
    missing = len(stats.created - set(states))
    # An ended session may still be draining (ending) when the run stops.
    unended = sum(1 for i in stats.ended if i in states
                  and states[i].status not in (*s.TERMINAL, "ending"))
    return missing, unended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--lifetime", default="20-60", help="session lifetime range, seconds")
    parser.add_argument("--ramp", default="", help="sessions per worker to try, e.g. 2,4,8")
    parser.add_argument("--ramp-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    args = parser.parse_args(argv)
    lo, hi = (float(x) for x in args.lifetime.split("-"))
    ramp = [int(x) for x in args.ramp.split(",") if x]
    slots = max([args.sessions, *ramp]) + 2

    tmp = Path(tempfile.mkdtemp(prefix="protoface-soak-"))
    nats = EmbeddedNats(port=free_port(), store_dir=tmp / "jetstream", log_file=tmp / "nats.log")
    env = {**os.environ, "PROTOFACE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    procs: list[Proc] = []
    try:
        nats.start()
        data_dir = tmp / "data"
        load_keyring(data_dir / "seal-keys.json", create=True)
        key = create_key("soak", nats.url, env)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        common = ["--nats-url", nats.url]
        api = Proc("api", [sys.executable, "-m", "protoface", "api", *common, "--port", str(port),
                           "--data-dir", str(data_dir)], tmp / "api.log", env)
        procs.append(api)
        procs.append(Proc("supervisor", [sys.executable, "-m", "protoface", "supervisor",
                                         *common], tmp / "supervisor.log", env))
        worker = Proc("worker", [sys.executable, "-m", "protoface", "worker", *common, "--slots",
                                 str(slots), "--data-dir", str(data_dir)],
                      tmp / "worker.log", env)
        procs.append(worker)
        wait_http(api, f"{api_url}/v1/status")
        time.sleep(3)  # the worker announces its slots
        soak(args, api_url, key, nats.url, worker, api, (lo, hi))
        for n in ramp:
            stats = asyncio.run(load(api_url, key, n, args.ramp_seconds, (lo, hi)))
            late = stats.late / max(1, stats.frames)
            print(f"ramp: {n:3d} sessions/worker  frames {stats.frames:6d}  late {late:.2%}  "
                  f"jitter p99 {percentile(stats.jitter_ms, 0.99):.1f} ms", flush=True)
    finally:
        for proc in reversed(procs):
            proc.stop()
        nats.stop()
        if args.keep:
            print(f"logs: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def soak(args: argparse.Namespace, api_url: str, key: str, nats_url: str, worker: Proc,
         api: Proc, lifetime: tuple[float, float]) -> None:
    seconds = args.minutes * 60
    warmup = max(30.0, seconds * 0.2)
    samples: list[tuple[float, int, int]] = []

    async def sample(stop: asyncio.Event) -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - started, rss_kib(worker.pid), rss_kib(api.pid)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    async def run() -> Stats:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        stats = await load(api_url, key, args.sessions, seconds, lifetime)
        stop.set()
        await sampler
        return stats

    stats = asyncio.run(run())
    missing, unended = asyncio.run(check_log(nats_url, stats))
    base = min(samples, key=lambda x: abs(x[0] - warmup))
    last = samples[-1]
    print(f"soak: {args.sessions} sessions for {args.minutes:g} min, "
          f"{len(stats.created)} created, {len(stats.ended)} ended, refused {stats.refused}, "
          f"socket errors {stats.errors}")
    print(f"memory: worker RSS {base[1] / 1024:.0f} → {last[1] / 1024:.0f} MiB "
          f"({last[1] / base[1] - 1:+.1%} after {base[0]:.0f}s warm-up); "
          f"api RSS {base[2] / 1024:.0f} → {last[2] / 1024:.0f} MiB "
          f"({last[2] / base[2] - 1:+.1%})")
    print(f"lost events: {missing} acknowledged creates missing, "
          f"{unended} acknowledged ends not terminal")
    print(f"frames: {stats.frames}, late (> {FRAME_MS:g} ms behind) "
          f"{stats.late / max(1, stats.frames):.2%}, jitter p50 "
          f"{percentile(stats.jitter_ms, 0.5):.1f} ms, p99 "
          f"{percentile(stats.jitter_ms, 0.99):.1f} ms", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
