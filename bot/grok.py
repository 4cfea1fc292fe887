"""The GrokImagine REST API: typed requests, typed answers, typed errors.

Two rules shape this module:

* A paid ``POST /v1/generate`` is sent again only when it certainly never reached the server
  (the connection could not be opened, or a ``429`` refused it). Whenever the server may have
  seen it, the caller gets ``SubmissionOutcomeUnknown`` instead of a second bill.
* Every request goes through the shared ``RateLimiter`` and reports the answer's rate-limit
  headers back to it, so that all callers of one API key spend one budget.

Status checks are idempotent, so they are retried on anything transient, with capped
exponential backoff and full jitter.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import aiohttp

from bot import user_agent
from bot.api_contract import DEFAULT_MODE, DEFAULT_RATIO, MODES, RATE_HEADROOM, RATIOS
from bot.clock import Clock, SystemClock
from bot.ratelimit import RateLimiter

if TYPE_CHECKING:
    from bot.shared_budget import SharedRateBudget

log = logging.getLogger(__name__)

_GENERATE_PATH = "/v1/generate"
_STATUS_PATH = "/v1/status"
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=20)
_MAX_MESSAGE_CHARS = 300  # API texts end up in logs and Discord messages: keep them short

COMPLETED_STATUSES = frozenset({"completed", "succeeded", "success"})
FAILED_STATUSES = frozenset({"failed", "error", "cancelled", "canceled"})
PENDING_STATUSES = frozenset(
    {"pending", "queued", "processing", "running", "in_progress", "generating"}
)


# -- requests and answers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """What ``POST /v1/generate`` is asked to make."""

    prompt: str
    mode: str = DEFAULT_MODE
    ratio: str = DEFAULT_RATIO
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("the prompt is empty")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.ratio not in RATIOS:
            raise ValueError(f"ratio must be one of {', '.join(RATIOS)}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": self.mode, "prompt": self.prompt, "ratio": self.ratio}
        if self.images:
            body["images"] = list(self.images)
        return body


class TaskPhase(StrEnum):
    """Our classification of the API's raw, loosely documented status string."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One answer of ``GET /v1/status``; ``raw`` keeps every field, known or not."""

    task_id: str
    status: str
    consumed_credits: int | None
    created_at: datetime | None
    error_message: str | None
    request: Mapping[str, Any]
    videos: tuple[str, ...]
    raw: Mapping[str, Any]

    @property
    def phase(self) -> TaskPhase:
        value = self.status.strip().lower()
        if value in COMPLETED_STATUSES:
            return TaskPhase.COMPLETED
        if value in FAILED_STATUSES:
            return TaskPhase.FAILED
        if value in PENDING_STATUSES:
            return TaskPhase.PENDING
        return TaskPhase.UNKNOWN


# -- errors ---------------------------------------------------------------------------------


class GrokError(Exception):
    """Anything that went wrong talking to the API; ``str()`` is a one-line diagnostic."""


class InvalidRequestError(GrokError):
    """The API refused the request as invalid (400, or another 4xx): nothing was made."""

    def __init__(self, message: str, error_code: str | None, *, status: int = 400) -> None:
        self.message = message
        self.error_code = error_code
        self.status = status
        code = f" {error_code}" if error_code else ""
        super().__init__(f"GrokImagine refused the request (HTTP {status}{code}): {message}")


class UnauthorizedError(GrokError):
    """The API refused the token (401 or 403)."""

    def __init__(self, status: int = 401) -> None:
        self.status = status
        super().__init__(f"GrokImagine refused the API token (HTTP {status})")


class RateLimitedError(GrokError):
    """Still rate limited after the client waited as long as it is allowed to."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"GrokImagine rate limit reached; retry in {retry_after:.0f} s")


class ServerError(GrokError):
    """The API answered with a server error (5xx, or the same code in the body)."""

    def __init__(self, status: int, message: str | None = None) -> None:
        self.status = status
        detail = f": {message}" if message else ""
        super().__init__(f"GrokImagine server error (HTTP {status}){detail}")


class TransportError(GrokError):
    """No usable answer: the connection failed, broke, or timed out."""


class MalformedResponseError(GrokError):
    """The answer was not the JSON the reference describes."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"GrokImagine sent a malformed answer: {detail}")


