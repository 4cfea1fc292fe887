"""A loopback Discord (REST v10 + gateway) that the real discord.py client talks to.

The server runs on 127.0.0.1 inside the test's event loop. REST handlers and the gateway
mutate plain records (see ``records.py``); every mutation wakes ``wait_for`` waiters, so tests
wait on conditions, never on time. Time itself (token lifetimes, the 3-second initial-response
deadline, nonce windows, ack latencies, the identify rate limit) comes from the injected
``bot.clock.Clock``.

The gateway shards as Discord documents it: an IDENTIFY may carry ``shard: [id, count]``, and
that session then gets only the guilds with ``(guild_id >> 22) % count == id``; events without
a guild (direct messages) go to shard 0. Several sessions, from one client or from several,
can be connected at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from bot.clock import Clock, SystemClock
from tests.support.discord_standin.records import (
    ADMINISTRATOR_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_FILESIZE_LIMIT,
    DEFAULT_MEMBER_PERMISSIONS,
    FILESIZE_LIMIT_BY_PREMIUM_TIER,
    INITIAL_RESPONSE_DEADLINE_SECONDS,
    INTERACTION_TOKEN_LIFETIME_SECONDS,
    MAX_CONTENT_LENGTH,
    MAX_EMBED_CHARACTERS,
    MAX_EMBEDS,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    NONCE_WINDOW_SECONDS,
    PERMISSION_SEND_MESSAGES,
    PERMISSION_VIEW_CHANNEL,
    Channel,
    CommandSync,
    DMChannel,
    ErrorResponse,
    Guild,
    IdentifyViolation,
    InteractionRecord,
    Message,
    MessageOrigin,
    SnowflakeFactory,
    StoredAttachment,
    User,
    shard_id_for,
)
from tests.support.discord_standin.validation import (
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    FieldPath,
    InvalidField,
    modal_submission,
    validate_command_overwrite,
    validate_modal,
)

T = TypeVar("T")
OptionValue = str | int | float | bool | StoredAttachment | User | Channel

HEARTBEAT_INTERVAL_MS = 41_250
# A real gateway's ACK crosses the network. One sent back within the same loop turn can beat
# discord.py's heartbeat thread to noting when it sent, and the client would log (and report)
# a latency of a whole heartbeat interval. The delay holds up only the ACK, not the frames the
# client sent after the heartbeat (an IDENTIFY must be handled when it arrives).
HEARTBEAT_ACK_DELAY = 0.005
GATEWAY_REPLAY_BUFFER = 5000
DEFAULT_WAIT_SECONDS = 10.0

# Application-command option types (Discord's numbering).
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11

INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
INTERACTION_MODAL_SUBMIT = 5
COMPONENT_BUTTON = 2

CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE_MESSAGE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_MODAL = 9
# The callback types each interaction type may be answered with. A modal cannot answer a modal
# submit; 6 and 7 also need a message with components (checked when they arrive).
_MESSAGE_CALLBACKS = (
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
)
CALLBACK_TYPES_BY_INTERACTION = {
    INTERACTION_APPLICATION_COMMAND: (*_MESSAGE_CALLBACKS, CALLBACK_MODAL),
    INTERACTION_MESSAGE_COMPONENT: (*_MESSAGE_CALLBACKS, CALLBACK_MODAL),
    INTERACTION_MODAL_SUBMIT: _MESSAGE_CALLBACKS,
}

MESSAGE_TYPE_DEFAULT = 0
MESSAGE_TYPE_CHAT_INPUT_COMMAND = 20
MESSAGE_TYPE_CONTEXT_MENU_COMMAND = 23
MAX_ATTACHMENTS = 10

# Without GUILD_MESSAGES Discord sends no MESSAGE_* events about guild channels (the stand-in
# applies it to members' messages), without DIRECT_MESSAGES none about DM channels.
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
# Without it a member's message arrives with empty content, embeds, attachments and components,
# unless it mentions the bot.
INTENT_MESSAGE_CONTENT = 1 << 15

# Discord's identify rate limit: one IDENTIFY per bucket (shard_id % max_concurrency) per 5 s.
IDENTIFY_WINDOW_SECONDS = 5.0
# The daily session start limit (``session_start_limit.total``) resets this long after a start.
SESSION_START_RESET_SECONDS = 24 * 60 * 60

# Gateway opcodes and close codes the stand-in uses (Discord's numbering).
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_RESUME = 6
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_INVALID_SHARD = 4010
# A client that closes with one of these ends its session: it can no longer be resumed.
SESSION_ENDING_CLOSE_CODES = frozenset({1000, 1001})


class DiscordError(Exception):
    """An error answer in Discord's shape: HTTP status plus a JSON ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str, errors: dict | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def _invalid_form_body(field_path: str | FieldPath, code: str, message: str) -> DiscordError:
    """Discord's 50035 answer, the field's error nested under its path ("data.title" or a tuple
    of keys and indices)."""
    steps = field_path.split(".") if isinstance(field_path, str) else field_path
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for step in reversed(steps):
        errors = {str(step): errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def _refused_field(invalid: InvalidField) -> DiscordError:
    return _invalid_form_body(invalid.path, invalid.code, invalid.message)


def _json_response(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py does not parse "application/json; charset=utf-8".
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


@dataclass
class _UploadedFile:
    filename: str
    content_type: str | None
    data: bytes


async def _read_body(request: web.Request) -> tuple[dict[str, Any], dict[int, _UploadedFile]]:
    """The JSON payload and the ``files[N]`` parts of a JSON or multipart request."""
    if request.content_type == "multipart/form-data":
        payload: dict[str, Any] = {}
        files: dict[int, _UploadedFile] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, aiohttp.BodyPartReader)
            if part.name == "payload_json":
                payload = json.loads(await part.text())
            elif part.name and part.name.startswith("files[") and part.name.endswith("]"):
                index = int(part.name[len("files[") : -1])
                data = bytes(await part.read(decode=False))
                content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
                files[index] = _UploadedFile(part.filename or f"file{index}", content_type, data)
        return payload, files
    if request.can_read_body:
        return await request.json(), {}
    return {}, {}


def _embed_characters(embed: Mapping[str, Any]) -> int:
    texts = [embed.get("title"), embed.get("description")]
    texts += [(embed.get("footer") or {}).get("text"), (embed.get("author") or {}).get("name")]
    for embed_field in embed.get("fields", []):
        texts += [embed_field.get("name"), embed_field.get("value")]
    return sum(len(text) for text in texts if text)


def _validate_message(payload: Mapping[str, Any], *, creating: bool, has_files: bool) -> None:
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if len(content) > MAX_CONTENT_LENGTH:
        raise _invalid_form_body(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_LENGTH} or fewer in length."
        )
    if len(embeds) > MAX_EMBEDS:
        raise _invalid_form_body(
            "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
        )
    if sum(_embed_characters(embed) for embed in embeds) > MAX_EMBED_CHARACTERS:
        raise _invalid_form_body(
            "embeds",
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {MAX_EMBED_CHARACTERS}",
        )
    has_body = content or embeds or has_files or payload.get("components") or payload.get("poll")
    if creating and not has_body:
        raise DiscordError(400, 50006, "Cannot send an empty message")


def _query_flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in {"1", "true"}


