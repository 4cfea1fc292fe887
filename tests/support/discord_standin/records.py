"""The stand-in's state: plain records that tests read directly, and Discord's payload shapes.

Everything here is synchronous and free of I/O so that tests can inspect it at any point.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import discord

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024
# The per-file upload limit by boost tier, as Discord documents it (tiers 0 and 1 share 10 MiB).
FILESIZE_LIMIT_BY_PREMIUM_TIER = {
    0: DEFAULT_FILESIZE_LIMIT,
    1: DEFAULT_FILESIZE_LIMIT,
    2: 50 * 1024 * 1024,
    3: 100 * 1024 * 1024,
}

INTERACTION_TOKEN_LIFETIME_SECONDS = 15 * 60
INITIAL_RESPONSE_DEADLINE_SECONDS = 3.0
NONCE_WINDOW_SECONDS = 5 * 60
MAX_CONTENT_LENGTH = 2000
MAX_EMBEDS = 10
MAX_EMBED_CHARACTERS = 6000

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7

DEFAULT_MEMBER_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    use_external_emojis=True,
    use_application_commands=True,
).value
_ADMINISTRATOR = discord.Permissions(administrator=True).value
_MANAGE_MESSAGES = discord.Permissions(manage_messages=True).value
PERMISSION_VIEW_CHANNEL = discord.Permissions(view_channel=True).value
PERMISSION_SEND_MESSAGES = discord.Permissions(send_messages=True).value
ADMINISTRATOR_PERMISSIONS = DEFAULT_MEMBER_PERMISSIONS | _ADMINISTRATOR
DEFAULT_BOT_PERMISSIONS = DEFAULT_MEMBER_PERMISSIONS | _MANAGE_MESSAGES

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE_MENTION = re.compile(r"@(?:everyone|here)\b")


def shard_id_for(guild_id: int, shard_count: int) -> int:
    """The shard that receives a guild's events: Discord's ``(guild_id >> 22) % num_shards``."""
    return (guild_id >> 22) % shard_count


class SnowflakeFactory:
    """Mints strictly increasing snowflakes whose timestamp part follows the stand-in's clock."""

    def __init__(self) -> None:
        self._last = 0
        self._increment = itertools.count()

    def next(self, now: datetime) -> int:
        millis = int(now.timestamp() * 1000) - DISCORD_EPOCH_MS
        candidate = (millis << 22) | (next(self._increment) & 0xFFF)
        self._last = max(candidate, self._last + 1)
        return self._last

    def next_on_shard(self, now: datetime, shard_id: int, shard_count: int) -> int:
        """The next snowflake whose guild would live on ``shard_id`` of ``shard_count``.

        The shard comes from the timestamp part, so this steps the timestamp forward by up to
        ``shard_count - 1`` milliseconds; later snowflakes stay larger.
        """
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} does not exist among {shard_count} shards")
        snowflake = self.next(now)
        while shard_id_for(snowflake, shard_count) != shard_id:
            snowflake += 1 << 22
        self._last = max(self._last, snowflake)
        return snowflake


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class User:
    """A Discord user; every user added to the stand-in is a member of every guild."""

    id: int
    name: str
    permissions: int = DEFAULT_MEMBER_PERMISSIONS
    roles: tuple[int, ...] = ()
    bot: bool = False
    # False: like a user who turned off direct messages from server members; the bot can still
    # open a DM channel with them, but its messages there are refused (403, code 50007).
    accepts_dms: bool = True

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    def full_payload(self) -> dict[str, Any]:
        """The user object of ``GET /users/{user.id}``: ``payload`` plus the profile fields."""
        return self.payload() | {
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "primary_guild": None,
        }

    def member_payload(
        self, joined_at: datetime, *, permissions: int | None = None
    ) -> dict[str, Any]:
        member: dict[str, Any] = {
            "user": self.payload(),
            "roles": [str(role) for role in self.roles],
            "joined_at": iso(joined_at),
            "nick": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
        }
        if permissions is not None:
            member["permissions"] = str(permissions)
        return member


@dataclass
class Channel:
    """A guild text channel (type 0)."""

    id: int
    guild_id: int
    name: str
    position: int
    nsfw: bool = False
    # Permission overwrites: role or member id → (allowed bits, denied bits).
    role_overwrites: dict[int, tuple[int, int]] = field(default_factory=dict)

    def denies(self, role_id: int, permission: int) -> bool:
        return bool(self.role_overwrites.get(role_id, (0, 0))[1] & permission)

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": 0,
            "name": self.name,
            "position": self.position,
            "nsfw": self.nsfw,
            "topic": None,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "permission_overwrites": [
                {"id": str(role_id), "type": 0, "allow": str(allow), "deny": str(deny)}
                for role_id, (allow, deny) in self.role_overwrites.items()
            ],
            "last_message_id": None,
        }


