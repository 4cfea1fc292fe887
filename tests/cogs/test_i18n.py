"""German and English end to end: the synced commands, every kind of reply, and the fallbacks."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.i18n import Messages
from bot.jobs import JobState
from bot.models import Job
from bot.service import FailureReason
from cogs.imagine.render import failure_embed
from tests.cogs.conftest import WAIT, BotHarness, is_result, texts
from tests.support.discord_standin import Guild, InteractionRecord, Message, User

# Discord's limits for localized command and option names, descriptions and choice names.
MAX_NAME = 32
MAX_DESCRIPTION = 100
MAX_CHOICE_NAME = 100
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2


@pytest.fixture(scope="module")
def messages() -> Messages:
    return Messages.load()


def everything(message: Message) -> str:
    """Content, embeds (footers too) and button labels: all a member can read in a message."""
    parts = [texts(message)]
    parts.extend(embed.get("footer", {}).get("text", "") for embed in message.embeds)
    parts.extend(button_labels(message))
    return "\n".join(parts)


def button_labels(message: Message) -> list[str]:
    return [
        component["label"]
        for row in message.components
        for component in row.get("components", [])
        if "label" in component
    ]


def progress_seen(record: InteractionRecord) -> str:
    """Every embed the deferred response showed over time, oldest first."""
    parts = []
    for edit in record.original.edits if record.original else []:
        for embed in edit.get("embeds") or []:
            parts.append(embed.get("title", ""))
            parts.append(embed.get("description", ""))
            parts.extend(f"{f['name']} {f['value']}" for f in embed.get("fields", []))
            parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(parts)


async def private_reply(harness: BotHarness, record: InteractionRecord) -> str:
    reply = await harness.standin.wait_for(
        lambda: next((m for m in record.messages() if m.ephemeral and not m.loading), None),
        limit=WAIT,
    )
    return everything(reply)


# --- the synced commands -----------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    """Discord: ``^[-_\\p{L}\\p{N}]{1,32}$``, and no upper case where the script has one."""
    allowed = all(
        character in "-_" or unicodedata.category(character)[0] in "LN" for character in name
    )
    return 1 <= len(name) <= MAX_NAME and allowed and name == name.lower()


def localized_nodes(command: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The command, then every option and subcommand below it, each with its path."""
    yield command["name"], command
    stack = [(command["name"], option) for option in command.get("options", [])]
    while stack:
        path, option = stack.pop()
        here = f"{path} {option['name']}"
        yield here, option
        if option["type"] in {OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP}:
            stack.extend((here, child) for child in option.get("options", []))


@pytest.mark.parametrize("command_name", ["imagine", "budget"])
async def test_synced_commands_carry_german_for_every_name_description_and_choice(
    harness: BotHarness, command_name: str
) -> None:
    await harness.start()
    command = harness.standin.command(command_name)
    assert command is not None, harness.standin.commands_synced
    nodes = list(localized_nodes(command))
    assert len(nodes) > 2  # options and subcommands were really walked
    choices = 0
    for path, node in nodes:
        names = node.get("name_localizations") or {}
        descriptions = node.get("description_localizations") or {}
        assert set(names) == {"de"}, path
        assert set(descriptions) == {"de"}, path
        assert is_valid_name(names["de"]), (path, names["de"])
        assert 1 <= len(descriptions["de"]) <= MAX_DESCRIPTION, path
        assert descriptions["de"] != node["description"], (path, "description not translated")
        for choice in node.get("choices", []):
            choices += 1
            german = (choice.get("name_localizations") or {}).get("de")
            assert german, (path, choice)
            assert 1 <= len(german) <= MAX_CHOICE_NAME
        siblings = [option["name_localizations"]["de"] for option in node.get("options", [])]
        assert len(set(siblings)) == len(siblings), (path, siblings)
    assert choices >= 4  # /imagine: ratios and modes; /budget set: periods


async def test_german_command_names_come_from_the_catalog(
    harness: BotHarness, messages: Messages
) -> None:
    await harness.start()
    imagine = harness.standin.command("imagine")
    assert imagine is not None
    assert imagine["name_localizations"]["de"] == messages.template("de", "cmd.imagine.name")
    prompt = next(option for option in imagine["options"] if option["name"] == "prompt")
    assert prompt["description_localizations"]["de"] == "Was im Video zu sehen sein soll"
    mode = next(option for option in imagine["options"] if option["name"] == "mode")
    spicy = next(choice for choice in mode["choices"] if choice["value"] == "spicy")
    assert spicy["name_localizations"]["de"] == messages.template("de", "cmd.choice.mode_spicy")


# --- a German member ---------------------------------------------------------------------