def _parse_shard(raw: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(shard_id, shard_count)``; ValueError when it is malformed."""
    if raw is None:
        return None
    valid = (
        isinstance(raw, list | tuple)
        and len(raw) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in raw)
        and 0 <= raw[0] < raw[1]
    )
    if not valid:
        raise ValueError(f"invalid shard {raw!r}")
    return raw[0], raw[1]


@dataclass
class GatewaySession:
    """One IDENTIFY'd session; keeps recent frames so a RESUME can replay what was missed.

    ``shard`` is the IDENTIFY's ``(shard_id, shard_count)``, None for an unsharded session;
    ``guild_ids`` are the guilds its READY listed.
    """

    id: str
    socket: web.WebSocketResponse | None = None
    intents: int = 0
    shard: tuple[int, int] | None = None
    guild_ids: tuple[int, ...] = ()
    sequence: int = 0
    sent: deque[tuple[int, str]] = field(
        default_factory=lambda: deque(maxlen=GATEWAY_REPLAY_BUFFER)
    )
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connected(self) -> bool:
        return self.socket is not None and not self.socket.closed

    @property
    def shard_id(self) -> int | None:
        return None if self.shard is None else self.shard[0]

    def serves(self, guild_id: int | None) -> bool:
        """Whether Discord routes this guild's events (None: events without a guild) here."""
        if self.shard is None:
            return True
        shard_id, shard_count = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_id_for(guild_id, shard_count) == shard_id

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> None:
        # Sequence numbers and send order must agree, hence one lock around both.
        async with self.send_lock:
            self.sequence += 1
            frame = json.dumps({"op": OP_DISPATCH, "t": event, "s": self.sequence, "d": data})
            self.sent.append((self.sequence, frame))
            if self.socket is not None and not self.socket.closed:
                with contextlib.suppress(ConnectionResetError):
                    await self.socket.send_str(frame)


class DiscordStandIn:
    """Loopback Discord for end-to-end tests and benchmarks of a real discord.py bot.

    Typical use::

        standin = DiscordStandIn(clock=fake_clock)
        guild = standin.add_guild("Test")
        alice = standin.add_user("alice")
        await standin.start()
        with standin.patch_discord_py():
            ... start the bot with ``standin.token`` ...
            record = await standin.send_command(guild, guild.text_channel, alice, "ping")
            await standin.wait_until_acked(record)

    Add guilds and users before the bot connects: READY/GUILD_CREATE are built at IDENTIFY.
    The bot's direct messages to a user are in ``direct_messages(user)``.

    Message commands and modals: ``post_member_message`` posts a member's message (with
    attachments and embeds) that ``message_command`` can target; an interaction the bot answers
    with a modal (validated against Discord's limits, kept in ``record.modal``) is submitted
    with ``submit_modal``, which returns the submit's own record.

    Sharding: ``GET /gateway/bot`` recommends ``recommended_shards`` and reports
    ``max_concurrency``. ``gateway_sessions`` holds the current session of each shard id (None
    when unsharded; the latest IDENTIFY or RESUME for a shard id takes its slot), connected or
    awaiting a RESUME. Guild events go to each of those whose shard holds the guild (while one
    is down, they wait in its replay buffer), events without a guild to shard 0 (or to an
    unsharded session). A client that closes with 1000/1001 ends its session, as on Discord.
    Every IDENTIFY is in ``identifies``; one that breaks the identify rate limit is also in
    ``identify_violations`` and, while ``enforce_identify_rate_limit`` holds, is refused with
    Invalid Session (op 9, ``d: false``) as Discord documents, or closed with
    ``identify_violation_close_code`` when that is set. The 5-second window is measured on the
    stand-in clock, so with a fake clock advance it between identifies of the same bucket.
    """

    def __init__(
        self,
        *,
        token: str = "test-token",
        clock: Clock | None = None,
        recommended_shards: int = 1,
        max_concurrency: int = 1,
        session_start_total: int = 1000,
        enforce_identify_rate_limit: bool = True,
        identify_violation_close_code: int | None = None,
    ) -> None:
        self.token = token
        self._clock: Clock = clock or SystemClock()
        # What ``GET /gateway/bot`` answers; may be changed at any time.
        self.recommended_shards = recommended_shards
        self.max_concurrency = max_concurrency
        self.session_start_total = session_start_total
        self.enforce_identify_rate_limit = enforce_identify_rate_limit
        self.identify_violation_close_code = identify_violation_close_code
        self._snowflakes = SnowflakeFactory()
        self.bot_user = User(id=self._snowflake(), name="imagine-standin-bot", bot=True)
        # Modern applications share their id with their bot user.
        self.application_id = self.bot_user.id
        self.app_owner = User(id=self._snowflake(), name="app-owner")
        self.guilds: dict[int, Guild] = {}
        self.users: dict[int, User] = {self.bot_user.id: self.bot_user}
        self.channels: dict[int, Channel] = {}
        # DM channels by id; Discord keeps one per recipient (``POST /users/@me/channels``).
        self.dm_channels: dict[int, DMChannel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.interactions: list[InteractionRecord] = []
        # Key None holds the global commands; a guild id holds that guild's commands.
        self.commands_synced: dict[int | None, list[dict[str, Any]]] = {}
        # Every ``PUT`` of commands, in order (``commands_synced`` keeps only the latest).
        self.command_syncs: list[CommandSync] = []
        self.errors: list[ErrorResponse] = []
        self.unknown_routes: list[str] = []
        # Sessions started (accepted IDENTIFYs).
        self.identify_count = 0
        # Every IDENTIFY with the bot's token: (stand-in monotonic time, shard id or None).
        self.identifies: list[tuple[float, int | None]] = []
        self.identify_violations: list[IdentifyViolation] = []
        # Set to refuse every interaction's webhook calls right after its acknowledgement
        # (401 "Invalid Webhook Token"), as Discord does for a token it has voided.
        self.revoke_tokens_on_ack = False
        self.resume_count = 0
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}
        self._nonces: dict[tuple[int, str], tuple[float, Message]] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        # Every resumable session by id; the current one of each shard id (None: unsharded).
        self._sessions: dict[str, GatewaySession] = {}
        self._sessions_by_shard: dict[int | None, GatewaySession] = {}
        self._last_identify_by_bucket: dict[int, float] = {}
        self._session_starts: list[float] = []
        self._closed_by_server: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        self._runner = web.AppRunner(self._build_app(), handle_signals=False)
        await self._runner.setup()
        # A deep accept queue: a burst of hundreds of interactions opens as many connections at
        # once, and an overflowing queue would add the kernel's 1 s SYN retry to some of them.
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        """Close every gateway socket and stop the server (close the bot first)."""
        for session in list(self._sessions.values()):
            if session.socket is not None:
                await self._close_socket(session.socket, 1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (only after ``start``)."""
        assert self._port is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def bot_user_id(self) -> int:
        return self.bot_user.id

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this stand-in; restore on exit."""
        route_class = discord.http.Route
        websocket_class = discord.gateway.DiscordWebSocket
        previous_base, previous_gateway = route_class.BASE, websocket_class.DEFAULT_GATEWAY
        route_class.BASE = self.api_base
        websocket_class.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            route_class.BASE = previous_base
            websocket_class.DEFAULT_GATEWAY = previous_gateway

    # ------------------------------------------------------------------ world building

    def add_user(
        self,
        name: str,
        *,
        permissions: int = DEFAULT_MEMBER_PERMISSIONS,
        roles: Sequence[int] = (),
        accepts_dms: bool = True,
    ) -> User:
        """A member of every guild; ``permissions`` is what interactions report for them.

        With ``accepts_dms=False`` the bot's direct messages to them are refused (403, 50007).
        """
        user = User(
            id=self._snowflake(),
            name=name,
            permissions=permissions,
            roles=tuple(roles),
            accepts_dms=accepts_dms,
        )
        self.users[user.id] = user
        return user

    def add_role(self, guild: Guild, name: str) -> int:
        """A plain role in ``guild`` (no permissions of its own); returns its id. Add roles
        before the bot connects: no GUILD_ROLE_CREATE is dispatched."""
        role_id = self._snowflake()
        guild.extra_roles[role_id] = name
        return role_id

    def deny_bot(self, channel: Channel, permissions: int) -> None:
        """Overwrite ``channel`` so that the bot's role lacks ``permissions`` there (before the
        bot connects: no CHANNEL_UPDATE is dispatched)."""
        guild = self.guilds[channel.guild_id]
        allow, deny = channel.role_overwrites.get(guild.bot_role_id, (0, 0))
        channel.role_overwrites[guild.bot_role_id] = (allow & ~permissions, deny | permissions)

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        locale: str = "en-US",
        channels: Sequence[str] = ("general",),
        nsfw_channels: Sequence[str] = ("nsfw",),
        premium_tier: int = 0,
        filesize_limit: int | None = None,
        owner: User | None = None,
        features: Sequence[str] = (),
        everyone_permissions: int = DEFAULT_MEMBER_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        shard: tuple[int, int] | None = None,
    ) -> Guild:
        """A guild with text channels; the owner defaults to a new administrator user.

        ``shard=(shard_id, shard_count)`` picks the guild's id so that Discord's sharding
        formula puts it on that shard (otherwise the shard follows from the clock).
        """
        owner = owner or self.add_user(f"{name} owner", permissions=ADMINISTRATOR_PERMISSIONS)
        guild_id = (
            self._snowflake()
            if shard is None
            else self._snowflakes.next_on_shard(self._clock.now(), *shard)
        )
        guild = Guild(
            id=guild_id,
            name=name,
            owner_id=owner.id,
            locale=locale,
            premium_tier=premium_tier,
            filesize_limit=filesize_limit or FILESIZE_LIMIT_BY_PREMIUM_TIER[premium_tier],
            features=list(features),
            everyone_permissions=everyone_permissions,
            bot_role_id=self._snowflake(),
            bot_permissions=bot_permissions,
        )
        named = [(channel, False) for channel in channels] + [(ch, True) for ch in nsfw_channels]
        for position, (channel_name, nsfw) in enumerate(named):
            channel = Channel(self._snowflake(), guild.id, channel_name, position, nsfw=nsfw)
            guild.channels.append(channel)
            self.channels[channel.id] = channel
        self.guilds[guild.id] = guild
        return guild

    def make_attachment(
        self,
        filename: str,
        content_type: str | None,
        data: bytes,
        *,
        description: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredAttachment:
        """A file a user attaches to a command option or to a message (``post_member_message``),
        served so ``Attachment.read()`` works; give an image's ``width`` and ``height``."""
        attachment = self._store_attachment("input", filename, content_type, data, description)
        attachment.width, attachment.height = width, height
        return attachment

    # ------------------------------------------------------------------ driving the bot

    async def send_command(
        self,
        guild: Guild,
        channel: Channel,
        user: User,
        name: str,
        options: Mapping[str, OptionValue] | Sequence[Mapping[str, Any]] | None = None,
        *,
        subcommand: str | None = None,
        locale: str = "en-US",
        member_permissions: int | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionRecord:
        """Dispatch a slash command (INTERACTION_CREATE type 2) and return its record at once.

        ``name`` may hold the whole path ("grp sub"); ``subcommand`` is appended to it. Option
        types come from the synced command schema when the command was synced, otherwise from
        the Python values (bool 5, int 4, float 10, str 3, StoredAttachment 11, User 6,
        Channel 7). A list of raw option dicts is passed through unchanged.
        """
        path = name.split() + (subcommand.split() if subcommand else [])
        schema, command_guild_id = self._find_command(guild.id, path[0])
        leaf_types = self._leaf_option_types(schema, path[1:])
        resolved: dict[str, dict[str, Any]] = {}
        if options is None:
            built: list[dict[str, Any]] = []
        elif isinstance(options, Mapping):
            built = [
                self._build_option(option_name, value, leaf_types.get(option_name), resolved, guild)
                for option_name, value in options.items()
            ]
        else:
            built = [dict(option) for option in options]
        for depth in range(len(path) - 1, 0, -1):
            kind = OPTION_SUB_COMMAND if depth == len(path) - 1 else OPTION_SUB_COMMAND_GROUP
            built = [{"name": path[depth], "type": kind, "options": built}]
        data: dict[str, Any] = {
            "id": str(schema["id"]) if schema else str(self._snowflake()),
            "name": path[0],
            "type": 1,
            "options": built,
        }
        if resolved:
            data["resolved"] = resolved
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND,
            data,
            guild=guild,
            channel=channel,
            user=user,
            locale=locale,
            member_permissions=member_permissions,
            app_permissions=app_permissions,
            attachment_size_limit=attachment_size_limit,
        )

    async def click_button(
        self,
        message: Message,
        custom_id: str,
        user: User,
        *,
        locale: str = "en-US",
        member_permissions: int | None = None,
        app_permissions: int | None = None,
    ) -> InteractionRecord:
        """Dispatch a button click (INTERACTION_CREATE type 3) on a stored message."""
        if custom_id not in set(message.custom_ids()):
            raise ValueError(f"message {message.id} has no component {custom_id!r}")
        guild = self.guilds[message.guild_id] if message.guild_id else None
        assert guild is not None, "only guild messages are supported"
        data = {"custom_id": custom_id, "component_type": COMPONENT_BUTTON}
        return await self._dispatch_interaction(
            INTERACTION_MESSAGE_COMPONENT,
            data,
            guild=guild,
            channel=self.channels[message.channel_id],
            user=user,
            locale=locale,
            member_permissions=member_permissions,
            app_permissions=app_permissions,
            attachment_size_limit=None,
            source_message=message,
        )

    async def post_member_message(
        self,
        channel: Channel,
        author: User,
        content: str = "",
        *,
        attachments: Sequence[StoredAttachment] = (),
        embeds: Sequence[Mapping[str, Any]] = (),
    ) -> Message:
        """A member's ordinary message in a guild channel (to use ``message_command`` on, say).

        ``attachments`` come from ``make_attachment``; ``embeds`` are embed objects such as
        ``{"image": {"url": ..., "width": ..., "height": ...}}`` (Discord adds the proxy URLs).
        Sessions with the GUILD_MESSAGES intent get its MESSAGE_CREATE, with content, embeds,
        attachments and components emptied unless they have MESSAGE_CONTENT or it mentions the
        bot. Raises ValueError for a message Discord would not take.
        """
        if author.bot or author.id not in self.users:
            raise ValueError(f"{author.name!r} is not a member who can post")
        if len(attachments) > MAX_ATTACHMENTS:
            raise ValueError(f"a message holds at most {MAX_ATTACHMENTS} attachments")
        received_embeds = [self._received_embed(embed) for embed in embeds]
        try:
            _validate_message(
                {"content": content, "embeds": received_embeds},
                creating=True,
                has_files=bool(attachments),
            )
        except DiscordError as refused:
            raise ValueError(f"Discord would refuse this message: {refused.body()}") from refused
        message = Message(
            id=self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author.payload(),
            content=content,
            embeds=received_embeds,
            components=[],
            attachments=list(attachments),
            allowed_mentions=None,
            flags=0,
            created_at=self._clock.now(),
            origin="member",
        )
        self.messages[message.id] = message
        await self._dispatch_member_message(message, author)
        await self._notify()
        return message

    async def message_command(
        self,
        message: Message,
        name: str,
        user: User,
        *,
        locale: str = "en-US",
        member_permissions: int | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionRecord:
        """Use the message command ``name`` on ``message`` and return the record at once.

        Dispatches INTERACTION_CREATE type 2 whose data has type 3, ``target_id`` and the whole
        message in ``resolved.messages`` (content included, whatever the bot's intents). The
        command must have been synced with type 3, for the message's guild or globally.
        """
        if message.guild_id is None or message.deleted:
            raise ValueError(f"message {message.id} is not a live guild message")
        guild = self.guilds[message.guild_id]
        schema, command_guild_id = self._find_command(guild.id, name, COMMAND_MESSAGE)
        if schema is None:
            raise ValueError(f"no message command {name!r} is synced for this guild or globally")
        target_id = str(message.id)
        data: dict[str, Any] = {
            "id": schema["id"],
            "name": name,
            "type": COMMAND_MESSAGE,
            "target_id": target_id,
            "resolved": {"messages": {target_id: message.payload(self.users)}},
        }
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND,
            data,
            guild=guild,
            channel=self.channels[message.channel_id],
            user=user,
            locale=locale,
            member_permissions=member_permissions,
            app_permissions=app_permissions,
            attachment_size_limit=attachment_size_limit,
            target_message=message,
        )

    async def submit_modal(
        self,
        record: InteractionRecord,
        values: Mapping[str, str | Sequence[str]],
        *,
        user: User | None = None,
    ) -> InteractionRecord:
        """Submit the modal ``record`` was answered with; returns the submit's record at once.

        ``values`` maps custom_ids to a Text Input's text or a String Select's chosen option
        values; inputs left out keep what they were pre-filled with. The MODAL_SUBMIT
        (INTERACTION_CREATE type 5) has a new id and token, ``data = {custom_id, components}``
        shaped as Discord sends it, the user, guild, channel, locale and permissions of
        ``record``, and its ``message`` when a component opened the modal. Raises ValueError for
        what Discord's client would not submit: no modal, another user, a modal that an answered
        submit already closed, or values that break the modal's rules. Closing a modal without
        submitting it is simply not calling this.
        """
        if record.modal is None:
            raise ValueError(f"interaction {record.id} was not answered with a modal")
        if user is not None and user.id != record.user.id:
            raise ValueError("only the user a modal was shown to can submit it")
        if any(o.opener is record and o.acked_at is not None for o in self.interactions):
            raise ValueError(f"the modal of interaction {record.id} was already submitted")
        components = modal_submission(record.modal, values)
        data = {"custom_id": record.modal["custom_id"], "components": components}
        assert record.guild_id is not None, "only guild interactions are supported"
        opened_with = record.payload
        return await self._dispatch_interaction(
            INTERACTION_MODAL_SUBMIT,
            data,
            guild=self.guilds[record.guild_id],
            channel=self.channels[record.channel_id],
            user=record.user,
            locale=opened_with["locale"],
            member_permissions=int(opened_with["member"]["permissions"]),
            app_permissions=int(opened_with["app_permissions"]),
            attachment_size_limit=record.attachment_size_limit,
            source_message=record.source_message,
            opener=record,
        )

    def expire_interaction(self, interaction: InteractionRecord | str) -> None:
        """Void an interaction token now, as if its 15 minutes had passed."""
        token = interaction if isinstance(interaction, str) else interaction.token
        self._interactions_by_token[token].revoked = True

    async def drop_gateway(self, code: int = 4000, shard_id: int | None = None) -> None:
        """Close a gateway socket with ``code``; discord.py then RESUMEs.

        ``shard_id`` picks the session of that shard; by default the only (or first: unsharded,
        then by shard id) connected one.
        """
        if shard_id is None:
            connected = [s for _, s in self._shard_order() if s.connected]
            assert connected, "no gateway connection"
            session = connected[0]
        else:
            found = self._sessions_by_shard.get(shard_id)
            assert found is not None, f"no gateway session for shard {shard_id}"
            session = found
        assert session.socket is not None, "the gateway connection is already down"
        await self._close_socket(session.socket, code)

    # ------------------------------------------------------------------ inspecting

    @property
    def gateway_sessions(self) -> dict[int | None, GatewaySession]:
        """The current session of each shard id (None: unsharded), connected or awaiting a
        RESUME; a session whose client closed it with 1000/1001 is gone."""
        return dict(self._shard_order())

    @staticmethod
    def shard_for(guild: Guild | int, shard_count: int) -> int:
        """The shard id that serves ``guild`` among ``shard_count`` shards (Discord's formula)."""
        return shard_id_for(guild if isinstance(guild, int) else guild.id, shard_count)

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[Message]:
        """Messages of a channel, oldest first (ephemeral ones included; check ``.ephemeral``)."""
        return [
            message
            for message in self.messages.values()
            if message.channel_id == channel_id and (include_deleted or not message.deleted)
        ]

    def dm_channel(self, user: User | int) -> DMChannel | None:
        """The bot's DM channel with ``user``, once the bot has opened it."""
        user_id = user if isinstance(user, int) else user.id
        return next((c for c in self.dm_channels.values() if c.recipient.id == user_id), None)

    def direct_messages(self, user: User | int, *, include_deleted: bool = False) -> list[Message]:
        """The bot's messages in its DM channel with ``user``, oldest first."""
        channel = self.dm_channel(user)
        if channel is None:
            return []
        return self.messages_in(channel.id, include_deleted=include_deleted)

    async def wait_for_direct_message(
        self,
        user: User | int,
        predicate: Callable[[Message], bool] | None = None,
        *,
        limit: float = DEFAULT_WAIT_SECONDS,
    ) -> Message:
        """The first live DM to ``user`` that satisfies ``predicate`` (edits count)."""

        def find() -> Message | None:
            return next(
                (m for m in self.direct_messages(user) if predicate is None or predicate(m)), None
            )

        return await self.wait_for(find, limit=limit)

    def command(
        self, name: str, *, guild_id: int | None = None, command_type: int = COMMAND_CHAT_INPUT
    ) -> dict[str, Any] | None:
        """The synced command payload called ``name`` (global when ``guild_id`` is None) of
        ``command_type`` (1 slash command, 2 user command, 3 message command)."""
        commands = self.commands_synced.get(guild_id, [])
        return next((c for c in commands if c["name"] == name and c["type"] == command_type), None)

    async def wait_for(
        self, predicate: Callable[[], T | None], *, limit: float = DEFAULT_WAIT_SECONDS
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        Re-evaluated whenever the stand-in's state changes; ``limit`` (real seconds) is only a
        safety net against a hung test.
        """
        try:
            async with asyncio.timeout(limit), self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"stand-in condition not met within {limit} s") from None
        return result

    async def wait_until_acked(
        self, interaction: InteractionRecord, *, limit: float = DEFAULT_WAIT_SECONDS
    ) -> InteractionRecord:
        await self.wait_for(lambda: interaction.acked_at is not None, limit=limit)
        return interaction

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[Message], bool] | None = None,
        *,
        limit: float = DEFAULT_WAIT_SECONDS,
    ) -> Message:
        """The first live message in the channel that satisfies ``predicate`` (edits count)."""

        def find() -> Message | None:
            return next(
                (m for m in self.messages_in(channel_id) if predicate is None or predicate(m)), None
            )

        return await self.wait_for(find, limit=limit)

    async def wait_for_gateway(
        self, *, shard_id: int | None = None, limit: float = DEFAULT_WAIT_SECONDS
    ) -> GatewaySession:
        """Until a bot holds an identified (or resumed) gateway connection, of ``shard_id`` if
        given; returns that session."""

        def connected() -> GatewaySession | None:
            if shard_id is not None:
                session = self._sessions_by_shard.get(shard_id)
                return session if session is not None and session.connected else None
            return next((s for _, s in self._shard_order() if s.connected), None)

        return await self.wait_for(connected, limit=limit)

    # ------------------------------------------------------------------ internals: helpers

    def _snowflake(self) -> int:
        return self._snowflakes.next(self._clock.now())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _store_attachment(
        self,
        scope: str,
        filename: str,
        content_type: str | None,
        data: bytes,
        description: str | None = None,
    ) -> StoredAttachment:
        attachment_id = self._snowflake()
        url = f"{self.url}/attachments/{scope}/{attachment_id}/{quote(filename)}"
        attachment = StoredAttachment(attachment_id, filename, content_type, data, url, description)
        self.attachments[attachment_id] = attachment
        return attachment

    def _find_command(
        self, guild_id: int, name: str, command_type: int = COMMAND_CHAT_INPUT
    ) -> tuple[dict[str, Any] | None, int | None]:
        """The guild's command of that name and type, else the global one (as Discord picks)."""
        guild_command = self.command(name, guild_id=guild_id, command_type=command_type)
        if guild_command is not None:
            return guild_command, guild_id
        return self.command(name, command_type=command_type), None

    @staticmethod
    def _leaf_option_types(schema: Mapping[str, Any] | None, path: Sequence[str]) -> dict[str, int]:
        if schema is None:
            return {}
        options = schema.get("options") or []
        for step in path:
            options = next(
                (option.get("options") or [] for option in options if option["name"] == step), []
            )
        return {option["name"]: option["type"] for option in options}

    def _build_option(
        self,
        name: str,
        value: OptionValue,
        declared_type: int | None,
        resolved: dict[str, dict[str, Any]],
        guild: Guild,
    ) -> dict[str, Any]:
        option_type = declared_type or self._infer_option_type(value)
        if option_type == OPTION_ATTACHMENT:
            assert isinstance(value, StoredAttachment)
            resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            return {"name": name, "type": option_type, "value": str(value.id)}
        if option_type == OPTION_USER:
            assert isinstance(value, User)
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = value.member_payload(self._clock.now(), permissions=value.permissions)
            del member["user"]
            resolved.setdefault("members", {})[str(value.id)] = member
            return {"name": name, "type": option_type, "value": str(value.id)}
        if option_type == OPTION_CHANNEL:
            assert isinstance(value, Channel)
            channel_payload = value.payload() | {"permissions": str(guild.bot_permissions)}
            resolved.setdefault("channels", {})[str(value.id)] = channel_payload
            return {"name": name, "type": option_type, "value": str(value.id)}
        if option_type == OPTION_ROLE:
            # A role is passed by its id; it must be one of the guild's.
            role = next((r for r in guild.roles_payload() if r["id"] == str(value)), None)
            if role is None:
                raise ValueError(f"guild {guild.id} has no role {value}")
            resolved.setdefault("roles", {})[str(value)] = role
            return {"name": name, "type": option_type, "value": str(value)}
        if option_type == OPTION_NUMBER:
            assert isinstance(value, int | float)
            return {"name": name, "type": option_type, "value": float(value)}
        return {"name": name, "type": option_type, "value": value}

    @staticmethod
    def _infer_option_type(value: OptionValue) -> int:
        kinds: list[tuple[type, int]] = [
            (bool, OPTION_BOOLEAN),  # before int: bool is an int subclass
            (int, OPTION_INTEGER),
            (float, OPTION_NUMBER),
            (str, OPTION_STRING),
            (StoredAttachment, OPTION_ATTACHMENT),
            (User, OPTION_USER),
            (Channel, OPTION_CHANNEL),
        ]
        return next(kind for python_type, kind in kinds if isinstance(value, python_type))

    async def _dispatch_interaction(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        guild: Guild,
        channel: Channel,
        user: User,
        locale: str,
        member_permissions: int | None,
        app_permissions: int | None,
        attachment_size_limit: int | None,
        source_message: Message | None = None,
        target_message: Message | None = None,
        opener: InteractionRecord | None = None,
    ) -> InteractionRecord:
        interaction_id = self._snowflake()
        token = f"interaction.{interaction_id}.{secrets.token_urlsafe(24)}"
        size_limit = attachment_size_limit or guild.filesize_limit
        bot_permissions = guild.bot_permissions if app_permissions is None else app_permissions
        permissions = user.permissions if member_permissions is None else member_permissions
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "token": token,
            "version": 1,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.locale, "features": guild.features},
            "channel_id": str(channel.id),
            "channel": channel.payload() | {"permissions": str(bot_permissions)},
            "member": user.member_payload(self._clock.now(), permissions=permissions),
            "locale": locale,
            "guild_locale": guild.locale,
            "app_permissions": str(bot_permissions),
            "attachment_size_limit": size_limit,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
        }
        if source_message is not None:
            payload["message"] = source_message.payload(self.users)
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=interaction_type,
            payload=payload,
            guild_id=guild.id,
            channel_id=channel.id,
            user=user,
            attachment_size_limit=size_limit,
            created_at=self._clock.monotonic(),
            source_message=source_message,
            target_message=target_message,
            opener=opener,
        )
        # Registered before sending: a fast bot may call back before dispatch returns.
        self.interactions.append(record)
        self._interactions_by_id[interaction_id] = record
        self._interactions_by_token[token] = record

        def reachable() -> list[GatewaySession] | None:
            sessions = self._sessions_serving(guild.id)
            return sessions if any(session.connected for session in sessions) else None

        sessions = await self.wait_for(reachable, limit=DEFAULT_WAIT_SECONDS)
        record.dispatched_at = self._clock.monotonic()
        for session in sessions:
            await session.dispatch("INTERACTION_CREATE", payload)
        return record

    def _shard_order(self) -> list[tuple[int | None, GatewaySession]]:
        """The current sessions, unsharded first, then by shard id."""
        return sorted(
            self._sessions_by_shard.items(), key=lambda item: -1 if item[0] is None else item[0]
        )

    def _sessions_serving(self, guild_id: int | None) -> list[GatewaySession]:
        """The current sessions Discord routes a guild's events to (None: guildless events).

        A session awaiting its RESUME is included: what it is sent is replayed on RESUME.
        """
        return [session for _, session in self._shard_order() if session.serves(guild_id)]

    # ------------------------------------------------------------------ internals: messages

    def _store_uploads(
        self,
        channel_id: int,
        entries: Sequence[Mapping[str, Any]] | None,
        files: Mapping[int, _UploadedFile],
        size_limit: int,
        existing: Sequence[StoredAttachment] = (),
    ) -> list[StoredAttachment]:
        if any(len(upload.data) > size_limit for upload in files.values()):
            raise DiscordError(413, 40005, "Request entity too large")
        scope = str(channel_id)
        if entries is None:
            uploads = [files[index] for index in sorted(files)]
            stored = [
                self._store_attachment(scope, upload.filename, upload.content_type, upload.data)
                for upload in uploads
            ]
            return [*existing, *stored]
        existing_by_id = {attachment.id: attachment for attachment in existing}
        kept: list[StoredAttachment] = []
        for entry in entries:
            entry_id = int(entry["id"])
            if entry_id in existing_by_id:
                kept.append(existing_by_id[entry_id])
            elif entry_id in files:
                upload = files[entry_id]
                filename = entry.get("filename") or upload.filename
                stored_upload = self._store_attachment(
                    scope, filename, upload.content_type, upload.data, entry.get("description")
                )
                kept.append(stored_upload)
            else:
                raise _invalid_form_body(
                    "attachments", "ATTACHMENT_NOT_FOUND", "Unknown attachment"
                )
        return kept

    async def _create_message(
        self,
        *,
        channel_id: int,
        payload: Mapping[str, Any],
        files: Mapping[int, _UploadedFile],
        size_limit: int,
        origin: MessageOrigin,
        interaction: InteractionRecord | None = None,
        extra_flags: int = 0,
        message_type: int = MESSAGE_TYPE_DEFAULT,
    ) -> Message:
        is_placeholder = bool(extra_flags & MESSAGE_FLAG_LOADING)
        _validate_message(payload, creating=not is_placeholder, has_files=bool(files))
        attachments = self._store_uploads(channel_id, payload.get("attachments"), files, size_limit)
        channel = self._any_channel(channel_id)
        nonce = payload.get("nonce")
        message = Message(
            id=self._snowflake(),
            channel_id=channel_id,
            guild_id=channel.guild_id if isinstance(channel, Channel) else None,
            author=self.bot_user.payload(),
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            attachments=attachments,
            allowed_mentions=payload.get("allowed_mentions"),
            flags=int(payload.get("flags") or 0) | extra_flags,
            created_at=self._clock.now(),
            origin=origin,
            interaction_id=interaction.id if interaction else None,
            webhook_id=self.application_id if interaction else None,
            nonce=str(nonce) if nonce is not None else None,
            message_type=message_type,
        )
        if interaction is not None:
            message.interaction_metadata = self._interaction_metadata(interaction)
            if origin == "followup" and interaction.original is not None:
                message.interaction_metadata["original_response_message_id"] = str(
                    interaction.original.id
                )
        self.messages[message.id] = message
        if isinstance(channel, DMChannel):
            channel.last_message_id = message.id
        await self._dispatch_message_event("MESSAGE_CREATE", message, message.payload(self.users))
        return message

    def _interaction_metadata(self, record: InteractionRecord) -> dict[str, Any]:
        """A message's ``interaction_metadata`` for the interaction that made it."""
        metadata: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "user": record.user.payload(),
            "authorizing_integration_owners": {"0": str(record.guild_id)},
        }
        if record.target_message is not None:
            metadata["target_message_id"] = str(record.target_message.id)
        if record.type == INTERACTION_MESSAGE_COMPONENT and record.source_message is not None:
            metadata["interacted_message_id"] = str(record.source_message.id)
        if record.opener is not None:
            metadata["triggering_interaction_metadata"] = self._interaction_metadata(record.opener)
        return metadata

    @staticmethod
    def _received_embed(embed: Mapping[str, Any]) -> dict[str, Any]:
        """An embed a member's message carries, as Discord stores it: typed, media proxied."""
        received: dict[str, Any] = {"type": "rich", **embed}
        for media in ("image", "thumbnail", "video"):
            if isinstance(received.get(media), Mapping) and "url" in received[media]:
                received[media] = {"proxy_url": received[media]["url"], **received[media]}
        return received

    async def _dispatch_member_message(self, message: Message, author: User) -> None:
        event = message.payload(self.users)
        member = author.member_payload(message.created_at)
        del member["user"]  # the event's author already is the user
        event["member"] = member
        mentions_bot = self.bot_user.id in message.mentions_pinged.users
        without_content = event | {"content": "", "embeds": [], "attachments": [], "components": []}
        for session in self._sessions_serving(message.guild_id):
            if not session.intents & INTENT_GUILD_MESSAGES:
                continue
            sees_content = mentions_bot or bool(session.intents & INTENT_MESSAGE_CONTENT)
            await session.dispatch("MESSAGE_CREATE", event if sees_content else without_content)

    async def _edit_message(
        self,
        message: Message,
        payload: Mapping[str, Any],
        files: Mapping[int, _UploadedFile],
        size_limit: int,
    ) -> None:
        _validate_message(payload, creating=False, has_files=bool(files))
        if "attachments" in payload or files:
            entries = payload.get("attachments")
            message.attachments = self._store_uploads(
                message.channel_id, entries, files, size_limit, message.attachments
            )
        if "content" in payload:
            message.content = payload["content"] or ""
        if "embeds" in payload:
            message.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            message.components = list(payload["components"] or [])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        if not message.loading:
            message.edited_at = self._clock.now()
        message.flags &= ~MESSAGE_FLAG_LOADING
        message.edits.append(dict(payload))
        await self._dispatch_message_event("MESSAGE_UPDATE", message, message.payload(self.users))

    async def _delete_message(self, message: Message) -> None:
        message.deleted = True
        event = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            event["guild_id"] = str(message.guild_id)
        await self._dispatch_message_event("MESSAGE_DELETE", message, event)

    async def _dispatch_message_event(
        self, event: str, message: Message, data: Mapping[str, Any]
    ) -> None:
        """Ephemeral messages are never dispatched; DM ones only with the DIRECT_MESSAGES intent."""
        if message.ephemeral:
            return
        for session in self._sessions_serving(message.guild_id):
            if message.guild_id is None and not session.intents & INTENT_DIRECT_MESSAGES:
                continue
            await session.dispatch(event, data)

    # ------------------------------------------------------------------ internals: HTTP

    def _build_app(self) -> web.Application:
        @web.middleware
        async def discord_errors(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            try:
                return await handler(request)
            except DiscordError as error:
                refused = ErrorResponse(
                    request.method, request.path, error.status, error.code, error.message
                )
                self.errors.append(refused)
                await self._notify()
                return _json_response(error.body(), status=error.status)

        app = web.Application(middlewares=[discord_errors], client_max_size=1 << 30)
        api = "/api/v10"
        webhook = api + "/webhooks/{app}/{token}"
        message = api + "/channels/{channel_id}/messages/{message_id}"
        routes = [
            ("GET", "/gateway", self._gateway),
            ("GET", "/attachments/{scope}/{attachment_id}/{filename}", self._download_attachment),
            ("GET", api + "/users/@me", self._get_me),
            ("POST", api + "/users/@me/channels", self._create_dm),
            ("GET", api + "/users/{user_id}", self._get_user),
            ("GET", api + "/guilds/{guild_id}/members/{user_id}", self._get_guild_member),
            ("GET", api + "/oauth2/applications/@me", self._get_application),
            ("GET", api + "/applications/@me", self._get_application),
            ("GET", api + "/gateway", self._get_gateway),
            ("GET", api + "/gateway/bot", self._get_gateway_bot),
            ("PUT", api + "/applications/{app}/commands", self._put_commands),
            ("GET", api + "/applications/{app}/commands", self._get_commands),
            ("PUT", api + "/applications/{app}/guilds/{guild_id}/commands", self._put_commands),
            ("GET", api + "/applications/{app}/guilds/{guild_id}/commands", self._get_commands),
            ("POST", api + "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", webhook, self._post_followup),
            ("GET", webhook + "/messages/{message_id}", self._get_webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", self._patch_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", self._delete_webhook_message),
            ("GET", api + "/channels/{channel_id}", self._get_channel),
            ("GET", api + "/channels/{channel_id}/messages", self._list_channel_messages),
            ("POST", api + "/channels/{channel_id}/messages", self._post_channel_message),
            ("GET", message, self._get_channel_message),
            ("PATCH", message, self._patch_channel_message),
            ("DELETE", message, self._delete_channel_message),
            ("*", "/{tail:.*}", self._unknown_route),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        return app

    def _require_bot_token(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordError(401, 0, "401: Unauthorized")

    async def _unknown_route(self, request: web.Request) -> web.Response:
        self.unknown_routes.append(f"{request.method} {request.path}")
        raise DiscordError(404, 0, "404: Not Found")

    async def _download_attachment(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None:
            raise web.HTTPNotFound
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    async def _get_me(self, request: web.Request) -> web.Response:
        self._require_bot_token(request)
        return _json_response(
            self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        )

    def _known_user(self, user_id: int) -> User | None:
        if user_id == self.app_owner.id:
            return self.app_owner
        return self.users.get(user_id)

    async def _get_user(self, request: web.Request) -> web.Response:
        self._require_bot_token(request)
        try:
            user = self._known_user(int(request.match_info["user_id"]))
        except ValueError:
            user = None
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return _json_response(user.full_payload())

    async def _get_guild_member(self, request: web.Request) -> web.Response:
        """Get Guild Member: needs no privileged intent (only listing members does)."""
        self._require_bot_token(request)
        guild = self.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        try:
            user = self._known_user(int(request.match_info["user_id"]))
        except ValueError:
            user = None
        if user is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return _json_response(user.member_payload(self._clock.now()))

    async def _create_dm(self, request: web.Request) -> web.Response:
        """Create DM: the bot's one DM channel with ``recipient_id``, made on first use."""
        self._require_bot_token(request)
        body, _ = await _read_body(request)
        recipient_id = body.get("recipient_id")
        if recipient_id is None:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "_errors": [
                        {
                            "code": "CHANNEL_RECIPIENT_REQUIRED",
                            "message": "At least one channel recipient is required.",
                        }
                    ]
                },
            )
        try:
            recipient = self._known_user(int(recipient_id))
        except (TypeError, ValueError):
            recipient = None
        if recipient is None or recipient.id == self.bot_user.id:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        channel = self.dm_channel(recipient)
        if channel is None:
            channel = DMChannel(id=self._snowflake(), recipient=recipient)
            self.dm_channels[channel.id] = channel
            await self._notify()
        return _json_response(channel.payload())

    async def _get_application(self, request: web.Request) -> web.Response:
        self._require_bot_token(request)
        return _json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user.name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.app_owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "bot": self.bot_user.payload(),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
            }
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        self._require_bot_token(request)
        now = self._clock.monotonic()
        window = [t for t in self._session_starts if now - t < SESSION_START_RESET_SECONDS]
        reset_after = (window[0] + SESSION_START_RESET_SECONDS - now) if window else 0.0
        limit = {
            "total": self.session_start_total,
            "remaining": max(0, self.session_start_total - len(window)),
            "reset_after": int(reset_after * 1000),
            "max_concurrency": self.max_concurrency,
        }
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": self.recommended_shards,
                "session_start_limit": limit,
            }
        )

    def _command_scope(self, request: web.Request) -> int | None:
        self._require_bot_token(request)
        if int(request.match_info["app"]) != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if int(guild_id) not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return int(guild_id)

    async def _put_commands(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        submitted: list[dict[str, Any]] = await request.json()
        try:
            validate_command_overwrite(submitted)
        except InvalidField as invalid:
            raise _refused_field(invalid) from None
        stored = []
        for command in submitted:
            command_type = command.get("type", 1)
            # Discord keeps a command's id across syncs as long as name and type stay the same.
            key = (scope, command["name"], command_type)
            command_id = self._command_ids.setdefault(key, self._snowflake())
            permissions = command.get("default_member_permissions")
            stored.append(
                command
                | {
                    "id": str(command_id),
                    "application_id": str(self.application_id),
                    "type": command_type,
                    "version": str(self._snowflake()),
                    "default_member_permissions": None if permissions is None else str(permissions),
                    "nsfw": command.get("nsfw", False),
                    "description": command.get("description", ""),
                }
                | ({"guild_id": str(scope)} if scope is not None else {})
            )
        self.commands_synced[scope] = stored
        names = tuple(command["name"] for command in stored)
        self.command_syncs.append(CommandSync(self._clock.monotonic(), scope, names))
        await self._notify()
        return _json_response(stored)

    async def _get_commands(self, request: web.Request) -> web.Response:
        return _json_response(self.commands_synced.get(self._command_scope(request), []))

    # --- interactions

    async def _callback(self, request: web.Request) -> web.Response:
        received_at = self._clock.monotonic()
        body, files = await _read_body(request)
        record = self._interactions_by_id.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"] or record.revoked:
            raise DiscordError(404, 10062, "Unknown interaction")
        if record.acked_at is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if received_at - record.created_at > INITIAL_RESPONSE_DEADLINE_SECONDS:
            raise DiscordError(404, 10062, "Unknown interaction")
        response_type = body.get("type")
        allowed_types = CALLBACK_TYPES_BY_INTERACTION[record.type]
        if response_type not in allowed_types:
            listed = ", ".join(map(str, allowed_types))
            raise _invalid_form_body(
                "type", "BASE_TYPE_CHOICES", f"Value must be one of {{{listed}}}."
            )
        if response_type == CALLBACK_MODAL:
            try:
                validate_modal(body.get("data"))
            except InvalidField as invalid:
                raise _refused_field(invalid) from None
        data = body.get("data") or {}
        if response_type in {CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE}:
            deferred = response_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE
            placeholder = {"flags": int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL}
            record.original = await self._create_message(
                channel_id=record.channel_id,
                payload=placeholder if deferred else data,
                files=files,
                size_limit=record.attachment_size_limit,
                origin="interaction_response",
                interaction=record,
                extra_flags=MESSAGE_FLAG_LOADING if deferred else 0,
                message_type=self._response_message_type(record),
            )
        elif response_type in {CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE}:
            if record.source_message is None:
                raise _invalid_form_body("type", "INTERACTION_TYPE_INVALID", "Invalid type")
            record.original = record.source_message
            if response_type == CALLBACK_UPDATE_MESSAGE:
                await self._edit_message(record.original, data, files, record.attachment_size_limit)
        elif response_type == CALLBACK_MODAL:
            record.modal = data
        record.acked_at = received_at
        record.revoked = self.revoke_tokens_on_ack
        record.response_type = response_type
        record.callback = body
        await self._notify()
        return _json_response(self._callback_answer(record))

    @staticmethod
    def _response_message_type(record: InteractionRecord) -> int:
        """A command's response is typed by the command; any other interaction's is DEFAULT."""
        if record.type != INTERACTION_APPLICATION_COMMAND:
            return MESSAGE_TYPE_DEFAULT
        if record.payload["data"]["type"] == COMMAND_CHAT_INPUT:
            return MESSAGE_TYPE_CHAT_INPUT_COMMAND
        return MESSAGE_TYPE_CONTEXT_MENU_COMMAND

    def _callback_answer(self, record: InteractionRecord) -> dict[str, Any]:
        original = record.original
        interaction: dict[str, Any] = {"id": str(record.id), "type": record.type}
        resource: dict[str, Any] = {"type": record.response_type}
        if original is not None and record.response_type != CALLBACK_DEFERRED_UPDATE_MESSAGE:
            interaction |= {
                "response_message_id": str(original.id),
                "response_message_loading": original.loading,
                "response_message_ephemeral": original.ephemeral,
            }
            resource["message"] = original.payload(self.users)
        return {"interaction": interaction, "resource": resource}

    def _interaction_for_webhook(self, request: web.Request) -> InteractionRecord:
        record = self._interactions_by_token.get(request.match_info["token"])
        valid = (
            record is not None
            and int(request.match_info["app"]) == self.application_id
            and not record.revoked
            and self._clock.monotonic() - record.created_at < INTERACTION_TOKEN_LIFETIME_SECONDS
        )
        if not valid:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        assert record is not None
        if record.acked_at is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return record

    @staticmethod
    def _webhook_message(record: InteractionRecord, message_id: str) -> Message:
        if message_id == "@original":
            found = record.original
        else:
            found = next((m for m in record.messages() if m.id == int(message_id)), None)
        if found is None or found.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return found

    async def _post_followup(self, request: web.Request) -> web.Response:
        body, files = await _read_body(request)
        record = self._interaction_for_webhook(request)
        message = await self._create_message(
            channel_id=record.channel_id,
            payload=body,
            files=files,
            size_limit=record.attachment_size_limit,
            origin="followup",
            interaction=record,
        )
        record.followups.append(message)
        await self._notify()
        if not _query_flag(request, "wait"):
            return web.Response(status=204)
        return _json_response(message.payload(self.users))

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        record = self._interaction_for_webhook(request)
        message = self._webhook_message(record, request.match_info["message_id"])
        return _json_response(message.payload(self.users))

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        body, files = await _read_body(request)
        record = self._interaction_for_webhook(request)
        message = self._webhook_message(record, request.match_info["message_id"])
        await self._edit_message(message, body, files, record.attachment_size_limit)
        await self._notify()
        return _json_response(message.payload(self.users))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        record = self._interaction_for_webhook(request)
        await self._delete_message(self._webhook_message(record, request.match_info["message_id"]))
        await self._notify()
        return web.Response(status=204)

    # --- channels

    def _channel(self, request: web.Request) -> Channel | DMChannel:
        self._require_bot_token(request)
        channel_id = int(request.match_info["channel_id"])
        channel = self.channels.get(channel_id) or self.dm_channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def _any_channel(self, channel_id: int) -> Channel | DMChannel:
        return self.channels.get(channel_id) or self.dm_channels[channel_id]

    def _upload_limit(self, channel: Channel | DMChannel) -> int:
        """A guild channel's limit follows its guild's boost tier; a DM has the default."""
        if isinstance(channel, DMChannel):
            return DEFAULT_FILESIZE_LIMIT
        return self.guilds[channel.guild_id].filesize_limit

    def _require_dm_recipient_reachable(self, user: User) -> None:
        """Discord delivers a bot's DM only to a non-bot user who shares a guild with it (every
        user added here is in every guild) and has not turned DMs off; else 403, 50007."""
        shares_a_guild = user.id in self.users and bool(self.guilds)
        if not (shares_a_guild and not user.bot and user.accepts_dms):
            raise DiscordError(403, 50007, "Cannot send messages to this user")

    def _channel_message(self, request: web.Request) -> Message:
        channel = self._channel(request)
        message = self.messages.get(int(request.match_info["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, request: web.Request) -> web.Response:
        return _json_response(self._channel(request).payload())

    async def _list_channel_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        limit = int(request.query.get("limit", "50"))
        before = int(request.query.get("before", "0")) or None
        after = int(request.query.get("after", "0"))
        visible = [
            m
            for m in self.messages_in(channel.id)
            if not m.ephemeral and m.id > after and (before is None or m.id < before)
        ]
        newest_first = sorted(visible, key=lambda m: m.id, reverse=True)[:limit]
        return _json_response([m.payload(self.users) for m in newest_first])

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        body, files = await _read_body(request)
        channel = self._channel(request)
        if isinstance(channel, DMChannel):
            self._require_dm_recipient_reachable(channel.recipient)
        else:
            self._require_bot_may_post(channel)
        nonce = body.get("nonce")
        nonce_key = (self.bot_user.id, str(nonce))
        now = self._clock.monotonic()
        if nonce is not None and body.get("enforce_nonce"):
            previous = self._nonces.get(nonce_key)
            if previous is not None and now - previous[0] < NONCE_WINDOW_SECONDS:
                return _json_response(previous[1].payload(self.users))
        message = await self._create_message(
            channel_id=channel.id,
            payload=body,
            files=files,
            size_limit=self._upload_limit(channel),
            origin="channel",
        )
        if nonce is not None:
            self._nonces[nonce_key] = (now, message)
        await self._notify()
        return _json_response(message.payload(self.users))

    def _require_bot_may_post(self, channel: Channel) -> None:
        """A channel whose overwrites deny the bot's role viewing or sending refuses its posts."""
        guild = self.guilds[channel.guild_id]
        if channel.denies(guild.bot_role_id, PERMISSION_VIEW_CHANNEL):
            raise DiscordError(403, 50001, "Missing Access")
        if channel.denies(guild.bot_role_id, PERMISSION_SEND_MESSAGES):
            raise DiscordError(403, 50013, "Missing Permissions")

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        return _json_response(self._channel_message(request).payload(self.users))

    async def _patch_channel_message(self, request: web.Request) -> web.Response:
        body, files = await _read_body(request)
        message = self._channel_message(request)
        if int(message.author["id"]) != self.bot_user.id:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        size_limit = self._upload_limit(self._any_channel(message.channel_id))
        await self._edit_message(message, body, files, size_limit)
        await self._notify()
        return _json_response(message.payload(self.users))

    async def _delete_channel_message(self, request: web.Request) -> web.Response:
        await self._delete_message(self._channel_message(request))
        await self._notify()
        return web.Response(status=204)

    # ------------------------------------------------------------------ internals: gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        # The client asks for zlib-stream compression but reads plain text frames too.
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"op": OP_HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        session: GatewaySession | None = None
        pending_acks: set[asyncio.Task[None]] = set()
        try:
            async for frame in socket:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                packet = json.loads(frame.data)
                opcode, data = packet.get("op"), packet.get("d")
                if opcode == OP_HEARTBEAT:
                    ack = asyncio.create_task(self._acknowledge_heartbeat(socket))
                    pending_acks.add(ack)
                    ack.add_done_callback(pending_acks.discard)
                elif opcode in {OP_IDENTIFY, OP_RESUME} and session is not None:
                    await self._close_socket(
                        socket, CLOSE_ALREADY_AUTHENTICATED, b"Already authenticated."
                    )
                elif opcode == OP_IDENTIFY:
                    session = await self._identify(socket, data)
                elif opcode == OP_RESUME:
                    session = await self._resume(socket, data)
        finally:
            for ack in pending_acks:
                ack.cancel()
            await asyncio.gather(*pending_acks, return_exceptions=True)
            closed_by_client = socket not in self._closed_by_server
            self._closed_by_server.discard(socket)
            if session is not None and session.socket is socket:
                session.socket = None
                if closed_by_client and socket.close_code in SESSION_ENDING_CLOSE_CODES:
                    self._end_session(session)
            await self._notify()
        return socket

    @staticmethod
    async def _acknowledge_heartbeat(socket: web.WebSocketResponse) -> None:
        await asyncio.sleep(HEARTBEAT_ACK_DELAY)
        if not socket.closed:
            with contextlib.suppress(ConnectionResetError):
                await socket.send_json({"op": OP_HEARTBEAT_ACK})

    async def _close_socket(
        self, socket: web.WebSocketResponse, code: int, message: bytes = b""
    ) -> None:
        """Close a gateway socket from Discord's side (which keeps its session resumable)."""
        self._closed_by_server.add(socket)
        await socket.close(code=code, message=message)

    def _end_session(self, session: GatewaySession) -> None:
        """As Discord does when the client closes with 1000/1001: the session is invalid."""
        self._sessions.pop(session.id, None)
        if self._sessions_by_shard.get(session.shard_id) is session:
            del self._sessions_by_shard[session.shard_id]

    async def _identify(
        self, socket: web.WebSocketResponse, data: Mapping[str, Any]
    ) -> GatewaySession | None:
        if data.get("token") != self.token:
            await self._close_socket(socket, CLOSE_AUTHENTICATION_FAILED, b"Authentication failed.")
            return None
        try:
            shard = _parse_shard(data.get("shard"))
        except ValueError:
            await self._close_socket(socket, CLOSE_INVALID_SHARD, b"Invalid shard.")
            return None
        shard_id = None if shard is None else shard[0]
        now = self._clock.monotonic()
        self.identifies.append((now, shard_id))
        if not await self._identify_allowed(socket, now, shard_id):
            return None
        session = GatewaySession(
            id=secrets.token_hex(16),
            socket=socket,
            intents=int(data.get("intents") or 0),
            shard=shard,
        )
        guilds = [guild for guild in self.guilds.values() if session.serves(guild.id)]
        session.guild_ids = tuple(guild.id for guild in guilds)
        self._sessions[session.id] = session
        self._session_starts.append(now)
        self.identify_count += 1
        await session.dispatch("READY", self._ready_payload(session))
        for guild in guilds:
            await session.dispatch("GUILD_CREATE", self._guild_payload(guild))
        self._sessions_by_shard[shard_id] = session
        await self._notify()
        return session

    async def _identify_allowed(
        self, socket: web.WebSocketResponse, now: float, shard_id: int | None
    ) -> bool:
        """Apply the identify rate limit: one IDENTIFY per bucket per 5 s.

        A violation is recorded; when enforced, Discord answers Invalid Session (op 9), or the
        stand-in closes the socket with ``identify_violation_close_code`` if one is set.
        """
        bucket = (shard_id or 0) % max(1, self.max_concurrency)
        previous = self._last_identify_by_bucket.get(bucket)
        if previous is None or now - previous >= IDENTIFY_WINDOW_SECONDS:
            self._last_identify_by_bucket[bucket] = now
            return True
        self.identify_violations.append(IdentifyViolation(now, shard_id, bucket, previous))
        if not self.enforce_identify_rate_limit:
            self._last_identify_by_bucket[bucket] = now
            return True
        if self.identify_violation_close_code is None:
            await socket.send_json({"op": OP_INVALID_SESSION, "d": False})
        else:
            await self._close_socket(socket, self.identify_violation_close_code)
        await self._notify()
        return False

    async def _resume(
        self, socket: web.WebSocketResponse, data: Mapping[str, Any]
    ) -> GatewaySession | None:
        session = self._sessions.get(data.get("session_id") or "")
        if session is None or data.get("token") != self.token:
            await socket.send_json({"op": OP_INVALID_SESSION, "d": False})
            return None
        last_seen = data.get("seq") or 0
        async with session.send_lock:
            session.socket = socket
            for sequence, frame in session.sent:
                if sequence > last_seen:
                    await socket.send_str(frame)
        await session.dispatch("RESUMED", {})
        self.resume_count += 1
        self._sessions_by_shard[session.shard_id] = session
        await self._notify()
        return session

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        """READY lists only the session's guilds, and echoes its ``shard`` when it has one."""
        guilds = [{"id": str(guild_id), "unavailable": True} for guild_id in session.guild_ids]
        payload: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": guilds,
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
            "user_settings": {},
        }
        if session.shard is not None:
            payload["shard"] = list(session.shard)
        return payload

    def _guild_payload(self, guild: Guild) -> dict[str, Any]:
        joined_at = self._clock.now()
        bot_member = self.bot_user.member_payload(joined_at)
        bot_member["roles"] = [str(guild.bot_role_id)]
        members = [bot_member] + [
            user.member_payload(joined_at) for user in self.users.values() if not user.bot
        ]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "owner_id": str(guild.owner_id),
            "preferred_locale": guild.locale,
            "features": guild.features,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0,
            "member_count": len(members),
            "large": False,
            "unavailable": False,
            "joined_at": joined_at.isoformat(),
            "roles": guild.roles_payload(),
            "channels": [channel.payload() for channel in guild.channels],
            "members": members,
            "threads": [],
            "emojis": [],
            "stickers": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "icon": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_id": None,
        }
