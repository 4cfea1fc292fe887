"""The real discord.py client, driven end to end through the loopback Discord stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.support.clock import FakeClock
from tests.support.discord_standin import (
    COMMAND_MESSAGE,
    DiscordStandIn,
    Guild,
    IdentifyViolation,
    InteractionRecord,
    User,
)
from tests.support.discord_standin.validation import (
    InvalidField,
    modal_submission,
    validate_modal,
)

WAIT_LIMIT_SECONDS = 10.0
TOKEN = "test-token"  # the stand-in's default
GLOBAL_COMMANDS = {"ping", "upload", "slow", "feedback", "broken", "Animate Image"}
T = TypeVar("T")


@dataclass
class Observed:
    """What the bot under test saw, shared across its restarts."""

    errors: asyncio.Queue[discord.HTTPException] = field(default_factory=asyncio.Queue)
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)
    # Messages message commands were used on, and what modals were submitted with.
    targets: asyncio.Queue[discord.Message] = field(default_factory=asyncio.Queue)
    submissions: asyncio.Queue[tuple[str, list[str]]] = field(default_factory=asyncio.Queue)


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"vote:(?P<job_id>[0-9]+)",
):
    """A persistent button: its state lives in the custom_id, so it survives restarts."""

    def __init__(self, job_id: int) -> None:
        button = discord.ui.Button[discord.ui.View](
            label="Vote", style=discord.ButtonStyle.primary, custom_id=f"vote:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[discord.ui.View],
        match: re.Match[str],
    ) -> VoteButton:
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"vote {self.job_id} counted", ephemeral=True)


@app_commands.command(name="ping", description="Defers, then edits the original response.")
async def ping(interaction: discord.Interaction[StandInBot]) -> None:
    await interaction.response.defer()
    await interaction.edit_original_response(content="pong")


@app_commands.command(name="upload", description="Echoes an attachment back as a file.")
async def upload(
    interaction: discord.Interaction[StandInBot], image: discord.Attachment, text: str
) -> None:
    await interaction.response.defer()
    data = await image.read()
    only_the_invoker = discord.AllowedMentions(
        everyone=False, roles=False, users=[interaction.user]
    )
    try:
        await interaction.followup.send(
            f"{interaction.user.mention} asked for: {text}",
            file=discord.File(io.BytesIO(data), filename=f"echo-{image.filename}"),
            allowed_mentions=only_the_invoker,
        )
    except discord.HTTPException as error:
        await interaction.client.observed.errors.put(error)
        await interaction.edit_original_response(content=f"upload failed: {error.code}")


@app_commands.command(name="slow", description="Defers and answers when the test says so.")
async def slow(interaction: discord.Interaction[StandInBot]) -> None:
    await interaction.response.defer()
    await interaction.client.observed.release_slow.wait()
    try:
        await interaction.followup.send("finally done")
    except discord.HTTPException as error:
        await interaction.client.observed.errors.put(error)


group = app_commands.Group(name="grp", description="A guild-only command group.")


@group.command(name="sub", description="Doubles a number.")
async def sub(interaction: discord.Interaction[StandInBot], value: int) -> None:
    await interaction.response.send_message(f"doubled: {value * 2}")


class AnimateModal(discord.ui.Modal, title="Animate this image"):
    """The current shape: Labels around a Text Input and a String Select."""

    prompt = discord.ui.Label(
        text="Prompt",
        description="What should happen in the video?",
        component=discord.ui.TextInput(
            custom_id="prompt", style=discord.TextStyle.paragraph, max_length=200
        ),
    )
    seconds = discord.ui.Label(
        text="Length",
        component=discord.ui.Select(
            custom_id="seconds",
            options=[
                discord.SelectOption(label="6 seconds", value="6", default=True),
                discord.SelectOption(label="10 seconds", value="10"),
            ],
        ),
    )

    async def on_submit(self, interaction: discord.Interaction[StandInBot]) -> None:
        prompt, seconds = self.prompt.component, self.seconds.component
        assert isinstance(prompt, discord.ui.TextInput)
        assert isinstance(seconds, discord.ui.Select)
        await interaction.client.observed.submissions.put((prompt.value, seconds.values))
        await interaction.response.send_message(
            f"animating for {seconds.values[0]} s: {prompt.value}", ephemeral=True
        )


@app_commands.context_menu(name="Animate Image")
async def animate_image(
    interaction: discord.Interaction[StandInBot], message: discord.Message
) -> None:
    await interaction.client.observed.targets.put(message)
    await interaction.response.send_modal(AnimateModal())


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    """The legacy shape: a labelled Text Input, which discord.py puts in an Action Row.

    Its submit tries the answers Discord refuses for a modal opened by a command (an update of
    the message, another modal), then answers with a message.
    """

    answer = discord.ui.TextInput(label="Your feedback", custom_id="answer", min_length=2)

    async def on_submit(self, interaction: discord.Interaction[StandInBot]) -> None:
        observed = interaction.client.observed
        await observed.submissions.put((self.answer.value, []))
        for refused in (
            interaction.response.edit_message(content="no message to update"),
            interaction.response.send_modal(FeedbackModal()),
        ):
            try:
                await refused
            except discord.HTTPException as error:
                await observed.errors.put(error)
        await interaction.response.send_message("thanks", ephemeral=True)


@app_commands.command(name="feedback", description="Asks for feedback in a modal.")
async def feedback(interaction: discord.Interaction[StandInBot]) -> None:
    await interaction.response.send_modal(FeedbackModal())


class SixInputs(discord.ui.Modal, title="Six inputs"):
    """One component more than a modal holds (discord.py checks only ``add_item``)."""

    first = discord.ui.TextInput(label="1")
    second = discord.ui.TextInput(label="2")
    third = discord.ui.TextInput(label="3")
    fourth = discord.ui.TextInput(label="4")
    fifth = discord.ui.TextInput(label="5")
    sixth = discord.ui.TextInput(label="6")


def _labelled_input(title: str, text_input: discord.ui.TextInput) -> discord.ui.Modal:
    return discord.ui.Modal(title=title).add_item(
        discord.ui.Label(text="Name", component=text_input)
    )


INVALID_MODALS: dict[str, Callable[[], discord.ui.Modal]] = {
    "long title": lambda: _labelled_input("t" * 46, discord.ui.TextInput(custom_id="name")),
    "six components": SixInputs,
    "value too long": lambda: _labelled_input(
        "Too long", discord.ui.TextInput(custom_id="name", default="x" * 20, max_length=10)
    ),
}


@app_commands.command(name="broken", description="Sends a modal Discord refuses.")
async def broken(interaction: discord.Interaction[StandInBot], kind: str) -> None:
    try:
        await interaction.response.send_modal(INVALID_MODALS[kind]())
    except discord.HTTPException as error:
        await interaction.client.observed.errors.put(error)
    await interaction.response.send_message("the modal was refused", ephemeral=True)


class RenameModal(discord.ui.Modal, title="Rename"):
    notice = discord.ui.TextDisplay("The new text replaces the message's.")
    text = discord.ui.Label(text="New text", component=discord.ui.TextInput(custom_id="text"))

    async def on_submit(self, interaction: discord.Interaction[StandInBot]) -> None:
        assert isinstance(self.text.component, discord.ui.TextInput)
        await interaction.response.edit_message(content=self.text.component.value, view=None)


class RenameView(discord.ui.View):
    """A button that opens a modal pre-filled with the message's text."""

    @discord.ui.button(label="Rename", custom_id="rename")
    async def rename(
        self, interaction: discord.Interaction[StandInBot], button: discord.ui.Button[RenameView]
    ) -> None:
        modal = RenameModal()
        assert isinstance(modal.text.component, discord.ui.TextInput)
        assert interaction.message is not None
        modal.text.component.default = interaction.message.content
        await interaction.response.send_modal(modal)


