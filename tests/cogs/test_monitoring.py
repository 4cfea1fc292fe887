"""Metrics and health over real HTTP while jobs go through their lives against the stand-ins.

The scrape is validated with Prometheus' own ``promtool check metrics`` when it is installed
(``.ci/run`` installs it; set PROMTOOL to its path, or have it on PATH).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.jobs import JobState
from bot.metrics import Metrics
from bot.monitoring import MonitoringServer
from tests.cogs.conftest import BotHarness, is_result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


async def test_metrics_follow_jobs_through_their_lives(harness: BotHarness) -> None:
    port = free_port()
    await harness.start(METRICS_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:

        async def scrape() -> dict:
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
            checked = promtool()
            if checked is not None:
                process = await asyncio.create_subprocess_exec(
                    checked,
                    "check",
                    "metrics",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                output, _ = await process.communicate(text.encode())
                assert process.returncode == 0, output.decode()
            elif os.environ.get("CI"):
                pytest.fail("promtool is required in CI (.ci/run installs it)")
            return samples(text)

        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "alive"
        before = await scrape()
        assert value(before, "imagine_jobs_started_total") == 0

        await harness.imagine(prompt="a cat counted")
        await harness.wait_for_message(is_result)
        await harness.wait_for_state(JobState.DELIVERED)
        await harness.imagine(prompt="[fail:build] a broken one")
        await harness.wait_for_state(JobState.FAILED)

        after = await scrape()
        assert value(after, "imagine_jobs_started_total") == 2
        assert value(after, "imagine_jobs_ended_total", outcome="delivered", reason="") == 1
        assert (
            value(after, "imagine_jobs_ended_total", outcome="failed", reason="generation_failed")
            == 1
        )
        assert value(after, "imagine_jobs", state="delivered") == 1
        assert value(after, "imagine_jobs", state="failed") == 1
        assert value(after, "imagine_credits_reserved_total") == 80
        assert value(after, "imagine_credits_settled_total") == 40
        assert value(after, "imagine_credits_refunded_total") == 40
        assert value(after, "imagine_api_requests_total", endpoint="generate", status="2xx") == 2
        assert value(after, "imagine_api_requests_total", endpoint="status", status="2xx") >= 2
        assert value(after, "imagine_api_request_seconds_count", endpoint="generate") == 2
        assert value(after, "imagine_ack_seconds_count") == 2
        assert value(after, "imagine_status_checks_per_job_count") == 1
        assert value(after, "imagine_generation_seconds_count") == 1
        assert value(after, "imagine_delivery_lateness_seconds_count") == 1
        assert value(after, "imagine_delivery_attempts_total") == 1
        assert value(after, "imagine_api_rate_budget_remaining") > 0
        assert value(after, "imagine_gateway_shards_connected") == 1
        assert value(after, "imagine_poller_last_tick_age_seconds") < 60
        assert value(after, "imagine_poller_tick_seconds_count") >= 1

        async with http.get(f"{base}/readyz") as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["checks"] == ["database", "gateway", "poller"]


async def test_per_guild_labels_only_when_asked(harness: BotHarness) -> None:
    port = free_port()
    await harness.start(METRICS_PORT=str(port), METRICS_PER_GUILD="true")
    await harness.imagine(prompt="a labelled cat")
    await harness.wait_for_state(JobState.DELIVERED)
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        scraped = samples(await r.text())
    guild = str(harness.guild.id)
    assert value(scraped, "imagine_credits_reserved_total", guild=guild) == 40


async def test_readiness_names_what_is_not_ready() -> None:
    async def fine() -> tuple[bool, str]:
        return True, ""

    async def broken() -> tuple[bool, str]:
        return False, "not connected to the Discord gateway"

    async def crashing() -> tuple[bool, str]:
        raise ConnectionRefusedError("database is down")

    server = MonitoringServer(Metrics(), {"database": crashing, "gateway": broken, "poller": fine})
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/readyz") as response:
                assert response.status == 503
                body = await response.json()
            async with http.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == 200
    finally:
        await server.stop()
    assert body["status"] == "not ready"
    assert body["failing"] == {
        "database": "ConnectionRefusedError: database is down",
        "gateway": "not connected to the Discord gateway",
    }
