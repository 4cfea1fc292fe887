"""The GrokImagine client against the simulator (and a scripted server) over loopback HTTP.

Simulated time drives the simulator, the rate limiter and the client's backoff; only the
client's own network timeouts run on real time, and those are kept well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from bot.api_contract import DEFAULT_MODE, DEFAULT_RATIO, MODES, RATE_HEADROOM, RATIOS
from bot.grok import (
    GenerateRequest,
    GrokClient,
    GrokError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    SubmissionDeclined,
    SubmissionOutcomeUnknown,
    TaskPhase,
    TaskStatus,
    TransportError,
    UnauthorizedError,
)
from bot.ratelimit import RateLimiter
from bot.simulator import FAILURE_MESSAGES, Fault, Simulator, SimulatorConfig
from tests.support.clock import FakeClock
from tests.support.windows import most_in_any_window

TOKEN = "secret-token-value"
KEY = "job-42-submit"
WINDOW = 60.0
SHORT_TIMEOUT = aiohttp.ClientTimeout(total=2, connect=1, sock_read=0.3)
REQUEST = GenerateRequest(prompt="a lighthouse in a storm", mode="fun", ratio="1:1")

T = TypeVar("T")


async def drive(clock: FakeClock, call: Awaitable[T], *, step: float = 0.5) -> T:
    """Run ``call`` to its end, moving simulated time only while something sleeps on it."""
    task = asyncio.ensure_future(call)
    moved = 0.0
    # Real time bounds the test only as a safety net; nothing waits on it.
    async with asyncio.timeout(20):
        while not task.done():
            if clock.sleepers:
                assert moved < 30 * WINDOW, "the call never finished in simulated time"
                await clock.advance(step)
                moved += step
            else:
                await asyncio.sleep(0)  # let loopback I/O progress
    return await task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> SimulatorConfig:
    return SimulatorConfig(
        token=TOKEN, rate_limit_per_minute=100, min_seconds=20, max_seconds=60, seed=5
    )


@pytest.fixture
async def simulator(config: SimulatorConfig, clock: FakeClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(config, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


ClientFactory = Callable[..., GrokClient]


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession, simulator: Simulator, clock: FakeClock
) -> ClientFactory:
    def make(**overrides: Any) -> GrokClient:
        options: dict[str, Any] = {
            "base_url": simulator.url,
            "token": TOKEN,
            "limiter": RateLimiter(100, clock=clock),
            "clock": clock,
            "rng": random.Random(1),
        }
        options.update(overrides)
        return GrokClient(session, **options)

    return make


@pytest.fixture
def client(make_client: ClientFactory) -> GrokClient:
    return make_client()


async def submitted(client: GrokClient, clock: FakeClock) -> str:
    return await drive(clock, client.submit(REQUEST, idempotency_key=KEY))


# -- requests and answers ------------------------------------------------------------------


async def test_submit_and_status_happy_path(
    client: GrokClient, simulator: Simulator, clock: FakeClock
) -> None:
    request = GenerateRequest(
        prompt="a fox", mode="normal", ratio="9:16", images=("https://example.com/fox.png",)
    )
    task_id = await drive(clock, client.submit(request, idempotency_key=KEY))

    assert list(simulator.tasks) == [task_id]
    [sent] = simulator.requests
    assert sent.json == {
        "mode": "normal",
        "prompt": "a fox",
        "ratio": "9:16",
        "images": ["https://example.com/fox.png"],
    }
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Idempotency-Key"] == KEY
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("imagine-bot/")

    running = await drive(clock, client.status(task_id))
    assert running.task_id == task_id
    assert running.status == "pending"
    assert running.phase is TaskPhase.PENDING
    assert running.created_at == clock.now().replace(microsecond=0)
    assert running.created_at.tzinfo is UTC
    assert running.videos == ()
    assert running.error_message is None
    assert simulator.requests[-1].query == {"task_id": task_id}

    await clock.advance(10.0)
    simulator.complete_task(task_id)
    done = await drive(clock, client.status(task_id))
    assert done.phase is TaskPhase.COMPLETED
    assert done.consumed_credits == 40
    assert done.videos == (f"{simulator.url}/videos/{task_id}/1.mp4",)
    assert dict(done.request) == sent.json
    assert set(done.raw) == {
        "consumed_credits",
        "created_at",
        "status",
        "task_id",
        "error_message",
        "request",
        "response",
    }
    assert simulator.count("GET", "/v1/status") == 2


async def test_a_failed_task_reports_its_error_message(
    client: GrokClient, simulator: Simulator, clock: FakeClock
) -> None:
    task_id = await submitted(client, clock)
    simulator.fail_task(task_id, FAILURE_MESSAGES[1])
    failed = await drive(clock, client.status(task_id))
    assert failed.phase is TaskPhase.FAILED
    assert failed.status == "failed"
    assert failed.error_message == FAILURE_MESSAGES[1]
    assert failed.consumed_credits == 0


def test_generate_request_json_and_validation() -> None:
    assert REQUEST.to_json() == {"mode": "fun", "prompt": "a lighthouse in a storm", "ratio": "1:1"}
    assert "normal" in MODES
    assert "16:9" in RATIOS
    defaults = GenerateRequest(prompt="x")
    assert (defaults.mode, defaults.ratio) == (DEFAULT_MODE, DEFAULT_RATIO) == ("normal", "16:9")
    with pytest.raises(ValueError, match="mode"):
        GenerateRequest(prompt="x", mode="wild")
    with pytest.raises(ValueError, match="ratio"):
        GenerateRequest(prompt="x", ratio="4:3")
    with pytest.raises(ValueError, match="prompt"):
        GenerateRequest(prompt="  ")


@pytest.mark.parametrize(
    ("raw", "phase"),
    [
        ("completed", TaskPhase.COMPLETED),
        ("SUCCEEDED", TaskPhase.COMPLETED),
        ("success", TaskPhase.COMPLETED),
        ("failed", TaskPhase.FAILED),
        ("error", TaskPhase.FAILED),
        ("cancelled", TaskPhase.FAILED),
        ("canceled", TaskPhase.FAILED),
        ("pending", TaskPhase.PENDING),
        ("queued", TaskPhase.PENDING),
        ("processing", TaskPhase.PENDING),
        ("running", TaskPhase.PENDING),
        ("in_progress", TaskPhase.PENDING),
        (" Generating ", TaskPhase.PENDING),
        ("moderation_review", TaskPhase.UNKNOWN),
        ("", TaskPhase.UNKNOWN),
    ],
)
def test_status_strings_are_classified(raw: str, phase: TaskPhase) -> None:
    status = TaskStatus(
        task_id="t",
        status=raw,
        consumed_credits=None,
        created_at=None,
        error_message=None,
        request={},
        videos=(),
        raw={},
    )
    assert status.phase is phase


def test_the_token_never_shows_in_repr(client: GrokClient) -> None:
    assert TOKEN not in repr(client)
    assert "GrokClient(" in repr(client)


# -- errors that are final ------------------------------------------------------------------


async def test_invalid_request_keeps_the_api_message(
    client: GrokClient, simulator: Simulator, clock: FakeClock
) -> None:
    spicy_with_image = GenerateRequest(
        prompt="x", mode="spicy", images=("https://example.com/a.png",)
    )
    with pytest.raises(InvalidRequestError) as caught:
        await drive(clock, client.submit(spicy_with_image, idempotency_key=KEY))
    assert caught.value.message == "Invalid request: The spicy mode does not accept images"
    assert caught.value.error_code == "INVALID_REQUEST"
    assert "spicy" in str(caught.value)
    assert simulator.count("POST", "/v1/generate") == 1
    assert simulator.tasks == {}


async def test_status_of_an_unknown_task_is_not_retried(
    client: GrokClient, simulator: Simulator, clock: FakeClock
) -> None:
    with pytest.raises(InvalidRequestError, match="No task"):
        await drive(clock, client.status("task_missing"))
    assert simulator.count("GET", "/v1/status") == 1


async def test_a_wrong_token_is_unauthorized_and_not_retried(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock
) -> None:
    client = make_client(token="not-the-token")
    with pytest.raises(UnauthorizedError) as caught:
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert "not-the-token" not in str(caught.value)
    with pytest.raises(UnauthorizedError):
        await drive(clock, client.status("task_1"))
    assert simulator.count("POST", "/v1/generate") == 1
    assert simulator.count("GET", "/v1/status") == 1
    assert simulator.tasks == {}


@pytest.mark.parametrize("endpoint", ["generate", "status"])
async def test_an_unauthorized_answer_is_final(
    client: GrokClient, simulator: Simulator, clock: FakeClock, endpoint: str
) -> None:
    simulator.inject(Fault.UNAUTHORIZED, endpoint=endpoint)
    call = (
        client.submit(REQUEST, idempotency_key=KEY)
        if endpoint == "generate"
        else client.status("task_1")
    )
    with pytest.raises(UnauthorizedError):
        await drive(clock, call)
    assert len(simulator.requests) == 1


# -- the paid POST is never sent twice -------------------------------------------------------


# What each fault leaves behind on the server, and what the client blames.
AMBIGUOUS_SUBMISSIONS: dict[Fault, tuple[int, type[BaseException]]] = {
    Fault.DROP_CONNECTION: (1, aiohttp.ServerDisconnectedError),
    Fault.STALL: (1, TimeoutError),
    Fault.SERVER_ERROR_AFTER_ACCEPT: (1, ServerError),
    Fault.MALFORMED_JSON: (1, MalformedResponseError),
    Fault.WRONG_SHAPE: (1, MalformedResponseError),
    Fault.SERVER_ERROR: (0, ServerError),
    Fault.BODY_ERROR_CODE: (0, ServerError),
}


@pytest.mark.parametrize("fault", list(AMBIGUOUS_SUBMISSIONS))
async def test_a_submission_that_may_have_arrived_is_never_resent(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock, fault: Fault
) -> None:
    tasks_made, cause = AMBIGUOUS_SUBMISSIONS[fault]
    limiter = RateLimiter(100, clock=clock)
    client = make_client(timeout=SHORT_TIMEOUT, limiter=limiter)
    simulator.inject(fault, endpoint="generate")
    with pytest.raises(SubmissionOutcomeUnknown) as caught:
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert caught.value.idempotency_key == KEY
    assert isinstance(caught.value.cause, cause)
    assert simulator.count("POST", "/v1/generate") == 1
    assert len(simulator.tasks) == tasks_made
    assert limiter.in_flight == 0


async def test_a_submission_is_retried_when_the_connection_was_refused(
    simulator: Simulator, clock: FakeClock
) -> None:
    port = int(simulator.url.rsplit(":", 1)[1])
    await simulator.close()  # nothing listens on the port now: connections are refused
    refused = asyncio.Event()

    async def on_failure(*_: object) -> None:
        refused.set()

    tracing = aiohttp.TraceConfig()
    tracing.on_request_exception.append(on_failure)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        client = GrokClient(
            session,
            base_url=simulator.url,
            token=TOKEN,
            limiter=RateLimiter(100, clock=clock),
            clock=clock,
            rng=random.Random(1),
        )
        submission = asyncio.ensure_future(client.submit(REQUEST, idempotency_key=KEY))
        async with asyncio.timeout(10):
            await refused.wait()
        await simulator.start(port=port)  # listening again before the backoff ends
        task_id = await drive(clock, submission)

    assert list(simulator.tasks) == [task_id]
    assert simulator.count("POST", "/v1/generate") == 1
    assert simulator.requests[0].headers["Idempotency-Key"] == KEY


async def test_a_submission_gives_up_when_the_server_stays_unreachable(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock
) -> None:
    await simulator.close()
    limiter = RateLimiter(100, clock=clock)
    client = make_client(retry=RetryPolicy(attempts=3), limiter=limiter)
    with pytest.raises(TransportError, match="cannot connect"):
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert limiter.in_flight == 0


@pytest.mark.parametrize("reset_header", ["seconds", "epoch"])
async def test_a_rate_limited_submission_waits_as_told_then_succeeds(
    client: GrokClient,
    simulator: Simulator,
    clock: FakeClock,
    reset_header: str,
) -> None:
    simulator.config.reset_header = reset_header  # type: ignore[assignment]
    simulator.inject(Fault.RATE_LIMITED, endpoint="generate")
    task_id = await submitted(client, clock)

    refused, accepted = simulator.requests
    assert accepted.at - refused.at >= WINDOW  # the simulator said: retry after 60 s
    assert refused.headers["Idempotency-Key"] == accepted.headers["Idempotency-Key"] == KEY
    assert list(simulator.tasks) == [task_id]


async def test_a_rate_limit_longer_than_allowed_is_reported(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock
) -> None:
    client = make_client(retry=RetryPolicy(max_rate_limit_wait=10.0))
    simulator.inject(Fault.RATE_LIMITED, endpoint="generate")
    with pytest.raises(RateLimitedError) as caught:
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert caught.value.retry_after == pytest.approx(WINDOW)
    assert simulator.count("POST", "/v1/generate") == 1


# -- status checks are retried -------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.SERVER_ERROR,
        Fault.BODY_ERROR_CODE,
        Fault.MALFORMED_JSON,
        Fault.WRONG_SHAPE,
        Fault.DROP_CONNECTION,
        Fault.STALL,
    ],
)
async def test_status_recovers_from_transient_failures(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock, fault: Fault
) -> None:
    client = make_client(timeout=SHORT_TIMEOUT)
    task_id = await submitted(client, clock)
    simulator.inject(fault, endpoint="status", times=2)
    status = await drive(clock, client.status(task_id))
    assert status.task_id == task_id
    assert simulator.count("GET", "/v1/status") == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.SERVER_ERROR, ServerError),
        (Fault.BODY_ERROR_CODE, ServerError),
        (Fault.MALFORMED_JSON, MalformedResponseError),
        (Fault.WRONG_SHAPE, MalformedResponseError),
        (Fault.DROP_CONNECTION, TransportError),
        (Fault.STALL, TransportError),
    ],
)
async def test_status_gives_up_after_its_attempts(
    make_client: ClientFactory,
    simulator: Simulator,
    clock: FakeClock,
    fault: Fault,
    error: type[GrokError],
) -> None:
    client = make_client(timeout=SHORT_TIMEOUT, retry=RetryPolicy(attempts=3))
    task_id = await submitted(client, clock)
    simulator.inject(fault, endpoint="status", times=3)
    with pytest.raises(error) as caught:
        await drive(clock, client.status(task_id))
    assert simulator.count("GET", "/v1/status") == 3
    if isinstance(caught.value, ServerError):
        assert caught.value.status == 500
    if isinstance(caught.value, MalformedResponseError):
        assert caught.value.detail


async def test_status_backoff_is_capped_exponential_with_jitter(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock
) -> None:
    policy = RetryPolicy(attempts=4, base_delay=2.0, max_delay=5.0)
    client = make_client(retry=policy)
    task_id = await submitted(client, clock)
    simulator.inject(Fault.SERVER_ERROR, endpoint="status", times=3)
    await drive(clock, client.status(task_id), step=0.05)

    at = [seen.at for seen in simulator.requests if seen.method == "GET"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(at)]
    ceilings = [2.0, 4.0, 5.0]
    assert len(gaps) == 3
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert 0.0 <= gap <= ceiling + 0.05


@pytest.mark.parametrize("reset_header", ["seconds", "epoch"])
async def test_a_rate_limited_status_check_waits_then_succeeds(
    client: GrokClient, simulator: Simulator, clock: FakeClock, reset_header: str
) -> None:
    simulator.config.reset_header = reset_header  # type: ignore[assignment]
    task_id = await submitted(client, clock)
    simulator.inject(Fault.RATE_LIMITED, endpoint="status")
    status = await drive(clock, client.status(task_id))
    assert status.task_id == task_id
    accepted = [seen for seen in simulator.requests if seen.method == "GET"][1]
    # The window began with the submission; the 429 said to wait for the rest of it.
    assert accepted.at >= simulator.requests[0].at + WINDOW


# -- the shared budget -------------------------------------------------------------------------


async def test_many_callers_never_exceed_the_plan_in_any_window(
    make_client: ClientFactory, simulator: Simulator, clock: FakeClock
) -> None:
    simulator.config.rate_limit_per_minute = 20
    client = make_client(limiter=RateLimiter(20, clock=clock))
    task_id = await submitted(client, clock)

    checks = [client.status(task_id) for _ in range(70)]
    results = await drive(clock, asyncio.gather(*checks))

    assert len(results) == 70
    assert simulator.count("GET", "/v1/status") == 70  # not one refused and retried
    assert most_in_any_window([seen.at for seen in simulator.requests]) <= 20


@pytest.mark.parametrize("reset_header", ["seconds", "epoch"])
async def test_the_servers_headers_correct_a_too_generous_plan(
    make_client: ClientFactory,
    simulator: Simulator,
    clock: FakeClock,
    reset_header: str,
) -> None:
    """The key's real plan is smaller than configured: the headers keep us out of 429s."""
    simulator.config.rate_limit_per_minute = 6
    simulator.config.reset_header = reset_header  # type: ignore[assignment]
    client = make_client(limiter=RateLimiter(100, clock=clock), status_headroom=0)
    task_id = await submitted(client, clock)

    for _ in range(10):  # one by one, so every answer's headers are seen before the next
        await drive(clock, client.status(task_id))

    assert simulator.count("GET", "/v1/status") == 10  # nothing was refused
    times = [seen.at for seen in simulator.requests]
    assert times[6] - times[0] >= WINDOW


