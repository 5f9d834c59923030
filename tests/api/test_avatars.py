"""/v1/avatars: given an org and an upload, then an avatar or a precise error; builds run
through the real build job against the real object store."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from nats.js.errors import NotFoundError

from protoface.api.auth import key_hash
from protoface.api.avatars import images
from protoface.api.avatars.service import AvatarService, NewAvatar
from protoface.api.http import now
from protoface.api.services import Services
from protoface.domain import ids
from protoface.domain.errors import Rejected
from protoface.projections.avatars import AvatarsModel
from protoface.projections.runner import Projector
from protoface.streams import subjects
from protoface.worker.builds import Builder
from tests.api.support import assert_error, auth
from tests.avatars import FACE, NO_FACE, image_bytes, upload, upload_ok
from tests.conftest import KeyFactory
from tests.subjects import AVATAR_EVENTS
from tests.tokens import livekit_body


def builder(services: Services) -> Builder:
    return Builder(services.log, services.avatars.store, "wrk_test")


async def build(services: Services, avatar_id: str) -> None:
    """Run the worker's build job for ``avatar_id`` and wait until the API has seen it."""
    await builder(services).build(avatar_id)
    await services.projector.wait_for(
        await services.log.version(subjects.avatar_history(avatar_id)))


async def delete(client: httpx.AsyncClient, key: str, avatar_id: str) -> httpx.Response:
    return await client.delete(f"/v1/avatars/{avatar_id}", headers=auth(key))


# ── Upload and build ────────────────────────────────────────────────────────────


async def test_an_upload_is_processing_then_ready_after_the_build(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key, name="Ada")
    assert created["object"] == "avatar" and ids.is_valid(ids.AVATAR, created["id"])
    assert (created["status"], created["name"], created["runtime_type"]) == (
        "processing", "Ada", "avtr1")
    assert created["is_demo"] is False and created["failure_reason"] is None

    await build(services, created["id"])

    got = (await client.get(f"/v1/avatars/{created['id']}", headers=auth(key))).json()
    assert got == {**created, "status": "ready"}
    assert await services.avatars.store.exists(subjects.avatar_asset_key(created["id"]))


