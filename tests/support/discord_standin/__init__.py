"""A loopback Discord that the real discord.py client connects to, for end-to-end tests.

See ``DiscordStandIn`` for the test-side API, ``records`` for what it stores and
``validation`` for the limits it holds commands and modals to.
"""

from tests.support.discord_standin.records import (
    ADMINISTRATOR_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    PERMISSION_SEND_MESSAGES,
    PERMISSION_VIEW_CHANNEL,
    Channel,
    CommandSync,
    ErrorResponse,
    Guild,
    IdentifyViolation,
    InteractionRecord,
    Message,
    PingedMentions,
    StoredAttachment,
    User,
    pinged_mentions,
    shard_id_for,
)
from tests.support.discord_standin.server import (
    DiscordError,
    DiscordStandIn,
    GatewaySession,
    OptionValue,
)
from tests.support.discord_standin.validation import (
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    COMMAND_USER,
    InvalidField,
)

__all__ = [
    "ADMINISTRATOR_PERMISSIONS",
    "COMMAND_CHAT_INPUT",
    "COMMAND_MESSAGE",
    "COMMAND_USER",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "MESSAGE_FLAG_EPHEMERAL",
    "MESSAGE_FLAG_LOADING",
    "PERMISSION_SEND_MESSAGES",
    "PERMISSION_VIEW_CHANNEL",
    "Channel",
    "CommandSync",
    "DiscordError",
    "DiscordStandIn",
    "ErrorResponse",
    "GatewaySession",
    "Guild",
    "IdentifyViolation",
    "InteractionRecord",
    "InvalidField",
    "Message",
    "OptionValue",
    "PingedMentions",
    "StoredAttachment",
    "User",
    "pinged_mentions",
    "shard_id_for",
]
