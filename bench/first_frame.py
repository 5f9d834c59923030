"""First frame, audio-in → mouth-out latency and A/V skew of Pipecat relay sessions (mock).

Beside baselines measured in the same run (below).

    python -m bench.first_frame [--sessions 100] [--concurrency 1] [--lead-in-ms 400]
                                [--signal speech|tone] [--budget 120]

Each session is what a Pipecat bot does, on a raw aiohttp WebSocket (the official client
hides record timestamps): ``POST /v1/pipecat/sessions`` (quality ``mock``), open the relay
socket, wait for the first VIDEO record, then stream speech in real time (20 ms AUDIO
records on the wall clock): ``--lead-in-ms`` of near-silence (±1 LSB), then a burst (real
speech from ``tests/data/speech/greeting.wav`` cut at its first loud sample, or a 200 Hz
tone). Each session starts its stream at a different phase (0–40 ms) of the worker's
25 fps pacer, so the wait for the tick that plays the burst is sampled evenly.

* **first frame**: wall time from sending the POST to receiving the first VIDEO record;
* **audio in → mouth out**: from sending the record that holds the burst's first sample to
  receiving the first VIDEO frame whose mouth is open (the JPEG decoded with Pillow; dark
  pixels counted inside ``MockRenderer.mouth_box``, where a closed mouth is only a thin
  lip line), and to receiving the AUDIO record that plays the burst's first sample;
* **A/V skew**: ``timestamp_ms`` of that VIDEO frame minus ``timestamp_ms`` of that AUDIO
  record (each tick sends both with the same timestamp), and the same difference of
  their arrival times at the client.

The audio → mouth latency is split into the open frame's delivery lag (against the
session's fastest frame, relative to its ``timestamp_ms``) and the rest (the wait for the
tick, plus the fastest delivery); the zeros the pacer padded into the lead-in (ticks that
found less than a frame queued: each delays all later speech) are counted exactly, since
the lead-in is not digital zero.

Baselines, in the same run: a bare WebSocket echo (a Litestar socket on the API's own
uvicorn settings) and a relay echo: a queued session's socket through ``protoface api``
and NATS to a stand-in worker in the load generator that sends every record straight
back (no claim, no pacer, no render) — the network/relay part of the latency, measured
before the worker starts and again after it stops (A-B-A). Its POST → first echo is the
floor of the first frame (create, socket, link and one round trip, no worker).

``protoface api``, ``protoface worker`` and ``protoface supervisor`` run as separate
processes on an embedded nats-server with an ``internal`` plan key; the load generator
is another process. The first ``--warmup`` sessions are run but not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
import wave
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from bench.api_create import Proc, create_key, wait_http
from protoface.api import serving
from protoface.api.config import load_keyring
from protoface.streams.server import EmbeddedNats, free_port

ROOT = Path(__file__).resolve().parent.parent
SPEECH_DIR = ROOT / "tests" / "data" / "speech"
AVATAR = "av_stock_001"
RATE = 16_000
CHUNK = RATE // 50  # 20 ms per AUDIO record, as a real-time client sends them
# The lead-in: ±1 LSB (−90 dBFS), silence to the mouth (its floor is −50 dBFS) but, unlike
# digital zero, told apart from the zeros the pacer pads a tick with when speech runs short.
LEAD_IN = np.tile(np.array([1, -1], dtype="<i2"), CHUNK // 2)
OPEN_PIXELS = 50  # dark pixels in the mouth box; the thinnest open mouth has 2 rows × 50
DARK_RED = 110  # closed lips are (150, 60, 60), an open mouth (70, 20, 30)
TARGET_FIRST_P50, TARGET_FIRST_P99 = 300.0, 600.0
TARGET_ADDED = 120.0  # audio in → mouth out, every session
TARGET_SKEW = 40.0
MIN_SESSIONS = 50


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ── Signals ──────────────────────────────────────────────────────────────────────


def load_wav(name: str) -> np.ndarray:
    """16 kHz mono int16 samples of a bundled utterance (as ``tests/speech.py`` reads them)."""
    with wave.open(str(SPEECH_DIR / name), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def burst(kind: str, seconds: float = 1.0) -> np.ndarray:
    """The burst: starts on its first sample with sound (never a zero), then goes on."""
    n = int(seconds * RATE)
    if kind == "tone":
        out = (np.sin(np.arange(1, n + 1) * 2 * np.pi * 200 / RATE) * 8000).astype("<i2")
    else:
        speech = load_wav("greeting.wav")
        loud = int(np.flatnonzero(np.abs(speech.astype(np.int32)) >= 1000)[0])
        out = speech[loud : loud + n]
    assert out[0] != 0
    return out


# ── Load generator (a child process) ─────────────────────────────────────────────


@dataclass
class Trace:
    """One session, seen by the client. Times are ms after the POST was sent."""

    session_id: str = ""
    warmup: bool = False
    error: str = ""
    post_ms: float = float("nan")
    ws_open_ms: float = float("nan")
    ready_ms: float = float("nan")
    first_video_ms: float = float("nan")
    onset_sent_ms: float = float("nan")
    mouth_open_ms: float = float("nan")  # arrival of the first open-mouth VIDEO
    mouth_ts: int | None = None
    mouth_dark: int = 0
    onset_audio_ms: float = float("nan")  # arrival of the AUDIO record with the onset
    onset_ts: int | None = None
    onset_offset: int = 0  # sample index of the onset inside that record
    spurious: int = 0  # open mouths or non-silent audio before the burst was sent
    frames: int = 0
    phase_ms: float = 0.0  # when the stream started after the first VIDEO arrived
    min_lag_ms: float = float("inf")  # min over VIDEO frames of (arrival − timestamp_ms)
    send_late_ms: float = 0.0  # the load generator's worst lateness against its 20 ms pace
    lead_in_samples: int = 0
    lead_pos: int | None = None  # output sample position of the lead-in's first sample
    # Server side (wall clock, same machine): ms after the POST was sent.
    created_ms: float = float("nan")
    claimed_ms: float = float("nan")
    first_frame_ms: float = float("nan")
    end_status: str = ""

    @property
    def added_ms(self) -> float:
        return self.mouth_open_ms - self.onset_sent_ms

    @property
    def jitter_ms(self) -> float:
        """How much later the open-mouth frame arrived than the session's fastest frame,
        relative to its tick (the pacer's schedule is ``timestamp_ms`` after its start)."""
        if self.mouth_ts is None:
            return float("nan")
        return self.mouth_open_ms - self.mouth_ts - self.min_lag_ms

    @property
    def padded_ms(self) -> float:
        """Zeros the pacer inserted between the lead-in's first sample and the burst's
        (ticks that found less than a frame queued): each ms delays all later speech."""
        if self.lead_pos is None or self.onset_ts is None:
            return float("nan")
        onset_pos = self.onset_ts * RATE // 1000 + self.onset_offset
        return (onset_pos - self.lead_pos - self.lead_in_samples) * 1000 / RATE

    @property
    def audio_back_ms(self) -> float:
        return self.onset_audio_ms - self.onset_sent_ms

    @property
    def skew_ts_ms(self) -> float:
        if self.mouth_ts is None or self.onset_ts is None:
            return float("nan")
        return float(self.mouth_ts - self.onset_ts)

    @property
    def skew_arrival_ms(self) -> float:
        return self.mouth_open_ms - self.onset_audio_ms


@dataclass
class EchoResult:
    rtts_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # POST → first echo (relay only)
    errors: list[str] = field(default_factory=list)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _wall_ms(stamp: object, wall0: float) -> float:
    if not stamp:
        return float("nan")
    return (datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() - wall0) * 1000


class MouthMeter:
    """Dark pixels inside the mock renderer's mouth box of a JPEG frame."""

    def __init__(self) -> None:
        self._boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    def dark(self, jpeg: bytes, width: int, height: int) -> int:
        import io

        from PIL import Image

        from protoface.worker.render.mock import MockRenderer

        box = self._boxes.get((width, height))
        if box is None:
            box = self._boxes[(width, height)] = MockRenderer(width, height).mouth_box
        top, bottom, left, right = box
        with Image.open(io.BytesIO(jpeg)) as image:
            pixels = np.asarray(image.convert("RGB"))
        return int(np.count_nonzero(pixels[top:bottom, left:right, 0] < DARK_RED))


async def _session(
    http: Any, api_url: str, key: str, lead_in_ms: int, signal_kind: str, meter: MouthMeter,
    trace: Trace,
) -> None:
    """Run one session into ``trace`` (errors are recorded, not raised).

    The stream starts ``trace.phase_ms`` after the first VIDEO arrived: the pacer ticks
    every 40 ms from the first frame, so the phase decides how long the burst's first
    record waits for the tick that plays it (0–40 ms); sessions spread it evenly."""
    import aiohttp

    from protoface.streams import records

    headers = {"Authorization": f"Bearer {key}"}
    wall0, t0 = time.time(), time.perf_counter()
    try:
        async with http.post(f"{api_url}/v1/pipecat/sessions", headers=headers,
                             json={"avatar_id": AVATAR, "quality": "mock"}) as response:
            body = await response.read()
            if response.status != 201:
                trace.error = f"create: {response.status} {body[:200]!r}"
                return
        trace.post_ms = _ms(t0)
    except Exception as exc:
        trace.error = f"create: {type(exc).__name__}: {exc}"
        return
    created = json.loads(body)
    trace.session_id = created["session"]["id"]
    relay = created["relay"]

    first_video = asyncio.Event()
    done = asyncio.Event()
    armed_at: list[float] = []  # perf_counter when the burst's first record was sent
    size = [256, 256]

    def on_record(raw: bytes, now: float) -> None:
        record = records.decode(raw)
        kind = record.kind
        if kind is records.Kind.READY:
            if trace.ready_ms != trace.ready_ms:  # nan: the first READY
                trace.ready_ms = (now - t0) * 1000
                size[:] = [int(record.header.get("width", 256)),
                           int(record.header.get("height", 256))]
        elif kind is records.Kind.VIDEO:
            trace.frames += 1
            lag = (now - t0) * 1000 - int(record.header["timestamp_ms"])
            trace.min_lag_ms = min(trace.min_lag_ms, lag)
            if not first_video.is_set():
                trace.first_video_ms = (now - t0) * 1000
                first_video.set()
            if trace.mouth_ts is not None:
                return
            dark = meter.dark(record.blob, size[0], size[1])
            if dark < OPEN_PIXELS:
                return
            if not armed_at:
                trace.spurious += 1
                return
            trace.mouth_open_ms = (now - t0) * 1000
            trace.mouth_ts, trace.mouth_dark = int(record.header["timestamp_ms"]), dark
        elif kind is records.Kind.AUDIO:
            if trace.onset_ts is not None:
                return
            samples = np.frombuffer(record.blob, dtype="<i2")
            timestamp = int(record.header["timestamp_ms"])
            if trace.lead_pos is None:
                ours = np.flatnonzero(samples)  # the pacer pads with exact zeros
                if ours.size:
                    trace.lead_pos = timestamp * RATE // 1000 + int(ours[0])
            loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 1)  # not the ±1 lead-in
            if not loud.size:
                return
            if not armed_at:
                trace.spurious += 1
                return
            trace.onset_audio_ms = (now - t0) * 1000
            trace.onset_ts, trace.onset_offset = timestamp, int(loud[0])
        elif kind is records.Kind.ERROR:
            trace.error = trace.error or f"ERROR record {record.header}"
            done.set()
        if trace.mouth_ts is not None and trace.onset_ts is not None:
            done.set()

    async def receive(ws: Any) -> None:
        async for message in ws:
            now = time.perf_counter()
            if message.type == aiohttp.WSMsgType.BINARY:
                on_record(message.data, now)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                break
        if not done.is_set():
            trace.error = trace.error or f"socket closed ({ws.close_code})"
            done.set()
            first_video.set()

    plan = [LEAD_IN] * (lead_in_ms // 20)
    trace.lead_in_samples = len(plan) * CHUNK
    speech = burst(signal_kind)
    plan += [speech[i : i + CHUNK] for i in range(0, speech.size, CHUNK)]
    onset_index = lead_in_ms // 20

    try:
        async with http.ws_connect(relay["media_url"],
                                   protocols=(relay["protocol"], relay["media_token"])) as ws:
            trace.ws_open_ms = _ms(t0)
            reader = asyncio.create_task(receive(ws))
            try:
                await asyncio.wait_for(first_video.wait(), 10.0)
                if trace.error:
                    return
                # Stream in real time: record j leaves at start + j × 20 ms.
                start = time.perf_counter() + trace.phase_ms / 1000
                for j, chunk in enumerate(plan):
                    if done.is_set():
                        break
                    delay = start + j * 0.020 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    late = (time.perf_counter() - start - j * 0.020) * 1000
                    trace.send_late_ms = max(trace.send_late_ms, late)
                    if j == onset_index:
                        sent = time.perf_counter()
                        trace.onset_sent_ms = (sent - t0) * 1000
                        armed_at.append(sent)
                    await ws.send_bytes(records.encode(
                        records.Kind.AUDIO, {"sample_rate": RATE, "num_channels": 1},
                        chunk.tobytes()))
                await asyncio.wait_for(done.wait(), 3.0)
            except TimeoutError:
                missing = [name for name, value in (("first VIDEO", trace.first_video_ms),
                                                    ("open mouth", trace.mouth_open_ms),
                                                    ("onset AUDIO", trace.onset_audio_ms))
                           if value != value]
                trace.error = trace.error or f"timed out waiting for {', '.join(missing)}"
            finally:
                await _end(http, api_url, headers, trace, wall0)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
    except Exception as exc:
        trace.error = trace.error or f"{type(exc).__name__}: {exc}"
        if trace.end_status == "":
            await _end(http, api_url, headers, trace, wall0)


async def _end(http: Any, api_url: str, headers: dict[str, str], trace: Trace,
               wall0: float) -> None:
    """``POST /v1/sessions/{id}/end``; its view carries the server-side timestamps."""
    try:
        async with http.post(f"{api_url}/v1/sessions/{trace.session_id}/end",
                             headers=headers) as response:
            body = await response.read()
    except Exception as exc:
        trace.end_status = f"end failed: {type(exc).__name__}"
        return
    if response.status != 200:
        trace.end_status = f"end: {response.status}"
        return
    view = json.loads(body)
    trace.end_status = str(view.get("status"))
    trace.created_ms = _wall_ms(view.get("created_at"), wall0)
    trace.claimed_ms = _wall_ms(view.get("started_at"), wall0)
    trace.first_frame_ms = _wall_ms(view.get("first_frame_at"), wall0)


def _phase(n: int) -> float:
    """Session ``n``'s stream phase, 0–40 ms: a golden-ratio sequence (evenly spread)."""
    return (n * 0.6180339887498949) % 1.0 * 40.0


def sessions_load(
    api_url: str, key: str, sessions: int, warmup: int, concurrency: int, lead_in_ms: int,
    signal_kind: str, deadline_s: float,
) -> tuple[list[Trace], float]:
    """Run ``warmup`` sessions one by one, then ``sessions`` on ``concurrency`` clients back
    to back, starting none after ``deadline_s``. Returns the traces and the client CPU."""
    import aiohttp

    async def run() -> list[Trace]:
        meter = MouthMeter()
        traces: list[Trace] = []
        deadline = time.monotonic() + deadline_s
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for n in range(warmup):
                trace = Trace(warmup=True, phase_ms=_phase(n))
                traces.append(trace)
                await _session(http, api_url, key, lead_in_ms, signal_kind, meter, trace)
            left = [sessions]

            async def client() -> None:
                while left[0] > 0 and time.monotonic() < deadline:
                    left[0] -= 1
                    trace = Trace(phase_ms=_phase(sessions - left[0]))
                    traces.append(trace)
                    await _session(http, api_url, key, lead_in_ms, signal_kind, meter, trace)

            await asyncio.gather(*(client() for _ in range(concurrency)))
        return traces

    cpu0 = time.process_time()
    traces = serving.run(run())
    return traces, time.process_time() - cpu0


def ws_echo_load(url: str, pings: int) -> EchoResult:
    """Round trips of 20 ms AUDIO records through a bare WebSocket echo."""
    import aiohttp

    from protoface.streams import records

    record = records.encode(records.Kind.AUDIO, {"sample_rate": RATE, "num_channels": 1},
                            bytes(2 * CHUNK))

    async def run() -> EchoResult:
        result = EchoResult()
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            for i in range(pings + 5):
                t0 = time.perf_counter()
                await ws.send_bytes(record)
                await ws.receive_bytes(timeout=5)
                if i >= 5:
                    result.rtts_ms.append(_ms(t0))
        return result

    return serving.run(run())


def relay_echo_load(api_url: str, key: str, nats_url: str, sessions: int,
                    pings: int) -> EchoResult:
    """Round trips through the relay with a stand-in worker that echoes every record.

    No worker runs: the sessions stay queued, the stand-in attaches to each session's
    media channel as the real worker would, and the session is ended afterwards."""
    import aiohttp

    from protoface.streams import records
    from protoface.streams.eventlog import EventLog
    from protoface.streams.media import MediaChannel

    record = records.encode(records.Kind.AUDIO, {"sample_rate": RATE, "num_channels": 1},
                            bytes(2 * CHUNK))
    headers = {"Authorization": f"Bearer {key}"}

    async def echo(channel: MediaChannel) -> None:
        await channel.link(10.0)
        async for raw in channel.records():
            await channel.send(raw)

    async def run() -> EchoResult:
        result = EchoResult()
        log = await EventLog.connect(nats_url, name="bench-relay-echo")
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(sessions):
                    t0 = time.perf_counter()
                    async with http.post(f"{api_url}/v1/pipecat/sessions", headers=headers,
                                         json={"avatar_id": AVATAR, "quality": "mock"}) as r:
                        body = await r.read()
                        if r.status != 201:
                            result.errors.append(f"create: {r.status} {body[:200]!r}")
                            continue
                    created = json.loads(body)
                    sid, relay = created["session"]["id"], created["relay"]
                    channel = await MediaChannel.open(log, sid, "worker")
                    echoer = asyncio.create_task(echo(channel))
                    try:
                        async with http.ws_connect(
                            relay["media_url"], protocols=(relay["protocol"], relay["media_token"])
                        ) as ws:
                            await ws.send_bytes(record)
                            await ws.receive_bytes(timeout=10)
                            result.first_ms.append(_ms(t0))
                            for _ in range(pings):
                                t1 = time.perf_counter()
                                await ws.send_bytes(record)
                                await ws.receive_bytes(timeout=5)
                                result.rtts_ms.append(_ms(t1))
                    except Exception as exc:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    finally:
                        async with http.post(f"{api_url}/v1/sessions/{sid}/end",
                                             headers=headers) as r:
                            await r.read()
                        echoer.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await echoer
                        await channel.close()
        finally:
            await log.close()
        return result

    return serving.run(run())


# ── The bare WebSocket echo server (``--serve-echo PORT``, its own process) ─────


def serve_echo(port: int) -> None:
    from litestar import Litestar, WebSocket, websocket

    @websocket("/echo")
    async def echo(socket: WebSocket) -> None:  # type: ignore[type-arg]
        await socket.accept()
        while True:  # the relay's own receive loop, minus the relay
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await socket.send_bytes(data if isinstance(data, bytes) else b"")

    app = Litestar(route_handlers=[echo], logging_config=None, openapi_config=None)
    serving.run(serving.server(app, "127.0.0.1", port).serve())


# ── Processes ────────────────────────────────────────────────────────────────────


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_slots(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=2.0) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("protoface_worker_slots_available "):
                return int(float(line.split()[1]))
    return 0


def wait_slots(proc: Proc, api_url: str, slots: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(OSError):
            if free_slots(api_url) >= slots:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name}: {slots} slots never appeared:\n{proc.tail()}")


# ── Report ───────────────────────────────────────────────────────────────────────


def _row(name: str, values: list[float], target: str = "", ok: bool | None = None,
         base: float | None = None, base_name: str = "", signed: bool = False) -> str:
    """A table row; for ``signed`` measures (skews) "max" is the largest magnitude."""
    clean = [v for v in values if v == v]
    p50, p99 = percentile(clean, 0.50), percentile(clean, 0.99)
    peak = max(clean, key=abs if signed else None) if clean else float("nan")
    ratio = f"{p50 / base:.1f}× {base_name}" if base and clean else ""
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    return (f"| {name} | {len(clean)} | {p50:.1f} | {p99:.1f} | {peak:.1f} | {ratio} | "
            f"{target} | {verdict} |")


def report(
    args: argparse.Namespace, traces: list[Trace], ws_echo: EchoResult,
    relay_a: EchoResult, relay_b: EchoResult, cpu: dict[str, float], client_cpu: float,
    elapsed: float,
) -> bool:
    measured = [t for t in traces if not t.warmup]
    good = [t for t in measured if not t.error]
    failed = [t for t in measured if t.error]
    first = [t.first_video_ms for t in good]
    added = [t.added_ms for t in good]
    audio_back = [t.audio_back_ms for t in good]
    skew_ts = [t.skew_ts_ms for t in good]
    skew_arrival = [t.skew_arrival_ms for t in good]
    relay_rtts = relay_a.rtts_ms + relay_b.rtts_ms
    relay_rtt = percentile(relay_rtts, 0.50)
    ws_rtt = percentile(ws_echo.rtts_ms, 0.50)
    floor_first = percentile(relay_a.first_ms + relay_b.first_ms, 0.50)
    net = [a - relay_rtt for a in added]

    p50_first, p99_first = percentile(first, 0.50), percentile(first, 0.99)
    worst_added = max(added, default=float("nan"))
    worst_skew = max((abs(s) for s in skew_ts), default=float("nan"))
    worst_arrival = max((abs(s) for s in skew_arrival), default=float("nan"))
    ok_first = p50_first <= TARGET_FIRST_P50 and p99_first <= TARGET_FIRST_P99
    ok_added = worst_added <= TARGET_ADDED
    ok_skew = worst_skew <= TARGET_SKEW and worst_arrival <= TARGET_SKEW

    print()
    print(f"{len(measured)} sessions ({len(failed)} failed) after {args.warmup} warm-up, "
          f"{args.concurrency} at a time, quality mock (256×256 JPEG, 25 fps), worker "
          f"--slots {args.slots}; {args.lead_in_ms} ms silence then a {args.signal} burst, "
          f"streamed in real time in 20 ms records; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, {elapsed:.0f} s in all")
    print()
    print(f"baseline: bare WebSocket echo RTT p50 {ws_rtt:.2f} ms; relay echo RTT (client → "
          f"api → NATS → stand-in worker → back) p50 {relay_rtt:.2f} ms "
          f"(before {percentile(relay_a.rtts_ms, 0.5):.2f}, after "
          f"{percentile(relay_b.rtts_ms, 0.5):.2f}); POST → first relay echo p50 "
          f"{floor_first:.1f} ms; one frame is 40 ms")
    print()
    print("| measure (ms) | n | p50 | p99 | max | p50 vs baseline | target | |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    print(_row("first frame: POST sent → first VIDEO received", first,
               f"p50 ≤ {TARGET_FIRST_P50:g}, p99 ≤ {TARGET_FIRST_P99:g}", ok_first,
               floor_first, "POST→relay echo"))
    print(_row("audio in → mouth open (VIDEO received)", added,
               f"≤ {TARGET_ADDED:g} (every session)", ok_added))
    print(_row("  same, minus relay echo RTT p50", net))
    print(_row("  of which: open frame's delivery lag vs the session's fastest frame",
               [t.jitter_ms for t in good]))
    print(_row("  of which: wait for the tick that plays it, plus fastest delivery",
               [t.added_ms - t.jitter_ms for t in good]))
    print(_row("  pacer padding inserted during the lead-in (delays the burst)",
               [t.padded_ms for t in good]))
    print(_row("audio in → onset AUDIO received", audio_back))
    print(_row("A/V skew, timestamp_ms (mouth − audio; max = largest |skew|)", skew_ts,
               f"within ±{TARGET_SKEW:g} (every session)", ok_skew, signed=True))
    print(_row("A/V skew, arrival (mouth − audio; max = largest |skew|)", skew_arrival,
               f"within ±{TARGET_SKEW:g} (every session)", ok_skew, signed=True))
    print(_row("bare WebSocket echo RTT", ws_echo.rtts_ms))
    print(_row("relay echo RTT (A-B-A)", relay_rtts))
    print()

    # Where the first frame's time goes: client-side marks, then the server's own stamps.
    def phase(a: str, b: str) -> list[float]:
        return [getattr(t, b) - getattr(t, a) for t in good]

    print("first frame, by phase (ms; client marks, then the server's wall-clock stamps):")
    print()
    print("| phase | p50 | p99 | max |")
    print("|---|---:|---:|---:|")
    rows = [
        ("POST sent → 201 received", [t.post_ms for t in good]),
        ("201 → socket open", phase("post_ms", "ws_open_ms")),
        ("socket open → READY", phase("ws_open_ms", "ready_ms")),
        ("READY → first VIDEO", phase("ready_ms", "first_video_ms")),
        ("server: POST sent → session created (API stamp)", [t.created_ms for t in good]),
        ("server: created → claimed by the worker", phase("created_ms", "claimed_ms")),
        ("server: claimed → first frame sent (worker stamp)",
         phase("claimed_ms", "first_frame_ms")),
        ("server: first frame stamp → VIDEO received", phase("first_frame_ms", "first_video_ms")),
    ]
    for name, values in rows:
        clean = [v for v in values if v == v]
        peak = max(clean) if clean else float("nan")
        print(f"| {name} | {percentile(clean, 0.5):.1f} | {percentile(clean, 0.99):.1f} "
              f"| {peak:.1f} |")
    print()
    warm = [t for t in traces if t.warmup]
    if warm:
        print("warm-up sessions (not counted): first frame "
              + ", ".join(f"{t.first_video_ms:.0f}" for t in warm) + " ms; audio in → mouth "
              + ", ".join(f"{t.added_ms:.0f}" for t in warm) + " ms")
    spurious = sum(t.spurious for t in good)
    offsets = [t.onset_offset / 16 for t in good]
    print(f"onset position inside its AUDIO record: p50 {percentile(offsets, 0.5):.1f} ms "
          f"(0–40: where the tick boundary fell); open mouths or sound before the burst: "
          f"{spurious}; mouth dark pixels at opening p50 "
          f"{percentile([float(t.mouth_dark) for t in good], 0.5):.0f}")
    late = [t.send_late_ms for t in good]
    print(f"load generator lateness against its 20 ms send pace, worst per session: p50 "
          f"{percentile(late, 0.5):.1f} ms, max {max(late, default=float('nan')):.1f} ms")
    per = max(len(traces), 1)
    print("CPU per session (all sessions, warm-up included): "
          + ", ".join(f"{name} {seconds / per * 1000:.0f} ms" for name, seconds in cpu.items())
          + f", load generator {client_cpu / per * 1000:.0f} ms")
    for t in failed[:5]:
        print(f"  failed {t.session_id or '(not created)'}: {t.error} (end: {t.end_status})")
    errors = ws_echo.errors + relay_a.errors + relay_b.errors
    for error in errors[:5]:
        print(f"  baseline error: {error}")
    print()

    checks = [
        (ok_first, f"first frame p50 {p50_first:.1f} ms ≤ {TARGET_FIRST_P50:g}, p99 "
                   f"{p99_first:.1f} ms ≤ {TARGET_FIRST_P99:g}"),
        (ok_added, f"audio in → mouth out, worst {worst_added:.1f} ms ≤ {TARGET_ADDED:g} "
                   f"(p50 {percentile(added, 0.5):.1f}; minus relay RTT p50 "
                   f"{percentile(net, 0.5):.1f})"),
        (ok_skew, f"output A/V skew, worst |timestamp_ms difference| {worst_skew:.0f} ms, "
                  f"worst |arrival difference| {worst_arrival:.1f} ms, both ≤ {TARGET_SKEW:g}"),
        (len(good) >= MIN_SESSIONS and not failed,
         f"{len(good)} measured sessions ≥ {MIN_SESSIONS}, {len(failed)} failed"),
        (not errors, f"{len(errors)} baseline errors"),
    ]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in checks)


