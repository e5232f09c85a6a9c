"""Persistence: SQLAlchemy models, engine and sessions, repositories, Alembic migrations."""

from llmserve.storage.db import Database, sqlite_url_for
from llmserve.storage.repositories import ConversationRepository, NewMessage

__all__ = ["ConversationRepository", "Database", "NewMessage", "sqlite_url_for"]
