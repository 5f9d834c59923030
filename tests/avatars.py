"""Test portraits and helpers shared by the avatar specifications."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

DATA = Path(__file__).parent / "data" / "avatars"
FACE = (DATA / "face.jpg").read_bytes()  # one detectable face (the stock astronaut)
NO_FACE = (DATA / "gradient.png").read_bytes()  # a colour gradient


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 120, 90)).save(out, fmt)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, key: str, image: bytes | None = FACE,
    filename: str = "portrait.jpg", **fields: str,
) -> httpx.Response:
    files = {"image": (filename, image, "application/octet-stream")} if image is not None else {
        "placeholder": ("x.txt", b"", "text/plain")}
    return await client.post("/v1/avatars", files=files, data=fields,
                             headers={"Authorization": f"Bearer {key}"})


async def upload_ok(client: httpx.AsyncClient, key: str, image: bytes = FACE,
                    **fields: str) -> dict[str, Any]:
    r = await upload(client, key, image, **fields)
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]
