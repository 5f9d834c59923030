"""The relay's binary records: what pipecat-protoface writes, we read, and the reverse."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipecat_protoface._media import (
    MediaMessageType,
    decode_media_record,
    encode_media_record,
    media_audio_record,
)

from protoface.streams import records

headers = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4)


@given(kind=st.sampled_from(list(records.Kind)), header=headers, blob=st.binary(max_size=256))
def test_our_records_decode_with_the_official_client(
    kind: records.Kind, header: dict[str, object], blob: bytes
) -> None:
    decoded = decode_media_record(records.encode(kind, header, blob))
    assert (decoded.msg_type, decoded.header, decoded.blob) == (int(kind), header, blob)


@given(header=headers, blob=st.binary(max_size=256))
def test_the_official_clients_records_decode_with_ours(
    header: dict[str, object], blob: bytes
) -> None:
    record = records.decode(encode_media_record(MediaMessageType.AUDIO, header, blob))
    assert (record.kind, record.header, record.blob) == (records.Kind.AUDIO, header, blob)


def test_audio_record_of_the_client_carries_rate_and_channels() -> None:
    record = records.decode(media_audio_record(b"\x01\x00" * 4, sample_rate=24_000, num_channels=1))
    assert record.header == {"sample_rate": 24_000, "num_channels": 1}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "too short"),
        (struct.pack(">I", 10) + b"\x01\x00\x00\x00\x00", "length prefix"),
        (struct.pack(">I", 5) + b"\x7f\x00\x00\x00\x00", "unknown record type"),
        (struct.pack(">I", 7) + b"\x01\x00\x00\x00\x09{}", "runs past the end"),
        (struct.pack(">I", 7) + b"\x01\x00\x00\x00\x02[]", "JSON object"),
        (struct.pack(">I", 7) + b"\x01\x00\x00\x00\x02{x", "not valid JSON"),
        (struct.pack(">I", 5 + 2) + b"\x01\x00\x00\x00\x02\xff\xfe", "not valid JSON"),
        (struct.pack(">I", 1 << 30) + b"\x01", "too"),
        (struct.pack(">I", 5) + b"\x01\x7f\xff\xff\xff", "header too large"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(data: bytes, problem: str) -> None:
    with pytest.raises(records.RecordError, match=problem):
        records.decode(data)


@given(st.binary(max_size=64))
def test_no_byte_string_makes_the_decoder_fail_any_other_way(data: bytes) -> None:
    # Anything but a RecordError (IndexError, struct.error, …) fails this test.
    with contextlib.suppress(records.RecordError):
        records.decode(data)
