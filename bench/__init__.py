"""Benchmarks: one module per claim, each runnable as ``python -m bench.<name>``.

They run the real bot (discord.py, the domain, SQLite) against the loopback Discord stand-in and
the API simulator that the tests use; results go to ``bench/results/<name>.json``.
"""
