"""The GrokImagine simulator, spoken to over real loopback HTTP and driven by a fake clock."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.simulator import (
    FAILURE_MESSAGES,
    Fault,
    SimulatedTask,
    Simulator,
    SimulatorConfig,
    build_parser,
    config_from_args,
    first_durations,
    main,
)
from tests.support.clock import FakeClock

TOKEN = "test-token"
SAMPLE_MP4 = Path(__file__).resolve().parents[2] / "bot" / "assets" / "sample.mp4"
REFERENCE_GENERATE = {
    "mode": "fun",
    "prompt": "a beautiful landscape with mountains",
    "ratio": "1:1",
}
RATE_HEADERS = ("X-RateLimit-Remaining", "X-RateLimit-Reset")
UNAUTHORIZED = {
    "code": 401,
    "message": "Unauthorized: invalid or missing API token",
    "error": "UNAUTHORIZED",
}
RATE_LIMITED = {
    "code": 429,
    "message": "Rate limit exceeded, please retry later",
    "error": "RATE_LIMITED",
}
INTERNAL_ERROR = {"code": 500, "message": "Internal server error", "error": "INTERNAL_ERROR"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> SimulatorConfig:
    return SimulatorConfig(token=TOKEN, min_seconds=100.0, max_seconds=100.0, seed=1)


@pytest.fixture
def control() -> bool:
    """Whether ``simulator`` serves ``/_sim``; tests that need it parametrize this to True."""
    return False


@pytest.fixture
async def simulator(
    config: SimulatorConfig, clock: FakeClock, control: bool
) -> AsyncIterator[Simulator]:
    simulator = Simulator(config, clock=clock, control=control)
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def session(simulator: Simulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=simulator.url) as session:
        yield session


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def generate(
    session: aiohttp.ClientSession, body: Any = None, *, token: str = TOKEN
) -> tuple[int, Any, dict[str, str]]:
    async with session.post(
        "/v1/generate", json=REFERENCE_GENERATE if body is None else body, headers=auth(token)
    ) as response:
        return response.status, await response.json(), dict(response.headers)


async def status(
    session: aiohttp.ClientSession, task_id: str, *, token: str = TOKEN
) -> tuple[int, Any, dict[str, str]]:
    async with session.get(
        "/v1/status", params={"task_id": task_id}, headers=auth(token)
    ) as response:
        return response.status, await response.json(), dict(response.headers)


async def new_task(session: aiohttp.ClientSession, **changes: Any) -> str:
    code, body, _ = await generate(session, {**REFERENCE_GENERATE, **changes})
    assert code == 200, body
    return body["data"]["task_id"]


def invalid(message: str) -> dict[str, Any]:
    return {"code": 400, "message": f"Invalid request: {message}", "error": "INVALID_REQUEST"}


# ----- the reference's examples


async def test_reference_generate_example(simulator: Simulator, session: aiohttp.ClientSession):
    code, body, headers = await generate(session)

    assert code == 200
    assert body["code"] == 200
    assert body["message"] == "success"
    task_id = body["data"]["task_id"]
    assert re.fullmatch(r"task_[0-9a-f]+", task_id)
    assert set(body["data"]) == {"task_id"}
    assert task_id in simulator.tasks
    assert headers["Content-Type"].startswith("application/json")


async def test_reference_status_example(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    await clock.advance(0.75)  # created_at has second resolution
    task_id = await new_task(session)
    await clock.advance(100)

    code, body, _ = await status(session, task_id)

    assert code == 200
    assert body == {
        "code": 200,
        "message": "success",
        "data": {
            "consumed_credits": 40,
            "created_at": "2026-01-05T12:00:00Z",
            "status": "completed",
            "task_id": task_id,
            "error_message": None,
            "request": REFERENCE_GENERATE,
            "response": [f"{simulator.url}/videos/{task_id}/1.mp4"],
        },
    }


# ----- authentication


@pytest.mark.parametrize(
    "config", [SimulatorConfig(token=TOKEN, min_seconds=30, max_seconds=90, seed=7)]
)
async def test_a_seeded_simulators_durations_are_known_in_advance(
    simulator: Simulator, session: aiohttp.ClientSession, config: SimulatorConfig
) -> None:
    for _ in range(3):
        await generate(session)

    created = [task.duration for task in simulator.tasks.values()]
    assert first_durations(config, 3) == created
    assert len(set(created)) == 3


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": f"Basic {TOKEN}"}, auth("wrong")],
    ids=["none", "empty", "not-bearer", "wrong"],
)
async def test_requests_without_the_token_are_refused(
    simulator: Simulator, session: aiohttp.ClientSession, headers: dict[str, str]
):
    async with session.post("/v1/generate", json=REFERENCE_GENERATE, headers=headers) as response:
        assert response.status == 401
        assert await response.json() == UNAUTHORIZED
        assert all(name in response.headers for name in RATE_HEADERS)
    async with session.get("/v1/status", params={"task_id": "x"}, headers=headers) as response:
        assert response.status == 401
    assert simulator.tasks == {}


async def test_any_non_empty_token_works_when_none_is_configured(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.config.token = None

    code, _, _ = await generate(session, token="whatever")

    assert code == 200


# ----- validation


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([REFERENCE_GENERATE], "the body must be a JSON object"),
        ({"mode": "fun", "ratio": "1:1"}, "The prompt parameter is required"),
        ({**REFERENCE_GENERATE, "prompt": "  "}, "The prompt parameter is required"),
        ({**REFERENCE_GENERATE, "prompt": 7}, "The prompt parameter must be a string"),
        (
            {**REFERENCE_GENERATE, "prompt": "x" * 4001},
            "The prompt must be at most 4000 characters",
        ),
        (
            {**REFERENCE_GENERATE, "mode": "wild"},
            "The mode parameter must be one of fun, normal, spicy",
        ),
        ({"prompt": "p", "ratio": "1:1"}, "The mode parameter must be one of fun, normal, spicy"),
        (
            {**REFERENCE_GENERATE, "ratio": "4:3"},
            "The ratio parameter must be one of 16:9, 9:16, 1:1, 2:3, 3:2",
        ),
        (
            {**REFERENCE_GENERATE, "images": "https://example.com/a.png"},
            "The images parameter must be a list of http(s) URLs",
        ),
        (
            {**REFERENCE_GENERATE, "images": ""},
            "The images parameter must be a list of http(s) URLs",
        ),
        (
            {**REFERENCE_GENERATE, "images": ["ftp://example.com/a.png"]},
            "The images parameter must be a list of http(s) URLs",
        ),
        (
            {**REFERENCE_GENERATE, "images": [f"https://example.com/{n}.png" for n in range(8)]},
            "At most 7 images are allowed",
        ),
        (
            {**REFERENCE_GENERATE, "mode": "spicy", "images": ["https://example.com/a.png"]},
            "The spicy mode does not accept images",
        ),
    ],
    ids=[
        "not-object",
        "no-prompt",
        "blank-prompt",
        "prompt-not-string",
        "prompt-too-long",
        "bad-mode",
        "no-mode",
        "bad-ratio",
        "images-not-list",
        "images-empty-string",
        "image-not-http",
        "too-many-images",
        "spicy-with-images",
    ],
)
async def test_generate_rejects_invalid_requests(
    simulator: Simulator, session: aiohttp.ClientSession, body: Any, message: str
):
    code, answer, headers = await generate(session, body)

    assert code == 400
    assert answer == invalid(message)
    assert all(name in headers for name in RATE_HEADERS)
    assert simulator.tasks == {}


async def test_generate_rejects_a_body_that_is_not_json(
    simulator: Simulator, session: aiohttp.ClientSession
):
    async with session.post("/v1/generate", data=b"mode=fun", headers=auth()) as response:
        assert response.status == 400
        assert await response.json() == invalid("the body must be a JSON object")


async def test_generate_accepts_the_limits_and_echoes_images(
    simulator: Simulator, session: aiohttp.ClientSession
):
    images = [f"https://example.com/{n}.png" for n in range(7)]
    task_id = await new_task(session, mode="normal", prompt="x" * 4000, ratio="9:16", images=images)

    _, body, _ = await status(session, task_id)

    assert body["data"]["request"] == {
        "mode": "normal",
        "prompt": "x" * 4000,
        "ratio": "9:16",
        "images": images,
    }


async def test_status_needs_a_known_task_id(simulator: Simulator, session: aiohttp.ClientSession):
    async with session.get("/v1/status", headers=auth()) as response:
        assert response.status == 400
        assert await response.json() == invalid("The task_id parameter is required")

    code, body, _ = await status(session, "task_404")

    assert code == 400
    assert body == invalid("No task with task_id task_404")


# ----- lifecycle


async def test_status_moves_from_pending_to_processing_to_completed(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await new_task(session)
    seen: list[tuple[str, int, list[str]]] = []
    for step in (0.0, 9.9, 0.1, 89.9, 0.1):
        await clock.advance(step)
        _, body, _ = await status(session, task_id)
        data = body["data"]
        seen.append((data["status"], data["consumed_credits"], data["response"]))
        assert data["error_message"] is None

    video = f"{simulator.url}/videos/{task_id}/1.mp4"
    assert seen == [
        ("pending", 0, []),
        ("pending", 0, []),
        ("processing", 0, []),
        ("processing", 0, []),
        ("completed", 40, [video]),
    ]


async def test_completed_task_lists_every_video_under_the_public_url(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    simulator.config.videos_per_task = 2
    simulator.config.public_url = "https://cdn.example.com/"
    simulator.config.credits_per_video = 55
    task_id = await new_task(session)
    await clock.advance(100)

    _, body, _ = await status(session, task_id)

    assert body["data"]["consumed_credits"] == 55
    assert body["data"]["response"] == [
        f"https://cdn.example.com/videos/{task_id}/1.mp4",
        f"https://cdn.example.com/videos/{task_id}/2.mp4",
    ]


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("[fail:unsupported]", "File type not supported"),
        ("[fail:inappropriate]", "Inappropriate content, please try another prompt."),
        ("[fail:build]", "grok imagine build failed"),
        ("[fail:network]", "Network error, please try again later."),
    ],
)
async def test_prompt_marker_fails_the_task_with_the_documented_text(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    marker: str,
    message: str,
):
    task_id = await new_task(session, prompt=f"a cat {marker}")
    await clock.advance(50)
    _, body, _ = await status(session, task_id)
    assert body["data"]["status"] == "processing"
    assert body["data"]["error_message"] is None

    await clock.advance(50)
    _, body, _ = await status(session, task_id)

    assert body["data"]["status"] == "failed"
    assert body["data"]["error_message"] == message
    assert message in FAILURE_MESSAGES
    assert body["data"]["consumed_credits"] == 0
    assert body["data"]["response"] == []


async def test_fast_marker_takes_a_tenth_of_the_minimum(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await new_task(session, prompt="quick [fast]")
    await clock.advance(9.9)
    assert (await status(session, task_id))[1]["data"]["status"] == "processing"

    await clock.advance(0.1)

    assert (await status(session, task_id))[1]["data"]["status"] == "completed"


async def test_failure_rate_fails_tasks_with_a_documented_text(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    simulator.config.failure_rate = 1.0
    task_id = await new_task(session)
    await clock.advance(100)

    _, body, _ = await status(session, task_id)

    assert body["data"]["status"] == "failed"
    assert body["data"]["error_message"] in FAILURE_MESSAGES


async def test_durations_follow_the_seed_and_the_configured_range(clock: FakeClock):
    async def durations(seed: int) -> list[float]:
        simulator = Simulator(
            SimulatorConfig(min_seconds=20, max_seconds=60, seed=seed), clock=clock
        )
        async with aiohttp.ClientSession(base_url=await simulator.start()) as session:
            for _ in range(5):
                await new_task(session)
        await simulator.close()
        return [task.duration for task in simulator.tasks.values()]

    first = await durations(3)

    assert first == await durations(3)
    assert first != await durations(4)
    assert all(20.0 <= seconds <= 60.0 for seconds in first)


async def test_fail_and_complete_task_end_tasks_now_and_report_completion_times(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    ended: list[SimulatedTask] = []
    simulator.on_complete.append(ended.append)
    failing, completing, natural = [await new_task(session) for _ in range(3)]
    await clock.advance(5)

    simulator.fail_task(failing, "grok imagine build failed")
    simulator.complete_task(completing)

    assert [(task.task_id, task.completed_mono) for task in ended] == [
        (failing, 1005.0),
        (completing, 1005.0),
    ]
    _, body, _ = await status(session, failing)
    assert (body["data"]["status"], body["data"]["error_message"]) == (
        "failed",
        "grok imagine build failed",
    )
    _, body, _ = await status(session, completing)
    assert (body["data"]["status"], body["data"]["consumed_credits"]) == ("completed", 40)
    assert simulator.tasks[failing].forced_done

    await clock.advance(200)
    await status(session, natural)  # the simulator notices ends when it handles a request

    assert ended[-1].task_id == natural
    assert ended[-1].completed_mono == 1100.0  # when it ended, not when it was noticed
    assert len(ended) == 3


# ----- rate limiting


async def test_rate_window_allows_n_then_refuses_until_it_resets(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    simulator.config.rate_limit_per_minute = 3
    remaining = []
    for _ in range(3):
        code, _, headers = await generate(session)
        assert code == 200
        assert headers["X-RateLimit-Reset"] == "60"
        remaining.append(headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    await clock.advance(20.5)
    async with session.get("/v1/status", params={"task_id": "x"}, headers=auth()) as response:
        assert response.status == 429
        assert await response.json() == RATE_LIMITED
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset"] == "40"
        assert response.headers["Retry-After"] == "40"

    code, _, _ = await generate(session, token="another-token-has-its-own-window")
    assert code == 401  # refused for its token, not for the other token's window

    await clock.advance(39.5)
    code, _, headers = await generate(session)
    assert code == 200
    assert headers["X-RateLimit-Remaining"] == "2"
    assert headers["X-RateLimit-Reset"] == "60"
    assert "Retry-After" not in headers
    assert len(simulator.tasks) == 4


async def test_rate_reset_header_can_be_an_epoch_time(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    simulator.config.reset_header = "epoch"
    simulator.config.rate_limit_per_minute = 1
    window_end = math.ceil(clock.now().timestamp() + 60)

    _, _, headers = await generate(session)
    assert headers["X-RateLimit-Reset"] == str(window_end)

    await clock.advance(15.2)
    code, _, headers = await generate(session)

    assert code == 429
    assert headers["X-RateLimit-Reset"] == str(window_end)
    assert headers["Retry-After"] == "45"


# ----- faults


@pytest.mark.parametrize(
    ("fault", "answer", "creates_task"),
    [
        (Fault.SERVER_ERROR, (500, INTERNAL_ERROR), False),
        (Fault.SERVER_ERROR_AFTER_ACCEPT, (500, INTERNAL_ERROR), True),
        (Fault.BODY_ERROR_CODE, (200, INTERNAL_ERROR), False),
        (Fault.WRONG_SHAPE, (200, {"code": 200, "message": "success"}), True),
        (Fault.RATE_LIMITED, (429, RATE_LIMITED), False),
        (Fault.UNAUTHORIZED, (401, UNAUTHORIZED), False),
    ],
)
async def test_fault_replaces_one_answer(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    fault: Fault,
    answer: tuple[int, dict[str, Any]],
    creates_task: bool,
):
    simulator.inject(fault)

    async with session.post("/v1/generate", json=REFERENCE_GENERATE, headers=auth()) as response:
        assert (response.status, await response.json()) == answer
        assert all(name in response.headers for name in RATE_HEADERS)
        assert ("Retry-After" in response.headers) == (fault is Fault.RATE_LIMITED)

    assert len(simulator.tasks) == int(creates_task)
    code, _, _ = await generate(session)
    assert code == 200  # one-shot


async def test_malformed_json_fault_creates_the_task(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.inject(Fault.MALFORMED_JSON, endpoint="generate")

    async with session.post("/v1/generate", json=REFERENCE_GENERATE, headers=auth()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        with pytest.raises(json.JSONDecodeError):
            await response.json()

    assert len(simulator.tasks) == 1


async def test_drop_connection_fault_creates_the_task_and_answers_nothing(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.inject(Fault.DROP_CONNECTION)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await generate(session)

    assert len(simulator.tasks) == 1
    assert simulator.count("POST", "/v1/generate") == 1


async def test_stall_fault_never_answers_until_the_simulator_closes(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.inject(Fault.STALL, times=2)

    # A bounded wait is the only way to observe "no answer"; nothing here waits for time to pass.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(generate(session), timeout=0.2)
    assert len(simulator.tasks) == 1

    second = asyncio.ensure_future(generate(session))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(second), timeout=0.2)
    await simulator.close()

    with pytest.raises(aiohttp.ClientConnectionError):
        await second
    assert len(simulator.tasks) == 2


async def test_faults_target_an_endpoint_and_count_down(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.inject(Fault.SERVER_ERROR, endpoint="status", times=2)
    task_id = await new_task(session)

    codes = [(await status(session, task_id))[0] for _ in range(3)]

    assert codes == [500, 500, 200]


def test_inject_refuses_impossible_faults(config: SimulatorConfig):
    simulator = Simulator(config)
    with pytest.raises(ValueError, match="generate only"):
        simulator.inject(Fault.SERVER_ERROR_AFTER_ACCEPT, endpoint="status")
    with pytest.raises(ValueError, match="at least 1"):
        simulator.inject(Fault.STALL, times=0)


# ----- admin endpoints and the recorder


CONTROL_ROUTES = [
    ("POST", "/_sim/faults", {"fault": "server_error", "endpoint": "generate", "times": 1}),
    ("POST", "/_sim/config", {"token": None}),
    ("GET", "/_sim/tasks", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_ROUTES)
async def test_a_default_simulator_has_no_control_endpoints(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
):
    """The bot's dry run starts a default simulator: nobody may reconfigure it over HTTP."""
    assert simulator.control is False
    async with session.request(method, path, json=body) as response:
        assert response.status == 404

    assert simulator.config.token == TOKEN  # the config change was never applied
    assert (await generate(session))[0] == 200  # nor was the fault injected


