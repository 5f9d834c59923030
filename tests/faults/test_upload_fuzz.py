"""Hostile uploads: any bytes at all, mutated PNG/JPEG, decompression bombs and
polyglots get 202 or a precise 422 — never a 5xx, never a crash of the upload check or
of the build step that runs on what the check lets through."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from protoface.api.avatars.images import MAX_IMAGE_PIXELS, check
from protoface.api.errors import ApiError
from protoface.worker.render import rig
from tests.avatars import FACE, image_bytes, upload
from tests.conftest import KeyFactory

CODES = {"image_empty", "image_unsupported_type", "image_corrupt", "image_too_small",
         "image_too_many_pixels", "image_too_large"}
SEEDS = [image_bytes(96, 96, "PNG"), image_bytes(96, 96, "JPEG"), FACE]


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width × height`` with a tiny (deflated) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    body = zlib.compress(b"\0" * (width + 1) * 8, 9)  # eight rows, the rest missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(
        b"IEND", b"")


def refused_with_a_code(data: bytes) -> str | None:
    """None when the check accepts the bytes, else the 422 code it refused them with."""
    try:
        check(data)
    except ApiError as error:
        assert error.status == 422 and error.param == "image", (error.status, error.code)
        assert error.code in CODES, error.code
        return error.code
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_any_bytes_are_accepted_or_refused_with_a_code(data: bytes) -> None:
    refused_with_a_code(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), at=st.integers(0, 10_000), cut=st.integers(0, 10_000),
       junk=st.binary(min_size=1, max_size=64))
def test_mutated_and_truncated_images_never_escape_the_check(
    seed: bytes, at: int, cut: int, junk: bytes,
) -> None:
    at %= len(seed)
    mutated = seed[:at] + junk + seed[at + len(junk):]
    refused_with_a_code(mutated)
    refused_with_a_code(seed[: cut % len(seed)])


@pytest.mark.parametrize("width,height", [(20_000, 20_000), (MAX_IMAGE_PIXELS // 1000 + 1, 1001),
                                          (65_535, 65_535)])
def test_decompression_bombs_are_refused_before_decoding(width: int, height: int) -> None:
    assert refused_with_a_code(png_bomb(width, height)) == "image_too_many_pixels"


def test_polyglots_are_judged_by_their_bytes_and_stored_images_are_re_encoded() -> None:
    # A PNG with a ZIP (or an HTML page) appended is still a PNG: accepted as one, and
    # the built asset is re-encoded from pixels, so the payload does not travel on.
    for payload in (b"PK\x03\x04" + b"\0" * 26 + b"evil.sh", b"<html><script>x</script>"):
        polyglot = FACE + payload
        assert refused_with_a_code(polyglot) is None
        portrait = rig.load_asset(rig.build_asset(polyglot)).portrait_png
        assert payload not in portrait
    # A GIF or a PDF wearing a .png name is refused for what it is.
    gif = io.BytesIO()
    Image.new("RGB", (96, 96)).save(gif, "GIF")
    assert refused_with_a_code(gif.getvalue()) == "image_unsupported_type"
    assert refused_with_a_code(b"%PDF-1.7\n" + FACE) == "image_unsupported_type"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(64, 700), height=st.integers(64, 700),
       colour=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_the_build_step_fails_cleanly_on_any_image_the_check_lets_through(
    width: int, height: int, colour: tuple[int, int, int],
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    data = out.getvalue()
    assert refused_with_a_code(data) is None
    with pytest.raises(rig.RigError) as failed:
        rig.build_asset(data)
    assert failed.value.reason


async def test_hostile_uploads_over_http_get_422_with_codes_never_5xx(
    client: httpx.AsyncClient, new_key: KeyFactory,
) -> None:
    key = await new_key("internal")
    gif = io.BytesIO()
    Image.new("RGB", (96, 96)).save(gif, "GIF")
    cases = {
        "image_too_many_pixels": png_bomb(20_000, 20_000),
        "image_unsupported_type": gif.getvalue(),
        "image_corrupt": FACE[: len(FACE) // 2],
        "image_empty": b"",
    }
    for code, data in cases.items():
        r = await upload(client, key, data, filename="portrait.png")
        assert r.status_code == 422, (code, r.status_code, r.text)
        assert r.json()["error"]["code"] == code
    r = await upload(client, key, FACE + b"PK\x03\x04polyglot")
    assert r.status_code == 202, r.text
