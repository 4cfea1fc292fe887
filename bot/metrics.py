"""What the operator can graph and alert on, in Prometheus' terms (``prometheus_client``).

One ``Metrics`` per process, with a registry of its own (so tests and benchmarks never share
counters). The domain records events as they happen; values that are cheaper to read than to
track (jobs per state, rate budget, gateway, last poller tick) are read when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Generation takes tens of seconds to minutes; acknowledgements and API calls milliseconds.
_SECONDS_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SECONDS_SLOW = (1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800)
_CHECKS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)


def status_class(status: int | None) -> str:
    """``2xx``…``5xx`` for an HTTP answer, ``error`` when none came (transport failure)."""
    return f"{status // 100}xx" if status is not None else "error"


class Metrics:
    """Every metric of the bot. ``per_guild`` adds a ``guild`` label to the credit counters."""

    def __init__(self, *, per_guild: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._per_guild = per_guild
        r = self.registry
        self.jobs_started = Counter(
            "imagine_jobs_started", "Jobs recorded (credits reserved).", registry=r
        )
        self.jobs_ended = Counter(
            "imagine_jobs_ended",
            "Jobs that ended, by outcome (delivered, rejected, failed, expired, cancelled) "
            "and, for failures, the reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.jobs_by_state = Gauge(
            "imagine_jobs",
            "Jobs in each state now (read from the database when scraped).",
            ["state"],
            registry=r,
        )
        credit_labels = ["guild"] if per_guild else []
        self.credits_reserved = Counter(
            "imagine_credits_reserved", "Credits reserved for jobs.", credit_labels, registry=r
        )
        self.credits_settled = Counter(
            "imagine_credits_settled",
            "Credits charged to servers for delivered videos (what the API consumed).",
            credit_labels,
            registry=r,
        )
        self.credits_refunded = Counter(
            "imagine_credits_refunded",
            "Credits given back to servers for jobs without a video.",
            credit_labels,
            registry=r,
        )
        self.operator_loss = Counter(
            "imagine_operator_loss_credits",
            "Credits the API reported consumed on jobs refunded to their server: paid by the "
            "operator, not by a budget.",
            registry=r,
        )
        self.api_requests = Counter(
            "imagine_api_requests",
            "Requests to the GrokImagine API, by endpoint and status class.",
            ["endpoint", "status"],
            registry=r,
        )
        self.api_rate_limited = Counter(
            "imagine_api_rate_limited", "429 answers from the GrokImagine API.", registry=r
        )
        self.api_latency = Histogram(
            "imagine_api_request_seconds",
            "Time from sending a request to the API to its answer.",
            ["endpoint"],
            buckets=_SECONDS_FAST,
            registry=r,
        )
        self.rate_budget_remaining = Gauge(
            "imagine_api_rate_budget_remaining",
            "Requests the bot may still send in the current rate window, as it sees it.",
            registry=r,
        )
        self.ack_latency = Histogram(
            "imagine_ack_seconds",
            "Discord interaction created → acknowledged by the bot.",
            buckets=_SECONDS_FAST,
            registry=r,
        )
        self.status_checks = Histogram(
            "imagine_status_checks_per_job",
            "Status requests a delivered job needed.",
            buckets=_CHECKS,
            registry=r,
        )
        self.lateness = Histogram(
            "imagine_delivery_lateness_seconds",
            "The API reported the video done → the video was posted.",
            buckets=(*_SECONDS_FAST, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        self.generation_time = Histogram(
            "imagine_generation_seconds",
            "Submitted → the API reported the video done.",
            buckets=_SECONDS_SLOW,
            registry=r,
        )
        self.delivery_attempts = Counter(
            "imagine_delivery_attempts", "Attempts to post a finished video.", registry=r
        )
        self.delivery_fallbacks = Counter(
            "imagine_delivery_fallbacks",
            "Deliveries that fell back: a link instead of an upload, a video re-encoded to fit "
            "the upload limit, the channel instead of the interaction.",
            ["kind"],
            registry=r,
        )
        self.alerts = Counter(
            "imagine_operator_alerts",
            "Problems only the operator can fix, by kind.",
            ["kind"],
            registry=r,
        )
        self.gateway_latency = Gauge(
            "imagine_gateway_latency_seconds", "Discord gateway heartbeat latency.", registry=r
        )
        self.shards_connected = Gauge(
            "imagine_gateway_shards_connected", "Gateway shards connected now.", registry=r
        )
        self.poller_tick = Histogram(
            "imagine_poller_tick_seconds",
            "One poller pass: claiming the due jobs and starting their steps.",
            buckets=_SECONDS_FAST,
            registry=r,
        )
        self.poller_last_tick_age = Gauge(
            "imagine_poller_last_tick_age_seconds",
            "Seconds since the poller last finished a pass (+Inf before the first).",
            registry=r,
        )
        self._last_tick: float | None = None
        self.poller_last_tick_age.set_function(self.seconds_since_last_tick)

    # --- events -------------------------------------------------------------------------------

    def _credits(self, counter: Counter, amount: int, guild_id: int) -> None:
        if amount <= 0:
            return
        target = counter.labels(guild=str(guild_id)) if self._per_guild else counter
        target.inc(amount)

    def job_started(self, guild_id: int, reserved: int) -> None:
        self.jobs_started.inc()
        self._credits(self.credits_reserved, reserved, guild_id)

    def job_ended(
        self, outcome: str, *, guild_id: int, reason: str = "", refunded: int = 0, lost: int = 0
    ) -> None:
        self.jobs_ended.labels(outcome=outcome, reason=reason).inc()
        self._credits(self.credits_refunded, refunded, guild_id)
        if lost > 0:
            self.operator_loss.inc(lost)

    def job_delivered(
        self,
        *,
        guild_id: int,
        settled: int,
        status_checks: int,
        generation_seconds: float | None,
        lateness_seconds: float | None,
    ) -> None:
        self.jobs_ended.labels(outcome="delivered", reason="").inc()
        self._credits(self.credits_settled, settled, guild_id)
        self.status_checks.observe(status_checks)
        if generation_seconds is not None:
            self.generation_time.observe(max(0.0, generation_seconds))
        if lateness_seconds is not None:
            self.lateness.observe(max(0.0, lateness_seconds))

    def api_response(self, endpoint: str, status: int | None, seconds: float) -> None:
        self.api_requests.labels(endpoint=endpoint, status=status_class(status)).inc()
        self.api_latency.labels(endpoint=endpoint).observe(seconds)
        if status == 429:
            self.api_rate_limited.inc()

    def tick_finished(self, seconds: float) -> None:
        self.poller_tick.observe(seconds)
        self._last_tick = time.monotonic()

    def seconds_since_last_tick(self) -> float:
        if self._last_tick is None:
            return float("inf")
        return time.monotonic() - self._last_tick

    # --- read when scraped --------------------------------------------------------------------

    def watch_rate_budget(self, remaining: Callable[[], float]) -> None:
        self.rate_budget_remaining.set_function(remaining)

    def watch_gateway(self, latency: Callable[[], float], shards: Callable[[], float]) -> None:
        self.gateway_latency.set_function(latency)
        self.shards_connected.set_function(shards)

    def set_job_states(self, counts: Mapping[str, int]) -> None:
        for state, count in counts.items():
            self.jobs_by_state.labels(state=state).set(count)

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
