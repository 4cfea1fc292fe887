"""What every benchmark shares: statistics, machine facts, results files and the loopback world.

The loopback world is the tests' own: the Discord stand-in from ``tests.support`` and the API
simulator from ``bot.simulator``, both on 127.0.0.1, with the real discord.py client in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from discord.ext import commands

from bot.app import Services, build_services, open_infrastructure
from bot.clock import SystemClock
from bot.config import Settings, settings_from_mapping
from bot.i18n import Messages
from bot.models import Job
from bot.schedule import PollSchedule
from bot.service import Delivery, FailureReason, Progress
from bot.simulator import Simulator, SimulatorConfig
from cogs.main import App, assembled, serve
from tests.support.discord_standin import DiscordStandIn, Guild, InteractionRecord, User

RESULTS_DIR = Path(__file__).parent / "results"
API_TOKEN = "bench-api-key"
READY_TIMEOUT = 60.0
# The poller names the task that steps a job ``imagine-job-<job id>`` (see ``Poller.tick``).
POLLER_STEP_PREFIX = "imagine-job-"

# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0…100), interpolating linearly between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Count, mean, p50, p95, p99 and max of a sample."""
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


# --- the machine and the results ----------------------------------------------------------------


def _proc_field(path: str, name: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare figures: CPUs, memory, Python, date."""
    memory_kib = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "nproc": os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "ram_gib": round(int(memory_kib.split()[0]) / 1024**2, 1) if memory_kib else None,
        "python": platform.python_version(),
        "system": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, figures: Mapping[str, Any], *, module: str | None = None) -> Path:
    """Write ``bench/results/<name>.json``: the command, the machine and the figures.

    ``module`` is the benchmark's module when the file is not named after it
    (``saturation-processes`` is written by ``bench.saturation``).
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    command = shlex.join(
        [Path(sys.executable).name, "-m", f"bench.{module or name}", *sys.argv[1:]]
    )
    payload = {"benchmark": name, "command": command, "machine": machine_info(), **figures}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a process now and at its peak (VmRSS and VmHWM), in bytes."""

    rss: int
    peak: int


def memory_of(pid: int | str = "self") -> Memory:
    """Read a Linux process's resident set size and its high-water mark from /proc."""

    def kib(name: str) -> int:
        value = _proc_field(f"/proc/{pid}/status", name)
        if value is None:
            raise RuntimeError(f"/proc/{pid}/status has no {name}")
        return int(value.split()[0]) * 1024

    return Memory(rss=kib("VmRSS"), peak=kib("VmHWM"))


def mib(size: float) -> float:
    return round(size / 1024**2, 1)


def quiet_logging() -> None:
    # Per-job INFO lines would cost the event loop more than some of the work being measured.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")


# --- time -------------------------------------------------------------------------------------


class AnchoredClock(SystemClock):
    """The system clock, with wall time derived from the monotonic clock.

    The stand-in stamps messages with ``now()``; with this clock such a stamp converts back to
    the exact ``time.monotonic()`` moment, comparable with the simulator's completion times.
    """

    def __init__(self) -> None:
        self._monotonic_anchor = time.monotonic()
        self._wall_anchor = datetime.now(UTC)

    def now(self) -> datetime:
        return self._wall_anchor + timedelta(seconds=time.monotonic() - self._monotonic_anchor)

    def to_monotonic(self, moment: datetime) -> float:
        return self._monotonic_anchor + (moment - self._wall_anchor).total_seconds()


# --- the loopback world -------------------------------------------------------------------------


class CountingSimulator(Simulator):
    """The API simulator, also counting the HTTP status of every ``/v1`` answer it gives."""

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self.answers: Counter[int] = Counter()

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def count_answers(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            response = await handler(request)
            if request.path.startswith("/v1/"):
                self.answers[response.status] += 1
            return response

        app.middlewares.insert(0, count_answers)  # outermost: sees the final status
        return app


@dataclass
class RunningClient:
    """A discord.py client connected to the stand-in."""

    client: commands.Bot
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.client.close()
        await asyncio.gather(self.task, return_exceptions=True)


async def connect(client: commands.Bot, token: str) -> RunningClient:
    """Log ``client`` in, open its gateway connection and wait until it is ready."""
    await client.login(token)
    task = asyncio.create_task(client.connect())
    async with asyncio.timeout(READY_TIMEOUT):
        await client.wait_until_ready()
    return RunningClient(client, task)


@contextlib.asynccontextmanager
async def imagine_bot(
    settings: Settings, *, planner: PollSchedule | None = None, **client_options: Any
) -> AsyncIterator[App]:
    """imagine-bot itself, assembled as in production, logged in, connected and ready.

    ``planner`` replaces the learned poll schedule before any job exists (benchmarks compare
    fixed intervals with it). On the way out the poller stops, then the gateway connection
    ends, and everything assembled is closed.
    """
    client_options.setdefault("guild_ready_timeout", 0.01)
    async with assembled(settings, **client_options) as app:
        if planner is not None:
            # The service plans each job's polls with it; the poller reads it on every refresh.
            app.services.imagine.planner = planner
        task = asyncio.create_task(serve(app, settings.discord_token.get_secret_value()))
        try:
            ready = asyncio.create_task(app.bot.wait_until_ready())
            done, _ = await asyncio.wait(
                {ready, task}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()  # raises what ended the session (a refused login…)
                    raise RuntimeError("the bot's gateway session ended before it was ready")
                raise TimeoutError(f"the bot was not ready within {READY_TIMEOUT} s")
            yield app
        finally:
            # The poller first, as before the app was reshaped: ``serve`` stops it only once
            # the connection has ended, and by then a step still delivering a video would fail
            # on discord.py's closed HTTP session (and log that as a failed delivery).
            await app.services.poller.stop()
            await app.bot.close()
            await asyncio.gather(task, return_exceptions=True)


class NullNotifier:
    """A Discord side that shows nothing, for benchmarks of the domain alone."""

    async def job_progress(self, job: Job, progress: Progress) -> None:
        return None

    async def deliver(self, job: Job) -> Delivery:
        return Delivery(message_id=None)

    async def job_failed(self, job: Job, reason: FailureReason, refunded: int) -> None:
        return None


@contextlib.asynccontextmanager
async def headless_services(settings: Settings) -> AsyncIterator[Services]:
    """The domain's services without Discord (nothing is ever shown); all closed on the way out.

    The poller is built but not started.
    """
    infrastructure = await open_infrastructure(settings, messages=Messages.load(), alert_sink=None)
    try:
        services = await build_services(infrastructure, NullNotifier())
        try:
            yield services
        finally:
            await services.poller.stop()
    finally:
        await infrastructure.close()


def poller_steps() -> list[asyncio.Task[Any]]:
    """The poller's unfinished job steps in the running loop (one poller per loop, as here)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(POLLER_STEP_PREFIX) and not task.done()
    ]


async def wait_for_poller_steps() -> None:
    """Wait until every job step the poller has started so far has finished.

    ``Poller.tick`` starts one task per claimed job and returns; they are found by the name the
    poller gives them, so this needs nothing of the poller but that. Their errors are the
    poller's (it logs them).
    """
    while steps := poller_steps():
        await asyncio.gather(*steps, return_exceptions=True)


@dataclass
class Loopback:
    """A running stand-in (with servers and members) and simulator, discord.py pointed at them."""

    standin: DiscordStandIn
    simulator: CountingSimulator
    clock: AnchoredClock
    guilds: list[Guild]
    members: list[User]
    folder: Path

    def settings(self, **overrides: str) -> Settings:
        """The bot's settings for this world: SQLite in ``folder``, the simulator as the API."""
        values = {
            "DISCORD_TOKEN": self.standin.token,
            "GROK_API_TOKEN": API_TOKEN,
            "GROK_API_BASE_URL": self.simulator.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'bot.sqlite3'}",
            "DEFAULT_GUILD_CREDITS": "100000",
            "LOG_LEVEL": "WARNING",
        }
        return settings_from_mapping(values | overrides)

    def imagine_bot(
        self, *, planner: PollSchedule | None = None, **overrides: str
    ) -> contextlib.AbstractAsyncContextManager[App]:
        """imagine-bot itself, against this world: every service, the features, the poller."""
        return imagine_bot(self.settings(**overrides), planner=planner)

    async def imagine(
        self, index: int, prompt: str, *, attachment_size_limit: int | None = None
    ) -> InteractionRecord:
        """Send the ``index``-th /imagine, round-robin over servers and members."""
        guild = self.guilds[index % len(self.guilds)]
        member = self.members[index % len(self.members)]
        return await self.standin.send_command(
            guild,
            guild.text_channel,
            member,
            "imagine",
            {"prompt": prompt},
            attachment_size_limit=attachment_size_limit,
        )

    def posted_at(self, record: InteractionRecord) -> float | None:
        """When the first follow-up carrying a file (the video) was posted (monotonic)."""
        for message in record.followups:
            if message.attachments:
                return self.clock.to_monotonic(message.created_at)
        return None


@contextlib.asynccontextmanager
async def loopback(
    simulator_config: SimulatorConfig,
    *,
    folder: Path,
    guilds: int = 1,
    members: int = 1,
    shards: int | None = None,
) -> AsyncIterator[Loopback]:
    """Start the stand-in and the simulator, and point discord.py at the stand-in.

    ``shards``: the stand-in recommends that many shards and server ``n`` is on shard
    ``n % shards`` (for several bot processes, each running some of them).
    """
    clock = AnchoredClock()
    if shards is None:
        standin = DiscordStandIn(clock=clock)
    else:
        standin = DiscordStandIn(clock=clock, recommended_shards=shards, max_concurrency=1)
    member_list = [standin.add_user(f"member {i}") for i in range(members)]
    guild_list = [
        standin.add_guild(f"server {i}", shard=None if shards is None else (i % shards, shards))
        for i in range(guilds)
    ]
    simulator = CountingSimulator(simulator_config)
    await simulator.start()
    await standin.start()
    try:
        with standin.patch_discord_py():
            yield Loopback(standin, simulator, clock, guild_list, member_list, folder)
    finally:
        await standin.close()
        await simulator.close()


def status_requests_per_task(simulator: Simulator) -> Counter[str]:
    """How many ``GET /v1/status`` requests the simulator received for each task."""
    return Counter(
        seen.query.get("task_id", "")
        for seen in simulator.requests
        if seen.method == "GET" and seen.path == "/v1/status"
    )


# --- PostgreSQL, for several processes on one database ------------------------------------------

LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:55433/postgres"


def postgres_admin_url(explicit: str | None = None) -> str:
    """The server to create benchmark databases on: ``explicit``, TEST_DATABASE_URL, or local."""
    return explicit or os.environ.get("TEST_DATABASE_URL") or LOCAL_POSTGRES_URL


@contextlib.asynccontextmanager
async def fresh_postgres_database(
    admin_url: str, prefix: str = "imagine_bench"
) -> AsyncIterator[str]:
    """A freshly created, empty database on ``admin_url``'s server; dropped on the way out."""
    from sqlalchemy import make_url, text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def redacted(url: str) -> str:
    """A database URL fit for a results file (no password)."""
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)
