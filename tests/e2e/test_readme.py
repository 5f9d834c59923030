"""The README's code, exactly as a user copies it, against a running server.

A fenced ```python block preceded by ``<!-- test: NAME -->`` is runnable. The blocks
read ``PROTOFACE_API_URL`` and ``PROTOFACE_API_KEY`` from the environment (the
variables every official client reads), so the test sets those and runs the text
unchanged:

* ``sdk`` runs against ``protoface api`` as a process;
* ``pipecat`` defines ``run_bot(transport, stt, llm, tts)``; the test calls it with
  stand-ins for the user's transport and services, against a deployment with a worker,
  and the avatar's frames must come out of the pipeline;
* ``livekit`` needs a LiveKit server, which cannot run here: its imports and every
  attribute it reads of them must exist, and its calls must bind to their signatures.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import functools
import importlib
import inspect
import io
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import speech
from tests.conftest import LiveServer
from tests.e2e.conftest import Stack

README = Path(__file__).resolve().parents[2] / "README.md"
MARKED = re.compile(r"<!-- test: (?P<name>[\w-]+) -->\s*\n```python\n(?P<code>.*?)^```",
                    re.DOTALL | re.MULTILINE)
NAMES = ("sdk", "pipecat", "livekit")


def readme_blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for match in MARKED.finditer(README.read_text()):
        assert match["name"] not in found, f"two README blocks are marked {match['name']}"
        found[match["name"]] = match["code"]
    return found


def block(name: str) -> Any:
    """The block's code object; its file name points at the README for tracebacks."""
    return compile(readme_blocks()[name], f"README.md <!-- test: {name} -->", "exec")


@contextlib.contextmanager
def no_deprecations() -> Iterator[None]:
    """A deprecation warned about a README block's own call fails the test: the README
    must show what the packages recommend today. Run blocks with ``__name__`` readme_*."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module="readme_")
        yield


def test_the_readme_marks_a_block_for_each_official_client() -> None:
    assert sorted(readme_blocks()) == sorted(NAMES)
    for name in NAMES:
        block(name)  # every block is valid Python


# ---------------------------------------------------------------------------------------
# Names: what a block imports exists, what it reads of an import exists, calls bind.


def imported_names(tree: ast.Module) -> dict[str, object]:
    bound: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = importlib.import_module(alias.name)
                if alias.asname:
                    bound[alias.asname] = module
                else:
                    root = alias.name.split(".")[0]
                    bound[root] = importlib.import_module(root)
        elif isinstance(node, ast.ImportFrom):
            assert node.module and node.level == 0
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):  # perhaps a submodule not yet imported
                    with contextlib.suppress(ModuleNotFoundError):
                        importlib.import_module(f"{node.module}.{alias.name}")
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                bound[alias.asname or alias.name] = getattr(module, alias.name)
    return bound


def resolve(node: ast.expr, bound: dict[str, object]) -> tuple[bool, object]:
    """The object an expression names, if it is an import or an attribute chain on one.

    A name assigned the result of calling an imported class stands for an instance of
    that class (an `Instance`), so ``avatar.start`` is ``AvatarSession.start``.
    """
    if isinstance(node, ast.Name) and node.id in bound:
        return True, bound[node.id]
    if isinstance(node, ast.Attribute):
        known, owner = resolve(node.value, bound)
        if known:
            target = owner.cls if isinstance(owner, Instance) else owner
            where = getattr(target, "__name__", repr(target))
            assert hasattr(target, node.attr), f"{where} has no attribute {node.attr!r}"
            found = getattr(target, node.attr)
            if isinstance(owner, Instance) and inspect.isfunction(found):
                found = functools.partial(found, None)  # the instance's bound method
            return True, found
    return False, None


class Instance:
    def __init__(self, cls: type) -> None:
        self.cls = cls


def check_names(name: str) -> list[str]:
    """Resolve every import, attribute of an import and call of one; the calls checked."""
    tree = ast.parse(readme_blocks()[name])
    bound = imported_names(tree)
    stored = {node.id for node in ast.walk(tree)
              if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    functions = [node for node in ast.walk(tree)
                 if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)]
    defined = (set(bound) | stored | {f.name for f in functions}
               | {a.arg for f in functions for a in f.args.args + f.args.kwonlyargs})
    assert not stored & set(bound), f"README block {name!r} rebinds an imported name"
    for node in ast.walk(tree):  # x = ImportedClass(...) makes x an instance of it
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            known, target = resolve(node.value.func, bound)
            if known and inspect.isclass(target):
                bound[node.targets[0].id] = Instance(target)
    checked: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            resolve(node, bound)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in defined or hasattr(builtins, node.id), (
                f"README block {name!r} uses an undefined name {node.id!r}")
        if isinstance(node, ast.Call):
            known, target = resolve(node.func, bound)
            if not known or not callable(target):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                continue
            try:
                inspect.signature(target).bind(
                    *node.args, **{k.arg: k.value for k in node.keywords if k.arg is not None})
            except TypeError as error:
                raise AssertionError(
                    f"README block {name!r}: {ast.unparse(node.func)}({error})"
                ) from None
            checked.append(ast.unparse(node.func))
    return checked


@pytest.mark.parametrize("name", NAMES)
def test_every_name_a_readme_block_uses_exists_in_the_installed_packages(name: str) -> None:
    checked = check_names(name)
    assert checked  # the block calls into the packages it imports


def test_the_livekit_block_is_the_plugin_s_public_api() -> None:
    """The plugin's public names, read as the block reads them (it cannot run here)."""
    checked = check_names("livekit")
    assert "protoface.AvatarSession" in checked
    assert {"avatar.start", "session.start", "AgentSession", "cli.run_app"} <= set(checked)


