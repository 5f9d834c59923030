"""A worker loads a session's avatar asset: stock ones from its own portraits, custom ones
from the object store under the key the ``avatar.built`` event names (digest checked)."""

from __future__ import annotations

import logging

import httpx
import pytest

from protoface.api.services import Services
from protoface.streams import subjects
from protoface.worker.avatars import AvatarNotAvailable, load_asset
from protoface.worker.builds import Builder
from protoface.worker.render import framing, rig
from tests.avatars import upload_ok
from tests.conftest import KeyFactory


async def test_a_stock_avatar_loads_the_shipped_portraits_asset(services: Services) -> None:
    asset = await load_asset(services.log, services.avatars.store, "av_stock_001")
    assert asset == rig.stock_asset("av_stock_001")
    assert rig.load_asset(asset).rig.width > 0


async def test_a_ready_custom_avatar_loads_its_built_asset_and_nothing_else_does(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    store = services.avatars.store
    with pytest.raises(AvatarNotAvailable):  # still processing
        await load_asset(services.log, store, created["id"])

    await Builder(services.log, store, "wrk_test").build(created["id"])

    asset = await load_asset(services.log, store, created["id"])
    assert asset == await store.get(subjects.avatar_asset_key(created["id"]))
    assert rig.load_asset(asset).rig.face.w > 0

    await store.put(subjects.avatar_asset_key(created["id"]), asset[:-1] + b"x")
    with pytest.raises(AvatarNotAvailable):  # not the bytes the event names
        await load_asset(services.log, store, created["id"])
    with pytest.raises(AvatarNotAvailable):
        await load_asset(services.log, store, "av_01JN0000000000000000000009")


async def test_a_build_logs_how_much_each_tier_enlarges_the_portrait(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = await upload_ok(client, await new_key())
    with caplog.at_level(logging.INFO, logger="protoface"):
        await Builder(services.log, services.avatars.store, "wrk_test").build(created["id"])
    said = [r for r in caplog.records if r.getMessage() == "avatar portrait upscale"]
    assert len(said) == 1 and said[0].__dict__["avatar_id"] == created["id"]
    asset = rig.load_asset(await load_asset(services.log, services.avatars.store,
                                            created["id"]))
    assert said[0].__dict__["upscale"] == framing.upscales(asset.rig.face.h)
    assert set(said[0].__dict__["upscale"]) == {"lite", "standard", "pro"}
