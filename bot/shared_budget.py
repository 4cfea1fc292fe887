"""The request budget of one API key, kept in the database so that every process shares it.

``bot.ratelimit.RateLimiter`` keeps the budget in one process's memory; two processes with the
same key would each spend the whole plan. ``SharedRateBudget`` keeps it in one row of
``rate_budget`` that every process on the database takes from:

* a token bucket of ``capacity`` tokens (the plan's requests per minute) refilled at
  ``capacity / window`` tokens a second, never above ``capacity``. The row holds the level
  ``tokens`` as of ``refilled_at``; every statement that changes it first refills it by the
  time elapsed, so nothing has to tick in the background;
* ``blocked_until``: a ``429`` seen by any process stops every process until then.

Taking a token is ONE conditional UPDATE (refill, check, take) with RETURNING: PostgreSQL
evaluates it atomically, and under READ COMMITTED a second UPDATE of the same row waits for the
first to commit and then re-evaluates its WHERE clause on the new row version, so two takers
can never both take the last token. On PostgreSQL the statement runs autocommitted on a
connection the budget holds (one round trip: no BEGIN, no COMMIT, no pool pre-ping); on SQLite
(one process) inside ``BEGIN IMMEDIATE``, which serialises writers. Only a refused take reads
the row once more, to say how long to wait. The statements are built once, per instance, and
take the moment and the headroom as parameters.

Time: every statement gets the injected clock's ``now()`` as a parameter rather than using the
database's clock, so that tests can drive time. Processes on one machine share the wall clock;
processes on several machines must keep it synchronised (NTP). A process whose clock lags never
refills the bucket backwards (elapsed time is clamped at zero and ``refilled_at`` only moves
forward), so a skewed clock can delay takers but never grant extra tokens beyond its skew.

Caveat (see ``bot.ratelimit``): a bucket that starts full allows up to twice ``capacity`` in its
first minute, and a steady refill can run ahead of a server that counts fixed windows. The
server's headers keep it honest: ``correct()`` lowers the level to what the server says is
left, and ``block_until()`` stops everyone after a ``429``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Row,
    bindparam,
    cast,
    extract,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.db import Database, UTCDateTime
from bot.models import RateBudget

T = TypeVar("T")

_TABLE = RateBudget.__table__
_C = _TABLE.c

# Float tolerance of the "enough tokens" test (token counts are sums of float products).
_TOKEN_EPSILON = 1e-9
# Waits are rounded up to whole milliseconds, plus one: SQLite's date functions count whole
# milliseconds, so a wait computed to the microsecond could wake a hair before the token.
_WAIT_RESOLUTION = 0.001
# acquire() never polls faster than this, however small the wait.
_MIN_SLEEP = 0.01


@dataclass(slots=True)
class _Turn:
    """A caller of this process waiting in ``acquire()``."""

    keep_free: int
    enqueued_at: float
    future: asyncio.Future[None] = field(repr=False)


def budget_key(api_key: str) -> str:
    """The row key for an API key: a hash of it, so the key itself never reaches the database."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