# ---------------------------------------------------------------------------------------
# Runs.


def test_the_sdk_block_runs_against_a_live_server(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = live_server.new_key("launch")
    monkeypatch.setenv("PROTOFACE_API_URL", live_server.url)
    monkeypatch.setenv("PROTOFACE_API_KEY", key)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), no_deprecations():
        exec(block("sdk"), {"__name__": "readme_sdk"})
    lines = out.getvalue().splitlines()
    assert lines[0] == str(["Free", "Starter", "Launch", "Scale"])
    session_id, status, media_url = lines[1].split()
    assert session_id.startswith("sess_") and status == "queued"
    assert media_url.endswith(f"/v1/pipecat/sessions/{session_id}/media")
    assert lines[2] == str([session_id])
    assert lines[3] == "canceled"  # this server runs no worker: the session never started
    assert lines[4] == "0"
    session = httpx.get(f"{live_server.url}/v1/sessions/{session_id}",
                        headers={"Authorization": f"Bearer {key}"}).json()
    assert session["status"] == "canceled"


async def test_the_pipecat_block_runs_a_pipeline_with_a_real_worker(
    stack: Stack, workers: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecat.frames.frames import (
        EndWorkerFrame,
        Frame,
        OutputImageRawFrame,
        OutputTransportReadyFrame,
        SpeechOutputAudioRawFrame,
        StartFrame,
        TTSAudioRawFrame,
        TTSStartedFrame,
        TTSStoppedFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    stack.worker(slots=1)
    key = stack.new_key("launch")
    monkeypatch.setenv("PROTOFACE_API_URL", stack.url)
    monkeypatch.setenv("PROTOFACE_API_KEY", key)

    class Passthrough(FrameProcessor):  # stands in for the user's STT and LLM
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    class Speaker(Passthrough):  # a TTS: one utterance of real speech, in 20 ms frames
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                self.create_task(self.speak())

        async def speak(self) -> None:
            await self.push_frame(TTSStartedFrame())
            for chunk in speech.chunks(speech.load("greeting.wav")[: 16_000 * 2]):
                await self.push_frame(TTSAudioRawFrame(chunk, 16_000, 1))
            await self.push_frame(TTSStoppedFrame())

    class Screen(Passthrough):  # the output transport: ready at start, shows what comes
        def __init__(self) -> None:
            super().__init__()
            self.video: list[OutputImageRawFrame] = []
            self.audio: list[SpeechOutputAudioRawFrame] = []

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                await self.push_frame(OutputTransportReadyFrame(), FrameDirection.UPSTREAM)
            elif isinstance(frame, SpeechOutputAudioRawFrame):
                self.audio.append(frame)
            elif isinstance(frame, OutputImageRawFrame):
                self.video.append(frame)
                if len(self.video) == 50:  # 2 s at 25 fps: enough, end the pipeline
                    await self.push_frame(EndWorkerFrame(), FrameDirection.UPSTREAM)

    class Transport:
        def __init__(self) -> None:
            self.source, self.screen = Passthrough(), Screen()

        def input(self) -> FrameProcessor:
            return self.source

        def output(self) -> Screen:
            return self.screen

    namespace: dict[str, Any] = {"__name__": "readme_pipecat"}
    exec(block("pipecat"), namespace)
    transport = Transport()
    started = time.monotonic()
    with no_deprecations():
        await asyncio.wait_for(
            namespace["run_bot"](transport, Passthrough(), Passthrough(), Speaker()), 60
        )

    video, audio = transport.screen.video, transport.screen.audio
    assert len(video) >= 50, f"{len(video)} video frames in {time.monotonic() - started:.1f} s"
    assert tuple(video[0].size) == (512, 512) and video[0].format == "RGB"  # the standard tier
    assert len(video[0].image) == 512 * 512 * 3
    assert sum(len(a.audio) for a in audio) >= 16_000 * 2 * 1  # ≥ 1 s of the speech back
    assert {a.sample_rate for a in audio} == {16_000}
    # The pipeline's end ended the session (its worker drains it to `ended`).
    headers = {"Authorization": f"Bearer {key}"}
    sessions = httpx.get(f"{stack.url}/v1/sessions", headers=headers).json()["data"]
    assert len(sessions) == 1
    assert sessions[0]["status"] in {"ending", "ended"}
    assert sessions[0]["first_frame_at"] is not None
