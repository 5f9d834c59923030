"""Hostile input on the relay media socket, against real api and worker processes.

Given a running Pipecat session, when a client sends generated garbage (random bytes,
truncated records, wrong length prefixes, huge header lengths, bad JSON, wrong types,
records only servers send, text frames) or floods the socket, then every malformed
record is answered with an ERROR record or the socket is closed with a code, every
message the server sends is a well-formed record, and the worker process never
crashes: it keeps rendering that session and the next one.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import time
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protoface.streams import records
from tests.e2e.conftest import Stack
from tests.e2e.test_relay_session import auth

pytestmark = pytest.mark.slow

EXAMPLES = max(5, int(os.environ.get("PROTOFACE_FUZZ_CASES", "25")) // 5)
CLOSE_CODES = {1000, 1003, 1008, 1009, 1011, 1013}  # 1011 would mean a crash: see below
PCM = bytes(640)  # 20 ms of 16 kHz mono silence

_kinds = st.sampled_from(list(records.Kind))
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                        st.integers(), max_size=2))


def _audio(header: dict[str, Any], blob: bytes = PCM) -> bytes:
    return records.encode(records.Kind.AUDIO, header, blob)


hostile = st.one_of(
    st.binary(max_size=64),  # noise
    st.integers(1, 60).map(lambda n: _audio({"sample_rate": 16000})[:n]),  # truncated
    st.integers(-40, 40).filter(bool).map(  # a length prefix that lies
        lambda d: struct.pack(">I", max(0, len(_audio({})) - 4 + d)) + _audio({})[4:]),
    st.integers(records.MAX_HEADER_BYTES + 1, 2**32 - 1).map(  # huge header length
        lambda n: struct.pack(">IBI", 5 + 2, int(records.Kind.AUDIO), n) + b"{}"),
    st.binary(min_size=1, max_size=32).map(  # a header that is not JSON
        lambda h: struct.pack(">IBI", 5 + len(h) + 1, int(records.Kind.AUDIO), len(h)) + h
        + b"x"),
    st.integers(0x20, 0xFF).map(lambda k: struct.pack(">IBI", 5, k, 0)),  # unknown type
    st.builds(lambda k, v: records.encode(k, {"sample_rate": v, "num_channels": v}, PCM[:7]),
              _kinds, _values),  # wrong types, odd sample counts, server-only kinds
    st.builds(lambda v: records.encode(records.Kind.AUDIO, {"sample_rate": 16000}, b"\x00")
              + v, st.binary(min_size=1, max_size=8)),  # trailing bytes
    st.just(records.encode(records.Kind.AUDIO, None, PCM)[:4] + json.dumps([1]).encode()),
)


def malformed(data: bytes) -> bool:
    try:
        records.decode(data)
    except records.RecordError:
        return True
    return False


def start_session(stack: Stack, key: str) -> dict[str, Any]:
    """A new session; the previous one may still hold its slot for a moment (503)."""
    deadline = time.monotonic() + 15
    while True:
        created = httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                             timeout=10, json={"avatar_id": "av_stock_001", "quality": "mock"})
        if created.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert created.status_code == 201, created.text
    return dict(created.json())


def end_session(stack: Stack, key: str, created: dict[str, Any]) -> None:
    session_id = created["session"]["id"]
    httpx.post(f"{stack.url}/v1/sessions/{session_id}/end", headers=auth(key), timeout=10)


async def converse(relay: dict[str, Any], payloads: list[bytes | str]) -> tuple[int, int | None,
                                                                                  int]:
    """Send ``payloads``; return (ERROR records, close code or None, VIDEO records)."""
    errors = videos = 0
    expected = sum(1 for p in payloads if isinstance(p, bytes) and malformed(p))
    async with websockets.connect(
        relay["media_url"], subprotocols=[relay["protocol"]],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {relay['media_token']}"},
        max_size=None, open_timeout=10,
    ) as socket:
        try:
            for payload in payloads:
                await socket.send(payload)
            await socket.send(_audio({"sample_rate": 16000, "num_channels": 1}, PCM * 25))
            await socket.send(records.encode(records.Kind.FLUSH))
            while errors < expected or videos < 3:
                message = await asyncio.wait_for(socket.recv(), 15)
                assert isinstance(message, bytes), message
                record = records.decode(message, max_bytes=64 * 1024 * 1024)  # well-formed
                if record.kind is records.Kind.ERROR:
                    assert {"code", "message"} <= set(record.header)
                    errors += 1
                elif record.kind is records.Kind.VIDEO:
                    videos += 1
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            return errors, code, videos
    return errors, None, videos


@pytest.fixture
def fuzz_worker(stack: Stack, workers: list[object]) -> subprocess.Popen[bytes]:
    return stack.worker(slots=2)


def test_generated_garbage_gets_error_records_and_never_crashes_the_worker(
    stack: Stack, fuzz_worker: subprocess.Popen[bytes]
) -> None:
    key = stack.new_key("internal")  # no create-rate limit

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile, min_size=1, max_size=30))
    def one_socket(payloads: list[bytes | str]) -> None:
        created = start_session(stack, key)
        errors, code, videos = asyncio.run(converse(created["relay"], payloads))
        end_session(stack, key, created)
        expected = sum(1 for p in payloads if isinstance(p, bytes) and malformed(p))
        if code is None:
            assert errors >= expected and videos >= 3  # answered, and the session goes on
        else:
            assert code in CLOSE_CODES - {1011}, code
        assert fuzz_worker.poll() is None, "the worker crashed"

    one_socket()
    # And the worker still serves a fresh session.
    errors, code, videos = asyncio.run(converse(start_session(stack, key)["relay"], []))
    assert (errors, code) == (0, None) and videos >= 3


def test_text_frames_oversized_records_and_floods_close_with_a_code(
    stack: Stack, fuzz_worker: subprocess.Popen[bytes]
) -> None:
    key = stack.new_key("internal")  # no create-rate limit

    def one(payloads: list[bytes | str]) -> tuple[int, int | None, int]:
        created = start_session(stack, key)
        try:
            return asyncio.run(converse(created["relay"], payloads))
        finally:
            end_session(stack, key, created)  # free the slot for the next one

    assert one(["{\"type\": \"audio\"}"])[1] == 1003
    huge = _audio({"sample_rate": 16000}, bytes(records.MAX_RECORD_BYTES + 2))
    assert one([huge])[1] == 1009
    # A flood of small garbage and real audio: answered in order, no crash.
    flood: list[bytes | str] = [b"\x00" * 9, _audio({"sample_rate": 16000}, PCM)] * 1500
    errors, code, videos = one(flood)
    assert code is None and errors >= 1500 and videos >= 3
    assert fuzz_worker.poll() is None
