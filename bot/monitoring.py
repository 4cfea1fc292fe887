"""A small HTTP server in the bot's process: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers while the process serves requests at all; ``/readyz`` answers 200 only
when every readiness check passes (the database answers, the gateway is connected, the poller
ticked recently) and 503 with the failing checks otherwise — usable by any orchestrator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)

# A check answers (True, "") when fine, else (False, why). It must not hang: each is bounded.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]
CHECK_TIMEOUT = 2.0


class MonitoringServer:
    """Serves the metrics and health endpoints on ``host:port`` until stopped."""

    def __init__(
        self,
        metrics: Metrics,
        checks: Mapping[str, ReadinessCheck],
        *,
        before_scrape: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._checks = dict(checks)
        self._before_scrape = before_scrape
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_readiness)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self._app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("metrics and health at http://%s:%d/metrics, /healthz, /readyz", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve_metrics(self, _request: web.Request) -> web.Response:
        if self._before_scrape is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self._before_scrape()
            except Exception:  # a scrape must still answer with what is known
                log.warning("refreshing metrics before a scrape failed", exc_info=True)
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _serve_health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _serve_readiness(self, _request: web.Request) -> web.Response:
        failing: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    ok, why = await check()
            except TimeoutError:
                ok, why = False, f"no answer within {CHECK_TIMEOUT:g} s"
            except Exception as error:  # noqa: BLE001 - a failing check is a reason, not a crash
                ok, why = False, f"{type(error).__name__}: {error}"
            if not ok:
                failing[name] = why
        if failing:
            return web.json_response({"status": "not ready", "failing": failing}, status=503)
        return web.json_response({"status": "ready", "checks": sorted(self._checks)})
