"""Operator alerts: what is sent, how often, and the runs that raise them."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from bot.alerts import (
    AlertKind,
    OperatorAlerts,
    RunDetector,
    alert_text,
    looks_out_of_credits,
)
from tests.support.clock import FakeClock

HOUR = 3600.0


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


class FailingSink:
    def __init__(self) -> None:
        self.calls = 0

    async def send(self, text: str) -> None:
        self.calls += 1
        raise RuntimeError("discord is down")


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def counted() -> list[AlertKind]:
    return []


@pytest.fixture
def alerts(sink: RecordingSink, clock: FakeClock, counted: list[AlertKind]) -> OperatorAlerts:
    return OperatorAlerts(sink, clock=clock, on_alert=counted.append)


# --- throttling ---------------------------------------------------------------------------


async def test_an_alert_is_sent_logged_and_counted(
    alerts: OperatorAlerts,
    sink: RecordingSink,
    counted: list[AlertKind],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        sent = await alerts.alert(AlertKind.KEY_REFUSED, "HTTP 401 from POST /v1/generate")

    assert sent is True
    assert len(sink.sent) == 1
    assert "HTTP 401 from POST /v1/generate" in sink.sent[0]
    assert counted == [AlertKind.KEY_REFUSED]
    [record] = caplog.records
    assert record.levelno == logging.CRITICAL
    assert "key_refused" in record.getMessage()


async def test_same_kind_within_the_hour_is_logged_and_counted_but_not_sent(
    alerts: OperatorAlerts,
    sink: RecordingSink,
    clock: FakeClock,
    counted: list[AlertKind],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await alerts.alert(AlertKind.OUT_OF_CREDITS, "first")
    await clock.advance(HOUR - 1)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        sent = await alerts.alert(AlertKind.OUT_OF_CREDITS, "second")

    assert sent is False
    assert len(sink.sent) == 1
    assert counted == [AlertKind.OUT_OF_CREDITS] * 2
    [record] = caplog.records
    assert "second" in record.getMessage()
    assert "not sent again" in record.getMessage()


async def test_same_kind_is_sent_again_after_the_hour(
    alerts: OperatorAlerts, sink: RecordingSink, clock: FakeClock
) -> None:
    assert await alerts.alert(AlertKind.SERVER_ERRORS, "first")
    await clock.advance(HOUR / 2)
    assert not await alerts.alert(AlertKind.SERVER_ERRORS, "held back")
    await clock.advance(HOUR / 2)

    assert await alerts.alert(AlertKind.SERVER_ERRORS, "an hour later")
    assert not await alerts.alert(AlertKind.SERVER_ERRORS, "just after")
    assert [text.count("Detail: ") for text in sink.sent] == [1, 1]
    assert "an hour later" in sink.sent[1]


async def test_kinds_are_throttled_independently(
    alerts: OperatorAlerts, sink: RecordingSink
) -> None:
    results = [await alerts.alert(kind, f"about {kind}") for kind in AlertKind]
    again = [await alerts.alert(kind, "again") for kind in AlertKind]

    assert results == [True] * len(AlertKind)
    assert again == [False] * len(AlertKind)
    assert len(sink.sent) == len(AlertKind)
    assert len(set(sink.sent)) == len(AlertKind)


async def test_the_interval_is_configurable(sink: RecordingSink, clock: FakeClock) -> None:
    alerts = OperatorAlerts(sink, clock=clock, interval=timedelta(minutes=10))

    assert await alerts.alert(AlertKind.RATE_LIMITED, "one")
    await clock.advance(10 * 60)
    assert await alerts.alert(AlertKind.RATE_LIMITED, "two")
    assert "every 10 minutes" in sink.sent[0]


async def test_without_a_sink_alerts_are_logged_and_counted_only(
    clock: FakeClock, counted: list[AlertKind], caplog: pytest.LogCaptureFixture
) -> None:
    alerts = OperatorAlerts(None, clock=clock, on_alert=counted.append)

    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        sent = await alerts.alert(AlertKind.OUTCOME_UNKNOWN, "job 7")

    assert sent is False
    assert counted == [AlertKind.OUTCOME_UNKNOWN]
    [record] = caplog.records
    assert record.levelno == logging.ERROR


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        (AlertKind.KEY_REFUSED, logging.CRITICAL),
        (AlertKind.OUT_OF_CREDITS, logging.CRITICAL),
        (AlertKind.OUTCOME_UNKNOWN, logging.ERROR),
        (AlertKind.RATE_LIMITED, logging.WARNING),
        (AlertKind.SERVER_ERRORS, logging.WARNING),
    ],
)
async def test_each_kind_logs_one_line_at_its_level(
    alerts: OperatorAlerts, kind: AlertKind, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        await alerts.alert(kind, "detail")
        await alerts.alert(kind, "detail")

    assert [record.levelno for record in caplog.records] == [level, level]


# --- failures never escape ------------------------------------------------------------------


async def test_a_failing_sink_does_not_raise_and_is_logged(
    clock: FakeClock, counted: list[AlertKind], caplog: pytest.LogCaptureFixture
) -> None:
    sink = FailingSink()
    alerts = OperatorAlerts(sink, clock=clock, on_alert=counted.append)

    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        sent = await alerts.alert(AlertKind.KEY_REFUSED, "401")

    assert sent is False
    assert counted == [AlertKind.KEY_REFUSED]
    failure = [r for r in caplog.records if "could not be delivered" in r.getMessage()]
    assert len(failure) == 1
    assert failure[0].exc_info is not None


async def test_an_undelivered_alert_is_tried_again_at_the_next_one(clock: FakeClock) -> None:
    failing = FailingSink()
    alerts = OperatorAlerts(failing, clock=clock)

    await alerts.alert(AlertKind.KEY_REFUSED, "first")
    await alerts.alert(AlertKind.KEY_REFUSED, "second")

    assert failing.calls == 2


async def test_a_failing_hook_does_not_stop_the_alert(
    sink: RecordingSink, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(kind: AlertKind) -> None:
        raise ValueError("metrics registry is gone")

    alerts = OperatorAlerts(sink, clock=clock, on_alert=broken_hook)

    with caplog.at_level(logging.DEBUG, logger="bot.alerts"):
        assert await alerts.alert(AlertKind.RATE_LIMITED, "5 in a row")

    assert len(sink.sent) == 1
    assert any("hook failed" in r.getMessage() for r in caplog.records)


# --- the texts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "what_to_do"),
    [
        (AlertKind.KEY_REFUSED, "GROK_API_TOKEN"),
        (AlertKind.OUT_OF_CREDITS, "top up"),
        (AlertKind.RATE_LIMITED, "GROK_RATE_LIMIT_PER_MINUTE"),
        (AlertKind.SERVER_ERRORS, "status page"),
        (AlertKind.OUTCOME_UNKNOWN, "idempotency key"),
    ],
)
def test_each_text_says_what_happened_and_what_to_do(kind: AlertKind, what_to_do: str) -> None:
    text = alert_text(kind, f"the {kind} detail")

    assert what_to_do in text
    assert f"Detail: the {kind} detail" in text
    assert len(text) < 2000  # one Discord message


def test_key_refused_text() -> None:
    text = alert_text(AlertKind.KEY_REFUSED, "HTTP 401")

    assert "refused the API key (401)" in text
    assert "Videos can't be made until GROK_API_TOKEN is fixed" in text
    assert "Members are told the service is unavailable and get their credits back." in text


def test_outcome_unknown_says_it_may_have_been_billed() -> None:
    text = alert_text(AlertKind.OUTCOME_UNKNOWN, "job 12, idempotency key abc")

    assert "got its credits back" in text
    assert "billed" in text


def test_a_long_detail_is_shortened() -> None:
    detail = "x" * 1000 + " END"

    text = alert_text(AlertKind.SERVER_ERRORS, detail)

    [line] = [line for line in text.splitlines() if line.startswith("Detail: ")]
    shown = line.removeprefix("Detail: ")
    assert len(shown) <= 300
    assert shown.endswith("…")
    assert "END" not in text


def test_a_multi_line_detail_stays_on_one_line() -> None:
    text = alert_text(AlertKind.SERVER_ERRORS, "502 Bad Gateway\n<html>\n  oops</html>")

    assert "Detail: 502 Bad Gateway <html> oops</html>" in text


def test_an_empty_detail_adds_no_detail_line() -> None:
    assert "Detail" not in alert_text(AlertKind.RATE_LIMITED, "  ")


# --- out of credits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Insufficient credits",
        "insufficient credits to generate this video",
        "You are OUT OF CREDITS",
        "Not enough credits: 40 needed, 12 left",
        "Insufficient balance",
        "Your account balance is too low",
        "Quota exceeded",
        "You have exceeded your current quota, please check your plan and billing details.",
        "Monthly credit limit reached",
        "insufficient_quota",
        "error code: insufficient_credits",
        "Payment required",
        "Please top up your account to continue",
        "No credits left on this account",
        "credits exhausted",
    ],
)
def test_looks_out_of_credits(message: str) -> None:
    assert looks_out_of_credits(message)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "Invalid API key",
        "The prompt violates the content policy",
        "Too many requests",
        "Rate limit exceeded: requests per minute quota exceeded",
        "Invalid aspect ratio '7:3'",
        "duration must be between 1 and 15 seconds",
        "Unauthorized",
    ],
)
def test_does_not_look_out_of_credits(message: str) -> None:
    assert not looks_out_of_credits(message)


# --- runs -----------------------------------------------------------------------------------


def test_five_429s_in_a_row_raise_rate_limited_once() -> None:
    detector = RunDetector()

    raised = [detector.note_response(429) for _ in range(12)]

    assert raised == [None] * 4 + [AlertKind.RATE_LIMITED] + [None] * 7
    assert detector.run(AlertKind.RATE_LIMITED) == 12


def test_five_5xx_in_a_row_raise_server_errors() -> None:
    detector = RunDetector()

    raised = [detector.note_response(status) for status in (500, 502, 503, 504, 599)]

    assert raised == [None] * 4 + [AlertKind.SERVER_ERRORS]


def test_a_success_resets_the_runs() -> None:
    detector = RunDetector()

    for _ in range(4):
        assert detector.note_response(429) is None
    assert detector.note_response(200) is None
    assert detector.run(AlertKind.RATE_LIMITED) == 0
    raised = [detector.note_response(429) for _ in range(5)]

    assert raised[-1] is AlertKind.RATE_LIMITED
    assert raised[:-1] == [None] * 4


def test_a_new_run_after_a_break_raises_again() -> None:
    detector = RunDetector(server_errors_after=2)

    first = [detector.note_response(s) for s in (500, 500, 500, 201, 503, 503)]

    assert first == [None, AlertKind.SERVER_ERRORS, None, None, None, AlertKind.SERVER_ERRORS]


def test_other_answers_end_a_run_and_kinds_do_not_mix() -> None:
    detector = RunDetector(rate_limited_after=3, server_errors_after=3)

    raised = [detector.note_response(s) for s in (429, 429, 500, 429, 429, 400, 500, 500, 429)]

    assert raised == [None] * 9
    assert detector.run(AlertKind.RATE_LIMITED) == 1
    assert detector.run(AlertKind.SERVER_ERRORS) == 0


def test_thresholds_are_configurable() -> None:
    detector = RunDetector(rate_limited_after=1, server_errors_after=3)

    assert detector.note_response(429) is AlertKind.RATE_LIMITED
    assert detector.note_response(502) is None
    assert detector.note_response(502) is None
    assert detector.note_response(502) is AlertKind.SERVER_ERRORS


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RunDetector(rate_limited_after=0)
