"""Logging: one handler on the root logger, plain lines or JSON, job context, no secrets.

``LOG_FORMAT=text`` writes the familiar lines::

    2025-05-01 12:00:00 INFO     bot.poller: video ready [job=3f2a… task=t-1 guild=42]

``LOG_FORMAT=json`` writes one object per line (python-json-logger)::

    {"time": "2025-05-01T12:00:00.123Z", "level": "INFO", "logger": "bot.poller",
     "message": "video ready", "job_id": "3f2a…", "task_id": "t-1", "guild_id": 42,
     "idempotency_key": "9c1d…"}

A job's ids travel as fields of the record, not in the message text:
``log.info("…", extra=job_fields(job))``. (Holding them in a ``contextvars.ContextVar`` for
the length of each step was measured to slow the acknowledgement of a burst of commands
more than twofold, so the ids are passed where a job is at hand.)

Secrets (the Discord token, the API key, the database password) are masked in the final
formatted output - message, arguments, extra fields, exception text and tracebacks - so a
secret that reaches a log line by any route is replaced by ``********``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Protocol
from urllib.parse import quote, quote_plus

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import LogFormat, Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MASK = "********"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words and numbers

# The ids a job brings, in the order they are shown.
JOB_FIELDS = ("job_id", "task_id", "guild_id", "idempotency_key")
# How a text line shows them; the idempotency key is left to JSON (one per job, and long).
_TEXT_LABELS = {"job_id": "job", "task_id": "task", "guild_id": "guild", "idempotency_key": None}

# --- job fields ----------------------------------------------------------------------------


class _JobLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def task_id(self) -> str | None: ...
    @property
    def guild_id(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...


def job_fields(job: _JobLike) -> dict[str, object]:
    """``extra=`` for a log line about ``job``: its ids, those it has."""
    ids = {
        "job_id": job.id,
        "task_id": job.task_id,
        "guild_id": job.guild_id,
        "idempotency_key": job.idempotency_key,
    }
    return {key: value for key, value in ids.items() if value is not None}


def _job_items(record: logging.LogRecord) -> list[tuple[str, object]]:
    """The record's job ids, in ``JOB_FIELDS`` order."""
    return [
        (key, getattr(record, key)) for key in JOB_FIELDS if getattr(record, key, None) is not None
    ]


# --- secrets -------------------------------------------------------------------------------


class SecretMasker:
    """Replaces each secret (6 characters or more) in a string by ``********``.

    Each secret is also looked for as it appears JSON-escaped and URL-encoded, so a password
    with special characters is masked inside a JSON line or a database URL too.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            forms.update(
                (secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret))
            )
        # Longest first, so a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


# --- formatters ----------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """The classic line, job context appended (`` [job=… task=…]``), secrets masked."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATE_FORMAT)
        self._mask = masker or SecretMasker(())

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        shown = [
            f"{_TEXT_LABELS.get(key, key)}={value}"
            for key, value in _job_items(record)
            if _TEXT_LABELS.get(key, key) is not None
        ]
        return f"{line} [{' '.join(shown)}]" if shown else line

    def format(self, record: logging.LogRecord) -> str:
        # Mask the whole output: message, arguments, exception text and traceback.
        return self._mask(super().format(record))


_JSON_RESERVED = frozenset(RESERVED_ATTRS) | {"taskName", "color_message"}


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, job ids, extras, exception."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__(reserved_attrs=sorted(_JSON_RESERVED))
        self._mask = masker or SecretMasker(())

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data.update(_job_items(record))
        # Anything passed with extra= (or as a dict message) that is not a record attribute.
        merge_record_extra(record, log_data, reserved=self._skip_fields | log_data.keys())
        for key, value in message_dict.items():
            if key not in ("exc_info", "stack_info"):
                log_data.setdefault(key, value)
        if message_dict.get("exc_info"):
            log_data["exception"] = message_dict["exc_info"]
        if message_dict.get("stack_info"):
            log_data["stack"] = message_dict["stack_info"]

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        # Mask the serialized line: whatever field a secret hid in, it does not get out.
        return self._mask(super().jsonify_log_record(log_data))


# --- set-up --------------------------------------------------------------------------------


def database_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):  # unparsable: nothing recognisable to mask
        return None


def settings_secrets(settings: Settings) -> list[str | None]:
    """The values that must never reach a log line."""
    secrets = [settings.discord_token.get_secret_value(), database_password(settings.database_url)]
    if settings.grok_api_token is not None:
        secrets.append(settings.grok_api_token.get_secret_value())
    return secrets


def make_handler(
    log_format: LogFormat | str,
    secrets: Iterable[str | None],
    stream: IO[str] | None = None,
) -> logging.Handler:
    """A stream handler (stderr by default) with the context filter and the masking format."""
    masker = SecretMasker(secrets)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonLineFormatter(masker))
    else:
        handler.setFormatter(TextFormatter(masker))
    return handler


def configure_plain_logging(
    level: str | int,
    secrets: Iterable[str | None],
    stream: IO[str] | None = None,
    *,
    log_format: LogFormat | str = LogFormat.TEXT,
) -> None:
    """Logging for operator commands that have no full ``Settings`` (``db upgrade``)."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(log_format, secrets, stream)]
    root.setLevel(level)
    # discord.py's gateway chatter is noise at INFO.
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))
    # Alembic announces its plugins and its SQLite assumptions at INFO on every start.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """One handler on the root logger: ``LOG_LEVEL``, ``LOG_FORMAT``, every secret masked."""
    configure_plain_logging(
        settings.log_level, settings_secrets(settings), stream, log_format=settings.log_format
    )