@pytest.mark.parametrize(("per_minute", "headroom"), [(1000, 100), (100, 10), (5, 1), (1, 0)])
def test_status_checks_leave_the_contracts_headroom_to_submissions(
    make_client: ClientFactory, clock: FakeClock, per_minute: int, headroom: int
) -> None:
    """10 % of the plan (RATE_HEADROOM), at least one slot, never the whole plan."""
    assert RATE_HEADROOM == 0.1
    client = make_client(limiter=RateLimiter(per_minute, clock=clock))
    assert client._status_headroom == headroom


# -- a scripted server for answers the simulator never gives ----------------------------------


class ScriptedServer:
    """Answers each request with the next scripted reply."""

    def __init__(self) -> None:
        self.replies: list[web.Response] = []
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None

    def reply(self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.replies.append(
            web.Response(body=raw, status=status, headers=headers, content_type="application/json")
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path}")
        return self.replies.pop(0)


@pytest.fixture
async def scripted(
    session: aiohttp.ClientSession, clock: FakeClock
) -> AsyncIterator[tuple[ScriptedServer, GrokClient]]:
    server = ScriptedServer()
    url = await server.start()
    client = GrokClient(
        session,
        base_url=url,
        token=TOKEN,
        limiter=RateLimiter(100, clock=clock),
        clock=clock,
        retry=RetryPolicy(attempts=1),
        rng=random.Random(1),
    )
    yield server, client
    await server.close()


def status_body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "consumed_credits": 40,
        "created_at": "2024-01-01T00:00:00Z",
        "status": "completed",
        "task_id": "task_1",
        "error_message": None,
        "request": {"mode": "fun", "prompt": "p", "ratio": "1:1"},
        "response": ["https://cdn.example.com/v1.mp4", "https://cdn.example.com/v2.mp4"],
    }
    data.update(changes)
    return {"code": 200, "message": "success", "data": data}