class StandInBot(commands.Bot):
    def __init__(self, observed: Observed, guild_id: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.01,
        )
        self.observed = observed
        self.home_guild = discord.Object(guild_id)
        for command in (ping, upload, slow, feedback, broken, animate_image):
            self.tree.add_command(command)
        self.tree.add_command(group, guild=self.home_guild)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(VoteButton)
        await self.tree.sync()
        await self.tree.sync(guild=self.home_guild)


@dataclass
class Harness:
    standin: DiscordStandIn
    clock: FakeClock
    guild: Guild
    alice: User
    observed: Observed = field(default_factory=Observed)
    running: list[tuple[StandInBot, asyncio.Task[None]]] = field(default_factory=list)

    async def start_bot(self) -> StandInBot:
        bot = StandInBot(self.observed, self.guild.id)
        await bot.login(self.standin.token)
        self.running.append((bot, asyncio.create_task(bot.connect())))
        async with asyncio.timeout(WAIT_LIMIT_SECONDS):
            await bot.wait_until_ready()
        return bot

    async def stop_bots(self) -> None:
        while self.running:
            bot, task = self.running.pop()
            await bot.close()
            await task

    async def command(self, name: str, options: dict | None = None, **kwargs) -> InteractionRecord:
        channel = self.guild.text_channel
        record = await self.standin.send_command(
            self.guild, channel, self.alice, name, options, **kwargs
        )
        return await self.standin.wait_until_acked(record)

    async def next_bot_error(self) -> discord.HTTPException:
        return await self.next_from(self.observed.errors)

    @staticmethod
    async def next_from(queue: asyncio.Queue[T]) -> T:
        async with asyncio.timeout(WAIT_LIMIT_SECONDS):
            return await queue.get()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    # The fake clock starts at the real time so discord.py's own expiry maths agrees with ours.
    clock = FakeClock(start=datetime.now(UTC))
    standin = DiscordStandIn(clock=clock)
    guild = standin.add_guild("Stand-in Guild")
    alice = standin.add_user("alice")
    await standin.start()
    harness = Harness(standin, clock, guild, alice)
    with standin.patch_discord_py():
        try:
            yield harness
        finally:
            await harness.stop_bots()
            await standin.close()
    assert standin.unknown_routes == [], "the bot called REST routes the stand-in lacks"


@pytest.fixture
async def bot(harness: Harness) -> StandInBot:
    return await harness.start_bot()


async def test_login_ready_and_command_sync(harness: Harness, bot: StandInBot) -> None:
    standin = harness.standin

    assert bot.user is not None
    assert bot.user.id == standin.bot_user_id
    assert bot.application_id == standin.application_id
    guild = bot.get_guild(harness.guild.id)
    assert guild is not None
    assert guild.get_channel(harness.guild.nsfw_channel.id).is_nsfw()  # type: ignore[union-attr]
    assert {c["name"] for c in standin.commands_synced[None]} == GLOBAL_COMMANDS
    grp = standin.command("grp", guild_id=harness.guild.id)
    assert grp is not None
    [sub_command] = grp["options"]
    assert (sub_command["name"], sub_command["type"]) == ("sub", 1)
    assert [(o["name"], o["type"]) for o in sub_command["options"]] == [("value", 4)]
    upload_options = standin.command("upload")["options"]  # type: ignore[index]
    assert [(o["name"], o["type"]) for o in upload_options] == [("image", 11), ("text", 3)]


async def test_wrong_token_is_a_login_failure(harness: Harness) -> None:
    bot = StandInBot(harness.observed, harness.guild.id)
    try:
        with pytest.raises(discord.LoginFailure):
            await bot.login("not-the-token")
    finally:
        await bot.close()


async def test_ping_defers_then_edits_the_original(harness: Harness, bot: StandInBot) -> None:
    record = await harness.command("ping")

    assert record.response_type == 5
    assert record.ack_latency is not None
    original = await harness.standin.wait_for(
        lambda: record.original if record.original and not record.original.loading else None
    )
    assert original.content == "pong"
    assert [edit["content"] for edit in original.edits] == ["pong"]
    assert record.followups == []


async def test_second_callback_is_already_acknowledged(harness: Harness, bot: StandInBot) -> None:
    record = await harness.command("ping")

    url = f"{harness.standin.api_base}/interactions/{record.id}/{record.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as response,
    ):
        body = await response.json()

    assert response.status == 400
    assert body["code"] == 40060


async def test_upload_round_trip_pings_only_the_invoker(harness: Harness, bot: StandInBot) -> None:
    picture = harness.standin.make_attachment("cat.png", "image/png", b"\x89PNG fake bytes")

    record = await harness.command("upload", {"image": picture, "text": "@everyone look"})
    followup = await harness.standin.wait_for(lambda: record.followups and record.followups[0])

    [echoed] = followup.attachments
    assert (echoed.filename, echoed.data) == ("echo-cat.png", b"\x89PNG fake bytes")
    assert "@everyone" in followup.content
    pinged = followup.mentions_pinged
    assert not pinged.everyone
    assert pinged.users == {harness.alice.id}
    assert not pinged.roles


