"""Contract: ``client.avatars.*`` of the official ``protoface-sdk`` (strict pydantic models,
``extra="forbid"``) against ``protoface api`` as a process; the build job runs in-process
as a worker would, against the same NATS."""

from __future__ import annotations

import asyncio
import time

import pytest
from protoface_sdk import (
    Avatar,
    AvatarStatus,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ProtofaceClient,
    QuotaExceededError,
    UnprocessableError,
)

from protoface.streams import subjects
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog
from protoface.worker.builds import Builder
from tests.avatars import FACE, NO_FACE
from tests.conftest import LiveServer
from tests.tokens import livekit_body


def client(live_server: LiveServer, key: str) -> ProtofaceClient:
    return ProtofaceClient(key, base_url=live_server.url, max_retries=0, timeout=15)


async def until_status(sdk: ProtofaceClient, avatar_id: str, status: AvatarStatus) -> Avatar:
    deadline = time.monotonic() + 10
    while True:
        found = sdk.avatars.get(avatar_id)
        if found.status == status or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_the_sdks_avatar_calls_round_trip(
    live_server: LiveServer, event_log: EventLog
) -> None:
    sdk, stranger = (client(live_server, live_server.new_key()),
                     client(live_server, live_server.new_key()))
    builder = Builder(event_log, await AvatarStore.open(event_log), "wrk_contract")
    try:
        created = sdk.avatars.create(image=FACE, filename="me.jpg", name="Ada")
        assert (created.status, created.name, created.is_demo) == (
            AvatarStatus.processing, "Ada", False)
        with pytest.raises(ConflictError) as not_ready:
            sdk.sessions.create(livekit_body(created.id))
        assert (not_ready.value.code, not_ready.value.param) == ("avatar_not_ready", "avatar_id")

        await builder.build(created.id)
        ready = await until_status(sdk, created.id, AvatarStatus.ready)
        assert ready == created.model_copy(update={"status": AvatarStatus.ready})
        session = sdk.sessions.create(livekit_body(created.id))
        assert session.avatar_id == created.id

        failed = sdk.avatars.create(image=NO_FACE, filename="blank.png")
        await builder.build(failed.id)
        failed = await until_status(sdk, failed.id, AvatarStatus.failed)
        assert failed.failure_reason == "No face detected in source image."
        assert failed.name == "Custom Avatar" and failed.runtime_type == "avtr1"

        page = sdk.avatars.list(limit=2)
        assert [a.id for a in page.data] == [failed.id, created.id] and page.has_more
        rest = sdk.avatars.list(starting_after=page.next_cursor)
        assert [a.id for a in rest.data] == ["av_stock_001", "av_stock_002", "av_stock_003"]
        assert all(a.is_demo and a.status == AvatarStatus.ready for a in rest.data)
        assert [a.id for a in sdk.avatars.list(scope="org", q="custom").data] == [failed.id]
        assert sdk.avatars.get("av_stock_002").default_voice == "Aoede"

        for call in (lambda: stranger.avatars.get(created.id),
                     lambda: stranger.avatars.delete(created.id),
                     lambda: stranger.sessions.create(livekit_body(created.id))):
            with pytest.raises(NotFoundError) as hidden:
                call()
            assert hidden.value.code == "avatar_not_found"
        assert stranger.avatars.list(scope="org").data == []

        with pytest.raises(UnprocessableError) as refused:
            sdk.avatars.create(image=b"not an image at all", filename="x.png")
        assert (refused.value.code, refused.value.param) == ("image_unsupported_type", "image")
        with pytest.raises(InvalidRequestError) as stock:
            sdk.avatars.delete("av_stock_001")
        assert stock.value.code == "avatar_not_deletable"

        sdk.avatars.delete(created.id)
        with pytest.raises(NotFoundError):
            sdk.avatars.get(created.id)
        store = await AvatarStore.open(event_log)
        assert await store.get(subjects.avatar_source_key(created.id)) is None
        assert await store.get(subjects.avatar_asset_key(created.id)) is None
        assert sdk.sessions.get(session.id).avatar_id == created.id  # past sessions stay
    finally:
        sdk.close()
        stranger.close()


def test_an_upload_past_the_plans_slots_is_a_quota_error(live_server: LiveServer) -> None:
    sdk = client(live_server, live_server.new_key("free"))  # one custom avatar slot
    try:
        sdk.avatars.create(image=FACE)
        with pytest.raises(QuotaExceededError) as refused:
            sdk.avatars.create(image=FACE)
        assert (refused.value.status, refused.value.code) == (402, "custom_avatar_slots")
    finally:
        sdk.close()
