"""imagine-bot's domain: settings, the GrokImagine client and simulator, budgets, jobs, polling.

Nothing in this package imports ``discord``; the Discord adapters live in ``cogs``.
"""