@pytest.mark.parametrize("control", [True])
@pytest.mark.parametrize(("method", "path", "body"), CONTROL_ROUTES)
async def test_control_endpoints_answer_when_control_is_on(
    simulator: Simulator, session: aiohttp.ClientSession, method: str, path: str, body: Any
):
    assert simulator.control is True
    async with session.request(method, path, json=body) as response:
        assert response.status == 200


async def test_python_controls_work_without_the_control_endpoints(
    simulator: Simulator, session: aiohttp.ClientSession
):
    simulator.inject(Fault.SERVER_ERROR, endpoint="generate")

    assert (await generate(session))[0] == 500
    assert simulator.count("POST", "/v1/generate") == 1


@pytest.mark.parametrize("control", [True])
async def test_admin_endpoints_control_the_simulator_out_of_process(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    async with session.post(
        "/_sim/faults", json={"fault": "server_error", "endpoint": "generate", "times": 1}
    ) as response:
        assert response.status == 200
    async with session.post("/_sim/config", json={"rate_limit_per_minute": 7}) as response:
        assert response.status == 200
        assert (await response.json())["rate_limit_per_minute"] == 7
    for bad in ({"seed": 3}, {"min_seconds": "fast"}, {"min_seconds": 500.0}):
        async with session.post("/_sim/config", json=bad) as response:
            assert response.status == 400, bad
    async with session.post("/_sim/faults", json={"fault": "gremlins"}) as response:
        assert response.status == 400

    assert (await generate(session))[0] == 500
    _, _, headers = await generate(session)
    assert headers["X-RateLimit-Remaining"] == "5"
    await clock.advance(100)

    async with session.get("/_sim/tasks") as response:
        summary = await response.json()

    assert summary["now_mono"] == 1100.0
    [task] = summary["tasks"]
    assert task["status"] == "completed"
    assert task["completes_at"] == task["completed_mono"] == 1100.0
    assert task["request"] == REFERENCE_GENERATE


async def test_requests_are_recorded_in_order(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await new_task(session)
    await clock.advance(3)
    await status(session, task_id)

    first, second = simulator.requests
    assert (first.method, first.path, first.json, first.at) == (
        "POST",
        "/v1/generate",
        REFERENCE_GENERATE,
        1000.0,
    )
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (second.method, second.query, second.json, second.at) == (
        "GET",
        {"task_id": task_id},
        None,
        1003.0,
    )
    assert simulator.count("get", "/v1/status") == 1


# ----- videos


async def test_video_endpoint_serves_the_bundled_sample(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await new_task(session)
    await clock.advance(100)
    [url] = (await status(session, task_id))[1]["data"]["response"]

    async with session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/mp4"
        payload = await response.read()
        assert response.content_length == len(payload)

    assert payload == SAMPLE_MP4.read_bytes()
    assert b"ftyp" in payload[:16]
    assert len(payload) < 100_000


async def test_video_endpoint_streams_a_synthetic_body_of_the_configured_size(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    simulator.config.video_bytes = 5 * 1024 * 1024
    task_id = await new_task(session)
    await clock.advance(100)
    url = f"/videos/{task_id}/1.mp4"

    async with session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/mp4"
        assert response.content_length == 5 * 1024 * 1024
        received = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            received += len(chunk)
    async with session.head(url) as response:
        assert response.content_length == 5 * 1024 * 1024

    assert received == 5 * 1024 * 1024


async def test_video_endpoint_knows_only_finished_videos(
    simulator: Simulator, session: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await new_task(session)

    for path in (f"/videos/{task_id}/1.mp4", "/videos/task_404/1.mp4"):
        async with session.get(path) as response:
            assert response.status == 404
    await clock.advance(100)
    async with session.get(f"/videos/{task_id}/2.mp4") as response:
        assert response.status == 404


# ----- command line


def test_cli_parses_every_option():
    args = build_parser().parse_args(
        [
            "--host", "0.0.0.0", "--port", "0", "--token", "secret",
            "--rate-limit-per-minute", "5", "--min-seconds", "1", "--max-seconds", "2",
            "--failure-rate", "0.25", "--reset-header", "epoch", "--video-bytes", "1000",
            "--seed", "9",
        ]
    )  # fmt: skip

    assert (args.host, args.port) == ("0.0.0.0", 0)
    assert args.control is False
    assert build_parser().parse_args(["--control"]).control is True
    assert config_from_args(args) == SimulatorConfig(
        token="secret",
        rate_limit_per_minute=5,
        min_seconds=1.0,
        max_seconds=2.0,
        failure_rate=0.25,
        reset_header="epoch",
        video_bytes=1000,
        seed=9,
    )


def test_cli_defaults_match_the_config_defaults():
    args = build_parser().parse_args([])

    assert (args.host, args.port) == ("127.0.0.1", 8089)
    assert config_from_args(args) == SimulatorConfig()


@pytest.mark.parametrize(
    "argv",
    [["--reset-header", "never"], ["--min-seconds", "9", "--max-seconds", "1"]],
)
def test_cli_refuses_bad_options_before_serving(argv: list[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
