"""``POST /v1/sessions`` throughput and latency, beside two baselines from the same run.

    python -m bench.api_create [--seconds 10] [--concurrency 50] [--warmup 2]

The machine is small and noisy, so every figure is printed as a ratio against
baselines measured in the same run:

* ``bare litestar``: ``bench.baseline_app``, one Litestar POST endpoint that decodes
  the same JSON body with msgspec, on the same uvicorn settings as ``protoface api``;
* ``raw jetstream``: nats-py JetStream publishes (no HTTP) of a stored ``session.created``
  event's bytes to the same ``EVENTS`` stream on ``events.bench.<n>``, with
  ``--concurrency`` in flight (run after the API stops: its projection follows ``events.>``).

``protoface api`` runs as its own process against an embedded nats-server, with an
``internal`` plan key (no create rate limit, no practical concurrency cap) and
``PROTOFACE_WHEN_AT_CAPACITY=queue`` (no worker runs here): limits are raised by
configuration only, every request runs the API's real code path. Logs are JSON at
``PROTOFACE_LOG_LEVEL=WARNING``.
The HTTP load generator is a separate process (aiohttp on uvloop, keep-alive, N
workers), so its CPU is not counted in the server's process; the raw JetStream
baseline runs in that process too. After the run, the ``session.created``
events in the log are counted and compared with the 201 responses (zero lost).

The bare baseline runs before and after the API (A-B-A) so that drift in the
machine's load shows; server, nats-server and client CPU per request are printed
beside the rates (``/proc`` of each process), and the API's own ``/metrics``
histograms give its mean request and append times.

Profiling (``--profile-out``, default ``api-create-profile.json``):
``BENCH_PROFILE=py-spy`` (``pip install py-spy``) records the API process during the
create run (speedscope JSON, or collapsed stacks when the name ends in ``.txt``);
``BENCH_PROFILE=py-spy:gil`` samples only while it holds the GIL (Python CPU, not
time blocked in socket writes or preempted); ``BENCH_PROFILE=cprofile`` runs the API
under cProfile (slower: that run's figures are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from protoface.api import serving
from protoface.api.config import load_keyring
from protoface.streams.server import EmbeddedNats, free_port

ROOT = Path(__file__).resolve().parent.parent
CREATED_FILTER = "events.session.*.*.created"
# Single and grouped admissions share each org's admissions subject.
ADMISSIONS_FILTER = "events.org.*.session_admitted"
TARGET_RATE = 1000.0
TARGET_SHARE = 0.40
TARGET_P99_MS = 25.0
TARGET_CLIENTS = 50
API, BARE, RAW = "POST /v1/sessions", "bare litestar", "raw jetstream"


# ── Request bodies ───────────────────────────────────────────────────────────────


def worker_token(room: str, identity: str = "protoface-worker") -> str:
    """A LiveKit worker token as customers mint it (the same claims as tests/tokens.py)."""
    from livekit import api

    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True)
    return (
        api.AccessToken(api_key="APIbench", api_secret="bench-secret-" + "x" * 32)
        .with_kind("agent").with_identity(identity).with_name(identity)
        .with_grants(grants).with_ttl(datetime.timedelta(minutes=30))
        .with_attributes({"lk.publish_on_behalf": "agent-1"})
        .to_jwt()
    )


def create_body() -> bytes:
    room = "bench-room"
    return json.dumps({
        "avatar_id": "av_stock_001",
        "quality": "mock",
        "transport": {"type": "livekit", "url": "wss://bench.livekit.cloud", "room_name": room,
                      "worker_token": worker_token(room)},
    }).encode()


# ── Load generators (run in a child process) ────────────────────────────────────


@dataclass
class Result:
    completed: int = 0  # responses received inside the measured window
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # inside the window: unexpected status or exception
    ok_total: int = 0  # expected status over the whole run (warm-up and tail included)
    sent_total: int = 0
    error_samples: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(
    concurrency: int, warmup: float, seconds: float,
    one: Callable[[int], Awaitable[tuple[bool, str]]],
) -> Result:
    """Run ``concurrency`` workers, worker ``i`` calling ``await one(i) -> (ok, detail)``
    back to back; only calls that start and end inside the window are measured."""
    result = Result()
    start = time.perf_counter() + warmup
    end = start + seconds

    async def worker(i: int) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            result.sent_total += 1
            try:
                ok, detail = await one(i)
            except Exception as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            if ok:
                result.ok_total += 1
            if start <= t0 and t1 <= end:
                if ok:
                    result.completed += 1
                    result.latencies_ms.append((t1 - t0) * 1000)
                else:
                    result.errors += 1
            if not ok and len(result.error_samples) < 5:
                result.error_samples.append(detail)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.client_cpu_s = time.process_time() - cpu0
    result.seconds = seconds
    return result


def _run_client(main: Coroutine[Any, Any, Result]) -> Result:
    """The load generators run on uvloop, like the servers (api.serving): on 2 cores
    the client's own CPU competes with the server it measures."""
    return serving.run(main)


