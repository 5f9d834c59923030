"""The package as users install it: the built wheel in a fresh venv, run from elsewhere.

Every other test runs on the editable install of the checkout, which would hide a module,
a data file or a dependency that the wheel lacks. This test builds the wheel, installs it
(after the CPU build of torch, as the README says) into a new venv that cannot see the
source tree, starts ``protoface up`` from another directory, drives it with the official
SDK, and renders speech to an MP4 with the installed command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from protoface_sdk import ProtofaceClient, SessionStatus

from protoface.streams.server import free_port
from tests.tokens import livekit_body

REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # the CPU wheel (README, Makefile)
SPEECH = REPO / "tests" / "data" / "speech" / "greeting.wav"


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_clean_env())
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """No trace of the checkout or of the test venv: the installed package stands alone."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in p)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The venv's bin directory, with the wheel of this checkout installed in it."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    # Build from a copy of the tracked files: a build never writes into the checkout.
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", source,
         cwd=root)
    wheel = next((root / "dist").glob("protoface_server-*.whl"))
    shutil.rmtree(source)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    _run(base, "-m", "venv", root / "venv", cwd=root)
    pip = root / "venv" / "bin" / "pip"
    _run(pip, "install", "-q", TORCH, cwd=root)
    _run(pip, "install", "-q", wheel, cwd=root)
    yield root / "venv" / "bin"


def test_the_wheel_holds_every_module_and_no_generic_top_level_name(installed: Path) -> None:
    listing = _run(installed / "python", "-c",
                   "import importlib.metadata as m; print(m.distribution('protoface-server')"
                   ".read_text('top_level.txt') or '')", cwd=installed)
    files = _run(installed / "python", "-c",
                 "import importlib.metadata as m; print('\\n'.join(str(f) for f in "
                 "m.files('protoface-server')))", cwd=installed).split()
    assert {line.split("/")[0] for line in files if line.endswith(".py")} == {"protoface"}
    assert "api" not in listing.split()
    assert any(f.endswith("worker/portraits/astronaut.png") for f in files)
    assert any(f.endswith("api/openapi.json") for f in files)
    assert any(f.endswith("api/web/playground.html") for f in files)


def test_every_module_of_the_wheel_imports_with_the_declared_dependencies(
    installed: Path,
) -> None:
    out = _run(installed / "python", "-c", IMPORT_ALL, cwd=installed)
    count, failures = out.strip().split("\n", 1)
    assert failures == "[]", failures
    assert int(count) > 100  # the whole package, not an empty shell


IMPORT_ALL = """
import importlib, pkgutil, protoface
names = [m.name for m in pkgutil.walk_packages(protoface.__path__, "protoface.")
         if not m.name.endswith("__main__")]
failures = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append((name, repr(exc)))
print(len(names))
print(failures)
"""


def test_protoface_up_from_the_wheel_serves_the_official_sdk(installed: Path,
                                                            tmp_path: Path) -> None:
    port, nats_port = free_port(), free_port()
    data = tmp_path / "data"
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [str(installed / "protoface"), "up", "--port", str(port), "--nats-port",
         str(nats_port), "--data-dir", str(data)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, data / "dev-api-key", up, tmp_path / "up.log")
        key = (data / "dev-api-key").read_text().strip()
        with ProtofaceClient(key, base_url=url, max_retries=0) as client:
            session = client.sessions.create(livekit_body())
            assert client.sessions.get(session.id).id == session.id
            assert session.id in [s.id for s in client.sessions.list(limit=10).data]
            ended = client.sessions.end(session.id)
            assert ended.status in {SessionStatus.canceled, SessionStatus.ending,
                                    SessionStatus.ended, SessionStatus.failed}
    finally:
        up.terminate()
        up.wait(timeout=30)
        log.close()


def test_protoface_render_from_the_wheel_writes_frames_of_the_tier(installed: Path,
                                                                   tmp_path: Path) -> None:
    clip = tmp_path / "two-seconds.wav"
    _two_seconds(SPEECH, clip)
    out = tmp_path / "out.mp4"
    _run(installed / "protoface", "render", "--avatar", "av_stock_001", "--audio", clip,
         "--quality", "lite", "-o", out, cwd=tmp_path)
    with av.open(str(out)) as container:
        frames = [f for f in container.decode(video=0)]
    assert len(frames) >= 45  # 2 s at 25 fps, give or take the encoder's edges
    assert {(f.width, f.height) for f in frames} == {(256, 256)}


def test_avatar_inspect_and_render_portrait_from_the_wheel(installed: Path,
                                                          tmp_path: Path) -> None:
    portrait = REPO / "tests" / "data" / "faces" / "grace_hopper.jpg"
    verdict = _run(installed / "protoface", "avatar", "inspect", portrait, "-o",
                   tmp_path / "overlay.png", cwd=tmp_path)
    said = verdict.strip().splitlines()
    assert said[0].endswith(": accepted")
    assert said[1].startswith("face box 217 px; upscale per tier: lite 0.47×")
    clip = tmp_path / "two-seconds.wav"
    _two_seconds(SPEECH, clip)
    _run(installed / "protoface", "render", "--portrait", portrait, "--audio", clip,
         "--quality", "lite", "-o", tmp_path / "portrait.mp4", cwd=tmp_path)
    with av.open(str(tmp_path / "portrait.mp4")) as container:
        assert container.streams.video[0].frames >= 45


def _two_seconds(source: Path, target: Path) -> None:
    import wave

    with wave.open(str(source)) as wav:
        rate = wav.getframerate()
        frames = wav.readframes(2 * rate)
        params = wav.getparams()
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)


def _workers(status: dict[str, list[dict[str, str]]]) -> str | None:
    return next((c["status"] for c in status["components"] if c["name"] == "workers"), None)


def _wait_ready(url: str, key_file: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-4000:]
        try:
            status = httpx.get(f"{url}/v1/status", timeout=2)
            # Ready once its worker has measured its capacity and announced it.
            if key_file.exists() and status.is_success and _workers(status.json()) == "operational":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("protoface up did not become ready:\n" + log.read_text()[-4000:])
