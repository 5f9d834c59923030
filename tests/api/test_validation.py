"""POST /v1/sessions validation: given a bad request, then 400/404/422 with the exact
type, code and param (a dot path) that names what was wrong."""

from __future__ import annotations

import datetime
import json
import uuid

import httpx
import pytest

from protoface.api.platform.orgs import create_key
from protoface.streams.eventlog import EventLog
from tests.api.support import assert_error, auth, create, create_ok
from tests.conftest import KeyFactory
from tests.tokens import livekit_body, worker_token


@pytest.fixture(scope="module")
async def key(event_log: EventLog) -> str:
    # One org for the module, on the internal plan (no rate limit, no practical
    # concurrency cap): these tests are about the request, not the org.
    issued = await create_key(event_log, f"org-validation-{uuid.uuid4().hex[:10]}", "internal")
    return issued.key


def without(body: dict[str, object], path: str) -> dict[str, object]:
    """``body`` with the field at the dot ``path`` removed."""
    copy = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    node = copy
    for part in parents:
        node = node[part]
    del node[last]
    return copy  # type: ignore[no-any-return]


# ── The body as a whole ─────────────────────────────────────────────────────────


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"avatar_id": "av_stock_001",}', b""])
async def test_malformed_json_is_invalid_json(
    client: httpx.AsyncClient, key: str, raw: bytes
) -> None:
    r = await client.post(
        "/v1/sessions", content=raw,
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_request", "invalid_json", None)


@pytest.mark.parametrize("raw", [b"[]", b'"a session"', b"42", b"null", b"true"])
async def test_a_body_that_is_not_an_object_is_refused(
    client: httpx.AsyncClient, key: str, raw: bytes
) -> None:
    r = await client.post(
        "/v1/sessions", content=raw,
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_request", "invalid_body", None)


async def test_unknown_top_level_field_is_named(client: httpx.AsyncClient, key: str) -> None:
    r = await create(client, key, body={**livekit_body(), "voice": "Charon"})
    assert_error(r, 400, "invalid_request", "unknown_field", "voice")


async def test_unknown_transport_field_is_named_with_its_path(
    client: httpx.AsyncClient, key: str
) -> None:
    r = await create(client, key, transport={"api_secret": "s3cret"})
    assert_error(r, 400, "invalid_request", "unknown_field", "transport.api_secret")


@pytest.mark.parametrize(
    "path",
    ["avatar_id", "transport", "transport.url", "transport.room_name", "transport.worker_token"],
)
async def test_missing_required_field_is_named_with_its_dot_path(
    client: httpx.AsyncClient, key: str, path: str
) -> None:
    r = await create(client, key, body=without(livekit_body(), path))
    assert_error(r, 400, "invalid_request", "missing_field", path)


# ── Scalars and their bounds ────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("idle_timeout_seconds", 0, "out_of_range"),
        ("idle_timeout_seconds", 601, "out_of_range"),
        ("idle_timeout_seconds", -1, "out_of_range"),
        ("idle_timeout_seconds", "x", "invalid_type"),
        ("idle_timeout_seconds", 1.5, "invalid_type"),
        ("max_duration_seconds", 0, "out_of_range"),
        ("max_duration_seconds", 3601, "out_of_range"),
        ("max_duration_seconds", "600", "invalid_type"),
        ("avatar_id", 7, "invalid_type"),
    ],
)
async def test_out_of_bounds_or_mistyped_field_is_refused(
    client: httpx.AsyncClient, key: str, field: str, value: object, code: str
) -> None:
    r = await create(client, key, **{field: value})
    assert_error(r, 400, "invalid_request", code, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [("idle_timeout_seconds", 1), ("idle_timeout_seconds", 600), ("max_duration_seconds", 1),
     ("max_duration_seconds", 3600)],
)
async def test_bounds_themselves_are_accepted(
    client: httpx.AsyncClient, key: str, field: str, value: int
) -> None:
    session = await create_ok(client, key, **{field: value})
    assert session[field] == value