async def test_subcommand_with_integer_option(harness: Harness, bot: StandInBot) -> None:
    record = await harness.command("grp", {"value": 21}, subcommand="sub")

    assert record.response_type == 4
    assert record.original is not None
    assert record.original.content == "doubled: 42"
    assert record.payload["data"]["guild_id"] == str(harness.guild.id)


async def test_upload_over_the_size_limit_is_refused(harness: Harness, bot: StandInBot) -> None:
    big = harness.standin.make_attachment("big.bin", "application/octet-stream", bytes(2048))

    record = await harness.command(
        "upload", {"image": big, "text": "too big"}, attachment_size_limit=1024
    )
    error = await harness.next_bot_error()

    assert (error.status, error.code) == (413, 40005)
    assert record.followups == []
    refused = harness.standin.errors[-1]
    assert (refused.status, refused.code) == (413, 40005)


async def test_expired_token_fails_the_followup(harness: Harness, bot: StandInBot) -> None:
    record = await harness.command("slow")

    harness.standin.expire_interaction(record)
    harness.observed.release_slow.set()
    error = await harness.next_bot_error()

    assert type(error) is discord.HTTPException
    assert (error.status, error.code) == (401, 50027)


async def test_token_lives_fifteen_minutes_on_the_standin_clock(
    harness: Harness, bot: StandInBot
) -> None:
    record = await harness.command("slow")

    await harness.clock.advance(15 * 60)
    harness.observed.release_slow.set()
    error = await harness.next_bot_error()

    assert (error.status, error.code) == (401, 50027)
    assert record.followups == []


async def test_nonce_with_enforce_nonce_posts_once(harness: Harness, bot: StandInBot) -> None:
    channel = bot.get_channel(harness.guild.text_channel.id)
    assert isinstance(channel, discord.TextChannel)

    first = await channel.send("hello", nonce="job-7")
    again = await channel.send("hello", nonce="job-7")
    await harness.clock.advance(10 * 60)
    later = await channel.send("hello", nonce="job-7")

    assert first.id == again.id
    assert later.id != first.id
    assert len(harness.standin.messages_in(channel.id)) == 2


