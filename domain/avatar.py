"""Avatars: the stock catalog every org can use.

Custom avatars (uploads, builds) are an aggregate of their own and arrive with the
avatar model; stock avatars are fixed ids that are always ``ready``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


class StockAvatar(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    default_voice: str | None = None
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


STOCK_AVATARS: dict[str, StockAvatar] = {
    a.id: a
    for a in (
        StockAvatar(id="av_stock_001", name="Stock Avatar 001", default_voice="Charon"),
        StockAvatar(id="av_stock_002", name="Stock Avatar 002", default_voice="Aoede"),
        StockAvatar(id="av_stock_003", name="Stock Avatar 003", default_voice="Puck"),
    )
}
