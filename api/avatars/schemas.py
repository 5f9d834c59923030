"""The public Avatar resource (seed ``Avatar``) and how state renders to it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from protoface.domain.avatar import Avatar, StockAvatar

PublicStatus = Literal["ready", "processing", "failed"]


class AvatarView(msgspec.Struct, kw_only=True, omit_defaults=False):
    object: Literal["avatar"] = "avatar"
    id: str
    name: str
    status: PublicStatus
    runtime_type: str
    is_demo: bool
    created_at: datetime
    default_voice: str | None = None
    default_custom_instructions: str | None = None
    failure_reason: str | None = None


def avatar_view(state: Avatar | StockAvatar) -> AvatarView:
    if isinstance(state, StockAvatar):
        return AvatarView(id=state.id, name=state.name, status="ready", runtime_type="avtr1",
                          is_demo=True, created_at=state.created_at,
                          default_voice=state.default_voice)
    # A deleted avatar is never served; a webhook renders it only before its deletion.
    status: PublicStatus = "processing" if state.status == "deleted" else state.status
    return AvatarView(
        id=state.id, name=state.name, status=status, runtime_type=state.runtime_type,
        is_demo=False, created_at=state.created_at,
        failure_reason=state.failure_reason if state.status == "failed" else None,
    )
