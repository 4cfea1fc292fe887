"""Telling the operator what only they can fix.

Members are told about their own videos; some failures are the operator's to fix: a refused API
key, an API account out of credits, the API rate-limiting or failing for a while, and a video
whose outcome nobody knows (its server was refunded, but the API may have made and billed it).

``OperatorAlerts.alert`` logs every occurrence and counts it (``on_alert``), and sends at most
one message per kind per ``interval`` through an ``AlertSink`` (on Discord: a DM to each owner).
``RunDetector`` turns single API answers into the run kinds (``rate_limited``,
``server_errors``); ``looks_out_of_credits`` recognises an out-of-credits refusal.

The texts are for the operator and in English only. Keeping secrets out of ``detail`` is the
caller's duty.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from bot.clock import Clock

log = logging.getLogger(__name__)

DETAIL_LIMIT = 300
DEFAULT_INTERVAL = timedelta(hours=1)
DEFAULT_RUN_THRESHOLD = 5


class AlertKind(StrEnum):
    """What went wrong, as far as the operator is concerned; one throttle per kind."""

    KEY_REFUSED = "key_refused"
    """The API answered 401 to our key."""
    OUT_OF_CREDITS = "out_of_credits"
    """The API refused a request because the account is out of credits, balance or quota."""
    RATE_LIMITED = "rate_limited"
    """A run of 429 answers (see ``RunDetector``)."""
    SERVER_ERRORS = "server_errors"
    """A run of 5xx answers (see ``RunDetector``)."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """A submission whose outcome is unknown: refunded, but perhaps made and billed."""


class AlertSink(Protocol):
    """Where alerts go."""

    async def send(self, text: str) -> None:
        """Deliver one alert to every operator; raise only if it reached none of them."""
        ...


_LEVELS: dict[AlertKind, int] = {
    AlertKind.KEY_REFUSED: logging.CRITICAL,
    AlertKind.OUT_OF_CREDITS: logging.CRITICAL,
    AlertKind.OUTCOME_UNKNOWN: logging.ERROR,
    AlertKind.RATE_LIMITED: logging.WARNING,
    AlertKind.SERVER_ERRORS: logging.WARNING,
}

# What happened, and what the operator should do about it.
_TEXTS: dict[AlertKind, str] = {
    AlertKind.KEY_REFUSED: (
        "The GrokImagine API refused the API key (401). Videos can't be made until "
        "GROK_API_TOKEN is fixed: check the key in your GrokImagine account, put a valid one in "
        "GROK_API_TOKEN and restart the bot. Members are told the service is unavailable and "
        "get their credits back."
    ),
    AlertKind.OUT_OF_CREDITS: (
        "The GrokImagine account is out of credits: the API refused a video for lack of "
        "balance or quota. Videos can't be made until you top up the account or raise its "
        "limit with GrokImagine; nothing in the bot needs changing. Members are told the "
        "service is unavailable and get their credits back."
    ),
    AlertKind.RATE_LIMITED: (
        "The GrokImagine API keeps answering 429 (too many requests). The bot waits and tries "
        "again by itself, so videos are slower but not lost. If this goes on, set "
        "GROK_RATE_LIMIT_PER_MINUTE to what your GrokImagine plan allows (or ask GrokImagine "
        "for a higher limit) and restart the bot."
    ),
    AlertKind.SERVER_ERRORS: (
        "The GrokImagine API keeps answering with server errors (5xx). The trouble is on "
        "GrokImagine's side: the bot retries what it safely can, and members whose videos fail "
        "get their credits back. Check GrokImagine's status page; nothing in the bot needs "
        "changing."
    ),
    AlertKind.OUTCOME_UNKNOWN: (
        "A video request reached the GrokImagine API but its answer was lost, so nobody knows "
        "whether the video was made. The member's server got its credits back, but the API may "
        "have made and billed that video anyway. Compare the usage in your GrokImagine account "
        "with the bot's log (look for the idempotency key below); if this happens often, check "
        "the network between the bot and the API."
    ),
}

_SEP = r"[\s_-]+"  # "insufficient credits", "insufficient_credits", "insufficient-credits"
_MONEY = r"(?:credits?|balance|funds)"
_NO_MONEY = re.compile(
    rf"""
    \b(?:insufficient|not{_SEP}enough|no|out{_SEP}of|zero|low|exhausted|depleted
        |r[au]n{_SEP}out{_SEP}of)
        {_SEP}(?:(?:api|account|your){_SEP})?{_MONEY}\b
    | \b{_MONEY}{_SEP}(?:(?:is|are|has{_SEP}been|have{_SEP}been){_SEP})?
        (?:exceeded|exhausted|depleted|insufficient|too{_SEP}low|used{_SEP}up|r[au]n{_SEP}out)\b
    | \b(?:credit|spending|billing){_SEP}limit\b
    | \bpayment{_SEP}required\b
    | \b(?:top{_SEP}up|(?:add|buy|purchase){_SEP}(?:more{_SEP})?credits)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