@pytest.mark.parametrize(
    ("quality", "code"),
    [("ultra", "invalid_value"), ("STANDARD", "invalid_value"), ("", "invalid_value"),
     (3, "invalid_type"), (None, "invalid_type")],
)
async def test_unknown_quality_is_refused(
    client: httpx.AsyncClient, key: str, quality: object, code: str
) -> None:
    r = await create(client, key, quality=quality)
    assert_error(r, 400, "invalid_request", code, "quality")


@pytest.mark.parametrize("quality", ["mock", "lite", "standard", "pro"])
async def test_every_quality_tier_is_accepted(
    client: httpx.AsyncClient, key: str, quality: str
) -> None:
    assert (await create_ok(client, key, quality=quality))["quality"] == quality


# ── Transport ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("kind", ["pipecat", "websocket"])
async def test_reserved_transport_types_are_unsupported_here(
    client: httpx.AsyncClient, key: str, kind: str
) -> None:
    r = await create(client, key, body={"avatar_id": "av_stock_001", "transport": {"type": kind}})
    assert_error(r, 400, "invalid_request", "transport.unsupported", "transport.type")


@pytest.mark.parametrize("kind", ["pipecat", "websocket"])
async def test_reserved_transport_with_livekit_fields_is_still_unsupported(
    client: httpx.AsyncClient, key: str, kind: str
) -> None:
    # The discriminator is judged before the fields: a pipecat transport that also
    # carries room_name, url and worker_token is refused for its type, not its fields.
    r = await create(client, key, transport={"type": kind})
    assert_error(r, 400, "invalid_request", "transport.unsupported", "transport.type")


@pytest.mark.parametrize("kind", ["pipecat", "websocket"])
async def test_reserved_transport_with_unknown_fields_is_still_unsupported(
    client: httpx.AsyncClient, key: str, kind: str
) -> None:
    body = {"avatar_id": "av_stock_001", "transport": {"type": kind, "api_secret": "s3cret"}}
    r = await create(client, key, body=body)
    assert_error(r, 400, "invalid_request", "transport.unsupported", "transport.type")


@pytest.mark.parametrize("kind", ["smoke-signal", "LiveKit", "", "webrtc"])
async def test_unknown_transport_type_is_unsupported(
    client: httpx.AsyncClient, key: str, kind: str
) -> None:
    r = await create(client, key, transport={"type": kind})
    assert_error(r, 400, "invalid_request", "transport.unsupported", "transport.type")


async def test_unknown_transport_type_without_other_fields_is_unsupported(
    client: httpx.AsyncClient, key: str
) -> None:
    body = {"avatar_id": "av_stock_001", "transport": {"type": "smoke-signal"}}
    r = await create(client, key, body=body)
    assert_error(r, 400, "invalid_request", "transport.unsupported", "transport.type")


@pytest.mark.parametrize("kind", [5, None, True, ["livekit"], {"name": "livekit"}])
async def test_transport_type_that_is_not_a_string_is_invalid_type(
    client: httpx.AsyncClient, key: str, kind: object
) -> None:
    # ``type`` is a string in the seed; null is not "absent" (absent means livekit).
    r = await create(client, key, transport={"type": kind})
    assert_error(r, 400, "invalid_request", "invalid_type", "transport.type")


@pytest.mark.parametrize("transport", ["livekit", "pipecat", 1, ["livekit"], [], None])
async def test_transport_that_is_not_an_object_is_invalid_type(
    client: httpx.AsyncClient, key: str, transport: object
) -> None:
    r = await create(client, key, body={"avatar_id": "av_stock_001", "transport": transport})
    assert_error(r, 400, "invalid_request", "invalid_type", "transport")


