"""Acknowledgement latency: a burst of /imagine, imagine-bot against a bot that only defers.

Each round sends ``--commands`` /imagine in one burst, round-robin over ``--servers`` servers,
through the loopback Discord stand-in, and measures event → acknowledgement (the stand-in's
``dispatched_at`` → the moment the callback reaches it). imagine-bot runs with its budgets,
SQLite store and the simulator in the path; the bare bot is a minimal discord.py bot whose
/imagine only defers. Rounds alternate between the two in the same process run.

    python -m bench.ack [--commands 200] [--servers 20] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bench.common import (
    Loopback,
    connect,
    loopback,
    quiet_logging,
    summarize,
    write_results,
)
from bot.simulator import SimulatorConfig

DISCORD_DEADLINE = 3.0
WAIT = 120.0
BotKind = Literal["bare", "imagine-bot"]


class BareBot(commands.Bot):
    """The least a bot can do: /imagine that defers and nothing else."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.01
        )

    async def setup_hook(self) -> None:
        @app_commands.command(name="imagine", description="Make a short video")
        async def imagine(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer(thinking=True)

        self.tree.add_command(imagine)
        await self.tree.sync()


@dataclass(frozen=True)
class AckOptions:
    commands: int = 200
    servers: int = 20
    members: int = 50
    rounds: int = 3


async def burst(world: Loopback, count: int) -> list[float]:
    """Send ``count`` /imagine back to back; the event → acknowledgement latencies."""
    records = [await world.imagine(index, f"benchmark burst {index}") for index in range(count)]
    await world.standin.wait_for(
        lambda: all(record.acked_at is not None for record in records), limit=WAIT
    )
    return [record.ack_latency for record in records if record.ack_latency is not None]


async def finish_command_handlers() -> None:
    """Wait for every running command callback (discord.py names their tasks)."""
    handlers = [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "CommandTree-invoker" and not task.done()
    ]
    if handlers:
        await asyncio.wait(handlers, timeout=WAIT)


async def one_round(kind: BotKind, options: AckOptions, folder: Path) -> dict[str, list[float]]:
    """A cold burst, then a warm one: the latencies of each."""
    # Generations outlast the round, so the poller never competes with the bursts here; what
    # follows each defer (budget, store, submit, progress edit) does, as it would in production.
    simulator = SimulatorConfig(
        min_seconds=300.0, max_seconds=600.0, rate_limit_per_minute=2 * options.commands
    )
    async with (
        loopback(
            simulator, folder=folder, guilds=options.servers, members=options.members
        ) as world,
        contextlib.AsyncExitStack() as bot,
    ):
        if kind == "bare":
            running = await connect(BareBot(), world.standin.token)
            bot.push_async_callback(running.stop)
        else:
            await bot.enter_async_context(
                world.imagine_bot(GROK_RATE_LIMIT_PER_MINUTE=str(2 * options.commands))
            )
        samples: dict[str, list[float]] = {}
        for phase in ("cold", "warm"):
            samples[phase] = await burst(world, options.commands)
            # What follows each defer (imagine-bot: budget, store, submit, progress) ends
            # before the next burst or the teardown.
            await finish_command_handlers()
    return samples


async def run(options: AckOptions, folder: Path) -> dict[str, object]:
    latencies: dict[str, dict[BotKind, list[float]]] = {
        phase: {"bare": [], "imagine-bot": []} for phase in ("cold", "warm")
    }
    per_round: list[dict[str, object]] = []
    for round_number in range(options.rounds):
        # Alternate which bot goes first, so neither always gets the warmer process.
        order: tuple[BotKind, BotKind] = (
            ("bare", "imagine-bot") if round_number % 2 == 0 else ("imagine-bot", "bare")
        )
        for kind in order:
            samples = await one_round(kind, options, folder / f"round{round_number}-{kind}")
            for phase, sample in samples.items():
                latencies[phase][kind].extend(sample)
                per_round.append(
                    {"round": round_number, "bot": kind, "burst": phase, **summarize(sample)}
                )
    figures = {
        phase: {kind: summarize(sample) for kind, sample in by_kind.items()}
        for phase, by_kind in latencies.items()
    }
    warm = figures["warm"]
    return {
        "options": asdict(options),
        "seconds": figures,
        "per_round": per_round,
        "target": {
            "warm_p99_no_worse_than_bare": warm["imagine-bot"]["p99"] <= warm["bare"]["p99"],
            "cold_p99_no_worse_than_bare": figures["cold"]["imagine-bot"]["p99"]
            <= figures["cold"]["bare"]["p99"],
            "max_within_discord_deadline": max(
                figures[phase]["imagine-bot"]["max"] for phase in figures
            )
            < DISCORD_DEADLINE,
        },
    }


def print_report(figures: dict[str, object]) -> None:
    seconds = figures["seconds"]
    assert isinstance(seconds, dict)
    print(f"{'burst':<6} {'bot':<12} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for phase, by_kind in seconds.items():
        for kind, stats in by_kind.items():
            print(
                f"{phase:<6} {kind:<12} {stats['n']:>5} {stats['p50'] * 1000:>8.1f} "
                f"{stats['p99'] * 1000:>8.1f} {stats['max'] * 1000:>8.1f}"
            )
    print("targets:", figures["target"])


def parse_options(argv: list[str] | None = None) -> tuple[AckOptions, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench.ack", description=__doc__)
    parser.add_argument("--commands", type=int, default=AckOptions.commands)
    parser.add_argument("--servers", type=int, default=AckOptions.servers)
    parser.add_argument("--members", type=int, default=AckOptions.members)
    parser.add_argument("--rounds", type=int, default=AckOptions.rounds)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: a few commands, one round, not saved"
    )
    args = parser.parse_args(argv)
    if args.quick:
        return AckOptions(commands=10, servers=2, members=3, rounds=1), True
    return AckOptions(args.commands, args.servers, args.members, args.rounds), False


def main(argv: list[str] | None = None) -> None:
    options, quick = parse_options(argv)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    print_report(figures)
    if not quick:
        print("written to", write_results("ack", figures))


if __name__ == "__main__":
    main()
