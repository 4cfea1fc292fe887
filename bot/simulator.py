"""A local stand-in for the GrokImagine REST API: the documented contract, plus faults on demand.

The test suite, the benchmarks and the bot's dry-run mode talk to it over real HTTP. Run it alone
with ``python -m bot.simulator --host 127.0.0.1 --port 8089``.

What it speaks (see the API reference):

- ``POST /v1/generate`` and ``GET /v1/status?task_id=…`` behind ``Authorization: Bearer <token>``,
  with the reference's ``{code, message, data}`` and ``{code, message, error}`` bodies.
- Validation beyond the reference, following public material on Grok Imagine, as
  ``bot.api_contract`` defines it: ``mode`` is one of ``MODES``, ``ratio`` one of ``RATIOS``, at
  most ``API_MAX_PROMPT_CHARS`` (4000) prompt characters, at most ``API_MAX_IMAGES`` (7) image
  URLs (http or https), and no images with ``spicy``.
- A fixed 60-second rate window per presented token, counted on every ``/v1`` request, checked
  before the token itself. Every ``/v1`` answer carries ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (seconds until the window resets, or its epoch time when
  ``reset_header="epoch"``); a 429 adds ``Retry-After``.
- ``GET /videos/{task_id}/{n}.mp4`` (n counts from 1, no auth, like a CDN) serves the bundled
  sample, or a synthetic body of ``video_bytes`` bytes streamed in chunks.

Task status values are not documented upstream; this simulator uses ``pending`` for the first
10% of a task's duration, then ``processing``, then ``completed`` or ``failed``.
``consumed_credits`` is ``credits_per_video`` once a task has completed (one charge per
generation, however many videos it yields, as in the reference's example) and 0 otherwise.

Prompt markers make a task misbehave without touching Python (end-to-end tests, dry-run demos):

- ``[fail:unsupported]``, ``[fail:inappropriate]``, ``[fail:build]``, ``[fail:network]``: the task
  fails at its completion time with the matching text of ``FAILURE_MESSAGES``;
- ``[fast]``: the task takes ``min_seconds / 10``.

Out-of-process control (standalone mode, benchmarks in another process) goes through ``/_sim``:
``POST /_sim/faults`` ``{"fault", "endpoint", "times"}``, ``GET /_sim/tasks`` and
``POST /_sim/config`` with the config fields to change. ``/_sim`` has no authentication, so it
exists only when asked for: ``Simulator(config, control=True)`` or ``python -m bot.simulator
--control``. Without it (the default, and the bot's dry run) every ``/_sim`` path is a 404. The
Python-level controls (``inject``, ``fail_task``, ``count``…) work either way. Even with control
on, this is a test tool meant for loopback only: never expose it.

All timing (task durations, ``created_at``, rate windows) follows the injected ``Clock``, so tests
drive it with a fake clock over real loopback HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import heapq
import importlib.resources
import logging
import math
import random
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, Literal

from aiohttp import web

from bot.api_contract import API_MAX_IMAGES, API_MAX_PROMPT_CHARS, MODES, RATIOS, accepts_images
from bot.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

FAILURE_MESSAGES: tuple[str, ...] = (
    "File type not supported",
    "Inappropriate content, please try another prompt.",
    "grok imagine build failed",
    "Network error, please try again later.",
)

RATE_WINDOW_SECONDS = 60.0
PENDING_SHARE = 0.1  # share of a task's duration reported as "pending" before "processing"

PROMPT_FAILURE_MARKERS: dict[str, str] = {
    "[fail:unsupported]": FAILURE_MESSAGES[0],
    "[fail:inappropriate]": FAILURE_MESSAGES[1],
    "[fail:build]": FAILURE_MESSAGES[2],
    "[fail:network]": FAILURE_MESSAGES[3],
}
FAST_MARKER = "[fast]"

_STREAM_CHUNK = b"\0" * (64 * 1024)

Endpoint = Literal["generate", "status", "any"]
_ENDPOINTS: tuple[Endpoint, ...] = ("generate", "status", "any")


class Fault(StrEnum):
    """One-shot misbehaviour injected with ``Simulator.inject``."""

    SERVER_ERROR = "server_error"
    SERVER_ERROR_AFTER_ACCEPT = "server_error_after_accept"
    BODY_ERROR_CODE = "body_error_code"
    MALFORMED_JSON = "malformed_json"
    WRONG_SHAPE = "wrong_shape"
    DROP_CONNECTION = "drop_connection"
    STALL = "stall"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"


# These answer in place of the request, which is never processed (no task is created).
_FAULTS_INSTEAD_OF_HANDLING = frozenset(
    {Fault.SERVER_ERROR, Fault.BODY_ERROR_CODE, Fault.RATE_LIMITED, Fault.UNAUTHORIZED}
)


def _error_body(code: int, message: str, error: str) -> dict[str, Any]:
    return {"code": code, "message": message, "error": error}


UNAUTHORIZED_BODY = _error_body(401, "Unauthorized: invalid or missing API token", "UNAUTHORIZED")
RATE_LIMITED_BODY = _error_body(429, "Rate limit exceeded, please retry later", "RATE_LIMITED")
INTERNAL_ERROR_BODY = _error_body(500, "Internal server error", "INTERNAL_ERROR")


@dataclass
class SimulatorConfig:
    """How the simulator behaves. Mutable: tests may change fields between requests."""

    token: str | None = None  # the one accepted token; None accepts any non-empty token
    rate_limit_per_minute: int = 100
    min_seconds: float = 20.0  # a generation takes Uniform(min_seconds, max_seconds)
    max_seconds: float = 60.0
    failure_rate: float = 0.0  # chance a task fails, with a random FAILURE_MESSAGES text
    credits_per_video: int = 40
    videos_per_task: int = 1
    reset_header: Literal["seconds", "epoch"] = "seconds"
    video_bytes: int | None = None  # None serves the bundled sample (or ``video_file``)
    video_file: str | None = None  # an MP4 to serve instead of the bundled sample
    public_url: str | None = None  # base of video URLs; None uses the request's scheme and host
    seed: int | None = None  # seeds durations and random failures; read once, at construction

    def __post_init__(self) -> None:
        problems = [
            message
            for broken, message in (
                (self.rate_limit_per_minute < 1, "rate_limit_per_minute must be at least 1"),
                (not 0 <= self.min_seconds <= self.max_seconds, "need 0 <= min <= max seconds"),
                (not 0.0 <= self.failure_rate <= 1.0, "failure_rate must be within [0, 1]"),
                (self.credits_per_video < 0, "credits_per_video must not be negative"),
                (self.videos_per_task < 1, "videos_per_task must be at least 1"),
                (self.reset_header not in ("seconds", "epoch"), "reset_header: seconds|epoch"),
                (self.video_bytes is not None and self.video_bytes < 0, "video_bytes < 0"),
                (
                    self.public_url is not None
                    and not self.public_url.startswith(("http://", "https://")),
                    "public_url must start with http:// or https://",
                ),
            )
            if broken
        ]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class RecordedRequest:
    """One request received on ``/v1/*``, as the simulator saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None  # the parsed body; None when absent or not JSON
    at: float  # simulator clock, monotonic


@dataclass
class SimulatedTask:
    """A generation: its outcome is decided at creation and revealed as the clock moves."""

    task_id: str
    request: dict[str, Any]
    created_mono: float
    created_at: datetime
    duration: float
    fail_with: str | None
    credits: int
    video_count: int
    forced_done: bool = False  # finished early by fail_task / complete_task
    completed_mono: float | None = None  # set once the simulator has noticed the end

    @property
    def completes_at(self) -> float:
        """Monotonic time at which the task becomes completed or failed."""
        return self.created_mono + self.duration

    def status_at(self, now: float) -> str:
        if now >= self.completes_at:
            return "failed" if self.fail_with is not None else "completed"
        if now < self.created_mono + PENDING_SHARE * self.duration:
            return "pending"
        return "processing"


@dataclass
class _PendingFault:
    fault: Fault
    endpoint: Endpoint
    remaining: int


@dataclass
class _RateWindow:
    started: float
    used: int = 0


class _InvalidRequestError(Exception):
    """A 400 answer; ``str()`` is what follows ``Invalid request: ``."""


def _endpoint_of(request: web.Request) -> Endpoint | None:
    if request.method == "POST" and request.path == "/v1/generate":
        return "generate"
    if request.method == "GET" and request.path == "/v1/status":
        return "status"
    return None


def _presented_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _json_or_none(request: web.Request) -> Any | None:
    if not request.body_exists:
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _validated_generate_request(body: Any) -> dict[str, Any]:
    """The request as the API echoes it in ``status``, or ``_InvalidRequestError``."""
    if not isinstance(body, dict):
        raise _InvalidRequestError("the body must be a JSON object")
    prompt = body.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise _InvalidRequestError("The prompt parameter is required")
    if not isinstance(prompt, str):
        raise _InvalidRequestError("The prompt parameter must be a string")
    if len(prompt) > API_MAX_PROMPT_CHARS:
        raise _InvalidRequestError(f"The prompt must be at most {API_MAX_PROMPT_CHARS} characters")
    mode, ratio = body.get("mode"), body.get("ratio")
    if mode not in MODES:
        raise _InvalidRequestError(f"The mode parameter must be one of {', '.join(MODES)}")
    if ratio not in RATIOS:
        raise _InvalidRequestError(f"The ratio parameter must be one of {', '.join(RATIOS)}")
    images = body.get("images")
    if images is None:
        images = []
    if not isinstance(images, list) or not all(
        isinstance(url, str) and url.startswith(("http://", "https://")) for url in images
    ):
        raise _InvalidRequestError("The images parameter must be a list of http(s) URLs")
    if len(images) > API_MAX_IMAGES:
        raise _InvalidRequestError(f"At most {API_MAX_IMAGES} images are allowed")
    if images and not accepts_images(mode):
        raise _InvalidRequestError(f"The {mode} mode does not accept images")
    echoed: dict[str, Any] = {"mode": mode, "prompt": prompt, "ratio": ratio}
    if images:
        echoed["images"] = list(images)
    return echoed


def _invalid_request(what: str) -> web.Response:
    body = _error_body(400, f"Invalid request: {what}", "INVALID_REQUEST")
    return web.json_response(body, status=400)


def _success(data: Any) -> web.Response:
    return web.json_response({"code": 200, "message": "success", "data": data})


def _drop_connection(request: web.Request) -> web.Response:
    """Close the socket; aiohttp then fails to write the returned response and lets it go."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


@cache
def sample_video() -> bytes:
    """The bundled sample MP4 (a few kilobytes)."""
    return (importlib.resources.files("bot") / "assets" / "sample.mp4").read_bytes()


_CONFIG_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "token": (str, type(None)),
    "rate_limit_per_minute": (int,),
    "min_seconds": (int, float),
    "max_seconds": (int, float),
    "failure_rate": (int, float),
    "credits_per_video": (int,),
    "videos_per_task": (int,),
    "reset_header": (str,),
    "video_bytes": (int, type(None)),
    "video_file": (str, type(None)),
    "public_url": (str, type(None)),
}


def first_durations(config: SimulatorConfig, count: int) -> list[float]:
    """How long the first ``count`` tasks of a simulator with ``config`` take (s), in order.

    Seeded configs give the same durations every time, so a benchmark can replay a poll
    schedule offline on exactly the jobs an end-to-end run sees.
    """
    simulator = Simulator(config)
    return [simulator._create_task({"prompt": "preview"}).duration for _ in range(count)]


class Simulator:
    """The GrokImagine API on a local port, with a recorder and fault injection for tests."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        control: bool = False,
    ) -> None:
        self.config = config or SimulatorConfig()
        # Serve the unauthenticated /_sim control endpoints (tests and tools only, never dry run).
        self.control = control
        self.clock: Clock = clock or SystemClock()
        self.tasks: dict[str, SimulatedTask] = {}
        self.requests: list[RecordedRequest] = []
        # Called once per task when the simulator first notices it has ended (on the next request
        # it handles, or at once for fail_task / complete_task); task.completed_mono is the exact
        # clock time of the end. No timers: they would show up as sleepers on a fake clock.
        self.on_complete: list[Callable[[SimulatedTask], None]] = []
        self._rng = random.Random(self.config.seed)
        self._faults: list[_PendingFault] = []
        self._windows: dict[str, _RateWindow] = {}
        self._ends: list[tuple[float, str]] = []  # heap of (completes_at, task_id) not yet noticed
        self._release_stalled = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # ----- lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/v1/generate", self._generate)
        app.router.add_get("/v1/status", self._status)
        app.router.add_get(r"/videos/{task_id}/{index:\d+}.mp4", self._video)
        if self.control:
            app.router.add_post("/_sim/faults", self._admin_faults)
            app.router.add_get("/_sim/tasks", self._admin_tasks)
            app.router.add_post("/_sim/config", self._admin_config)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._release_stalled = asyncio.Event()  # a restarted simulator stalls again
        # Cancelling handlers on disconnect ends a STALL as soon as the client gives up.
        runner = web.AppRunner(
            self.make_app(), handler_cancellation=True, shutdown_timeout=2.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._url = f"http://{url_host}:{bound_port}"
        return self._url

    async def close(self) -> None:
        """Release stalled requests and stop serving. Safe to call twice."""
        self._release_stalled.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the simulator has not been started")
        return self._url

    # ----- test controls

    def inject(self, fault: Fault, *, endpoint: Endpoint = "any", times: int = 1) -> None:
        """Make the next ``times`` requests to ``endpoint`` misbehave as ``fault`` says."""
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(_ENDPOINTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        if fault is Fault.SERVER_ERROR_AFTER_ACCEPT and endpoint == "status":
            raise ValueError("server_error_after_accept applies to generate only")
        self._faults.append(_PendingFault(Fault(fault), endpoint, times))

    def fail_task(self, task_id: str, message: str) -> None:
        """The task fails now (or, if it has already ended, turns out to have failed)."""
        self._force_end(task_id, message)

    def complete_task(self, task_id: str) -> None:
        """The task completes now (or, if it has already ended, turns out to have completed)."""
        self._force_end(task_id, None)

    def count(self, method: str, path: str) -> int:
        """How many recorded ``/v1`` requests had this method and path."""
        return sum(
            1 for seen in self.requests if seen.method == method.upper() and seen.path == path
        )

    # ----- internals

    def _force_end(self, task_id: str, fail_with: str | None) -> None:
        task = self.tasks[task_id]
        now = self.clock.monotonic()
        task.duration = min(task.duration, now - task.created_mono)
        task.fail_with = fail_with
        task.forced_done = True
        heapq.heappush(self._ends, (task.completes_at, task_id))
        self._notice_ended_tasks()

    def _notice_ended_tasks(self) -> None:
        now = self.clock.monotonic()
        while self._ends and self._ends[0][0] <= now:
            _, task_id = heapq.heappop(self._ends)
            task = self.tasks[task_id]
            # An earlier fail_task/complete_task leaves a stale heap entry behind.
            if task.completed_mono is not None:
                continue
            task.completed_mono = task.completes_at
            for callback in self.on_complete:
                callback(task)

    def _create_task(self, request: dict[str, Any]) -> SimulatedTask:
        config = self.config
        duration = self._rng.uniform(config.min_seconds, config.max_seconds)
        fails = self._rng.random() < config.failure_rate
        prompt: str = request["prompt"]
        fail_with = next(
            (text for marker, text in PROMPT_FAILURE_MARKERS.items() if marker in prompt),
            self._rng.choice(FAILURE_MESSAGES) if fails else None,
        )
        if FAST_MARKER in prompt:
            duration = config.min_seconds / 10
        task = SimulatedTask(
            task_id=f"task_{uuid.uuid4().hex[:16]}",
            request=request,
            created_mono=self.clock.monotonic(),
            created_at=self.clock.now().replace(microsecond=0),
            duration=duration,
            fail_with=fail_with,
            credits=config.credits_per_video,
            video_count=config.videos_per_task,
        )
        self.tasks[task.task_id] = task
        heapq.heappush(self._ends, (task.completes_at, task.task_id))
        self._notice_ended_tasks()
        return task

    def _take_fault(self, endpoint: Endpoint | None) -> Fault | None:
        for pending in self._faults:
            matches = pending.endpoint in ("any", endpoint)
            if pending.fault is Fault.SERVER_ERROR_AFTER_ACCEPT:
                matches = matches and endpoint == "generate"
            if matches:
                pending.remaining -= 1
                if pending.remaining == 0:
                    self._faults.remove(pending)
                return pending.fault
        return None

    def _count_in_window(self, token: str) -> tuple[bool, dict[str, str], int]:
        """Spend one request of ``token``'s window: (allowed?, headers, seconds to reset)."""
        now = self.clock.monotonic()
        window = self._windows.get(token)
        if window is None or now >= window.started + RATE_WINDOW_SECONDS:
            window = self._windows[token] = _RateWindow(started=now)
        window.used += 1
        limit = self.config.rate_limit_per_minute
        until_reset = window.started + RATE_WINDOW_SECONDS - now
        seconds_left = max(1, math.ceil(until_reset))
        if self.config.reset_header == "epoch":
            reset = math.ceil(self.clock.now().timestamp() + until_reset)
        else:
            reset = seconds_left
        headers = {
            "X-RateLimit-Remaining": str(max(0, limit - window.used)),
            "X-RateLimit-Reset": str(reset),
        }
        return window.used <= limit, headers, seconds_left

    async def _fault_answer(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """What the client gets instead of the real answer when ``fault`` strikes."""
        if fault is Fault.SERVER_ERROR or fault is Fault.SERVER_ERROR_AFTER_ACCEPT:
            return web.json_response(INTERNAL_ERROR_BODY, status=500)
        if fault is Fault.BODY_ERROR_CODE:
            return web.json_response(INTERNAL_ERROR_BODY)
        if fault is Fault.UNAUTHORIZED:
            return web.json_response(UNAUTHORIZED_BODY, status=401)
        if fault is Fault.MALFORMED_JSON:
            return web.Response(
                body=b'{"code": 200, "message": "succ', content_type="application/json"
            )
        if fault is Fault.WRONG_SHAPE:
            return web.json_response({"code": 200, "message": "success"})
        if fault is Fault.STALL:
            await self._release_stalled.wait()
        return _drop_connection(request)

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Notice ended tasks; on ``/v1/*`` also record, rate-limit, authenticate, inject faults."""
        self._notice_ended_tasks()
        if not request.path.startswith("/v1/"):
            return await handler(request)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                json=await _json_or_none(request),
                at=self.clock.monotonic(),
            )
        )
        token = _presented_token(request)
        allowed, rate_headers, seconds_left = self._count_in_window(token)
        fault = self._take_fault(_endpoint_of(request))
        answers_instead = fault in _FAULTS_INSTEAD_OF_HANDLING
        if fault is Fault.RATE_LIMITED or (not allowed and not answers_instead):
            response: web.StreamResponse = web.json_response(RATE_LIMITED_BODY, status=429)
            rate_headers |= {"X-RateLimit-Remaining": "0", "Retry-After": str(seconds_left)}
        elif fault is not None and answers_instead:
            response = await self._fault_answer(fault, request)
        elif not token or (self.config.token is not None and token != self.config.token):
            response = web.json_response(UNAUTHORIZED_BODY, status=401)
        else:
            response = await handler(request)
        if fault is not None and not answers_instead:
            response = await self._fault_answer(fault, request)
        response.headers.update(rate_headers)
        return response

    # ----- /v1 handlers

    async def _generate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _invalid_request("the body must be a JSON object")
        try:
            echoed = _validated_generate_request(body)
        except _InvalidRequestError as error:
            return _invalid_request(str(error))
        task = self._create_task(echoed)
        return _success({"task_id": task.task_id})

    async def _status(self, request: web.Request) -> web.Response:
        task_id = request.query.get("task_id", "").strip()
        if not task_id:
            return _invalid_request("The task_id parameter is required")
        task = self.tasks.get(task_id)
        if task is None:
            return _invalid_request(f"No task with task_id {task_id}")
        status = task.status_at(self.clock.monotonic())
        completed = status == "completed"
        return _success(
            {
                "consumed_credits": task.credits if completed else 0,
                "created_at": task.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "status": status,
                "task_id": task.task_id,
                "error_message": task.fail_with if status == "failed" else None,
                "request": task.request,
                "response": self._video_urls(request, task) if completed else [],
            }
        )

    def _video_urls(self, request: web.Request, task: SimulatedTask) -> list[str]:
        base = (self.config.public_url or f"{request.scheme}://{request.host}").rstrip("/")
        return [f"{base}/videos/{task.task_id}/{n}.mp4" for n in range(1, task.video_count + 1)]

    # ----- the "CDN"

    async def _video(self, request: web.Request) -> web.StreamResponse:
        task = self.tasks.get(request.match_info["task_id"])
        index = int(request.match_info["index"])
        if (
            task is None
            or not 1 <= index <= task.video_count
            or task.status_at(self.clock.monotonic()) != "completed"
        ):
            raise web.HTTPNotFound
        size = self.config.video_bytes
        if size is None and self.config.video_file is not None:
            return web.FileResponse(self.config.video_file, headers={"Content-Type": "video/mp4"})
        if size is None:
            return web.Response(body=sample_video(), content_type="video/mp4")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = size
        await response.prepare(request)
        if request.method != "HEAD":
            # Chunk by chunk, so that a 100 MB body costs 64 KiB of memory.
            left = size
            while left > 0:
                chunk = _STREAM_CHUNK[: min(left, len(_STREAM_CHUNK))]
                await response.write(chunk)
                left -= len(chunk)
        await response.write_eof()
        return response

    # ----- /_sim admin

    async def _admin_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.inject(
                Fault(body["fault"]),
                endpoint=body.get("endpoint", "any"),
                times=body.get("times", 1),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return web.json_response({"error": f"bad fault request: {error}"}, status=400)
        pending = [
            {"fault": str(p.fault), "endpoint": p.endpoint, "times": p.remaining}
            for p in self._faults
        ]
        return web.json_response({"pending": pending})

    async def _admin_tasks(self, _request: web.Request) -> web.Response:
        now = self.clock.monotonic()
        tasks = [
            {
                "task_id": task.task_id,
                "status": task.status_at(now),
                "request": task.request,
                "created_at": task.created_at.isoformat(),
                "created_mono": task.created_mono,
                "duration": task.duration,
                "completes_at": task.completes_at,
                "completed_mono": task.completed_mono,
                "fail_with": task.fail_with,
                "forced_done": task.forced_done,
            }
            for task in self.tasks.values()
        ]
        return web.json_response({"now_mono": now, "tasks": tasks})

    async def _admin_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise TypeError("the body must be a JSON object")
            for name, value in changes.items():
                expected = _CONFIG_FIELD_TYPES.get(name)
                if expected is None:
                    raise ValueError(f"unknown or read-only field {name!r}")
                if isinstance(value, bool) or not isinstance(value, expected):
                    raise TypeError(f"wrong type for {name!r}")
            dataclasses.replace(self.config, **changes)  # validates the combination
        except (ValueError, TypeError) as error:
            return web.json_response({"error": f"bad config: {error}"}, status=400)
        for name, value in changes.items():
            setattr(self.config, name, value)
        return web.json_response(dataclasses.asdict(self.config))


# ----- command line


def build_parser() -> argparse.ArgumentParser:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bot.simulator", description="Run the GrokImagine API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--token", help="the one accepted bearer token (default: any)")
    parser.add_argument("--rate-limit-per-minute", type=int, default=defaults.rate_limit_per_minute)
    parser.add_argument("--min-seconds", type=float, default=defaults.min_seconds)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds)
    parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
    parser.add_argument(
        "--reset-header", choices=("seconds", "epoch"), default=defaults.reset_header
    )
    parser.add_argument("--video-bytes", type=int, help="serve synthetic videos of this size")
    parser.add_argument("--public-url", help="base URL of video links (default: request host)")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--control",
        action="store_true",
        help="serve the unauthenticated /_sim control endpoints (loopback test use only)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        token=args.token,
        rate_limit_per_minute=args.rate_limit_per_minute,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        failure_rate=args.failure_rate,
        reset_header=args.reset_header,
        video_bytes=args.video_bytes,
        public_url=args.public_url,
        seed=args.seed,
    )


async def _serve(config: SimulatorConfig, host: str, port: int, *, control: bool) -> None:
    simulator = Simulator(config, control=control)
    url = await simulator.start(host, port)
    logger.info("GrokImagine simulator listening on %s", url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await simulator.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, args.host, args.port, control=args.control))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
