"""imagine-bot's domain: settings, the GrokImagine client and simulator, budgets, jobs, polling.

Nothing in this package imports ``discord``; the Discord adapters live in ``cogs``.
"""

from importlib.metadata import PackageNotFoundError, version


def user_agent() -> str:
    """How the bot names itself to the services it calls."""
    try:
        return f"imagine-bot/{version('imagine-bot')}"
    except PackageNotFoundError:
        return "imagine-bot/0"
