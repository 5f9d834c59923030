"""The playground in a real browser: a session over the Pipecat relay socket, fed by a
sample WAV or the microphone, drawn and played in sync (pixel checks on screenshots)."""

from __future__ import annotations

import itertools
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Playwright

from tests.browser.conftest import (
    MOUTH_OPEN,
    SPEECH,
    Console,
    Played,
    Server,
    difference,
    end_session,
    launch,
    live_session,
    mouth,
    opened_mouth,
    pixels,
    sample_canvas,
)

pytestmark = pytest.mark.slow


def test_the_playground_loads_with_no_console_errors(server: Server, browser: Browser) -> None:
    console = Console()
    page = console.watch(browser.new_page())
    page.goto(f"{server.url}/playground")
    page.wait_for_function("document.querySelectorAll('#avatar option').length >= 3")
    assert page.locator("#sample option").count() >= 2  # bundled utterances
    page.wait_for_timeout(300)
    assert console.errors == []
    page.close()


def test_play_sample_moves_the_canvas_and_the_mouth_follows_speech(played: Played) -> None:
    # Given an idling avatar, when a sample is streamed, then:
    # silence looks the same frame after frame (mouth closed) …
    quiet = mouth(played.silence[0])
    assert max(difference(mouth(s), quiet) for s in played.silence) < 2.0
    # … the canvas changes over time while it speaks …
    frames = [pixels(s) for s in played.speech]
    changes = sum(difference(a, b) > 0.05 for a, b in itertools.pairwise(frames))
    assert changes >= 5, (changes, len(frames))
    # … and the mouth region differs from silence during speech.
    assert opened_mouth(played.silence, played.speech) > MOUTH_OPEN
    # Frames arrive at the tier's rate, in step with the audio clock.
    assert played.stats["fps"] >= 15, played.stats
    assert abs(played.stats["offsetMs"]) <= 100, played.stats
    assert played.console_errors == []


def test_interrupt_returns_the_mouth_to_rest(server: Server, browser: Browser) -> None:
    page = browser.new_page()
    silence = live_session(page, server.url)
    page.click("#play")
    page.wait_for_function(  # speech is on screen
        "window.playground.state.sentSeconds > 1.5", timeout=10_000)
    assert opened_mouth(silence, sample_canvas(page, 2.0)) > MOUTH_OPEN
    page.click("#interrupt")
    page.wait_for_timeout(600)  # the worker drops queued speech at its next tick
    assert opened_mouth(silence, sample_canvas(page, 1.0)) < 2.0
    end_session(page)
    page.close()


def test_the_microphone_path_streams_the_fake_capture_device(
    server: Server, playwright: Playwright
) -> None:
    # Given Chromium's fake microphone playing a speech WAV (in a loop) …
    browser = launch(playwright, "--use-fake-device-for-media-stream",
                     "--use-fake-ui-for-media-stream",
                     f"--use-file-for-fake-audio-capture={SPEECH / 'greeting.wav'}")
    try:
        context = browser.new_context(permissions=["microphone"])
        console = Console()
        page = console.watch(context.new_page())
        silence = live_session(page, server.url)
        # … when Talk is pressed, the AudioWorklet streams PCM16 and the mouth moves.
        page.click("#talk")
        page.wait_for_function("window.playground.state.sentSeconds > 1.0", timeout=10_000)
        assert opened_mouth(silence, sample_canvas(page, 3.0)) > MOUTH_OPEN
        assert page.text_content("#talk") == "Stop talking"
        end_session(page)
        assert console.errors == []
    finally:
        browser.close()


def test_an_uploaded_avatar_reaches_ready(server: Server, browser: Browser) -> None:
    config = httpx.get(f"{server.url}/playground/config", timeout=5).json()
    assert config["avatars_api"]  # the page shows its upload panel
    page = browser.new_page()
    page.goto(f"{server.url}/playground")
    portrait = resources.files("protoface.worker.portraits").joinpath("astronaut.png")
    page.set_input_files("#upload-image", str(portrait))
    page.fill("#upload-name", "Browser upload")
    page.click("#upload-submit")
    page.wait_for_selector("#upload-status[data-status]", timeout=60_000)
    status = page.get_attribute("#upload-status", "data-status")
    assert status == "ready", page.text_content("#upload-status")
    avatar_id = page.get_attribute("#upload-status", "data-avatar-id")
    assert page.input_value("#avatar") == avatar_id  # selected for the next session
    page.close()



def dark_share(crop: np.ndarray) -> float:
    """The share of dark pixels (the open mouth's inside) in a crop."""
    luma = crop @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float((luma < 0.45 * np.percentile(luma, 90)).mean())


def model_mouth(png: bytes) -> np.ndarray:
    """Where the avatar model draws the mouth on the canvas (rows 0.48–0.70, columns
    0.37–0.62 of the frame: every stock avatar's mouth box at ``standard``)."""
    image = pixels(png)
    h, w = image.shape[:2]
    return image[int(0.48 * h):int(0.70 * h), int(0.37 * w):int(0.62 * w)]


def test_the_avatar_model_talks_in_the_browser(
    server: Server, browser: Browser, screenshots: Path,
) -> None:
    """The ``standard`` tier: the torch model's face, its mouth opening with the sample."""
    console = Console()
    page = console.watch(browser.new_page(viewport={"width": 1280, "height": 560}))
    silence = live_session(page, server.url, "standard")
    quiet = max(dark_share(model_mouth(s)) for s in silence)
    page.click("#play")
    best, best_shot = 0.0, b""
    for shot in sample_canvas(page, 6.0):
        share = dark_share(model_mouth(shot))
        if share > best:
            best, best_shot = share, shot
    assert best > quiet + 0.02, (quiet, best)  # the inside of the mouth shows
    # The README's picture: the page while the avatar speaks, mouth open.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if dark_share(model_mouth(page.locator("#video").screenshot())) > quiet + 0.02:
            page.screenshot(path=screenshots / "playground.png")
            break
    stats = page.evaluate("window.playground.stats()")
    assert stats["fps"] >= 15, stats
    end_session(page)
    page.close()
    assert console.errors == []
    assert best_shot