async def test_the_reference_example_parses(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock
) -> None:
    server, client = scripted
    server.reply(status_body())
    status = await drive(clock, client.status("task_1"))
    assert status.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert status.videos == ("https://cdn.example.com/v1.mp4", "https://cdn.example.com/v2.mp4")
    assert status.consumed_credits == 40
    assert status.phase is TaskPhase.COMPLETED


async def test_unknown_status_values_and_fields_are_kept(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock
) -> None:
    server, client = scripted
    server.reply(status_body(status="awaiting_moderation", eta_seconds=12, response=None))
    status = await drive(clock, client.status("task_1"))
    assert status.status == "awaiting_moderation"
    assert status.phase is TaskPhase.UNKNOWN
    assert status.raw["eta_seconds"] == 12
    assert status.videos == ()


async def test_tolerable_variations_are_accepted(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock
) -> None:
    server, client = scripted
    body = status_body(
        consumed_credits=40.0,
        created_at="2024-01-01T02:00:00+02:00",
        request=None,
        response="https://cdn.example.com/only.mp4",
    )
    body["code"] = "200"
    server.reply(body)
    status = await drive(clock, client.status("task_1"))
    assert status.consumed_credits == 40
    assert status.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert dict(status.request) == {}
    assert status.videos == ("https://cdn.example.com/only.mp4",)


