"""Every benchmark in turn: what ``make bench`` runs.

    python -m bench [--quick] [NAME ...]

Each benchmark runs in this process through its module's ``main(argv)``, with the arguments
the README's figures were measured with, and writes ``bench/results/<name>.json`` as it would
when run on its own. ``--quick`` passes ``--quick`` to each instead: a smoke run, nothing saved.
A benchmark that fails does not stop the others; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One ``bench.<name>`` module and the arguments of its full run."""

    summary: str
    arguments: tuple[str, ...] = ()


# In the README's order, with the README's commands.
BENCHMARKS: dict[str, Benchmark] = {
    "ack": Benchmark("acknowledgement latency of a burst of /imagine", ("--rounds", "5")),
    "polling": Benchmark("status requests and lateness: learned vs fixed pollers"),
    "saturation": Benchmark("throughput with the rate limit saturated"),
    "scale": Benchmark("poller tick, start-up and delivery memory on a large store"),
    "budget": Benchmark("per-request cost of the shared rate budget vs the in-process one"),
    "transcode": Benchmark("shrinking a 30 MB 1080p clip to fit a 10 MiB upload limit"),
}


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        f"  {name:<11} python -m bench.{name} {' '.join(benchmark.arguments)}".rstrip()
        + f"\n  {'':<11} {benchmark.summary}"
        for name, benchmark in BENCHMARKS.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run every benchmark in turn (or only those named).",
        epilog=f"benchmarks:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"run only these: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run of each (passes --quick), nothing saved"
    )
    return parser


def plan(argv: Sequence[str] | None = None) -> list[tuple[str, list[str]]]:
    """The benchmarks to run, in order, each with its command-line arguments."""
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})"
        )
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    return [
        (name, ["--quick"] if args.quick else list(BENCHMARKS[name].arguments)) for name in names
    ]


def load(name: str) -> Callable[[list[str]], object]:
    """The ``main(argv)`` of ``bench.<name>``."""
    return importlib.import_module(f"bench.{name}").main


def _run_one(name: str, arguments: list[str]) -> bool:
    """Run one benchmark in this process; whether it succeeded."""
    saved_argv = sys.argv
    # write_results() records the command from sys.argv: make it the benchmark's own.
    sys.argv = [saved_argv[0], *arguments]
    try:
        load(name)(arguments)
    except SystemExit as exit_:
        return exit_.code in (None, 0)
    except Exception:
        traceback.print_exc()
        return False
    finally:
        sys.argv = saved_argv
    return True


def main(argv: Sequence[str] | None = None) -> int:
    runs = plan(argv)
    outcomes: list[tuple[str, bool, float]] = []
    for name, arguments in runs:
        print(f"=== bench.{name} {' '.join(arguments)}".rstrip(), flush=True)
        started = time.monotonic()
        ok = _run_one(name, arguments)
        outcomes.append((name, ok, time.monotonic() - started))
        print(f"=== bench.{name}: {'ok' if ok else 'FAILED'}", flush=True)
    print("\nsummary:")
    for name, ok, seconds in outcomes:
        print(f"  {name:<11} {'ok' if ok else 'FAILED':<7} {seconds:8.1f} s")
    failed = [name for name, ok, _ in outcomes if not ok]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