def write_traces(path: Path, traces: list[Trace]) -> None:
    derived = ("added_ms", "jitter_ms", "padded_ms", "audio_back_ms", "skew_ts_ms",
               "skew_arrival_ms")
    with path.open("w") as out:
        for trace in traces:
            row = {**asdict(trace), **{name: getattr(trace, name) for name in derived}}
            out.write(json.dumps({k: (None if isinstance(v, float) and v != v else v)
                                  for k, v in row.items()}) + "\n")


# ── The run ──────────────────────────────────────────────────────────────────────


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.first_frame", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100, help="measured sessions")
    parser.add_argument("--warmup", type=int, default=2, help="sessions run first, not counted")
    parser.add_argument("--concurrency", type=int, default=1, help="sessions at a time")
    parser.add_argument("--slots", type=int, default=None,
                        help="worker slots (default: 2 × concurrency + 2)")
    parser.add_argument("--lead-in-ms", type=int, default=400,
                        help="real-time silence before the burst (multiple of 20)")
    parser.add_argument("--signal", choices=("speech", "tone"), default="speech")
    parser.add_argument("--pings", type=int, default=100, help="round trips per baseline")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="start no session after this many seconds of the run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    parser.add_argument("--traces-out", type=Path, default=None,
                        help="write every session's trace here (JSON lines)")
    parser.add_argument("--serve-echo", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo is not None:
        serve_echo(args.serve_echo)
        return 0
    args.slots = args.slots or 2 * args.concurrency + 2
    args.lead_in_ms -= args.lead_in_ms % 20
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="protoface-bench-ff-"))
    procs: list[Proc] = []
    nats = EmbeddedNats(port=free_port(), store_dir=tmp / "jetstream", log_file=tmp / "nats.log")
    env = {
        **os.environ, "PROTOFACE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        # The relay baseline's sessions are created while no worker runs: queue them.
        "PROTOFACE_WHEN_AT_CAPACITY": "queue",
    }
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    try:
        nats.start()
        data_dir = tmp / "data"
        load_keyring(data_dir / "seal-keys.json", create=True)
        key = create_key("bench-first-frame", nats.url, env)
        api_port, echo_port = free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        common = ["--nats-url", nats.url]
        api = Proc("protoface api", [sys.executable, "-m", "protoface", "api", *common, "--host",
                                     "127.0.0.1", "--port", str(api_port), "--data-dir",
                                     str(data_dir)], tmp / "api.log", env)
        procs.append(api)
        supervisor = Proc("protoface supervisor",
                          [sys.executable, "-m", "protoface", "supervisor", *common],
                          tmp / "supervisor.log", env)
        procs.append(supervisor)
        echo = Proc("ws echo", [sys.executable, "-m", "bench.first_frame", "--serve-echo",
                                str(echo_port)], tmp / "echo.log", env)
        procs.append(echo)
        pool.submit(int, 0).result()  # start the load generator outside any measurement
        wait_http(api, f"{api_url}/v1/status")
        wait_http(echo, f"http://127.0.0.1:{echo_port}/")

        print("baselines: WebSocket echo, relay echo (no worker) …", file=sys.stderr, flush=True)
        ws_echo = pool.submit(ws_echo_load, f"ws://127.0.0.1:{echo_port}/echo",
                              args.pings).result(timeout=60)
        echo.stop()
        per = max(1, args.pings // 4)
        relay_a = pool.submit(relay_echo_load, api_url, key, nats.url, 4, per).result(timeout=60)

        worker = Proc("protoface worker", [sys.executable, "-m", "protoface", "worker", *common,
                                           "--slots", str(args.slots), "--data-dir",
                                           str(data_dir)], tmp / "worker.log", env)
        procs.append(worker)
        wait_slots(worker, api_url, args.slots)

        watched = {"api": api.pid, "worker": worker.pid, "supervisor": supervisor.pid}
        if nats.process is not None:
            watched["nats-server"] = nats.process.pid
        cpu0 = {name: _proc_cpu(pid) for name, pid in watched.items()}
        left = max(10.0, args.budget - (time.monotonic() - started))
        print(f"{args.warmup} + {args.sessions} sessions ({args.concurrency} at a time) …",
              file=sys.stderr, flush=True)
        traces, client_cpu = pool.submit(
            sessions_load, api_url, key, args.sessions, args.warmup, args.concurrency,
            args.lead_in_ms, args.signal, left,
        ).result(timeout=left + 60)
        cpu = {}
        for name, pid in watched.items():
            after, before = _proc_cpu(pid), cpu0[name]
            if after is not None and before is not None:
                cpu[name] = after - before
        if not worker.alive():
            raise RuntimeError(f"protoface worker died during the run:\n{worker.tail()}")
        worker.stop()

        print("relay echo again (worker stopped) …", file=sys.stderr, flush=True)
        relay_b = pool.submit(relay_echo_load, api_url, key, nats.url, 4, per).result(timeout=60)

        ok = report(args, traces, ws_echo, relay_a, relay_b, cpu, client_cpu,
                    time.monotonic() - started)
        if args.traces_out is not None:
            write_traces(args.traces_out, traces)
            print(f"per-session traces in {args.traces_out}")
        if args.keep:
            print(f"logs and store in {tmp}")
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        nats.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
