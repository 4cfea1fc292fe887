"""/budget end to end: server managers set, top up and audit the budget; members never can."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot.budget import BudgetView, LedgerKind
from bot.jobs import JobState
from bot.models import GuildBudget, LedgerEntry
from tests.cogs.conftest import WAIT, BotHarness
from tests.support.discord_standin import (
    ADMINISTRATOR_PERMISSIONS,
    InteractionRecord,
    Message,
    User,
)

CALLBACK_CHANNEL_MESSAGE = 4
MANAGE_GUILD = 1 << 5
MANAGE_SERVER_REFUSAL = "You need the Manage Server permission for this."


# --- reading the bot's replies ------------------------------------------------------------------


async def reply_to(harness: BotHarness, record: InteractionRecord) -> Message:
    """The bot's answer: the first message of the interaction that is not a "thinking…" one."""
    return await harness.standin.wait_for(
        lambda: next((m for m in record.messages() if not m.loading and not m.deleted), None),
        limit=WAIT,
    )


async def private_embed(harness: BotHarness, record: InteractionRecord) -> dict[str, Any]:
    """The single embed of the reply, which only the member who asked can see."""
    reply = await reply_to(harness, record)
    assert reply.ephemeral
    assert reply.content == ""
    (embed,) = reply.embeds
    return embed


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed.get("fields", [])}


def footer(message: Message) -> str:
    return message.embeds[0].get("footer", {}).get("text", "")


def button(message: Message, label: str) -> dict[str, Any]:
    return next(
        component
        for row in message.components
        for component in row.get("components", [])
        if component.get("label") == label
    )


async def budget_reply(
    harness: BotHarness, subcommand: str, user: User | None = None, **options: Any
) -> dict[str, Any]:
    return await private_embed(harness, await harness.budget(subcommand, user, **options))


# --- reading the store ---------------------------------------------------------------------------


async def ledger(harness: BotHarness) -> list[LedgerEntry]:
    assert harness.services is not None
    async with harness.database.transaction() as session:
        entries = await session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))
        return list(entries.all())


async def budget_view(harness: BotHarness) -> BudgetView:
    assert harness.services is not None
    return await harness.services.budgets.view(harness.guild.id)


async def wait_until_all_delivered(harness: BotHarness, count: int) -> None:
    async def delivered() -> bool:
        return [job.state for job in await harness.jobs()] == [JobState.DELIVERED] * count

    async with asyncio.timeout(WAIT):
        # The database has no change notification; poll it, bounded by WAIT.
        while not await delivered():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# --- the tests -----------------------------------------------------------------------------------


async def test_budget_is_for_server_managers_and_credits_for_everyone(
    harness: BotHarness,
) -> None:
    await harness.start()
    command = harness.standin.command("budget")
    assert command is not None
    # Discord hides /budget from members; the bot still checks every call itself.
    assert command["default_member_permissions"] == str(MANAGE_GUILD)
    for_members = harness.standin.command("credits")
    assert for_members is not None
    assert for_members.get("default_member_permissions") is None
    assert for_members["name_localizations"]["de"] == "guthaben"
    assert for_members.get("options", []) == []
    subcommands = {option["name"]: option for option in command["options"]}
    assert set(subcommands) == {"show", "set", "add", "history", "usage", "alerts"}
    assert [option["name"] for option in subcommands["set"]["options"]] == [
        "credits",
        "period",
        "per_member",
    ]
    assert [option["name"] for option in subcommands["add"]["options"]] == ["credits"]
    assert subcommands["set"]["name_localizations"]["de"] == "festlegen"


