"""One request budget per API key, shared by every caller of the GrokImagine API.

The model is a sliding-window log, so no window of ``window`` seconds ever holds more than
``per_minute`` requests, not even the first one (a token bucket that starts full and refills
would allow almost twice the plan in the first minute).

A request holds its slot from the moment it is sent until ``window`` seconds after its answer
arrived. Counting from the answer rather than from the send is deliberate: the server counted
the request at some moment in between, so its own window can only have let go of the request
by then. It also makes requests in flight count against the budget for as long as they last.

The server's headers correct the local picture:

* ``X-RateLimit-Remaining: R`` with ``X-RateLimit-Reset`` allows at most ``R`` more requests
  before the reset moment, minus the requests still in flight, which the server may not have
  counted yet. Every answer's correction holds until its own reset moment; after it the local
  window alone decides again.
* ``429`` stops every request until the wait it states (``Retry-After``, else
  ``X-RateLimit-Reset``, else a whole window, the only wait that is certainly enough for a
  per-window limit).

Reset values above ``1e9`` are epoch seconds, smaller ones are seconds from now; both are
clamped to ``[0, window]`` because a misread epoch must never stall the bot for decades.
Values that cannot be parsed are ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from bot.clock import Clock

# Reset values at or above this are Unix timestamps, below it seconds to wait (1e9 s ≈ 31 years).
EPOCH_THRESHOLD = 1e9
# A freed slot is handed out only this long after the window has passed, so that a server
# counting its window as closed ([t - 60, t]) agrees with one counting it half-open.
_SLOT_SLACK = 0.001
# Float tolerance when comparing clock readings with computed deadlines.
_EPSILON = 1e-9


@dataclass(slots=True)
class _ServerBudget:
    """What one answer's headers allow until its reset moment."""

    reset_at: float
    remaining: int


@dataclass(slots=True)
class _Waiter:
    keep_free: int
    enqueued_at: float
    order: int
    future: asyncio.Future[None] = field(repr=False)


