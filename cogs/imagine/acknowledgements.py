"""Acknowledgements first: Discord wants every interaction answered within three seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class AcknowledgementsFirst:
    """Work that follows a defer waits while other interactions still await their defer.

    In a burst, every command's budget, store and API work would otherwise run between the
    later commands' events and their acknowledgements, which Discord wants within 3 s.
    """

    # Never hold work back longer than this, even under an endless stream of commands.
    MAX_WAIT = 0.5

    def __init__(self) -> None:
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def acknowledging(self) -> AsyncIterator[None]:
        self._pending += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def wait_turn(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.MAX_WAIT):
                await self._idle.wait()