@dataclass
class DMChannel:
    """A direct-message channel (type 1) between the bot and one user; one per recipient."""

    id: int
    recipient: User
    last_message_id: int | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": 1,
            "flags": 0,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "recipients": [self.recipient.payload()],
        }


@dataclass
class Guild:
    """A server; ``channels`` holds at least one safe-for-work and one NSFW text channel."""

    id: int
    name: str
    owner_id: int
    locale: str
    premium_tier: int
    filesize_limit: int
    features: list[str]
    everyone_permissions: int
    bot_role_id: int
    bot_permissions: int
    channels: list[Channel] = field(default_factory=list)
    # Plain roles with no permissions of their own (to mention, say): id → name.
    extra_roles: dict[int, str] = field(default_factory=dict)

    @property
    def text_channel(self) -> Channel:
        """The first channel that is not age-restricted."""
        return next(channel for channel in self.channels if not channel.nsfw)

    @property
    def nsfw_channel(self) -> Channel:
        """The first age-restricted channel."""
        return next(channel for channel in self.channels if channel.nsfw)

    def channel(self, name: str) -> Channel:
        return next(channel for channel in self.channels if channel.name == name)

    def roles_payload(self) -> list[dict[str, Any]]:
        def role(
            role_id: int, name: str, permissions: int, position: int, *, managed: bool
        ) -> dict[str, Any]:
            return {
                "id": str(role_id),
                "name": name,
                "permissions": str(permissions),
                "position": position,
                "color": 0,
                "colors": {"primary_color": 0},
                "hoist": False,
                "managed": managed,
                "mentionable": False,
                "flags": 0,
            }

        return [
            role(self.id, "@everyone", self.everyone_permissions, 0, managed=False),
            role(self.bot_role_id, "bot", self.bot_permissions, 1, managed=True),
            *(
                role(role_id, name, 0, position, managed=False)
                for position, (role_id, name) in enumerate(self.extra_roles.items(), start=2)
            ),
        ]


@dataclass
class StoredAttachment:
    """A file the stand-in holds and serves at ``url`` (uploads, and inputs made by tests)."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    url: str
    description: str | None = None
    # Pixel dimensions, which Discord reports for images and videos.
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            payload["content_type"] = self.content_type
        if self.description is not None:
            payload["description"] = self.description
        if self.width is not None and self.height is not None:
            payload |= {"width": self.width, "height": self.height}
        return payload


@dataclass(frozen=True)
class PingedMentions:
    """Who a message actually notifies once ``allowed_mentions`` has been applied."""

    users: frozenset[int]
    roles: frozenset[int]
    everyone: bool

    @property
    def nobody(self) -> bool:
        return not (self.users or self.roles or self.everyone)


def pinged_mentions(content: str, allowed_mentions: Mapping[str, Any] | None) -> PingedMentions:
    """Apply Discord's allowed-mentions rules to the mentions written in ``content``.

    Without ``allowed_mentions`` every mention pings. With it, a kind pings only when it is in
    ``parse``; explicit ``users`` / ``roles`` lists allow exactly those ids.
    """
    written_users = {int(found) for found in _USER_MENTION.findall(content)}
    written_roles = {int(found) for found in _ROLE_MENTION.findall(content)}
    written_everyone = _EVERYONE_MENTION.search(content) is not None
    if allowed_mentions is None:
        return PingedMentions(frozenset(written_users), frozenset(written_roles), written_everyone)
    parse = set(allowed_mentions.get("parse", []))
    allowed_users = {int(user) for user in allowed_mentions.get("users", [])}
    allowed_roles = {int(role) for role in allowed_mentions.get("roles", [])}
    users = written_users if "users" in parse else written_users & allowed_users
    roles = written_roles if "roles" in parse else written_roles & allowed_roles
    everyone = written_everyone and "everyone" in parse
    return PingedMentions(frozenset(users), frozenset(roles), everyone)


# "member": posted by a (non-bot) member, see ``DiscordStandIn.post_member_message``.
MessageOrigin = Literal["channel", "interaction_response", "followup", "member"]


@dataclass
class Message:
    """A message as the stand-in stores it; ``edits`` keeps every PATCH payload in order."""

    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[StoredAttachment]
    allowed_mentions: dict[str, Any] | None
    flags: int
    created_at: datetime
    origin: MessageOrigin
    interaction_id: int | None = None
    webhook_id: int | None = None
    nonce: str | None = None
    message_type: int = 0
    interaction_metadata: dict[str, Any] | None = None
    edited_at: datetime | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred response's "is thinking…" placeholder."""
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    @property
    def mentions_pinged(self) -> PingedMentions:
        return pinged_mentions(self.content, self.allowed_mentions)

    def custom_ids(self) -> Iterator[str]:
        """Every component custom_id in this message, however deeply nested."""

        def walk(components: Sequence[Mapping[str, Any]]) -> Iterator[str]:
            for component in components:
                if "custom_id" in component:
                    yield component["custom_id"]
                yield from walk(component.get("components", []))
                if "accessory" in component:
                    yield from walk([component["accessory"]])

        return walk(self.components)

    def payload(self, known_users: Mapping[int, User] | None = None) -> dict[str, Any]:
        pinged = self.mentions_pinged
        known_users = known_users or {}
        payload: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.message_type,
            "content": self.content,
            "author": self.author,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [attachment.payload() for attachment in self.attachments],
            "mentions": [known_users[uid].payload() for uid in pinged.users if uid in known_users],
            "mention_roles": [str(role) for role in pinged.roles],
            "mention_everyone": pinged.everyone,
            "pinned": False,
            "tts": False,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            payload["guild_id"] = str(self.guild_id)
        if self.nonce is not None:
            payload["nonce"] = self.nonce
        if self.webhook_id is not None:
            payload["webhook_id"] = str(self.webhook_id)
            payload["application_id"] = str(self.webhook_id)
        if self.interaction_metadata is not None:
            payload["interaction_metadata"] = self.interaction_metadata
        return payload