async def test_persistent_button_answers_after_a_restart(harness: Harness, bot: StandInBot) -> None:
    channel = bot.get_channel(harness.guild.text_channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send(
        "vote here", view=discord.ui.View(timeout=None).add_item(VoteButton(7))
    )
    await harness.stop_bots()
    # Discord allows one IDENTIFY per 5 s (per bucket); a restart waits that out.
    await harness.clock.advance(5)
    await harness.start_bot()

    message = harness.standin.messages[sent.id]
    record = await harness.standin.click_button(message, "vote:7", harness.alice)
    await harness.standin.wait_until_acked(record)

    assert record.response_type == 4
    assert record.original is not None
    assert record.original.content == "vote 7 counted"
    assert record.original.ephemeral
    assert harness.standin.identify_count == 2


async def test_gateway_drop_resumes_the_session(harness: Harness, bot: StandInBot) -> None:
    await harness.standin.drop_gateway()
    await harness.standin.wait_for(lambda: harness.standin.resume_count == 1)

    record = await harness.command("ping")

    assert record.response_type == 5
    assert harness.standin.identify_count == 1


# --- direct messages ------------------------------------------------------------------------


async def _rest(harness: Harness, method: str, path: str, body: dict | None = None):
    headers = {"Authorization": f"Bot {harness.standin.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{harness.standin.api_base}{path}", json=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_fetch_user_returns_the_user_object(harness: Harness, bot: StandInBot) -> None:
    user = await bot.fetch_user(harness.alice.id)

    assert (user.id, user.name, user.bot) == (harness.alice.id, "alice", False)
    with pytest.raises(discord.NotFound) as unknown:
        await bot.fetch_user(424242)
    assert unknown.value.code == 10013


async def test_a_dm_opens_one_channel_per_user_and_stores_its_messages(
    harness: Harness, bot: StandInBot
) -> None:
    standin = harness.standin
    user = await bot.fetch_user(harness.alice.id)

    first = await user.send("hello", allowed_mentions=discord.AllowedMentions.none())
    second = await user.send("again")

    channel = standin.dm_channel(harness.alice)
    assert channel is not None
    assert list(standin.dm_channels) == [channel.id]
    assert isinstance(first.channel, discord.DMChannel)
    assert first.channel.id == second.channel.id == channel.id
    assert first.guild is None
    stored = standin.direct_messages(harness.alice)
    assert [m.content for m in stored] == ["hello", "again"]
    assert all(m.guild_id is None and m.channel_id == channel.id for m in stored)
    assert "guild_id" not in stored[0].payload()
    assert stored[0].allowed_mentions == {"parse": []}
    assert int(stored[0].author["id"]) == standin.bot_user_id
    assert channel.last_message_id == second.id
    assert standin.direct_messages(harness.guild.owner_id) == []


async def test_create_dm_returns_the_same_channel_every_time(
    harness: Harness, bot: StandInBot
) -> None:
    recipient = {"recipient_id": str(harness.alice.id)}

    status, created = await _rest(harness, "POST", "/users/@me/channels", recipient)
    _, again = await _rest(harness, "POST", "/users/@me/channels", recipient)
    _, fetched = await _rest(harness, "GET", f"/channels/{created['id']}")

    assert status == 200
    assert created == again == fetched
    assert created["type"] == 1
    assert created["last_message_id"] is None
    assert [u["id"] for u in created["recipients"]] == [str(harness.alice.id)]


async def test_create_dm_with_an_unknown_recipient_is_refused(
    harness: Harness, bot: StandInBot
) -> None:
    status, body = await _rest(harness, "POST", "/users/@me/channels", {"recipient_id": "4242"})
    missing_status, missing = await _rest(harness, "POST", "/users/@me/channels", {})

    assert (status, body["code"]) == (400, 50033)
    assert (missing_status, missing["code"]) == (400, 50035)
    assert harness.standin.dm_channels == {}


async def test_a_user_who_refuses_dms_cannot_be_sent_one(harness: Harness) -> None:
    shy = harness.standin.add_user("shy", accepts_dms=False)
    bot = await harness.start_bot()
    user = await bot.fetch_user(shy.id)

    with pytest.raises(discord.Forbidden) as refused:
        await user.send("psst")

    assert refused.value.code == 50007
    assert harness.standin.dm_channel(shy) is not None  # opening the channel works
    assert harness.standin.direct_messages(shy) == []
    error = harness.standin.errors[-1]
    assert (error.method, error.status, error.code) == ("POST", 403, 50007)
    assert error.message == "Cannot send messages to this user"


async def test_wait_for_direct_message_and_the_gateway_event(
    harness: Harness, bot: StandInBot
) -> None:
    user = await bot.fetch_user(harness.alice.id)
    # StandInBot uses the default intents, DIRECT_MESSAGES among them.
    seen = asyncio.create_task(
        bot.wait_for("message", check=lambda m: m.guild is None, timeout=WAIT_LIMIT_SECONDS)
    )
    sending = asyncio.create_task(user.send("done: your video is ready"))

    stored = await harness.standin.wait_for_direct_message(
        harness.alice, lambda m: m.content.startswith("done")
    )
    await sending
    event = await seen

    assert stored.content == "done: your video is ready"
    assert event.id == stored.id


async def test_dm_messages_can_be_edited_and_deleted(harness: Harness, bot: StandInBot) -> None:
    user = await bot.fetch_user(harness.alice.id)
    sent = await user.send("draft")

    await sent.edit(content="final")
    stored = harness.standin.direct_messages(harness.alice)[0]
    assert stored.content == "final"
    assert [edit["content"] for edit in stored.edits] == ["final"]

    await sent.delete()
    assert harness.standin.direct_messages(harness.alice) == []
    assert harness.standin.direct_messages(harness.alice, include_deleted=True) == [stored]


async def test_a_dm_upload_has_the_default_size_limit(harness: Harness, bot: StandInBot) -> None:
    user = await bot.fetch_user(harness.alice.id)

    with pytest.raises(discord.HTTPException) as too_big:
        await user.send(file=discord.File(io.BytesIO(bytes(10 * 1024 * 1024 + 1)), "big.bin"))
    small = await user.send(file=discord.File(io.BytesIO(b"tiny"), "small.bin"))

    assert (too_big.value.status, too_big.value.code) == (413, 40005)
    assert [a.filename for a in small.attachments] == ["small.bin"]


# --- sharding -------------------------------------------------------------------------------


async def _eventually(predicate: Callable[[], bool], *, limit: float = WAIT_LIMIT_SECONDS) -> None:
    """For state on the client side, which does not wake the stand-in's ``wait_for``."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class ShardClient(discord.Client):
    """A plain client on one shard (or several, as ``AutoShardedClient``'s base) that answers
    every interaction with the shard it came in on and remembers what it saw."""

    def __init__(self, clock: FakeClock, **options: Any) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.01, **options)
        self.clock = clock
        self.interaction_guilds: list[int | None] = []
        self.messages_seen: list[discord.Message] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 real seconds here; waiting out the stand-in's window on its clock
        # instead keeps the tests fast and the identifies exactly as far apart.
        if not initial:
            await self.clock.advance(5)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.interaction_guilds.append(interaction.guild_id)
        # discord.py derives a guild's shard from the formula, not from the connection.
        shard = interaction.guild.shard_id if interaction.guild else None
        await interaction.response.send_message(f"answered on shard {shard}")

    async def on_message(self, message: discord.Message) -> None:
        self.messages_seen.append(message)


class AutoShardClient(ShardClient, discord.AutoShardedClient):
    pass


@contextlib.asynccontextmanager
async def _running(*clients: discord.Client) -> AsyncIterator[None]:
    tasks: list[asyncio.Task[None]] = []
    try:
        for client in clients:
            await client.login(TOKEN)
            tasks.append(asyncio.create_task(client.connect()))
        async with asyncio.timeout(WAIT_LIMIT_SECONDS):
            for client in clients:
                await client.wait_until_ready()
        yield
    finally:
        for client in clients:
            await client.close()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Sharded:
    """Two guilds on each shard of two."""

    harness: Harness
    on_shard: dict[int, list[Guild]]

    @property
    def standin(self) -> DiscordStandIn:
        return self.harness.standin

    def client(self, **options: Any) -> ShardClient:
        return ShardClient(self.harness.clock, **options)

    def guild_ids(self, shard_id: int) -> set[int]:
        return {guild.id for guild in self.on_shard[shard_id]}

    async def command_in(self, guild: Guild) -> InteractionRecord:
        record = await self.standin.send_command(
            guild, guild.text_channel, self.harness.alice, "where"
        )
        return await self.standin.wait_until_acked(record)

    def shards_sent(self, record: InteractionRecord) -> list[int | None]:
        """The shards whose gateway session carried this interaction."""
        return [
            shard_id
            for shard_id, session in self.standin.gateway_sessions.items()
            for _, frame in session.sent
            if json.loads(frame)["t"] == "INTERACTION_CREATE"
            and json.loads(frame)["d"]["id"] == str(record.id)
        ]


@pytest.fixture
def sharded(harness: Harness) -> Sharded:
    standin = harness.standin
    for shard_id in (0, 1):
        for n in range(2):
            standin.add_guild(f"shard {shard_id} guild {n}", shard=(shard_id, 2))
    on_shard: dict[int, list[Guild]] = {0: [], 1: []}
    for guild in standin.guilds.values():
        on_shard[standin.shard_for(guild, 2)].append(guild)
    return Sharded(harness, on_shard)


async def _receive(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await socket.receive(timeout=WAIT_LIMIT_SECONDS)
    assert message.type is aiohttp.WSMsgType.TEXT, (message.type, socket.close_code)
    return message.json()


async def _receive_close(socket: aiohttp.ClientWebSocketResponse) -> int | None:
    message = await socket.receive(timeout=WAIT_LIMIT_SECONDS)
    assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, message
    return socket.close_code


@contextlib.asynccontextmanager
async def _raw_gateway(standin: DiscordStandIn) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare gateway connection, past HELLO, for exact protocol checks."""
    async with aiohttp.ClientSession() as http, http.ws_connect(standin.gateway_url) as socket:
        hello = await _receive(socket)
        assert hello["op"] == 10
        yield socket


async def _identify(
    socket: aiohttp.ClientWebSocketResponse, shard: list[int] | None = None
) -> dict[str, Any]:
    """Send IDENTIFY; returns the first answer (READY's dispatch, or op 9)."""
    data: dict[str, Any] = {"token": TOKEN, "intents": discord.Intents.default().value}
    if shard is not None:
        data["shard"] = shard
    await socket.send_json({"op": 2, "d": data})
    return await _receive(socket)


async def test_gateway_bot_reports_shards_and_the_session_start_limit(
    harness: Harness,
) -> None:
    standin = harness.standin
    standin.recommended_shards = 3
    standin.max_concurrency = 2

    status, before = await _rest(harness, "GET", "/gateway/bot")
    async with _raw_gateway(standin) as socket:
        await _identify(socket, [0, 3])
    await harness.clock.advance(60)
    _, after = await _rest(harness, "GET", "/gateway/bot")
    _, plain = await _rest(harness, "GET", "/gateway")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{standin.api_base}/gateway/bot") as anonymous,
    ):
        pass

    assert status == 200
    assert before == {
        "url": standin.gateway_url,
        "shards": 3,
        "session_start_limit": {
            "total": 1000,
            "remaining": 1000,
            "reset_after": 0,
            "max_concurrency": 2,
        },
    }
    assert after["session_start_limit"]["remaining"] == 999
    assert after["session_start_limit"]["reset_after"] == (24 * 60 * 60 - 60) * 1000
    assert plain == {"url": standin.gateway_url}
    assert anonymous.status == 401


async def test_ready_lists_only_the_guilds_of_the_session_shard(sharded: Sharded) -> None:
    standin = sharded.standin
    standin.max_concurrency = 2

    async with _raw_gateway(standin) as socket:
        ready = await _identify(socket, [1, 2])
        creates = [await _receive(socket) for _ in ready["d"]["guilds"]]
    await sharded.harness.clock.advance(5)
    async with _raw_gateway(standin) as socket:
        unsharded = await _identify(socket)
    async with _raw_gateway(standin) as socket:
        await socket.send_json({"op": 2, "d": {"token": TOKEN, "shard": [2, 2]}})
        invalid_shard = await _receive_close(socket)

    assert ready["t"] == "READY"
    assert ready["d"]["shard"] == [1, 2]
    assert {guild["unavailable"] for guild in ready["d"]["guilds"]} == {True}
    assert {int(guild["id"]) for guild in ready["d"]["guilds"]} == sharded.guild_ids(1)
    assert {c["t"] for c in creates} == {"GUILD_CREATE"}
    assert {int(c["d"]["id"]) for c in creates} == sharded.guild_ids(1)
    assert "shard" not in unsharded["d"]
    assert {int(guild["id"]) for guild in unsharded["d"]["guilds"]} == set(standin.guilds)
    assert invalid_shard == 4010
    assert [shard for _, shard in standin.identifies] == [1, None]


async def test_closing_with_1000_ends_the_session(harness: Harness) -> None:
    standin = harness.standin

    async with _raw_gateway(standin) as socket:
        ready = await _identify(socket)
        await _receive(socket)  # the GUILD_CREATE
        assert list(standin.gateway_sessions) == [None]
    await standin.wait_for(lambda: not standin.gateway_sessions)
    async with _raw_gateway(standin) as socket:
        resume = {"token": TOKEN, "session_id": ready["d"]["session_id"], "seq": 1}
        await socket.send_json({"op": 6, "d": resume})
        refused = await _receive(socket)

    assert refused == {"op": 9, "d": False}
    assert standin.resume_count == 0


async def test_two_identifies_in_one_bucket_within_five_seconds_are_refused(
    harness: Harness,
) -> None:
    standin = harness.standin
    start = harness.clock.monotonic()

    async with _raw_gateway(standin) as first, _raw_gateway(standin) as second:
        accepted = await _identify(first, [0, 2])
        await harness.clock.advance(4.9)
        refused = await _identify(second, [1, 2])
        await harness.clock.advance(0.1)
        async with _raw_gateway(standin) as third:
            later = await _identify(third, [1, 2])

    assert accepted["t"] == "READY"
    assert refused == {"op": 9, "d": False}
    assert later["t"] == "READY"
    assert standin.identifies == [(start, 0), (start + 4.9, 1), (start + 5.0, 1)]
    assert standin.identify_violations == [
        IdentifyViolation(at=start + 4.9, shard_id=1, bucket=0, previous_at=start)
    ]
    assert standin.identify_count == 2


async def test_max_concurrency_lets_each_bucket_identify_at_once(harness: Harness) -> None:
    standin = harness.standin
    standin.max_concurrency = 2

    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(_raw_gateway(standin)) for _ in range(3)]
        zero = await _identify(sockets[0], [0, 4])
        one = await _identify(sockets[1], [1, 4])
        two = await _identify(sockets[2], [2, 4])  # bucket 0 again, as shard 0

    assert (zero["t"], one["t"]) == ("READY", "READY")
    assert two == {"op": 9, "d": False}
    [violation] = standin.identify_violations
    assert (violation.shard_id, violation.bucket) == (2, 0)


async def test_identify_rate_limit_enforcement_can_be_relaxed_or_made_a_close(
    harness: Harness,
) -> None:
    standin = harness.standin
    standin.enforce_identify_rate_limit = False

    async with _raw_gateway(standin) as first, _raw_gateway(standin) as second:
        await _identify(first)
        allowed = await _identify(second)
    standin.enforce_identify_rate_limit = True
    standin.identify_violation_close_code = 4000
    async with _raw_gateway(standin) as third:
        await third.send_json({"op": 2, "d": {"token": TOKEN}})
        closed_with = await _receive_close(third)

    assert allowed["t"] == "READY"
    assert len(standin.identify_violations) == 2
    assert closed_with == 4000


async def test_two_clients_each_get_only_their_shard(sharded: Sharded) -> None:
    standin = sharded.standin
    standin.max_concurrency = 2
    zero, one = sharded.client(shard_id=0, shard_count=2), sharded.client(shard_id=1, shard_count=2)

    async with _running(zero, one):
        await _eventually(lambda: len(zero.guilds) + len(one.guilds) == len(standin.guilds))
        assert {guild.id for guild in zero.guilds} == sharded.guild_ids(0)
        assert {guild.id for guild in one.guilds} == sharded.guild_ids(1)
        assert sorted(standin.gateway_sessions, key=str) == [0, 1]
        assert standin.gateway_sessions[1].shard == (1, 2)

        answers = {}
        for shard_id in (0, 1):
            for guild in sharded.on_shard[shard_id]:
                record = await sharded.command_in(guild)
                assert record.original is not None
                answers[guild.id] = record.original.content

    assert standin.identify_violations == []
    assert zero.interaction_guilds == [guild.id for guild in sharded.on_shard[0]]
    assert one.interaction_guilds == [guild.id for guild in sharded.on_shard[1]]
    assert answers == {
        guild.id: f"answered on shard {shard_id}"
        for shard_id in (0, 1)
        for guild in sharded.on_shard[shard_id]
    }
    # discord.py's close() puts 4000 on the wire (its reader closes first), so Discord keeps
    # both sessions resumable.
    await standin.wait_for(lambda: not any(s.connected for s in standin.gateway_sessions.values()))
    assert sorted(standin.gateway_sessions) == [0, 1]


async def test_direct_message_events_go_to_shard_zero(sharded: Sharded) -> None:
    standin = sharded.standin
    standin.max_concurrency = 2
    zero, one = sharded.client(shard_id=0, shard_count=2), sharded.client(shard_id=1, shard_count=2)

    async with _running(zero, one):
        alice = await one.fetch_user(sharded.harness.alice.id)
        sent = await alice.send("from shard 1")
        await _eventually(lambda: any(m.id == sent.id for m in zero.messages_seen))
        # A later event on shard 1's own connection: had the DM gone there, it came first.
        channel = one.get_channel(sharded.on_shard[1][0].text_channel.id)
        assert isinstance(channel, discord.TextChannel)
        marker = await channel.send("marker")
        await _eventually(lambda: any(m.id == marker.id for m in one.messages_seen))

    assert [m.id for m in one.messages_seen] == [marker.id]
    assert zero.messages_seen[0].guild is None


async def test_auto_sharded_client_follows_gateway_bot(sharded: Sharded) -> None:
    standin = sharded.standin
    standin.recommended_shards = 2  # max_concurrency stays 1: shards start 5 s apart
    client = AutoShardClient(sharded.harness.clock)

    async with _running(client):
        await _eventually(lambda: len(client.guilds) == len(standin.guilds))
        records = [await sharded.command_in(sharded.on_shard[s][0]) for s in (0, 1)]
        assert [sharded.shards_sent(record) for record in records] == [[0], [1]]

    # AutoShardedClient closes its shards with 1000 (its readers are cancelled first), which
    # ends their sessions.
    await standin.wait_for(lambda: not standin.gateway_sessions)
    answers = [record.original for record in records]
    assert client.shard_count == 2
    assert [shard for _, shard in standin.identifies] == [0, 1]
    assert standin.identifies[1][0] - standin.identifies[0][0] == 5
    assert standin.identify_violations == []
    assert [answer.content for answer in answers if answer] == [
        "answered on shard 0",
        "answered on shard 1",
    ]


async def test_a_client_identifying_too_soon_is_refused_then_gets_in(sharded: Sharded) -> None:
    standin = sharded.standin  # max_concurrency 1: both shards share bucket 0
    zero, one = sharded.client(shard_id=0, shard_count=2), sharded.client(shard_id=1, shard_count=2)

    # Shard 1 identifies at once (as a separate process would), within 5 s of shard 0; Discord
    # answers Invalid Session, and discord.py identifies again after its 5-second wait.
    async with _running(zero), _running(one):
        record = await sharded.command_in(sharded.on_shard[1][0])

    [violation] = standin.identify_violations
    assert (violation.shard_id, violation.bucket) == (1, 0)
    assert [shard for _, shard in standin.identifies] == [0, 1, 1]
    assert standin.identify_count == 2
    assert record.original is not None
    assert record.original.content == "answered on shard 1"


async def test_dropping_one_shard_resumes_only_that_shard(sharded: Sharded) -> None:
    standin = sharded.standin
    standin.max_concurrency = 2
    zero, one = sharded.client(shard_id=0, shard_count=2), sharded.client(shard_id=1, shard_count=2)

    async with _running(zero, one):
        before = standin.gateway_sessions
        zero_socket = before[0].socket
        await standin.drop_gateway(shard_id=1)
        # Sent while shard 1 is down: dispatched once it has RESUMEd.
        record = await standin.send_command(
            sharded.on_shard[1][0],
            sharded.on_shard[1][0].text_channel,
            sharded.harness.alice,
            "where",
        )
        await standin.wait_for(lambda: standin.resume_count == 1)
        await standin.wait_until_acked(record)
        after = standin.gateway_sessions
        assert after[0].socket is zero_socket
        assert sharded.shards_sent(record) == [1]
        answered = await sharded.command_in(sharded.on_shard[0][0])

    assert standin.identify_count == 2
    assert after[1] is before[1]
    assert after[0] is before[0]
    assert one.interaction_guilds == [sharded.on_shard[1][0].id]
    assert zero.interaction_guilds == [sharded.on_shard[0][0].id]
    assert answered.original is not None
    assert answered.original.content == "answered on shard 0"


async def test_command_syncs_record_every_put(harness: Harness, bot: StandInBot) -> None:
    syncs = harness.standin.command_syncs

    assert [(sync.scope, set(sync.names)) for sync in syncs] == [
        (None, GLOBAL_COMMANDS),
        (harness.guild.id, {"grp"}),
    ]


# --- message commands and modals ------------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n fake image bytes"


async def test_a_message_command_gets_the_message_and_its_modal_submit_reaches_on_submit(
    harness: Harness, bot: StandInBot
) -> None:
    standin, observed = harness.standin, harness.observed
    picture = standin.make_attachment("cat.png", "image/png", PNG_BYTES, width=640, height=480)
    dog = {"url": "https://images.example/dog.png", "width": 800, "height": 600}
    posted = await standin.post_member_message(
        harness.guild.text_channel,
        harness.alice,
        "animate my cat",
        attachments=[picture],
        embeds=[{"image": dog, "thumbnail": dog}],
    )

    record = await standin.message_command(posted, "Animate Image", harness.alice)
    await standin.wait_until_acked(record)
    target = await harness.next_from(observed.targets)
    submit = await standin.submit_modal(record, {"prompt": "make it dance", "seconds": ["10"]})
    await standin.wait_until_acked(submit)
    submission = await harness.next_from(observed.submissions)

    synced = standin.command("Animate Image", command_type=COMMAND_MESSAGE)
    assert synced is not None
    assert (synced["type"], synced["description"], "options" in synced) == (3, "", False)
    data = record.payload["data"]
    assert (data["type"], data["target_id"], data["id"]) == (3, str(posted.id), synced["id"])
    assert record.target_message is posted
    assert (target.id, target.content) == (posted.id, posted.content)
    assert target.author.id == harness.alice.id
    [attachment] = target.attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "cat.png",
        "image/png",
        len(PNG_BYTES),
    )
    assert (attachment.width, attachment.height) == (640, 480)
    assert await attachment.read() == PNG_BYTES
    [embed] = target.embeds
    assert (embed.image.url, embed.image.width, embed.image.height) == (dog["url"], 800, 600)
    assert embed.thumbnail.proxy_url == dog["url"]

    assert record.response_type == 9
    modal = record.modal
    assert modal is not None
    assert modal["title"] == "Animate this image"
    prompt_label, seconds_label = modal["components"]
    assert (prompt_label["type"], prompt_label["label"]) == (18, "Prompt")
    assert prompt_label["component"]["type"] == 4
    assert seconds_label["component"]["type"] == 3

    assert submission == ("make it dance", ["10"])
    assert submit.opener is record
    assert submit.payload["data"] == {
        "custom_id": modal["custom_id"],
        "components": [
            {
                "type": 18,
                "id": 1,
                "component": {"type": 4, "id": 2, "custom_id": "prompt", "value": "make it dance"},
            },
            {
                "type": 18,
                "id": 3,
                "component": {"type": 3, "id": 4, "custom_id": "seconds", "values": ["10"]},
            },
        ],
    }
    assert "message" not in submit.payload
    assert (submit.payload["member"], submit.payload["locale"]) == (
        record.payload["member"],
        record.payload["locale"],
    )
    answer = submit.original
    assert answer is not None
    assert answer.ephemeral
    assert answer.content == "animating for 10 s: make it dance"
    assert answer.interaction_metadata is not None
    opened_by = answer.interaction_metadata["triggering_interaction_metadata"]
    assert (opened_by["id"], opened_by["target_message_id"]) == (str(record.id), str(posted.id))


