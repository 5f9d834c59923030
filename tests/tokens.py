"""LiveKit worker tokens minted with livekit-api, the way customers (and the plugin) mint them."""

from __future__ import annotations

import datetime

from livekit import api

from protoface.api.sessions import livekit_token


def worker_token(
    room: str = "demo-room", identity: str = "protoface-worker", *,
    ttl: datetime.timedelta = datetime.timedelta(minutes=10), can_publish: bool = True,
    room_join: bool = True, publish_on_behalf: str | None = "agent-1",
) -> str:
    grants = api.VideoGrants(
        room_join=room_join, room=room, can_publish=can_publish, can_subscribe=True,
        can_publish_data=True,
    )
    token = (
        api.AccessToken(api_key="APIcustomer", api_secret="customer-secret-" + "x" * 32)
        .with_kind("agent").with_identity(identity).with_name(identity)
        .with_grants(grants).with_ttl(ttl)
    )
    if publish_on_behalf:
        token = token.with_attributes({"lk.publish_on_behalf": publish_on_behalf})
    return token.to_jwt()


def on_behalf_of(token: str, room: str = "demo-room") -> str | None:
    """What the API keeps of ``token`` at create: ``LiveKitTransport.publish_on_behalf``."""
    now = datetime.datetime.now(datetime.UTC)
    return livekit_token.check(token, room, now).publish_on_behalf


def livekit_body(avatar_id: str = "av_stock_001", **overrides: object) -> dict[str, object]:
    transport = {
        "type": "livekit", "url": "wss://my-app.livekit.cloud", "room_name": "demo-room",
        "worker_token": worker_token(),
    }
    transport.update(overrides.pop("transport", {}))  # type: ignore[call-overload]
    return {"avatar_id": avatar_id, "transport": transport, **overrides}
