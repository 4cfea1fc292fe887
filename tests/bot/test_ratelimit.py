"""The shared rate budget, driven by a fake clock: every wait is simulated time."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import timedelta
from email.utils import format_datetime

import pytest

from bot.ratelimit import RateLimiter
from tests.support.clock import FakeClock
from tests.support.windows import most_in_any_window

WINDOW = 60.0


class Callers:
    """Tasks that acquire, note when they were let through, and release."""

    def __init__(self, limiter: RateLimiter, clock: FakeClock) -> None:
        self.limiter = limiter
        self.clock = clock
        self.sent: list[float] = []
        self.order: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str = "", *, keep_free: int = 0, hold: float = 0.0) -> None:
        self.tasks.append(asyncio.create_task(self._call(name, keep_free, hold)))

    async def _call(self, name: str, keep_free: int, hold: float) -> None:
        await self.limiter.acquire(keep_free=keep_free)
        self.sent.append(self.clock.monotonic() - 1000.0)
        self.order.append(name)
        try:
            await self.clock.sleep(hold)
        finally:
            self.limiter.release()

    async def cancel_rest(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def acquire_now(limiter: RateLimiter, clock: FakeClock, *, keep_free: int = 0) -> bool:
    """Whether an acquire goes through without any time passing (it is withdrawn if not)."""
    task = asyncio.create_task(limiter.acquire(keep_free=keep_free))
    await clock.settle()
    if task.done():
        return True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return False


async def test_three_hundred_callers_never_exceed_the_plan_in_any_window(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(100, clock=clock)
    callers = Callers(limiter, clock)
    for _ in range(300):
        callers.start()
    await clock.settle()
    assert len(callers.sent) == 100  # no initial burst beyond the plan

    await clock.run_until(lambda: len(callers.sent) == 300, limit=5 * WINDOW)

    assert most_in_any_window(callers.sent) == 100
    # Full use of the plan: one batch per window (plus the closed-window slack).
    assert max(callers.sent) == pytest.approx(2 * WINDOW, abs=0.01)
    assert limiter.in_flight == 0


async def test_random_arrivals_and_durations_stay_within_the_plan(clock: FakeClock) -> None:
    rng = random.Random(7)
    limiter = RateLimiter(30, clock=clock)
    callers = Callers(limiter, clock)
    for _ in range(240):
        await clock.advance(rng.uniform(0.0, 2.0))
        callers.start(keep_free=rng.choice((0, 0, 3)), hold=rng.uniform(0.05, 5.0))
    await clock.run_until(lambda: len(callers.sent) == 240, limit=20 * WINDOW)
    await clock.advance(10.0)

    assert most_in_any_window(callers.sent) <= 30
    assert limiter.in_flight == 0


async def test_no_initial_burst_and_the_window_slides(clock: FakeClock) -> None:
    limiter = RateLimiter(5, clock=clock)
    assert limiter.available() == 5
    assert limiter.per_second() == pytest.approx(5 / 60)
    for _ in range(5):
        assert await acquire_now(limiter, clock)
        limiter.release()
    assert limiter.available() == 0

    await clock.advance(WINDOW - 0.5)
    assert limiter.available() == 0
    assert not await acquire_now(limiter, clock)
    await clock.advance(0.6)
    assert limiter.available() == 5


async def test_requests_in_flight_hold_their_slot_until_answered(clock: FakeClock) -> None:
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        await limiter.acquire()
    assert limiter.in_flight == 3

    await clock.advance(3 * WINDOW)  # long-running requests: still counted
    assert limiter.available() == 0
    callers = Callers(limiter, clock)
    callers.start("late")
    await clock.settle()
    assert callers.sent == []

    limiter.release()  # answered now: the server counted it at some moment until now
    await clock.advance(WINDOW - 1.0)
    assert callers.sent == []
    await clock.advance(1.1)
    assert callers.sent == [pytest.approx(4 * WINDOW, abs=0.01)]
    assert limiter.in_flight == 2


async def test_keep_free_leaves_headroom_for_other_callers(clock: FakeClock) -> None:
    limiter = RateLimiter(10, clock=clock)
    callers = Callers(limiter, clock)
    for index in range(10):
        callers.start(f"poll{index}", keep_free=3)
    await clock.settle()
    assert len(callers.sent) == 7  # three slots stay free

    callers.start("submit-a")
    callers.start("submit-b")
    await clock.settle()
    assert callers.order[-2:] == ["submit-a", "submit-b"]
    assert limiter.available() == 1

    await clock.advance(WINDOW + 1.0)
    # A new window: the waiting status checks go, in arrival order.
    assert callers.order[9:] == ["poll7", "poll8", "poll9"]
    await callers.cancel_rest()


async def test_equal_keep_free_waiters_are_served_in_arrival_order(clock: FakeClock) -> None:
    limiter = RateLimiter(2, clock=clock)
    callers = Callers(limiter, clock)
    for index in range(8):
        callers.start(str(index))
        await clock.settle()
    await clock.run_until(lambda: len(callers.sent) == 8, limit=5 * WINDOW)
    assert callers.order == [str(index) for index in range(8)]


async def test_a_waiter_with_headroom_is_not_overtaken_forever(clock: FakeClock) -> None:
    limiter = RateLimiter(4, clock=clock)
    callers = Callers(limiter, clock)
    # Submissions arrive at exactly the plan's rate, so a slot frees only one at a time and
    # is always taken at once: alone, a status check needing two slots of headroom never fits.
    for step in range(14):
        callers.start("submit")
        if step == 2:
            await clock.advance(1.0)
            callers.start("poll", keep_free=2)
            await clock.advance(14.0)
        else:
            await clock.advance(15.0)

    assert "poll" in callers.order
    polled_at = callers.sent[callers.order.index("poll")]
    # Submissions take every slot as it frees, so the two take turns: the status check gets
    # the slot after the next submission instead of waiting for its headroom forever.
    assert 31.0 < polled_at <= 31.0 + 15.0
    assert most_in_any_window(callers.sent) <= 4
    await callers.cancel_rest()


async def test_remaining_header_caps_requests_until_reset_in_seconds(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    await limiter.acquire()
    others = [asyncio.create_task(limiter.acquire()) for _ in range(2)]
    await clock.settle()
    # The server saw our first request; the other two may not have reached it yet.
    limiter.observe(status=200, remaining="5", reset="20", retry_after=None)
    limiter.release()
    assert limiter.available() == 3
    await asyncio.gather(*others)

    callers = Callers(limiter, clock)
    for _ in range(5):
        callers.start()
    await clock.settle()
    assert len(callers.sent) == 3
    await clock.advance(19.9)
    assert len(callers.sent) == 3
    await clock.advance(0.2)
    assert len(callers.sent) == 5  # after the reset the local window decides again
    for _ in range(2):
        limiter.release()
    assert limiter.available() == 100 - 3 - 5


async def test_reset_as_epoch_seconds_is_read_against_the_wall_clock(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    await limiter.acquire()
    reset_epoch = clock.now().timestamp() + 30
    limiter.observe(status=200, remaining="0", reset=str(int(reset_epoch)), retry_after=None)
    limiter.release()
    assert limiter.available() == 0

    callers = Callers(limiter, clock)
    callers.start()
    await clock.advance(29.9)
    assert callers.sent == []
    await clock.advance(0.2)
    assert callers.sent == [pytest.approx(30.0)]


@pytest.mark.parametrize(
    ("reset", "blocked_for"),
    [
        ("86400", WINDOW),  # a delta beyond the window is clamped to it
        ("1790000000000", WINDOW),  # an epoch in milliseconds (or far future): clamped
        ("1000000000", 0.0),  # an epoch in the past: already reset
        ("-5", 0.0),
        ("12.5", 12.5),
    ],
)
async def test_reset_is_clamped_to_the_window(
    clock: FakeClock, reset: str, blocked_for: float
) -> None:
    limiter = RateLimiter(100, clock=clock)
    limiter.observe(status=429, remaining="0", reset=reset, retry_after=None)
    assert limiter.blocked_for() == pytest.approx(blocked_for)


@pytest.mark.parametrize(
    ("remaining", "reset", "retry_after"),
    [
        ("many", "soon", "later"),
        ("", " ", ""),
        ("nan", "inf", "-inf"),
        ("1e999", "0x10", "Wed, 99 Foo 2026"),
    ],
)
async def test_garbage_headers_are_ignored(
    clock: FakeClock, remaining: str, reset: str, retry_after: str
) -> None:
    limiter = RateLimiter(10, clock=clock)
    limiter.observe(status=200, remaining=remaining, reset=reset, retry_after=retry_after)
    assert limiter.available() == 10
    limiter.observe(status=429, remaining=remaining, reset=reset, retry_after=retry_after)
    assert limiter.blocked_for() == pytest.approx(WINDOW)  # nothing usable: the default wait


async def test_a_429_blocks_every_request_until_retry_after(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    await limiter.acquire()
    limiter.observe(status=429, remaining=None, reset="50", retry_after="17")
    limiter.release()
    assert limiter.available() == 0
    assert limiter.blocked_for() == pytest.approx(17.0)

    callers = Callers(limiter, clock)
    callers.start("submit")
    callers.start("poll", keep_free=5)
    await clock.advance(16.9)
    assert callers.sent == []
    await clock.advance(0.2)
    assert callers.sent == [pytest.approx(17.0)] * 2
    assert limiter.blocked_for() == 0.0


async def test_a_429_retry_after_may_be_an_http_date(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    moment = clock.now().replace(microsecond=0)
    limiter.observe(
        status=429, remaining=None, reset=None, retry_after=format_datetime(moment, usegmt=True)
    )
    assert limiter.blocked_for() == pytest.approx(0.0)
    later = format_datetime(moment + timedelta(seconds=25), usegmt=True)
    limiter.observe(status=429, remaining=None, reset=None, retry_after=later)
    assert limiter.blocked_for() == pytest.approx(25.0)


@pytest.mark.parametrize("form", ["seconds", "epoch"])
async def test_a_429_without_retry_after_waits_for_the_reset(clock: FakeClock, form: str) -> None:
    limiter = RateLimiter(100, clock=clock)
    reset = "40" if form == "seconds" else str(int(clock.now().timestamp()) + 40)
    limiter.observe(status=429, remaining=None, reset=reset, retry_after=None)
    callers = Callers(limiter, clock)
    callers.start()
    await clock.advance(39.9)
    assert callers.sent == []
    await clock.advance(0.2)
    assert callers.sent == [pytest.approx(40.0)]


async def test_a_429_without_any_wait_blocks_a_whole_window(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    limiter.observe(status=429, remaining=None, reset="garbage", retry_after=None)
    assert limiter.blocked_for() == pytest.approx(WINDOW)


async def test_a_later_answer_cannot_lift_an_earlier_limit(clock: FakeClock) -> None:
    limiter = RateLimiter(100, clock=clock)
    limiter.observe(status=200, remaining="1", reset="30", retry_after=None)
    # An answer that was under way for a while reports the budget as it was before.
    limiter.observe(status=200, remaining="50", reset="40", retry_after=None)
    assert limiter.available() == 1
    await clock.advance(30.5)
    assert limiter.available() == 50


async def test_steady_load_never_runs_into_a_refusal(clock: FakeClock) -> None:
    """Callers hammer a fixed-window server of the same plan, with network latency."""
    limit = 20
    limiter = RateLimiter(limit, clock=clock)
    rng = random.Random(3)
    window_started: float | None = None
    used = 0
    refused = 0
    answered = 0

    async def call() -> None:
        nonlocal window_started, used, refused, answered
        await limiter.acquire(keep_free=rng.choice((0, 2)))
        try:
            await clock.sleep(rng.uniform(0.01, 0.5))  # the request travels
            now = clock.monotonic()
            if window_started is None or now >= window_started + WINDOW:
                window_started, used = now, 0
            used += 1
            refused += used > limit
            await clock.sleep(rng.uniform(0.01, 0.5))  # the answer travels back
            reset_in = window_started + WINDOW - clock.monotonic()
            limiter.observe(
                status=429 if used > limit else 200,
                remaining=str(max(0, limit - used)),
                reset=str(max(1, math.ceil(reset_in))),
                retry_after=None,
            )
            answered += 1
        finally:
            limiter.release()

    tasks = []
    for _ in range(200):
        tasks.append(asyncio.create_task(call()))
        await clock.advance(rng.uniform(0.0, 1.0))
    await clock.run_until(lambda: answered == 200, limit=20 * WINDOW, step=0.1)
    await asyncio.gather(*tasks)
    assert refused == 0


async def test_a_cancelled_waiter_gives_its_place_up(clock: FakeClock) -> None:
    limiter = RateLimiter(1, clock=clock)
    await limiter.acquire()
    limiter.release()
    waiting = asyncio.create_task(limiter.acquire())
    await clock.settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    callers = Callers(limiter, clock)
    callers.start("next")
    await clock.advance(WINDOW + 1.0)
    assert callers.order == ["next"]
    assert limiter.in_flight == 0


async def test_release_without_acquire_is_a_bug(clock: FakeClock) -> None:
    limiter = RateLimiter(1, clock=clock)
    with pytest.raises(RuntimeError):
        limiter.release()


async def test_invalid_arguments_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        RateLimiter(0, clock=clock)
    limiter = RateLimiter(1, clock=clock)
    with pytest.raises(ValueError, match="keep_free"):
        await limiter.acquire(keep_free=-1)


async def test_headroom_shrinks_when_the_server_enforces_a_smaller_plan() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock)
    await limiter.acquire()
    # The server's plan is really 100 a minute: 99 left after this request.
    limiter.observe(status=200, remaining="99", reset="60", retry_after=None)
    limiter.release()
    # A status check asking for 10 % headroom of the configured 1000 must not wait a window.
    waiter = asyncio.ensure_future(limiter.acquire(keep_free=100))
    await clock.settle()
    assert waiter.done()
    limiter.release()


async def test_saturated_foreground_and_background_traffic_take_turns() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    granted: list[str] = []

    async def request(kind: str, keep_free: int) -> None:
        await limiter.acquire(keep_free=keep_free)
        granted.append(kind)
        limiter.release()

    # Far more of both than the budget serves in the next minutes: submissions (no headroom)
    # and status checks (headroom 2) all queue at once.
    tasks = [asyncio.ensure_future(request("submit", 0)) for _ in range(30)]
    tasks += [asyncio.ensure_future(request("status", 2)) for _ in range(30)]
    await clock.settle()
    for _ in range(3 * 60):
        await clock.advance(1)
    assert len(granted) == 30  # ten a minute
    # The first minute went to the submissions queued first; from then on they take turns.
    assert granted[:10] == ["submit"] * 10
    assert granted[10:30] == ["status", "submit"] * 10
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
