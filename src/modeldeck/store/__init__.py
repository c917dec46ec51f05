"""The metrics and control-plane store (SQLAlchemy + Alembic; SQLite or PostgreSQL)."""

from modeldeck.store.db import Store

__all__ = ["Store"]
