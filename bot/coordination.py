"""Several bot processes on one database: whose turn it is to IDENTIFY with Discord.

Discord lets ``max_concurrency`` sessions start per 5 seconds, in buckets
``shard_id % max_concurrency``, per bot — however many processes it runs in. One process
spaces its own shards; across processes the database is the coordinator: on PostgreSQL a
session-level advisory lock per bucket, held for the 5 seconds after a turn is taken, so no
other process identifies in that bucket meanwhile. SQLite serves one process, where an
in-process lock per bucket does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.db import Database

log = logging.getLogger(__name__)

IDENTIFY_WINDOW = 5.0  # seconds Discord counts session starts over
# Advisory lock keys for identify buckets: this base plus the bucket number.
_IDENTIFY_LOCK_BASE = 7_262_100_000


class IdentifyTurns:
    """``take(bucket)`` returns when this process may IDENTIFY in ``bucket``."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._local: dict[int, asyncio.Lock] = {}
        self._held: set[asyncio.Task[None]] = set()

    async def take(self, bucket: int) -> None:
        """Wait for the bucket, then keep it for ``IDENTIFY_WINDOW`` seconds in the background."""
        local = self._local.setdefault(bucket, asyncio.Lock())
        await local.acquire()
        connection: AsyncConnection | None = None
        try:
            if self._database.dialect_name == "postgresql":
                connection = await self._database.engine.connect()
                await connection.exec_driver_sql(
                    f"SELECT pg_advisory_lock({_IDENTIFY_LOCK_BASE + bucket})"
                )
        except BaseException:
            if connection is not None:
                await connection.close()
            local.release()
            raise
        log.debug("identify turn for bucket %d taken", bucket)
        release = asyncio.create_task(self._release_later(bucket, local, connection))
        self._held.add(release)
        release.add_done_callback(self._held.discard)

    async def _release_later(
        self, bucket: int, local: asyncio.Lock, connection: AsyncConnection | None
    ) -> None:
        try:
            await self._clock.sleep(IDENTIFY_WINDOW)
        finally:
            if connection is not None:
                try:
                    await connection.exec_driver_sql(
                        f"SELECT pg_advisory_unlock({_IDENTIFY_LOCK_BASE + bucket})"
                    )
                    await connection.commit()
                except Exception:  # noqa: BLE001 - whatever failed, the session must end
                    # A pooled connection must never keep the lock: end its session instead.
                    log.warning("identify lock %d not released; dropping its connection", bucket)
                    with contextlib.suppress(Exception):
                        await connection.invalidate()
                await connection.close()
            local.release()

    async def close(self) -> None:
        """Give every held turn back now (shutting down)."""
        for task in list(self._held):
            task.cancel()
        await asyncio.gather(*self._held, return_exceptions=True)