async def test_a_member_message_reaches_the_bot_without_content_unless_it_mentions_it(
    harness: Harness, bot: StandInBot
) -> None:
    standin, alice = harness.standin, harness.alice
    channel = harness.guild.text_channel
    picture = standin.make_attachment("cat.png", "image/png", PNG_BYTES, width=1, height=1)

    def from_alice(message: discord.Message) -> bool:
        return message.author.id == alice.id

    seen = asyncio.create_task(
        bot.wait_for("message", check=from_alice, timeout=WAIT_LIMIT_SECONDS)
    )
    plain = await standin.post_member_message(channel, alice, "hello", attachments=[picture])
    without_content = await seen
    seen = asyncio.create_task(
        bot.wait_for("message", check=from_alice, timeout=WAIT_LIMIT_SECONDS)
    )
    mention = await standin.post_member_message(
        channel, alice, f"thanks {standin.bot_user.mention}"
    )
    with_content = await seen

    # StandInBot has the default intents: GUILD_MESSAGES, not MESSAGE_CONTENT.
    assert (without_content.id, without_content.content) == (plain.id, "")
    assert without_content.attachments == []
    assert (with_content.id, with_content.content) == (mention.id, mention.content)
    assert [m.id for m in standin.messages_in(channel.id)] == [plain.id, mention.id]
    with pytest.raises(ValueError, match="member"):
        await standin.post_member_message(channel, standin.bot_user, "not a member")
    with pytest.raises(ValueError, match="refuse"):
        await standin.post_member_message(channel, alice, "x" * 2001)