async def test_an_admin_sets_the_budget_and_a_member_sees_it(harness: BotHarness) -> None:
    await harness.start()
    saved = await budget_reply(harness, "set", credits=800, period="weekly", per_member=200)
    view = await budget_view(harness)
    assert saved["description"] == (
        "Saved: the budget is now 800 credits (20 videos) per week, "
        f"counted from <t:{int(view.period_start.timestamp())}:f>."
    )
    assert fields(saved)["Budget"] == "800 credits (20 videos)"
    assert fields(saved)["Cap per member"] == "200 credits (5 videos)"

    mine = await private_embed(harness, await harness.credits(harness.alice))
    assert mine["title"] == "Credits for videos"
    assert fields(mine)["Left"] == "800 credits (20 videos)"
    assert fields(mine)["Your use"] == "0 of 200 credits (5 videos left)"
    assert fields(mine)["Your videos on the way"] == "None right now."

    shown = await budget_reply(harness, "show")
    assert shown["title"] == "Video budget"
    values = fields(shown)
    assert values["Left"] == "800 credits (20 videos)"
    assert values["Budget"] == "800 credits (20 videos)"
    assert values["Spent"] == "0 credits (0 videos)"
    assert values["In progress"] == "0 credits (0 videos)"
    assert values["Period"] == "weekly"
    view = await budget_view(harness)
    assert view.resets_at is not None
    assert values["Resets"] == f"<t:{int(view.resets_at.timestamp())}:R>"
    assert f"<@{harness.admin.id}>" in values["\u200b"]

    latest = (await ledger(harness))[-1]
    assert (latest.kind, latest.amount, latest.actor_id) == (
        LedgerKind.GRANT,
        800 - 400,
        harness.admin.id,
    )


async def test_a_member_cannot_change_or_audit_even_with_the_command_visible(
    harness: BotHarness,
) -> None:
    await harness.start()
    await budget_reply(harness, "show")
    before = await ledger(harness)
    for subcommand, options in (
        ("show", {}),
        ("set", {"credits": 100_000}),
        ("add", {"credits": 1000}),
        ("history", {}),
        ("usage", {}),
    ):
        record = await harness.budget(subcommand, harness.alice, **options)
        refused = await private_embed(harness, record)
        assert refused["description"] == MANAGE_SERVER_REFUSAL, subcommand
        assert record.response_type == CALLBACK_CHANNEL_MESSAGE  # no public "thinking…" first
    assert await ledger(harness) == before
    assert (await budget_view(harness)).remaining == 400


async def test_administrators_count_as_server_managers(harness: BotHarness) -> None:
    await harness.start()
    record = await harness.budget(
        "set", harness.alice, member_permissions=ADMINISTRATOR_PERMISSIONS, credits=200
    )
    assert (await private_embed(harness, record))["description"].startswith("Saved:")


async def test_an_owner_can_set_the_budget_where_they_have_no_permissions(
    harness: BotHarness,
) -> None:
    await harness.start(OWNER_IDS=str(harness.bob.id))
    saved = await budget_reply(harness, "set", harness.bob, credits=2000, period="monthly")
    assert saved["description"].startswith("Saved: the budget is now 2,000 credits")
    added = await budget_reply(harness, "add", harness.bob, credits=400)
    assert fields(added)["Left"] == "2,400 credits (60 videos)"
    changes = [entry for entry in await ledger(harness) if entry.actor_id is not None]
    assert [(entry.kind, entry.actor_id) for entry in changes] == [
        (LedgerKind.GRANT, harness.bob.id),
        (LedgerKind.ADJUST, harness.bob.id),
    ]


async def test_when_only_owners_may_raise_a_server_admin_can_only_lower(
    harness: BotHarness,
) -> None:
    await harness.start(BUDGET_ADMINS="owners", OWNER_IDS=str(harness.bob.id))
    await budget_reply(harness, "show")
    before = await ledger(harness)
    only_owners = "Only the bot's owners can raise this server's budget."
    assert (await budget_reply(harness, "set", credits=800))["description"] == only_owners
    assert (await budget_reply(harness, "add", credits=40))["description"] == only_owners
    assert await ledger(harness) == before

    lowered = await budget_reply(harness, "set", credits=200)
    assert fields(lowered)["Left"] == "200 credits (5 videos)"
    deducted = await budget_reply(harness, "add", credits=-40)
    assert fields(deducted)["Left"] == "160 credits (4 videos)"
    # The owner's new budget replaces this period's, the deduction folded in.
    raised = await budget_reply(harness, "set", harness.bob, credits=1000)
    assert fields(raised)["Left"] == "1,000 credits (25 videos)"


