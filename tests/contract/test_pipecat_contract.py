"""``client.pipecat.sessions.create`` of the official SDK against a live server: the
strict PipecatSessionView (no extra field anywhere) and a usable relay."""

from __future__ import annotations

from protoface_sdk import ProtofaceClient
from protoface_sdk.errors import InvalidRequestError
from protoface_sdk.models import SessionStatus

from tests.conftest import LiveServer


def test_pipecat_session_view_parses_with_the_sdk_strict_models(
    live_server: LiveServer,
) -> None:
    key = live_server.new_key("launch")
    with ProtofaceClient(key, base_url=live_server.url, max_retries=0) as client:
        view = client.pipecat.sessions.create(
            avatar_id="av_stock_002", quality="mock", max_duration_seconds=90,
            idle_timeout_seconds=15, metadata={"call": "c-1", "turn": 3},
        )
        assert view.object == "pipecat.session"
        assert view.session.status == SessionStatus.queued
        assert view.session.transport.type == "pipecat"
        assert (view.session.max_duration_seconds, view.session.idle_timeout_seconds) == (90, 15)
        relay = view.relay
        assert relay.type == "websocket"
        assert relay.protocol == "protoface.pipecat.media.v1"
        assert relay.audio_sample_rate == 16_000
        assert relay.video_encoding.value == "jpeg"
        assert relay.decoded_video_format == "RGB"
        assert relay.supports_audio_output is True
        assert relay.media_url.startswith("ws://127.0.0.1:")
        assert relay.media_url.endswith(f"/v1/pipecat/sessions/{view.session.id}/media")
        assert relay.media_token and relay.media_token not in relay.media_url
        # The session is an ordinary session too.
        assert client.sessions.get(view.session.id).id == view.session.id
        assert client.sessions.end(view.session.id).status == SessionStatus.canceled


def test_pipecat_create_rejects_unknown_fields_with_param(live_server: LiveServer) -> None:
    key = live_server.new_key("launch")
    with ProtofaceClient(key, base_url=live_server.url, max_retries=0) as client:
        try:
            client.request("POST", "/v1/pipecat/sessions",
                           json_body={"avatar_id": "av_stock_001", "relay_mode": "webrtc"})
        except InvalidRequestError as error:
            assert error.param == "relay_mode"
        else:
            raise AssertionError("relay_mode=webrtc was accepted")
