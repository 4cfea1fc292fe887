"""Logging: text or JSON lines, a job's ids as fields, and secrets that never get out."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from bot.config import LogFormat, settings_from_mapping
from bot.logs import (
    MASK,
    SecretMasker,
    configure_logging,
    configure_plain_logging,
    job_fields,
)

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GhIjKl.discord-token-abcdef"
API_KEY = "grok-api-key-0123456789"
PASSWORD = 'p@ss"w0rd/db'  # special characters: URL-encoded in the URL, escaped in JSON
DATABASE_URL = "postgresql+asyncpg://bot:p%40ss%22w0rd%2Fdb@db.example:5432/imagine"
SECRETS = (TOKEN, API_KEY)

log = logging.getLogger("bot.test_logs")


pytestmark = pytest.mark.usefixtures("restore_logging")


def capture(log_format: LogFormat | str, secrets=SECRETS, level="DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_plain_logging(level, secrets, stream, log_format=log_format)
    return stream


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- set-up --------------------------------------------------------------------------------


def test_one_handler_on_the_root_and_quiet_libraries() -> None:
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    configure_plain_logging("DEBUG", [], io.StringIO())
    assert len(root.handlers) == 1
    assert root.level == logging.DEBUG
    assert logging.getLogger("discord").level == logging.INFO
    assert logging.getLogger("alembic").level == logging.WARNING

    configure_plain_logging("ERROR", [], io.StringIO(), log_format=LogFormat.JSON)
    assert len(root.handlers) == 1
    assert logging.getLogger("discord").level == logging.ERROR
    assert logging.getLogger("alembic").level == logging.ERROR


def test_configure_logging_follows_the_settings() -> None:
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": TOKEN, "LOG_LEVEL": "warning", "LOG_FORMAT": "JSON"}
    )
    stream = io.StringIO()
    configure_logging(settings, stream)
    log.info("not shown")
    log.warning("shown")
    [line] = records(stream)
    assert line["message"] == "shown"
    assert logging.getLogger().level == logging.WARNING


# --- text ----------------------------------------------------------------------------------


def test_text_is_one_line_per_record_with_the_job_context_at_the_end() -> None:
    stream = capture(LogFormat.TEXT)
    log.info("before")
    job = SimpleNamespace(id="abc123", task_id="t-1", guild_id=42, idempotency_key="k" * 32)
    log.info("polled %s", "once", extra=job_fields(job))
    log.warning("after")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    date, time, level, rest = lines[1].split(maxsplit=3)
    datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 (local time)
    assert level == "INFO"
    # The idempotency key stays out of the short text line (JSON carries it).
    assert rest == "bot.test_logs: polled once [job=abc123 task=t-1 guild=42]"
    assert lines[0].endswith(" INFO     bot.test_logs: before")
    assert lines[2].endswith(" WARNING  bot.test_logs: after")


def test_text_puts_the_context_on_the_message_line_and_the_traceback_after() -> None:
    stream = capture(LogFormat.TEXT)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("poll failed", extra={"job_id": "abc123"})

    first, *traceback = stream.getvalue().splitlines()
    assert first.endswith("bot.test_logs: poll failed [job=abc123]")
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: boom"


# --- JSON ----------------------------------------------------------------------------------


def test_json_lines_have_the_fields_and_the_job_ids_only_where_given() -> None:
    stream = capture(LogFormat.JSON)
    log.info("before")
    job = SimpleNamespace(id="abc123", task_id="t-1", guild_id=42, idempotency_key="key-1")
    log.info("polled %d times", 3, extra=job_fields(job))
    log.info("after")

    before, inside, after = records(stream)
    assert before == {
        "time": before["time"],
        "level": "INFO",
        "logger": "bot.test_logs",
        "message": "before",
    }
    assert after.keys() == before.keys()  # no taskName, no process, nothing else
    assert inside == {
        "time": inside["time"],
        "level": "INFO",
        "logger": "bot.test_logs",
        "message": "polled 3 times",
        "job_id": "abc123",
        "task_id": "t-1",
        "guild_id": 42,
        "idempotency_key": "key-1",
    }
    assert inside["time"].endswith("Z")
    logged_at = datetime.fromisoformat(inside["time"])
    assert logged_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged_at) < timedelta(minutes=1)


def test_json_keeps_other_extra_fields() -> None:
    stream = capture(LogFormat.JSON)
    log.info("delivered", extra={"job_id": "abc123", "attempt": 2})
    [line] = records(stream)
    assert (line["job_id"], line["attempt"]) == ("abc123", 2)


def test_job_fields_takes_the_ids_of_a_job_and_skips_what_it_lacks() -> None:
    job = SimpleNamespace(id="abc123", task_id=None, guild_id=42, idempotency_key="key-1")
    assert job_fields(job) == {"job_id": "abc123", "guild_id": 42, "idempotency_key": "key-1"}


def test_json_exception_is_a_field_holding_the_traceback() -> None:
    stream = capture(LogFormat.JSON)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("poll failed")
    log.info("fine", stack_info=True)

    failed, fine = records(stream)
    assert failed["message"] == "poll failed"
    assert failed["level"] == "ERROR"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert failed["exception"].endswith("ValueError: boom")
    assert "exc_info" not in failed
    assert "exception" not in fine
    assert fine["stack"].startswith("Stack (most recent call last):")


# --- secrets -------------------------------------------------------------------------------


class _Refused(Exception):
    pass


async def _refused_by_the_api() -> aiohttp.ClientResponseError:
    """A real 401 from a tiny local server, asked with the key as a Bearer header (and,
    as some APIs do, in the query), the reason phrase echoing the header back."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, reason=f"rejected {request.headers['Authorization']}")

    app = web.Application()
    app.router.add_get("/v1/video", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(
                    f"http://{host}:{port}/v1/video",
                    params={"key": API_KEY},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    raise_for_status=True,
                ):
                    pass
            except aiohttp.ClientResponseError as error:
                return error
    finally:
        await runner.cleanup()
    raise AssertionError("the server should have refused")


def _log_everything(error: aiohttp.ClientResponseError) -> None:
    log.info("logged in with %s", TOKEN)
    log.info("headers: %s", {"Authorization": f"Bearer {API_KEY}"})
    try:
        raise _Refused(f"gateway refused token {TOKEN}")
    except _Refused:
        log.exception("could not connect")
    try:
        raise error
    except aiohttp.ClientResponseError as caught:
        # %r shows request_info, headers and all.
        log.exception("GrokImagine refused: %r", caught)
    log.error("odd", extra={"job_id": "abc123", "idempotency_key": API_KEY, "note": TOKEN})


@pytest.mark.parametrize("log_format", list(LogFormat))
async def test_secrets_never_appear(log_format: LogFormat) -> None:
    error = await _refused_by_the_api()
    assert API_KEY in repr(error.request_info.headers)  # the exception really carries it
    assert API_KEY in str(error)
    # Control: unmasked, every route below does carry a secret into the output.
    unmasked = capture(log_format, secrets=())
    _log_everything(error)
    assert unmasked.getvalue().count(TOKEN) >= 2
    assert unmasked.getvalue().count(API_KEY) >= 3
    stream = capture(log_format)

    _log_everything(error)

    output = stream.getvalue()
    assert TOKEN not in output
    assert API_KEY not in output
    assert "Bearer ********" in output
    assert "401" in output
    assert "ClientResponseError" in output
    if log_format is LogFormat.JSON:
        lines = records(stream)
        assert len(lines) == 5
        assert all(MASK in line["exception"] for line in lines if "exception" in line)


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_the_database_password_is_masked(log_format: LogFormat) -> None:
    settings = settings_from_mapping(
        {
            "DISCORD_TOKEN": TOKEN,
            "GROK_API_TOKEN": API_KEY,
            "DATABASE_URL": DATABASE_URL,
            "LOG_FORMAT": log_format.value,
        }
    )
    stream = io.StringIO()
    configure_logging(settings, stream)
    log.info("connecting to %s", DATABASE_URL)  # URL-encoded
    log.info("password %s", PASSWORD)  # as is (JSON-escaped in a JSON line)
    try:
        raise ConnectionError(f"auth failed for {TOKEN} {API_KEY} {PASSWORD}")
    except ConnectionError:
        log.exception("no database")

    output = stream.getvalue()
    for secret in (TOKEN, API_KEY, PASSWORD, "p%40ss%22w0rd%2Fdb", json.dumps(PASSWORD)[1:-1]):
        assert secret not in output
    assert "bot:********@db.example" in output


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        (["12345"], "job 12345 done", "job 12345 done"),  # too short to mask
        ([None, ""], "nothing to hide", "nothing to hide"),
        (["abcdef", "abcdefgh"], "x abcdefgh y abcdef", f"x {MASK} y {MASK}"),
    ],
)
def test_masker(secrets: list, text: str, expected: str) -> None:
    assert SecretMasker(secrets)(text) == expected


def test_a_cached_traceback_is_masked_too() -> None:
    """A record whose exc_text was rendered elsewhere (before any masking) is masked here."""
    stream = capture(LogFormat.JSON)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "failed", (), None)
    record.exc_text = f"Traceback (most recent call last):\nRuntimeError: {TOKEN}"
    logging.getLogger().handle(record)
    [line] = records(stream)
    assert line["exception"] == f"Traceback (most recent call last):\nRuntimeError: {MASK}"
