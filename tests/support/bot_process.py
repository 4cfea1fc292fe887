"""imagine-bot in a process of its own, against a stand-in and simulator run by the parent.

    python -m tests.support.bot_process --api-base URL --gateway URL --settings JSON

The parent passes the settings as JSON (variable → value). The child prints one line,
``{"ready": true}``, once its gateway session is ready, and runs until its standard input
closes (a clean stop) or it is killed (SIGKILL: nothing of it runs on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys

import discord
import yarl

from bot.config import settings_from_mapping
from cogs.main import assembled, serve

READY_TIMEOUT = 60.0


async def run(settings_json: str) -> None:
    settings = settings_from_mapping(json.loads(settings_json))
    async with assembled(settings, guild_ready_timeout=0.01) as app:
        session = asyncio.create_task(serve(app, settings.discord_token.get_secret_value()))
        async with asyncio.timeout(READY_TIMEOUT):
            await app.bot.wait_until_ready()
        print(json.dumps({"ready": True}), flush=True)
        stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await asyncio.wait(
            {session, asyncio.ensure_future(stdin_closed)}, return_when=asyncio.FIRST_COMPLETED
        )
        session.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session


class BotProcess:
    """A child process running the bot; ``stop()`` ends it cleanly, ``kill()`` with SIGKILL."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *, api_base: str, gateway: str, settings: dict[str, str]) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.bot_process",
            "--api-base",
            api_base,
            "--gateway",
            gateway,
            "--settings",
            json.dumps(settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT):
            line = await process.stdout.readline()
        if not line:
            await process.wait()
            raise RuntimeError(f"the bot process ended before it was ready ({process.returncode})")
        assert json.loads(line) == {"ready": True}
        return cls(process)

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            async with asyncio.timeout(READY_TIMEOUT):
                await self.process.wait()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    # What DiscordStandIn.patch_discord_py does in the parent's process.
    discord.http.Route.BASE = args.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(args.gateway)
    asyncio.run(run(args.settings))


if __name__ == "__main__":
    main()