def http_load(
    url: str, body: bytes, headers: list[dict[str, str]], expect: int, concurrency: int,
    warmup: float, seconds: float,
) -> Result:
    """HTTP POSTs of ``body``; worker ``i`` sends ``headers[i % len(headers)]``."""
    import aiohttp

    async def run() -> Result:
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        timeout = aiohttp.ClientTimeout(total=30)
        all_headers = [{"Content-Type": "application/json", **h} for h in headers]
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         auto_decompress=False) as session:

            async def one(worker: int) -> tuple[bool, str]:
                async with session.post(url, data=body,
                                        headers=all_headers[worker % len(all_headers)]) as response:
                    content = await response.read()
                    if response.status == expect:
                        return True, ""
                    return False, f"{response.status} {content[:200]!r}"

            return await _drive(concurrency, warmup, seconds, one)

    return _run_client(run())


def nats_load(
    nats_url: str, payload: bytes, concurrency: int, warmup: float, seconds: float,
) -> Result:
    import nats

    async def run() -> Result:
        nc = await nats.connect(nats_url, name="bench-raw-jetstream")
        js = nc.jetstream(timeout=10.0)
        counter = 0

        async def one(worker: int) -> tuple[bool, str]:
            nonlocal counter
            counter += 1
            n = counter
            # Like the API's appends: one subject per message, a Nats-Msg-Id for de-duplication.
            await js.publish(f"events.bench.{n}", payload, headers={"Nats-Msg-Id": f"bench-{n}"})
            return True, ""

        try:
            return await _drive(concurrency, warmup, seconds, one)
        finally:
            await nc.drain()

    return _run_client(run())


# ── Processes ────────────────────────────────────────────────────────────────────