async def test_german_member_sees_progress_and_result_in_german(harness: BotHarness) -> None:
    await harness.start()
    record = await harness.imagine(locale="de", prompt="eine Katze beim Surfen", mode="fun")
    result = await harness.wait_for_message(is_result)
    await harness.wait_for_state(JobState.DELIVERED)

    progress = progress_seen(record)
    assert "🎬 Dein Video entsteht…" in progress
    assert "Wird an GrokImagine geschickt…" in progress
    assert "Modus lustig" in progress
    assert "40 Credits reserviert" in progress
    assert "Making your video" not in progress
    assert record.original is not None
    assert "✅ Fertig! Dein Video findest du unten." in texts(record.original)

    shown = everything(result)
    assert result.content == f"<@{harness.alice.id}>, dein Video ist fertig!"
    assert "🎬 Dein Video" in shown
    assert "Format 16:9" in shown
    assert "40 Credits · lustig · 16:9" in shown
    assert button_labels(result) == ["Noch mal", "Abwandeln", "Löschen"]
    assert "ready" not in shown
    assert "Reroll" not in shown


async def test_german_refusal_of_an_empty_budget(harness: BotHarness, messages: Messages) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="0")
    record = await harness.imagine(locale="de", prompt="eine Katze")
    shown = await private_reply(harness, record)
    expected = messages.text(
        "de", "budget.refused.guild", remaining=0, videos=messages.videos("de", 0), cost=40
    )
    assert expected in shown
    assert messages.text("de", "budget.refused.ask_admin") in shown
    assert (
        messages.text(
            "en", "budget.refused.guild", remaining=0, videos=messages.videos("en", 0), cost=40
        )
        not in shown
    )
    assert harness.simulator.count("POST", "/v1/generate") == 0


async def test_german_refusal_groups_large_numbers_the_german_way(
    harness: BotHarness, messages: Messages
) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="1030", CREDITS_PER_VIDEO="2000")
    record = await harness.imagine(locale="de", prompt="eine Katze")
    shown = await private_reply(harness, record)
    assert "1.030" in shown
    assert "2.000" in shown
    assert "1,030" not in shown
    expected = messages.text(
        "de", "budget.refused.guild", remaining=1030, videos=messages.videos("de", 0), cost=2000
    )
    assert expected in shown


async def test_english_refusal_groups_large_numbers_the_english_way(harness: BotHarness) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="1030", CREDITS_PER_VIDEO="2000")
    record = await harness.imagine(locale="en-GB", prompt="a cat")
    shown = await private_reply(harness, record)
    assert "1,030 credits left" in shown
    assert "costs 2,000" in shown


@pytest.mark.parametrize(
    ("marker", "key"),
    [
        ("[fail:unsupported]", "imagine.failed.unsupported"),
        ("[fail:inappropriate]", "imagine.failed.inappropriate"),
        ("[fail:build]", "imagine.failed.build"),
        ("[fail:network]", "imagine.failed.network"),
    ],
)
async def test_german_explanation_of_every_documented_api_failure(
    harness: BotHarness, messages: Messages, marker: str, key: str
) -> None:
    await harness.start()
    record = await harness.imagine(locale="de", prompt=f"{marker} eine Katze")
    job = await harness.wait_for_state(JobState.FAILED)
    title = messages.text("de", "imagine.failed.title")
    await harness.standin.wait_for(
        lambda: record.original and title in texts(record.original), limit=WAIT
    )
    shown = texts(record.original)
    assert messages.text("de", key) in shown
    assert "Die 40 reservierten Credits sind wieder im Budget des Servers." in shown
    assert f"Auftrags-ID für den Support: `{job.task_id}`" in shown
    assert job.error_text is not None
    assert job.error_text not in shown  # the API's English text is explained, not echoed


async def test_german_inappropriate_content_reads_naturally(harness: BotHarness) -> None:
    await harness.start()
    record = await harness.imagine(locale="de-AT", prompt="[fail:inappropriate] etwas Freches")
    await harness.wait_for_state(JobState.FAILED)
    await harness.standin.wait_for(
        lambda: record.original and "Diesmal kein Video" in texts(record.original), limit=WAIT
    )
    shown = texts(record.original)
    assert "GrokImagine hat deinen Prompt als unangemessen eingestuft." in shown
    assert "Versuch es bitte mit einem anderen." in shown
    assert "Inappropriate" not in shown


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prompt": "   "}, "Dein Prompt ist leer."),
        ({"prompt": "x" * 2001}, "Dein Prompt hat 2.001 Zeichen, erlaubt sind höchstens 2.000."),
        ({"prompt": "a", "mode": "spicy"}, "Den pikanten Modus gibt es nur in Kanälen ab 18."),
    ],
)
async def test_german_refusal_of_bad_input(
    harness: BotHarness, options: dict[str, str], expected: str
) -> None:
    await harness.start()
    record = await harness.imagine(locale="de", **options)
    shown = await private_reply(harness, record)
    assert expected in shown
    assert await harness.jobs() == []


async def test_german_refusal_of_a_large_image_names_its_size(harness: BotHarness) -> None:
    await harness.start(MAX_IMAGE_BYTES=str(1024 * 1024))
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024)
    image = harness.standin.make_attachment("katze.png", "image/png", png)
    record = await harness.imagine(locale="de", prompt="eine Katze", image=image)
    shown = await private_reply(harness, record)
    assert "„katze.png“ ist größer als 1 MB." in shown