_QUOTA_GONE = re.compile(
    rf"""
    \b(?:insufficient|out{_SEP}of|no){_SEP}quota\b
    | \b(?:quota|usage{_SEP}limit)\b.*\b(?:exceeded|exhausted|reached|used{_SEP}up)\b
    | \b(?:exceeded|exhausted|reached)\b.*\b(?:quota|usage{_SEP}limit)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
# A quota "per minute" is a rate limit, not an empty account.
_RATE_WORDING = re.compile(
    rf"\b(?:rate|too{_SEP}many{_SEP}requests|per{_SEP}(?:second|minute|hour)|rpm|tpm)\b",
    re.IGNORECASE,
)


def looks_out_of_credits(message: str) -> bool:
    """Whether an API refusal's message says the account is out of credits, balance or quota.

    Matches, case-insensitively (and with ``_`` or ``-`` for spaces, as in error codes),
    phrasings such as "insufficient credits", "out of credits", "not enough credits",
    "insufficient balance", "quota exceeded", "credit limit reached", "payment required".
    A quota worded as a rate ("requests per minute quota exceeded") is a rate limit and does
    not match; nor does a refusal about anything else (a prompt, the key). Pure.
    """
    if _NO_MONEY.search(message):
        return True
    return _QUOTA_GONE.search(message) is not None and not _RATE_WORDING.search(message)


def shorten(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _describe(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and not minutes:
        return "hour" if hours == 1 else f"{hours} hours"
    if not hours and minutes:
        return "minute" if minutes == 1 else f"{minutes} minutes"
    if not hours and not minutes:
        return f"{seconds} seconds"
    return f"{hours} h {minutes} min"


def alert_text(kind: AlertKind, detail: str, *, interval: timedelta = DEFAULT_INTERVAL) -> str:
    """The operator's message for one alert: what happened, what to do, the detail."""
    lines = [f"⚠️ imagine-bot: {_TEXTS[kind]}"]
    if detail.strip():
        lines.append(f"Detail: {shorten(detail)}")
    lines.append(
        f"(At most one message like this every {_describe(interval)}; the bot's log has every "
        "occurrence.)"
    )
    return "\n".join(lines)


class OperatorAlerts:
    """Logs and counts every alert; sends each kind at most once per ``interval``.

    ``sink`` None: alerts are only logged and counted (no operator to tell). ``on_alert`` is a
    metrics hook called with the kind on every alert, sent or not. ``alert`` never raises: a
    failing sink or hook is logged. Time comes from ``clock`` (its ``monotonic``).
    """

    def __init__(
        self,
        sink: AlertSink | None,
        *,
        clock: Clock,
        interval: timedelta = DEFAULT_INTERVAL,
        on_alert: Callable[[AlertKind], None] | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._interval = interval
        self._on_alert = on_alert
        self._last_sent: dict[AlertKind, float] = {}

    async def alert(self, kind: AlertKind, detail: str) -> bool:
        """Log and count one occurrence of ``kind``; True when a message was sent for it."""
        now = self._clock.monotonic()
        last = self._last_sent.get(kind)
        due = last is None or now - last >= self._interval.total_seconds()
        if self._sink is None:
            outcome = "no operator to tell"
        elif due:
            outcome = "telling the operator"
        else:
            assert last is not None
            outcome = f"the operator was told {int(now - last)} s ago, not sent again"
        log.log(_LEVELS[kind], "operator alert %s (%s): %s", kind, outcome, shorten(detail))
        self._count(kind)
        if self._sink is None or not due:
            return False
        # Claimed before sending, so that alerts raised meanwhile are not sent twice.
        self._last_sent[kind] = now
        try:
            await self._sink.send(alert_text(kind, detail, interval=self._interval))
        except Exception:
            log.exception("operator alert %s could not be delivered", kind)
            # Not delivered: let the next alert of this kind try again.
            if last is None:
                self._last_sent.pop(kind, None)
            else:
                self._last_sent[kind] = last
            return False
        return True

    def _count(self, kind: AlertKind) -> None:
        if self._on_alert is None:
            return
        try:
            self._on_alert(kind)
        except Exception:
            log.exception("the alert hook failed for %s", kind)


class RunDetector:
    """Turns single API answers into runs worth an alert. Pure and synchronous.

    Call ``note_response`` with the status of every answer of the API (not for a request that
    got no answer). It counts consecutive 429s and consecutive 5xx; any other answer (a success,
    a 4xx) ends both runs, and a 429 ends a 5xx run and the other way round. When a run reaches
    its threshold, that call returns the kind to raise (``RATE_LIMITED`` or ``SERVER_ERRORS``);
    every other call returns None, so one unbroken run raises once however long it lasts.
    """

    def __init__(
        self,
        *,
        rate_limited_after: int = DEFAULT_RUN_THRESHOLD,
        server_errors_after: int = DEFAULT_RUN_THRESHOLD,
    ) -> None:
        if rate_limited_after < 1 or server_errors_after < 1:
            raise ValueError("run thresholds must be at least 1")
        self._thresholds = {
            AlertKind.RATE_LIMITED: rate_limited_after,
            AlertKind.SERVER_ERRORS: server_errors_after,
        }
        self._runs = dict.fromkeys(self._thresholds, 0)

    def run(self, kind: AlertKind) -> int:
        """How many answers of ``kind``'s sort came in a row, up to now."""
        return self._runs.get(kind, 0)

    def note_response(self, status: int) -> AlertKind | None:
        """Count one answer; the kind whose run just reached its threshold, else None."""
        if status == 429:
            current: AlertKind | None = AlertKind.RATE_LIMITED
        elif 500 <= status <= 599:
            current = AlertKind.SERVER_ERRORS
        else:
            current = None
        for kind in self._runs:
            self._runs[kind] = self._runs[kind] + 1 if kind is current else 0
        if current is not None and self._runs[current] == self._thresholds[current]:
            return current
        return None