@dataclass
class InteractionRecord:
    """One interaction the stand-in dispatched, and everything the bot did with it.

    Times are the stand-in clock's ``monotonic()``; ``ack_latency`` is event→callback.
    ``original`` is the response message (for a component interaction answered with type 6/7,
    the message that carried the component). ``modal`` holds a type-9 callback's data as the
    bot sent it. ``source_message`` is the message whose component was used (for a modal
    submit, that of the interaction that opened the modal, if a component did);
    ``target_message`` the message a message command was used on; ``opener`` (modal submits
    only) the interaction whose modal was submitted.
    """

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    guild_id: int | None
    channel_id: int
    user: User
    attachment_size_limit: int
    created_at: float
    dispatched_at: float | None = None
    acked_at: float | None = None
    response_type: int | None = None
    callback: dict[str, Any] | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    source_message: Message | None = None
    target_message: Message | None = None
    opener: InteractionRecord | None = None
    revoked: bool = False

    @property
    def name(self) -> str | None:
        """The command name (type 2) or None."""
        return self.payload["data"].get("name")

    @property
    def custom_id(self) -> str | None:
        """The clicked component's custom_id (type 3), the modal's (type 5), or None."""
        return self.payload["data"].get("custom_id")

    @property
    def ack_latency(self) -> float | None:
        if self.acked_at is None or self.dispatched_at is None:
            return None
        return self.acked_at - self.dispatched_at

    def messages(self) -> list[Message]:
        """The original response (if any) followed by the follow-ups, in order."""
        return ([self.original] if self.original else []) + self.followups


@dataclass(frozen=True)
class ErrorResponse:
    """A REST call the stand-in refused, kept so tests can assert what the bot ran into."""

    method: str
    path: str
    status: int
    code: int
    message: str


@dataclass(frozen=True)
class IdentifyViolation:
    """An IDENTIFY that came sooner than Discord's identify rate limit allows.

    Discord allows one IDENTIFY per 5 seconds per rate-limit bucket, the bucket of a shard being
    ``shard_id % max_concurrency`` (an unsharded connection counts as shard 0). ``at`` and
    ``previous_at`` (the bucket's last accepted IDENTIFY) are the stand-in clock's
    ``monotonic()``.
    """

    at: float
    shard_id: int | None
    bucket: int
    previous_at: float


@dataclass(frozen=True)
class CommandSync:
    """One ``PUT`` of the application's commands: ``scope`` is None (global) or a guild id."""

    at: float
    scope: int | None
    names: tuple[str, ...]