async def test_german_refusal_of_someone_elses_delete_button(harness: BotHarness) -> None:
    await harness.start()
    await harness.imagine(prompt="mine")
    result = await harness.wait_for_message(is_result)
    delete_id = next(c for c in result.custom_ids() if c.startswith("imagine:delete:"))
    click = await harness.standin.click_button(result, delete_id, harness.bob, locale="de")
    await harness.standin.wait_until_acked(click, limit=WAIT)
    assert click.original is not None
    assert "Nur wer das Video angefragt hat" in everything(click.original)
    assert not result.deleted


async def test_german_budget_view(harness: BotHarness, messages: Messages) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="12000")
    record = await harness.budget("show", locale="de")
    shown = await private_reply(harness, record)
    assert messages.text("de", "budget.view.title") in shown
    assert "12.000" in shown
    assert "12,000" not in shown


async def test_german_credits(harness: BotHarness, messages: Messages) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="12000")
    record = await harness.credits(harness.alice, locale="de")
    shown = await private_reply(harness, record)
    assert messages.text("de", "credits.title") in shown
    assert "12.000" in shown
    assert "12,000" not in shown


# --- fallbacks ---------------------------------------------------------------------------


async def empty_prompt_in(harness: BotHarness, guild: Guild, user: User, locale: str) -> str:
    record = await harness.standin.send_command(
        guild, guild.text_channel, user, "imagine", {"prompt": " "}, locale=locale
    )
    await harness.standin.wait_until_acked(record, limit=WAIT)
    return await private_reply(harness, record)


async def test_a_member_language_we_lack_falls_back_to_the_server_then_english(
    harness: BotHarness, messages: Messages
) -> None:
    german_server = harness.standin.add_guild("Deutscher Server", locale="de")
    await harness.start()
    german = messages.text("de", "imagine.error.empty_prompt")
    english = messages.text("en", "imagine.error.empty_prompt")

    assert german in await empty_prompt_in(harness, german_server, harness.alice, "fr")
    assert english in await empty_prompt_in(harness, harness.guild, harness.alice, "fr")
    # The member's own language wins over the server's.
    assert english in await empty_prompt_in(harness, german_server, harness.alice, "en-US")


async def test_a_job_from_a_german_server_is_delivered_in_german(harness: BotHarness) -> None:
    german_server = harness.standin.add_guild("Deutscher Server", locale="de")
    await harness.start()
    channel = german_server.text_channel
    await harness.standin.send_command(
        german_server, channel, harness.alice, "imagine", {"prompt": "ein Hund"}, locale="fr"
    )
    result = await harness.standin.wait_for_message(channel.id, is_result, limit=WAIT)
    assert "dein Video ist fertig!" in result.content
    job = await harness.wait_for_state(JobState.DELIVERED)
    assert job.locale == "de"


# --- later messages use the language stored with the job ---------------------------------


async def test_the_poller_delivers_in_the_language_stored_with_the_job(
    harness: BotHarness,
) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 1.0
    record = await harness.imagine(locale="de", prompt="überlebt den Neustart")
    await harness.wait_for_state(JobState.RUNNING)
    # From here on nothing is German: a new process, no interaction to answer, an English server.
    harness.standin.expire_interaction(record)
    await harness.restart()
    result = await harness.wait_for_message(is_result)
    assert result.origin == "channel"
    assert result.content == f"<@{harness.alice.id}>, dein Video ist fertig!"
    assert button_labels(result) == ["Noch mal", "Abwandeln", "Löschen"]
    assert "40 Credits · normal · 16:9" in everything(result)


async def test_a_failure_after_a_restart_is_explained_in_the_stored_language(
    harness: BotHarness,
) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 1.0
    record = await harness.imagine(locale="de", prompt="[fail:build] zerbricht")
    await harness.wait_for_state(JobState.RUNNING)
    # A new process knows the job only from the database.
    await harness.restart()
    await harness.wait_for_state(JobState.FAILED)
    await harness.standin.wait_for(
        lambda: record.original and "Diesmal kein Video" in texts(record.original), limit=WAIT
    )
    assert "GrokImagine konnte das Video nicht fertigstellen." in texts(record.original)


# --- every failure reason has a German text ----------------------------------------------


def job_for_failure(reason: FailureReason) -> Job:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return Job(
        id="0" * 32,
        guild_id=1,
        channel_id=2,
        member_id=3,
        locale="de",
        prompt="eine Katze",
        mode="normal",
        ratio="16:9",
        upload_limit_bytes=8 * 1024 * 1024,
        idempotency_key="key",
        state=JobState.FAILED,
        cost=40,
        task_id="task_1",
        error_text="Something unexpected" if reason is FailureReason.GENERATION_FAILED else None,
        created_at=now,
        updated_at=now,
    )


@pytest.mark.parametrize("reason", list(FailureReason))
def test_every_failure_reason_is_explained_in_german(
    messages: Messages, reason: FailureReason
) -> None:
    job = job_for_failure(reason)
    german = failure_embed(messages, "de", job, reason, 40, timeout_minutes=30)
    english = failure_embed(messages, "en", job, reason, 40, timeout_minutes=30)
    assert german.title == "😕 Diesmal kein Video"
    assert german.description is not None
    assert german.description != english.description
    assert "Die 40 reservierten Credits" in german.description