def _proc_cpu(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process so far (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Proc:
    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._out,
                                        stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


def wait_http(proc: Proc, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not ready at {url} within {timeout}s:\n{proc.tail()}")


def scrape_means(url: str) -> dict[str, tuple[float, float]]:
    """``name → (count, mean seconds)`` of the API's own histograms (``/metrics``)."""
    with urllib.request.urlopen(url, timeout=5.0) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        base, _, labels = name.partition("{")
        if base.startswith("protoface_http") and not (
            'method="POST"' in labels and 'route="/v1/sessions' in labels
        ):
            continue
        if base.endswith("_sum"):
            sums[base[:-4]] = sums.get(base[:-4], 0.0) + float(value)
        elif base.endswith("_count"):
            counts[base[:-6]] = counts.get(base[:-6], 0.0) + float(value)
    return {k: (counts[k], sums[k] / counts[k]) for k in sums if counts.get(k)}


# ── The event log, read back ─────────────────────────────────────────────────────


def count_created(nats_url: str) -> tuple[int, int, bytes]:
    """How many ``session.created`` and admission events the log holds, and the last
    ``session.created``'s stored bytes."""
    import nats

    async def pending(js: nats.js.JetStreamContext, subject: str) -> int:
        sub = await js.pull_subscribe(subject, stream="EVENTS")
        info = await sub.consumer_info()
        await sub.unsubscribe()
        return info.num_pending or 0

    async def run() -> tuple[int, int, bytes]:
        nc = await nats.connect(nats_url, name="bench-count")
        try:
            js = nc.jetstream()
            count, admissions = await pending(js, CREATED_FILTER), await pending(
                js, ADMISSIONS_FILTER)
            last = b""
            if count:
                msg = await js.get_last_msg("EVENTS", CREATED_FILTER)
                last = msg.data or b""
            return count, admissions, last
        finally:
            await nc.drain()

    return asyncio.run(run())


def create_key(org: str, nats_url: str, env: dict[str, str]) -> str:
    """An ``internal`` plan key (unlimited concurrency, no create rate limit), by the CLI."""
    made = subprocess.run(
        [sys.executable, "-m", "protoface", "keys", "create", "--org", org, "--plan", "internal",
         "--nats-url", nats_url],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if made.returncode != 0:
        raise RuntimeError(f"protoface keys create failed:\n{made.stderr[-3000:]}")
    return made.stdout.strip().splitlines()[-1]


# ── The run ──────────────────────────────────────────────────────────────────────


@dataclass
class Row:
    name: str
    result: Result
    server_cpu: tuple[float, float] | None = None  # (user, system) seconds over the load run
    nats_cpu: tuple[float, float] | None = None

    def merged(self, other: Row) -> Row:
        """Two runs of one scenario as one (the bare baseline runs before and after)."""
        a, b = self.result, other.result
        result = Result(
            completed=a.completed + b.completed, seconds=a.seconds + b.seconds,
            latencies_ms=a.latencies_ms + b.latencies_ms, errors=a.errors + b.errors,
            ok_total=a.ok_total + b.ok_total, sent_total=a.sent_total + b.sent_total,
            error_samples=(a.error_samples + b.error_samples)[:5],
            client_cpu_s=a.client_cpu_s + b.client_cpu_s,
        )
        return Row(self.name, result, _add(self.server_cpu, other.server_cpu),
                   _add(self.nats_cpu, other.nats_cpu))


def _add(
    a: tuple[float, float] | None, b: tuple[float, float] | None
) -> tuple[float, float] | None:
    return None if a is None or b is None else (a[0] + b[0], a[1] + b[1])


def _cpu_delta(pid: int | None, before: tuple[float, float] | None) -> tuple[float, float] | None:
    if pid is None or before is None:
        return None
    after = _proc_cpu(pid)
    return None if after is None else (after[0] - before[0], after[1] - before[1])


def measure(
    pool: ProcessPoolExecutor, name: str, server_pid: int | None, nats: EmbeddedNats,
    load: Callable[..., Result], *load_args: object, budget: float,
) -> Row:
    """Run ``load(*load_args)`` in the load-generator process; sample server and nats CPU
    over the whole load run (warm-up included, so per-request CPU divides by all sent)."""
    nats_pid = nats.process.pid if nats.process is not None else None
    server0 = _proc_cpu(server_pid) if server_pid is not None else None
    nats0 = _proc_cpu(nats_pid) if nats_pid is not None else None
    print(f"  {name} …", file=sys.stderr, flush=True)
    result = pool.submit(load, *load_args).result(timeout=budget)
    return Row(name, result, _cpu_delta(server_pid, server0), _cpu_delta(nats_pid, nats0))


def _us_per(cpu: tuple[float, float] | None, result: Result) -> str:
    if cpu is None or not result.sent_total:
        return "–"
    return f"{sum(cpu) / result.sent_total * 1e6:,.0f}"


def report(
    rows: list[Row], args: argparse.Namespace, created: int, ok_201: int,
    bare_runs: tuple[float, float],
) -> bool:
    by = {r.name: r for r in rows}
    api, bare, raw = by[API], by[BARE], by[RAW]

    def ratio(a: Row, b: Row) -> str:
        return f"{a.result.rate / b.result.rate:.2f}" if b.result.rate else "–"

    print()
    print(f"{args.concurrency} concurrent clients, {args.seconds:g} s measured after "
          f"{args.warmup:g} s warm-up, {os.cpu_count()} CPUs, loopback; load average "
          f"{os.getloadavg()[0]:.1f}")
    print()
    print("| scenario | req/s | p50 ms | p99 ms | errors | vs bare litestar | vs raw jetstream "
          "| server CPU µs/req | nats-server CPU µs/req | client CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        r = row.result
        print(f"| {row.name} | {r.rate:,.0f} | {r.percentile(0.50):.2f} | "
              f"{r.percentile(0.99):.2f} | {r.errors} | {ratio(row, bare)} | {ratio(row, raw)} | "
              f"{_us_per(row.server_cpu, r)} | {_us_per(row.nats_cpu, r)} | "
              f"{_us_per((r.client_cpu_s, 0.0), r)} |")
    print()
    print(f"bare litestar ran before and after the API: {bare_runs[0]:,.0f}/s, "
          f"{bare_runs[1]:,.0f}/s (the row merges both; the spread is the machine's noise)")
    for row in (api, bare):
        if row.server_cpu is not None and row.result.sent_total:
            user, system = (c / row.result.sent_total * 1e6 for c in row.server_cpu)
            print(f"{row.name} server CPU per request: user {user:,.0f} µs, "
                  f"system {system:,.0f} µs")
    for row in rows:
        for sample in row.result.error_samples:
            print(f"  {row.name} error: {sample}")
    print()

    lower = min(bare.result.rate, raw.result.rate)
    lower_name = BARE if bare.result.rate <= raw.result.rate else RAW
    rate, p99 = api.result.rate, api.result.percentile(0.99)
    lost = ok_201 - created
    checks = [
        (rate >= TARGET_RATE, f"sustained creates {rate:,.0f}/s >= {TARGET_RATE:,.0f}/s"),
        (lower > 0 and rate >= TARGET_SHARE * lower,
         f"creates are {rate / lower:.0%} of the lower baseline ({lower_name}, {lower:,.0f}/s) "
         f">= {TARGET_SHARE:.0%}" if lower else "the lower baseline measured zero"),
        (p99 < TARGET_P99_MS and args.concurrency >= TARGET_CLIENTS,
         f"p99 {p99:.2f} ms < {TARGET_P99_MS:g} ms at {args.concurrency} clients"
         + ("" if args.concurrency >= TARGET_CLIENTS else f" (the target is at {TARGET_CLIENTS})")
         # Closed loop: mean latency = clients / rate, so p99 < 25 ms at 50 clients needs
         # more than 2,000/s; the bare endpoint's own p99 says what the stack allows here.
         + f" (bare litestar p99 {bare.result.percentile(0.99):.2f} ms; 25 ms at "
           f"{args.concurrency} clients needs > {args.concurrency / TARGET_P99_MS * 1000:,.0f}/s)"),
        (api.result.errors == 0, f"{api.result.errors} create errors in the measured window"),
        (lost == 0,
         f"session.created events in the log: {created:,}; 201 responses: {ok_201:,} ("
         + ("zero lost" if lost == 0 else
            f"{lost:,} lost" if lost > 0 else f"{-lost:,} created without a 201 seen") + ")"),
    ]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in checks)


def start_profiler(kind: str, pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    fmt = "raw" if out.suffix == ".txt" else "speedscope"
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "250", "--format", fmt, "--output",
         str(out), "--duration", str(int(seconds) + 1), "--nonblocking",
         *(["--gil"] if kind == "py-spy:gil" else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.api_create", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured lead-in per run")
    parser.add_argument("--concurrency", type=int, default=TARGET_CLIENTS)
    parser.add_argument("--orgs", type=int, default=1,
                        help="spread the clients over this many orgs (one internal key each); "
                             "the targets are for 1")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    parser.add_argument("--profile-out", type=Path, default=Path("api-create-profile.json"))
    args = parser.parse_args(argv)
    profile = os.environ.get("BENCH_PROFILE", "")
    # SIGTERM unwinds like Ctrl-C, so the finally below stops every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_budget = args.warmup + args.seconds + 60

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="protoface-bench-"))
    procs: list[Proc] = []
    nats = EmbeddedNats(port=free_port(), store_dir=tmp / "jetstream", log_file=tmp / "nats.log")
    env = {
        **os.environ, "PROTOFACE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        # No worker runs here: where the API checks worker capacity, accept and queue.
        "PROTOFACE_WHEN_AT_CAPACITY": "queue",
    }
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    spy: subprocess.Popen[bytes] | None = None
    try:
        nats.start()
        data_dir = tmp / "data"
        load_keyring(data_dir / "seal-keys.json", create=True)
        keys = [create_key(f"bench-{n}", nats.url, env) for n in range(args.orgs)]

        bare_port, api_port = free_port(), free_port()
        bare = Proc(BARE, [sys.executable, "-m", "bench.baseline_app", "--port", str(bare_port)],
                    tmp / "bare.log", env)
        procs.append(bare)
        api_cmd = [sys.executable, "-m", "protoface", "api", "--nats-url", nats.url, "--host",
                   "127.0.0.1", "--port", str(api_port), "--data-dir", str(data_dir)]
        if profile == "cprofile":
            api_cmd[1:1] = ["-m", "cProfile", "-o", str(args.profile_out)]
        api = Proc("protoface api", api_cmd, tmp / "api.log", env)
        procs.append(api)
        pool.submit(int, 0).result()  # start the load generator process outside any window
        wait_http(bare, f"http://127.0.0.1:{bare_port}/")
        wait_http(api, f"http://127.0.0.1:{api_port}/v1/status")

        body = create_body()
        bare_url, api_url = f"http://127.0.0.1:{bare_port}/bench", f"http://127.0.0.1:{api_port}"
        auth = [{"Authorization": f"Bearer {key}"} for key in keys]
        http = (args.concurrency, args.warmup, args.seconds)
        print(f"{args.warmup:g} s warm-up + {args.seconds:g} s per run:", file=sys.stderr)

        # Bare HTTP before and after the API (A-B-A), so drift in the machine's load
        # during the run shows, and averages out of the ratio.
        bare_a = measure(pool, BARE, bare.pid, nats, http_load, bare_url, body, [{}], 201,
                         *http, budget=run_budget)
        if profile.startswith("py-spy"):
            spy = start_profiler(profile, api.pid, args.profile_out, args.warmup + args.seconds)
        created_row = measure(pool, API, api.pid, nats, http_load, f"{api_url}/v1/sessions",
                              body, auth, 201, *http, budget=run_budget)
        if spy is not None:
            spy.wait(timeout=60)
            spy = None
        if not api.alive():
            raise RuntimeError(f"protoface api died during the run:\n{api.tail()}")
        means = scrape_means(f"{api_url}/metrics")
        bare_b = measure(pool, BARE, bare.pid, nats, http_load, bare_url, body, [{}], 201,
                         *http, budget=run_budget)
        bare.stop()
        # The raw publishes land on events.bench.*, inside events.>, which the API's
        # projection follows and could not decode: stop the API before them.
        api.stop()
        created, admissions, stored_event = count_created(nats.url)

        # The payload is a real stored session.created event: the bytes the API appends.
        payload = stored_event or b"x" * 1200
        raw = measure(pool, RAW, None, nats, nats_load, nats.url, payload, *http,
                      budget=run_budget)

        rows = [created_row, bare_a.merged(bare_b), raw]
        ok = report(rows, args, created, created_row.result.ok_total,
                    (bare_a.result.rate, bare_b.result.rate))
        for name, label in (("protoface_http_request_seconds", "POST /v1/sessions in the API"),
                            ("protoface_event_append_seconds", "one append (publish → ack)")):
            if name in means:
                count, mean = means[name]
                print(f"      API-side mean of {label}: {mean * 1000:.2f} ms over {count:,.0f}")
        if admissions:
            print(f"      admission appends: {admissions:,} for {created:,} creates "
                  f"(group admission: {created / admissions:.1f} creates per append)")
        print(f"\ntotal {time.monotonic() - started:.0f} s"
              + (f"; logs and store in {tmp}" if args.keep else ""))
        if profile:
            print(f"profile of the API process during the create run: {args.profile_out}")
        return 0 if ok else 1
    finally:
        if spy is not None and spy.poll() is None:
            spy.terminate()
            spy.wait()
        for proc in reversed(procs):
            proc.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        nats.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