@pytest.mark.parametrize("created_at", ["yesterday", 1704067200, None, "2024-13-45T00:00:00Z"])
async def test_an_unreadable_created_at_is_none(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock, created_at: Any
) -> None:
    server, client = scripted
    server.reply(status_body(created_at=created_at))
    status = await drive(clock, client.status("task_1"))
    assert status.created_at is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"consumed_credits": "forty"}, "consumed_credits"),
        ({"consumed_credits": -40}, "consumed_credits"),
        ({"status": 3}, "status"),
        ({"status": None}, "status"),
        ({"task_id": "task_2"}, "task_id"),
        ({"error_message": ["bad"]}, "error_message"),
        ({"request": "fun"}, "request"),
        ({"response": {"url": "x"}}, "response"),
        ({"response": ["https://ok", 7]}, "response[1]"),
    ],
)
async def test_wrong_types_name_the_field(
    scripted: tuple[ScriptedServer, GrokClient],
    clock: FakeClock,
    changes: dict[str, Any],
    field: str,
) -> None:
    server, client = scripted
    server.reply(status_body(**changes))
    with pytest.raises(MalformedResponseError) as caught:
        await drive(clock, client.status("task_1"))
    assert f"data.{field}" in caught.value.detail


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"[1, 2]", {"code": [200], "data": {}}, {"code": 200}],
)
async def test_malformed_status_bodies(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock, body: Any
) -> None:
    server, client = scripted
    server.reply(body)
    with pytest.raises(MalformedResponseError):
        await drive(clock, client.status("task_1"))


