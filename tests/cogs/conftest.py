"""End to end: the real discord.py client, our cogs and services, the loopback Discord stand-in
and the API simulator, all over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.app import Services
from bot.config import settings_from_mapping
from bot.db import Database
from bot.jobs import JobState
from bot.models import Job
from bot.simulator import Simulator, SimulatorConfig
from cogs.core.client import ImagineBot
from cogs.main import assembled, serve
from tests.support import ledger
from tests.support.discord_standin import (
    DEFAULT_MEMBER_PERMISSIONS,
    DiscordStandIn,
    Guild,
    InteractionRecord,
    Message,
    User,
)

WAIT = 20.0
# Discord's permission bits used here.
MANAGE_GUILD = 1 << 5
API_TOKEN = "test-api-key"


def is_result(message: Message) -> bool:
    return any(custom_id.startswith("imagine:delete:") for custom_id in message.custom_ids())


def texts(message: Message) -> str:
    parts = [message.content or ""]
    for embed in message.embeds:
        parts.append(embed.get("title", ""))
        parts.append(embed.get("description", ""))
        parts.extend(f"{field['name']} {field['value']}" for field in embed.get("fields", []))
    return "\n".join(parts)


@dataclass
class BotHarness:
    """One loopback world: Discord, the API, and the bot that can be stopped and restarted."""

    standin: DiscordStandIn
    simulator: Simulator
    guild: Guild
    alice: User
    bob: User
    admin: User
    database_url: str
    settings: dict[str, str] = field(default_factory=dict)
    services: Services | None = None
    bot: ImagineBot | None = None
    task: asyncio.Task[None] | None = None
    _app: contextlib.AsyncExitStack | None = None

    async def start(self, **overrides: str) -> ImagineBot:
        values = {
            "DISCORD_TOKEN": self.standin.token,
            "GROK_API_TOKEN": API_TOKEN,
            "GROK_API_BASE_URL": self.simulator.url,
            "DATABASE_URL": self.database_url,
            "DEFAULT_GUILD_CREDITS": "400",
            "POLL_EXPECTED_SECONDS": "0.3",
            "GROK_RATE_LIMIT_PER_MINUTE": "1000",
            **self.settings,
            **overrides,
        }
        self._app = contextlib.AsyncExitStack()
        app = await self._app.enter_async_context(
            assembled(settings_from_mapping(values), guild_ready_timeout=0.01)
        )
        self.bot, self.services = app.bot, app.services
        self.task = asyncio.create_task(serve(app, self.standin.token))
        async with asyncio.timeout(WAIT):
            await self.bot.wait_until_ready()
        return self.bot

    async def stop(self) -> None:
        # As a signal stops the real process: the poller stops, then the client closes.
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self._app is not None:
            await self._app.aclose()
        self.bot = self.task = self.services = self._app = None

    async def restart(self, **overrides: str) -> ImagineBot:
        await self.stop()
        return await self.start(**overrides)

    async def imagine(
        self,
        user: User | None = None,
        *,
        locale: str = "en-US",
        channel: Any = None,
        attachment_size_limit: int | None = None,
        **options: Any,
    ) -> InteractionRecord:
        record = await self.standin.send_command(
            self.guild,
            channel or self.guild.text_channel,
            user or self.alice,
            "imagine",
            options,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
        )
        await self.standin.wait_until_acked(record, limit=WAIT)
        return record

    async def budget(
        self,
        subcommand: str,
        user: User | None = None,
        *,
        locale: str = "en-US",
        member_permissions: int | None = None,
        **options: Any,
    ) -> InteractionRecord:
        record = await self.standin.send_command(
            self.guild,
            self.guild.text_channel,
            user or self.admin,
            "budget",
            options,
            subcommand=subcommand,
            locale=locale,
            member_permissions=member_permissions,
        )
        await self.standin.wait_until_acked(record, limit=WAIT)
        return record

    async def credits(
        self, user: User | None = None, *, locale: str = "en-US"
    ) -> InteractionRecord:
        record = await self.standin.send_command(
            self.guild, self.guild.text_channel, user or self.alice, "credits", locale=locale
        )
        await self.standin.wait_until_acked(record, limit=WAIT)
        return record

    @property
    def database(self) -> Database:
        assert self.services is not None
        return self.services.infrastructure.database

    async def jobs(self) -> list[Job]:
        assert self.services is not None
        async with self.database.transaction() as session:
            return list((await session.exec(select(Job).order_by(Job.created_at))).all())

    async def wait_for_job(self, predicate: Callable[[Job], bool]) -> Job:
        async def found() -> Job | None:
            return next((job for job in await self.jobs() if predicate(job)), None)

        async with asyncio.timeout(WAIT):
            # The database has no change notification; poll it, bounded by WAIT.
            while (job := await found()) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        return job

    async def wait_for_state(self, *states: JobState) -> Job:
        return await self.wait_for_job(lambda job: job.state in states)

    async def wait_for_message(self, predicate: Callable[[Message], bool]) -> Message:
        return await self.standin.wait_for_message(
            self.guild.text_channel.id, predicate, limit=WAIT
        )

    async def ledger_problems(self) -> list[str]:
        assert self.services is not None
        async with self.database.transaction() as session:
            return await ledger.ledger_problems(session)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[BotHarness]:
    standin = DiscordStandIn()
    simulator = Simulator(SimulatorConfig(min_seconds=0.2, max_seconds=0.4, seed=7))
    await simulator.start()
    alice = standin.add_user("alice")
    bob = standin.add_user("bob")
    admin = standin.add_user("admin", permissions=MANAGE_GUILD | DEFAULT_MEMBER_PERMISSIONS)
    guild = standin.add_guild("Test Server")
    await standin.start()
    harness = BotHarness(
        standin=standin,
        simulator=simulator,
        guild=guild,
        alice=alice,
        bob=bob,
        admin=admin,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
    )
    with standin.patch_discord_py():
        try:
            yield harness
        finally:
            if harness.services is not None:
                assert await harness.ledger_problems() == []
            await harness.stop()
            await standin.close()
            await simulator.close()