async def test_invalid_values_get_a_clear_reply_and_change_nothing(harness: BotHarness) -> None:
    await harness.start()
    await budget_reply(harness, "show")
    before = await ledger(harness)
    # Discord's own range and choice checks stop most of these; the bot must not rely on them.
    for subcommand, options, expected in (
        (
            "set",
            {"credits": 100, "per_member": 200},
            "The per-member cap can't be larger than the budget.",
        ),
        ("set", {"credits": -40}, "The budget can't be negative."),
        ("set", {"credits": 100, "per_member": -1}, "The budget can't be negative."),
        ("set", {"credits": 100, "period": "yearly"}, "Unknown period."),
        ("add", {"credits": 0}, "Add a number of credits other than zero."),
    ):
        refused = await budget_reply(harness, subcommand, **options)
        assert refused["description"] == expected, options
    assert await ledger(harness) == before
    view = await budget_view(harness)
    assert (view.limit, view.remaining, view.member_cap) == (400, 400, None)


async def test_a_deduction_below_what_is_reserved_is_refused(harness: BotHarness) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 5
    await harness.imagine(harness.alice, prompt="a slow cat")
    await harness.wait_for_state(JobState.RUNNING)
    shown = fields(await budget_reply(harness, "show"))
    assert shown["In progress"].startswith("40 credits")
    assert shown["Left"] == "360 credits (9 videos)"
    before = await ledger(harness)

    refused = await budget_reply(harness, "add", credits=-361)
    assert refused["description"] == (
        "That would leave less than what's already spent or in progress; "
        "at most 360 credits can be deducted now."
    )
    assert await ledger(harness) == before

    emptied = await budget_reply(harness, "add", credits=-360)
    assert fields(emptied)["Left"] == "0 credits (0 videos)"
    assert fields(emptied)["In progress"].startswith("40 credits")


async def test_history_pages_with_buttons_that_survive_a_restart(harness: BotHarness) -> None:
    await harness.start()
    for amount in range(1, 12):
        await budget_reply(harness, "add", credits=amount)
    assert len(await ledger(harness)) == 12  # the default budget and eleven top-ups

    record = await harness.budget("history")
    first = await reply_to(harness, record)
    assert first.ephemeral
    assert footer(first) == "Page 1 of 2"
    lines = first.embeds[0]["description"].splitlines()
    assert len(lines) == 10
    assert "**top-up** +11" in lines[0]  # newest first
    assert f"<@{harness.admin.id}>" in lines[0]
    assert button(first, "Previous")["disabled"] is True
    assert button(first, "Next").get("disabled") is not True

    async def click(label: str, user: User | None = None) -> InteractionRecord:
        clicked = await harness.standin.click_button(
            first, button(first, label)["custom_id"], user or harness.admin
        )
        return await harness.standin.wait_until_acked(clicked, limit=WAIT)

    refused = await click("Next", harness.alice)
    assert (await private_embed(harness, refused))["description"] == MANAGE_SERVER_REFUSAL
    assert footer(first) == "Page 1 of 2"

    await click("Next")
    await harness.standin.wait_for(lambda: footer(first) == "Page 2 of 2", limit=WAIT)
    lines = first.embeds[0]["description"].splitlines()
    assert len(lines) == 2
    assert "**budget set** +400 · automatic" in lines[-1]
    assert button(first, "Next")["disabled"] is True

    await harness.restart()
    await click("Previous")
    await harness.standin.wait_for(lambda: footer(first) == "Page 1 of 2", limit=WAIT)
    assert "**top-up** +11" in first.embeds[0]["description"].splitlines()[0]


async def test_usage_lists_members_by_spend_top_first(harness: BotHarness) -> None:
    await harness.start()
    for member, prompt in (
        (harness.bob, "one"),
        (harness.alice, "two"),
        (harness.bob, "three"),
        (harness.alice, "four"),
        (harness.alice, "five"),
    ):
        await harness.imagine(member, prompt=prompt)
    await wait_until_all_delivered(harness, 5)

    record = await harness.budget("usage")
    reply = await reply_to(harness, record)
    assert reply.ephemeral
    (usage,) = reply.embeds
    assert usage["title"] == "Spend by member this period"
    assert usage["description"].splitlines()[:2] == [
        f"1. <@{harness.alice.id}>: 120 credits (3 videos)",
        f"2. <@{harness.bob.id}>: 80 credits (2 videos)",
    ]
    # The chart, with its numbers in words for screen readers, and as the picture's alt text.
    assert "200 of 400 credits spent so far" in usage["description"]
    assert usage["image"]["url"].endswith("usage.png")
    (chart,) = reply.attachments
    assert chart.filename == "usage.png"
    assert chart.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert chart.description is not None
    assert chart.description.startswith("Chart: credits spent per day")


