"""A job as a member would ask for it, for tests of the stores and use cases."""

from __future__ import annotations

from typing import Any

from bot.jobs import NewJob

GUILD = 1_100_000_000_000_000_001
CHANNEL = 1_100_000_000_000_000_002
MEMBER = 1_100_000_000_000_000_003


def new_job(**overrides: Any) -> NewJob:
    """A plain /imagine request; any field can be overridden."""
    fields: dict[str, Any] = {
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "member_id": MEMBER,
        "locale": "en",
        "prompt": "a fox dances in the snow",
        "mode": "normal",
        "ratio": "16:9",
        "image_urls": (),
        "progress_message_id": None,
        "interaction_token": None,
        "interaction_expires_at": None,
        "upload_limit_bytes": 10 * 1024 * 1024,
        "cost": 40,
    }
    return NewJob(**(fields | overrides))
