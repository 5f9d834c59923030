"""The worker_token claim check on its own: given a token whose claims could never let
our worker join and publish (or that is not a well-formed JWS of well-typed claims),
then a 422 naming ``transport.worker_token`` with a precise code; given a token a
LiveKit server would accept, then the worker's grant."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import jwt
import pytest

from protoface.api.errors import ApiError
from protoface.api.sessions import livekit_token
from tests.tokens import worker_token

ROOM = "demo-room"
SECRET = "customer-secret-" + "x" * 32


def signed(claims: dict[str, object]) -> str:
    """A token with exactly ``claims``, signed as LiveKit's SDKs sign (HS256)."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def at(offset_seconds: int) -> int:
    return int(now().timestamp()) + offset_seconds


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "protoface-worker", "kind": "agent", "iss": "APIcustomer",
        "nbf": at(-5), "exp": at(600),
        "video": {"roomJoin": True, "room": ROOM, "canPublish": True},
    }
    base.update(overrides)
    return base


def refusal(token: str) -> str:
    with pytest.raises(ApiError) as caught:
        livekit_token.check(token, ROOM, now())
    assert caught.value.status == 422
    assert caught.value.param == "transport.worker_token"
    return caught.value.code


def test_a_token_minted_by_livekit_api_gives_the_workers_grant() -> None:
    grant = livekit_token.check(worker_token(room=ROOM, identity="w-1"), ROOM, now())
    assert grant.identity == "w-1"
    assert grant.kind == "agent"
    assert grant.publish_on_behalf == "agent-1"
    assert grant.expires_at is not None and grant.expires_at > now()


def test_can_publish_defaults_to_true_as_on_a_livekit_server() -> None:
    token = signed(claims(video={"roomJoin": True, "room": ROOM}))
    assert livekit_token.check(token, ROOM, now()).identity == "protoface-worker"


def without(name: str) -> Callable[[], str]:
    return lambda: signed({k: v for k, v in claims().items() if k != name})


# Tokens are minted when the test runs (their times are relative to now).
@pytest.mark.parametrize(
    ("token", "code"),
    [
        (lambda: signed(claims(exp=None)), "worker_token_no_expiry"),
        (without("exp"), "worker_token_no_expiry"),
        (lambda: signed(claims(nbf=at(600))), "worker_token_not_yet_valid"),
        (lambda: signed(claims(video=None)), "worker_token_missing_room_join"),
        (lambda: signed(claims(video={"room": ROOM})), "worker_token_missing_room_join"),
        (lambda: signed(claims(video={"roomJoin": True, "room": ROOM,
                                      "canPublishSources": ["camera"]})),
         "worker_token_cannot_publish"),
        (without("sub"), "worker_token_missing_identity"),
    ],
    ids=["null-exp", "no-exp", "not-yet-valid", "no-video", "no-room-join",
         "camera-only", "no-sub"],
)
def test_claims_that_cannot_work_are_refused_with_a_precise_code(
    token: Callable[[], str], code: str
) -> None:
    assert refusal(token()) == code


def test_publish_sources_that_include_camera_and_microphone_are_enough() -> None:
    token = signed(claims(video={"roomJoin": True, "room": ROOM,
                                 "canPublishSources": ["CAMERA", "microphone", "screen_share"]}))
    assert livekit_token.check(token, ROOM, now()).identity == "protoface-worker"


@pytest.mark.parametrize(
    "token",
    [
        lambda: signed(claims(exp="tomorrow")),
        lambda: signed(claims(sub=42)),
        lambda: signed(claims(video={"roomJoin": "yes", "room": ROOM})),
        lambda: signed(claims(video=[ROOM])),
        lambda: signed(claims(attributes={"lk.publish_on_behalf": 7})),
        lambda: worker_token(room=ROOM) + ".extra",
        lambda: "e30.W10.",  # header {} but the payload is a JSON array
        lambda: "W10.e30.",  # the header is a JSON array
        lambda: "e30.e30.***",  # the signature segment is not base64url
    ],
    ids=["exp-string", "sub-number", "room-join-string", "video-array", "attribute-number",
         "four-segments", "payload-array", "header-array", "signature-not-base64url"],
)
def test_a_token_that_is_not_a_jws_of_well_typed_claims_is_malformed(
    token: Callable[[], str]
) -> None:
    assert refusal(token()) == "worker_token_malformed"


def test_the_grants_read_default_exactly_as_livekit_apis_own() -> None:
    # Given livekit-api's VideoGrants (what a LiveKit server means by each grant), when
    # a claim is absent, then our reading of it defaults to the same value.
    from livekit.api import VideoGrants

    theirs, ours = VideoGrants(), livekit_token._VideoGrants()
    for field in ("room_join", "room", "can_publish", "can_publish_sources"):
        assert getattr(ours, field) == getattr(theirs, field), field
