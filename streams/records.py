"""The relay's binary media records, as ``pipecat-protoface`` speaks them.

A record is ``u32 length ‖ u8 type ‖ u32 header length ‖ JSON header ‖ blob``
(big-endian; length counts everything after itself). Parsing is strict: any
malformed record is a :class:`RecordError`, answered with an ERROR record.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">BI")
MAX_RECORD_BYTES = 4 * 1024 * 1024  # inbound: ~2 min of 16 kHz PCM in one record
MAX_HEADER_BYTES = 16 * 1024


class Kind(IntEnum):
    AUDIO = 0x01
    FLUSH = 0x02
    INTERRUPT = 0x03
    LISTEN_AUDIO = 0x04
    CLOSE = 0x05
    READY = 0x10
    VIDEO = 0x11
    METRICS = 0x12
    ERROR = 0x13


class RecordError(ValueError):
    """A record that does not follow the format (the message says how)."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    header: dict[str, Any] = field(default_factory=dict)
    blob: bytes = b""


def encode(kind: Kind, header: dict[str, Any] | None = None, blob: bytes = b"") -> bytes:
    head = json.dumps(header or {}, separators=(",", ":")).encode()
    body_len = _HEAD.size + len(head) + len(blob)
    return _U32.pack(body_len) + _HEAD.pack(int(kind), len(head)) + head + blob


def decode(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> Record:
    if len(data) < 4 + _HEAD.size:
        raise RecordError(f"record too short: {len(data)} bytes")
    (length,) = _U32.unpack_from(data)
    if length > max_bytes:
        raise RecordError(f"record too large: {length} bytes (max {max_bytes})")
    if len(data) != 4 + length:
        raise RecordError(f"length prefix says {length} bytes, record has {len(data) - 4}")
    kind_raw, head_len = _HEAD.unpack_from(data, 4)
    try:
        kind = Kind(kind_raw)
    except ValueError:
        raise RecordError(f"unknown record type 0x{kind_raw:02x}") from None
    if head_len > MAX_HEADER_BYTES:
        raise RecordError(f"header too large: {head_len} bytes (max {MAX_HEADER_BYTES})")
    start = 4 + _HEAD.size
    end = start + head_len
    if end > len(data):
        raise RecordError("header runs past the end of the record")
    header: Any = {}
    if head_len:
        try:
            header = json.loads(data[start:end])
        except (UnicodeDecodeError, ValueError):
            raise RecordError("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise RecordError("header must be a JSON object")
    return Record(kind, header, bytes(data[end:]))


def error(code: str, message: str) -> bytes:
    return encode(Kind.ERROR, {"code": code, "message": message})
