"""Two real bot processes on one PostgreSQL database behave as one bot.

Each process runs one of two shards; the API key's rate budget lives in the database, so
together they stay within the plan; each job is sent once and posted once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import select

from bench.common import CountingSimulator
from bot.db import Database
from bot.jobs import JobState
from bot.models import Job
from bot.simulator import SimulatorConfig
from tests.cogs.conftest import is_result
from tests.support import ledger
from tests.support.bot_process import BotProcess
from tests.support.discord_standin import DiscordStandIn

pytestmark = pytest.mark.postgres

RATE_LIMIT = 60
JOBS = 40
SERVERS = 6
# 40 jobs need about 120 requests: two minutes at 60 a minute, and then some.
ALL_DELIVERED_WITHIN = 300.0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_processes_share_the_rate_budget_and_post_each_video_once(
    database_url: str,
) -> None:
    postgres_url = database_url  # several processes need PostgreSQL
    standin = DiscordStandIn(recommended_shards=2, max_concurrency=1)
    members = [standin.add_user(f"member{n}") for n in range(3)]
    guilds = [standin.add_guild(f"Server {n}", shard=(n % 2, 2)) for n in range(SERVERS)]
    await standin.start()
    simulator = CountingSimulator(
        SimulatorConfig(rate_limit_per_minute=RATE_LIMIT, min_seconds=2, max_seconds=4, seed=5)
    )
    await simulator.start()
    settings = {
        "DISCORD_TOKEN": standin.token,
        "GROK_API_TOKEN": "shared-key",
        "GROK_API_BASE_URL": simulator.url,
        "DATABASE_URL": postgres_url,
        "DEFAULT_GUILD_CREDITS": "4000",
        "POLL_EXPECTED_SECONDS": "3",
        "GROK_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
        "SHARD_COUNT": "2",
    }
    processes: list[BotProcess] = []
    database = Database.from_url(postgres_url)
    try:
        # Started at the same moment: one migrates while the other waits; identify turns.
        processes = list(
            await asyncio.gather(
                *(
                    BotProcess.start(
                        api_base=standin.api_base,
                        gateway=standin.gateway_url,
                        settings=settings | {"SHARD_IDS": str(shard)},
                    )
                    for shard in (0, 1)
                )
            )
        )
        assert standin.identify_violations == []
        assert len(standin.command_syncs) == 1  # only the process running shard 0 syncs

        records = []
        for n in range(JOBS):
            guild = guilds[n % SERVERS]
            record = await standin.send_command(
                guild, guild.text_channel, members[n % 3], "imagine", {"prompt": f"cat {n}"}
            )
            records.append(record)
        for record in records:
            await standin.wait_until_acked(record, limit=30)

        deadline = time.monotonic() + ALL_DELIVERED_WITHIN

        async def states() -> list[str]:
            async with database.transaction() as session:
                return [job.state for job in (await session.exec(select(Job))).all()]

        while (current := await states()).count(JobState.DELIVERED) < JOBS:
            assert time.monotonic() < deadline, f"not all delivered: {current}"
            await asyncio.sleep(0.5)

        await asyncio.sleep(1.0)  # anything that would wrongly post twice shows itself
        posted = [
            message
            for guild in guilds
            for message in standin.messages_in(guild.text_channel.id)
            if is_result(message)
        ]
        assert len(posted) == JOBS
        assert simulator.answers.get(429, 0) == 0
        assert simulator.count("POST", "/v1/generate") == JOBS
        async with database.transaction() as session:
            assert await ledger.ledger_problems(session) == []
    finally:
        for process in processes:
            await process.stop()
        await database.dispose()
        await simulator.close()
        await standin.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_killed_process_leaves_its_jobs_to_the_other(database_url: str) -> None:
    standin = DiscordStandIn(recommended_shards=2, max_concurrency=1)
    member = standin.add_user("member")
    guild = standin.add_guild("Server on shard 1", shard=(1, 2))
    await standin.start()
    simulator = CountingSimulator(
        SimulatorConfig(rate_limit_per_minute=1000, min_seconds=6, max_seconds=8, seed=3)
    )
    await simulator.start()
    settings = {
        "DISCORD_TOKEN": standin.token,
        "GROK_API_TOKEN": "shared-key",
        "GROK_API_BASE_URL": simulator.url,
        "DATABASE_URL": database_url,
        "DEFAULT_GUILD_CREDITS": "4000",
        "POLL_EXPECTED_SECONDS": "7",
        "GROK_RATE_LIMIT_PER_MINUTE": "1000",
        "SHARD_COUNT": "2",
    }
    database = Database.from_url(database_url)
    survivor: BotProcess | None = None
    try:
        survivor = await BotProcess.start(
            api_base=standin.api_base,
            gateway=standin.gateway_url,
            settings=settings | {"SHARD_IDS": "0"},
        )
        doomed = await BotProcess.start(
            api_base=standin.api_base,
            gateway=standin.gateway_url,
            settings=settings | {"SHARD_IDS": "1"},
        )
        records = [
            await standin.send_command(
                guild, guild.text_channel, member, "imagine", {"prompt": f"orphan {n}"}
            )
            for n in range(6)
        ]
        for record in records:
            await standin.wait_until_acked(record, limit=30)

        async def states() -> list[str]:
            async with database.transaction() as session:
                return [job.state for job in (await session.exec(select(Job))).all()]

        deadline = time.monotonic() + 60
        while (await states()).count(JobState.RUNNING) < len(records):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        await doomed.kill()  # SIGKILL: nothing of it runs on

        deadline = time.monotonic() + ALL_DELIVERED_WITHIN
        while (current := await states()).count(JobState.DELIVERED) < len(records):
            assert time.monotonic() < deadline, f"not all delivered: {current}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        posted = [m for m in standin.messages_in(guild.text_channel.id) if is_result(m)]
        assert len(posted) == len(records)
        assert simulator.count("POST", "/v1/generate") == len(records)
        async with database.transaction() as session:
            assert await ledger.ledger_problems(session) == []
    finally:
        if survivor is not None:
            await survivor.stop()
        await database.dispose()
        await simulator.close()
        await standin.close()