class RateLimiter:
    """The request budget of one API key: ``per_minute`` requests in any ``window`` seconds.

    Callers do ``await acquire()`` before sending, ``observe(...)`` with the answer's headers,
    and ``release()`` in a ``finally`` once the answer (or the failure) is in.

    Waiters are served in arrival order, except that a waiter asking to leave ``keep_free``
    slots unused (background traffic) lets waiters needing no headroom (foreground traffic)
    pass while the budget is low. When foreground waiters alone would take every slot left,
    the slot after a foreground grant goes to a background waiter: under saturation the two
    kinds of traffic take turns. A background waiter that has waited a whole window asks for
    no headroom any more, so it is never overtaken forever.
    """

    def __init__(self, per_minute: int, *, clock: Clock, window: float = 60.0) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if not window > 0:
            raise ValueError("window must be positive")
        self._per_minute = per_minute
        self._window = window
        self._clock = clock
        self._answered: deque[float] = deque()  # answer times of requests still in the window
        self._in_flight = 0
        self._blocked_until = -math.inf
        self._server_budgets: list[_ServerBudget] = []
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_deadline = math.inf
        # The plan the server seems to enforce; smaller than ``per_minute`` when the setting
        # overstates it. Headroom requests shrink in proportion, so they never ask for more
        # than the real plan could ever leave free.
        self._plan_seen = per_minute
        self._last_grant_was_foreground = False

    def __repr__(self) -> str:
        return (
            f"RateLimiter(per_minute={self._per_minute}, window={self._window}, "
            f"available={self.available()}, in_flight={self._in_flight}, "
            f"waiting={len(self._waiters)})"
        )

    @property
    def per_minute(self) -> int:
        """The plan's limit this limiter was seeded with."""
        return self._per_minute

    @property
    def in_flight(self) -> int:
        """Requests sent whose answer has not arrived yet."""
        return self._in_flight

    def per_second(self) -> float:
        """The sustainable request rate."""
        return self._per_minute / self._window

    def available(self) -> int:
        """Requests that could be sent right now without waiting."""
        return self._available(self._clock.monotonic())

    def blocked_for(self) -> float:
        """Seconds until a ``429`` stops holding back every request (0 if none does)."""
        return max(0.0, self._blocked_until - self._clock.monotonic())

    async def acquire(self, *, keep_free: int = 0) -> None:
        """Wait until one more request may be sent, then count it as sent now.

        ``keep_free`` slots of the budget must remain unused after this request: background
        traffic passes a headroom so that interactive requests are never starved by it.
        """
        if keep_free < 0:
            raise ValueError("keep_free cannot be negative")
        waiter = _Waiter(
            keep_free=keep_free,
            enqueued_at=self._clock.monotonic(),
            order=next(self._order),
            future=asyncio.get_running_loop().create_future(),
        )
        self._waiters.append(waiter)
        self._dispatch()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.cancelled():
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._dispatch()
            else:
                # Granted, but the caller went away before sending: it still counted as sent.
                self.release()
            raise

    def release(self) -> None:
        """The answer to a request arrived (or the request failed): it is no longer in flight."""
        if self._in_flight == 0:
            raise RuntimeError("release() without a matching acquire()")
        self._in_flight -= 1
        self._answered.append(self._clock.monotonic())
        self._dispatch()

    def observe(
        self, *, status: int, remaining: str | None, reset: str | None, retry_after: str | None
    ) -> None:
        """Correct the budget from an answer's rate-limit headers.

        Call it before ``release()`` of the same request, so that the request itself is not
        mistaken for one the server has not counted yet.
        """
        now = self._clock.monotonic()
        reset_in = self._parse_reset(reset)
        if status == 429:
            wait = self._parse_retry_after(retry_after)
            if wait is None:
                wait = reset_in if reset_in is not None else self._window
            self._blocked_until = max(self._blocked_until, now + wait)
        left = _parse_int(remaining)
        if left is not None:
            self._forget_expired(now)
            counted = len(self._answered) + self._in_flight
            self._plan_seen = max(1, min(self._per_minute, left + counted))
            uncounted = max(0, self._in_flight - 1)
            horizon = reset_in if reset_in is not None else self._window
            self._add_server_budget(
                _ServerBudget(reset_at=now + horizon, remaining=max(0, left - uncounted))
            )
        self._dispatch()

    # -- the budget ---------------------------------------------------------------------------

    def _available(self, now: float) -> int:
        if now + _EPSILON < self._blocked_until:
            return 0
        self._forget_expired(now)
        free = self._per_minute - len(self._answered) - self._in_flight
        for budget in self._server_budgets:
            free = min(free, budget.remaining)
        return max(0, free)

    def _forget_expired(self, now: float) -> None:
        while self._answered and self._answered[0] + self._window + _SLOT_SLACK <= now + _EPSILON:
            self._answered.popleft()
        self._server_budgets = [b for b in self._server_budgets if b.reset_at > now + _EPSILON]

    def _add_server_budget(self, new: _ServerBudget) -> None:
        # A budget that ends no later and allows no less than another adds nothing: drop it,
        # so that the list stays short however many answers arrive.
        kept = [
            b
            for b in self._server_budgets
            if not (b.reset_at <= new.reset_at and b.remaining >= new.remaining)
        ]
        if not any(b.reset_at >= new.reset_at and b.remaining <= new.remaining for b in kept):
            kept.append(new)
        self._server_budgets = kept

    def _count_sent(self) -> None:
        self._in_flight += 1
        for budget in self._server_budgets:
            budget.remaining -= 1

    # -- waking waiters -----------------------------------------------------------------------

    def _headroom(self, waiter: _Waiter, now: float) -> int:
        waited_a_window = now - waiter.enqueued_at + _EPSILON >= self._window
        if waited_a_window:
            return 0
        return waiter.keep_free * self._plan_seen // self._per_minute

    def _dispatch(self) -> None:
        """Grant every waiter the budget allows, in order; then set the timer for the rest."""
        now = self._clock.monotonic()
        free = self._available(now)
        waiting = [waiter for waiter in self._waiters if not waiter.future.done()]
        while free > 0 and (chosen := self._next_waiter(waiting, free, now)) is not None:
            waiting.remove(chosen)
            self._count_sent()
            free -= 1
            self._last_grant_was_foreground = chosen.keep_free == 0
            chosen.future.set_result(None)
        self._waiters = waiting
        self._schedule_timer(now)

    def _next_waiter(self, waiting: list[_Waiter], free: int, now: float) -> _Waiter | None:
        foreground = sum(1 for waiter in waiting if waiter.keep_free == 0)
        if self._last_grant_was_foreground and foreground >= free:
            # Taking turns: when foreground traffic alone would take every slot left, the
            # next one goes to background traffic, so each gets every other slot and neither
            # starves the other (a job submitted but never checked is as stuck as one never
            # submitted).
            background = next((waiter for waiter in waiting if waiter.keep_free > 0), None)
            if background is not None:
                return background
        return next((waiter for waiter in waiting if free > self._headroom(waiter, now)), None)

    def _next_change(self, now: float) -> float:
        """The earliest moment the passing of time alone could let a waiter through."""
        moments = [self._blocked_until]
        if self._answered:
            moments.append(self._answered[0] + self._window + _SLOT_SLACK)
        moments.extend(b.reset_at for b in self._server_budgets)
        moments.extend(
            w.enqueued_at + self._window for w in self._waiters if self._headroom(w, now) > 0
        )
        return min((m for m in moments if m > now + _EPSILON), default=math.inf)

    def _schedule_timer(self, now: float) -> None:
        deadline = self._next_change(now) if self._waiters else math.inf
        if self._timer is not None and (deadline < self._timer_deadline or not self._waiters):
            self._timer.cancel()
            self._timer = None
            self._timer_deadline = math.inf
        if self._timer is None and deadline < math.inf:
            self._timer_deadline = deadline
            self._timer = asyncio.get_running_loop().create_task(self._wake_at(deadline))

    async def _wake_at(self, deadline: float) -> None:
        await self._clock.sleep(deadline - self._clock.monotonic())
        self._timer = None
        self._timer_deadline = math.inf
        self._dispatch()

    # -- headers ------------------------------------------------------------------------------

    def _parse_reset(self, value: str | None) -> float | None:
        number = _parse_float(value)
        if number is None:
            return None
        if number >= EPOCH_THRESHOLD:
            number -= self._clock.now().timestamp()
        return min(max(number, 0.0), self._window)

    def _parse_retry_after(self, value: str | None) -> float | None:
        seconds = _parse_float(value)
        if seconds is None and value is not None:
            try:
                moment = parsedate_to_datetime(value.strip())
            except (TypeError, ValueError, IndexError):
                return None
            if moment.tzinfo is None:
                return None
            seconds = (moment - self._clock.now()).total_seconds()
        if seconds is None:
            return None
        return min(max(seconds, 0.0), self._window)


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_int(value: str | None) -> int | None:
    number = _parse_float(value)
    return None if number is None else math.floor(number)