class SubmissionOutcomeUnknown(GrokError):
    """The generate request may have reached the server: a task may exist and may be billed.

    It is never retried; ``idempotency_key`` identifies the submission when reconciling.
    """

    def __init__(self, idempotency_key: str, cause: BaseException | None) -> None:
        self.idempotency_key = idempotency_key
        self.cause = cause
        reason = _describe(cause) if cause is not None else "no usable answer"
        super().__init__(f"generate request may or may not have created a task ({reason})")


class SubmissionDeclined(GrokError):
    """The caller's ``before_send`` said no at the last moment: nothing was sent."""


# Called with a rate-limit slot in hand, just before the generate request goes out; returning
# False cancels the send. Lets the caller record "may have been sent" only when it is true.
BeforeSend = Callable[[], Awaitable[bool]]
# Told of every answer: the endpoint ("generate" or "status"), the HTTP status (None when no
# answer came) and the seconds it took. Metrics and the operator's alerts listen here.
ResponseObserver = Callable[[str, int | None, float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: ``attempts`` includes the first; delays are in clock seconds."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_rate_limit_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


# -- the client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer reduced to what the client decides on."""

    status: int  # the HTTP status, or the body's code when HTTP said 200
    body: Any  # parsed JSON, or None when the body was not JSON
    body_problem: str | None  # why ``body`` is None


class GrokClient:
    """Async client for one API key. Shares the caller's ``aiohttp.ClientSession``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        token: str,
        limiter: RateLimiter,
        clock: Clock | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        rng: random.Random | None = None,
        status_headroom: int | None = None,
        observer: ResponseObserver | None = None,
        shared_budget: SharedRateBudget | None = None,
    ) -> None:
        if not token:
            raise ValueError("the API token is empty")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._authorization = f"Bearer {token}"
        self._limiter = limiter
        self._clock = clock or SystemClock()
        self._retry = retry
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._observer = observer
        # Several processes on one key: each request also takes a turn from the budget they
        # share in the database (this process's limiter still orders its own requests).
        self._shared = shared_budget
        # Status checks leave this many slots to submissions, which a user is waiting on.
        # Never the whole plan, or status checks could only ever pass by ageing.
        default_headroom = max(1, int(limiter.per_minute * RATE_HEADROOM))
        headroom = default_headroom if status_headroom is None else status_headroom
        self._status_headroom = max(0, min(headroom, limiter.per_minute - 1))
        self._user_agent = user_agent()
        self._status_waiting = 0  # status checks waiting for a rate-limit slot

    def __repr__(self) -> str:
        return f"GrokClient(base_url={self._base_url!r})"

    @property
    def status_checks_waiting(self) -> int:
        """Status checks of this process waiting for a rate-limit slot (not sent yet)."""
        return self._status_waiting

    def available(self) -> int:
        """Requests that could be sent right now without waiting, as far as this process knows.

        With a shared budget, the least of this process's limiter and the level it last saw
        in the shared bucket: this process's limiter alone knows nothing of the others.
        """
        available = self._limiter.available()
        if self._shared is not None:
            available = min(available, self._shared.estimate())
        return available

    async def submit(
        self,
        request: GenerateRequest,
        *,
        idempotency_key: str,
        before_send: BeforeSend | None = None,
    ) -> str:
        """Start a generation; returns its ``task_id``.

        Raises ``SubmissionOutcomeUnknown`` whenever the request may have reached the server
        without a usable answer; every other ``GrokError`` means no task was created.
        ``before_send`` runs before every send attempt, after the rate-limit wait.
        """
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        body = request.to_json()
        rate_limit_waited = 0.0
        for attempt in range(1, self._retry.attempts + 1):
            last_attempt = attempt == self._retry.attempts
            try:
                answer = await self._exchange(
                    "POST",
                    _GENERATE_PATH,
                    keep_free=0,
                    json_body=body,
                    key=idempotency_key,
                    before_send=before_send,
                )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                # The connection never opened, so the request was never written.
                if last_attempt:
                    reason = _describe(error)
                    raise TransportError(f"cannot connect to GrokImagine: {reason}") from error
                log.warning("generate: cannot connect (%s); retrying", _describe(error))
                await self._back_off(attempt)
                continue
            except (aiohttp.ClientError, TimeoutError) as error:
                raise SubmissionOutcomeUnknown(idempotency_key, error) from error
            if answer.status == 429:
                wait = self._limiter.blocked_for()
                if last_attempt or rate_limit_waited + wait > self._retry.max_rate_limit_wait:
                    raise RateLimitedError(wait)
                rate_limit_waited += wait
                log.info("generate: rate limited; retrying in %.1f s", wait)
                continue  # acquire() holds the retry back until the wait is over
            if 200 <= answer.status < 300:
                try:
                    return _task_id_of(answer)
                except MalformedResponseError as error:
                    raise SubmissionOutcomeUnknown(idempotency_key, error) from error
            error = _error_of(answer)
            if isinstance(error, (InvalidRequestError, UnauthorizedError)):
                raise error
            # A 5xx (or anything unexpected) may come after the task was created.
            raise SubmissionOutcomeUnknown(idempotency_key, error) from error
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def status(self, task_id: str) -> TaskStatus:
        """The task's current state. Retries transient failures; 4xx answers are final."""
        if not task_id:
            raise ValueError("task_id is empty")
        rate_limit_waited = 0.0
        for attempt in range(1, self._retry.attempts + 1):
            last_attempt = attempt == self._retry.attempts
            try:
                return await self._status_once(task_id)
            except (InvalidRequestError, UnauthorizedError):
                raise
            except RateLimitedError as error:
                waited = rate_limit_waited + error.retry_after
                if last_attempt or waited > self._retry.max_rate_limit_wait:
                    raise
                rate_limit_waited = waited
                continue  # acquire() holds the retry back until the wait is over
            except GrokError as error:
                if last_attempt:
                    raise
                log.info("status of %s: %s; retrying", task_id, error)
            await self._back_off(attempt)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _status_once(self, task_id: str) -> TaskStatus:
        try:
            answer = await self._exchange(
                "GET", _STATUS_PATH, keep_free=self._status_headroom, params={"task_id": task_id}
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransportError(f"status request failed: {_describe(error)}") from error
        if answer.status == 429:
            raise RateLimitedError(self._limiter.blocked_for())
        if not 200 <= answer.status < 300:
            raise _error_of(answer)
        return _status_of(answer, task_id)

    async def _share_answer(self, status: int, remaining: str | None) -> None:
        """What this process learned about the key's budget, every process learns."""
        assert self._shared is not None
        if status == 429:
            blocked = timedelta(seconds=self._limiter.blocked_for())
            await self._shared.block_until(self._clock.now() + blocked)
        # Only an answer saying fewer remain than the bucket can hold may lower it: the usual
        # answer needs no round trip to the database. (``per_minute`` is the bucket's size.)
        elif (
            remaining is not None
            and remaining.strip().isdigit()
            and int(remaining) < self._shared.per_minute
        ):
            await self._shared.correct(int(remaining))

    async def _back_off(self, attempt: int) -> None:
        # Full jitter: callers that failed together do not come back together.
        ceiling = min(self._retry.max_delay, self._retry.base_delay * 2 ** (attempt - 1))
        await self._clock.sleep(self._rng.uniform(0.0, ceiling))

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        keep_free: int,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
        before_send: BeforeSend | None = None,
    ) -> _Answer:
        """One request through the rate limiter; transport failures propagate as aiohttp's."""
        headers = {
            "Authorization": self._authorization,
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        data = json.dumps(json_body).encode() if json_body is not None else None
        endpoint = path.rsplit("/", 1)[-1]
        status_check = path == _STATUS_PATH
        if status_check:
            self._status_waiting += 1
        try:
            if self._shared is None:
                await self._limiter.acquire(keep_free=keep_free)
            else:
                # Several processes: the budget they share decides who goes next, this
                # process's requests taking its tokens in turns (submissions first, then the
                # two kinds alternating; status checks leave the last token to submissions).
                # Only then this process's limiter, which now holds back only what the server's
                # own answers say (headers, a 429): taken first, it would count every request
                # waiting for the shared budget as in flight, and order them by a budget it
                # does not have. A token taken by a caller cancelled meanwhile is spent.
                await self._shared.acquire(keep_free=1 if keep_free else 0)
                await self._limiter.acquire()
        finally:
            if status_check:
                self._status_waiting -= 1
        status: int | None = None
        sent_at: float | None = None
        try:
            if before_send is not None and not await before_send():
                raise SubmissionDeclined("the submission was withdrawn before it was sent")
            sent_at = self._clock.monotonic()
            async with self._session.request(
                method,
                self._base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                middlewares=(_send_once(),),
            ) as response:
                status = response.status
                raw = await response.read()
                answer = _answer_of(response.status, raw)
                remaining = response.headers.get("X-RateLimit-Remaining")
                self._limiter.observe(
                    status=answer.status,
                    remaining=remaining,
                    reset=response.headers.get("X-RateLimit-Reset"),
                    retry_after=response.headers.get("Retry-After"),
                )
                if self._shared is not None:
                    await self._share_answer(answer.status, remaining)
                return answer
        finally:
            self._limiter.release()
            if sent_at is not None and self._observer is not None:
                await self._observer(endpoint, status, self._clock.monotonic() - sent_at)


def _send_once() -> aiohttp.ClientMiddlewareType:
    """Keep one request to one send.

    aiohttp quietly sends an idempotent request a second time when the connection drops.
    That second send would bypass the rate limiter (and the server may have counted both),
    so it fails with the first send's error instead; the client's own retries, which go
    through the limiter, take over from there.
    """
    first_failure: BaseException | None = None

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        nonlocal first_failure
        if first_failure is not None:
            raise first_failure
        try:
            return await handler(request)
        except aiohttp.ClientError as error:
            first_failure = error
            raise

    return middleware


# -- parsing --------------------------------------------------------------------------------


def _answer_of(http_status: int, raw: bytes) -> _Answer:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _Answer(http_status, None, "the body is not JSON")
    if not isinstance(body, dict):
        return _Answer(http_status, None, "the body is not a JSON object")
    status = http_status
    if http_status == 200 and "code" in body:
        code = body["code"]
        if isinstance(code, str) and code.strip().isdigit():
            code = int(code)
        if isinstance(code, bool) or not isinstance(code, int):
            return _Answer(http_status, None, "'code' is not a number")
        status = code
    return _Answer(status, body, None)


def _error_of(answer: _Answer) -> GrokError:
    """The error an unsuccessful (or unparseable) answer stands for."""
    body = answer.body if isinstance(answer.body, dict) else {}
    message = _short(body.get("message"))
    status = answer.status
    if status in (401, 403):
        return UnauthorizedError(status)
    if 400 <= status < 500 and status != 429:
        error_code = body.get("error")
        return InvalidRequestError(
            message or f"HTTP {status}",
            error_code if isinstance(error_code, str) else None,
            status=status,
        )
    if 500 <= status < 600:
        return ServerError(status, message)
    if answer.body_problem is not None:
        return MalformedResponseError(answer.body_problem)
    return MalformedResponseError(f"unexpected HTTP status {status}")


def _data_of(answer: _Answer) -> dict[str, Any]:
    if answer.body_problem is not None:
        raise MalformedResponseError(answer.body_problem)
    data = answer.body.get("data")
    if not isinstance(data, dict):
        raise MalformedResponseError("'data' is missing or not an object")
    return data


def _task_id_of(answer: _Answer) -> str:
    task_id = _data_of(answer).get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise MalformedResponseError("'data.task_id' is missing or not a string")
    return task_id


def _status_of(answer: _Answer, asked_for: str) -> TaskStatus:
    data = _data_of(answer)
    task_id = data.get("task_id")
    if not isinstance(task_id, str):
        raise MalformedResponseError("'data.task_id' is missing or not a string")
    if task_id != asked_for:
        raise MalformedResponseError(f"'data.task_id' is {task_id!r}, not the task asked for")
    status = data.get("status")
    if not isinstance(status, str):
        raise MalformedResponseError("'data.status' is missing or not a string")
    error_message = data.get("error_message")
    if error_message is not None and not isinstance(error_message, str):
        raise MalformedResponseError("'data.error_message' is not a string")
    request = data.get("request")
    if request is None:
        request = {}
    if not isinstance(request, dict):
        raise MalformedResponseError("'data.request' is not an object")
    return TaskStatus(
        task_id=task_id,
        status=status,
        consumed_credits=_credits_of(data.get("consumed_credits")),
        created_at=_timestamp_of(data.get("created_at")),
        error_message=error_message,
        request=MappingProxyType(request),
        videos=_videos_of(data.get("response")),
        raw=MappingProxyType(data),
    )


def _credits_of(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponseError("'data.consumed_credits' is not a whole number")
    return value


def _timestamp_of(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # Python 3.11 reads "Z" itself, but only in some layouts
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # the reference writes UTC
    return moment.astimezone(UTC)


def _videos_of(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise MalformedResponseError("'data.response' is not a list of URLs")
    for index, url in enumerate(value):
        if not isinstance(url, str):
            raise MalformedResponseError(f"'data.response[{index}]' is not a URL string")
    return tuple(value)


def _short(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 1] + "…"


def _describe(error: BaseException) -> str:
    """A one-line name for a transport failure (aiohttp's timeouts have no message)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
