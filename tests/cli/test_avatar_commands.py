"""``protoface avatar inspect`` and ``protoface render --portrait``: try a portrait first."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from protoface.cli import main

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
AVATARS = Path(__file__).resolve().parents[1] / "data" / "avatars"
SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech" / "greeting.wav"


def test_inspect_accepts_a_portrait_and_draws_the_analysis_over_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "overlay.png"
    assert main(["avatar", "inspect", str(FACES / "grace_hopper.jpg"), "-o", str(out)]) == 0
    verdict, upscale = capsys.readouterr().out.strip().splitlines()
    assert verdict.endswith(": accepted")
    assert upscale == ("face box 217 px; upscale per tier: lite 0.47×, standard 0.94×, "
                       "pro 1.00×")
    overlay = Image.open(out).convert("RGB")
    portrait = Image.open(FACES / "grace_hopper.jpg").convert("RGB")
    assert overlay.width / overlay.height == pytest.approx(portrait.width / portrait.height,
                                                           rel=0.01)
    under = np.asarray(portrait.resize(overlay.size), dtype=int)
    assert np.abs(np.asarray(overlay, dtype=int) - under).mean() > 1.0  # something is drawn


def test_inspect_says_which_tiers_enlarge_a_small_portrait_more_than_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    portrait = Image.open(FACES / "grace_hopper.jpg")
    small = tmp_path / "small.png"
    portrait.resize((round(portrait.width / 2.3), round(portrait.height / 2.3))).save(small)
    assert main(["avatar", "inspect", str(small), "-o", str(tmp_path / "o.png")]) == 0
    upscale = capsys.readouterr().out.strip().splitlines()[-1]
    assert upscale.startswith("face box 96 px; upscale per tier: lite 1.07×, standard 2.00× "
                              "(face drawn 94% of full size; a face of 103 px or more fills "
                              "it), pro 2.00× (face drawn 89% of full size; a face of 108 px "
                              "or more fills it)")


def test_inspect_refuses_a_portrait_without_a_face_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "overlay.png"
    assert main(["avatar", "inspect", str(AVATARS / "gradient.png"), "-o", str(out)]) == 1
    assert "No face detected in source image." in capsys.readouterr().out
    assert out.exists()


def test_render_from_a_portrait_file_writes_the_tiers_frames(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    assert main(["render", "--portrait", str(FACES / "grace_hopper.jpg"), "--audio",
                 str(SPEECH), "--quality", "lite", "-o", str(out)]) == 0
    with av.open(str(out)) as container:
        sizes = {(f.width, f.height) for f in container.decode(video=0)}
    assert sizes == {(256, 256)}


def test_render_refuses_a_portrait_an_upload_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--portrait", str(AVATARS / "gradient.png"), "--audio",
                 str(SPEECH), "-o", str(tmp_path / "out.mp4")]) == 1
    assert "No face detected in source image." in capsys.readouterr().err
