"""Alembic migrations; run them with ``bot.db.Database.upgrade``."""