async def test_transport_without_type_is_livekit(client: httpx.AsyncClient, key: str) -> None:
    body = without(livekit_body(), "transport.type")
    r = await create(client, key, body=body)
    assert r.status_code == 201, r.text
    assert r.json()["transport"]["type"] == "livekit"


async def test_transport_without_type_is_judged_as_livekit(
    client: httpx.AsyncClient, key: str
) -> None:
    # The seed's default type is livekit, so its required fields are what is missing.
    body = {"avatar_id": "av_stock_001", "transport": {"room_name": "demo-room"}}
    r = await create(client, key, body=body)
    assert_error(r, 400, "invalid_request", "missing_field", "transport.url")


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", ""), ("url", "   "), ("url", "ftp://my-app.livekit.cloud"), ("room_name", "")],
)
async def test_empty_or_unusable_transport_strings_are_refused(
    client: httpx.AsyncClient, key: str, field: str, value: str
) -> None:
    r = await create(client, key, transport={field: value})
    assert_error(r, 400, "invalid_request", "invalid_value", f"transport.{field}")


async def test_bad_audio_source_is_refused(client: httpx.AsyncClient, key: str) -> None:
    r = await create(client, key, transport={"audio_source": "microphone"})
    assert_error(r, 400, "invalid_request", "invalid_value", "transport.audio_source")


async def test_livekit_options_round_trip_without_the_token(
    client: httpx.AsyncClient, key: str
) -> None:
    session = await create_ok(client, key, transport={
        "audio_source": "track", "subscribe_to_identity": "agent-7",
        "synthetic_audio_if_no_input": True,
    })
    assert session["transport"] == {
        "type": "livekit", "url": "wss://my-app.livekit.cloud", "room_name": "demo-room",
        "audio_source": "track", "worker_identity": "protoface-worker",
        "subscribe_to_identity": "agent-7", "synthetic_audio_if_no_input": True,
        "worker_token": "[redacted]",
    }


# ── Metadata ────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("value", [{"nested": "x"}, ["a", "b"], []])
async def test_nested_metadata_value_is_not_flat(
    client: httpx.AsyncClient, key: str, value: object
) -> None:
    r = await create(client, key, metadata={"ok": "fine", "customer": value})
    assert_error(r, 400, "invalid_request", "metadata_not_flat", "metadata.customer")


@pytest.mark.parametrize("name", ["_avatar.worker", "_avatar."])
async def test_reserved_metadata_key_is_refused(
    client: httpx.AsyncClient, key: str, name: str
) -> None:
    r = await create(client, key, metadata={name: "mine"})
    assert_error(r, 400, "invalid_request", "metadata_reserved_key", f"metadata.{name}")


async def test_metadata_key_that_only_resembles_the_reserved_prefix_is_fine(
    client: httpx.AsyncClient, key: str
) -> None:
    metadata = {"_avatar": "a", "avatar.x": "b", "x_avatar.y": "c"}
    assert (await create_ok(client, key, metadata=metadata))["metadata"] == metadata


def metadata_of_json_size(size: int) -> dict[str, str]:
    metadata = {"blob": ""}
    overhead = len(json.dumps(metadata, separators=(",", ":")).encode())
    metadata["blob"] = "x" * (size - overhead)
    assert len(json.dumps(metadata, separators=(",", ":")).encode()) == size
    return metadata


async def test_metadata_over_8_kb_is_too_large(client: httpx.AsyncClient, key: str) -> None:
    r = await create(client, key, metadata=metadata_of_json_size(8 * 1024 + 1))
    assert_error(r, 400, "invalid_request", "metadata_too_large", "metadata")


async def test_metadata_of_exactly_8_kb_round_trips(client: httpx.AsyncClient, key: str) -> None:
    metadata = metadata_of_json_size(8 * 1024)
    session = await create_ok(client, key, metadata=metadata)
    assert session["metadata"] == metadata