async def test_defaults_name_and_runtime_type(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    created = await upload_ok(client, await new_key())
    assert (created["name"], created["runtime_type"]) == ("Custom Avatar", "avtr1")


async def test_a_portrait_without_a_face_fails_with_a_human_reason(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key, NO_FACE)
    await build(services, created["id"])
    got = (await client.get(f"/v1/avatars/{created['id']}", headers=auth(key))).json()
    assert (got["status"], got["failure_reason"]) == ("failed", "No face detected in source image.")
    assert not await services.avatars.store.exists(subjects.avatar_asset_key(created["id"]))


async def test_a_redelivered_build_job_changes_nothing(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    await build(services, created["id"])
    version = await services.log.version(subjects.avatar_history(created["id"]))
    await build(services, created["id"])
    assert await services.log.version(subjects.avatar_history(created["id"])) == version


async def test_the_shared_build_queue_builds_uploads(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    ready, failed = await upload_ok(client, key), await upload_ok(client, key, NO_FACE)
    stop = asyncio.Event()
    task = asyncio.create_task(builder(services).run(stop))
    try:
        for _ in range(200):
            statuses = [(await client.get(f"/v1/avatars/{a['id']}", headers=auth(key))).json()[
                "status"] for a in (ready, failed)]
            if statuses == ["ready", "failed"]:
                break
            await asyncio.sleep(0.1)
        assert statuses == ["ready", "failed"]
    finally:
        stop.set()
        await task


# ── Upload validation ───────────────────────────────────────────────────────────


@pytest.mark.parametrize(("image", "filename", "code"), [
    (b"GIF89a" + bytes(100), "face.png", "image_unsupported_type"),
    (image_bytes(100, 100, "GIF"), "face.png", "image_unsupported_type"),
    (b"%PDF-1.4 not an image", "face.jpg", "image_unsupported_type"),
    (FACE[: len(FACE) // 2], "face.jpg", "image_corrupt"),
    (image_bytes(400, 400)[:300], "face.png", "image_corrupt"),
    (image_bytes(6000, 5000), "face.png", "image_too_many_pixels"),
    (image_bytes(32, 32), "face.png", "image_too_small"),
    (b"", "face.png", "image_empty"),
])
async def test_unusable_images_are_unprocessable_with_precise_codes(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory, image: bytes,
    filename: str, code: str,
) -> None:
    key = await new_key()
    before = await services.log.last_seq()
    r = await upload(client, key, image, filename)
    assert_error(r, 422, "unprocessable", code, "image")
    assert await services.log.last_seq() == before  # nothing written


async def test_an_oversized_upload_is_unprocessable_before_it_is_decoded(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    r = await upload(client, key, FACE + bytes(10 * 1024 * 1024))
    assert_error(r, 422, "unprocessable", "image_too_large", "image")
    r = await upload(client, key, FACE + bytes(11 * 1024 * 1024))  # past the body cap too
    assert_error(r, 422, "unprocessable", "image_too_large", "image")


async def test_the_format_is_sniffed_not_taken_from_the_filename(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    created = await upload_ok(client, await new_key(), image_bytes(128, 128, "PNG"))
    assert created["status"] == "processing"  # a PNG named portrait.jpg is accepted


async def test_form_fields_are_checked_by_name(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    # The avatars operations document 422 for every malformed request (not 400).
    key = await new_key()
    assert_error(await upload(client, key, None), 422, "unprocessable", "unknown_field",
                 "placeholder")
    assert_error(await upload(client, key, FACE, colour="blue"), 422, "unprocessable",
                 "unknown_field", "colour")
    r = await client.post("/v1/avatars", files={"name": (None, "x")}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "missing_field", "image")
    assert_error(await upload(client, key, FACE, runtime_type="avtr9"), 422, "unprocessable",
                 "unsupported_runtime_type", "runtime_type")
    r = await client.post("/v1/avatars", json={"image": "x"}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "unsupported_media_type")


# ── Slots ───────────────────────────────────────────────────────────────────────


async def test_the_plans_custom_avatar_slots_are_enforced_and_freed_by_delete(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")  # one slot
    first = await upload_ok(client, key)
    assert_error(await upload(client, key), 402, "quota_exceeded", "custom_avatar_slots")
    assert (await delete(client, key, first["id"])).status_code == 204
    await upload_ok(client, key)


async def test_concurrent_uploads_cannot_overshoot_the_slots(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("starter")  # three slots
    results = await asyncio.gather(*(upload(client, key) for _ in range(6)))
    assert sorted(r.status_code for r in results) == [202] * 3 + [402] * 3


# ── Reads ───────────────────────────────────────────────────────────────────────


async def test_stock_avatars_are_ready_demos(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    r = await client.get("/v1/avatars/av_stock_001", headers=auth(await new_key()))
    assert r.status_code == 200
    assert r.json() == {
        "object": "avatar", "id": "av_stock_001", "name": "Stock Avatar 001", "status": "ready",
        "runtime_type": "avtr1", "is_demo": True, "created_at": "2026-01-01T00:00:00Z",
        "default_voice": "Charon", "default_custom_instructions": None, "failure_reason": None}


async def test_list_scopes_search_and_pages(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    ada, bob, cyd = [await upload_ok(client, key, name=n) for n in ("Ada", "Bob", "Cyd")]

    async def listed(**params: object) -> dict[str, object]:
        r = await client.get("/v1/avatars", params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def ids_of(page: dict[str, object]) -> list[str]:
        return [a["id"] for a in page["data"]]  # type: ignore[attr-defined, index]

    stock = ["av_stock_001", "av_stock_002", "av_stock_003"]
    assert ids_of(await listed()) == [cyd["id"], bob["id"], ada["id"], *stock]
    assert ids_of(await listed(scope="org")) == [cyd["id"], bob["id"], ada["id"]]
    assert ids_of(await listed(scope="platform")) == stock
    assert ids_of(await listed(q="BO")) == [bob["id"]]
    assert ids_of(await listed(q=ada["id"][-8:].lower())) == [ada["id"]]
    assert ids_of(await listed(q="stock avatar 002")) == ["av_stock_002"]
    first = await listed(limit=2)
    assert (ids_of(first), first["has_more"], first["next_cursor"]) == (
        [cyd["id"], bob["id"]], True, bob["id"])
    second = await listed(limit=2, starting_after=bob["id"])
    assert (ids_of(second), second["next_cursor"]) == ([ada["id"], "av_stock_001"], "av_stock_001")
    last = await listed(limit=2, starting_after="av_stock_001")
    assert (ids_of(last), last["has_more"], last["next_cursor"]) == (stock[1:], False, None)
    r = await client.get("/v1/avatars", params={"scope": "mine"}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "invalid_value", "scope")
    r = await client.get("/v1/avatars", params={"limit": 101}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "out_of_range", "limit")
    r = await client.get("/v1/avatars", params={"limit": "ten"}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "invalid_type", "limit")
    r = await client.get("/v1/avatars", params={"colour": "blue"}, headers=auth(key))
    assert_error(r, 422, "unprocessable", "unknown_parameter", "colour")


# ── Delete ──────────────────────────────────────────────────────────────────────


async def test_delete_purges_the_source_and_the_asset_and_hides_the_avatar(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    await build(services, created["id"])
    store = services.avatars.store
    keys = (subjects.avatar_source_key(created["id"]), subjects.avatar_asset_key(created["id"]))
    assert [await store.exists(k) for k in keys] == [True, True]
    bucket = await services.log.js.object_store(subjects.AVATARS_BUCKET)
    chunks = [f"$O.{subjects.AVATARS_BUCKET}.C.{(await bucket.get_info(k)).nuid}" for k in keys]

    r = await client.delete(f"/v1/avatars/{created['id']}", headers=auth(key))

    assert r.status_code == 204 and r.content == b""
    assert [await store.get(k) for k in keys] == [None, None]
    for subject in chunks:  # the bytes themselves are purged from the stream, not hidden
        with pytest.raises(NotFoundError):
            await services.log.js.get_last_msg(f"OBJ_{subjects.AVATARS_BUCKET}", subject)
    assert_error(await client.get(f"/v1/avatars/{created['id']}", headers=auth(key)), 404,
                 "not_found", "avatar_not_found", "avatar_id")
    listed = (await client.get("/v1/avatars", params={"scope": "org"}, headers=auth(key))).json()
    assert listed["data"] == []
    assert_error(await client.delete(f"/v1/avatars/{created['id']}", headers=auth(key)), 404,
                 "not_found", "avatar_not_found", "avatar_id")


async def test_a_build_finishing_after_the_delete_leaves_nothing_behind(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    assert (await delete(client, key, created["id"])).status_code == 204
    await build(services, created["id"])  # the job was already queued
    assert not await services.avatars.store.exists(subjects.avatar_asset_key(created["id"]))


async def test_stock_avatars_cannot_be_deleted(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    r = await client.delete("/v1/avatars/av_stock_001", headers=auth(await new_key()))
    assert_error(r, 400, "invalid_request", "avatar_not_deletable", "avatar_id")


async def test_past_sessions_stay_after_their_avatar_is_deleted(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    await build(services, created["id"])
    session = (await client.post("/v1/sessions", json=livekit_body(created["id"]),
                                 headers=auth(key))).json()
    assert (await delete(client, key, created["id"])).status_code == 204
    r = await client.get(f"/v1/sessions/{session['id']}", headers=auth(key))
    assert r.status_code == 200 and r.json()["avatar_id"] == created["id"]


# ── Sessions on custom avatars ──────────────────────────────────────────────────


async def test_a_session_on_a_ready_custom_avatar_is_created(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await upload_ok(client, key)
    await build(services, created["id"])
    r = await client.post("/v1/sessions", json=livekit_body(created["id"]), headers=auth(key))
    assert r.status_code == 201, r.text
    assert r.json()["avatar_id"] == created["id"]


@pytest.mark.parametrize("image", [FACE, NO_FACE], ids=["processing", "failed"])
async def test_a_session_on_an_avatar_that_is_not_ready_conflicts(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory, image: bytes
) -> None:
    key = await new_key()
    created = await upload_ok(client, key, image)
    if image is NO_FACE:
        await build(services, created["id"])
    for path in ("/v1/sessions", "/v1/pipecat/sessions"):
        body = livekit_body(created["id"]) if path == "/v1/sessions" else {
            "avatar_id": created["id"], "quality": "mock"}
        r = await client.post(path, json=body, headers=auth(key))
        assert_error(r, 409, "conflict", "avatar_not_ready", "avatar_id")


async def test_another_orgs_avatar_is_not_found_everywhere(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    owner, stranger = await new_key(), await new_key()
    created = await upload_ok(client, owner)
    await build(services, created["id"])
    av = created["id"]
    for r in (
        await client.get(f"/v1/avatars/{av}", headers=auth(stranger)),
        await client.delete(f"/v1/avatars/{av}", headers=auth(stranger)),
        await client.post("/v1/sessions", json=livekit_body(av), headers=auth(stranger)),
        await client.post("/v1/pipecat/sessions", json={"avatar_id": av, "quality": "mock"},
                          headers=auth(stranger)),
    ):
        assert_error(r, 404, "not_found", "avatar_not_found", "avatar_id")
    listed = (await client.get("/v1/avatars", params={"q": av}, headers=auth(stranger))).json()
    assert listed["data"] == []
    assert (await client.get(f"/v1/avatars/{av}", headers=auth(owner))).status_code == 200


async def test_an_unknown_avatar_is_not_found(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    for av in ("av_01JN0000000000000000000009", "nope", "av_stock_999", "a.b.>"):
        assert_error(await client.get(f"/v1/avatars/{av}", headers=auth(key)), 404, "not_found",
                     "avatar_not_found", "avatar_id")


async def test_uploads_through_two_api_processes_cannot_overshoot_the_slots(
    services: Services, new_key: KeyFactory
) -> None:
    """Two services, each with its own projection (as two API processes have), race
    for a starter org's three slots: the conditional append lets exactly three win."""
    key = await new_key("starter")
    await services.projector.catch_up()
    principal = services.orgs.authenticate(key_hash(key))
    assert principal is not None
    other_model = AvatarsModel()
    other_projector = Projector(services.log, [other_model], subject=AVATAR_EVENTS,
                                metrics=False)
    await other_projector.start()
    await other_projector.catch_up()
    other = AvatarService(services.log, other_projector, other_model, services.avatars.store)
    image = await asyncio.to_thread(images.check, FACE)
    avatar_ids = [ids.new_id(ids.AVATAR) for _ in range(6)]
    try:
        results = await asyncio.gather(*(
            service.create(principal, NewAvatar("Racer", "avtr1", image), now(), avatar_id)
            for service, avatar_id in zip((services.avatars, other) * 3, avatar_ids,
                                          strict=True)
        ), return_exceptions=True)
    finally:
        await other_projector.stop()
    refused = [i for i, r in zip(avatar_ids, results, strict=True) if isinstance(r, Rejected)]
    assert len(refused) == 3 and all(
        r.code == "custom_avatar_slots" for r in results if isinstance(r, Rejected)), results
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 3, results
    await services.projector.catch_up()
    assert services.avatars.model.custom_count(principal.org.id) == 3
    for avatar_id in refused:  # a refused upload leaves no source image behind
        assert not await services.avatars.store.exists(subjects.avatar_source_key(avatar_id))


async def test_a_garbled_multipart_body_is_a_422_not_a_400(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    """Found by Schemathesis: a part with no headers made Litestar's parser answer 400."""
    key = await new_key()
    boundary = "4384e2371ce935e5014fb93fa8370721"
    r = await client.post("/v1/avatars", content=f"--{boundary}\r\n[{{}}, []]--{boundary}--\r\n",
                          headers={**auth(key), "Content-Type":
                                   f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 422, "unprocessable", "invalid_body")