async def test_usage_without_spend_says_so_in_words_and_draws_nothing(
    harness: BotHarness,
) -> None:
    await harness.start()
    record = await harness.budget("usage")
    reply = await reply_to(harness, record)
    (usage,) = reply.embeds
    assert usage["description"] == "No one has used the budget in this period yet."
    assert reply.attachments == []


async def test_a_new_period_resets_spent_but_keeps_the_ledger(harness: BotHarness) -> None:
    await harness.start()
    await budget_reply(harness, "set", credits=400, period="daily")
    await harness.imagine(harness.alice, prompt="yesterday's cat")
    await wait_until_all_delivered(harness, 1)
    before = fields(await budget_reply(harness, "show"))
    assert before["Spent"].startswith("40 credits")
    assert before["Left"] == "360 credits (9 videos)"
    entries_before = await ledger(harness)

    # A day passing, as the store sees it: the current period began a day earlier.
    assert harness.services is not None
    async with harness.database.transaction() as session:
        budget = (await session.exec(select(GuildBudget))).one()
        budget.period_start -= timedelta(days=1)
        session.add(budget)

    after = fields(await budget_reply(harness, "show"))
    assert after["Spent"] == "0 credits (0 videos)"
    assert after["Left"] == "400 credits (10 videos)"
    entries_after = await ledger(harness)
    assert entries_after[: len(entries_before)] == entries_before
    (rollover,) = entries_after[len(entries_before) :]
    assert (rollover.kind, rollover.amount) == (LedgerKind.ROLLOVER, 40)

    history = (await budget_reply(harness, "history"))["description"].splitlines()
    assert "**new period** +40 · automatic" in history[0]
    (job,) = await harness.jobs()
    reserved = next(line for line in history if "**reserved**" in line)
    assert f"-40 · <@{harness.alice.id}> · job `{job.id[:8]}`" in reserved


async def test_show_speaks_german(harness: BotHarness) -> None:
    await harness.start()
    shown = await budget_reply(harness, "show", locale="de")
    assert shown["title"] == "Video-Budget"
    values = fields(shown)
    assert values["Übrig"] == "400 Credits (10 Videos)"
    assert values["Verbraucht"] == "0 Credits (0 Videos)"
    assert values["In Arbeit"] == "0 Credits (0 Videos)"
    assert values["Zeitraum"] == "kein Zurücksetzen"
    assert values["Wird zurückgesetzt"] == "nie"
    assert values["Dein Verbrauch"] == "0 Credits (0 Videos), keine persönliche Grenze"


async def test_set_replaces_the_budget_a_top_up_included(harness: BotHarness) -> None:
    await harness.start(OWNER_IDS=str(harness.bob.id))
    await budget_reply(harness, "set", credits=200, period="weekly", per_member=80)
    await budget_reply(harness, "add", credits=40)
    saved = await budget_reply(harness, "set", harness.bob, credits=400)
    assert saved["description"].startswith(
        "Saved: the budget is now 400 credits (10 videos) per week, counted from <t:"
    )
    assert fields(saved)["Budget"] == "400 credits (10 videos)"
    assert fields(saved)["Left"] == "400 credits (10 videos)"
    view = await budget_view(harness)
    assert (view.limit, view.bonus, view.member_cap) == (400, 0, 80)
    # The ledger keeps both: the top-up and the new budget that folded it in.
    kinds = [entry.kind for entry in await ledger(harness)]
    assert kinds[-2:] == [LedgerKind.ADJUST, LedgerKind.GRANT]


async def test_set_changes_the_cap_or_period_without_restating_credits(
    harness: BotHarness,
) -> None:
    await harness.start()
    await budget_reply(harness, "set", credits=800)
    capped = await budget_reply(harness, "set", per_member=120)
    assert fields(capped)["Budget"] == "800 credits (20 videos)"
    assert fields(capped)["Cap per member"] == "120 credits (3 videos)"
    weekly = await budget_reply(harness, "set", period="weekly")
    assert fields(weekly)["Budget"] == "800 credits (20 videos)"
    assert fields(weekly)["Period"] == "weekly"
    assert "per week" in weekly["description"]
    nothing = await budget_reply(harness, "set")
    assert nothing["description"] == "Say what to change: credits, period or per_member."