async def test_flat_metadata_of_every_allowed_type_round_trips(
    client: httpx.AsyncClient, key: str
) -> None:
    metadata = {
        "customer_session_id": "abc123", "attempt": 3, "score": 0.25, "vip": True,
        "beta": False, "note": None, "unicode": "héllo ✓", "": "empty key",
    }
    session = await create_ok(client, key, metadata=metadata)
    assert session["metadata"] == metadata
    r = await client.get(f"/v1/sessions/{session['id']}", headers=auth(key))
    assert r.json()["metadata"] == metadata


@pytest.mark.parametrize("metadata", ["abc", ["a"], 1])
async def test_metadata_that_is_not_an_object_is_invalid_type(
    client: httpx.AsyncClient, key: str, metadata: object
) -> None:
    r = await create(client, key, metadata=metadata)
    assert_error(r, 400, "invalid_request", "invalid_type", "metadata")


# ── Worker token ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not-a-jwt", "worker_token_malformed"),
        ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..", "worker_token_malformed"),
        ("", "worker_token_malformed"),
        (worker_token(ttl=datetime.timedelta(minutes=-5)), "worker_token_expired"),
        (worker_token(room="another-room"), "worker_token_room_mismatch"),
        (worker_token(room_join=False), "worker_token_missing_room_join"),
        (worker_token(can_publish=False), "worker_token_cannot_publish"),
    ],
    ids=["garbage", "empty-jwt", "empty", "expired", "wrong-room", "no-room-join",
         "cannot-publish"],
)
async def test_worker_token_that_cannot_work_is_unprocessable(
    client: httpx.AsyncClient, key: str, token: str, code: str
) -> None:
    r = await create(client, key, transport={"worker_token": token})
    assert_error(r, 422, "unprocessable", code, "transport.worker_token")


async def test_token_within_clock_leeway_is_accepted(client: httpx.AsyncClient, key: str) -> None:
    token = worker_token(ttl=datetime.timedelta(seconds=-2))
    await create_ok(client, key, transport={"worker_token": token})


async def test_explicit_worker_identity_other_than_the_tokens_is_unprocessable(
    client: httpx.AsyncClient, key: str
) -> None:
    r = await create(client, key, transport={
        "worker_token": worker_token(identity="token-identity"), "worker_identity": "someone-else",
    })
    assert_error(r, 422, "unprocessable", "worker_token_identity_mismatch",
                 "transport.worker_token")


async def test_explicit_worker_identity_matching_the_token_is_accepted(
    client: httpx.AsyncClient, key: str
) -> None:
    session = await create_ok(client, key, transport={
        "worker_token": worker_token(identity="avatar-bot"), "worker_identity": "avatar-bot",
    })
    assert session["transport"]["worker_identity"] == "avatar-bot"


async def test_omitted_worker_identity_echoes_the_tokens_identity(
    client: httpx.AsyncClient, key: str
) -> None:
    session = await create_ok(
        client, key, transport={"worker_token": worker_token(identity="lk-avatar-42")}
    )
    assert session["transport"]["worker_identity"] == "lk-avatar-42"
    assert session["transport"]["worker_token"] == "[redacted]"


# ── Avatar ──────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("avatar_id", ["av_nope", "av_01HXY5K8E7QYG3X8Z6N9R7S0VR", ""])
async def test_unknown_avatar_is_not_found(
    client: httpx.AsyncClient, key: str, avatar_id: str
) -> None:
    r = await create(client, key, avatar_id=avatar_id)
    assert_error(r, 404, "not_found", "avatar_not_found", "avatar_id")


async def test_a_refused_create_leaves_nothing_behind(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    for body in (
        {**livekit_body(), "voice": "x"},
        livekit_body(metadata={"_avatar.x": 1}),
        livekit_body(transport={"worker_token": "nope"}),
        livekit_body(avatar_id="av_nope"),
    ):
        assert (await create(client, key, body=body)).status_code in (400, 404, 422)
    listed = (await client.get("/v1/sessions", headers=auth(key))).json()
    assert listed["data"] == []
