"""Offline render: an avatar speaking a WAV file, written to an MP4 (``protoface render``).

The same chain as a live session without a transport or a clock: the speech is cut
into frames at the tier's rate, the ``FaceDriver`` sees each frame with its lookahead,
the renderer draws it, and PyAV muxes H.264 video with AAC audio. Frame ``i`` shows the
face for the audio from ``i / fps`` on, exactly as the pacer sends them together.

Where an avatar comes from (``AssetSource``: the stock portraits, or a custom avatar's
asset from the object store) and which renderer draws it (``RendererFactory``: the
avatar model, or the ``mock`` pattern for the ``mock`` tier) are parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from PIL import Image, ImageDraw

from protoface.domain.tiers import Tier
from protoface.worker.audio import MODEL_RATE, Resampler, to_mono_int16
from protoface.worker.face.features import FaceDriver, FaceParams
from protoface.worker.face.sync_score import MouthBox
from protoface.worker.pipeline import Renderer
from protoface.worker.render.mock import MockRenderer
from protoface.worker.render.rig import stock_asset

VIDEO_CODECS = ("libx264", "h264", "mpeg4")  # the first PyAV's FFmpeg can encode
AUDIO_CODEC = "aac"


class FaceRenderer(Renderer, Protocol):
    """A renderer that says where its mouth is (for the lip-sync score and the strip)."""

    mouth_box: MouthBox


AssetSource = Callable[[str], bytes]  # avatar id → built asset (``worker.rig``)
RendererFactory = Callable[[bytes, Tier, int], FaceRenderer]  # asset, tier, seed
Progress = Callable[[int, int], None]  # frames done, frames in all


def mock_renderer(asset: bytes, tier: Tier, seed: int) -> FaceRenderer:
    """The test pattern (the ``mock`` tier)."""
    return MockRenderer(tier.width, tier.height, seed=seed)


def model_renderer(asset: bytes, tier: Tier, seed: int) -> FaceRenderer:
    """The avatar model (torch) for ``lite`` / ``standard`` / ``pro``; ``mock`` stays the
    test pattern, as in live sessions. The model has no randomness: the seed drives the
    face's life (blinks, head, gaze) through the ``FaceDriver``."""
    if tier.name == "mock":
        return mock_renderer(asset, tier, seed)
    from protoface.worker.render.renderer import TorchRenderer, tier_model

    return TorchRenderer(tier_model(tier), asset)


class UnknownAvatar(Exception):
    pass


def stock_only(avatar_id: str) -> bytes:
    """Assets of the stock avatars shipped with the worker."""
    try:
        return stock_asset(avatar_id)
    except KeyError:
        raise UnknownAvatar(
            f"{avatar_id} is not a stock avatar this worker ships; offline render of a "
            "custom avatar needs its asset from the object store") from None


class UnreadableAudio(Exception):
    pass


def read_speech(path: Path) -> np.ndarray:
    """Any audio file PyAV decodes → 16 kHz mono int16 (the pipeline's own resampler)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UnreadableAudio(f"{path} has no audio stream")
            return _decode(container, container.streams.audio[0])
    except av.FFmpegError as error:
        raise UnreadableAudio(f"{path} is not audio PyAV can decode ({error})") from None


def _decode(container: av.container.InputContainer, stream: av.AudioStream) -> np.ndarray:
    layout, rate = stream.codec_context.layout, stream.codec_context.sample_rate
    # Only the sample format changes here; mixing and rate are ours, as live.
    to_s16 = av.AudioResampler(format="s16", layout=layout, rate=rate)
    resample = Resampler(rate, MODEL_RATE)
    parts = [
        resample(to_mono_int16(out.to_ndarray().tobytes(), layout.nb_channels))
        for frame in container.decode(stream) for out in to_s16.resample(frame)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@dataclass(slots=True)
class Rendered:
    chunk: np.ndarray  # this frame's speech (int16, 16 kHz)
    params: FaceParams
    frame: np.ndarray  # RGB, height × width × 3


def frames_for(samples: np.ndarray, tier: Tier) -> int:
    """Frames of video for ``samples`` of speech: the last partial frame counts."""
    return -(-samples.size // tier.samples_per_frame)


def drive(samples: np.ndarray, tier: Tier, renderer: Renderer, seed: int) -> Iterator[Rendered]:
    """Frame by frame, as the live pacer: each frame's speech, the face for it, its pixels."""
    driver = FaceDriver(seed=seed, fps=tier.fps)
    step = tier.samples_per_frame
    count = frames_for(samples, tier)
    padded = np.zeros(count * step + driver.lookahead_samples, np.int16)
    padded[: samples.size] = samples
    for i in range(count):
        chunk = padded[i * step : (i + 1) * step]
        lookahead = padded[(i + 1) * step : (i + 1) * step + driver.lookahead_samples]
        params = driver.step(chunk, lookahead)
        yield Rendered(chunk, params, renderer.render([params])[0])


