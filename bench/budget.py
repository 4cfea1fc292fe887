"""Per-request overhead of the shared rate budget (in the database) against the in-process one.

Every request the bot sends first takes a token. ``bot.ratelimit.RateLimiter`` keeps the budget
in the process's memory; ``bot.shared_budget.SharedRateBudget`` keeps it in one database row
that every process takes from (one conditional UPDATE per token). This measures what one
acquisition costs each way: ``--requests`` sequential acquisitions, each timed on its own, with
a plan so large (``--per-minute``) that nothing ever waits, so only the bookkeeping is timed.

* in-process: ``await limiter.acquire(); limiter.release()``;
* shared, SQLite: a temporary database file, migrated;
* shared, PostgreSQL: a fresh database created on the server of ``TEST_DATABASE_URL`` (else
  ``--postgres``), migrated, and dropped afterwards. ``--postgres ''`` skips it.

The first ``--warmup`` acquisitions of each (connection, statement caches) are not counted.

    python -m bench.budget [--requests 2000] [--postgres URL] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import make_url

from bench.common import fresh_postgres_database, quiet_logging, summarize, write_results
from bot.clock import SystemClock
from bot.db import Database
from bot.ratelimit import RateLimiter
from bot.shared_budget import SharedRateBudget, budget_key

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:55433/postgres"


@dataclass(frozen=True)
class BudgetOptions:
    requests: int = 2000
    warmup: int = 50
    per_minute: int = 10_000_000  # never waits: only the bookkeeping is measured
    postgres: str | None = DEFAULT_POSTGRES  # admin URL of a server; None: skip PostgreSQL


async def time_each(acquire: Callable[[], Awaitable[None]], count: int, warmup: int) -> list[float]:
    """Microseconds of each of ``count`` sequential calls, after ``warmup`` uncounted ones."""
    for _ in range(warmup):
        await acquire()
    timings: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        await acquire()
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


async def measure_in_process(options: BudgetOptions) -> list[float]:
    limiter = RateLimiter(options.per_minute, clock=SystemClock())

    async def acquire() -> None:
        await limiter.acquire()
        limiter.release()

    return await time_each(acquire, options.requests, options.warmup)


async def measure_shared(url: str, options: BudgetOptions) -> list[float]:
    database = Database.from_url(url)
    try:
        await database.upgrade()
        budget = SharedRateBudget.for_plan(
            database,
            key=budget_key("bench-api-key"),
            per_minute=options.per_minute,
            clock=SystemClock(),
        )
        try:
            return await time_each(budget.acquire, options.requests, options.warmup)
        finally:
            await budget.close()
    finally:
        await database.dispose()


@dataclass(frozen=True)
class BudgetRow:
    budget: str
    n: int
    mean_us: float
    p50_us: float
    p99_us: float
    max_us: float

    @classmethod
    def of(cls, budget: str, timings: list[float]) -> BudgetRow:
        stats = summarize(timings)
        return cls(
            budget=budget,
            n=int(stats["n"]),
            mean_us=stats["mean"],
            p50_us=stats["p50"],
            p99_us=stats["p99"],
            max_us=stats["max"],
        )


async def run(options: BudgetOptions, folder: Path) -> dict[str, object]:
    rows: list[BudgetRow] = [BudgetRow.of("in-process", await measure_in_process(options))]
    print_row(rows[-1])
    sqlite_url = f"sqlite+aiosqlite:///{folder / 'budget.sqlite3'}"
    rows.append(BudgetRow.of("shared-sqlite", await measure_shared(sqlite_url, options)))
    print_row(rows[-1])
    if options.postgres:
        async with fresh_postgres_database(options.postgres) as url:
            rows.append(BudgetRow.of("shared-postgresql", await measure_shared(url, options)))
        print_row(rows[-1])
    base = rows[0].p50_us
    return {
        "options": asdict(options)
        | {"postgres": make_url(options.postgres).render_as_string() if options.postgres else None},
        "budgets": [asdict(row) | {"p50_over_in_process": row.p50_us / base} for row in rows],
    }


def print_header() -> None:
    print(f"{'budget':<18} {'n':>6} {'p50 µs':>10} {'p99 µs':>10} {'mean µs':>10} {'max µs':>10}")


def print_row(row: BudgetRow) -> None:
    print(
        f"{row.budget:<18} {row.n:>6} {row.p50_us:>10.1f} {row.p99_us:>10.1f} "
        f"{row.mean_us:>10.1f} {row.max_us:>10.1f}",
        flush=True,
    )


def parse_options(argv: list[str] | None = None) -> tuple[BudgetOptions, bool]:
    defaults = BudgetOptions()
    parser = argparse.ArgumentParser(
        prog="python -m bench.budget",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--per-minute", type=int, default=defaults.per_minute)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_DATABASE_URL") or defaults.postgres,
        help="admin URL of a PostgreSQL server ('' to skip); default TEST_DATABASE_URL",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 each, not saved")
    args = parser.parse_args(argv)
    options = BudgetOptions(
        requests=50 if args.quick else args.requests,
        warmup=5 if args.quick else args.warmup,
        per_minute=args.per_minute,
        postgres=args.postgres or None,
    )
    return options, args.quick


def main(argv: list[str] | None = None) -> None:
    options, quick = parse_options(argv)
    quiet_logging()
    print_header()
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    if not quick:
        print("written to", write_results("budget", figures))


if __name__ == "__main__":
    main()
