"""Browser tests: the system's Debian Chromium (never a downloaded browser), driven by
Playwright, against a real ``protoface up`` on free ports with its own data dir.

``make test`` installs Chromium when it is missing. A webhook receiver on loopback
answers each delivery's first attempt with 503 and the retry with 200, so the
dashboard has deliveries with more than one attempt to show.
"""

from __future__ import annotations

import http.server
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from protoface.streams.server import free_port

SPEECH = Path(__file__).parent.parent / "data" / "speech"
# Flags that keep a headless Chromium quiet and self-contained on a machine with no
# internet.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Where a screenshot of each page goes: docs/ for `make screenshots`, else a temp dir.
SCREENSHOTS_ENV = "PROTOFACE_SCREENSHOTS_DIR"


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def dev_key(self) -> str:
        return (self.data_dir / "dev-api-key").read_text().strip()

    @property
    def operator_key(self) -> str:
        return (self.data_dir / "operator-key").read_text().strip()


def _wait_up(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            status = httpx.get(f"{server.url}/v1/status", timeout=1)
            # Up means a worker has probed its capacity and registered: a session started
            # before that would be answered 503 at_capacity (as it should be).
            workers = [c["status"] for c in status.json()["components"] if c["name"] == "workers"]
            ready = status.status_code == 200 and workers == ["operational"]
            if ready and (server.data_dir / "operator-key").exists():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("protoface up did not come up:\n" + server.log.read_text()[-3000:])


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("browser")
    port, log = free_port(), root / "up.log"
    env = {**os.environ, "PROTOFACE_HEARTBEAT_SECONDS": "1",
           "PROTOFACE_WEBHOOK_ALLOW_PRIVATE": "1", "PROTOFACE_WEBHOOK_RETRY_SCALE": "0.05"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "protoface", "up", "--port", str(port),
             "--nats-port", str(free_port()), "--data-dir", str(root / "data")],
            stdout=out, stderr=out, env=env,
        )
    running = Server(f"http://127.0.0.1:{port}", root / "data", process, log)
    try:
        _wait_up(running)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class _FlakyReceiver(http.server.BaseHTTPRequestHandler):
    """503 on a webhook's first attempt, 200 on the next: two attempts per delivery."""

    seen: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        webhook_id = self.headers.get("webhook-id", "")
        first = webhook_id not in self.seen
        self.seen.add(webhook_id)
        self.send_response(503 if first else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="package")
def webhook_receiver(server: Server) -> Iterator[str]:
    """A receiver registered as the dev org's webhook endpoint."""
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    created = httpx.post(f"{server.url}/v1/webhook_endpoints", json={"url": url},
                         headers={"Authorization": f"Bearer {server.dev_key}"}, timeout=10)
    assert created.status_code == 201, created.text
    try:
        yield url
    finally:
        receiver.shutdown()


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian chromium is not installed: `make test` installs it "
                    "(apt-get install chromium)")
    return found


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def launch(playwright: Playwright, *extra: str) -> Browser:
    """Chromium with a fresh profile (Playwright makes a temporary one per launch)."""
    return playwright.chromium.launch(executable_path=_chromium(), args=[*CHROMIUM_FLAGS, *extra])


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        return page


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(SCREENSHOTS_ENV)
    target = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


# ── Pixels ──────────────────────────────────────────────────────────────────────


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def mouth(png: bytes) -> np.ndarray:
    """The mouth region of a canvas screenshot: the mock face's mouth box (rows
    0.59–0.75, columns 0.4–0.6 of the frame) with a margin."""
    image = pixels(png)
    h, w = image.shape[:2]
    return image[int(0.55 * h):int(0.80 * h), int(0.35 * w):int(0.65 * w)]


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def sample_canvas(page: Page, seconds: float, every: float = 0.1) -> list[bytes]:
    """Screenshots of the avatar canvas taken every ``every`` s for ``seconds`` s."""
    shots: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shots.append(page.locator("#video").screenshot())
        page.wait_for_timeout(every * 1000)
    return shots


def opened_mouth(silence: list[bytes], shots: list[bytes]) -> float:
    """How far the mouth moved away from its silent look, at most, across ``shots``."""
    baseline = mouth(silence[0])
    return max(difference(mouth(shot), baseline) for shot in shots)


def live_session(page: Page, url: str, quality: str = "mock") -> list[bytes]:
    """Open the playground, start a session (mock tier unless told) and return
    screenshots of the avatar idling (no speech sent yet): the silent baseline."""
    page.goto(f"{url}/playground")
    page.wait_for_function("document.querySelectorAll('#avatar option').length >= 3")
    page.select_option("#quality", quality)
    page.click("#start")
    page.wait_for_function("window.playground.stats()?.framesShown >= 10", timeout=20_000)
    return sample_canvas(page, 0.6, 0.15)


def end_session(page: Page) -> None:
    page.click("#end")
    page.wait_for_function("document.getElementById('status').textContent === 'Session ended.'",
                           timeout=15_000)


# ── One session played from a sample, shared by the playground and dashboard tests ──


@dataclass
class Played:
    session_id: str
    silence: list[bytes]
    speech: list[bytes]
    stats: dict[str, float]
    console_errors: list[str]


MOUTH_OPEN = 12.0  # mean |Δ| per channel in the mouth crop: the open mouth is dark on skin


@pytest.fixture(scope="package")
def played(
    server: Server, browser: Browser, webhook_receiver: str, screenshots: Path
) -> Iterator[Played]:
    console = Console()
    page = console.watch(browser.new_page(viewport={"width": 1280, "height": 560}))
    silence = live_session(page, server.url)
    page.click("#play")
    speech = sample_canvas(page, 3.0)
    stats = page.evaluate("window.playground.stats()")
    session_id = page.evaluate("window.playground.state.session.id")
    end_session(page)
    page.close()
    yield Played(session_id, silence, speech, stats, console.errors)