async def test_a_message_command_must_be_synced_as_one(harness: Harness, bot: StandInBot) -> None:
    posted = await harness.standin.post_member_message(
        harness.guild.text_channel, harness.alice, "hi"
    )

    with pytest.raises(ValueError, match="no message command"):
        await harness.standin.message_command(posted, "ping", harness.alice)


async def test_a_modal_submit_cannot_be_answered_with_a_modal_or_an_update(
    harness: Harness, bot: StandInBot
) -> None:
    standin = harness.standin
    record = await harness.command("feedback")

    with pytest.raises(ValueError, match="takes 2 to 4000 characters"):
        await standin.submit_modal(record, {"answer": "x"})
    with pytest.raises(ValueError, match="only the user"):
        await standin.submit_modal(record, {"answer": "fine"}, user=standin.add_user("bob"))
    submit = await standin.submit_modal(record, {"answer": "great bot"})
    await standin.wait_until_acked(submit)
    update_refused, modal_refused = harness.next_bot_error(), harness.next_bot_error()
    update_error, modal_error = await update_refused, await modal_refused

    assert record.modal is not None
    assert record.modal["components"] == [
        {
            "type": 1,
            "components": [
                {
                    "type": 4,
                    "style": 1,
                    "label": "Your feedback",
                    "custom_id": "answer",
                    "required": True,
                    "min_length": 2,
                }
            ],
        }
    ]
    assert await harness.next_from(harness.observed.submissions) == ("great bot", [])
    assert submit.payload["data"]["components"] == [
        {
            "type": 1,
            "id": 1,
            "components": [{"type": 4, "id": 2, "custom_id": "answer", "value": "great bot"}],
        }
    ]
    # Discord offers a modal only in answer to a command or a component, and an update only
    # when a component's message is at hand.
    assert (update_error.status, update_error.code) == (400, 50035)
    assert "In type: Invalid type" in update_error.text
    assert (modal_error.status, modal_error.code) == (400, 50035)
    assert "In type: Value must be one of {4, 5, 6, 7}." in modal_error.text
    assert submit.response_type == 4
    assert submit.modal is None
    assert submit.original is not None
    assert submit.original.content == "thanks"
    with pytest.raises(ValueError, match="already submitted"):
        await standin.submit_modal(record, {"answer": "once more"})