class SharedRateBudget:
    """``per_minute`` requests a ``window`` for one API key, shared through the database.

    Callers ``await acquire()`` before each request (or ``take()`` to decide themselves what to
    do with the wait), then feed the answer back: ``block_until()`` after a ``429``,
    ``correct()`` with ``X-RateLimit-Remaining``. Every method is one short unit of work of its
    own, never part of the caller's transaction: a token is spent even if the caller's work
    rolls back, as the request it paid for was still sent. ``close()`` before disposing of the
    database: the budget holds one connection of its pool.
    """

    def __init__(
        self,
        database: Database,
        *,
        key: str,
        per_minute: int,
        clock: Clock,
        window: float = 60.0,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if not window > 0:
            raise ValueError("window must be positive")
        if not key or len(key) > 64:
            raise ValueError("key must be 1 to 64 characters (use budget_key(api_key))")
        self._database = database
        self._key = key
        self._per_minute = per_minute
        self._clock = clock
        self._window = window
        self._postgres = database.dialect_name == "postgresql"
        self._sql = _Statements(key, window, postgres=self._postgres)
        self._ensured = False
        self._connection: AsyncConnection | None = None  # held between calls, see _run()
        self._lock = asyncio.Lock()
        # acquire(): this process's callers queue here and only the chosen one asks the
        # database, so that they take the tokens in this process's order (see acquire()).
        self._turns: list[_Turn] = []
        self._turn_taker: asyncio.Task[None] | None = None
        self._turn_arrived = asyncio.Event()
        self._last_turn_was_foreground = False
        # The level this process last saw (tokens, as of), for estimate(): no round trip.
        self._seen: tuple[float, datetime] | None = None

    @classmethod
    def for_plan(
        cls, database: Database, *, key: str, per_minute: int, clock: Clock
    ) -> SharedRateBudget:
        """A bucket that can never let more than ``per_minute`` requests into any minute.

        The API counts a sliding minute; a token bucket lets ``capacity`` plus a minute's
        refill through in one. So the bucket holds a small burst (a twentieth of the plan) and
        refills the rest evenly: burst + refill per minute == ``per_minute``.
        """
        burst = max(1, per_minute // 20)
        refill = max(1, per_minute - burst)
        return cls(database, key=key, per_minute=burst, clock=clock, window=60.0 * burst / refill)

    def __repr__(self) -> str:
        return f"SharedRateBudget(key={self._key!r}, per_minute={self._per_minute})"

    @property
    def key(self) -> str:
        return self._key

    @property
    def per_minute(self) -> int:
        return self._per_minute

    # -- the public operations ----------------------------------------------------------------

    async def ensure(self) -> None:
        """Create the row with a full bucket if it is missing; adopt a changed ``per_minute``.

        When the configured limit differs from the row's capacity (the operator changed
        ``GROK_RATE_LIMIT_PER_MINUTE``), the bucket is refilled at the old rate up to now, then
        takes the new capacity, its level clamped to it: a larger capacity is never a refill.
        Every process takes at the row's rate, so after a change the last process to start
        decides; restart them all with the same setting. The other methods call it on their
        first use; call it at startup to create the row early.
        """
        now = self._clock.now()
        dialect = postgresql if self._postgres else sqlite
        create = (
            dialect.insert(_TABLE)
            .values(
                key=self._key,
                capacity=self._per_minute,
                tokens=float(self._per_minute),
                refilled_at=now,
                blocked_until=None,
            )
            .on_conflict_do_nothing(index_elements=[_C.key])
        )
        parameters = {"now": now, "capacity": self._per_minute}

        async def work(connection: AsyncConnection) -> None:
            # Two statements, each safe on its own (autocommitted apart on PostgreSQL).
            await connection.execute(create)
            await connection.execute(self._sql.resize, parameters)

        await self._run(work)
        self._ensured = True

    async def take(self, *, keep_free: int = 0) -> float:
        """Take one token if ``1 + keep_free`` are available and no ``429`` blocks the key.

        Returns 0.0 when the token was taken, otherwise the seconds to wait before trying again
        (until enough tokens will have refilled, or until the block ends, whichever is later;
        other takers may of course get there first). ``keep_free`` is the headroom background
        traffic leaves for interactive requests; it is capped at ``capacity - 1`` so that a
        small plan cannot stop background traffic for good.
        """
        if keep_free < 0:
            raise ValueError("keep_free cannot be negative")
        await self._ensure_once()
        now = self._clock.now()
        parameters = {"now": now, "need": 1 + keep_free}

        async def work(connection: AsyncConnection) -> tuple[Row[Any] | None, Row[Any] | None]:
            left = (await connection.execute(self._sql.take, parameters)).first()
            if left is not None:
                return left, None  # the common case: one round trip
            return None, (await connection.execute(self._sql.read)).first()

        left, row = await self._run(work)
        if left is not None:
            self._seen = (float(left.tokens), now)
            return 0.0
        if row is None:  # the row went away (deleted by hand): recreate it, then try again
            self._ensured = False
            return _MIN_SLEEP
        blocked = row.blocked_until is not None and row.blocked_until > now
        self._seen = (0.0 if blocked else self._level_of(row, now), now)
        return self._wait(row, now, keep_free)

    async def acquire(self, *, keep_free: int = 0) -> None:
        """Wait until a token is taken for this caller.

        The callers of one process take turns: they queue here and only the one whose turn it
        is asks the database (``take()``, sleeping what it says). Callers needing no headroom
        (foreground: submissions) go first, but when both kinds wait they alternate, as in
        ``bot.ratelimit.RateLimiter``: under saturation the two kinds of traffic take turns,
        and within a kind the oldest goes first. Without this, every waiting caller would poll
        the bucket on its own and whoever woke first would win: status checks (which leave a
        token free) would lose to every submission until they had waited a whole window.

        A caller that has waited a whole window with a headroom asks for none any more, so
        that interactive traffic using every token cannot hold background traffic back forever.
        Unbounded: callers bound it with their own timeouts (cancelling is safe at any point; a
        token taken just before the cancellation is simply spent).
        """
        if keep_free < 0:
            raise ValueError("keep_free cannot be negative")
        turn = _Turn(
            keep_free=keep_free,
            enqueued_at=self._clock.monotonic(),
            future=asyncio.get_running_loop().create_future(),
        )
        self._turns.append(turn)
        self._turn_arrived.set()
        if self._turn_taker is None or self._turn_taker.done():
            self._turn_taker = asyncio.create_task(self._take_turns())
        try:
            await turn.future
        except asyncio.CancelledError:
            if turn in self._turns:
                self._turns.remove(turn)
                self._turn_arrived.set()  # the turn may have been this caller's
            raise

    @property
    def waiting(self) -> int:
        """Callers of this process waiting in ``acquire()``."""
        return sum(1 for turn in self._turns if not turn.future.done())

    def estimate(self) -> int:
        """Whole tokens available now, as far as this process last saw (no round trip).

        Other processes may have taken some since: an upper bound, good for deciding how much
        work to take on, never for spending.
        """
        if self._seen is None:
            return self._per_minute
        tokens, at = self._seen
        elapsed = max(0.0, (self._clock.now() - at).total_seconds())
        level = min(float(self._per_minute), tokens + elapsed * self._per_minute / self._window)
        return max(0, math.floor(level + _TOKEN_EPSILON))

    def _next_turn(self) -> _Turn | None:
        waiting = [turn for turn in self._turns if not turn.future.done()]
        self._turns = waiting
        foreground = next((turn for turn in waiting if turn.keep_free == 0), None)
        background = next((turn for turn in waiting if turn.keep_free > 0), None)
        if foreground is not None and background is not None:
            return background if self._last_turn_was_foreground else foreground
        return foreground or background

    async def _take_turns(self) -> None:
        """Take tokens for the waiting callers, one at a time, in turn order."""
        while (turn := self._next_turn()) is not None:
            self._turn_arrived.clear()
            waited = self._clock.monotonic() - turn.enqueued_at
            try:
                wait = await self.take(keep_free=turn.keep_free if waited < self._window else 0)
            except Exception as error:  # noqa: BLE001 - the database failed: the caller hears
                # of it (its request is retried as any failed request is)
                if not turn.future.done():
                    turn.future.set_exception(error)
                continue
            if wait == 0.0:
                # A caller that went away meanwhile leaves its token to the next one.
                chosen = turn if not turn.future.done() else self._next_turn()
                if chosen is not None:
                    chosen.future.set_result(None)
                    self._turns.remove(chosen)
                    self._last_turn_was_foreground = chosen.keep_free == 0
                continue
            # Sleep what the bucket says, but look again when a caller arrives: it may be the
            # one whose turn it is, and need fewer tokens.
            sleeping = asyncio.ensure_future(self._clock.sleep(max(wait, _MIN_SLEEP)))
            arriving = asyncio.ensure_future(self._turn_arrived.wait())
            try:
                await asyncio.wait({sleeping, arriving}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                arriving.cancel()

    async def block_until(self, until: datetime) -> None:
        """Stop every taker, in every process, until ``until`` (an aware datetime).

        For a ``429``: its ``Retry-After`` (else ``X-RateLimit-Reset``) says when the server
        takes requests again. The block only ever moves later: an earlier moment than the one
        already set (an older answer arriving late) changes nothing.
        """
        await self._ensure_once()
        await self._run(lambda c: c.execute(self._sql.block, {"until": until}))

    async def correct(self, remaining: int) -> None:
        """Lower the level to the server's ``X-RateLimit-Remaining``; never raise it.

        The server knows what it counted; we only ever believe less than it says, never more
        (a higher ``remaining`` may come from an answer older than tokens taken since). The
        server has not counted requests still in flight, in any process: subtract those you
        know of before calling.
        """
        await self._ensure_once()
        parameters = {"now": self._clock.now(), "remaining": float(max(0, remaining))}
        await self._run(lambda c: c.execute(self._sql.correct, parameters))

    async def remaining(self) -> float:
        """Tokens available now (0 while a ``429`` blocks the key), for metrics."""
        await self._ensure_once()
        now = self._clock.now()
        row = (await self._run(lambda c: c.execute(self._sql.read))).first()
        if row is None or (row.blocked_until is not None and row.blocked_until > now):
            return 0.0
        return self._level_of(row, now)

    async def close(self) -> None:
        """Give the held connection back; call it before ``Database.dispose()``."""
        if self._turn_taker is not None:
            self._turn_taker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._turn_taker
            self._turn_taker = None
        for turn in self._turns:
            turn.future.cancel()  # nobody takes tokens for them any more
        self._turns.clear()
        async with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                await connection.close()

    # -- running statements -------------------------------------------------------------------

    async def _ensure_once(self) -> None:
        if not self._ensured:
            await self.ensure()

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` as one short unit on this budget's own connection.

        PostgreSQL: autocommitted statements, each atomic on its own, one round trip each. The
        connection is held between calls, because checking one out of the pool costs more
        round trips (pre-ping, BEGIN, ROLLBACK) than the take itself. SQLite (one process):
        ``BEGIN IMMEDIATE … COMMIT``, which serialises writers. Calls of one instance take
        turns; a connection that fails (or whose call is cancelled mid-statement) is thrown
        away, and a held one that the server dropped meanwhile is replaced and the work retried
        once (what the pool's pre-ping would have done).
        """
        async with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                connection = self._connection or await self._open()
                self._connection = connection
                try:
                    if self._postgres:
                        result = await work(connection)
                        await connection.commit()  # no round trip: the DBAPI autocommits
                    else:
                        async with connection.begin():
                            result = await work(connection)
                except DBAPIError as error:
                    await self._discard(connection)
                    if not (error.connection_invalidated and reused and attempt == 1):
                        raise
                except BaseException:
                    await self._discard(connection)
                    raise
                else:
                    return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self) -> AsyncConnection:
        connection = await self._database.engine.connect()
        if self._postgres:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    async def _discard(self, connection: AsyncConnection) -> None:
        self._connection = None
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()

    # -- arithmetic on a row read (the same formulas as the SQL) ------------------------------

    def _level_of(self, row: Row[Any], now: datetime) -> float:
        elapsed = max(0.0, (now - row.refilled_at).total_seconds())
        return min(float(row.capacity), row.tokens + elapsed * row.capacity / self._window)

    def _wait(self, row: Row[Any], now: datetime, keep_free: int) -> float:
        need = min(1 + keep_free, row.capacity)
        wait = (need - self._level_of(row, now)) * self._window / row.capacity
        if row.blocked_until is not None:
            wait = max(wait, (row.blocked_until - now).total_seconds())
        return max(_WAIT_RESOLUTION, math.ceil(wait / _WAIT_RESOLUTION + 1) * _WAIT_RESOLUTION)


class _Statements:
    """The budget's statements for one key and dialect, built once.

    Parameters: ``now`` (the caller's clock), ``need`` (1 + headroom), ``until``,
    ``remaining``, ``capacity``. PostgreSQL and SQLite share every statement but for three
    functions: LEAST/GREATEST are SQLite's two-argument (scalar) min/max, and the seconds
    between two moments come from EXTRACT(EPOCH …) or julianday().
    """

    def __init__(self, key: str, window: float, *, postgres: bool) -> None:
        self._postgres = postgres
        now = bindparam("now", type_=UTCDateTime())
        this = _C.key == key
        # The level at ``now``: refilled for the time elapsed (never negative: a clock that
        # lags another's adds nothing), capped at capacity.
        elapsed = self._greatest(cast(0.0, Float), self._seconds_between(_C.refilled_at, now))
        level = self._least(cast(_C.capacity, Float), _C.tokens + elapsed * _C.capacity / window)
        refilled_at = self._greatest(_C.refilled_at, now)  # only ever moves forward

        self.take = (
            update(_TABLE)
            .where(
                this,
                or_(_C.blocked_until.is_(None), _C.blocked_until <= now),
                level + _TOKEN_EPSILON
                >= self._least(bindparam("need", type_=Integer()), _C.capacity),
            )
            .values(tokens=level - 1, refilled_at=refilled_at)
            .returning(_C.tokens)
        )
        self.read = select(_C.capacity, _C.tokens, _C.refilled_at, _C.blocked_until).where(this)
        until = bindparam("until", type_=UTCDateTime())
        self.block = (
            update(_TABLE)
            .where(this, or_(_C.blocked_until.is_(None), _C.blocked_until < until))
            .values(blocked_until=until)
        )
        remaining = bindparam("remaining", type_=Float())
        self.correct = (
            update(_TABLE)
            .where(this, level > remaining)
            .values(tokens=remaining, refilled_at=refilled_at)
        )
        capacity = bindparam("capacity", type_=Integer())
        self.resize = (
            update(_TABLE)
            .where(this, _C.capacity != capacity)
            .values(
                capacity=capacity,
                tokens=self._least(level, cast(capacity, Float)),
                refilled_at=refilled_at,
            )
        )

    def _seconds_between(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[float]:
        if self._postgres:
            return cast(extract("epoch", end - start), Float)
        # julianday() counts whole milliseconds; rounding drops the float noise of the days.
        days = func.julianday(end) - func.julianday(start)
        return func.round(days * 86_400_000.0) / 1000.0

    def _least(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.least(a, b) if self._postgres else func.min(a, b)

    def _greatest(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.greatest(a, b) if self._postgres else func.max(a, b)