@dataclass(slots=True)
class Strip:
    """Keeps the most closed and the most open frames seen, for a picture of both."""

    closed: tuple[float, np.ndarray] | None = None
    open_: tuple[float, np.ndarray] | None = None

    def see(self, item: Rendered) -> None:
        opening = item.params.mouth_open
        if self.closed is None or opening < self.closed[0]:
            self.closed = (opening, item.frame.copy())
        if self.open_ is None or opening > self.open_[0]:
            self.open_ = (opening, item.frame.copy())

    def save(self, path: Path) -> None:
        assert self.closed is not None and self.open_ is not None
        shots = [(f"mouth_open {self.closed[0]:.2f}", self.closed[1]),
                 (f"mouth_open {self.open_[0]:.2f}", self.open_[1])]
        height, width = self.closed[1].shape[:2]
        strip = Image.new("RGB", (width * len(shots), height))
        draw = ImageDraw.Draw(strip)
        for i, (label, frame) in enumerate(shots):
            strip.paste(Image.fromarray(frame), (i * width, 0))
            draw.text((i * width + 6, 6), label, fill=(255, 255, 255))
        strip.save(path)


@dataclass(frozen=True, slots=True)
class RenderResult:
    frames: int
    seconds: float
    video_codec: str


def render_file(
    avatar_id: str, audio: Path, tier: Tier, out: Path, *, seed: int | None = None,
    strip: Path | None = None, assets: AssetSource = stock_only,
    renderers: RendererFactory = model_renderer, progress: Progress | None = None,
) -> RenderResult:
    """Render ``avatar_id`` speaking ``audio`` at ``tier`` into the MP4 ``out``;
    ``progress(frames done, frames in all)`` after each frame."""
    samples = read_speech(audio)
    total = frames_for(samples, tier)
    seed = zlib.crc32(avatar_id.encode()) if seed is None else seed
    renderer = renderers(assets(avatar_id), tier, seed)
    keep = Strip()
    codec = video_codec()
    with av.open(str(out), "w", format="mp4") as container:
        video = container.add_stream(codec, rate=tier.fps)
        sound = container.add_stream(AUDIO_CODEC, rate=MODEL_RATE, layout="mono")
        assert isinstance(video, av.VideoStream) and isinstance(sound, av.AudioStream)
        video.width, video.height, video.pix_fmt = tier.width, tier.height, "yuv420p"
        count = 0
        for count, item in enumerate(drive(samples, tier, renderer, seed), start=1):
            _write(container, video, sound, item, count - 1, tier)
            keep.see(item)
            if progress is not None:
                progress(count, total)
        container.mux(video.encode(None))  # flush the encoders
        container.mux(sound.encode(None))
    if strip is not None and count:
        keep.save(strip)
    return RenderResult(count, count / tier.fps, codec)


def _write(container: av.container.OutputContainer, video: av.VideoStream,
           sound: av.AudioStream, item: Rendered, index: int, tier: Tier) -> None:
    picture = av.VideoFrame.from_ndarray(item.frame, format="rgb24")
    picture.pts, picture.time_base = index, Fraction(1, tier.fps)
    container.mux(video.encode(picture))
    pcm = av.AudioFrame.from_ndarray(item.chunk.reshape(1, -1), format="s16", layout="mono")
    pcm.sample_rate = MODEL_RATE
    pcm.pts, pcm.time_base = index * tier.samples_per_frame, Fraction(1, MODEL_RATE)
    container.mux(sound.encode(pcm))


def video_codec() -> str:
    for name in VIDEO_CODECS:
        if name in av.codecs_available:
            return name
    raise RuntimeError(f"PyAV's FFmpeg can encode none of {', '.join(VIDEO_CODECS)}")