async def test_a_button_opens_a_modal_whose_submit_updates_the_message(
    harness: Harness, bot: StandInBot
) -> None:
    standin = harness.standin
    channel = bot.get_channel(harness.guild.text_channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("draft title", view=RenameView())
    message = standin.messages[sent.id]

    click = await standin.click_button(message, "rename", harness.alice)
    await standin.wait_until_acked(click)
    submit = await standin.submit_modal(click, {"text": "final title"})
    await standin.wait_until_acked(submit)

    assert click.response_type == 9
    assert click.modal is not None
    notice, label = click.modal["components"]
    assert notice == {"type": 10, "content": "The new text replaces the message's."}
    assert label["component"]["value"] == "draft title"
    assert submit.payload["message"]["id"] == str(sent.id)
    assert submit.payload["data"]["components"] == [
        {"type": 10, "id": 1},
        {
            "type": 18,
            "id": 2,
            "component": {"type": 4, "id": 3, "custom_id": "text", "value": "final title"},
        },
    ]
    assert submit.response_type == 7
    assert submit.original is message
    assert (message.content, message.components) == ("final title", [])


@pytest.mark.parametrize(
    ("kind", "refusal"),
    [
        ("long title", "In data.title: Must be between 1 and 45 in length."),
        ("six components", "In data.components: Must be between 1 and 5 in length."),
        ("value too long", "In data.components.0.component.value: Must be 10 or fewer in length."),
    ],
)
async def test_an_invalid_modal_is_refused(
    harness: Harness, bot: StandInBot, kind: str, refusal: str
) -> None:
    record = await harness.command("broken", {"kind": kind})
    error = await harness.next_bot_error()

    assert (error.status, error.code) == (400, 50035)
    assert refusal in error.text
    assert record.modal is None
    assert record.response_type == 4


async def test_command_sync_holds_commands_to_discords_naming_rules(
    harness: Harness, bot: StandInBot
) -> None:
    path = f"/applications/{harness.standin.application_id}/commands"
    context_menu = {"name": "Animate", "type": 3}

    described = await _rest(harness, "PUT", path, [context_menu | {"description": "Animates"}])
    with_options = await _rest(
        harness, "PUT", path, [context_menu | {"options": [{"name": "x", "type": 3}]}]
    )
    capitalised = await _rest(harness, "PUT", path, [{"name": "Ping", "description": "Pong"}])
    twice = await _rest(harness, "PUT", path, [context_menu, context_menu])
    status, accepted = await _rest(
        harness,
        "PUT",
        path,
        [
            context_menu | {"name_localizations": {"de": "Bild animieren"}},
            {"name": "animate", "description": "Same name, other type"},
        ],
    )

    for refused_status, refused in (described, with_options, capitalised, twice):
        assert (refused_status, refused["code"]) == (400, 50035)
    assert "description" in described[1]["errors"]["0"]
    assert "options" in with_options[1]["errors"]["0"]
    assert "1" in twice[1]["errors"]
    assert status == 200
    assert [(c["name"], c["type"], c["description"]) for c in accepted] == [
        ("Animate", 3, ""),
        ("animate", 1, "Same name, other type"),
    ]


# The modal rules on their own, without a bot in the way.


def _text_input_modal(**text_input: Any) -> dict[str, Any]:
    component = {"type": 4, "custom_id": "text", "style": 1} | text_input
    return {
        "custom_id": "m",
        "title": "T",
        "components": [{"type": 18, "label": "L", "component": component}],
    }


def test_modal_ids_are_filled_in_depth_first_around_the_ones_given() -> None:
    modal = {
        "components": [
            {"type": 10, "content": "read me"},
            {
                "type": 18,
                "id": 2,
                "label": "A",
                "component": {"type": 4, "custom_id": "a", "style": 1},
            },
            {"type": 1, "components": [{"type": 4, "custom_id": "b", "style": 1, "label": "B"}]},
        ]
    }

    submitted = modal_submission(modal, {"a": "x", "b": "y"})

    assert [(c["type"], c["id"]) for c in submitted] == [(10, 1), (18, 2), (1, 4)]
    assert submitted[1]["component"]["id"] == 3
    assert submitted[2]["components"][0]["id"] == 5


def test_modal_submission_checks_values_like_discords_client() -> None:
    select = {
        "type": 3,
        "custom_id": "pick",
        "min_values": 1,
        "max_values": 2,
        "options": [
            {"label": "A", "value": "a", "default": True},
            {"label": "B", "value": "b"},
            {"label": "C", "value": "c"},
        ],
    }
    modal = {
        "components": [
            {"type": 18, "label": "Pick", "component": select},
            {
                "type": 18,
                "label": "Note",
                "component": {"type": 4, "custom_id": "note", "style": 2, "required": False},
            },
        ]
    }

    def values(answers: dict[str, Any]) -> tuple[list[str], str]:
        pick, note = modal_submission(modal, answers)
        return pick["component"]["values"], note["component"]["value"]

    assert values({}) == (["a"], "")
    assert values({"pick": "c", "note": "hi"}) == (["c"], "hi")
    for wrong, rule in (
        ({"pick": ["a", "b", "c"]}, "takes 1 to 2 values"),
        ({"pick": []}, "takes 1 to 2 values"),
        ({"pick": ["d"]}, "offers"),
        ({"note": ["not", "text"]}, "takes a string"),
        ({"nope": "x"}, "no inputs"),
    ):
        with pytest.raises(ValueError, match=rule):
            modal_submission(modal, wrong)


@pytest.mark.parametrize(
    ("modal", "field"),
    [
        (_text_input_modal(style=3), "data.components.0.component.style"),
        (_text_input_modal(min_length=5, max_length=4), "data.components.0.component.min_length"),
        (_text_input_modal(max_length=4001), "data.components.0.component.max_length"),
        (_text_input_modal(placeholder="p" * 101), "data.components.0.component.placeholder"),
        (_text_input_modal(custom_id=""), "data.components.0.component.custom_id"),
        (
            {
                "custom_id": "m",
                "title": "T",
                "components": [{"type": 2, "label": "Go", "style": 1}],
            },
            "data.components.0.type",
        ),
        (
            {
                "custom_id": "m",
                "title": "T",
                "components": [
                    {"type": 1, "components": [{"type": 4, "custom_id": "a", "style": 1}]}
                ],
            },
            "data.components.0.components.0.label",
        ),
    ],
)
def test_modal_validation_names_the_offending_field(modal: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as refused:
        validate_modal(modal)

    assert ".".join(map(str, refused.value.path)) == field


def test_a_string_select_in_a_modal_follows_discords_rules() -> None:
    def select(**fields: Any) -> dict[str, Any]:
        options = [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]
        component = {"type": 3, "custom_id": "s", "options": options} | fields
        return {
            "custom_id": "m",
            "title": "T",
            "components": [{"type": 18, "label": "L", "component": component}],
        }

    validate_modal(select(min_values=0, required=False, disabled=False))
    for fields in (
        {"min_values": 0},  # a required select asks for at least one value
        {"disabled": True},
        {"min_values": 2, "max_values": 1},
        {"options": []},
        {"options": [{"label": "A", "value": "a"}, {"label": "A again", "value": "a"}]},
    ):
        with pytest.raises(InvalidField):
            validate_modal(select(**fields))
