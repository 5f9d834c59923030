"""Offline render: a WAV in, an MP4 (H.264 + AAC) and a frame-strip PNG out."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import wave
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from protoface.api.services import Services
from protoface.cli import main
from protoface.domain.tiers import TIERS
from protoface.streams.server import EmbeddedNats
from protoface.worker import offline
from protoface.worker.builds import Builder
from protoface.worker.face.sync_score import mouth_opening
from protoface.worker.render.mock import MockRenderer
from tests import speech
from tests.avatars import upload_ok
from tests.conftest import KeyFactory


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def stereo_44k(samples_16k: np.ndarray) -> np.ndarray:
    """The same speech at 44.1 kHz on two channels (linear interpolation)."""
    t = np.arange(int(samples_16k.size * 44_100 / 16_000)) * 16_000 / 44_100
    mono = np.interp(t, np.arange(samples_16k.size), samples_16k.astype(np.float64))
    return np.repeat(mono.astype(np.int16)[:, None], 2, axis=1).ravel()


def test_speech_at_any_rate_and_channels_is_read_as_16k_mono(tmp_path: Path) -> None:
    utterance = speech.load("fast.wav")[:32_000]
    write_wav(tmp_path / "s.wav", stereo_44k(utterance), 44_100, 2)
    samples = offline.read_speech(tmp_path / "s.wav")
    assert abs(samples.size - utterance.size) <= 2
    n = min(samples.size, utterance.size)
    assert np.corrcoef(samples[:n], utterance[:n])[0, 1] > 0.95


def test_render_writes_an_mp4_with_every_frame_and_the_audio(tmp_path: Path) -> None:
    utterance = speech.load("numbers.wav")[:16_000 * 2]  # 2.0 s
    write_wav(tmp_path / "speech.wav", stereo_44k(utterance), 44_100, 2)
    tier = TIERS["lite"]
    result = offline.render_file("av_stock_001", tmp_path / "speech.wav", tier,
                                 tmp_path / "out.mp4", strip=tmp_path / "strip.png")
    assert result.frames == 50 and result.video_codec in offline.VIDEO_CODECS
    with av.open(str(tmp_path / "out.mp4")) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (256, 256)
        assert video.average_rate == 25
        assert sound.codec_context.name == "aac" and sound.codec_context.sample_rate == 16_000
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        container.seek(0)
        heard = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert len(pictures) == 50
    assert abs(heard.size / 16_000 - 2.0) < 0.1 and np.abs(heard).max() > 0.05
    # The decoded video shows the mouth moving: the same pixels the lip-sync score reads.
    box = MockRenderer(256, 256).mouth_box
    assert np.ptp(mouth_opening(pictures, box)) > 100


def test_the_strip_shows_a_closed_then_an_open_mouth(tmp_path: Path) -> None:
    tier = TIERS["mock"]
    write_wav(tmp_path / "speech.wav", speech.load("pauses.wav")[:24_000], 16_000, 1)
    offline.render_file("av_stock_001", tmp_path / "speech.wav", tier, tmp_path / "o.mp4",
                        strip=tmp_path / "strip.png")
    strip = np.asarray(Image.open(tmp_path / "strip.png").convert("RGB"))
    assert strip.shape == (tier.height, 2 * tier.width, 3)
    closed, opened = strip[:, : tier.width], strip[:, tier.width :]
    top, bottom, left, right = MockRenderer(tier.width, tier.height).mouth_box
    dark = [int((f[top:bottom, left:right].sum(axis=2) < 200).sum()) for f in (closed, opened)]
    # The learned lip-sync opens the jaw as far as the phones ask (this clip's widest is
    # about a third of the way), not to the volume's peak.
    assert dark[0] == 0 and dark[1] > 0.2 * (bottom - top) * (right - left)


def test_the_cli_renders_a_stock_avatar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_wav(tmp_path / "speech.wav", speech.load("fast.wav")[:8_000], 16_000, 1)
    code = main(["render", "--avatar", "av_stock_001", "--audio", str(tmp_path / "speech.wav"),
                 "--quality", "mock", "-o", str(tmp_path / "out.mp4")])
    assert code == 0 and "13 frames" in capsys.readouterr().out
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_the_cli_refuses_an_avatar_it_has_no_asset_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nats_server: EmbeddedNats,
) -> None:
    write_wav(tmp_path / "speech.wav", np.zeros(1_600, np.int16), 16_000, 1)
    code = main(["render", "--avatar", "av_custom", "--audio", str(tmp_path / "speech.wav"),
                 "-o", str(tmp_path / "out.mp4"), "--nats-url", nats_server.url])
    assert code == 1 and "avatar av_custom is not ready" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


async def test_the_cli_renders_a_ready_custom_avatar_from_the_object_store(
    tmp_path: Path, client: httpx.AsyncClient, services: Services, new_key: KeyFactory,
    nats_server: EmbeddedNats,
) -> None:
    created = await upload_ok(client, await new_key())
    await Builder(services.log, services.avatars.store, "wrk_test").build(created["id"])
    write_wav(tmp_path / "speech.wav", speech.load("fast.wav")[:8_000], 16_000, 1)
    code = await asyncio.to_thread(main, [
        "render", "--avatar", created["id"], "--audio", str(tmp_path / "speech.wav"),
        "--quality", "lite", "-o", str(tmp_path / "out.mp4"), "--nats-url", nats_server.url])
    assert code == 0
    with av.open(str(tmp_path / "out.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 13 and frames[0].shape == (256, 256, 3)


def test_the_cli_refuses_a_file_that_is_not_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "notes.wav").write_text("not a wav")
    for audio in (tmp_path / "notes.wav", tmp_path / "missing.wav"):
        code = main(["render", "--avatar", "av_stock_001", "--audio", str(audio),
                     "-o", str(tmp_path / "out.mp4")])
        assert code == 1 and f"{audio}" in capsys.readouterr().err


class Terminal(io.StringIO):
    """stderr as a terminal shows it (what ``isatty`` answers is all that differs)."""

    def isatty(self) -> bool:
        return True


def test_the_cli_render_draws_a_progress_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_wav(tmp_path / "speech.wav", speech.load("fast.wav")[:8_000], 16_000, 1)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["render", "--avatar", "av_stock_001", "--audio", str(tmp_path / "speech.wav"),
                 "--quality", "mock", "-o", str(tmp_path / "out.mp4")])
    assert code == 0
    assert "\rrender [##############################] 100%  13/13 frames" in terminal.getvalue()


def test_the_cli_render_piped_draws_no_progress_bar(tmp_path: Path) -> None:
    write_wav(tmp_path / "speech.wav", speech.load("fast.wav")[:8_000], 16_000, 1)
    done = subprocess.run(
        [sys.executable, "-m", "protoface", "render", "--avatar", "av_stock_001",
         "--audio", str(tmp_path / "speech.wav"), "--quality", "mock",
         "-o", str(tmp_path / "out.mp4")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "13 frames" in done.stdout
    assert "\r" not in done.stderr and "[#" not in done.stderr and "frames  " not in done.stderr