async def test_a_body_code_counts_even_on_http_200(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock
) -> None:
    server, client = scripted
    server.reply({"code": 400, "message": "Invalid request: bad ratio", "error": "INVALID_REQUEST"})
    with pytest.raises(InvalidRequestError) as caught:
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert caught.value.message == "Invalid request: bad ratio"
    server.reply({"code": 401, "message": "nope"})
    with pytest.raises(UnauthorizedError):
        await drive(clock, client.status("task_1"))


async def test_a_redirect_is_not_followed_and_leaves_the_outcome_unknown(
    scripted: tuple[ScriptedServer, GrokClient], clock: FakeClock
) -> None:
    server, client = scripted
    server.reply({}, status=302, headers={"Location": "/elsewhere"})
    with pytest.raises(SubmissionOutcomeUnknown):
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY))
    assert server.seen == ["POST /v1/generate"]


@pytest.mark.parametrize("form", ["seconds", "epoch"])
async def test_a_429_with_only_a_reset_header_is_waited_out(
    session: aiohttp.ClientSession, clock: FakeClock, form: str
) -> None:
    server = ScriptedServer()
    url = await server.start()
    limiter = RateLimiter(100, clock=clock)
    client = GrokClient(session, base_url=url, token=TOKEN, limiter=limiter, clock=clock)
    reset = "25" if form == "seconds" else str(int(clock.now().timestamp()) + 25)
    server.reply(
        {"code": 429, "message": "slow down"},
        status=429,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )
    server.reply({"code": 200, "message": "success", "data": {"task_id": "task_9"}})
    started = clock.monotonic()
    try:
        assert await drive(clock, client.submit(REQUEST, idempotency_key=KEY)) == "task_9"
    finally:
        await server.close()
    assert clock.monotonic() - started >= 25.0
    assert server.seen == ["POST /v1/generate"] * 2


async def test_before_send_runs_with_a_slot_in_hand_and_can_withdraw(
    client: GrokClient, simulator: Simulator, clock: FakeClock
) -> None:
    calls: list[int] = []

    async def decline() -> bool:
        calls.append(simulator.count("POST", "/v1/generate"))
        return False

    with pytest.raises(SubmissionDeclined):
        await drive(clock, client.submit(REQUEST, idempotency_key=KEY, before_send=decline))
    assert calls == [0]
    assert simulator.count("POST", "/v1/generate") == 0

    async def accept() -> bool:
        calls.append(simulator.count("POST", "/v1/generate"))
        return True

    task_id = await drive(clock, client.submit(REQUEST, idempotency_key=KEY, before_send=accept))
    assert task_id in simulator.tasks
    assert calls == [0, 0]
